// coev/runtime/log.hpp
// Library setup: where coev's log lines and fatal errors go, and the debug mode that catches
// misuse (two waiters on one fd, waits on closed fds, tasks left suspended in a dying loop).
#pragma once

#include <atomic>
#include <functional>
#include <coev/runtime/source_location.hpp>
#include <string_view>

namespace coev {

enum class log_level { debug = 0, info = 1, warn = 2, error = 3 };

/// Replaces the log sink (default: warn and error to stderr). Set it before starting loops.
void set_log_handler(std::function<void(log_level, std::string_view)> handler);
/// Lines below `level` are dropped before formatting.
void set_log_level(log_level level) noexcept;
log_level get_log_level() noexcept;
/// Sends a line to the handler. A line the handler itself logs goes to stderr instead.
void log(log_level level, std::string_view message) noexcept;

/// Called for internal errors coev cannot recover from (default: print and abort()). If the
/// handler returns, coev aborts anyway.
void set_fatal_handler(void (*handler)(std::string_view message));
[[noreturn]] void fatal(std::string_view message) noexcept;

/// Debug mode: extra misuse checks, reported through the log with the coev::source_location
/// of the offending call. Also switched on by the environment variable COEV_DEBUG=1.
void set_debug_mode(bool on) noexcept;
namespace detail {
extern std::atomic<bool> debug_on;
}
/// Inline: spawn() and every wait ask it.
inline bool debug_mode() noexcept { return detail::debug_on.load(std::memory_order_relaxed); }
/// Reports misuse found in debug mode (log level error).
void report_misuse(std::string_view what, const coev::source_location& where) noexcept;

}  // namespace coev
