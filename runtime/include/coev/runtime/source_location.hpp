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

#if defined(__cpp_lib_source_location)
/// std::source_location itself where the standard library has it: one pointer to the
/// compiler's static record of the call site. (An alias, not a wrapper: a wrapper's
/// `current()` needs a std::source_location argument of its own, and a coroutine keeps every
/// temporary of a `co_await` expression in its frame, a million frames at a time.)
using source_location = std::source_location;
#else
/// Where the standard library has no std::source_location (clang 14 with libstdc++ 12): the
/// same interface and size, so the layout of every awaiter is the same whichever compiler
/// built the caller, but no location is recorded: names are "" and lines 0.
class source_location {
public:
    static constexpr source_location current() noexcept { return {}; }
    constexpr const char* file_name() const noexcept { return ""; }
    constexpr const char* function_name() const noexcept { return ""; }
    constexpr std::uint_least32_t line() const noexcept { return 0; }
    constexpr std::uint_least32_t column() const noexcept { return 0; }
    constexpr source_location() noexcept = default;

private:
    [[maybe_unused]] const void* at_ = nullptr;  // only its size matters
};
#endif

static_assert(sizeof(source_location) == sizeof(void*));

}  // namespace coev
