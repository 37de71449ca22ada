// coev/net/rate_limit.hpp
// Token buckets for buffered streams (bufferevent_rate_limit): a read and a write rate per
// stream, and groups whose members share one rate fairly (bufferevent_rate_limit_group).
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/result.hpp>
#include <coev/runtime/task.hpp>
#include <coev/runtime/timer.hpp>

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

namespace coev::net {

/// Rates in bytes per second (0: unlimited); a burst is the most a bucket holds, so the most one
/// read or write may take at once (0: a tenth of a second's worth; never less than 4 ms' worth,
/// which the loop's timer wake-ups need to keep up with the rate).
struct rate_limit_config {
    std::size_t read_rate = 0;
    std::size_t read_burst = 0;
    std::size_t write_rate = 0;
    std::size_t write_burst = 0;
};

namespace detail {

/// Tokens refill continuously from the loop's clock, up to the burst.
class token_bucket {
public:
    void configure(std::size_t rate, std::size_t burst) noexcept;
    bool limited() const noexcept { return rate_ != 0; }
    /// Up to min(max, cap) tokens, as many as are there; 0 while fewer than enough() are.
    std::size_t take(std::size_t max, std::size_t cap, time_point now) noexcept;
    void give_back(std::size_t n) noexcept;
    /// How long until take() would give something.
    duration wait_for(std::size_t max, std::size_t cap, time_point now) noexcept;
    std::size_t burst() const noexcept { return burst_; }

private:
    std::size_t want(std::size_t max, std::size_t cap) const noexcept;
    std::size_t enough(std::size_t want) const noexcept;
    void refill(time_point now) noexcept;
    std::size_t rate_ = 0, burst_ = 0;
    double tokens_ = 0;
    std::optional<time_point> last_;
};

}  // namespace detail

class rate_limiter;

/// Streams that join a group share its rates: each waiting member takes at most an equal share
/// of the group's burst at a time, so none starves the others. Must outlive its members.
class rate_limit_group {
public:
    explicit rate_limit_group(const rate_limit_config& c) noexcept { configure(c); }
    rate_limit_group(const rate_limit_group&) = delete;
    rate_limit_group& operator=(const rate_limit_group&) = delete;
    /// New rates; members waiting for tokens look again at once.
    void configure(const rate_limit_config& c) noexcept;
    std::size_t members() const noexcept { return members_; }

private:
    friend class rate_limiter;
    void wake_sleepers() noexcept;
    detail::token_bucket bucket_[2];              // read, write
    std::deque<const rate_limiter*> waiting_[2];  // members waiting their turn
    std::vector<rate_limiter*> sleepers_;         // members sleeping for tokens
    std::size_t members_ = 0;
};

/// What a buffered stream holds: its own buckets and its group, if any.
class rate_limiter {
public:
    rate_limiter() noexcept = default;
    rate_limiter(rate_limiter&& o) noexcept
        : own_{o.own_[0], o.own_[1]}, group_(std::exchange(o.group_, nullptr)) {}
    rate_limiter(const rate_limiter&) = delete;
    rate_limiter& operator=(const rate_limiter&) = delete;
    ~rate_limiter() { leave(); }

    /// New rates; a task waiting for tokens looks again at once.
    void configure(const rate_limit_config& c) noexcept;
    void join(rate_limit_group& g) noexcept;
    void leave() noexcept;
    bool limited(int dir) const noexcept {
        return own_[dir].limited() || (group_ && group_->bucket_[dir].limited());
    }
    /// Waits until at least one byte may move in `dir` (0 read, 1 write); returns how many
    /// (at most `max`). Cancel: no tokens are taken.
    task<result<std::size_t>> acquire(int dir, std::size_t max);
    /// Returns tokens acquire() gave but the transfer did not use.
    void give_back(int dir, std::size_t n) noexcept;

private:
    friend class rate_limit_group;
    void wake() noexcept;
    /// Sleeps `d`, or less if the limits change meanwhile; fails only if the task is cancelled.
    task<result<void>> nap(duration d);

    detail::token_bucket own_[2];
    rate_limit_group* group_ = nullptr;
    coev::timer* sleeping_[2] = {nullptr, nullptr};  // the naps in progress
    bool woken_[2] = {false, false};
};

}  // namespace coev::net
