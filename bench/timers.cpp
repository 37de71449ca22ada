// bench/timers.cpp
// Timer churn: COUNT tasks each sleep a pseudo-random 0.5-1 s; half are cancelled; the rest
// fire. Prints ns per add, cancel and fire. bench/libevent/timers.c is its libevent twin (same
// generator, same phases, same last line).
#include <coev/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stop_token>
#include <string>
#include <vector>

namespace {

using std::chrono::microseconds;

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void sleep_until_ns(std::int64_t t) {
    timespec ts{time_t(t / 1'000'000'000), long(t % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

// The user's side of a timer: wait, then count the firing (a cancelled wait just ends).
// (Named results: g++ 12 miscompiles co_await inside an if condition.)
coev::task<> sleeper(coev::duration d, long& fired) {
    auto r = co_await coev::sleep_for(d);
    if (r) ++fired;
}
coev::task<> timer_sleeper(coev::timer& t, coev::duration d, long& fired) {
    auto r = co_await t.wait_for(d);
    if (r) ++fired;
}

// The loop every run uses: `--backend`, when given, wins over COEV_BACKEND.
coev::loop_config config_for(const std::string& backend) {
    coev::loop_config cfg;
    cfg.prefer = backend;
    cfg.ignore_env = !backend.empty();
    return cfg;
}

struct figures {
    double add, cancel, fire;
};

// How half the timers are cancelled: `timer` calls coev::timer::cancel() (evtimer_del's
// counterpart); `stop` requests stop on a std::stop_source per task, the structured way, from
// a task running on the loop.
figures run_once(long n, const std::string& backend, bool by_stop) {
    std::uint64_t rng = 0x9E3779B97F4A7C15ULL;
    auto next = [&] {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    };
    coev::event_loop loop(config_for(backend));

    // Untimed, like the twin's event_new(): the frames and the stop sources.
    long fired = 0;
    std::vector<coev::task<>> tasks;
    std::vector<std::stop_source> sources(by_stop ? std::size_t(n) : 0);
    std::vector<coev::timer> timers(by_stop ? 0 : std::size_t(n));
    tasks.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) {
        auto d = microseconds(500000 + next() % 500000);
        tasks.push_back(by_stop ? sleeper(d, fired)
                                : timer_sleeper(timers[std::size_t(i)], d, fired));
    }

    std::int64_t t0 = now_ns();
    for (long i = 0; i < n; ++i) {
        coev::spawn_options opts;
        if (by_stop) opts.stop = sources[std::size_t(i)].get_token();
        coev::spawn(loop, std::move(tasks[std::size_t(i)]), std::move(opts));
    }
    loop.poll();  // each task runs to its sleep: the add
    std::int64_t t1 = now_ns();

    long cancelled = 0;
    if (by_stop) {
        // From a task on the loop, where coev code requests stops (task_group, when_any,
        // with_timeout): the callback cancels at once. From any other thread (or from here,
        // with no loop running on this one) a request takes the cross-thread queue instead,
        // about 55 ns more per cancel (docs/benchmarks.md, 2026-12-06).
        auto canceller = [&]() -> coev::task<> {
            for (long i = 1; i < n; i += 2, ++cancelled) sources[std::size_t(i)].request_stop();
            co_return;
        };
        coev::spawn(loop, canceller());
        loop.poll();  // the canceller runs; what it cancelled is queued to resume
    } else {
        for (long i = 1; i < n; i += 2, ++cancelled) timers[std::size_t(i)].cancel();
    }
    loop.poll();  // the cancelled tasks see operation_canceled and end
    std::int64_t t2 = now_ns();

    sleep_until_ns(t1 + 1'020'000'000);  // every deadline is now well past

    std::int64_t t3 = now_ns();
    loop.run();
    std::int64_t t4 = now_ns();

    if (fired != n - cancelled) {
        std::fprintf(stderr, "timers: %ld timers fired, expected %ld\n", fired, n - cancelled);
        std::exit(1);
    }
    return {double(t1 - t0) / double(n), double(t2 - t1) / double(cancelled ? cancelled : 1),
            double(t4 - t3) / double(fired ? fired : 1)};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: timers -n COUNT [-r REPS] [--backend NAME] [--cancel timer|stop]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    long n = 1000000, reps = 1;
    std::string backend, cancel_mode = "timer";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "-n") n = std::atol(v);
        else if (a == "-r") reps = std::atol(v);
        else if (a == "--cancel") cancel_mode = v;
        else if (a == "--backend" || a == "-b") backend = v;
        else usage();
    }
    if (n < 2 || reps < 1 || (cancel_mode != "timer" && cancel_mode != "stop")) usage();
    {
        coev::event_loop probe(config_for(backend));
        if (!backend.empty() && probe.backend_name() != backend) {
            std::fprintf(stderr, "timers: backend '%s' unavailable (got %.*s)\n", backend.c_str(),
                         int(probe.backend_name().size()), probe.backend_name().data());
            return 2;
        }
        std::fprintf(stderr, "timers: coev %.*s, backend %.*s\n", int(coev::version().size()),
                     coev::version().data(), int(probe.backend_name().size()),
                     probe.backend_name().data());
    }
    std::vector<double> add, cancel, fire;
    for (long r = 0; r < reps; ++r) {
        figures f = run_once(n, backend, cancel_mode == "stop");
        add.push_back(f.add);
        cancel.push_back(f.cancel);
        fire.push_back(f.fire);
    }
    std::printf("timer_churn n=%ld add_ns=%.1f cancel_ns=%.1f fire_ns=%.1f\n", n, median(add),
                median(cancel), median(fire));
    return 0;
}
