// net/src/rate_limit.cpp
#include <coev/net/rate_limit.hpp>
#include <coev/runtime/timer.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <cstdio>

namespace coev::net {

namespace detail {

void token_bucket::configure(std::size_t rate, std::size_t burst) noexcept {
    rate_ = rate;
    // At least 4 ms' worth: a waiting task wakes on a timer, a bit over a millisecond at the
    // soonest, and takes at most a burst each time; a smaller burst caps the rate below what
    // was asked (a 4 KiB burst at 10 MiB/s gave 3.7 MiB/s).
    const std::size_t least = std::max<std::size_t>(rate / 250, 1);
    burst_ = rate == 0 ? 0 : std::max(burst ? burst : rate / 10, least);
    tokens_ = double(burst_);  // a new bucket starts full, as libevent's does
    last_.reset();
}

void token_bucket::refill(time_point now) noexcept {
    if (last_ && now > *last_) {
        const double dt = std::chrono::duration<double>(now - *last_).count();
        tokens_ = std::min(double(burst_), tokens_ + dt * double(rate_));
    }
    if (!last_ || now > *last_) last_ = now;
}

std::size_t token_bucket::want(std::size_t max, std::size_t cap) const noexcept {
    return std::max<std::size_t>(std::min({max, cap, burst_}), 1);
}

std::size_t token_bucket::enough(std::size_t want) const noexcept {
    // Ten milliseconds' worth, or less if that is all that is wanted: a read of a short line
    // need not wait for a full buffer's worth of tokens, and a drained bucket is not handed
    // out a byte at a time.
    return std::min(want, std::max<std::size_t>(std::min(rate_ / 100, burst_), 1));
}

std::size_t token_bucket::take(std::size_t max, std::size_t cap, time_point now) noexcept {
    if (!limited()) return max;
    refill(now);
    const std::size_t w = want(max, cap);
    if (tokens_ < double(enough(w))) return 0;
    const std::size_t n = std::min(w, std::size_t(tokens_));
    tokens_ -= double(n);
    return n;
}

void token_bucket::give_back(std::size_t n) noexcept {
    if (limited()) tokens_ = std::min(double(burst_), tokens_ + double(n));
}

duration token_bucket::wait_for(std::size_t max, std::size_t cap, time_point now) noexcept {
    if (!limited()) return duration::zero();
    refill(now);
    const double missing = double(enough(want(max, cap))) - tokens_;
    if (missing <= 0) return duration::zero();
    const auto d = std::chrono::duration<double>(missing / double(rate_));
    // At least a millisecond: the loop's clock is cached per iteration.
    return std::max<duration>(std::chrono::duration_cast<duration>(d) + std::chrono::microseconds(1),
                              std::chrono::milliseconds(1));
}

}  // namespace detail

void rate_limit_group::configure(const rate_limit_config& c) noexcept {
    bucket_[0].configure(c.read_rate, c.read_burst);
    bucket_[1].configure(c.write_rate, c.write_burst);
    wake_sleepers();
}

void rate_limit_group::wake_sleepers() noexcept {
    // Each wakes, works out its wait anew and, if it must, sleeps again (registering again).
    const std::vector<rate_limiter*> now = std::move(sleepers_);
    sleepers_.clear();
    for (rate_limiter* m : now) m->wake();
}

void rate_limiter::configure(const rate_limit_config& c) noexcept {
    own_[0].configure(c.read_rate, c.read_burst);
    own_[1].configure(c.write_rate, c.write_burst);
    wake();
}

void rate_limiter::wake() noexcept {
    // A wait worked out under the old limits (up to burst / rate long) would outlast them.
    for (int i = 0; i < 2; ++i) {
        if (sleeping_[i] && sleeping_[i]->pending()) {
            woken_[i] = true;
            sleeping_[i]->cancel();
        }
    }
}

task<result<void>> rate_limiter::nap(duration d) {
    coev::timer t;
    // A read and a write may both wait (a third nap, which only misuse makes, cannot be woken
    // early and just sleeps its time).
    const int i = !sleeping_[0] ? 0 : !sleeping_[1] ? 1 : -1;
    if (i >= 0) sleeping_[i] = &t;
    if (group_) group_->sleepers_.push_back(this);
    auto slept = co_await t.wait_for(std::max<duration>(d, std::chrono::milliseconds(1)));
    if (group_) {
        auto& s = group_->sleepers_;
        if (auto it = std::find(s.begin(), s.end(), this); it != s.end()) s.erase(it);
    }
    if (i < 0) co_return slept;
    sleeping_[i] = nullptr;
    if (!slept && std::exchange(woken_[i], false))
        co_return result<void>{};  // the limits changed: the caller looks again
    co_return slept;
}

void rate_limiter::join(rate_limit_group& g) noexcept {
    leave();
    group_ = &g;
    ++g.members_;
}

void rate_limiter::leave() noexcept {
    if (!group_) return;
    for (auto& q : group_->waiting_) std::erase(q, this);
    std::erase(group_->sleepers_, this);
    --group_->members_;
    rate_limit_group* g = std::exchange(group_, nullptr);
    g->wake_sleepers();  // the others' equal shares just grew
    wake();              // and this one's limits changed
}

void rate_limiter::give_back(int dir, std::size_t n) noexcept {
    if (n == 0) return;
    own_[dir].give_back(n);
    if (group_) group_->bucket_[dir].give_back(n);
}

task<result<std::size_t>> rate_limiter::acquire(int dir, std::size_t max) {
    if (max == 0) co_return std::size_t(0);
    bool queued = false;  // in the group's queue for `dir`
    for (;;) {
        event_loop* loop = event_loop::current();
        const time_point now = loop->now();
        detail::token_bucket* shared = group_ && group_->bucket_[dir].limited()
                                           ? &group_->bucket_[dir] : nullptr;
        std::size_t cap = max;
        std::deque<const rate_limiter*>* queue = nullptr;
        if (shared) {
            // A member takes at most an equal share of the group's burst at a time, and waiting
            // members are served in turn: a member served a moment ago queues behind them.
            cap = std::max<std::size_t>(shared->burst() / std::max<std::size_t>(group_->members_, 1), 1);
            queue = &group_->waiting_[dir];
        }
        // While we slept, leave() or join() may have taken our place away, or the group may
        // have stopped limiting: hold no place in a queue we are not waiting in.
        if (queued && (!queue || std::find(queue->begin(), queue->end(), this) == queue->end())) {
            if (group_ && !queue) std::erase(group_->waiting_[dir], this);
            queued = false;
        }
        std::size_t mine = own_[dir].take(max, cap, now);
        if (mine == 0) {
            // Our own limit holds us back: give up our turn meanwhile, or every member behind
            // us would wait for our bucket too.
            if (queued) std::erase(*queue, this);
            queued = false;
            auto slept = co_await nap(own_[dir].wait_for(max, cap, now));
            if (!slept) co_return slept.error();
            continue;
        }
        const bool my_turn = !queue || queue->empty() || queue->front() == this;
        if (my_turn) {
            std::size_t ours = shared ? shared->take(mine, cap, now) : mine;
            if (ours > 0) {
                if (ours < mine) own_[dir].give_back(mine - ours);
                if (queued) queue->pop_front();
                co_return ours;
            }
        }
        own_[dir].give_back(mine);
        if (queue && !queued) {
            queue->push_back(this);
            queued = true;
        }
        duration wait = shared ? shared->wait_for(max, cap, now) : duration::zero();
        auto slept = co_await nap(wait);
        if (!slept) {
            if (queued && group_) std::erase(group_->waiting_[dir], this);
            co_return slept.error();
        }
    }
}

}  // namespace coev::net
