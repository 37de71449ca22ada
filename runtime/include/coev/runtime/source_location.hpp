// coev/runtime/source_location.hpp
// coev::source_location: where a wait or a spawn was written, one pointer wide. Every awaiter
// keeps one, and the frames of coroutines that sleep by the million carry them.
#pragma once

#include <cstdint>
#if defined(__has_include)
#if __has_include(<source_location>)
#include <source_location>
#endif
#endif

namespace coev {

/// std::source_location's interface and size (one pointer to the compiler's static record of
/// the call site). Where the standard library has no std::source_location (clang 14 with
/// libstdc++ 12) it is still one pointer wide, so the layout of every awaiter is the same
/// whichever compiler built the caller, but records no location: names are "" and lines 0.
class source_location {
public:
#if defined(__cpp_lib_source_location)
    static constexpr source_location current(
        std::source_location at = std::source_location::current()) noexcept {
        source_location s;
        s.at_ = at;
        return s;
    }
    constexpr const char* file_name() const noexcept { return at_.file_name(); }
    constexpr const char* function_name() const noexcept { return at_.function_name(); }
    constexpr std::uint_least32_t line() const noexcept { return at_.line(); }
    constexpr std::uint_least32_t column() const noexcept { return at_.column(); }
#else
    static constexpr source_location current() noexcept { return {}; }
    constexpr const char* file_name() const noexcept { return ""; }
    constexpr const char* function_name() const noexcept { return ""; }
    constexpr std::uint_least32_t line() const noexcept { return 0; }
    constexpr std::uint_least32_t column() const noexcept { return 0; }
#endif
    constexpr source_location() noexcept = default;

private:
#if defined(__cpp_lib_source_location)
    std::source_location at_;
#else
    const void* at_ = nullptr;
#endif
};

static_assert(sizeof(source_location) == sizeof(void*));

}  // namespace coev
