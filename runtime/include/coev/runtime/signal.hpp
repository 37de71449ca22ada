// coev/runtime/signal.hpp
// signal_set: waiting for POSIX signals as a coroutine (evsignal_new in coroutine form).
// signalfd on Linux; the signal's previous disposition returns with the last set that uses it.
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/result.hpp>

#include <cstdint>
#include <initializer_list>
#include <coev/runtime/source_location.hpp>
#include <stop_token>
#include <vector>

namespace coev {

class signal_set;

namespace detail {
struct signal_wait : waiter {
    signal_wait* prev = nullptr;
    signal_wait* next = nullptr;
    signal_set* set = nullptr;  // null once the set is destroyed (waiter::loop outlives it)
    int signo = 0;
};
}  // namespace detail

/// Catches the given signals on a loop for as long as it lives. Every set that holds a signal
/// sees each delivery; a delivery nobody was waiting for is kept (once per signal, as POSIX
/// does) for the next wait(). Create and destroy it on the loop's thread.
class signal_set {
public:
    /// Uses the loop running on this thread.
    signal_set(std::initializer_list<int> signals);
    signal_set(event_loop& loop, std::initializer_list<int> signals);
    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;
    ~signal_set();

    /// Waits for a signal of the set; returns its number.
    /// Cancel: no signal is consumed.
    class [[nodiscard]] wait_awaiter {
    public:
        wait_awaiter(signal_set& s, coev::source_location where) noexcept : set_(s) {
            w_.set = &s;
            w_.loop = &s.loop();
            w_.where = where;
        }
        wait_awaiter(const wait_awaiter&) = delete;
        /// Only before it is awaited (so it can be handed to with_timeout, when_any & co).
        wait_awaiter(wait_awaiter&& o) noexcept : set_(o.set_) {
            w_.set = o.w_.set;
            w_.loop = o.w_.loop;
            w_.where = o.w_.where;
        }
        ~wait_awaiter();
        bool await_ready() noexcept;
        template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
            return arm(h, detail::base_of(h));
        }
        result<int> await_resume() noexcept;

    private:
        bool arm(std::coroutine_handle<> h, detail::promise_base* p) noexcept;
        signal_set& set_;
        detail::signal_wait w_;
        detail::stop_link stop_;
        bool armed_ = false;
    };
    wait_awaiter wait(coev::source_location where = coev::source_location::current()) noexcept {
        return {*this, where};
    }

    const std::vector<int>& signals() const noexcept { return signals_; }
    event_loop& loop() const noexcept { return loop_; }

private:
    friend class detail::signal_hub;
    event_loop& loop_;
    std::vector<int> signals_;
    std::uint64_t pending_ = 0;            // bit s-1: signal s arrived while nobody waited
    detail::signal_wait* waiters_ = nullptr;
    signal_set* next_ = nullptr;           // the hub's list of sets
};

}  // namespace coev
