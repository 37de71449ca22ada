// coev/runtime/timer.hpp
// Timers in coroutine form: sleep_for, sleep_until, interval (periodic without drift) and
// with_timeout, which puts a deadline on any awaitable and cancels it when the deadline passes.
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/result.hpp>

#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace coev {

class timer;

namespace detail {
/// Until armed, `deadline` holds what the awaiter was made with: a duration's ticks when
/// relative, else the deadline itself. Arming overwrites a duration with the deadline it
/// gives, so a relative sleep awaiter can be awaited only once (a second await fails).
struct sleep_wait : waiter, timer_node {
    static constexpr std::uint8_t relative_bit = 1, armed_once_bit = 2;  // in `aux`
    timer* owner = nullptr;  // the timer object waited on, if any
    bool relative() const noexcept { return aux & relative_bit; }
};
}  // namespace detail

/// Suspends until a deadline. Result: success, or operation_canceled when the task's stop
/// token fires first; invalid_argument when a sleep_for/wait_for awaiter is awaited a second
/// time (make a new one: its duration is gone once armed). Cancel: the timer is disarmed.
class [[nodiscard]] sleep_awaiter {
public:
    sleep_awaiter(duration d, bool relative, time_point at, coev::source_location where,
                  timer* owner = nullptr) noexcept {
        w_.deadline = relative ? time_point(d) : at;
        w_.where = where;
        w_.owner = owner;
        w_.aux = relative ? detail::sleep_wait::relative_bit : 0;
    }
    sleep_awaiter(const sleep_awaiter&) = delete;
    // Only before it is awaited (nothing is armed yet).
    sleep_awaiter(sleep_awaiter&& o) noexcept {
        w_.deadline = o.w_.deadline;
        w_.where = o.w_.where;
        w_.owner = o.w_.owner;
        w_.aux = o.w_.aux;
    }
    ~sleep_awaiter() {
        if (w_.loop) abandon();
        stop_.disarm(w_);
    }
    bool await_ready() const noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return arm(h, detail::base_of(h));
    }
    result<void> await_resume() noexcept;

private:
    bool arm(std::coroutine_handle<> h, detail::promise_base* p) noexcept;
    void abandon() noexcept;
    static void release_owner(detail::sleep_wait& w) noexcept;
    detail::sleep_wait w_;
    detail::stop_link stop_;
};

/// Waits `d` from the loop's cached now(). Equal durations share an O(1) FIFO timer list.
/// (Durations and deadlines are taken by reference: a copy would be one more temporary that a
/// coroutine keeps in its frame for the whole wait.)
inline sleep_awaiter sleep_for(
    const duration& d, coev::source_location w = coev::source_location::current()) noexcept {
    return {d, true, {}, w};
}
/// Waits until `t` on the loop's clock.
inline sleep_awaiter sleep_until(
    const time_point& t, coev::source_location w = coev::source_location::current()) noexcept {
    return {{}, false, t, w};
}

/// A timer object for waits that something else may cut short (evtimer_new / Asio's
/// steady_timer): one task waits on it at a time, and cancel() ends that wait from the loop's
/// thread without a stop token. Destroying it cancels a pending wait.
class timer {
public:
    timer() noexcept = default;
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;
    ~timer() { cancel(); }

    /// Waits `d`. Result: success, operation_canceled (cancel() or the task's stop token), or
    /// error::busy when another task already waits on this timer.
    sleep_awaiter wait_for(const duration& d,
                           coev::source_location w = coev::source_location::current()) noexcept {
        return {d, true, {}, w, this};
    }
    sleep_awaiter wait_until(const time_point& t,
                             coev::source_location w = coev::source_location::current()) noexcept {
        return {{}, false, t, w, this};
    }
    /// Ends a pending wait with operation_canceled (evtimer_del). Returns whether one was
    /// pending. Call it on the loop's thread.
    bool cancel() noexcept;
    bool pending() const noexcept { return active_ != nullptr; }

private:
    friend class sleep_awaiter;
    detail::sleep_wait* active_ = nullptr;
};

/// A periodic timer (a persistent EV_TIMEOUT event): tick n is due at start + n * period, so
/// lateness never accumulates; ticks a late task missed come due at once, in a burst.
class interval {
public:
    explicit interval(duration period) noexcept : period_(period) {}
    /// Starts counting from `start` instead of the first tick() call.
    interval(duration period, time_point start) noexcept : period_(period), next_(start) {}
    /// Waits for the next tick. Cancel: that tick is skipped; later ones keep their phase.
    sleep_awaiter tick(coev::source_location w = coev::source_location::current());
    duration period() const noexcept { return period_; }

private:
    duration period_;
    std::optional<time_point> next_;
};

namespace detail {

template <class A> decltype(auto) get_awaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); })
        return std::forward<A>(a).operator co_await();
    else
        return std::forward<A>(a);
}
template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

template <class T> struct as_result { using type = result<T>; };
template <class T> struct as_result<result<T>> { using type = result<T>; };
template <class T> using as_result_t = typename as_result<std::remove_cvref_t<T>>::type;

/// Gives a coroutine access to its own promise (no suspension).
struct this_promise_t {
    promise_base* p = nullptr;
    bool await_ready() noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        p = base_of(h);
        return false;
    }
    promise_base& await_resume() noexcept { return *p; }
};

struct forward_stop {
    std::stop_source* to;
    void operator()() noexcept { to->request_stop(); }
};

/// Arms a deadline that requests stop on `src` when it passes.
class deadline_guard {
public:
    deadline_guard(event_loop& loop, duration d, std::stop_source& src) noexcept;
    deadline_guard(const deadline_guard&) = delete;
    ~deadline_guard() { loop_.timers().cancel(node_); }
    bool fired() const noexcept { return node_.fired; }
    static void fire(timer_node* t) noexcept;

private:
    struct node : timer_node {
        std::stop_source* src = nullptr;
        bool fired = false;
    };
    event_loop& loop_;
    node node_;
};

/// Points the promise's stop token somewhere else for a scope.
class stop_redirect {
public:
    stop_redirect(promise_base& p, const std::stop_token* t) noexcept : p_(p), saved_(p.stop) {
        p.stop = t;
    }
    stop_redirect(const stop_redirect&) = delete;
    ~stop_redirect() { p_.stop = saved_; }

private:
    promise_base& p_;
    const std::stop_token* saved_;
};

}  // namespace detail

/// Awaits `a` with a deadline of `d`. On expiry `a` is cancelled through its stop token and
/// awaited to its end; the result is then std::errc::timed_out. A value that arrives anyway is
/// returned. Cancel (of the caller): `a` is cancelled, the result is operation_canceled.
template <class A>
task<detail::as_result_t<detail::await_result_t<A>>> with_timeout(duration d, A a) {
    using inner = detail::await_result_t<A>;
    using out = detail::as_result_t<inner>;
    detail::promise_base& self = co_await detail::this_promise_t{};
    event_loop* loop = event_loop::current();
    if (!loop) co_return out(std::make_error_code(std::errc::operation_not_permitted));
    std::stop_source src;
    std::optional<std::stop_callback<detail::forward_stop>> link;
    if (self.stop->stop_possible()) link.emplace(*self.stop, detail::forward_stop{&src});
    detail::deadline_guard deadline(*loop, d, src);
    const std::stop_token token = src.get_token();
    if constexpr (std::is_void_v<inner>) {
        {
            detail::stop_redirect redirect(self, &token);
            co_await std::move(a);
        }
        // A void awaitable cannot say it was cut short: a stop of the caller, or finishing
        // past the deadline, counts as one.
        if (self.stop->stop_requested())
            co_return out{std::make_error_code(std::errc::operation_canceled)};
        if (deadline.fired())
            co_return out{std::make_error_code(std::errc::timed_out)};
        co_return out{};
    } else {
        std::optional<out> r;
        {
            detail::stop_redirect redirect(self, &token);
            r.emplace(co_await std::move(a));
        }
        if constexpr (is_result_v<inner>) {
            if (!*r && r->error() == std::errc::operation_canceled && deadline.fired() &&
                !self.stop->stop_requested())
                co_return out{std::make_error_code(std::errc::timed_out)};
        }
        co_return std::move(*r);
    }
}

}  // namespace coev
