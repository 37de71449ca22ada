// coev/runtime/detail/timer_queue.hpp
// The loop's timers: a 4-ary min-heap with O(log n) cancel, plus FIFO lists for durations that
// repeat (libevent's common timeouts), where adding and cancelling are O(1).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace coev::detail {

using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

struct timer_fifo;

/// now + d, held at the clock's end: duration::max() means "never", not a wrap into the past.
/// (The clock's time is never negative, so a negative d cannot pass its start.)
time_point later(time_point now, duration d) noexcept;

/// A growable array of a trivially copyable T on malloc/realloc. For the timer heap: a large
/// realloc moves pages (mremap) instead of copying them into freshly faulted memory, which
/// std::vector's doubling does, a page fault per 4 KiB each time the heap grows.
template <class T> class pod_vector {
    static_assert(std::is_trivially_copyable_v<T>);

public:
    pod_vector() noexcept = default;
    pod_vector(const pod_vector&) = delete;
    pod_vector& operator=(const pod_vector&) = delete;
    ~pod_vector() { std::free(data_); }

    void reserve(std::size_t n) {
        if (n <= cap_) return;
        void* p = std::realloc(data_, n * sizeof(T));
        if (!p) throw std::bad_alloc();
        data_ = static_cast<T*>(p);
        cap_ = n;
    }
    void push_back(const T& v) {
        if (size_ == cap_) reserve(cap_ ? 2 * cap_ : 64);
        data_[size_++] = v;
    }
    void pop_back() noexcept { --size_; }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T& front() noexcept { return data_[0]; }
    const T& front() const noexcept { return data_[0]; }
    T& back() noexcept { return data_[size_ - 1]; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const T* begin() const noexcept { return data_; }
    const T* end() const noexcept { return data_ + size_; }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
};

/// An armed deadline. Lives inside the awaiter that waits for it; `fire` runs on the loop
/// thread after the node has been unlinked, so it may re-arm it or cancel other timers.
struct timer_node {
    using fire_fn = void (*)(timer_node*) noexcept;
    static constexpr std::uint32_t npos = ~std::uint32_t{0};

    time_point deadline{};
    std::uint64_t seq = 0;
    fire_fn fire = nullptr;
    timer_fifo* fifo = nullptr;       // set while this node waits in a FIFO list
    timer_node* prev = nullptr;
    timer_node* next = nullptr;
    // Last, so that a derived waiter's small fields can use the tail padding.
    std::uint32_t heap_index = npos;  // set while this node itself sits in the heap

    bool armed() const noexcept { return heap_index != npos || fifo != nullptr; }
};

struct timer_fifo {
    duration period{};
    timer_node* head = nullptr;
    timer_node* tail = nullptr;
    timer_node proxy;  // stands in the heap for `head`
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
    void add_after(timer_node& n, time_point now, duration d);
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
            for (const timer_node* n = q->head; n; n = n->next) f(*n);
    }

private:
    struct entry {
        std::int64_t key;  // deadline in ns, copied here so sifting rarely reads node memory
        timer_node* node;
    };
    static bool less(const entry& a, const entry& b) noexcept {
        // Equal deadlines (rare outside tests) fall back to arming order.
        return a.key < b.key || (a.key == b.key && a.node->seq < b.node->seq);
    }
    static std::int64_t key_of(time_point t) noexcept { return t.time_since_epoch().count(); }
    bool is_proxy(const timer_node* n) const noexcept { return n->fire == nullptr; }

    void heap_push(timer_node& n);
    void heap_erase(std::uint32_t i) noexcept;
    void heap_update(std::uint32_t i) noexcept;  // key of entry i changed either way
    void sift_up(std::uint32_t i) noexcept;
    void sift_down(std::uint32_t i) noexcept;
    void place(std::uint32_t i, const entry& e) noexcept {
        heap_[i] = e;
        e.node->heap_index = i;
    }
    timer_fifo* fifo_for(duration d);
    void fifo_unlink(timer_node& n) noexcept;

    pod_vector<entry> heap_;
    std::vector<std::unique_ptr<timer_fifo>> fifos_;
    duration last_period_{-1};
    std::uint64_t next_seq_ = 0;
    std::size_t count_ = 0;
};

}  // namespace coev::detail
