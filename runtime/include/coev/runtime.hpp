// coev/runtime.hpp
// Everything of the coev runtime: tasks, the event loop, fd waits, timers, signals, structure.
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/io.hpp>
#include <coev/runtime/log.hpp>
#include <coev/runtime/notifier.hpp>
#include <coev/runtime/result.hpp>
#include <coev/runtime/signal.hpp>
#include <coev/runtime/task.hpp>
#include <coev/runtime/task_group.hpp>
#include <coev/runtime/timer.hpp>
#include <coev/runtime/version.hpp>
#include <coev/runtime/when.hpp>
