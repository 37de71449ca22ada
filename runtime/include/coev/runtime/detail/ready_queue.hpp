// coev/runtime/detail/ready_queue.hpp
// The loop's run queue: intrusive FIFO lists of suspended coroutines, one per priority.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stop_token>
#include <utility>
#include <coev/runtime/source_location.hpp>

namespace coev::detail {

struct promise_base;

/// One resumable coroutine; lives in the awaiter or promise that suspended, so queueing a
/// wake-up allocates nothing.
struct ready_node {
    ready_node* next = nullptr;
    std::coroutine_handle<> handle;
    std::uint8_t priority = 0;
    std::uint32_t seq = 0;  // place in the queue's order, beside the pending starts
};

/// A spawned task the loop has not started yet. Its frame is cold when many are spawned at
/// once; what spawn() would write into it waits here, in order, until the loop starts the task
/// and can load the frames a few ahead (bench/timers spawns a million).
struct pending_start {
    promise_base* promise;
    std::coroutine_handle<> handle;
    std::stop_token token;
    std::uint32_t seq;
    bool detached;  // false: run()'s task, which run() owns
};

/// The pending starts of one priority, first in first out, in segments that double in size:
/// a burst grows the queue without copying it, and a large burst's segments are mapped with
/// huge pages (pages.hpp), a few page faults for a million spawns. One drained segment is kept
/// for the next burst.
class start_queue {
public:
    start_queue() noexcept = default;
    start_queue(const start_queue&) = delete;
    start_queue& operator=(const start_queue&) = delete;
    ~start_queue() {
        clear();
        free_segment(head_);  // an emptied small segment stays for reuse
        free_segment(spare_);
    }

    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    /// Builds the entry in place (a spawn moves its stop token once, not through copies);
    /// may throw std::bad_alloc, and nothing is queued then.
    void emplace_back(promise_base* p, std::coroutine_handle<> h, std::stop_token&& token,
                      std::uint32_t seq, bool detached) {
        if (!tail_ || tail_->end == tail_->cap) grow();
        ::new (static_cast<void*>(tail_->items() + tail_->end))
            pending_start{p, h, std::move(token), seq, detached};
        ++tail_->end;
        ++size_;
    }
    const pending_start& front() const noexcept { return head_->items()[head_->begin]; }
    pending_start& front() noexcept { return head_->items()[head_->begin]; }
    /// Ends the front entry (after its fields were used in place).
    void drop_front() noexcept {
        head_->items()[head_->begin].~pending_start();
        --size_;
        if (++head_->begin == head_->end) drop_head();
    }
    pending_start pop_front() noexcept {
        pending_start s = std::move(front());
        drop_front();
        return s;
    }
    /// The frame of the entry `k` places after the front, or null (for prefetching).
    void* frame_ahead(std::size_t k) const noexcept {
        for (const segment* g = head_; g; g = g->next) {
            std::size_t here = g->end - g->begin;
            if (k < here) return g->items()[g->begin + k].handle.address();
            k -= here;
        }
        return nullptr;
    }
    void clear() noexcept {
        while (!empty()) pop_front();
    }

private:
    struct segment {
        segment* next;
        std::size_t bytes;  // of the whole allocation
        std::size_t cap, begin, end;
        pending_start* items() noexcept { return reinterpret_cast<pending_start*>(this + 1); }
        const pending_start* items() const noexcept {
            return reinterpret_cast<const pending_start*>(this + 1);
        }
    };
    static_assert(sizeof(segment) % alignof(pending_start) == 0);
    void grow();
    void drop_head() noexcept;
    static void free_segment(segment* g) noexcept;

    segment* head_ = nullptr;
    segment* tail_ = nullptr;
    segment* spare_ = nullptr;
    std::size_t size_ = 0;
};

/// One priority's queue: woken coroutines (intrusive, allocation-free) and pending starts,
/// taken in the order they were queued.
struct ready_list {
    ready_node* head = nullptr;
    ready_node** tail = &head;
    std::size_t size = 0;  // nodes; see count()
    start_queue starts;
    std::uint32_t next_seq = 0;

    ready_list() = default;
    // `tail` may point at our own `head`: a copy would point into the original.
    ready_list(const ready_list&) = delete;
    ready_list& operator=(const ready_list&) = delete;

    /// Forgets every queued entry, in place.
    void reset() noexcept {
        head = nullptr;
        tail = &head;
        size = 0;
        starts.clear();
    }
    bool empty() const noexcept { return head == nullptr && starts.empty(); }
    std::size_t count() const noexcept { return size + starts.size(); }
    void push(ready_node* n) noexcept {
        n->next = nullptr;
        n->seq = next_seq++;
        *tail = n;
        tail = &n->next;
        ++size;
    }
    ready_node* pop() noexcept {
        ready_node* n = head;
        head = n->next;
        if (!head) tail = &head;
        --size;
        return n;
    }
    /// May throw (std::bad_alloc); nothing is queued then.
    void push_start(promise_base* p, std::coroutine_handle<> h, std::stop_token&& token,
                    bool detached) {
        starts.emplace_back(p, h, std::move(token), next_seq, detached);
        ++next_seq;
    }
    /// Whether the next to run is a pending start rather than a node.
    bool start_next() const noexcept {
        if (starts.empty()) return false;
        // Wrap-safe: fewer than 2^31 entries are ever queued at once.
        return !head || std::int32_t(starts.front().seq - head->seq) < 0;
    }
    /// The frame of the pending start `k` places after the next, or null.
    void* start_ahead(std::size_t k) const noexcept { return starts.frame_ahead(k); }
    pending_start pop_start() noexcept { return starts.pop_front(); }
    /// The next pending start, used in place; drop_start() ends it.
    pending_start& front_start() noexcept { return starts.front(); }
    void drop_start() noexcept { starts.drop_front(); }
    /// Unlinks `n` if it is queued here (rare path: a frame destroyed while queued).
    bool remove(ready_node* n) noexcept {
        for (ready_node** p = &head; *p; p = &(*p)->next) {
            if (*p == n) {
                *p = n->next;
                if (tail == &n->next) tail = p;
                --size;
                return true;
            }
        }
        return false;
    }
};

}  // namespace coev::detail
