// coev/runtime/detail/error_slot.hpp
// A std::error_code in five bytes: what waiters and result<T> store, because every sleeping
// coroutine frame holds both and a million such frames is what a timer benchmark costs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace coev::detail {

/// The error categories error_slot can name, by index; 0 is the system category (what a
/// default std::error_code has). Entries are added, never removed (error_category.cpp).
inline constexpr std::size_t max_error_categories = 256;
extern std::atomic<const std::error_category*> error_categories[max_error_categories];
/// The index of `c`, registering it on first use. A process that has used 255 other
/// categories gets the index of a stand-in category that keeps the value and says the
/// original category was not recorded (logged once); nothing aborts.
std::uint8_t error_category_index(const std::error_category& c) noexcept;
/// The same, looking at the first few entries inline: a wait cancelled or timed out stores a
/// generic-category code, and that should not cost a call.
inline std::uint8_t category_index(const std::error_category& c) noexcept {
    for (std::size_t i = 1; i < 4; ++i)
        if (error_categories[i].load(std::memory_order_relaxed) == &c) return std::uint8_t(i);
    return error_category_index(c);
}

/// A std::error_code in five bytes, costing nothing to clear or test: the category is an index
/// into error_categories, so a waiter (and every frame that holds one) is 8 bytes smaller.
/// Like std::error_code, it is an error when its value is not 0, and keeps its category either
/// way.
class error_slot {
public:
    error_slot& operator=(std::error_code e) noexcept {
        value_ = e.value();
        cat_ = category_index(e.category());
        return *this;
    }
    void clear() noexcept {
        value_ = 0;
        cat_ = 0;
    }
    explicit operator bool() const noexcept { return value_ != 0; }
    std::error_code code() const noexcept {
        return cat_ ? std::error_code(value_, *error_categories[cat_].load(
                                                  std::memory_order_relaxed))
                    : std::error_code(value_, std::system_category());
    }

private:
    std::int32_t value_ = 0;
    std::uint8_t cat_ = 0;
};

}  // namespace coev::detail
