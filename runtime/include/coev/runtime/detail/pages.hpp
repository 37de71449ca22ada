// coev/runtime/detail/pages.hpp
// Memory for large arrays that fill in one burst (the timer heap, a million pending spawns):
// mapped directly, with huge pages where the kernel allows, so that filling 32 MiB takes 16
// page faults rather than 8,192. On a virtual machine a fault costs microseconds.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

namespace coev::detail {

/// Arrays at least this large are mapped (below it, malloc serves them better).
inline constexpr std::size_t big_array_bytes = std::size_t(2) << 20;

/// Maps `bytes` (rounded up to whole pages); throws std::bad_alloc.
void* map_pages(std::size_t bytes);
/// Grows or shrinks a mapping from map_pages, moving it if needed; throws std::bad_alloc and
/// leaves the old one intact.
void* remap_pages(void* p, std::size_t old_bytes, std::size_t new_bytes);
void unmap_pages(void* p, std::size_t bytes) noexcept;

/// A growable array of a trivially copyable T. Small, it lives on malloc/realloc; from
/// big_array_bytes on, in its own mapping that grows by remapping (pages move, nothing is
/// copied into freshly faulted memory as std::vector's doubling does).
template <class T> class pod_vector {
    static_assert(std::is_trivially_copyable_v<T>);

public:
    pod_vector() noexcept = default;
    pod_vector(const pod_vector&) = delete;
    pod_vector& operator=(const pod_vector&) = delete;
    ~pod_vector() { release(); }

    void reserve(std::size_t n) {
        if (n <= cap_) return;
        const std::size_t bytes = n * sizeof(T);
        void* p;
        if (bytes < big_array_bytes) {
            p = std::realloc(data_, bytes);
            if (!p) throw std::bad_alloc();
        } else if (mapped_) {
            p = remap_pages(data_, cap_ * sizeof(T), bytes);
        } else {
            p = map_pages(bytes);
            if (size_) std::memcpy(p, data_, size_ * sizeof(T));
            std::free(data_);
            mapped_ = true;
        }
        data_ = static_cast<T*>(p);
        cap_ = n;
    }
    void push_back(const T& v) {
        if (size_ == cap_) reserve(cap_ ? 2 * cap_ : 64);
        data_[size_++] = v;
    }
    void pop_back() noexcept { --size_; }
    /// Frees the storage.
    void release() noexcept {
        if (mapped_) unmap_pages(data_, cap_ * sizeof(T));
        else std::free(data_);
        data_ = nullptr;
        size_ = cap_ = 0;
        mapped_ = false;
    }
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T& front() noexcept { return data_[0]; }
    const T& front() const noexcept { return data_[0]; }
    T& back() noexcept { return data_[size_ - 1]; }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return cap_; }
    bool empty() const noexcept { return size_ == 0; }
    const T* begin() const noexcept { return data_; }
    const T* end() const noexcept { return data_ + size_; }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t cap_ = 0;
    bool mapped_ = false;
};

}  // namespace coev::detail
