// tests/support/main.cpp
// The shared doctest main: names the backend under test in every run's output.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <coev/runtime/event_loop.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    coev::event_loop probe;
    std::printf("backend: %.*s\n", int(probe.backend_name().size()), probe.backend_name().data());
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
