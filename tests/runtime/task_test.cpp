// tests/runtime/task_test.cpp
// task<T>: laziness, values and exceptions, ownership of the frame, symmetric transfer, run() and
// spawn().
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <coroutine>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

using namespace std::chrono_literals;
using coev_test::counted;

TEST_CASE("a task does not start until it is awaited") {
    bool started = false;
    auto body = [&]() -> coev::task<int> {
        started = true;
        co_return 7;
    };
    bool started_before_await = true;
    auto outer = [&]() -> coev::task<int> {
        coev::task<int> t = body();
        started_before_await = started;
        co_return co_await std::move(t);
    };
    CHECK(coev::run(outer()) == 7);
    CHECK_FALSE(started_before_await);
    CHECK(started);

    started = false;
    { auto never = body(); }
    CHECK_FALSE(started);
}

TEST_CASE("a spawned task starts only when its loop runs") {
    coev::event_loop loop;
    bool started = false;
    auto body = [&]() -> coev::task<> {
        started = true;
        co_return;
    };
    coev::spawn(loop, body());
    CHECK_FALSE(started);
    loop.run();
    CHECK(started);
}

TEST_CASE("awaiting a task returns its value, or nothing for task<void>") {
    auto answer = []() -> coev::task<int> { co_return 42; };
    bool ran = false;
    auto nothing = [&]() -> coev::task<> {
        ran = true;
        co_return;
    };
    std::string got;
    auto outer = [&]() -> coev::task<std::string> {
        int v = co_await answer();
        co_await nothing();
        co_return std::to_string(v);
    };
    got = coev::run(outer());
    CHECK(got == "42");
    CHECK(ran);
}

TEST_CASE("an exception thrown in a task reaches its awaiter") {
    auto thrower = []() -> coev::task<int> {
        throw std::runtime_error("boom");
        co_return 0;
    };
    auto void_thrower = []() -> coev::task<> {
        throw std::logic_error("void boom");
        co_return;
    };
    std::string caught, caught_void;
    auto outer = [&]() -> coev::task<int> {
        try {
            (void)co_await thrower();
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
        try {
            co_await void_thrower();
        } catch (const std::logic_error& e) {
            caught_void = e.what();
        }
        co_return 1;
    };
    CHECK(coev::run(outer()) == 1);
    CHECK(caught == "boom");
    CHECK(caught_void == "void boom");
    CHECK_THROWS_WITH_AS(coev::run(thrower()), "boom", std::runtime_error);
}

TEST_CASE("a task is move-only and can return a move-only value") {
    static_assert(!std::is_copy_constructible_v<coev::task<int>>);
    static_assert(!std::is_copy_assignable_v<coev::task<int>>);
    static_assert(std::is_nothrow_move_constructible_v<coev::task<int>>);
    static_assert(std::is_nothrow_move_assignable_v<coev::task<int>>);

    auto make = []() -> coev::task<std::unique_ptr<int>> { co_return std::make_unique<int>(5); };
    coev::task<std::unique_ptr<int>> a = make();
    CHECK(a.valid());
    coev::task<std::unique_ptr<int>> b = std::move(a);
    CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
    CHECK(b.valid());
    std::unique_ptr<int> p = coev::run(std::move(b));
    REQUIRE(p);
    CHECK(*p == 5);
}

TEST_CASE("destroying a task that has not finished frees its frame") {
    counted::made = counted::gone = 0;
    SUBCASE("never started: the parameters copied into the frame are destroyed") {
        auto takes = [](counted c) -> coev::task<> {
            (void)c;
            co_return;
        };
        {
            coev::task<> t = takes(counted{});
            CHECK(counted::live() == 1);  // the frame's copy of the parameter
        }
        CHECK(counted::live() == 0);
    }
    SUBCASE("move-assigning over a task destroys the frame it held") {
        auto takes = [](counted c) -> coev::task<> {
            (void)c;
            co_return;
        };
        coev::task<> t = takes(counted{});
        CHECK(counted::live() == 1);
        t = takes(counted{});
        CHECK(counted::live() == 1);
        t = coev::task<>{};
        CHECK(counted::live() == 0);
    }
    SUBCASE("suspended inside a nested await: both frames and their locals are destroyed") {
        auto inner = []() -> coev::task<> {
            counted local;
            co_await std::suspend_always{};
        };
        auto outer = [&]() -> coev::task<> {
            counted local;
            co_await inner();
        };
        {
            coev::task<> t = outer();
            t.handle().resume();  // runs into inner() and stops at suspend_always
            CHECK(counted::live() == 2);
            CHECK_FALSE(t.done());
        }
        CHECK(counted::live() == 0);
    }
}

namespace {
struct alignas(64) wide {  // its promise lies further into the frame than the usual 16 bytes
    int v = 0;
};
}  // namespace

TEST_CASE("a loop destroys the frames of its suspended tasks, wherever their promises lie") {
    counted::made = counted::gone = 0;
    int finished = 0;
    {
        coev::event_loop loop;
        auto usual = [&]() -> coev::task<int> {
            counted local;
            (void)co_await coev::sleep_for(1h);
            ++finished;
            co_return 1;
        };
        auto aligned = [&]() -> coev::task<wide> {
            counted local;
            (void)co_await coev::sleep_for(1h);
            ++finished;
            co_return wide{2};
        };
        auto ends = [&]() -> coev::task<wide> {
            ++finished;
            co_return wide{3};
        };
        coev::spawn(loop, usual());
        coev::spawn(loop, aligned());
        coev::spawn(loop, ends());  // ends on its own: the loop frees it then
        coev::spawn(loop, aligned(), coev::spawn_options{.priority = 0});
        loop.poll();
        CHECK(counted::live() == 3);
        CHECK(finished == 1);
    }
    CHECK(counted::live() == 0);  // ASan: each frame freed at its own start
    CHECK(finished == 1);
}

TEST_CASE("coev::run returns the task's value once the task has finished") {
    auto later = []() -> coev::task<int> {
        (void)co_await coev::sleep_for(1ms);
        co_return 42;
    };
    CHECK(coev::run(later()) == 42);
    bool done = false;
    auto void_task = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        done = true;
    };
    coev::run(void_task());
    CHECK(done);
}

TEST_CASE("coev::run throws when the task waits on something nothing will wake") {
    // A manual clock never moves by itself: the sleep cannot end.
    auto stuck = []() -> coev::task<int> {
        (void)co_await coev::sleep_for(1s);
        co_return 1;
    };
    CHECK_THROWS_AS(coev::run(stuck(), coev::loop_config{.clock = coev::clock_mode::manual}),
                    std::logic_error);
}

TEST_CASE("a spawned task runs on its own and frees its frame when it ends") {
    counted::made = counted::gone = 0;
    coev::event_loop loop;
    int finished = 0;
    auto detached = [&](counted c) -> coev::task<> {
        counted local;
        (void)c;
        (void)co_await coev::sleep_for(1ms);
        ++finished;
    };
    {
        coev::task<> t = detached(counted{});
        coev::spawn(loop, std::move(t));
        CHECK_FALSE(t.valid());  // NOLINT(bugprone-use-after-move): spawn took the frame
    }
    coev::spawn(loop, detached(counted{}));
    CHECK(counted::live() == 2);  // the two frames' parameters, still waiting to start
    loop.run();
    CHECK(finished == 2);
    CHECK(counted::live() == 0);
}

TEST_CASE("an exception escaping a spawned task goes to the loop's handler and the loop goes on") {
    coev::event_loop loop;
    std::vector<std::string> reported;
    loop.set_exception_handler([&](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            reported.emplace_back(ex.what());
        }
    });
    bool survivor_done = false;
    auto thrower = []() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        throw std::runtime_error("escaped");
    };
    auto survivor = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(20ms);
        survivor_done = true;
    };
    coev::spawn(loop, thrower());
    coev::spawn(loop, survivor());
    loop.run();
    CHECK(reported == std::vector<std::string>{"escaped"});
    CHECK(survivor_done);
}

TEST_CASE("without a handler, an exception escaping a spawned task is logged") {
    coev_test::log_capture logs(false);
    coev::event_loop loop;
    auto thrower = []() -> coev::task<> {
        throw std::runtime_error("nobody catches this");
        co_return;
    };
    bool after = false;
    auto next = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        after = true;
    };
    coev::spawn(loop, thrower());
    coev::spawn(loop, next());
    loop.run();
    CHECK(logs.contains("nobody catches this"));
    CHECK(after);
}

TEST_CASE("an awaited task inherits its awaiter's stop token") {
    coev::event_loop loop;
    std::stop_source source;
    bool child_saw_stop = false;
    coev::result<void> child_sleep;
    auto child = [&]() -> coev::task<> {
        std::stop_token tok = co_await coev::get_stop_token();
        child_sleep = co_await coev::sleep_for(10s);
        child_saw_stop = tok.stop_requested();
    };
    auto parent = [&]() -> coev::task<> { co_await child(); };
    auto stopper = [&]() -> coev::task<> {
        source.request_stop();
        co_return;
    };
    coev::spawn(loop, parent(), coev::spawn_options{.stop = source.get_token()});
    coev::spawn(loop, stopper());
    coev_test::watchdog wd(loop);
    loop.run();
    CHECK(child_sleep.error() == std::errc::operation_canceled);
    CHECK(child_saw_stop);
    CHECK_FALSE(wd.fired());
}
