// coev/runtime/detail/ready_queue.hpp
// The loop's run queue: intrusive FIFO lists of suspended coroutines, one per priority.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <utility>
#include <vector>
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
};

/// One priority's queue: woken coroutines (intrusive, allocation-free) and pending starts (an
/// array), taken in the order they were queued.
struct ready_list {
    ready_node* head = nullptr;
    ready_node** tail = &head;
    std::size_t size = 0;  // nodes; see count()
    std::vector<pending_start> starts;
    std::size_t first_start = 0;
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
        first_start = 0;
    }
    bool empty() const noexcept { return head == nullptr && first_start == starts.size(); }
    std::size_t count() const noexcept { return size + (starts.size() - first_start); }
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
    void push_start(promise_base* p, std::coroutine_handle<> h, std::stop_token token) {
        starts.push_back({p, h, std::move(token), next_seq});
        ++next_seq;
    }
    /// Whether the next to run is a pending start rather than a node.
    bool start_next() const noexcept {
        if (first_start == starts.size()) return false;
        // Wrap-safe: fewer than 2^31 entries are ever queued at once.
        return !head || std::int32_t(starts[first_start].seq - head->seq) < 0;
    }
    pending_start pop_start() noexcept {
        pending_start s = std::move(starts[first_start]);
        if (++first_start == starts.size()) {
            first_start = 0;
            // A burst's array is kept for the next one, unless it was a very large burst.
            if (starts.capacity() > (std::size_t(1) << 16)) std::vector<pending_start>().swap(starts);
            else starts.clear();
        } else if (first_start >= 1024 && 2 * first_start >= starts.size()) {
            // Tasks that keep spawning may never let the array empty: drop what was taken
            // (moving at most as many entries as were taken since the last time).
            starts.erase(starts.begin(), starts.begin() + std::ptrdiff_t(first_start));
            first_start = 0;
        }
        return s;
    }
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
