// coev/runtime/notifier.hpp
// One task waits until another task on the same loop says "something changed": the building
// block of in-memory streams and queues (a wake-up is never lost, never resumed inline).
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/result.hpp>
#include <coev/runtime/task.hpp>

#include <stop_token>

namespace coev {

/// A single-waiter wake-up. notify() with nobody waiting is remembered (one pending wake-up),
/// so "check, then wait" cannot miss a change made in between. Loop thread only.
class notifier {
public:
    notifier() noexcept = default;
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;
    ~notifier();

    class [[nodiscard]] awaiter {
    public:
        explicit awaiter(notifier& n, coev::source_location where) noexcept : n_(&n) {
            w_.where = where;
        }
        awaiter(const awaiter&) = delete;
        /// Only before it is awaited (so it can be handed to with_timeout, when_any & co).
        awaiter(awaiter&& o) noexcept : n_(o.n_) { w_.where = o.w_.where; }
        ~awaiter() {
            if (w_.loop) abandon();
            stop_.disarm(w_);
        }
        bool await_ready() noexcept { return n_->take_pending(); }
        template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
            return arm(h, detail::base_of(h));
        }
        /// Success once notified; operation_canceled, or error::busy if another task waits.
        result<void> await_resume() noexcept;

    private:
        friend class notifier;
        struct wait : detail::waiter {
            notifier* owner = nullptr;  // waiter::loop: set while armed
        };
        bool arm(std::coroutine_handle<> h, detail::promise_base* p) noexcept;
        void abandon() noexcept;
        static void cancel(detail::waiter* w, std::error_code ec) noexcept;
        notifier* n_;
        wait w_;
        detail::stop_link stop_;
    };

    /// Waits for the next notify() (or takes a pending one at once).
    /// Cancel: nothing stays registered; a later notify() is kept as pending.
    awaiter wait(coev::source_location where = coev::source_location::current()) noexcept {
        return awaiter(*this, where);
    }
    /// Wakes the waiter through the loop's run queue, or leaves one pending wake-up.
    void notify() noexcept;
    bool waiting() const noexcept { return waiter_ != nullptr; }

private:
    bool take_pending() noexcept {
        const bool p = pending_;
        pending_ = false;
        return p;
    }
    awaiter::wait* waiter_ = nullptr;
    bool pending_ = false;
};

}  // namespace coev
