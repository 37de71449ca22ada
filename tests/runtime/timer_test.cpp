// tests/runtime/timer_test.cpp
// Timers through the loop: order, ties, cancellation from the loop and from other threads, volume,
// interval's phase, and with_timeout.
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <numeric>
#include <random>
#include <thread>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using coev_test::watchdog;

TEST_CASE("timers fire in deadline order") {
    coev::event_loop loop;
    std::vector<int> order;
    std::vector<int> ms(20);
    std::iota(ms.begin(), ms.end(), 1);
    std::shuffle(ms.begin(), ms.end(), std::mt19937(7));
    bool relative = false;
    SUBCASE("sleep_until") { relative = false; }
    SUBCASE("sleep_for") { relative = true; }
    auto sleeper = [&](int m) -> coev::task<> {
        if (relative)
            (void)co_await coev::sleep_for(std::chrono::milliseconds(m));
        else
            (void)co_await coev::sleep_until(loop.now() + std::chrono::milliseconds(m));
        order.push_back(m);
    };
    for (int m : ms) coev::spawn(loop, sleeper(m));
    watchdog wd(loop);
    loop.run();
    std::vector<int> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    CHECK(order == sorted);
}

TEST_CASE("timers sharing a deadline fire in the order they were set") {
    coev::event_loop loop;
    enum class how { until, for_, mixed } mode = how::until;
    SUBCASE("all by sleep_until") { mode = how::until; }
    SUBCASE("all by sleep_for of one duration (the FIFO lists)") { mode = how::for_; }
    SUBCASE("sleep_until and sleep_for alternating") { mode = how::mixed; }
    std::vector<int> order;
    // Every task arms in the same iteration, so now() and hence every deadline is the same.
    auto sleeper = [&](int id) -> coev::task<> {
        const bool use_for = mode == how::for_ || (mode == how::mixed && id % 2 == 1);
        if (use_for)
            (void)co_await coev::sleep_for(20ms);
        else
            (void)co_await coev::sleep_until(loop.now() + 20ms);
        order.push_back(id);
    };
    std::vector<int> ids(50);
    std::iota(ids.begin(), ids.end(), 0);
    for (int id : ids) coev::spawn(loop, sleeper(id));
    watchdog wd(loop);
    loop.run();
    CHECK(order == ids);
}

TEST_CASE("a sleep is cancelled by a stop request from another task") {
    coev::event_loop loop;
    std::stop_source stop;
    coev::result<void> r;
    coev::duration took{};
    auto sleeper = [&]() -> coev::task<> {
        const auto t0 = coev::clock::now();
        r = co_await coev::sleep_for(10s);
        took = coev::clock::now() - t0;
    };
    auto canceller = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        stop.request_stop();
    };
    coev::spawn(loop, sleeper(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK(took < 5s);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("a sleep is cancelled by a stop request from another thread") {
    coev::event_loop loop;
    std::stop_source stop;
    coev::result<void> r;
    coev::duration took{};
    auto sleeper = [&]() -> coev::task<> {
        const auto t0 = coev::clock::now();
        r = co_await coev::sleep_for(10s);
        took = coev::clock::now() - t0;
    };
    coev::spawn(loop, sleeper(), coev::spawn_options{.stop = stop.get_token()});
    loop.poll();  // the sleep is armed
    std::thread other([&] { stop.request_stop(); });
    watchdog wd(loop);
    loop.run();
    other.join();
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK(took < 5s);
}

TEST_CASE("a stop request from another thread ends a sleep cleanly, however the two race") {
    // Run it under ASan too: the cancel crosses threads through the loop's post queue.
    constexpr int rounds = 300;
    std::mt19937 rng(1234);
    bool long_sleep = true;
    SUBCASE("the sleep is long: it always ends cancelled") { long_sleep = true; }
    SUBCASE("the sleep is short: it ends either way, exactly once") { long_sleep = false; }
    int cancelled = 0, finished = 0, other_outcome = 0, unfinished = 0, stuck = 0;
    for (int round = 0; round < rounds && stuck == 0; ++round) {
        coev::event_loop loop;
        std::stop_source stop;
        int resumed = 0;
        coev::result<void> r;
        auto sleeper = [&]() -> coev::task<> {
            r = co_await coev::sleep_for(long_sleep ? coev::duration(10s) : coev::duration(50us));
            ++resumed;
        };
        coev::spawn(loop, sleeper(), coev::spawn_options{.stop = stop.get_token()});
        const auto delay = std::chrono::microseconds(rng() % 200);
        std::thread other([&stop, delay] {
            coev_test::spin_for(delay);
            stop.request_stop();
        });
        {
            watchdog wd(loop, 5s);
            loop.run();
            stuck += wd.fired();
        }
        other.join();
        if (resumed != 1)
            ++unfinished;
        else if (r.error() == std::errc::operation_canceled)
            ++cancelled;
        else if (r)
            ++finished;
        else
            ++other_outcome;
    }
    CHECK(stuck == 0);
    CHECK(unfinished == 0);
    CHECK(other_outcome == 0);
    if (long_sleep)
        CHECK(cancelled == rounds);
    else
        CHECK(cancelled + finished == rounds);
}

TEST_CASE("thousands of waits with stop tokens end cancelled, round after round on one loop") {
    // Each armed wait holds a slot of the loop's stop pool; a round's stops come from another
    // thread (the cross-thread cancel path), and the next round takes the slots given back.
    constexpr int tasks = 20'000, rounds = 3;
    coev::event_loop loop;
    auto pair = coev_test::make_socket_pair();
    int cancelled = 0, other = 0;
    for (int round = 0; round < rounds; ++round) {
        std::vector<std::stop_source> stops(tasks);
        auto sleeper = [&]() -> coev::task<> {
            auto r = co_await coev::sleep_for(10s);
            ++(r.error() == std::errc::operation_canceled ? cancelled : other);
        };
        auto reader = [&]() -> coev::task<> {
            std::byte buf[8];
            auto r = co_await coev::read_some(pair.a.get(), buf);
            ++(!r && r.error() == std::errc::operation_canceled ? cancelled : other);
        };
        for (int i = 0; i < tasks; ++i)
            coev::spawn(loop, i == 0 ? reader() : sleeper(),
                        coev::spawn_options{.stop = stops[std::size_t(i)].get_token()});
        loop.poll();  // every wait is armed
        std::thread stopper([&] {
            for (auto& s : stops) s.request_stop();
        });
        watchdog wd(loop);
        loop.run();
        stopper.join();
        CHECK(!wd.fired());
    }
    CHECK(cancelled == tasks * rounds);
    CHECK(other == 0);
}

TEST_CASE("100,000 timers all fire, none early and in deadline order") {
    coev::event_loop loop;
    constexpr int n = 100'000;
    std::mt19937 rng(99);
    std::vector<coev::time_point> fired_deadlines;
    fired_deadlines.reserve(n);
    int early = 0;
    // A mix of the heap (sleep_until, scattered durations) and the FIFO lists (sleep_for of a few
    // durations that repeat).
    auto sleeper = [&](int kind, int ms) -> coev::task<> {
        const auto d = std::chrono::milliseconds(ms);
        const auto deadline = loop.now() + d;
        if (kind == 0)
            (void)co_await coev::sleep_until(deadline);
        else
            (void)co_await coev::sleep_for(d);
        if (loop.now() < deadline) ++early;
        fired_deadlines.push_back(deadline);
    };
    for (int i = 0; i < n; ++i) {
        const int kind = int(rng() % 2);
        const int ms = kind == 0 ? int(rng() % 50) : int(rng() % 4) * 10;
        coev::spawn(loop, sleeper(kind, ms));
    }
    watchdog wd(loop, 30s);
    loop.run();
    CHECK(fired_deadlines.size() == std::size_t(n));
    CHECK(early == 0);
    CHECK(std::is_sorted(fired_deadlines.begin(), fired_deadlines.end()));
    CHECK_FALSE(wd.fired());
}

TEST_CASE("an interval does not drift over 100 ticks") {
    coev::event_loop loop;
    constexpr auto period = 4ms;
    constexpr auto work = 2ms;
    constexpr int ticks = 100;
    coev::duration elapsed{};
    int failed = 0;
    auto ticker = [&]() -> coev::task<> {
        const auto start = loop.now();
        coev::interval every(period, start);
        for (int i = 0; i < ticks; ++i) {
            if (!co_await every.tick()) ++failed;
            // A slow step, seen by the loop's clock: a timer re-armed from now() would add it to
            // every period. It blocks rather than spins, so a loaded machine does not stretch it.
            std::this_thread::sleep_for(work);
            loop.update_time();
        }
        elapsed = loop.now() - start;  // the time of the last tick's wake-up
    };
    coev::spawn(loop, ticker());
    watchdog wd(loop);
    loop.run();
    CHECK(failed == 0);
    CHECK(elapsed >= ticks * period);
    // Keeping the phase: 400 ms and the last tick's lateness. Drifting: 600 ms at least.
    CHECK(elapsed < ticks * period + 150ms);
}

TEST_CASE("an interval on a manual clock ticks exactly on its grid") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::manual});
    constexpr auto period = 10ms;
    std::vector<coev::duration> at;
    const auto start = loop.now();
    auto ticker = [&]() -> coev::task<> {
        coev::interval every(period);
        for (int i = 0; i < 100; ++i) {
            (void)co_await every.tick();
            at.push_back(loop.now() - start);
        }
    };
    coev::spawn(loop, ticker());
    loop.run();  // starts the ticker
    // Time moves in steps that do not divide the period: each tick fires at the first step at or
    // past start + n * period, never later, and lateness does not carry over.
    for (int step = 0; step < 1000 && at.size() < 100; ++step) loop.advance(3ms);
    REQUIRE(at.size() == 100);
    int off_grid = 0;
    for (std::size_t n = 1; n <= at.size(); ++n) {
        const auto due = std::int64_t(n) * 10;
        const auto expected = std::chrono::milliseconds((due + 2) / 3 * 3);
        if (at[n - 1] != expected) ++off_grid;
    }
    CHECK(off_grid == 0);
    CHECK(at.back() == 1002ms);
}

// Regression: the tick re-armed already due (30 ms at 35 ms) waited for the next advance().
TEST_CASE("an interval that falls behind fires the missed ticks at once and keeps its phase") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::manual});
    std::vector<coev::duration> at;
    const auto start = loop.now();
    auto ticker = [&]() -> coev::task<> {
        coev::interval every(10ms);
        for (int i = 0; i < 5; ++i) {
            (void)co_await every.tick();
            at.push_back(loop.now() - start);
        }
    };
    coev::spawn(loop, ticker());
    loop.run();
    loop.advance(35ms);  // the ticks due at 10, 20 and 30 ms are all late
    loop.advance(5ms);
    loop.advance(10ms);
    // 10, 20 and 30 come at once at 35 ms (a burst); 40 and 50 are back on the grid.
    CHECK(at == std::vector<coev::duration>{35ms, 35ms, 35ms, 40ms, 50ms});
}

TEST_CASE("with_timeout ends in timed_out and cancels the slow operation before it returns") {
    coev::event_loop loop;
    std::error_code inner_saw;
    bool inner_done = false;
    bool inner_done_at_return = false;
    coev::result<void> out;
    coev::duration took{};
    auto slow_result = [&]() -> coev::task<coev::result<void>> {
        auto r = co_await coev::sleep_for(10s);
        inner_saw = r.error();
        inner_done = true;
        co_return r;
    };
    auto slow_void = [&]() -> coev::task<> {
        auto r = co_await coev::sleep_for(10s);
        inner_saw = r.error();
        inner_done = true;
    };
    int which = 0;
    SUBCASE("a task returning result<void>") { which = 0; }
    SUBCASE("a task<void>") { which = 1; }
    SUBCASE("a sleep awaited directly") { which = 2; }
    auto outer = [&]() -> coev::task<> {
        const auto t0 = coev::clock::now();
        if (which == 0)
            out = co_await coev::with_timeout(20ms, slow_result());
        else if (which == 1)
            out = co_await coev::with_timeout(20ms, slow_void());
        else
            out = co_await coev::with_timeout(20ms, coev::sleep_for(10s));
        took = coev::clock::now() - t0;
        inner_done_at_return = inner_done;
    };
    coev::spawn(loop, outer());
    watchdog wd(loop);
    loop.run();
    CHECK(out.error() == std::errc::timed_out);
    CHECK(took >= 19ms);
    CHECK(took < 5s);
    if (which != 2) {
        CHECK(inner_done_at_return);
        CHECK(inner_saw == std::errc::operation_canceled);
    }
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("with_timeout puts a deadline on an fd wait or a read") {
    coev::event_loop loop;
    auto s = coev_test::make_socket_pair();
    coev::result<void> waited;
    coev::result<std::size_t> read;
    coev::result<std::size_t> read_in_time;
    std::vector<std::byte> buf(16);
    auto t = [&]() -> coev::task<> {
        waited = co_await coev::with_timeout(20ms, coev::wait_readable(s.a.get()));
        read = co_await coev::with_timeout(20ms, coev::read_some(s.a.get(), buf));
        coev_test::send_now(s.b.get(), "in time");
        read_in_time = co_await coev::with_timeout(10s, coev::read_some(s.a.get(), buf));
    };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    CHECK(waited.error() == std::errc::timed_out);
    CHECK(read.error() == std::errc::timed_out);
    REQUIRE(read_in_time.has_value());
    CHECK(*read_in_time == 7);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("with_timeout returns the value of an operation that finishes in time") {
    auto fast = []() -> coev::task<int> {
        (void)co_await coev::sleep_for(1ms);
        co_return 42;
    };
    auto outer = [&]() -> coev::task<coev::result<int>> {
        co_return co_await coev::with_timeout(10s, fast());
    };
    const auto t0 = coev::clock::now();
    coev::result<int> r = coev::run(outer());
    REQUIRE(r.has_value());
    CHECK(*r == 42);
    CHECK(coev::clock::now() - t0 < 5s);  // the 10 s deadline was disarmed, not waited for
}

TEST_CASE("with_timeout ends in operation_canceled when its caller is cancelled") {
    coev::event_loop loop;
    std::stop_source stop;
    coev::result<void> out;
    auto outer = [&]() -> coev::task<> {
        out = co_await coev::with_timeout(10s, coev::sleep_for(10s));
    };
    auto canceller = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        stop.request_stop();
    };
    coev::spawn(loop, outer(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(out.error() == std::errc::operation_canceled);
    CHECK_FALSE(wd.fired());
}

// Regression: now + duration::max() overflowed into the past; the wrapped deadline then made
// the loop's wait timeout overflow too, and every other timer starved.
TEST_CASE("a sleep of duration::max() never fires and does not hold up other timers") {
    coev::event_loop loop;
    coev::result<void> forever = std::make_error_code(std::errc::io_error);
    bool short_fired = false;
    auto sleeper = [&]() -> coev::task<> {
        forever = co_await coev::sleep_for(coev::duration::max());
    };
    auto limited = [&]() -> coev::task<> {
        auto r = co_await coev::with_timeout(coev::duration::max(), coev::sleep_for(20ms));
        short_fired = r.has_value();
    };
    coev::task_group g;
    auto run_all = [&]() -> coev::task<> {
        g.spawn(sleeper());
        (void)co_await limited();
        g.request_stop();  // ends the endless sleep
        auto j = co_await g.join();
        (void)j;
    };
    coev::spawn(loop, run_all());
    watchdog wd(loop, 5s);
    loop.run();
    CHECK(short_fired);
    REQUIRE_FALSE(forever.has_value());
    CHECK(forever.error() == std::errc::operation_canceled);
    CHECK_FALSE(wd.fired());
}

// The other end: now + duration::min() is a deadline near the clock's start, and the loop's
// wait timeout (deadline - now) wrapped into a wait of centuries. It is simply due.
TEST_CASE("a sleep of duration::min() is due at once") {
    coev::event_loop loop;
    coev::result<void> r = std::make_error_code(std::errc::io_error);
    auto t = [&]() -> coev::task<> { r = co_await coev::sleep_for(coev::duration::min()); };
    coev::spawn(loop, t());
    watchdog wd(loop, 5s);
    const auto start = std::chrono::steady_clock::now();
    loop.run();
    CHECK(r.has_value());
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("a relative sleep awaiter awaited a second time fails at once; a deadline's sleeps") {
    // Its duration is gone once armed (audit, 2026-12-07: the second await slept for years).
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::auto_advance});
    loop.advance(1000s);
    coev::result<void> first = std::make_error_code(std::errc::io_error), second = first,
                       third = first, by_timer = first;
    coev::duration second_took{}, deadline_again_took{};
    auto t = [&]() -> coev::task<> {
        auto a = coev::sleep_for(10ms);
        first = co_await a;
        auto m = loop.now();
        second = co_await a;
        second_took = loop.now() - m;
        coev::timer tm;
        auto b = tm.wait_for(10ms);
        (void)co_await b;
        by_timer = co_await b;
        auto c = coev::sleep_until(loop.now() + 5ms);
        (void)co_await c;
        m = loop.now();
        third = co_await c;  // the deadline has passed: due at once, as before
        deadline_again_took = loop.now() - m;
    };
    coev::spawn(loop, t());
    loop.run();
    CHECK(first.has_value());
    CHECK(second.error() == std::errc::invalid_argument);
    CHECK(second_took == coev::duration::zero());
    CHECK(by_timer.error() == std::errc::invalid_argument);
    CHECK(third.has_value());
    CHECK(deadline_again_took == coev::duration::zero());
}

TEST_CASE("with_timeout around a void awaitable reports the caller's cancellation") {
    coev::event_loop loop;
    coev::result<void> r;
    std::stop_source stop;
    struct plain_wait {  // a void awaitable: a sleep whose result is dropped
        coev::task<> operator()() { (void)co_await coev::sleep_for(10s); }
    };
    auto t = [&]() -> coev::task<> { r = co_await coev::with_timeout(10s, plain_wait{}()); };
    auto canceller = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(5ms);
        stop.request_stop();
    };
    coev::spawn_options opts;
    opts.stop = stop.get_token();
    coev::spawn(loop, t(), std::move(opts));
    coev::spawn(loop, canceller());
    watchdog wd(loop, 5s);
    loop.run();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK_FALSE(wd.fired());
}

// Regression: with_timeout (and when_any, when_all) take their awaitables by value, and the
// notifier, signal and join awaiters could not be moved, so none of these compiled.
TEST_CASE("with_timeout and when_any take a notifier wait, a signal wait and a join") {
    const coev::loop_config virtual_time{.clock = coev::clock_mode::auto_advance};
    coev::notifier note;
    SUBCASE("a notifier wait times out, or ends in time") {
        auto later = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(1ms);
            note.notify();
        };
        auto waits = [&](bool notified) -> coev::task<coev::result<void>> {
            if (notified) coev::spawn(*coev::event_loop::current(), later());
            co_return co_await coev::with_timeout(1s, note.wait());
        };
        auto late = coev::run(waits(false), virtual_time);
        REQUIRE_FALSE(late);
        CHECK(late.error() == std::errc::timed_out);
        CHECK_FALSE(note.waiting());  // the cancelled wait left nothing behind
        CHECK(coev::run(waits(true), virtual_time).has_value());
    }
    SUBCASE("a signal wait ends in time") {
        auto waits = []() -> coev::task<coev::result<int>> {
            coev::signal_set set{SIGUSR1};
            ::raise(SIGUSR1);
            co_return co_await coev::with_timeout(10s, set.wait());
        };
        auto got = coev::run(waits(), virtual_time);
        REQUIRE(got.has_value());
        CHECK(*got == SIGUSR1);
    }
    SUBCASE("a join times out and cancels the children") {
        bool child_cancelled = false;
        auto waits = [&]() -> coev::task<coev::result<void>> {
            coev::task_group group;
            auto child = [&]() -> coev::task<> {
                auto r = co_await coev::sleep_for(1h);
                child_cancelled = !r && r.error() == std::errc::operation_canceled;
            };
            group.spawn(child());
            co_return co_await coev::with_timeout(1s, group.join());
        };
        auto r = coev::run(waits(), virtual_time);
        REQUIRE_FALSE(r);
        CHECK(r.error() == std::errc::timed_out);
        CHECK(child_cancelled);
    }
    SUBCASE("when_any and when_all nest in with_timeout and in each other") {
        auto waits = []() -> coev::task<coev::result<std::size_t>> {
            // when_any's result is not a result<>: the value comes back, and the winner's
            // own result says it was cancelled.
            auto slow = co_await coev::with_timeout(
                1s, coev::when_any(coev::sleep_for(5s), coev::sleep_for(10s)));
            if (!slow) co_return std::size_t(99);
            auto won = std::visit([](auto& v) { return v; }, *slow);
            CHECK(won.error() == std::errc::operation_canceled);
            auto timed = co_await coev::with_timeout(
                1s, coev::when_all(coev::sleep_for(5s), coev::with_timeout(1h, coev::sleep_for(2s))));
            if (!timed) co_return std::size_t(98);
            CHECK(std::get<0>(*timed).error() == std::errc::operation_canceled);
            CHECK(std::get<1>(*timed).error() == std::errc::operation_canceled);
            auto both = co_await coev::when_any(
                coev::when_all(coev::sleep_for(1ms), coev::sleep_for(2ms)), coev::sleep_for(1h));
            co_return both.index();
        };
        auto r = coev::run(waits(), virtual_time);
        REQUIRE(r.has_value());
        CHECK(*r == 0);  // when_all of the two short sleeps won
    }
    SUBCASE("when_any of a notifier wait and a sleep") {
        auto waits = [&]() -> coev::task<std::size_t> {
            auto r = co_await coev::when_any(note.wait(), coev::sleep_for(5ms));
            co_return r.index();
        };
        CHECK(coev::run(waits(), virtual_time) == 1);  // nobody notifies: the sleep wins
        CHECK_FALSE(note.waiting());
    }
}
