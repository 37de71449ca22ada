// runtime/src/error_category.cpp
// The registry behind detail::error_slot: categories by index, so that a waiter stores an
// error code in five bytes instead of sixteen.
#include <coev/runtime/event_loop.hpp>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace coev::detail {

std::atomic<const std::error_category*> error_categories[max_error_categories];

namespace {
std::mutex registry_mutex;
std::atomic<std::size_t> registered{1};  // index 0 stands for "no error"
}  // namespace

std::uint8_t error_category_index(const std::error_category& c) noexcept {
    // Read without the lock: entries below `registered` are written once, before it moves.
    std::size_t n = registered.load(std::memory_order_acquire);
    for (std::size_t i = 1; i < n; ++i)
        if (error_categories[i].load(std::memory_order_relaxed) == &c) return std::uint8_t(i);
    std::lock_guard lock(registry_mutex);
    n = registered.load(std::memory_order_relaxed);
    for (std::size_t i = 1; i < n; ++i)
        if (error_categories[i].load(std::memory_order_relaxed) == &c) return std::uint8_t(i);
    if (n == max_error_categories) {
        // A program with this many distinct categories is not one coev was built for.
        std::fprintf(stderr, "coev: more than %zu error categories in use\n",
                     max_error_categories - 1);
        std::abort();
    }
    error_categories[n].store(&c, std::memory_order_relaxed);
    registered.store(n + 1, std::memory_order_release);
    return std::uint8_t(n);
}

}  // namespace coev::detail
