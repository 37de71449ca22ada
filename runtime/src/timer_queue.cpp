// runtime/src/timer_queue.cpp
#include <coev/runtime/detail/timer_queue.hpp>

#include <cstddef>
#include <limits>

namespace coev::detail {

namespace {
// Durations that keep a FIFO list; more distinct durations than this go to the heap.
constexpr std::size_t max_fifos = 8;

timer_fifo* fifo_of_end(timer_node* end) noexcept {
    return reinterpret_cast<timer_fifo*>(reinterpret_cast<char*>(end) -
                                         offsetof(timer_fifo, end));
}
timer_fifo* fifo_of_proxy(timer_node* proxy) noexcept {
    return reinterpret_cast<timer_fifo*>(reinterpret_cast<char*>(proxy) -
                                         offsetof(timer_fifo, proxy));
}
}  // namespace

timer_queue::timer_queue() { heap_.reserve(64); }

void timer_queue::sift_up(std::uint32_t i) noexcept {
    entry e = heap_[i];
    while (i > 0) {
        std::uint32_t parent = (i - 1) / arity;
        if (!less(e, heap_[parent])) break;
        place(i, heap_[parent]);
        i = parent;
    }
    place(i, e);
}

void timer_queue::sift_down(std::uint32_t i) noexcept {
    const auto n = static_cast<std::uint32_t>(heap_.size());
    entry e = heap_[i];
    for (;;) {
        std::uint32_t first = arity * i + 1;
        if (first >= n) break;
        std::uint32_t best = first;
        std::uint32_t last = first + arity < n ? first + arity : n;
        for (std::uint32_t c = first + 1; c < last; ++c)
            if (less(heap_[c], heap_[best])) best = c;
        if (!less(heap_[best], e)) break;
        place(i, heap_[best]);
        i = best;
    }
    place(i, e);
}

void timer_queue::heap_update(std::uint32_t i) noexcept {
    if (i > 0 && less(heap_[i], heap_[(i - 1) / arity])) sift_up(i);
    else sift_down(i);
}

void timer_queue::heap_erase(std::uint32_t i) noexcept {
    heap_[i].node->heap_index = timer_node::npos;
    entry last = heap_.back();
    heap_.pop_back();
    if (i < heap_.size()) {
        place(i, last);
        heap_update(i);
    }
}

void timer_queue::add_at(timer_node& n, time_point deadline) {
    if (n.armed()) cancel(n);
    n.deadline = deadline;
    n.seq = next_seq_++;
    heap_push(n);
    ++count_;
}

timer_fifo* timer_queue::fifo_for(duration d) {
    for (auto& f : fifos_)
        if (f->period == d) return f.get();
    // A duration gets a list the second time in a row it is asked for: repeated idle
    // timeouts qualify at once, scattered durations never take a slot.
    bool repeated = d == last_period_;
    last_period_ = d;
    if (!repeated) return nullptr;
    if (fifos_.size() < max_fifos) {
        fifos_.push_back(std::make_unique<timer_fifo>());
        fifos_.back()->period = d;
        return fifos_.back().get();
    }
    for (auto& f : fifos_) {
        if (f->empty()) {  // reuse an idle list
            f->period = d;
            return f.get();
        }
    }
    return nullptr;
}

void timer_queue::add_after_listed(timer_node& n, time_point now, duration d) {
    timer_fifo* f = fifos_.empty() && d != last_period_ ? nullptr : fifo_for(d);
    if (!f) {
        last_period_ = d;
        add_at(n, later(now, d));
        return;
    }
    if (n.armed()) cancel(n);
    n.deadline = later(now, d);
    n.seq = next_seq_++;
    n.heap_index = timer_node::in_fifo;
    timer_node* tail = f->end.prev;
    n.next = &f->end;
    n.prev = tail;
    tail->next = &n;
    f->end.prev = &n;
    if (tail == &f->end) {  // the list was empty: its proxy enters the heap
        f->proxy.deadline = n.deadline;
        f->proxy.seq = n.seq;
        f->proxy.fire = nullptr;  // marks a proxy
        heap_push(f->proxy);
    }
    ++count_;
}

void timer_queue::fifo_unlink(timer_node& n) noexcept {
    timer_node* prev = n.prev;
    prev->next = n.next;
    n.next->prev = prev;
    n.prev = n.next = nullptr;
    n.heap_index = timer_node::npos;
    if (prev->heap_index != timer_node::sentinel) return;  // not the head
    timer_fifo* f = fifo_of_end(prev);
    if (f->empty()) {
        heap_erase(f->proxy.heap_index);
        return;
    }
    f->proxy.deadline = f->head()->deadline;
    f->proxy.seq = f->head()->seq;
    std::uint32_t i = f->proxy.heap_index;
    heap_[i].key = key_of(f->proxy.deadline);
    sift_down(i);  // the new head is never earlier than the old one
}

void timer_queue::cancel(timer_node& n) noexcept {
    if (n.heap_index == timer_node::in_fifo) {
        fifo_unlink(n);
    } else if (n.heap_index != timer_node::npos) {
        heap_erase(n.heap_index);
    } else {
        return;
    }
    --count_;
}

std::size_t timer_queue::expire(time_point now) {
    const std::int64_t limit = key_of(now);
    std::size_t fired = 0;
    while (!heap_.empty() && heap_.front().key <= limit) {
        timer_node* n = heap_.front().node;
        if (is_proxy(n)) n = fifo_of_proxy(n)->head();
        cancel(*n);
        ++fired;
        n->fire(n);
    }
    return fired;
}

}  // namespace coev::detail
