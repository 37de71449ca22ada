// tests/runtime/loop_test.cpp
// event_loop: run modes, stop and exit, the cached clock and its manual modes, work posted from
// other threads, priorities, fork, and the version.
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using coev_test::watchdog;

// ---- run modes ----

TEST_CASE("run() returns once nothing is pending") {
    coev::event_loop loop;
    SUBCASE("an empty loop returns at once") {
        loop.run();
        CHECK_FALSE(loop.has_pending());
    }
    SUBCASE("a loop returns after its last task ends") {
        bool done = false;
        auto sleeper = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(10ms);
            done = true;
        };
        coev::spawn(loop, sleeper());
        CHECK(loop.has_pending());
        watchdog wd(loop);
        loop.run();
        CHECK(done);
        CHECK_FALSE(loop.has_pending());
        CHECK_FALSE(wd.fired());
    }
    CHECK_FALSE(loop.got_stop());
    CHECK_FALSE(loop.got_exit());
}

TEST_CASE("run(until_stopped) keeps waiting on an empty loop until stop() is posted") {
    coev::event_loop loop;
    std::atomic<bool> first_ran{false};
    bool first_saw_pending = true;
    bool second_ran = false;
    std::thread other([&] {
        loop.post([&] {
            first_saw_pending = loop.has_pending();
            first_ran = true;
        });
        for (int i = 0; i < 10'000 && !first_ran; ++i) std::this_thread::sleep_for(1ms);
        // Give an until_empty loop every chance to return on its own before the stop arrives.
        std::this_thread::sleep_for(20ms);
        loop.post([&] {
            second_ran = true;
            loop.stop();
        });
    });
    watchdog wd(loop);
    loop.run(coev::run_mode::until_stopped);
    other.join();
    CHECK(first_ran);
    CHECK_FALSE(first_saw_pending);  // the loop really was empty in between
    CHECK(second_ran);
    CHECK(loop.got_stop());
    CHECK_FALSE(wd.fired());
}

TEST_CASE("run_once() waits for an event when nothing is ready and runs what it woke") {
    coev::event_loop loop;
    bool done = false;
    auto sleeper = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(10ms);
        done = true;
    };
    coev::spawn(loop, sleeper());
    CHECK(loop.run_once());  // starts the task, which then sleeps
    CHECK_FALSE(done);
    const auto t0 = coev::clock::now();
    CHECK_FALSE(loop.run_once());  // blocks for the timer, then runs the task to its end
    CHECK(done);
    CHECK(coev::clock::now() - t0 >= 9ms);
}

TEST_CASE("run_once() on a loop with nothing pending returns at once, as EVLOOP_ONCE does") {
    coev::event_loop loop;
    // Should it block, stop() from another thread (after far longer than a return takes)
    // ends the wait, and the elapsed time tells.
    std::atomic<bool> returned{false};
    std::thread rescuer([&] {
        for (int i = 0; i < 500 && !returned.load(); ++i) std::this_thread::sleep_for(10ms);
        if (!returned.load()) loop.stop();
    });
    const auto t0 = coev::clock::now();
    const bool pending = loop.run_once();
    returned = true;
    const auto took = coev::clock::now() - t0;
    rescuer.join();
    CHECK_FALSE(pending);
    CHECK(took < 2s);
}

TEST_CASE("poll() runs what is ready without waiting") {
    coev::event_loop loop;
    std::stop_source stop;
    bool quick_done = false;
    coev::result<void> slow_result;
    auto quick = [&]() -> coev::task<> {
        quick_done = true;
        co_return;
    };
    auto slow = [&]() -> coev::task<> { slow_result = co_await coev::sleep_for(10s); };
    coev::spawn(loop, slow(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, quick());
    const auto t0 = coev::clock::now();
    CHECK(loop.poll());
    CHECK(loop.poll());  // nothing ready: must not wait for the 10 s timer
    CHECK(coev::clock::now() - t0 < 2s);
    CHECK(quick_done);
    stop.request_stop();
    loop.run();
    CHECK(slow_result.error() == std::errc::operation_canceled);
}

TEST_CASE("stop() returns after the current task step and leaves the other ready tasks for later") {
    coev::event_loop loop;
    std::vector<std::string> order;
    auto step = [&](std::string name, bool stops) -> coev::task<> {
        order.push_back(name);
        if (stops) {
            loop.stop();
            order.push_back(name + " went on");  // the step itself runs to its next suspension
        }
        co_return;
    };
    coev::spawn(loop, step("a", true));
    coev::spawn(loop, step("b", false));
    coev::spawn(loop, step("c", false));
    loop.run();
    CHECK(order == std::vector<std::string>{"a", "a went on"});
    CHECK(loop.got_stop());
    CHECK_FALSE(loop.got_exit());
    CHECK(loop.has_pending());
    loop.run();
    CHECK(order == std::vector<std::string>{"a", "a went on", "b", "c"});
    CHECK_FALSE(loop.got_stop());
}

TEST_CASE("stop_after() runs what is already due and then returns") {
    SUBCASE("on the monotonic clock") {
        coev::event_loop loop;
        std::stop_source stop;
        bool early_done = false;
        bool late_done = false;
        auto early = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(10ms);
            early_done = true;
        };
        auto late = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(10s);
            late_done = true;
        };
        coev::spawn(loop, early());
        coev::spawn(loop, late(), coev::spawn_options{.stop = stop.get_token()});
        const auto exit_at = loop.now() + 50ms;
        loop.stop_after(50ms);
        const auto t0 = coev::clock::now();
        watchdog wd(loop);
        loop.run();
        CHECK(loop.got_exit());
        CHECK_FALSE(loop.got_stop());
        CHECK(early_done);
        CHECK_FALSE(late_done);
        CHECK(loop.now() >= exit_at);
        CHECK(coev::clock::now() - t0 < 5s);
        stop.request_stop();
        loop.run();
        CHECK(late_done);
        CHECK_FALSE(loop.got_exit());
    }
    SUBCASE("timers due at the very instant of the exit still run") {
        coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::auto_advance});
        std::vector<int> done;
        auto sleeper = [&](int id, coev::duration d) -> coev::task<> {
            (void)co_await coev::sleep_for(d);
            done.push_back(id);
        };
        loop.stop_after(10ms);
        coev::spawn(loop, sleeper(1, 10ms));
        coev::spawn(loop, sleeper(2, 10ms));
        coev::spawn(loop, sleeper(3, 20ms));
        loop.run();
        CHECK(loop.got_exit());
        CHECK(done == std::vector<int>{1, 2});
        loop.run();
        CHECK(done == std::vector<int>{1, 2, 3});
    }
}

// ---- time ----

TEST_CASE("now() is cached for the whole iteration") {
    coev::event_loop loop;
    coev::time_point before{}, after{}, wall_after{};
    auto busy = [&]() -> coev::task<> {
        before = loop.now();
        coev_test::spin_for(2ms);
        after = loop.now();
        wall_after = coev::clock::now();
        co_return;
    };
    coev::spawn(loop, busy());
    loop.run();
    CHECK(before == after);
    CHECK(wall_after - before >= 2ms);
}

TEST_CASE("update_time() refreshes the cached time") {
    coev::event_loop loop;
    coev::time_point before{}, refreshed{};
    auto busy = [&]() -> coev::task<> {
        before = loop.now();
        coev_test::spin_for(2ms);
        loop.update_time();
        refreshed = loop.now();
        co_return;
    };
    coev::spawn(loop, busy());
    loop.run();
    CHECK(refreshed - before >= 2ms);
}

TEST_CASE("precise_time makes now() read the clock on every call") {
    coev::event_loop loop(coev::loop_config{.precise_time = true});
    coev::time_point before{}, after{};
    auto busy = [&]() -> coev::task<> {
        before = loop.now();
        coev_test::spin_for(2ms);
        after = loop.now();
        co_return;
    };
    coev::spawn(loop, busy());
    loop.run();
    CHECK(after - before >= 2ms);
}

TEST_CASE("a manual clock moves only with advance(), which fires due timers without sleeping") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::manual});
    std::vector<int> fired;
    auto sleeper = [&](int id, coev::duration d) -> coev::task<> {
        (void)co_await coev::sleep_for(d);
        fired.push_back(id);
    };
    coev::spawn(loop, sleeper(2, 1h));
    coev::spawn(loop, sleeper(1, 30min));
    const auto wall0 = coev::clock::now();
    const auto t0 = loop.now();
    loop.run();  // starts both; timers on a manual clock do not keep run() waiting
    CHECK(fired.empty());
    CHECK_FALSE(loop.has_pending());
    CHECK(loop.now() == t0);
    loop.advance(30min - 1ns);
    CHECK(fired.empty());
    loop.advance(1ns);
    CHECK(fired == std::vector<int>{1});
    loop.advance(30min);
    CHECK(fired == std::vector<int>{1, 2});
    CHECK(loop.now() - t0 == 1h);
    CHECK(coev::clock::now() - wall0 < 5s);
}

// Regression: a timer armed already due (sleep_for(0ms), a late interval tick) on a manual clock
// was left armed by run() and by the advance() that woke its task, until the next advance().
TEST_CASE("on a manual clock, a timer armed already due fires without another advance()") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::manual});
    int steps = 0;
    auto zero_sleeps = [&]() -> coev::task<> {
        for (int i = 0; i < 3; ++i) {
            (void)co_await coev::sleep_for(0ms);
            ++steps;
        }
    };
    SUBCASE("run() fires it") {
        coev::spawn(loop, zero_sleeps());
        watchdog wd(loop, 5s);
        loop.run();
        CHECK_FALSE(wd.fired());
    }
    SUBCASE("the advance() that woke the task fires it") {
        auto later = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(10ms);
            co_await zero_sleeps();
        };
        coev::spawn(loop, later());
        loop.run();
        CHECK(steps == 0);
        loop.advance(10ms);
    }
    CHECK(steps == 3);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("advance() refuses a monotonic clock") {
    coev::event_loop loop;
    CHECK_THROWS_AS(loop.advance(1s), std::logic_error);
}

TEST_CASE("an auto_advance clock completes a one-hour sleep at once") {
    coev::duration slept{};
    auto sleeper = []() -> coev::task<coev::duration> {
        coev::event_loop* loop = coev::event_loop::current();
        const auto t0 = loop->now();
        (void)co_await coev::sleep_for(1h);
        co_return loop->now() - t0;
    };
    const auto wall0 = coev::clock::now();
    slept = coev::run(sleeper(), coev::loop_config{.clock = coev::clock_mode::auto_advance});
    CHECK(slept == 1h);
    CHECK(coev::clock::now() - wall0 < 5s);
}

// Regression: with an fd wait pending, an auto_advance loop blocked in the backend for good instead
// of jumping to the deadline.
TEST_CASE("an auto_advance clock jumps to a deadline while an fd wait is pending") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::auto_advance});
    auto s = coev_test::make_socket_pair();
    // A full send buffer: the fd reports nothing at all that could wake the loop by chance.
    coev_test::fill_send_buffer(s.a.get());
    coev::result<void> r;
    auto waiter = [&]() -> coev::task<> {
        r = co_await coev::wait_writable(s.a.get(), loop.now() + 1h);
    };
    coev::spawn(loop, waiter());
    watchdog wd(loop, 5s);
    loop.run();
    CHECK_FALSE(wd.fired());
    CHECK(r.error() == std::errc::timed_out);
}

// Regression: the clock jumped to time_point::max() and an endless sleep completed.
TEST_CASE("an auto_advance clock never reaches the deadline of sleep_for(duration::max())") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::auto_advance});
    std::stop_source stop;
    coev::result<void> r;
    auto sleeper = [&]() -> coev::task<> { r = co_await coev::sleep_for(coev::duration::max()); };
    coev::spawn(loop, sleeper(), {.stop = stop.get_token()});
    std::thread later([&] {
        std::this_thread::sleep_for(50ms);
        loop.post([&] { stop.request_stop(); });
    });
    watchdog wd(loop, 10s);
    loop.run();  // waits for the post, as a real clock would
    later.join();
    CHECK_FALSE(wd.fired());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK(loop.now() < coev::time_point::max());
}

// ---- posted work ----

TEST_CASE("work posted from 4 threads, 10,000 times each, all runs") {
    coev::event_loop loop;
    constexpr int threads = 4, per_thread = 10'000;
    int count = 0;
    std::vector<std::thread> posters;
    for (int t = 0; t < threads; ++t) {
        posters.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i) {
                loop.post([&] {
                    if (++count == threads * per_thread) loop.stop();
                });
            }
        });
    }
    {
        watchdog wd(loop, 30s);
        loop.run(coev::run_mode::until_stopped);
        CHECK_FALSE(wd.fired());
    }
    for (auto& t : posters) t.join();
    CHECK(count == threads * per_thread);
}

TEST_CASE("work posted from one thread runs in the order it was posted") {
    coev::event_loop loop;
    std::vector<int> order;
    std::thread poster([&] {
        for (int i = 0; i < 1000; ++i) loop.post([&order, i] { order.push_back(i); });
        loop.post([&] { loop.stop(); });
    });
    watchdog wd(loop);
    loop.run(coev::run_mode::until_stopped);
    poster.join();
    REQUIRE(order.size() == 1000);
    CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("an exception thrown by posted work goes to the exception handler") {
    coev::event_loop loop;
    int reported = 0;
    loop.set_exception_handler([&](std::exception_ptr) { ++reported; });
    bool after = false;
    loop.post([] { throw std::runtime_error("posted"); });
    loop.post([&] { after = true; });
    watchdog wd(loop);
    loop.run();
    CHECK(reported == 1);
    CHECK(after);
    CHECK_FALSE(wd.fired());
}

// ---- priorities ----

TEST_CASE("a task with a lower priority number runs first") {
    coev::event_loop loop(coev::loop_config{.priorities = 3});
    REQUIRE(loop.priorities() == 3);
    std::vector<int> order;
    auto t = [&](int p) -> coev::task<> {
        order.push_back(p);
        co_return;
    };
    for (int p : {2, 1, 0, 2, 0}) coev::spawn(loop, t(p), coev::spawn_options{.priority = p});
    loop.run();
    CHECK(order == std::vector<int>{0, 0, 1, 2, 2});
}

TEST_CASE("a task spawned without a priority runs at the middle one") {
    coev::event_loop loop(coev::loop_config{.priorities = 3});
    std::vector<std::string> order;
    auto t = [&](std::string name) -> coev::task<> {
        order.push_back(name);
        co_return;
    };
    coev::spawn(loop, t("low"), coev::spawn_options{.priority = 2});
    coev::spawn(loop, t("default"));
    coev::spawn(loop, t("high"), coev::spawn_options{.priority = 0});
    coev::spawn(loop, t("clamped"), coev::spawn_options{.priority = 99});
    loop.run();
    CHECK(order == std::vector<std::string>{"high", "default", "low", "clamped"});
}

namespace {

// Puts the calling task straight back on the run queue, at its own priority.
struct requeue {
    coev::event_loop& loop;
    coev::detail::ready_node node;
    bool await_ready() noexcept { return false; }
    template <class P> void await_suspend(std::coroutine_handle<P> h) noexcept {
        node.handle = h;
        node.priority = coev::detail::priority_of(coev::detail::base_of(h));
        loop.schedule(&node);
    }
    void await_resume() noexcept {}
};

}  // namespace

// libevent runs only the most urgent non-empty priority per iteration, so an event that is always
// active starves the others. coev does the same; unlike libevent it runs only what was queued when
// the batch began, so the self-requeueing task still lets the loop poll between its steps.
TEST_CASE("a busy high-priority task starves lower priorities, as in libevent") {
    coev::event_loop loop(coev::loop_config{.priorities = 3});
    enum { by_zero_sleep, by_requeue } how = by_zero_sleep;
    SUBCASE("re-queued by sleep_for(0ms)") { how = by_zero_sleep; }
    SUBCASE("re-queued on the run queue") { how = by_requeue; }
    constexpr int steps = 1000;
    bool low_ran = false;
    int low_seen_at_step = -1;
    auto high = [&]() -> coev::task<> {
        for (int i = 0; i < steps; ++i) {
            if (low_ran && low_seen_at_step < 0) low_seen_at_step = i;
            if (how == by_zero_sleep)
                (void)co_await coev::sleep_for(0ms);
            else
                co_await requeue{loop, {}};
        }
    };
    auto low = [&]() -> coev::task<> {
        low_ran = true;
        co_return;
    };
    coev::spawn(loop, low(), coev::spawn_options{.priority = 2});
    coev::spawn(loop, high(), coev::spawn_options{.priority = 0});
    const auto iterations_before = loop.counters().iterations;
    loop.run();
    CHECK(low_ran);
    CHECK(low_seen_at_step == -1);  // low ran only once high was done
    CHECK(loop.counters().iterations - iterations_before >= std::uint64_t(steps));
}

namespace {

// Parks the calling task until the test queues its node by hand.
struct parked {
    coev::detail::ready_node node;
    bool await_ready() noexcept { return false; }
    template <class P> void await_suspend(std::coroutine_handle<P> h) noexcept {
        node.handle = h;
        node.priority = coev::detail::priority_of(coev::detail::base_of(h));
    }
    void await_resume() noexcept {}
};

}  // namespace

// Spawned tasks wait outside their frames until they start (bench/timers); they still take
// their turn in the one order of the run queue, between the wake-ups queued around them.
TEST_CASE("spawned and woken tasks of one priority run in the order they were queued") {
    coev::event_loop loop;
    std::vector<std::string> order;
    parked p1, p2;
    auto sleeper = [&](parked& p, std::string name) -> coev::task<> {
        co_await p;
        order.push_back(name);
    };
    auto step = [&](std::string name) -> coev::task<> {
        order.push_back(name);
        co_return;
    };
    coev::spawn(loop, sleeper(p1, "woken 1"));
    coev::spawn(loop, sleeper(p2, "woken 2"));
    loop.poll();  // both are parked
    REQUIRE(order.empty());
    coev::spawn(loop, step("spawned 1"));
    loop.schedule(&p1.node);
    coev::spawn(loop, step("spawned 2"));
    coev::spawn(loop, step("spawned 3"));
    loop.schedule(&p2.node);
    coev::spawn(loop, step("spawned 4"));
    loop.run();
    CHECK(order == std::vector<std::string>{"spawned 1", "woken 1", "spawned 2", "spawned 3",
                                            "woken 2", "spawned 4"});
}

TEST_CASE("a loop destroyed before its spawned tasks start destroys them, never running them") {
    int destroyed = 0;
    bool ran = false;
    struct guard {
        int* count;
        explicit guard(int* c) : count(c) {}
        guard(guard&& o) noexcept : count(std::exchange(o.count, nullptr)) {}
        ~guard() {
            if (count) ++*count;
        }
    };
    auto t = [&ran](guard) -> coev::task<> {
        ran = true;
        co_return;
    };
    {
        coev::event_loop loop(coev::loop_config{.priorities = 3});
        for (int p : {0, 1, 2, 1}) coev::spawn(loop, t(guard(&destroyed)), {.priority = p});
        CHECK(loop.has_pending());
        CHECK(destroyed == 0);
    }
    CHECK(destroyed == 4);
    CHECK_FALSE(ran);
}

namespace {

int live_probes = 0;  // parameters of frames spawned while a loop is being destroyed
struct probe {
    bool owns = true;
    probe() { ++live_probes; }
    probe(probe&& o) noexcept : owns(std::exchange(o.owns, false)) {}
    ~probe() {
        if (owns) --live_probes;
    }
};
coev::task<> leaf(probe) { co_return; }

// Spawns onto its loop when destroyed.
struct spawner {
    coev::event_loop* loop;
    bool owns = true;
    explicit spawner(coev::event_loop* l) : loop(l) {}
    spawner(spawner&& o) noexcept : loop(o.loop), owns(std::exchange(o.owns, false)) {}
    ~spawner() {
        if (owns) coev::spawn(*loop, leaf(probe{}));
    }
};
coev::task<> unstarted_spawner(spawner) { co_return; }

struct forever {
    bool await_ready() noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) noexcept {}
    void await_resume() noexcept {}
};
coev::task<> suspended_spawner(coev::event_loop* l) {
    spawner s(l);
    co_await forever{};
}

}  // namespace

TEST_CASE("a task spawned by a destructor that the loop's destruction runs is destroyed too") {
    live_probes = 0;
    SUBCASE("from a parameter of a task that never started") {
        coev::event_loop loop;
        coev::spawn(loop, unstarted_spawner(spawner(&loop)));
    }
    SUBCASE("from a local of a suspended task") {
        coev::event_loop loop;
        coev::spawn(loop, suspended_spawner(&loop));
        loop.poll();
    }
    CHECK(live_probes == 0);
}

TEST_CASE("a wake-up queued by a destructor that the loop's destruction runs is harmless") {
    // The run queue was reset to a copy of a temporary, and the wake-up written through a
    // pointer into the destructor's dead stack (ASan: stack-use-after-scope).
    coev::notifier note;
    struct notify_on_exit {
        coev::notifier* n;
        ~notify_on_exit() { n->notify(); }
    };
    auto waiter = [&]() -> coev::task<> {
        auto r = co_await note.wait();
        (void)r;
    };
    auto holder = [&]() -> coev::task<> {
        notify_on_exit g{&note};
        co_await forever{};
    };
    {
        coev::event_loop loop;
        coev::spawn(loop, waiter());
        coev::spawn(loop, holder());
        loop.poll();
    }  // fails only under the sanitizer build, which CI runs
}

TEST_CASE("spawning an empty (moved-from) task throws std::invalid_argument") {
    coev::event_loop loop;
    coev::task<> empty;
    CHECK_THROWS_AS(coev::spawn(loop, std::move(empty)), std::invalid_argument);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("a task woken at a more urgent priority runs before the rest of the current batch") {
    coev::event_loop loop(coev::loop_config{.priorities = 3});
    std::vector<std::string> order;
    std::stop_source wake;
    auto urgent = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(10s);
        order.push_back("urgent");
    };
    auto step = [&](std::string name, bool wakes) -> coev::task<> {
        order.push_back(name);
        if (wakes) wake.request_stop();
        co_return;
    };
    coev::spawn(loop, urgent(), coev::spawn_options{.stop = wake.get_token(), .priority = 0});
    loop.poll();  // urgent is now asleep
    coev::spawn(loop, step("a", true), coev::spawn_options{.priority = 2});
    coev::spawn(loop, step("b", false), coev::spawn_options{.priority = 2});
    coev::spawn(loop, step("c", false), coev::spawn_options{.priority = 2});
    watchdog wd(loop);
    loop.run();
    CHECK(order == std::vector<std::string>{"a", "urgent", "b", "c"});
}

// ---- the loop itself ----

TEST_CASE("event_loop::current() is the running loop, and null outside it") {
    coev::event_loop loop;
    CHECK(coev::event_loop::current() == nullptr);
    coev::event_loop* seen = nullptr;
    auto t = [&]() -> coev::task<> {
        seen = coev::event_loop::current();
        co_return;
    };
    coev::spawn(loop, t());
    loop.run();
    CHECK(seen == &loop);
    CHECK(coev::event_loop::current() == nullptr);
}

TEST_CASE("the loop uses a supported backend, the one COEV_BACKEND names if set") {
    coev::event_loop loop;
    const auto all = coev::supported_backends();
    CHECK(std::find(all.begin(), all.end(), loop.backend_name()) != all.end());
    const char* env = std::getenv("COEV_BACKEND");
    if (!env || !*env) return;
    // A kernel may refuse io_uring (sysctl, seccomp): the loop then falls back, and says so.
    if (std::string_view(env) == "io_uring") {
        coev::loop_config only_uring;
        only_uring.require = coev::backend_feature::completion;
        try {
            coev::event_loop probe(only_uring);
        } catch (const std::system_error&) {
            CHECK(loop.backend_name() != "io_uring");
            return;
        }
    }
    CHECK(loop.backend_name() == std::string_view(env));
}

TEST_CASE("reinit_after_fork() gives a forked child a working loop") {
    coev::event_loop loop;
    auto inherited = coev_test::make_socket_pair();
    bool inherited_done = false;
    auto inherited_wait = [&]() -> coev::task<> {
        auto r = co_await coev::wait_readable(inherited.a.get());
        inherited_done = r.has_value();
    };
    coev::spawn(loop, inherited_wait());
    loop.poll();  // the wait is armed with the backend before the fork
    REQUIRE(loop.has_pending());

    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child: no doctest here, the exit code carries the outcome.
        ::alarm(10);  // a hang kills the child, and the parent sees it
        loop.reinit_after_fork();
        auto fresh = coev_test::make_socket_pair();
        bool timer_ok = false, fresh_ok = false;
        auto timer = [&]() -> coev::task<> {
            timer_ok = (co_await coev::sleep_for(5ms)).has_value();
        };
        auto fresh_wait = [&]() -> coev::task<> {
            fresh_ok = (co_await coev::wait_readable(fresh.a.get(), loop.now() + 5s)).has_value();
        };
        auto writer = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(1ms);
            coev_test::send_now(fresh.b.get(), "f");
            coev_test::send_now(inherited.b.get(), "i");
        };
        coev::spawn(loop, timer());
        coev::spawn(loop, fresh_wait());
        coev::spawn(loop, writer());
        loop.run();
        ::_exit((timer_ok ? 0 : 1) | (fresh_ok ? 0 : 2) | (inherited_done ? 0 : 4));
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // The parent's loop was left alone by the child's: its own wait still completes.
    coev_test::send_now(inherited.b.get(), "p");
    watchdog wd(loop);
    loop.run();
    CHECK(inherited_done);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("version() matches the version in the headers") {
    CHECK(coev::version() == COEV_VERSION_STRING);
    CHECK(coev::version_number() == std::uint32_t(COEV_VERSION_NUMBER));
    CHECK(COEV_VERSION_NUMBER ==
          ((COEV_VERSION_MAJOR << 24) | (COEV_VERSION_MINOR << 16) | (COEV_VERSION_PATCH << 8)));
}

TEST_CASE("a loop made on one thread and run on another sees the fds its tasks close") {
    // The close must reach the loop even though the closing thread did not create it: else
    // the loop keeps the old fd's state, and a new socket given the same number is never
    // watched (its read would wait for good).
    coev::event_loop loop;
    std::error_code first, second;
    auto t = [&]() -> coev::task<> {
        for (std::error_code* out : {&first, &second}) {
            auto s = coev_test::make_socket_pair();
            auto reader = [&]() -> coev::task<coev::result<std::size_t>> {
                std::byte buf[16];
                co_return co_await coev::with_timeout(5s, coev::read_some(s.a.get(), buf));
            };
            auto writer = [&]() -> coev::task<> {
                (void)co_await coev::sleep_for(10ms);  // the read waits first
                coev_test::send_now(s.b.get(), "x");
            };
            coev::task_group g;
            g.spawn(writer());
            auto r = co_await reader();
            (void)co_await g.join();
            *out = r ? std::error_code{} : r.error();
        }  // both sockets close here, on the loop's thread; the next pair reuses the numbers
    };
    coev::spawn(loop, t());
    std::thread runner([&] { loop.run(); });
    runner.join();
    CHECK_FALSE(first);
    CHECK_FALSE(second);
}

TEST_CASE("the counters count resumed task steps and time spent blocked") {
    coev::event_loop loop;
    auto t = []() -> coev::task<> {
        for (int i = 0; i < 3; ++i) (void)co_await coev::sleep_for(20ms);
    };
    coev::spawn(loop, t());
    loop.run();
    // The start and three wake-ups; the loop blocked through most of the 60 ms of sleeps.
    CHECK(loop.counters().resumed >= 4);
    CHECK(loop.counters().ns_blocked >= std::uint64_t(std::chrono::nanoseconds(30ms).count()));
}

TEST_CASE("a finished task's frame is reused for the next task of its size") {
    // Spawned, so the frames escape: clang keeps the frame of a task made and destroyed in
    // one function on the stack (coroutine allocation elision).
    auto make = []() -> coev::task<> { co_return; };
    coev::event_loop loop;
    coev::task<> a = make();
    void* const first = a.handle().address();
    coev::spawn(loop, std::move(a));
    loop.run();  // `a` ends; its frame goes back to this thread's free list
    coev::task<> b = make();
    void* const second = b.handle().address();
    coev::spawn(loop, std::move(b));
    loop.run();
    CHECK(second == first);
}

TEST_CASE("COEV_DEBUG in the environment switches debug mode on, and 0 leaves it off") {
    if (const char* expect = std::getenv("COEV_TEST_EXPECT_DEBUG")) {  // the child below
        CHECK(coev::debug_mode() == (std::string(expect) == "1"));
        return;
    }
    for (const char* value : {"1", "0"}) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            ::setenv("COEV_DEBUG", value, 1);
            ::setenv("COEV_TEST_EXPECT_DEBUG", value, 1);
            ::execl("/proc/self/exe", "runtime_tests",
                    "--test-case=COEV_DEBUG in the environment*", "--minimal", nullptr);
            ::_exit(127);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CAPTURE(value);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
}

// ---- found by an audit of the loop's clock handling ----

TEST_CASE("stop_after() called before run() counts from the call, not from the last iteration") {
    coev::event_loop loop;
    std::this_thread::sleep_for(300ms);  // the loop's cached time stays at its construction
    const auto t0 = coev::clock::now();
    loop.stop_after(200ms);
    loop.run(coev::run_mode::until_stopped);
    CHECK(loop.got_exit());
    CHECK(coev::clock::now() - t0 >= 190ms);
}

TEST_CASE("advance() after a run() ended by stop() runs what it makes due") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::manual});
    bool woke = false;
    auto sleeper = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(10ms);
        woke = true;
    };
    auto stopper = [&]() -> coev::task<> {
        coev::event_loop::current()->stop();
        co_return;
    };
    coev::spawn(loop, sleeper());
    coev::spawn(loop, stopper());
    loop.run();
    CHECK(loop.got_stop());
    loop.advance(10ms);
    CHECK(woke);
}

TEST_CASE("an idle loop on a manual clock blocks until stop() instead of spinning") {
    coev::event_loop loop(coev::loop_config{.clock = coev::clock_mode::manual});
    std::thread other([&] {
        std::this_thread::sleep_for(200ms);
        loop.stop();
    });
    loop.run(coev::run_mode::until_stopped);
    other.join();
    CHECK(loop.got_stop());
    CHECK(loop.counters().iterations < 100);  // spinning made hundreds of thousands
}

TEST_CASE("interval(duration::max()) never ticks") {
    coev::event_loop loop;
    bool ticked = false;
    auto t = [&]() -> coev::task<> {
        coev::interval never(coev::duration::max());
        auto r = co_await coev::with_timeout(100ms, never.tick());
        ticked = bool(r);
    };
    coev::spawn(loop, t());
    loop.run();
    CHECK_FALSE(ticked);
}

TEST_CASE("stop_after() returns once the tasks due with it ran, at every priority") {
    coev::event_loop loop(coev::loop_config{.priorities = 2});
    const auto at = loop.now() + 50ms;
    bool high = false, low = false;
    auto t = [&](bool& flag) -> coev::task<> {
        (void)co_await coev::sleep_until(at);
        flag = true;
    };
    coev::spawn(loop, t(high), coev::spawn_options{.priority = 0});
    coev::spawn(loop, t(low), coev::spawn_options{.priority = 1});
    loop.stop_after(50ms);
    loop.run(coev::run_mode::until_stopped);
    CHECK(loop.got_exit());
    CHECK(high);
    CHECK(low);
}

// Regression: stop() and post() from another thread set their flag first and woke the backend
// after; the loop could see the flag, return from run() and be destroyed in between (ASan:
// heap-use-after-free in wake()).
TEST_CASE("a loop destroyed as soon as another thread's stop() or post() ended its run") {
    for (const bool by_post : {false, true}) {
        CAPTURE(by_post);
        for (int i = 0; i < 300; ++i) {
            auto loop = std::make_unique<coev::event_loop>();
            std::atomic<bool> go{false};
            bool done = false;
            auto spinner = [&]() -> coev::task<> {
                go = true;
                while (!done) (void)co_await coev::sleep_for(0ms);
            };
            coev::spawn(*loop, spinner());
            coev::event_loop* l = loop.get();
            std::thread other([&go, &done, l, by_post] {
                while (!go.load()) std::this_thread::yield();
                if (by_post) {
                    l->post([&done, l] {
                        done = true;
                        l->stop();
                    });
                } else {
                    l->stop();
                }
            });
            loop->stop_after(10s);
            loop->run(coev::run_mode::until_stopped);
            done = true;
            loop.reset();  // the other thread may still be inside stop() or post()
            other.join();
        }
    }
}
