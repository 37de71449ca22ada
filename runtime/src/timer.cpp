// runtime/src/timer.cpp
#include <coev/runtime/timer.hpp>

namespace coev {
namespace {

void fire_sleep(detail::timer_node* t) noexcept {
    auto* w = static_cast<detail::sleep_wait*>(t);
    w->ec.clear();
    w->loop->complete(w);
}

void cancel_sleep(detail::waiter* base, std::error_code ec) noexcept {
    auto* w = static_cast<detail::sleep_wait*>(base);
    if (!w->armed()) return;  // it fired already and is queued
    w->loop->timers().cancel(*w);
    w->ec = ec;
    w->loop->complete(w);
}


}  // namespace

void sleep_awaiter::release_owner(detail::sleep_wait& w) noexcept {
    if (w.owner && w.owner->active_ == &w) w.owner->active_ = nullptr;
    w.owner = nullptr;
}

bool sleep_awaiter::arm(std::coroutine_handle<> h, detail::promise_base* p) noexcept {
    event_loop* loop = event_loop::current();
    if (!loop) {
        w_.ec = std::make_error_code(std::errc::operation_not_permitted);
        return false;
    }
    if ((w_.aux & detail::sleep_wait::armed_once_bit) && w_.relative()) {
        w_.ec = std::make_error_code(std::errc::invalid_argument);
        return false;
    }
    const std::stop_token& tok = detail::stop_token_of(p);
    if (tok.stop_requested()) {
        w_.ec = std::make_error_code(std::errc::operation_canceled);
        return false;
    }
    if (w_.owner) {
        if (w_.owner->active_) {
            w_.ec = make_error_code(error::busy);
            return false;
        }
        w_.owner->active_ = &w_;
    }
    w_.aux |= detail::sleep_wait::armed_once_bit;
    w_.node.handle = h;
    w_.node.priority = detail::priority_of(p);
    w_.fire = &fire_sleep;
    w_.cancel = &cancel_sleep;
    w_.loop = loop;
    if (w_.relative()) loop->timers().add_after(w_, loop->now(), w_.deadline.time_since_epoch());
    else loop->timers().add_at(w_, w_.deadline);
    if (tok.stop_possible()) stop_.arm(tok, w_);
    return true;
}

result<void> sleep_awaiter::await_resume() noexcept {
    stop_.disarm(w_);
    if (w_.loop) {
        release_owner(w_);
        if (w_.cancel_posted.load(std::memory_order_acquire)) w_.loop->retract_cancel(&w_);
        w_.loop = nullptr;
    }
    return w_.ec.code();
}

void sleep_awaiter::abandon() noexcept {
    stop_.disarm(w_);
    release_owner(w_);
    if (w_.cancel_posted.load(std::memory_order_acquire)) w_.loop->retract_cancel(&w_);
    if (w_.armed()) w_.loop->timers().cancel(w_);
    else w_.loop->unschedule(&w_.node);
    w_.loop = nullptr;
}

bool timer::cancel() noexcept {
    detail::sleep_wait* w = active_;
    if (!w) return false;
    active_ = nullptr;
    w->owner = nullptr;  // the awaiter may outlive us
    if (!w->armed()) return false;  // it fired already; the waiter runs soon
    w->cancel(w, std::make_error_code(std::errc::operation_canceled));
    return true;
}

sleep_awaiter interval::tick(coev::source_location w) {
    event_loop* loop = event_loop::current();
    if (!loop) throw std::logic_error("interval::tick needs a running event_loop");
    const time_point now = loop->now();
    // Saturating, as sleep_for: a period of duration::max() never ticks (no wrap to the past).
    if (!next_) {
        next_ = detail::later(now, period_);
    } else {
        // From the previous deadline, not from now: lateness never accumulates. Ticks missed
        // while the task was late come due at once, one per tick() (Tokio's "burst").
        next_ = detail::later(*next_, period_);
    }
    return sleep_until(*next_, w);
}

namespace detail {

const coev::source_location* sleep_location(const timer_node& t) noexcept {
    return t.fire == &fire_sleep ? &static_cast<const sleep_wait&>(t).where : nullptr;
}

void deadline_guard::fire(timer_node* t) noexcept {
    auto* n = static_cast<node*>(t);
    n->fired = true;
    n->src->request_stop();
}

bool is_timeout_deadline(const timer_node& t) noexcept { return t.fire == &deadline_guard::fire; }

deadline_guard::deadline_guard(event_loop& loop, duration d, std::stop_source& src) noexcept
    : loop_(loop) {
    node_.src = &src;
    node_.fire = &fire;
    loop.timers().add_after(node_, loop.now(), d);
}

}  // namespace detail
}  // namespace coev
