// runtime/src/ready_queue.cpp
#include <coev/runtime/detail/pages.hpp>
#include <coev/runtime/detail/ready_queue.hpp>

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace coev::detail {

namespace {
constexpr std::size_t first_segment_bytes = 4096;
constexpr std::size_t last_segment_bytes = big_array_bytes;  // mapped, with huge pages
// An idle loop keeps at most this much of a burst's queue.
constexpr std::size_t kept_bytes = 64 * 1024;
}  // namespace

void segment_chain::grow(std::size_t item_bytes) {
    std::size_t bytes = tail_ ? std::min(2 * tail_->bytes, last_segment_bytes)
                              : first_segment_bytes;
    segment* g;
    if (spare_ && spare_->bytes >= bytes) {
        g = std::exchange(spare_, nullptr);
    } else {
        if (bytes >= big_array_bytes) {
            g = static_cast<segment*>(map_pages(bytes));
        } else {
            g = static_cast<segment*>(std::malloc(bytes));
            if (!g) throw std::bad_alloc();
        }
        g->bytes = bytes;
    }
    g->next = nullptr;
    g->cap = (g->bytes - sizeof(segment)) / item_bytes;
    g->begin = g->end = 0;
    if (tail_) tail_->next = g;
    else head_ = g;
    tail_ = g;
}

void segment_chain::drop_head() noexcept {
    segment* g = head_;
    if (g != tail_) {
        head_ = g->next;
    } else if (g->bytes <= kept_bytes) {
        g->begin = g->end = 0;  // the queue is empty: refill this one from its start
        return;
    } else {
        head_ = tail_ = nullptr;
    }
    if (g->bytes > kept_bytes) {
        free_segment(g);
    } else if (!spare_ || spare_->bytes < g->bytes) {
        free_segment(spare_);
        spare_ = g;
    } else {
        free_segment(g);
    }
}

void segment_chain::free_segment(segment* g) noexcept {
    if (!g) return;
    if (g->bytes >= big_array_bytes) unmap_pages(g, g->bytes);
    else std::free(g);
}

}  // namespace coev::detail
