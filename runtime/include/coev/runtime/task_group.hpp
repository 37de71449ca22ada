// coev/runtime/task_group.hpp
// task_group: a scope for child tasks. Children run concurrently on the loop; join() waits for
// all of them; the first failure cancels the rest.
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/result.hpp>
#include <coev/runtime/timer.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <coev/runtime/source_location.hpp>
#include <stop_token>
#include <utility>

namespace coev {

namespace detail {

struct group_state {
    std::stop_source source;
    std::size_t running = 0;
    std::size_t refs = 1;  // the group plus one per running child
    ready_node* joiner = nullptr;
    const std::stop_token* joiner_stop = nullptr;  // the joiner's token, while it waits
    bool joiner_cancelled = false;  // its stop came before the last child ended
    bool orphaned = false;          // the task_group object is gone
    event_loop* loop = nullptr;
    std::exception_ptr exception;
    std::error_code error;

    void fail(std::exception_ptr e, std::error_code ec) noexcept;
    void child_done() noexcept;
    void release() noexcept {
        if (--refs == 0) delete this;
    }
};

/// A child's hold on the group's state, taken before the child's frame exists. A child that
/// ends reports through done(); one whose frame is destroyed first (its loop destroyed before
/// it started or while it waited) only lets go, or the state would leak and size() stay high.
/// A parameter of the child's coroutine, so an unstarted frame releases it too.
class child_hold {
public:
    explicit child_hold(group_state* st) noexcept : st_(st) {
        ++st_->running;
        ++st_->refs;
    }
    child_hold(child_hold&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
    child_hold(const child_hold&) = delete;
    child_hold& operator=(const child_hold&) = delete;
    ~child_hold() {
        if (!st_) return;
        --st_->running;
        st_->release();
    }
    group_state* state() const noexcept { return st_; }
    void done() noexcept { std::exchange(st_, nullptr)->child_done(); }

private:
    group_state* st_;
};

task<void> group_child(task<void> t, child_hold hold);
task<void> group_child(task<result<void>> t, child_hold hold);

}  // namespace detail

/// Children inherit the group's stop token and the spawning task's priority (the loop's
/// middle one when spawned from outside a task); join() also forwards the joining task's stop
/// token to them. A child that throws or returns an error cancels its siblings; join() then
/// rethrows the first exception or returns the first error code. Destroying a group with
/// running children cancels them; they finish on their own, and a task joining the group
/// resumes once they have.
class task_group {
public:
    task_group();
    /// Children are also cancelled when `parent` is.
    explicit task_group(std::stop_token parent);
    task_group(const task_group&) = delete;
    task_group& operator=(const task_group&) = delete;
    ~task_group();

    /// Starts `t` on the running loop (or `loop`) in a coming iteration.
    void spawn(task<void> t, coev::source_location where = coev::source_location::current());
    void spawn(task<result<void>> t,
               coev::source_location where = coev::source_location::current());
    void spawn(event_loop& loop, task<void> t,
               coev::source_location where = coev::source_location::current());

    /// Cancels every running child through its stop token.
    void request_stop() noexcept { st_->source.request_stop(); }
    std::size_t size() const noexcept { return st_->running; }
    std::stop_token get_token() const noexcept { return st_->source.get_token(); }

    /// Waits until no child is running. Cancel: the children are cancelled and still awaited;
    /// the result is then operation_canceled (a stop that came before the last child ended),
    /// unless a child's error or exception came first.
    /// One task joins at a time: another that joins meanwhile gets error::busy at once.
    class join_awaiter {
    public:
        explicit join_awaiter(detail::group_state* st) noexcept : st_(st) {}
        join_awaiter(const join_awaiter&) = delete;
        join_awaiter& operator=(const join_awaiter&) = delete;
        /// Only before it is awaited (so it can be handed to with_timeout, when_any & co).
        join_awaiter(join_awaiter&& o) noexcept : st_(o.st_) {}
        // A suspended joiner keeps the group's state alive: the group may be destroyed while
        // it waits (its children are then cancelled, and the joiner resumes when they end).
        ~join_awaiter() {
            if (!holds_) return;
            if (st_->joiner == &node_) {  // its frame died while waiting
                st_->joiner = nullptr;
                st_->joiner_stop = nullptr;
            } else if (!resumed_ && st_->loop) {
                st_->loop->unschedule(&node_);  // woken, and died before it ran
            }
            link_.reset();
            st_->release();
        }
        bool await_ready() const noexcept { return st_->running == 0; }
        template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
            if (st_->joiner) {  // one joiner at a time: a second would orphan the first
                busy_ = true;
                return false;
            }
            detail::promise_base* p = detail::base_of(h);
            node_.handle = h;
            node_.priority = detail::priority_of(p);
            st_->joiner = &node_;
            st_->joiner_cancelled = false;
            ++st_->refs;
            holds_ = true;
            const std::stop_token& tok = detail::stop_token_of(p);
            if (tok.stop_possible()) {
                link_.emplace(tok, detail::forward_stop{&st_->source});
                st_->joiner_stop = &tok;
            }
            return true;
        }
        result<void> await_resume();

    private:
        detail::group_state* st_;
        bool busy_ = false;
        bool holds_ = false;  // took a reference on *st_ when it suspended
        bool resumed_ = false;
        detail::ready_node node_;
        std::optional<std::stop_callback<detail::forward_stop>> link_;
    };
    [[nodiscard]] join_awaiter join() noexcept { return join_awaiter{st_}; }

private:
    void start(event_loop& loop, task<void> child, coev::source_location where);
    detail::group_state* st_;
    std::optional<std::stop_callback<detail::forward_stop>> parent_link_;
};

}  // namespace coev
