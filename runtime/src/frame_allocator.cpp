// runtime/src/frame_allocator.cpp
// Coroutine frames from per-thread size-class free lists: after warm-up, starting a task or
// awaiting one allocates nothing from the system allocator.
#include <coev/runtime/task.hpp>

#include <cstdlib>
#include <new>

namespace coev::detail {
namespace {

// 16-byte classes: a frame takes what it asks for (plus malloc's header), so every byte cut
// from a frame is a byte less per sleeping task; 64-byte classes rounded a 272-byte frame
// up to 320.
constexpr std::size_t granule = 16;
constexpr std::size_t classes = 128;                 // frames up to 2 KiB are recycled
constexpr std::size_t max_cached_bytes = 1u << 20;   // per class, per thread

struct free_block {
    free_block* next;
};

struct frame_cache;
// Initial-exec TLS: a plain pointer read, even from a shared library.
[[gnu::tls_model("initial-exec")]] thread_local frame_cache* cache = nullptr;

struct frame_cache {
    free_block* head[classes] = {};
    std::size_t count[classes] = {};
    ~frame_cache() {
        cache = nullptr;  // frames freed later in thread teardown go straight back
        for (auto*& h : head) {
            while (h) {
                free_block* b = h;
                h = b->next;
                ::operator delete(b);
            }
        }
    }
};

frame_cache* get_cache() noexcept {
    if (cache) [[likely]] return cache;
    thread_local frame_cache owner;  // freed, with its blocks, when the thread exits
    cache = &owner;
    return cache;
}

}  // namespace

void* frame_alloc(std::size_t n) {
    std::size_t c = (n + granule - 1) / granule;
    if (c >= classes) return ::operator new(n);
    frame_cache* fc = get_cache();
    if (free_block* b = fc->head[c]) {
        fc->head[c] = b->next;
        --fc->count[c];
        return b;
    }
    return ::operator new(c * granule);
}

void frame_free(void* p, std::size_t n) noexcept {
    std::size_t c = (n + granule - 1) / granule;
    if (c >= classes) {
        ::operator delete(p);
        return;
    }
    frame_cache* fc = cache;
    if (!fc || fc->count[c] * c * granule >= max_cached_bytes) {
        ::operator delete(p);
        return;
    }
    auto* b = static_cast<free_block*>(p);
    b->next = fc->head[c];
    fc->head[c] = b;
    ++fc->count[c];
}

}  // namespace coev::detail
