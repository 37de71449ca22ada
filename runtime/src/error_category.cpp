// runtime/src/error_category.cpp
// The registry behind detail::error_slot: categories by index, so that a waiter stores an
// error code in five bytes instead of sixteen.
#include <coev/runtime/detail/error_slot.hpp>
#include <coev/runtime/log.hpp>

#include <mutex>
#include <string>

namespace coev::detail {

std::atomic<const std::error_category*> error_categories[max_error_categories];

namespace {
std::mutex registry_mutex;
std::atomic<std::size_t> registered{1};  // index 0 decodes as the system category
constexpr std::size_t stand_in_index = max_error_categories - 1;

// What a code from a category past the registry's capacity reads back as: its value, and a
// message saying the category was not recorded.
class unrecorded_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coev.unrecorded"; }
    std::string message(int value) const override {
        return "error " + std::to_string(value) +
               " from an error category coev could not record (more than 254 in use)";
    }
};
const unrecorded_category stand_in;
}  // namespace

namespace {
// The two categories nearly every code has go first, where category_index() looks inline:
// a wait that ends well hands result<> a system-category zero, once per wake-up.
[[maybe_unused]] const bool common_first =
    (error_category_index(std::generic_category()), error_category_index(std::system_category()),
     true);
}  // namespace

std::uint8_t error_category_index(const std::error_category& c) noexcept {
    // Read without the lock: entries below `registered` are written once, before it moves.
    std::size_t n = registered.load(std::memory_order_acquire);
    for (std::size_t i = 1; i < n; ++i)
        if (error_categories[i].load(std::memory_order_relaxed) == &c) return std::uint8_t(i);
    {
        std::lock_guard lock(registry_mutex);
        n = registered.load(std::memory_order_relaxed);
        for (std::size_t i = 1; i < n; ++i)
            if (error_categories[i].load(std::memory_order_relaxed) == &c)
                return std::uint8_t(i);
        if (n < stand_in_index) {
            error_categories[n].store(&c, std::memory_order_relaxed);
            registered.store(n + 1, std::memory_order_release);
            return std::uint8_t(n);
        }
        if (n == stand_in_index) {
            error_categories[n].store(&stand_in, std::memory_order_relaxed);
            registered.store(n + 1, std::memory_order_release);
        } else {
            return std::uint8_t(stand_in_index);
        }
    }
    // Categories are meant to be singletons; a program making them by the hundred loses
    // which one a code came from, but keeps running.
    log(log_level::warn, "coev: more than 254 error categories in use; codes from further "
                         "ones keep their value but not their category");
    return std::uint8_t(stand_in_index);
}

}  // namespace coev::detail
