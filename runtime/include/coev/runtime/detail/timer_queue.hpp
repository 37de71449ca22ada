// coev/runtime/detail/timer_queue.hpp
// The loop's timers: an 8-ary min-heap with O(log n) cancel, plus FIFO lists for durations that
// repeat (libevent's common timeouts), where adding and cancelling are O(1).
#pragma once

#include <coev/runtime/detail/pages.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

namespace coev::detail {

using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

struct timer_fifo;

/// now + d, held at the clock's end: duration::max() means "never", not a wrap into the past.
/// (The clock's time is never negative, so a negative d cannot pass its start.)
inline time_point later(time_point now, duration d) noexcept {
    if (d.count() > 0 &&
        now.time_since_epoch().count() > std::numeric_limits<duration::rep>::max() - d.count())
        return time_point::max();
    return now + d;
}

/// An armed deadline. Lives inside the awaiter that waits for it; `fire` runs on the loop
/// thread after the node has been unlinked, so it may re-arm it or cancel other timers.
/// 40 bytes: a million sleeping tasks carry one each (docs/benchmarks.md).
struct timer_node {
    using fire_fn = void (*)(timer_node*) noexcept;
    static constexpr std::uint32_t npos = ~std::uint32_t{0};  // not armed
    static constexpr std::uint32_t sentinel = npos - 1;       // a FIFO list's own end node
    static constexpr std::uint32_t in_fifo = npos - 2;        // armed in a FIFO list

    time_point deadline{};
    fire_fn fire = nullptr;
    timer_node* prev = nullptr;  // FIFO list links (circular, through the list's sentinel)
    timer_node* next = nullptr;
    std::uint32_t seq = 0;       // arming order, for ties; compared modulo 2^32
    std::uint32_t heap_index = npos;  // the heap slot while in the heap, or a mark above

    bool armed() const noexcept { return heap_index <= in_fifo; }
};

struct timer_fifo {
    timer_fifo() noexcept {
        end.heap_index = timer_node::sentinel;
        end.prev = end.next = &end;
    }
    timer_fifo(const timer_fifo&) = delete;
    timer_fifo& operator=(const timer_fifo&) = delete;
    bool empty() const noexcept { return end.next == &end; }
    timer_node* head() const noexcept { return end.next; }

    duration period{};
    timer_node end;    // sentinel of the circular list: end.next is the head
    timer_node proxy;  // stands in the heap for the head
};

class timer_queue {
public:
    timer_queue();
    timer_queue(const timer_queue&) = delete;
    timer_queue& operator=(const timer_queue&) = delete;

    /// Arms `n` for an absolute deadline.
    void add_at(timer_node& n, time_point deadline);
    /// Arms `n` for `now + d`; durations that repeat go to an O(1) FIFO list. `now` must never
    /// go backwards between calls (the loop's cached clock guarantees it).
    void add_after(timer_node& n, time_point now, duration d) {
        // A scattered duration (the common case without idle timeouts) goes to the heap from
        // here, inline with heap_push(): arming a sleep is then one call, the awaiter's.
        if (fifos_.empty() && d != last_period_ && !n.armed()) [[likely]] {
            last_period_ = d;
            n.deadline = later(now, d);
            n.seq = next_seq_++;
            heap_push(n);
            ++count_;
            return;
        }
        add_after_listed(n, now, d);
    }
    /// Disarms `n` if armed; never searches.
    void cancel(timer_node& n) noexcept;
    /// Unlinks and fires every timer due at `now`, earliest first, ties in arming order.
    std::size_t expire(time_point now);

    bool empty() const noexcept { return count_ == 0; }
    std::size_t size() const noexcept { return count_; }
    /// The earliest deadline; only meaningful when !empty().
    time_point next_deadline() const noexcept { return heap_.front().node->deadline; }

    /// Calls f(const timer_node&) for every armed timer (for dump()).
    template <class F> void for_each(F&& f) const {
        for (const entry& e : heap_)
            if (!is_proxy(e.node)) f(*e.node);
        for (const auto& q : fifos_)
            for (const timer_node* n = q->end.next; n != &q->end; n = n->next) f(*n);
    }

private:
    struct entry {
        std::int64_t key;  // deadline in ns, copied here so sifting rarely reads node memory
        timer_node* node;
    };
    static bool less(const entry& a, const entry& b) noexcept {
        // Equal deadlines (rare outside tests) fall back to arming order; the sequence wraps,
        // and two timers armed 2^31 arms apart never tie in practice.
        return a.key < b.key ||
               (a.key == b.key && std::int32_t(a.node->seq - b.node->seq) < 0);
    }
    static std::int64_t key_of(time_point t) noexcept { return t.time_since_epoch().count(); }
    bool is_proxy(const timer_node* n) const noexcept { return n->fire == nullptr; }

    // Children per node. Eight, not four: an insertion with a random deadline moves up about
    // 1/(arity-1) levels, and each move writes the index into the moved timer's node, a cache
    // miss in a cold frame when a million tasks sleep; sifting down after a firing also crosses
    // fewer levels, each a node write.
    static constexpr std::uint32_t arity = 8;

    void heap_push(timer_node& n) {
        const entry e{key_of(n.deadline), &n};
        auto i = static_cast<std::uint32_t>(heap_.size());
        heap_.push_back(e);
        while (i > 0) {
            const std::uint32_t parent = (i - 1) / arity;
            if (!less(e, heap_[parent])) break;
            place(i, heap_[parent]);
            i = parent;
        }
        place(i, e);
    }
    void heap_erase(std::uint32_t i) noexcept;
    void heap_update(std::uint32_t i) noexcept;  // key of entry i changed either way
    void sift_up(std::uint32_t i) noexcept;
    void sift_down(std::uint32_t i) noexcept;
    void place(std::uint32_t i, const entry& e) noexcept {
        heap_[i] = e;
        e.node->heap_index = i;
    }
    void add_after_listed(timer_node& n, time_point now, duration d);
    timer_fifo* fifo_for(duration d);
    void fifo_unlink(timer_node& n) noexcept;

    pod_vector<entry> heap_;
    std::vector<std::unique_ptr<timer_fifo>> fifos_;
    duration last_period_{-1};
    std::uint32_t next_seq_ = 0;
    std::size_t count_ = 0;
};

}  // namespace coev::detail
