// coev/runtime/when.hpp
// Running awaitables side by side: when_all waits for every one, when_any for the first and
// cancels the rest (and waits for them to finish) before it returns.
#pragma once

#include <coev/runtime/timer.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace coev {

namespace detail {

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

struct when_state {
    static constexpr std::size_t none = ~std::size_t{0};
    std::size_t remaining = 0;
    std::coroutine_handle<> parent;
    std::stop_source* stop = nullptr;  // when_any: cancels the losers
    std::size_t winner = none;
    std::exception_ptr error;

    void finished(std::size_t index, std::exception_ptr e) noexcept {
        if (winner == none) {
            winner = index;
            if (e) error = e;
            if (stop) stop->request_stop();
        } else if (e && !error && !stop) {
            error = e;  // when_all: the first exception wins
        }
    }
};

struct when_child {
    struct promise_type : promise_base {
        when_state* state = nullptr;
        std::size_t index = 0;
        when_child get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        struct final_awaiter {
            bool await_ready() noexcept { return false; }
            std::coroutine_handle<> await_suspend(
                std::coroutine_handle<promise_type> h) noexcept {
                auto& p = h.promise();
                p.state->finished(p.index, p.error);
                if (--p.state->remaining == 0) return p.state->parent;
                return std::noop_coroutine();
            }
            void await_resume() noexcept {}
        };
        final_awaiter final_suspend() noexcept { return {}; }
        void unhandled_exception() noexcept { error = std::current_exception(); }
        void return_void() noexcept {}
    };
    std::coroutine_handle<promise_type> h;
};

template <class A, class Slot> when_child run_child(A a, Slot* slot) {
    if constexpr (std::is_void_v<await_result_t<A>>) {
        co_await std::move(a);
        slot->emplace();
    } else {
        slot->emplace(co_await std::move(a));
    }
}

/// Shared machinery: owns the children, starts them, resumes the parent after the last.
template <class... A>
class when_base {
public:
    explicit when_base(A... a) : awaitables_(std::move(a)...) {}
    when_base(const when_base&) = delete;
    /// Only before it is awaited (so it can be nested in with_timeout, when_any & co).
    when_base(when_base&& o) : awaitables_(std::move(o.awaitables_)) {}
    ~when_base() {
        for (auto& c : children_)
            if (c.h) c.h.destroy();
    }

protected:
    template <class P> bool start(std::coroutine_handle<P> parent, const std::stop_token* token) {
        promise_base* pb = base_of(parent);
        state_.parent = parent;
        state_.remaining = sizeof...(A) + 1;
        make(std::index_sequence_for<A...>{});
        for (std::size_t i = 0; i < sizeof...(A); ++i) {
            auto& p = children_[i].h.promise();
            p.state = &state_;
            p.index = i;
            p.stop = token ? token : &stop_token_of(pb);
            p.priority = priority_of(pb);
        }
        for (auto& c : children_) c.h.resume();
        return --state_.remaining != 0;
    }
    template <std::size_t... I> void make(std::index_sequence<I...>) {
        ((children_[I] = run_child(std::move(std::get<I>(awaitables_)), &std::get<I>(slots_))),
         ...);
    }

    std::tuple<A...> awaitables_;
    std::tuple<std::optional<value_or_monostate<await_result_t<A>>>...> slots_;
    when_child children_[sizeof...(A)];
    when_state state_;
};

}  // namespace detail

/// Awaits every awaitable concurrently; returns a tuple of their values (std::monostate for
/// void). An exception from any is rethrown after all have finished.
template <class... A>
class [[nodiscard]] when_all : detail::when_base<A...> {
    using base = detail::when_base<A...>;

public:
    explicit when_all(A... a) : base(std::move(a)...) {}
    bool await_ready() noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) {
        return this->start(h, nullptr);
    }
    std::tuple<detail::value_or_monostate<detail::await_result_t<A>>...> await_resume() {
        if (this->state_.error) std::rethrow_exception(this->state_.error);
        return std::apply([](auto&... s) { return std::tuple{std::move(*s)...}; }, this->slots_);
    }
};
template <class... A> when_all(A...) -> when_all<A...>;

/// Awaits every awaitable concurrently until the first finishes, then cancels the others
/// through their stop tokens and waits for them. Returns the winner's value as a variant whose
/// index() says which one won. The winner's exception is rethrown.
/// Cancel: all are cancelled; the first to finish still decides the result.
template <class... A>
class [[nodiscard]] when_any : detail::when_base<A...> {
    using base = detail::when_base<A...>;

public:
    explicit when_any(A... a) : base(std::move(a)...) {}
    /// Only before it is awaited (so it can be nested in with_timeout, when_any & co).
    when_any(when_any&& o) : base(std::move(o)) {}
    bool await_ready() noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) {
        const std::stop_token& parent = detail::stop_token_of(detail::base_of(h));
        if (parent.stop_possible()) link_.emplace(parent, detail::forward_stop{&source_});
        token_ = source_.get_token();
        this->state_.stop = &source_;
        return this->start(h, &token_);
    }
    std::variant<detail::value_or_monostate<detail::await_result_t<A>>...> await_resume() {
        link_.reset();
        if (this->state_.error) std::rethrow_exception(this->state_.error);
        return pick(std::index_sequence_for<A...>{});
    }

private:
    using variant_type = std::variant<detail::value_or_monostate<detail::await_result_t<A>>...>;
    template <std::size_t... I> variant_type pick(std::index_sequence<I...>) {
        std::optional<variant_type> out;
        ((this->state_.winner == I
              ? void(out.emplace(std::in_place_index<I>, std::move(*std::get<I>(this->slots_))))
              : void()),
         ...);
        return std::move(*out);
    }
    std::stop_source source_;
    std::stop_token token_;
    std::optional<std::stop_callback<detail::forward_stop>> link_;
};
template <class... A> when_any(A...) -> when_any<A...>;

}  // namespace coev
