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
    std::uint32_t seq = 0;  // how many starts its queue had taken when it was queued
};

/// A FIFO of T in segments that double in size: a burst grows it without copying, and a large
/// burst's segments are mapped with huge pages (pages.hpp), a few page faults for a million
/// entries. One drained segment is kept for the next burst.
class segment_chain {
protected:
    struct segment {
        segment* next;
        std::size_t bytes;  // of the whole allocation
        std::size_t cap, begin, end;
    };
    segment_chain() noexcept = default;
    segment_chain(const segment_chain&) = delete;
    segment_chain& operator=(const segment_chain&) = delete;
    ~segment_chain() {
        free_segment(head_);  // an emptied small segment stays for reuse
        free_segment(spare_);
    }
    void grow(std::size_t item_bytes);
    void drop_head() noexcept;
    static void free_segment(segment* g) noexcept;

    segment* head_ = nullptr;
    segment* tail_ = nullptr;
    segment* spare_ = nullptr;
    std::size_t size_ = 0;
};

template <class T> class segmented_fifo : segment_chain {
public:
    segmented_fifo() noexcept = default;
    ~segmented_fifo() { clear(); }

    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    /// Makes room for one more entry; may throw std::bad_alloc.
    void reserve_one() {
        if (!tail_ || tail_->end == tail_->cap) grow(sizeof(T));
    }
    /// May throw std::bad_alloc (only when no room was reserved); nothing is queued then.
    template <class... A> void emplace_back(A&&... a) {
        reserve_one();
        emplace_reserved(std::forward<A>(a)...);
    }
    /// After reserve_one(): cannot fail.
    template <class... A> void emplace_reserved(A&&... a) noexcept {
        ::new (static_cast<void*>(items(tail_) + tail_->end)) T{std::forward<A>(a)...};
        ++tail_->end;
        ++size_;
    }
    T& front() noexcept { return items(head_)[head_->begin]; }
    const T& front() const noexcept { return items(head_)[head_->begin]; }
    void drop_front() noexcept {
        items(head_)[head_->begin].~T();
        --size_;
        if (++head_->begin == head_->end) drop_head();
    }
    /// The entries from the front to the end of its segment, in place (front() first).
    const T* front_run(std::size_t& count) const noexcept {
        count = head_->end - head_->begin;
        return items(head_) + head_->begin;
    }
    void clear() noexcept {
        while (!empty()) drop_front();
    }

private:
    static_assert(sizeof(segment) % alignof(T) == 0);
    static T* items(segment* g) noexcept { return reinterpret_cast<T*>(g + 1); }
    static const T* items(const segment* g) noexcept {
        return reinterpret_cast<const T*>(g + 1);
    }
};

/// Where GCC and Clang put a coroutine's promise: right after its resume and destroy
/// pointers, when the promise's alignment is no stricter than theirs.
inline constexpr std::ptrdiff_t usual_promise_offset = 2 * sizeof(void*);

/// The spawned tasks the loop has not started yet. A task's frame is cold when many are
/// spawned at once; what spawn() would write into it waits here, in order, until the loop
/// starts the task and can load the frames a few ahead (bench/timers spawns a million). An
/// entry is one word, the frame's address with two flags: every byte queued is memory a burst
/// of spawns touches for the first time, and fresh memory is slow on a virtual machine. A
/// stop token (and a promise not where it usually is) goes beside it, in a second queue.
class start_queue {
public:
    /// One queued start, seen in place.
    struct view {
        std::coroutine_handle<> handle;
        promise_base* promise;
        std::stop_token* token;  // null: the task has none
        bool detached;           // false: run()'s task, which run() owns
    };

    bool empty() const noexcept { return words_.empty(); }
    std::size_t size() const noexcept { return words_.size(); }
    /// Moves `token` in only when it has a stop state; may throw std::bad_alloc, and nothing
    /// is queued then.
    void push(promise_base* p, std::coroutine_handle<> h, std::stop_token&& token,
              bool detached) {
        auto frame = reinterpret_cast<std::uintptr_t>(h.address());
        std::uintptr_t w = frame | (detached ? detached_bit : 0);
        words_.reserve_one();
        // Compared as states, not with stop_possible(), which would read a cold stop state.
        if (token != std::stop_token{} ||
            reinterpret_cast<std::uintptr_t>(p) - frame != std::uintptr_t(usual_promise_offset)) {
            extras_.emplace_back(std::move(token), p);
            w |= extra_bit;
        }
        words_.emplace_reserved(w);
    }
    view front() noexcept { return decode_front(words_.front()); }
    /// The queued words from the front to the end of their segment, read in place: a burst of
    /// starts walks them without a segment lookup each. They stay valid while the entries
    /// before them are dropped; the last one's drop may free them.
    const std::uintptr_t* front_run(std::size_t& count) const noexcept {
        return words_.front_run(count);
    }
    static void* frame_of(std::uintptr_t w) noexcept {
        return reinterpret_cast<void*>(w & ~flag_mask);
    }
    /// The start whose word `w` is the front one (its stop token, if any, is the extras' front).
    view decode_front(std::uintptr_t w) noexcept {
        void* frame = frame_of(w);
        view v{std::coroutine_handle<>::from_address(frame), nullptr, nullptr,
               (w & detached_bit) != 0};
        if (w & extra_bit) {
            extra& x = extras_.front();
            v.promise = x.promise;
            v.token = &x.token;
        } else {
            v.promise = reinterpret_cast<promise_base*>(static_cast<char*>(frame) +
                                                        usual_promise_offset);
        }
        return v;
    }
    void drop_front() noexcept {
        if (words_.front() & extra_bit) extras_.drop_front();
        words_.drop_front();
    }
    void clear() noexcept {
        words_.clear();
        extras_.clear();
    }

private:
    static constexpr std::uintptr_t detached_bit = 1, extra_bit = 2, flag_mask = 3;
    static_assert(alignof(std::max_align_t) > flag_mask, "frames leave two low bits free");
    struct extra {
        std::stop_token token;
        promise_base* promise;
    };

    segmented_fifo<std::uintptr_t> words_;
    segmented_fifo<extra> extras_;
};

/// One priority's queue: woken coroutines (intrusive, allocation-free) and pending starts,
/// taken in the order they were queued.
struct ready_list {
    ready_node* head = nullptr;
    ready_node** tail = &head;
    std::size_t size = 0;  // nodes; see count()
    start_queue starts;
    // Starts queued and taken so far (mod 2^32): a node queued when `starts_in` was k comes
    // after the starts numbered below k, so the starts need no sequence number of their own.
    std::uint32_t starts_in = 0, starts_out = 0;

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
        starts_in = starts_out = 0;
    }
    bool empty() const noexcept { return head == nullptr && starts.empty(); }
    std::size_t count() const noexcept { return size + starts.size(); }
    void push(ready_node* n) noexcept {
        n->next = nullptr;
        n->seq = starts_in;
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
        starts.push(p, h, std::move(token), detached);
        ++starts_in;
    }
    /// Whether the next to run is a pending start rather than a node.
    bool start_next() const noexcept {
        if (starts.empty()) return false;
        // Wrap-safe: fewer than 2^31 entries are ever queued at once.
        return !head || std::int32_t(starts_out - head->seq) < 0;
    }
    /// The next pending start, used in place; drop_start() ends it.
    start_queue::view front_start() noexcept { return starts.front(); }
    void drop_start() noexcept {
        starts.drop_front();
        ++starts_out;
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
