// coev/runtime/source_location.hpp
// coev::source_location: the interface of std::source_location over the compiler builtins
// that g++ and clang both have. Not an alias of the std one: clang 14 with libstdc++ 12 lacks
// it, and a type that changed with the compiler would change coev's ABI with it.
#pragma once

#include <cstdint>

namespace coev {

class source_location {
public:
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             const char* function = __builtin_FUNCTION(),
                                             std::uint_least32_t line = __builtin_LINE()) noexcept {
        source_location s;
        s.file_ = file;
        s.function_ = function;
        s.line_ = line;
        s.column_ = 0;
        return s;
    }
    constexpr source_location() noexcept = default;
    constexpr const char* file_name() const noexcept { return file_; }
    constexpr const char* function_name() const noexcept { return function_; }
    constexpr std::uint_least32_t line() const noexcept { return line_; }
    constexpr std::uint_least32_t column() const noexcept { return column_; }

private:
    const char* file_ = "";
    const char* function_ = "";
    std::uint_least32_t line_ = 0;
    // Written with line_ as one 8-byte store: copying a location (awaiters store theirs)
    // then reads back what was written whole, where a 4-byte store under an 8-byte load
    // would stall store-to-load forwarding on every await.
    std::uint_least32_t column_ = 0;
};

}  // namespace coev
