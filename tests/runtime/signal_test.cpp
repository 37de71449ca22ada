// tests/runtime/signal_test.cpp
// signal_set: delivery to every set, signals kept while nobody waits, restoring the previous
// disposition, cancellation, and signals that land on another thread.
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <latch>
#include <pthread.h>
#include <sys/wait.h>
#include <thread>

using namespace std::chrono_literals;
using coev_test::watchdog;

namespace {

using sigaction_t = struct sigaction;
volatile std::sig_atomic_t usr2_calls = 0;
void count_usr2(int) { usr2_calls = usr2_calls + 1; }

/// Installs a counting SIGUSR2 handler for the scope, then puts back what was there.
class usr2_handler {
public:
    usr2_handler() {
        sigaction_t mine{};
        mine.sa_handler = &count_usr2;
        sigemptyset(&mine.sa_mask);
        ::sigaction(SIGUSR2, &mine, &previous_);
        usr2_calls = 0;
    }
    usr2_handler(const usr2_handler&) = delete;
    ~usr2_handler() { ::sigaction(SIGUSR2, &previous_, nullptr); }

private:
    sigaction_t previous_{};
};

}  // namespace

TEST_CASE("a raised signal reaches a waiter in every set that holds it") {
    coev::event_loop loop;
    coev::signal_set first(loop, {SIGUSR1});
    coev::signal_set second(loop, {SIGUSR2, SIGUSR1});
    coev::result<int> got_first, got_second;
    auto wait_on = [](coev::signal_set& set, coev::result<int>& out) -> coev::task<> {
        out = co_await set.wait();
    };
    auto raiser = []() -> coev::task<> {
        ::raise(SIGUSR1);
        co_return;
    };
    coev::spawn(loop, wait_on(first, got_first));
    coev::spawn(loop, wait_on(second, got_second));
    coev::spawn(loop, raiser());  // runs after both waits are armed
    watchdog wd(loop);
    loop.run();
    REQUIRE(got_first.has_value());
    CHECK(*got_first == SIGUSR1);
    REQUIRE(got_second.has_value());
    CHECK(*got_second == SIGUSR1);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("a signal_set made inside a task uses the running loop") {
    coev::event_loop loop;
    coev::result<int> got;
    auto t = [&]() -> coev::task<> {
        coev::signal_set set{SIGUSR1};
        ::raise(SIGUSR1);
        got = co_await set.wait();
    };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
}

TEST_CASE("a signal raised while nobody waits is kept for the next wait") {
    coev::event_loop loop;
    coev::signal_set set(loop, {SIGUSR1});
    ::raise(SIGUSR1);
    ::raise(SIGUSR1);  // coalesced, as POSIX does: one delivery is kept
    loop.poll();       // the loop reads the signal while no one waits for it
    coev::result<int> got;
    bool second_pending = true;
    auto waiter = [&]() -> coev::task<> {
        got = co_await set.wait();
        second_pending = loop.has_pending();
    };
    coev::spawn(loop, waiter());
    watchdog wd(loop);
    loop.run();
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
    CHECK_FALSE(second_pending);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("the previous handler comes back when the last set holding the signal is destroyed") {
    usr2_handler handler;
    coev::event_loop loop;
    coev::result<int> got;
    {
        coev::signal_set last(loop, {SIGUSR2});
        {
            coev::signal_set first(loop, {SIGUSR2});
            ::raise(SIGUSR2);
            CHECK(usr2_calls == 0);  // caught by the sets, not by the handler
        }
        ::raise(SIGUSR2);  // one set still holds it
        CHECK(usr2_calls == 0);
        auto waiter = [&]() -> coev::task<> { got = co_await last.wait(); };
        coev::spawn(loop, waiter());
        watchdog wd(loop);
        loop.run();
    }
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR2);
    CHECK(usr2_calls == 0);
    ::raise(SIGUSR2);  // no set left: the handler installed before them sees it
    CHECK(usr2_calls == 1);
}

TEST_CASE("a cancelled signal wait consumes no signal") {
    coev::event_loop loop;
    coev::signal_set set(loop, {SIGUSR1});
    std::stop_source stop;
    coev::result<int> cancelled, later;
    auto waiter = [&]() -> coev::task<> { cancelled = co_await set.wait(); };
    auto canceller = [&]() -> coev::task<> {
        stop.request_stop();
        co_return;
    };
    coev::spawn(loop, waiter(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(cancelled.error() == std::errc::operation_canceled);
    CHECK_FALSE(loop.has_pending());

    ::raise(SIGUSR1);
    auto next = [&]() -> coev::task<> { later = co_await set.wait(); };
    coev::spawn(loop, next());
    loop.run();
    REQUIRE(later.has_value());
    CHECK(*later == SIGUSR1);
}

TEST_CASE("a signal delivered to another thread is forwarded to the loop's thread") {
    coev::event_loop loop;
    coev::signal_set set(loop, {SIGUSR1});
    coev::result<int> got;
    auto waiter = [&]() -> coev::task<> { got = co_await set.wait(); };
    coev::spawn(loop, waiter());
    loop.poll();  // armed
    std::thread other([] {
        // This thread inherited the loop thread's mask, in which the set blocks SIGUSR1.
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        ::pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
        ::pthread_kill(::pthread_self(), SIGUSR1);
    });
    other.join();
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
}

TEST_CASE("destroying a set wakes its waiters with error::closed") {
    coev::event_loop loop;
    auto set = std::make_unique<coev::signal_set>(loop, std::initializer_list<int>{SIGUSR1});
    coev::result<int> got;
    auto waiter = [&]() -> coev::task<> { got = co_await set->wait(); };
    auto destroyer = [&]() -> coev::task<> {
        set.reset();
        co_return;
    };
    coev::spawn(loop, waiter());
    coev::spawn(loop, destroyer());
    watchdog wd(loop);
    loop.run();
    CHECK(got.error() == coev::error::closed);
    CHECK_FALSE(loop.has_pending());
}

// Regression: the waiter woken with error::closed still pointed at its destroyed set; cancelling
// or destroying it before it resumed read freed memory (ASan: heap-use-after-free).
TEST_CASE("a waiter woken by its set's destruction can be cancelled or destroyed before it runs") {
    auto loop = std::make_unique<coev::event_loop>();
    auto set = std::make_unique<coev::signal_set>(*loop, std::initializer_list<int>{SIGUSR1});
    std::stop_source stop;
    coev::result<int> got;
    bool resumed = false;
    auto waiter = [&]() -> coev::task<> {
        got = co_await set->wait();
        resumed = true;
    };
    bool cancel = true;
    SUBCASE("a stop request reaches it first") { cancel = true; }
    SUBCASE("its loop is destroyed first") { cancel = false; }
    auto destroyer = [&]() -> coev::task<> {
        set.reset();  // wakes the waiter with error::closed
        if (cancel)
            stop.request_stop();
        else
            loop->stop();
        co_return;
    };
    coev::spawn(*loop, waiter(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(*loop, destroyer());
    {
        watchdog wd(*loop);
        loop->run();
    }
    if (cancel) {
        CHECK(resumed);
        CHECK(got.error() == coev::error::closed);  // the first outcome stands
    } else {
        CHECK_FALSE(resumed);
        loop.reset();  // destroys the queued waiter's frame
    }
}

TEST_CASE("a signal_set that fails part-way undoes only what it did") {
    coev::event_loop loop;
    usr2_handler counting;
    coev::signal_set held(loop, {SIGUSR1});
    // The bad signal first: the set must not give back SIGUSR1, which `held` holds.
    CHECK_THROWS_AS(coev::signal_set(loop, {SIGKILL, SIGUSR1}), std::invalid_argument);
    // The bad signal last: SIGUSR2 was taken, then must be handed back, unblocked.
    CHECK_THROWS_AS(coev::signal_set(loop, {SIGUSR2, SIGSTOP}), std::invalid_argument);
    ::raise(SIGUSR2);
    CHECK(usr2_calls == 1);  // the previous handler has it again, at once

    // Another set rebuilds the signalfd's mask: SIGUSR1 must still be in it.
    coev::signal_set other(loop, {SIGHUP});
    coev::result<int> got;
    auto t = [&]() -> coev::task<> {
        ::raise(SIGUSR1);
        got = co_await held.wait();
    };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
}

TEST_CASE("several tasks waiting on one signal_set all wake") {
    coev::event_loop loop;
    coev::signal_set set(loop, {SIGUSR1});
    int woken = 0;
    auto waiter = [&]() -> coev::task<> {
        auto r = co_await set.wait();
        if (r && *r == SIGUSR1) ++woken;
    };
    auto raiser = []() -> coev::task<> {
        ::raise(SIGUSR1);
        co_return;
    };
    for (int i = 0; i < 3; ++i) coev::spawn(loop, waiter());
    coev::spawn(loop, raiser());  // runs after the three waits are armed
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    CHECK(woken == 3);
}

TEST_CASE("a signal still reaches one loop after another thread's set for it is gone") {
    // Two threads catch SIGUSR1, the second last; it then lets go. Deliveries must be
    // forwarded to the first, which still blocks the signal, not to the second, which no
    // longer does (it would forward the signal to itself for ever).
    std::latch first_ready(1), second_released(1), done(1);
    coev::result<int> got;
    std::thread first([&] {
        coev::event_loop loop;
        coev::signal_set set(loop, {SIGUSR1});
        auto t = [&]() -> coev::task<> {
            first_ready.count_down();
            got = co_await set.wait();
        };
        coev::spawn(loop, t());
        watchdog wd(loop);  // a lost signal ends the run without `got`
        loop.run();
    });
    first_ready.wait();
    std::thread second([&] {
        {
            coev::event_loop loop;
            coev::signal_set set(loop, {SIGUSR1});
        }  // released: this thread unblocks SIGUSR1 again
        second_released.count_down();
        done.wait();  // alive, so a wrong forward would have a thread to land on
    });
    second_released.wait();
    ::kill(::getpid(), SIGUSR1);
    first.join();
    done.count_down();
    second.join();
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
}

TEST_CASE("a signal_set made on one thread receives while its loop runs on another") {
    // The runner exists before the set, so it did not inherit a mask that blocks SIGUSR1; a
    // signalfd reads only what is pending for the process or for the thread reading it.
    std::latch go(1), waiting(1);
    coev::event_loop loop;
    std::unique_ptr<coev::signal_set> set;
    coev::result<int> got;
    bool wd_fired = false;
    std::thread runner([&] {
        go.wait();
        auto waiter = [&]() -> coev::task<> {
            waiting.count_down();
            got = co_await set->wait();
        };
        coev::spawn(loop, waiter());
        watchdog wd(loop);  // a lost signal ends the run without `got`
        loop.run();
        wd_fired = wd.fired();
    });
    set = std::make_unique<coev::signal_set>(loop, std::initializer_list<int>{SIGUSR1});
    go.count_down();
    waiting.wait();
    ::kill(::getpid(), SIGUSR1);  // to the process: whichever thread does not block it
    runner.join();
    CHECK_FALSE(wd_fired);
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
    set.reset();
}

// Regression: when one loop's set let go of a signal, the thread unblocked it although another
// loop on the same thread still held it; the forwarder then sent it back to this same thread,
// where nobody read it.
TEST_CASE("two loops on one thread: one letting go of a signal leaves the other receiving it") {
    coev::event_loop a, b;
    coev::signal_set keep(a, {SIGUSR1});
    { coev::signal_set gone(b, {SIGUSR1}); }
    coev::result<int> got = coev::error::closed;
    auto waiter = [&]() -> coev::task<> { got = co_await keep.wait(); };
    auto raiser = []() -> coev::task<> {
        ::raise(SIGUSR1);
        co_return;
    };
    coev::spawn(a, waiter());
    coev::spawn(a, raiser());
    watchdog wd(a);
    a.run();
    CHECK_FALSE(wd.fired());
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
}

// Regression: a delivery already forwarded to a loop that then let go of the signal was thrown
// away, although another loop still held it.
TEST_CASE("a signal forwarded to a loop that lets go of it reaches a loop that still holds it") {
    std::latch first_waiting(1), second_holding(1), sent(1);
    coev::result<int> got = coev::error::closed;
    bool wd_fired = false;
    std::thread first([&] {
        coev::event_loop loop;
        coev::signal_set set(loop, {SIGUSR1});
        auto w = [&]() -> coev::task<> {
            first_waiting.count_down();
            got = co_await set.wait();
        };
        coev::spawn(loop, w());
        watchdog wd(loop);
        loop.run();
        wd_fired = wd.fired();
    });
    first_waiting.wait();
    std::thread second([&] {
        coev::event_loop loop;
        {
            coev::signal_set set(loop, {SIGUSR1});  // the latest holder: forwarding goes here
            second_holding.count_down();
            sent.wait();
            std::this_thread::sleep_for(50ms);  // the forwarded signal is pending here now
        }
    });
    second_holding.wait();
    ::kill(::getpid(), SIGUSR1);  // this thread does not block it: the forwarder sends it on
    sent.count_down();
    second.join();
    first.join();
    CHECK_FALSE(wd_fired);
    REQUIRE(got.has_value());
    CHECK(*got == SIGUSR1);
}

// Regression: after fork() from a thread other than the one that blocked the set's signals,
// reinit_after_fork() pointed forwarding at the child's thread without blocking them there.
TEST_CASE("a forked child receives the signals of a set made on another thread") {
    coev::event_loop loop;
    std::unique_ptr<coev::signal_set> set;
    std::thread maker([&] {
        auto t = [&]() -> coev::task<> {
            set = std::make_unique<coev::signal_set>(std::initializer_list<int>{SIGUSR1});
            co_return;
        };
        coev::spawn(loop, t());
        loop.run();
    });
    maker.join();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::alarm(10);
        loop.reinit_after_fork();
        coev::result<int> got = coev::error::closed;
        auto w = [&]() -> coev::task<> { got = co_await set->wait(); };
        auto k = []() -> coev::task<> {
            ::kill(::getpid(), SIGUSR1);
            co_return;
        };
        coev::spawn(loop, w());
        coev::spawn(loop, k());
        loop.stop_after(5s);
        loop.run();
        ::_exit(got.has_value() && *got == SIGUSR1 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    set.reset();
}
