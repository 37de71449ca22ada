// tests/runtime/structure_test.cpp
// Structured concurrency: when_all, when_any and task_group, and how they cancel.
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using coev_test::watchdog;

TEST_CASE("when_all returns the value of every awaitable") {
    auto number = [](int v, coev::duration d) -> coev::task<int> {
        (void)co_await coev::sleep_for(d);
        co_return v;
    };
    auto text = []() -> coev::task<std::string> {
        (void)co_await coev::sleep_for(1ms);
        co_return "two";
    };
    bool void_ran = false;
    auto nothing = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(2ms);
        void_ran = true;
    };
    auto outer = [&]() -> coev::task<std::tuple<int, std::string, std::monostate, int>> {
        co_return co_await coev::when_all(number(1, 5ms), text(), nothing(), number(4, 0ms));
    };
    auto [one, two, three, four] = coev::run(outer());
    CHECK(one == 1);
    CHECK(two == "two");
    CHECK(void_ran);
    CHECK(four == 4);
    (void)three;
}

TEST_CASE("when_all rethrows an exception once every awaitable has finished") {
    bool slow_done = false;
    auto thrower = []() -> coev::task<int> {
        (void)co_await coev::sleep_for(1ms);
        throw std::runtime_error("first");
    };
    auto slow = [&]() -> coev::task<int> {
        (void)co_await coev::sleep_for(20ms);
        slow_done = true;
        co_return 2;
    };
    std::string caught;
    bool slow_done_when_caught = false;
    auto outer = [&]() -> coev::task<> {
        try {
            (void)co_await coev::when_all(thrower(), slow());
        } catch (const std::runtime_error& e) {
            caught = e.what();
            slow_done_when_caught = slow_done;
        }
    };
    coev::run(outer());
    CHECK(caught == "first");
    CHECK(slow_done_when_caught);
}

TEST_CASE("when_any returns the first value and cancels the others before it returns") {
    coev::event_loop loop;
    std::error_code loser_saw;
    bool loser_done_at_return = false;
    bool loser_done = false;
    std::variant<int, int> won;
    coev::duration took{};
    auto loser = [&]() -> coev::task<int> {
        auto r = co_await coev::sleep_for(10s);
        loser_saw = r.error();
        loser_done = true;
        co_return -1;
    };
    auto winner = [&]() -> coev::task<int> {
        (void)co_await coev::sleep_for(5ms);
        co_return 42;
    };
    auto outer = [&]() -> coev::task<> {
        const auto t0 = coev::clock::now();
        won = co_await coev::when_any(loser(), winner());
        took = coev::clock::now() - t0;
        loser_done_at_return = loser_done;
    };
    coev::spawn(loop, outer());
    watchdog wd(loop);
    loop.run();
    REQUIRE(won.index() == 1);
    CHECK(std::get<1>(won) == 42);
    CHECK(loser_done_at_return);
    CHECK(loser_saw == std::errc::operation_canceled);
    CHECK(took < 5s);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("when_any of awaitables that do not all return values reports the winner's index") {
    auto sleeper = [](coev::duration d) -> coev::task<> { (void)co_await coev::sleep_for(d); };
    auto outer = [&]() -> coev::task<std::size_t> {
        auto v = co_await coev::when_any(sleeper(10s), sleeper(10s), sleeper(1ms));
        co_return v.index();
    };
    const auto t0 = coev::clock::now();
    CHECK(coev::run(outer()) == 2);
    CHECK(coev::clock::now() - t0 < 5s);
}

TEST_CASE("task_group join waits for every child") {
    std::vector<int> finished;
    auto child = [&](int id, coev::duration d) -> coev::task<> {
        (void)co_await coev::sleep_for(d);
        finished.push_back(id);
    };
    std::size_t finished_at_join = 0;
    coev::result<void> joined;
    auto outer = [&]() -> coev::task<> {
        coev::task_group group;
        group.spawn(child(1, 15ms));
        group.spawn(child(2, 5ms));
        group.spawn(child(3, 10ms));
        joined = co_await group.join();
        finished_at_join = finished.size();
    };
    coev::run(outer());
    CHECK(joined.has_value());
    CHECK(finished_at_join == 3);
    CHECK(finished == std::vector<int>{2, 3, 1});
}

TEST_CASE("a child's exception cancels its siblings and join rethrows it") {
    std::error_code sibling_saw;
    bool sibling_done_at_join = false;
    bool sibling_done = false;
    auto thrower = []() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        throw std::runtime_error("child failed");
    };
    auto sibling = [&]() -> coev::task<> {
        auto r = co_await coev::sleep_for(10s);
        sibling_saw = r.error();
        sibling_done = true;
    };
    std::string caught;
    auto outer = [&]() -> coev::task<> {
        coev::task_group group;
        group.spawn(sibling());
        group.spawn(thrower());
        try {
            (void)co_await group.join();
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
        sibling_done_at_join = sibling_done;
    };
    const auto t0 = coev::clock::now();
    coev::run(outer());
    CHECK(caught == "child failed");
    CHECK(sibling_done_at_join);
    CHECK(sibling_saw == std::errc::operation_canceled);
    CHECK(coev::clock::now() - t0 < 5s);
}

TEST_CASE("a child's error result cancels its siblings and join returns it") {
    std::error_code sibling_saw;
    auto failing = []() -> coev::task<coev::result<void>> {
        (void)co_await coev::sleep_for(1ms);
        co_return std::errc::connection_reset;
    };
    auto sibling = [&]() -> coev::task<coev::result<void>> {
        auto r = co_await coev::sleep_for(10s);
        sibling_saw = r.error();
        co_return r;
    };
    coev::result<void> joined;
    auto outer = [&]() -> coev::task<> {
        coev::task_group group;
        group.spawn(sibling());
        group.spawn(failing());
        joined = co_await group.join();
    };
    const auto t0 = coev::clock::now();
    coev::run(outer());
    CHECK(joined.error() == std::errc::connection_reset);  // the first error, not the cancel
    CHECK(sibling_saw == std::errc::operation_canceled);
    CHECK(coev::clock::now() - t0 < 5s);
}

TEST_CASE("request_stop cancels every child of a task_group") {
    int cancelled = 0;
    auto child = [&]() -> coev::task<> {
        auto r = co_await coev::sleep_for(10s);
        if (r.error() == std::errc::operation_canceled) ++cancelled;
    };
    coev::result<void> joined;
    std::size_t size_before = 0;
    auto outer = [&]() -> coev::task<> {
        coev::task_group group;
        for (int i = 0; i < 3; ++i) group.spawn(child());
        size_before = group.size();
        (void)co_await coev::sleep_for(1ms);
        group.request_stop();
        joined = co_await group.join();
    };
    const auto t0 = coev::clock::now();
    coev::run(outer());
    CHECK(size_before == 3);
    CHECK(cancelled == 3);
    CHECK(joined.has_value());  // being cancelled on request is not a failure
    CHECK(coev::clock::now() - t0 < 5s);
}

TEST_CASE("cancelling the task that joins a group cancels the children") {
    coev::event_loop loop;
    std::stop_source stop;
    int cancelled = 0;
    auto child = [&]() -> coev::task<> {
        auto r = co_await coev::sleep_for(10s);
        if (r.error() == std::errc::operation_canceled) ++cancelled;
    };
    bool joined = false;
    coev::result<void> join_result;
    auto outer = [&]() -> coev::task<> {
        coev::task_group group;
        group.spawn(child());
        group.spawn(child());
        join_result = co_await group.join();
        joined = true;
    };
    auto canceller = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        stop.request_stop();
    };
    coev::spawn(loop, outer(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(joined);
    CHECK(cancelled == 2);
    CHECK_FALSE(wd.fired());
    REQUIRE_FALSE(join_result);  // a cancelled wait says so, as every other wait does
    CHECK(join_result.error() == std::errc::operation_canceled);
}

TEST_CASE("a notifier wakes its waiter through the loop and keeps one pending wake-up") {
    coev::event_loop loop;
    watchdog dog(loop);
    coev::notifier n;
    std::vector<std::string> order;
    auto waiter = [&]() -> coev::task<> {
        auto r = co_await n.wait();
        REQUIRE(r);
        order.push_back("woken");
        auto pending = co_await n.wait();  // notified while we slept: no suspension needed
        REQUIRE(pending);
        order.push_back("pending");
    };
    auto notifier = [&]() -> coev::task<> {
        n.notify();
        order.push_back("notified");  // the waiter runs later, from the run queue
        (void)co_await coev::sleep_for(1ms);
        n.notify();
        n.notify();  // a second wake-up folds into the pending one
    };
    coev::spawn(loop, waiter());
    coev::spawn(loop, notifier());
    loop.run();
    CHECK(order == std::vector<std::string>{"notified", "woken", "pending"});
}

TEST_CASE("a cancelled notifier wait leaves nothing registered") {
    coev::event_loop loop;
    watchdog dog(loop);
    coev::notifier n;
    std::stop_source stop;
    std::error_code got;
    auto victim = [&]() -> coev::task<> {
        auto r = co_await n.wait();
        got = r.error();
    };
    auto canceller = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        CHECK(n.waiting());
        stop.request_stop();
        CHECK_FALSE(n.waiting());
    };
    coev::spawn(loop, victim(), {.stop = stop.get_token()});
    coev::spawn(loop, canceller());
    loop.run();  // returns: the cancelled wait no longer counts as pending
    CHECK(got == std::errc::operation_canceled);
    CHECK_FALSE(n.waiting());
}

#if defined(__SANITIZE_ADDRESS__)
#define COEV_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COEV_TEST_ASAN 1
#endif
#endif

#ifndef COEV_TEST_ASAN  // ASan's shadow memory does not fit under an address-space limit
TEST_CASE("waits whose stop callbacks find no memory end with not_enough_memory; the rest go on") {
    // In a child process: every task's frame is made and its start queued, then the address
    // space is capped just above what is in use, so the loop's stop pool cannot grow while
    // the tasks arm their waits.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::alarm(60);  // a wait left armed without its callback would hang the run below
        constexpr std::size_t tasks = 200'000;  // slots for 9.6 MB: more than the cap allows
        coev::event_loop loop;
        std::vector<coev::notifier> notifiers(tasks);
        std::vector<std::stop_source> stops(tasks);
        std::size_t no_memory = 0, cancelled = 0, other = 0;
        auto waiter = [&](coev::notifier& n) -> coev::task<> {
            auto r = co_await n.wait();
            if (r.error() == std::errc::not_enough_memory) ++no_memory;
            else if (r.error() == std::errc::operation_canceled) ++cancelled;
            else ++other;
        };
        for (std::size_t i = 0; i < tasks; ++i)
            coev::spawn(loop, waiter(notifiers[i]), {.stop = stops[i].get_token()});
        rlimit saved{};
        ::getrlimit(RLIMIT_AS, &saved);
        long pages = 0;
        if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
            if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
            std::fclose(f);
        }
        if (pages == 0) ::_exit(3);
        rlimit cap = saved;
        cap.rlim_cur = rlim_t(pages) * rlim_t(::sysconf(_SC_PAGESIZE)) + (rlim_t(1) << 20);
        if (::setrlimit(RLIMIT_AS, &cap) != 0) ::_exit(4);
        loop.poll();  // every task arms its wait; the pool runs out part way
        ::setrlimit(RLIMIT_AS, &saved);
        const std::size_t armed = tasks - no_memory;
        for (auto& s : stops) s.request_stop();  // the ones that got a slot end cancelled
        loop.run();
        const bool ok = no_memory > 0 && armed > 0 && no_memory + cancelled == tasks &&
                        other == 0;
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
#endif

TEST_CASE("a second task joining a task_group while one waits gets error::busy") {
    coev::event_loop loop;
    watchdog wd(loop);
    coev::task_group g;
    coev::result<void> first, second;
    auto child = []() -> coev::task<> { (void)co_await coev::sleep_for(30ms); };
    auto joiner = [&](coev::result<void>& out) -> coev::task<> { out = co_await g.join(); };
    g.spawn(loop, child());
    coev::spawn(loop, joiner(first));
    coev::spawn(loop, joiner(second));  // runs while the first one waits
    loop.run();
    CHECK_FALSE(wd.fired());
    CHECK(first.has_value());
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error() == coev::error::busy);
}

TEST_CASE("awaiting an empty (moved-from) task throws std::logic_error") {
    bool threw = false;
    auto t = [&]() -> coev::task<> {
        coev::task<int> a = []() -> coev::task<int> { co_return 1; }();
        coev::task<int> b = std::move(a);
        try {
            (void)co_await std::move(a);  // NOLINT(bugprone-use-after-move): the point
        } catch (const std::logic_error&) {
            threw = true;
        }
        auto v = co_await std::move(b);
        CHECK(v == 1);
    };
    coev::run(t());
    CHECK(threw);
}

// Regression (seen by ASan): destroying a task_group while a task waited in join() deleted the
// state the joiner pointed into, and the joiner was never resumed.
TEST_CASE("a task_group destroyed while another task joins it cancels the children and resumes "
          "the joiner") {
    coev::event_loop loop;
    auto group = std::make_unique<coev::task_group>();
    bool child_cancelled = false, joined = false;
    auto child = [&]() -> coev::task<> {
        auto r = co_await coev::sleep_for(10s);
        child_cancelled = !r && r.error() == std::errc::operation_canceled;
    };
    auto joiner = [&]() -> coev::task<> {
        group->spawn(child());
        auto r = co_await group->join();
        (void)r;
        joined = true;
    };
    auto destroyer = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(5ms);
        group.reset();
    };
    coev::spawn(loop, joiner());
    coev::spawn(loop, destroyer());
    watchdog wd(loop, 5s);
    loop.run();
    CHECK(child_cancelled);
    CHECK(joined);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("run(), run_once() and poll() from a task of the same loop are refused") {
    coev::event_loop loop;
    int refused = 0;
    auto t = [&]() -> coev::task<> {
        try {
            loop.run();
        } catch (const std::logic_error&) {
            ++refused;
        }
        try {
            (void)loop.run_once();
        } catch (const std::logic_error&) {
            ++refused;
        }
        try {
            (void)loop.poll();
        } catch (const std::logic_error&) {
            ++refused;
        }
        co_return;
    };
    coev::spawn(loop, t());
    loop.run();
    CHECK(refused == 3);
}

// Regression (LeakSanitizer): a loop destroyed while a group's children were suspended freed
// their frames without letting go of the group's shared state, which then leaked.
TEST_CASE("a loop destroyed while a task_group's children wait lets go of the group") {
    auto group = std::make_unique<coev::task_group>();
    {
        coev::event_loop loop;
        auto child = []() -> coev::task<> { (void)co_await coev::sleep_for(10s); };
        group->spawn(loop, child());
        group->spawn(loop, child());
        loop.poll();  // both children reach their sleep
        CHECK(group->size() == 2);
    }  // the loop destroys the suspended children
    CHECK(group->size() == 0);
    group.reset();  // the last hold on the state: freed here
}

TEST_CASE("a loop destroyed before a task_group's children start lets go of the group") {
    auto group = std::make_unique<coev::task_group>();
    {
        coev::event_loop loop;
        auto child = []() -> coev::task<> { co_return; };
        group->spawn(loop, child());
        group->spawn(loop, child());
        CHECK(group->size() == 2);
    }  // the loop destroys the children it never started
    CHECK(group->size() == 0);
    group.reset();  // the last hold on the state: freed here (LeakSanitizer checks)
}

// Regression: the join decided it was cancelled when it resumed, so a stop that came after the
// last child had ended (the joiner queued, not yet run) turned a finished join into
// operation_canceled.
TEST_CASE("a join stopped after its last child ended still succeeds") {
    coev::event_loop loop;
    coev::task_group group;
    coev::notifier go;
    std::stop_source stop;
    auto child = [&]() -> coev::task<> {
        auto r = co_await go.wait();
        (void)r;
    };
    std::optional<coev::result<void>> joined;
    auto joiner = [&]() -> coev::task<> { joined = co_await group.join(); };
    group.spawn(loop, child());
    coev::spawn(loop, joiner(), {.stop = stop.get_token()});
    loop.poll();  // the child waits, the joiner joins
    REQUIRE_FALSE(joined);
    go.notify();  // the child ends in the next batch and queues the joiner...
    auto stopper = [&]() -> coev::task<> {
        stop.request_stop();  // ...and this runs after it in the same batch
        co_return;
    };
    coev::spawn(loop, stopper());
    loop.run();
    REQUIRE(joined);
    CHECK(joined->has_value());
}

namespace {
coev::task<> big_joiner(coev::task_group& g) {
    char big[4096];  // a frame the frame cache does not keep: ASan sees it freed
    std::memset(big, 1, sizeof big);
    auto r = co_await g.join();
    g.request_stop();  // unreached: the test destroys this frame first
    (void)r;
    (void)std::memchr(big, 2, sizeof big);
}
}  // namespace

// Regression: a join woken by its last child and destroyed before it ran (run() gives up on a
// task stopped with wake-ups queued) left its node in the run queue; the next unschedule walked
// into the freed frame (ASan: heap-use-after-free).
TEST_CASE("a join woken and destroyed before it runs leaves nothing queued") {
    auto main_task = []() -> coev::task<> {
        coev::event_loop& loop = *coev::event_loop::current();
        coev::task_group g;
        coev::notifier n;
        auto child = []() -> coev::task<> { (void)co_await coev::sleep_for(0ms); };
        auto stopper = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(0ms);
            n.notify();   // queued behind the joiner
            loop.stop();  // run() then destroys this task with both wake-ups queued
        };
        g.spawn(child());
        coev::spawn(loop, stopper());
        auto r = co_await coev::when_all(big_joiner(g), n.wait());
        (void)r;
    };
    CHECK_THROWS_AS(coev::run(main_task()), std::logic_error);
}

// Regression: nobody can join a destroyed group, and the exception of a child that failed
// after it was gone was dropped silently; a detached task's goes to the loop's handler.
TEST_CASE("an exception from a child of a destroyed task_group goes to the loop's handler") {
    coev::event_loop loop;
    int reported = 0;
    loop.set_exception_handler([&](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::runtime_error&) {
            ++reported;
        }
    });
    auto child = []() -> coev::task<> {
        (void)co_await coev::sleep_for(10s);  // cancelled when the group goes
        throw std::runtime_error("after the group");
    };
    auto body = [&]() -> coev::task<> {
        coev::task_group g;
        g.spawn(child());
        (void)co_await coev::sleep_for(0ms);  // the child waits
    };  // ~task_group cancels it
    coev::spawn(loop, body());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    CHECK(reported == 1);
}

TEST_CASE("a task_group's children run at the priority of the task that spawns them") {
    coev::event_loop loop(coev::loop_config{.priorities = 3});
    std::vector<int> seen;
    auto child = [&]() -> coev::task<> {
        seen.push_back(coev::event_loop::current()->running_priority());
        co_return;
    };
    coev::task_group outside;
    outside.spawn(loop, child());  // from outside a task: the middle priority
    auto parent = [&]() -> coev::task<> {
        coev::task_group g;
        g.spawn(child());
        auto r = co_await g.join();
        (void)r;
    };
    coev::spawn(loop, parent(), {.priority = 0});
    loop.run();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == 0);  // the urgent parent's child ran first, at the parent's priority
    CHECK(seen[1] == 1);
}
