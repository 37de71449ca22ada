// coev/runtime/result.hpp
// A value or a std::error_code: what every operation that can fail for ordinary reasons returns.
#pragma once

#include <coev/runtime/detail/error_slot.hpp>

#include <cassert>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coev {

/// coev's own error conditions; system conditions use std::errc.
enum class error {
    ok = 0,
    line_too_long = 1,   ///< a line exceeded the configured maximum length
    no_backend,          ///< no event backend satisfies the loop_config
    busy,                ///< another task already waits on this fd in this direction
    closed,              ///< the object was closed while the operation waited
    unexpected_eof,      ///< the peer closed before the required bytes arrived
};

const std::error_category& error_category() noexcept;
inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

}  // namespace coev

template <>
struct std::is_error_code_enum<coev::error> : std::true_type {};

namespace coev {

/// A value of type T or an error code, with std::expected's names.
/// `.value()` on an error throws std::system_error. The code is kept in 8 bytes (its
/// category as an index): results live in coroutine frames, and frames are what costs.
template <class T>
class [[nodiscard]] result {
public:
    using value_type = T;

    result() requires std::is_default_constructible_v<T> : ok_(true) { new (&val_) T(); }
    template <class U = T>
        requires(std::is_constructible_v<T, U&&> &&
                 !std::is_same_v<std::remove_cvref_t<U>, result> &&
                 !std::is_same_v<std::remove_cvref_t<U>, std::error_code> &&
                 !std::is_error_code_enum_v<std::remove_cvref_t<U>> &&
                 !std::is_same_v<std::remove_cvref_t<U>, std::errc>)
    result(U&& v) : ok_(true) {  // NOLINT: implicit like std::expected
        new (&val_) T(std::forward<U>(v));
    }
    result(std::error_code ec) noexcept : ok_(false) {
        new (&err_) detail::error_slot();
        err_ = ec;
    }
    template <class E>
        requires(std::is_error_code_enum_v<E> || std::is_same_v<E, std::errc>)
    result(E e) noexcept : result(make_code(e)) {}

    result(const result& o) : ok_(o.ok_) {
        if (ok_) new (&val_) T(o.val_);
        else new (&err_) detail::error_slot(o.err_);
    }
    result(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(o.ok_) {
        if (ok_) new (&val_) T(std::move(o.val_));
        else new (&err_) detail::error_slot(o.err_);
    }
    result& operator=(const result& o) {
        if (this != &o) { destroy(); new (this) result(o); }
        return *this;
    }
    result& operator=(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
        if (this != &o) { destroy(); new (this) result(std::move(o)); }
        return *this;
    }
    ~result() { destroy(); }

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }

    T& value() & { check(); return val_; }
    const T& value() const& { check(); return val_; }
    T&& value() && { check(); return std::move(val_); }
    T& operator*() & noexcept { assert(ok_); return val_; }
    const T& operator*() const& noexcept { assert(ok_); return val_; }
    T&& operator*() && noexcept { assert(ok_); return std::move(val_); }
    T* operator->() noexcept { assert(ok_); return &val_; }
    const T* operator->() const noexcept { assert(ok_); return &val_; }
    template <class U> T value_or(U&& other) const& {
        return ok_ ? val_ : static_cast<T>(std::forward<U>(other));
    }
    /// The error; a default (success) code when the result holds a value.
    std::error_code error() const noexcept { return ok_ ? std::error_code{} : err_.code(); }

private:
    template <class E> static std::error_code make_code(E e) noexcept {
        if constexpr (std::is_same_v<E, std::errc>) return std::make_error_code(e);
        else return make_error_code(e);
    }
    void check() const {
        if (!ok_) throw std::system_error(err_.code());
    }
    void destroy() noexcept {
        if (ok_) val_.~T();
    }
    union {
        T val_;
        detail::error_slot err_;
    };
    bool ok_;
};

/// Success or an error code.
template <>
class [[nodiscard]] result<void> {
public:
    using value_type = void;
    result() noexcept = default;
    result(std::error_code ec) noexcept { err_ = ec; }
    template <class E>
        requires(std::is_error_code_enum_v<E> || std::is_same_v<E, std::errc>)
    result(E e) noexcept {
        if constexpr (std::is_same_v<E, std::errc>) err_ = std::make_error_code(e);
        else err_ = make_error_code(e);
    }
    bool has_value() const noexcept { return !err_; }
    explicit operator bool() const noexcept { return !err_; }
    void value() const {
        if (err_) throw std::system_error(err_.code());
    }
    void operator*() const noexcept {}
    std::error_code error() const noexcept { return err_.code(); }

private:
    detail::error_slot err_;
};

template <class T> struct is_result : std::false_type {};
template <class T> struct is_result<result<T>> : std::true_type {};
template <class T> inline constexpr bool is_result_v = is_result<std::remove_cvref_t<T>>::value;

}  // namespace coev
