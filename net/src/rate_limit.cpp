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
    burst_ = rate == 0 ? 0 : (burst ? burst : std::max<std::size_t>(rate / 10, 1));
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

std::size_t token_bucket::take(std::size_t max, std::size_t cap, time_point now) noexcept {
    if (!limited()) return max;
    refill(now);
    const std::size_t want = std::max<std::size_t>(std::min({max, cap, burst_}), 1);
    if (tokens_ < double(want)) return 0;
    tokens_ -= double(want);
    return want;
}

void token_bucket::give_back(std::size_t n) noexcept {
    if (limited()) tokens_ = std::min(double(burst_), tokens_ + double(n));
}

duration token_bucket::wait_for(std::size_t max, std::size_t cap, time_point now) noexcept {
    if (!limited()) return duration::zero();
    refill(now);
    const std::size_t want = std::max<std::size_t>(std::min({max, cap, burst_}), 1);
    const double missing = double(want) - tokens_;
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
}

void rate_limiter::configure(const rate_limit_config& c) noexcept {
    own_[0].configure(c.read_rate, c.read_burst);
    own_[1].configure(c.write_rate, c.write_burst);
}

void rate_limiter::join(rate_limit_group& g) noexcept {
    leave();
    group_ = &g;
    ++g.members_;
}

void rate_limiter::leave() noexcept {
    if (!group_) return;
    for (auto& q : group_->waiting_) std::erase(q, this);
    --group_->members_;
    group_ = nullptr;
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
            auto slept = co_await sleep_for(
                std::max<duration>(own_[dir].wait_for(max, cap, now), std::chrono::milliseconds(1)));
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
        auto slept = co_await sleep_for(std::max<duration>(wait, std::chrono::milliseconds(1)));
        if (!slept) {
            if (queued && group_) std::erase(group_->waiting_[dir], this);
            co_return slept.error();
        }
    }
}

}  // namespace coev::net
