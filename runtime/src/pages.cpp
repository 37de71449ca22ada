// runtime/src/pages.cpp
#include <coev/runtime/detail/pages.hpp>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace coev::detail {

#if defined(__linux__)

namespace {
constexpr std::size_t page = 4096;
std::size_t whole_pages(std::size_t bytes) noexcept { return (bytes + page - 1) & ~(page - 1); }
void advise(void* p, std::size_t bytes) noexcept {
#if defined(MADV_HUGEPAGE)
    // Refused (THP off, or an old kernel): 4 KiB pages it is.
    (void)::madvise(p, bytes, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}
}  // namespace

void* map_pages(std::size_t bytes) {
    bytes = whole_pages(bytes);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    advise(p, bytes);
    return p;
}

void* remap_pages(void* p, std::size_t old_bytes, std::size_t new_bytes) {
    void* q = ::mremap(p, whole_pages(old_bytes), whole_pages(new_bytes), MREMAP_MAYMOVE);
    if (q == MAP_FAILED) throw std::bad_alloc();
    return q;  // the advice moves with the mapping
}

void unmap_pages(void* p, std::size_t bytes) noexcept { ::munmap(p, whole_pages(bytes)); }

#else

void* map_pages(std::size_t bytes) {
    void* p = std::malloc(bytes);
    if (!p) throw std::bad_alloc();
    return p;
}

void* remap_pages(void* p, std::size_t, std::size_t new_bytes) {
    void* q = std::realloc(p, new_bytes);
    if (!q) throw std::bad_alloc();
    return q;
}

void unmap_pages(void* p, std::size_t) noexcept { std::free(p); }

#endif

}  // namespace coev::detail
