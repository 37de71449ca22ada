// examples/timer.cpp
// The seed's Timer example: a persistent 1.5 s timer, and a timer that fires at once and then
// re-arms itself every 3 s; each prints the seconds since its previous call.
#include <coev/runtime.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string_view>

using namespace std::chrono_literals;

namespace {

double scale = 1.0;  // --scale: the test shortens every period

coev::duration scaled(coev::duration d) {
    return std::chrono::duration_cast<coev::duration>(d * scale);
}

// Seconds since `last`, which then moves to now (the seed's evutil_timersub).
double lap(coev::time_point& last) {
    const auto now = coev::clock::now();
    const std::chrono::duration<double> elapsed = now - last;
    last = now;
    return elapsed.count();
}

// EV_PERSIST|EV_TIMEOUT: ticks are due at start + n * period, so a late one causes no drift.
coev::task<> timeout_cb() {
    coev::interval every(scaled(1500ms));
    auto last = coev::clock::now();
    for (int calls = 1;; ++calls) {
        if (!co_await every.tick()) co_return;  // cancelled
        std::printf("[%.3f]timeout_cb %d \n", lap(last), calls);
    }
}

// The seed adds this one with a zero timeout and re-adds it for 3 s from its own callback.
coev::task<> now_timeout_cb() {
    auto last = coev::clock::now();
    for (int calls = 1;; ++calls) {
        std::printf("[%.3f]now_timeout_cb %d \n", lap(last), calls);
        if (!co_await coev::sleep_for(scaled(3s))) co_return;
    }
}

coev::task<> run_timers(double seconds) {
    coev::task_group timers;
    timers.spawn(timeout_cb());
    timers.spawn(now_timeout_cb());
    if (seconds > 0) {
        (void)co_await coev::sleep_for(std::chrono::duration_cast<coev::duration>(
            std::chrono::duration<double>(seconds)));
    } else {
        coev::signal_set quit{SIGINT, SIGTERM};  // the seed runs until killed; we stop cleanly
        (void)co_await quit.wait();
    }
    timers.request_stop();
    (void)co_await timers.join();
}

}  // namespace

// Usage: timer [--seconds S] [--scale F]; without --seconds it runs until Ctrl-C.
int main(int argc, char** argv) {
    double seconds = 0;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view opt = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
        if (value && opt == "--seconds") {
            seconds = std::atof(value);
        } else if (value && opt == "--scale") {
            scale = std::atof(value);
        } else {
            std::fprintf(stderr, "usage: %s [--seconds S] [--scale F]\n", argv[0]);
            return 2;
        }
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines show up at once when piped too
    coev::run(run_timers(seconds));
    return 0;
}
