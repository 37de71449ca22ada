// coev/runtime/task.hpp
// task<T>: the lazy coroutine every coev function returns. It starts when awaited or spawned,
// hands control back with symmetric transfer, and carries exceptions to its awaiter.
#pragma once

#include <coev/runtime/detail/ready_queue.hpp>
#include <coev/runtime/source_location.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace coev {

class event_loop;

namespace detail {

/// Coroutine frames come from a per-thread size-class free list (frame_allocator.cpp).
void* frame_alloc(std::size_t n);
void frame_free(void* p, std::size_t n) noexcept;

inline const std::stop_token no_stop_token{};

struct promise_base;

/// Bookkeeping of a spawned or run() task, kept in its own frame: its place in the loop's
/// list of roots and its stop token (its loop is promise_base::root_loop). Written when the
/// loop starts the task (init_root). Where it was spawned is kept by the loop, in debug mode
/// only.
struct root_info {
    promise_base* prev = nullptr;
    promise_base* next = nullptr;
    std::stop_token token;
};

/// What every coev promise shares, and what awaiters read from their caller: the stop token
/// (inherited from the awaiting task), the priority, and who to resume on completion.
/// Field order matters: starting a root writes `stop`, the flags, `root` and `root_loop`,
/// which then lie within the frame's first 128 bytes: fewer cache lines per start when many
/// frames are cold (bench/timers spawns a million). Every byte here is in every frame; a
/// sleeping task's frame is what a million timers cost (docs/benchmarks.md).
struct promise_base {
    static void* operator new(std::size_t n) { return frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

    const std::stop_token* stop = &no_stop_token;  // points into an ancestor or root
    std::uint8_t priority = 0;
    bool detached = true;  // a root the loop frees when it ends (not run()'s task)
    bool is_root = false;  // spawned or run(), and not finished: `root_loop` is set
    // A root's frame lies this many 8-byte words before its promise (two, for GCC's and
    // Clang's usual layout): the loop's destructor finds the frame of a root it must destroy
    // from the promise, and the frame keeps no handle for it.
    std::uint8_t frame_words = 0;
    root_info root;  // used when spawned or run()
    // An awaited task resumes its awaiter and a root tells its loop: one word for either,
    // `is_root` says which.
    union {
        std::coroutine_handle<> continuation{};
        event_loop* root_loop;
    };
    std::exception_ptr error;

    const std::stop_token& stop_token() const noexcept { return *stop; }
    /// The handle of the frame holding this promise (a root's: see frame_words).
    std::coroutine_handle<> root_handle() noexcept {
        return std::coroutine_handle<>::from_address(reinterpret_cast<char*>(this) -
                                                     8 * std::ptrdiff_t(frame_words));
    }
};

/// The coev part of an arbitrary caller's promise, or null for foreign coroutine types.
template <class P> promise_base* base_of(std::coroutine_handle<P> h) noexcept {
    if constexpr (std::is_base_of_v<promise_base, P>) return &h.promise();
    else return nullptr;
}
inline const std::stop_token& stop_token_of(promise_base* p) noexcept {
    return p ? *p->stop : no_stop_token;
}
inline std::uint8_t priority_of(promise_base* p) noexcept { return p ? p->priority : 0; }

/// Ends a spawned task: reports an escaped exception, unlinks it from its loop and, when
/// detached, frees the frame. Returns where to go next.
std::coroutine_handle<> finish_root(std::coroutine_handle<> h, promise_base& p) noexcept;

struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P> std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        promise_base& p = h.promise();
        if (p.is_root) return finish_root(h, p);
        if (p.continuation) return p.continuation;
        return std::noop_coroutine();
    }
    void await_resume() noexcept {}
};

template <class T> class task_promise;

}  // namespace detail

/// A lazy coroutine returning T. Move-only; destroying a task that has not completed destroys
/// its frame (and everything the frame owns).
template <class T = void>
class [[nodiscard]] task {
public:
    using promise_type = detail::task_promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;
    using value_type = T;

    task() noexcept = default;
    explicit task(handle_type h) noexcept : h_(h) {}
    task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { reset(); }

    bool valid() const noexcept { return bool(h_); }
    bool done() const noexcept { return h_ && h_.done(); }
    /// Gives up ownership of the frame (used by spawn()).
    handle_type release() noexcept { return std::exchange(h_, {}); }
    handle_type handle() const noexcept { return h_; }

    struct awaiter {
        handle_type h;
        bool await_ready() noexcept { return !h || h.done(); }
        template <class P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
            auto& p = h.promise();
            p.continuation = caller;
            if (detail::promise_base* b = detail::base_of(caller)) {
                p.stop = b->stop;
                p.priority = b->priority;
            }
            return h;
        }
        T await_resume() {
            if (!h) throw std::logic_error("coev::task: awaiting an empty (moved-from) task");
            return h.promise().take();
        }
    };
    awaiter operator co_await() && noexcept { return awaiter{h_}; }
    awaiter operator co_await() & noexcept { return awaiter{h_}; }

private:
    void reset() noexcept {
        if (h_) h_.destroy();
        h_ = {};
    }
    handle_type h_;
};

namespace detail {

template <class T>
class task_promise : public promise_base {
public:
    task<T> get_return_object() noexcept {
        return task<T>{std::coroutine_handle<task_promise>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    final_awaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { error = std::current_exception(); }
    template <class U = T>
        requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        value_.emplace(std::forward<U>(v));
    }
    T take() {
        if (error) std::rethrow_exception(error);
        return std::move(*value_);
    }

private:
    std::optional<T> value_;
};

template <>
class task_promise<void> : public promise_base {
public:
    task<void> get_return_object() noexcept {
        return task<void>{std::coroutine_handle<task_promise>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    final_awaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { error = std::current_exception(); }
    void return_void() noexcept {}
    void take() {
        if (error) std::rethrow_exception(error);
    }
};

}  // namespace detail

/// Awaitable that yields the calling task's stop token without suspending.
struct get_stop_token_t {
    const std::stop_token* token = &detail::no_stop_token;
    bool await_ready() noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        token = &detail::stop_token_of(detail::base_of(h));
        return false;
    }
    std::stop_token await_resume() noexcept { return *token; }
};
/// `std::stop_token tok = co_await coev::get_stop_token();`
inline get_stop_token_t get_stop_token() noexcept { return {}; }

}  // namespace coev
