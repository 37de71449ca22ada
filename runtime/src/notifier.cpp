// runtime/src/notifier.cpp
#include <coev/runtime/notifier.hpp>

namespace coev {

notifier::~notifier() {
    if (waiter_) awaiter::cancel(waiter_, make_error_code(error::closed));
}

void notifier::notify() noexcept {
    awaiter::wait* w = waiter_;
    if (!w) {
        pending_ = true;
        return;
    }
    waiter_ = nullptr;
    w->owner = nullptr;
    w->loop->count_wait(-1);
    w->loop->complete(w);
}

bool notifier::awaiter::arm(std::coroutine_handle<> h, detail::promise_base* p) noexcept {
    event_loop* loop = event_loop::current();
    if (!loop) {
        w_.ec = std::make_error_code(std::errc::operation_not_permitted);
        return false;
    }
    const std::stop_token& tok = detail::stop_token_of(p);
    if (tok.stop_requested()) {
        w_.ec = std::make_error_code(std::errc::operation_canceled);
        return false;
    }
    if (n_->waiter_) {
        w_.ec = make_error_code(error::busy);
        return false;
    }
    w_.node.handle = h;
    w_.node.priority = detail::priority_of(p);
    w_.cancel = &cancel;
    w_.loop = loop;
    w_.owner = n_;
    n_->waiter_ = &w_;
    loop->count_wait(1);
    if (tok.stop_possible()) stop_.arm(tok, w_);
    return true;
}

void notifier::awaiter::cancel(detail::waiter* base, std::error_code ec) noexcept {
    auto* w = static_cast<wait*>(base);
    if (!w->owner) return;  // already notified: it resumes with success
    w->owner->waiter_ = nullptr;
    w->owner = nullptr;
    w->ec = ec;
    w->loop->count_wait(-1);
    w->loop->complete(w);
}

result<void> notifier::awaiter::await_resume() noexcept {
    stop_.disarm(w_);
    if (w_.loop) {
        if (w_.cancel_posted.load(std::memory_order_acquire)) w_.loop->retract_cancel(&w_);
        w_.loop = nullptr;
    }
    return w_.ec.code();
}

void notifier::awaiter::abandon() noexcept {
    stop_.disarm(w_);
    if (w_.cancel_posted.load(std::memory_order_acquire)) w_.loop->retract_cancel(&w_);
    if (w_.owner) {  // still waiting: deregister
        w_.owner->waiter_ = nullptr;
        w_.loop->count_wait(-1);
    } else {  // woken but never resumed: take the wake-up back
        w_.loop->unschedule(&w_.node);
    }
    w_.loop = nullptr;
}

}  // namespace coev
