// runtime/src/task_group.cpp
#include <coev/runtime/task_group.hpp>

namespace coev {
namespace detail {

void group_state::fail(std::exception_ptr e, std::error_code ec) noexcept {
    if (e && orphaned && !joiner && loop) {
        // Nobody can join a destroyed group: report it as a detached task's would be.
        loop->unhandled(e);
        return;
    }
    if (!exception && !error) {
        exception = e;
        error = ec;
    }
    source.request_stop();
}

void group_state::child_done() noexcept {
    if (--running == 0 && joiner) {
        // Decided now, not when the joiner runs: a stop that comes after the last child ended
        // (in the same iteration, say) did not cut the join short.
        joiner_cancelled = joiner_stop && joiner_stop->stop_requested();
        joiner_stop = nullptr;
        ready_node* j = std::exchange(joiner, nullptr);
        loop->schedule(j);
    }
    release();
}

task<void> group_child(task<void> t, child_hold hold) {
    try {
        co_await std::move(t);
    } catch (...) {
        hold.state()->fail(std::current_exception(), {});
    }
    hold.done();
}

task<void> group_child(task<result<void>> t, child_hold hold) {
    try {
        result<void> r = co_await std::move(t);
        if (!r) hold.state()->fail(nullptr, r.error());
    } catch (...) {
        hold.state()->fail(std::current_exception(), {});
    }
    hold.done();
}

}  // namespace detail

task_group::task_group() : st_(new detail::group_state) {}

task_group::task_group(std::stop_token parent) : task_group() {
    if (parent.stop_possible()) parent_link_.emplace(parent, detail::forward_stop{&st_->source});
}

task_group::~task_group() {
    parent_link_.reset();
    st_->orphaned = true;
    if (st_->running > 0) st_->source.request_stop();
    // A task still joining keeps the state (it holds a reference) and resumes once the
    // cancelled children have ended.
    st_->release();
}

void task_group::start(event_loop& loop, task<void> child, coev::source_location where) {
    st_->loop = &loop;
    // At the spawning task's priority, as when_any's and with_timeout's children run: a joiner
    // must not wait on children that tasks of its own priority can starve.
    const int priority = event_loop::current() == &loop ? loop.running_priority() : -1;
    coev::spawn(loop, std::move(child), spawn_options{st_->source.get_token(), priority}, where);
}

namespace {
event_loop& running_loop() {
    event_loop* l = event_loop::current();
    if (!l) throw std::logic_error("task_group::spawn needs a running event_loop (or pass one)");
    return *l;
}
}  // namespace

void task_group::spawn(task<void> t, coev::source_location where) {
    start(running_loop(), detail::group_child(std::move(t), detail::child_hold(st_)), where);
}

void task_group::spawn(task<result<void>> t, coev::source_location where) {
    start(running_loop(), detail::group_child(std::move(t), detail::child_hold(st_)), where);
}

void task_group::spawn(event_loop& loop, task<void> t, coev::source_location where) {
    start(loop, detail::group_child(std::move(t), detail::child_hold(st_)), where);
}

result<void> task_group::join_awaiter::await_resume() {
    if (busy_) return make_error_code(error::busy);
    resumed_ = true;
    link_.reset();
    const bool cancelled = std::exchange(st_->joiner_cancelled, false);
    if (st_->exception) std::rethrow_exception(st_->exception);
    if (st_->error) return st_->error;
    // Cancelled: the children were cancelled for it and have ended. Like every other wait, it
    // says so (with_timeout turns this into timed_out).
    if (cancelled) return std::make_error_code(std::errc::operation_canceled);
    return {};
}

}  // namespace coev
