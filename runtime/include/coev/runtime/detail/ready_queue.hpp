// coev/runtime/detail/ready_queue.hpp
// The loop's run queue: intrusive FIFO lists of suspended coroutines, one per priority.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <coev/runtime/source_location.hpp>

namespace coev::detail {

/// One resumable coroutine; lives in the awaiter or promise that suspended, so queueing a
/// wake-up allocates nothing.
struct ready_node {
    ready_node* next = nullptr;
    std::coroutine_handle<> handle;
    std::uint8_t priority = 0;
};

struct ready_list {
    ready_node* head = nullptr;
    ready_node** tail = &head;
    std::size_t size = 0;

    bool empty() const noexcept { return head == nullptr; }
    void push(ready_node* n) noexcept {
        n->next = nullptr;
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
