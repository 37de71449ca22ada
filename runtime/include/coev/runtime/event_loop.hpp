// coev/runtime/event_loop.hpp
// event_loop: libevent's event_base in coroutine form. One per thread; it owns the backend,
// the timers, the run queue, signal delivery and the queue of work posted from other threads.
#pragma once

#include <coev/runtime/detail/error_slot.hpp>
#include <coev/runtime/detail/ready_queue.hpp>
#include <coev/runtime/detail/timer_queue.hpp>
#include <coev/runtime/log.hpp>
#include <coev/runtime/source_location.hpp>
#include <coev/runtime/task.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

namespace coev {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = clock::duration;

/// What a backend can do; loop_config::require asks for a set of these.
enum class backend_feature : unsigned {
    none = 0,
    edge_triggered = 1,   ///< readiness reported on change (epoll ET, kqueue EV_CLEAR)
    o1_add_remove = 2,    ///< adding or removing a watched fd is O(1)
    arbitrary_fds = 4,    ///< any fd number may be watched (select cannot exceed FD_SETSIZE)
    completion = 8,       ///< operations are submitted and complete (io_uring, IOCP)
};
constexpr backend_feature operator|(backend_feature a, backend_feature b) noexcept {
    return backend_feature(unsigned(a) | unsigned(b));
}
constexpr bool has_all(backend_feature have, backend_feature want) noexcept {
    return (unsigned(have) & unsigned(want)) == unsigned(want);
}

/// How the loop reads time.
enum class clock_mode {
    monotonic,     ///< the system's monotonic clock
    manual,        ///< moves only with advance(); run() never sleeps waiting for a timer
    auto_advance,  ///< like manual, but an idle loop jumps to the next deadline at once
};

/// libevent's event_config: which backend and how the loop behaves.
struct loop_config {
    std::string prefer;                 ///< backend name tried first ("epoll", ...)
    std::vector<std::string> avoid;     ///< backend names never used
    backend_feature require = backend_feature::none;
    bool ignore_env = false;            ///< ignore COEV_BACKEND
    int priorities = 1;                 ///< run-queue priorities; 0 runs first
    clock_mode clock = clock_mode::monotonic;
    bool precise_time = false;          ///< now() reads the clock on every call
};

/// Returned by run(): whether it ended because nothing was pending, stop() or stop_after().
enum class run_mode {
    until_empty,    ///< return when nothing is pending (event_base_dispatch)
    until_stopped,  ///< keep waiting when empty (EVLOOP_NO_EXIT_ON_EMPTY)
};

struct loop_counters {
    std::uint64_t iterations = 0;   ///< backend waits, blocking or not
    std::uint64_t resumed = 0;      ///< coroutine steps run from the run queue
    std::uint64_t ns_blocked = 0;   ///< time spent inside the backend's wait
    /// System calls the backend made to wait and to hand work to the kernel (epoll_wait, ppoll,
    /// pselect, io_uring_enter); not the reads and writes themselves.
    std::uint64_t backend_calls = 0;
};

class event_loop;
namespace detail {
// Initial-exec TLS: reading it is one instruction, even from a shared library.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local event_loop* current_loop;
}  // namespace detail

/// Backend names this build can use, best first (event_get_supported_methods).
std::vector<std::string_view> supported_backends();

namespace detail {

class backend;
class signal_hub;
struct loop_list;
struct io_wait;

/// The part of every wait the loop can cancel: an armed wait completes exactly once, with
/// success, an error, `timed_out` or `operation_canceled`, and is then queued to run.
/// 56 bytes: the small fields share the error slot's padding.
struct waiter {
    using cancel_fn = void (*)(waiter*, std::error_code) noexcept;
    ready_node node;
    cancel_fn cancel = nullptr;            // deregisters and completes with the code given
    event_loop* loop = nullptr;            // the loop it waits on (see each kind for when set)
    coev::source_location where;
    [[no_unique_address]] error_slot ec;
    std::atomic<bool> cancel_posted{false};  // a stop request from another thread is queued
    bool stop_armed = false;                 // its stop_link holds a callback
    std::uint8_t aux = 0;                    // free for the kind of wait to use
};
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__))
static_assert(sizeof(waiter) == 56, "waiter grew: every sleeping frame carries one");
#endif

/// Cached per-fd state: who waits, and readiness last reported (the readiness cache). 32
/// bytes: an entry never straddles two cache lines, and indexing the table is a shift.
struct alignas(32) fd_state {
    /// Set in `ready` once the peer closed its side (or the fd failed): reads will never
    /// block again, whatever a short read suggests.
    static constexpr std::uint8_t read_closed = 4;
    /// Set in `ready` once urgent (out-of-band) data was reported: recv() stops short at the
    /// urgent mark with bytes queued behind it, so a short read no longer proves the socket
    /// drained (an edge-triggered backend would wait for an edge that never comes).
    static constexpr std::uint8_t urgent = 8;
    io_wait* reader = nullptr;
    io_wait* writer = nullptr;
    std::uint8_t ready = 3;       // bit 0 readable, bit 1 writable; "maybe" until EAGAIN
    bool registered = false;      // known to the backend
    bool always_ready = false;    // regular files: epoll refuses them, they never block
    bool not_socket = false;      // recv()/send() said ENOTSOCK: use read()/write()
    bool seen = false;            // first use checked (debug mode: is it non-blocking?)
    std::uint8_t kind = 0;        // 0 not known yet, 1 a SOCK_STREAM socket, 2 anything else
    std::uint8_t watched = 0;     // level backends: the directions the backend watches
    /// The directions someone waits on: bit 0 read, bit 1 write.
    std::uint8_t wanted() const noexcept {
        return std::uint8_t((reader ? 1u : 0u) | (writer ? 2u : 0u));
    }
};

/// The stop callback every coev awaiter installs: cancels its waiter through the loop.
struct cancel_on_stop {
    waiter* w;
    void operator()() noexcept;
};

/// Stop callbacks of armed waits, out of the awaiters: one slot, the callback's size, per
/// wait whose task has a stop token that can fire, taken when the wait arms and given back
/// when it ends, on the loop's thread. Freed slots are reused first (a busy task's next wait
/// finds its slot in cache); the chunks stay until the loop is destroyed. An awaiter keeps
/// only a pointer: a callback is 48 bytes, and every awaiter in every frame carried them,
/// used or not (a million sleeping tasks: docs/benchmarks.md). Slots are no larger than the
/// callback: a burst of stop-token waits on a new loop pays for every fresh byte.
class stop_pool {
public:
    using callback = std::stop_callback<cancel_on_stop>;
    union slot {
        alignas(callback) unsigned char storage[sizeof(callback)];
        slot* next_free;
    };

    stop_pool() noexcept = default;
    stop_pool(const stop_pool&) = delete;
    stop_pool& operator=(const stop_pool&) = delete;
    ~stop_pool();
    /// A free slot, or null when no memory is left.
    slot* take() noexcept {
        if (slot* s = free_) [[likely]] {
            free_ = s->next_free;
            return s;
        }
        if (next_ != end_) return next_++;
        return grow();
    }
    void give(slot* s) noexcept {
        s->next_free = free_;
        free_ = s;
    }

private:
    struct chunk {
        chunk* prev;
        std::size_t bytes;  // of the whole allocation, this header included
    };
    slot* grow() noexcept;
    slot* free_ = nullptr;
    slot* next_ = nullptr;  // unused slots of the newest chunk
    slot* end_ = nullptr;
    chunk* chunks_ = nullptr;
};

/// An awaiter's hold on its wait's stop callback (in a stop_pool slot while armed; the
/// waiter's `stop_armed` says whether it is). Not initialized until armed: constructing an
/// awaiter writes nothing here.
class stop_link {
public:
    stop_link() noexcept {}
    stop_link(const stop_link&) = delete;
    stop_link& operator=(const stop_link&) = delete;
    /// Installs the callback; `w.loop` must be set (a stop already requested cancels at once).
    /// With no memory for it, the wait is cancelled at once with not_enough_memory: returns
    /// false then.
    bool arm(const std::stop_token& t, waiter& w) noexcept;
    /// Removes it, waiting for a run of it on another thread to end. Idempotent. `w.loop` must
    /// still be the loop it was armed on (the slot goes back to that loop's pool).
    void disarm(waiter& w) noexcept {
        if (w.stop_armed) [[unlikely]] release(w);
    }

private:
    void release(waiter& w) noexcept;
    stop_pool::slot* slot_;
};

}  // namespace detail

/// A coroutine event loop. Not thread-safe except post(), stop() and the cross-thread
/// cancellation of waits; everything else is called on the thread running it. It may be made
/// on one thread, run on another and destroyed on a third, one at a time.
class event_loop {
public:
    event_loop();
    explicit event_loop(const loop_config& config);
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    /// The loop running on this thread, or null outside run()/run_once()/poll().
    static event_loop* current() noexcept { return detail::current_loop; }

    /// Runs until nothing is pending (or forever with run_mode::until_stopped), stop(), or the
    /// deadline of stop_after(). run(), run_once() and poll() throw std::logic_error when
    /// called from a task of this same loop.
    void run(run_mode mode = run_mode::until_empty);
    /// One iteration: waits for something to happen if nothing is ready, runs what became
    /// ready (EVLOOP_ONCE). Returns has_pending(). With nothing pending it returns at once.
    bool run_once();
    /// One iteration without waiting (EVLOOP_NONBLOCK). Returns has_pending().
    bool poll();
    /// loopbreak: run() returns as soon as the running task step suspends. Thread-safe.
    void stop() noexcept;
    /// loopexit: after `d`, run() returns once everything already due has run.
    void stop_after(duration d);
    bool got_stop() const noexcept { return got_stop_; }
    bool got_exit() const noexcept { return got_exit_; }

    /// Time cached once per iteration (or read afresh with precise_time).
    time_point now() const noexcept { return precise_ ? read_clock() : now_; }
    void update_time() noexcept { now_ = read_clock(); }
    /// Manual clocks only: moves time forward and runs what became due. Never sleeps.
    void advance(duration d);

    /// Runs `fn` on this loop's thread in a coming iteration. Safe from any thread.
    void post(std::function<void()> fn);

    /// True while anything can still make progress: ready tasks, fd waits, timers, signal
    /// waits, posted work.
    bool has_pending() const noexcept;

    std::string_view backend_name() const noexcept;
    backend_feature features() const noexcept;
    int priorities() const noexcept { return int(ready_.size()); }
    loop_counters counters() const noexcept;
    /// Writes every pending wait: fd and interest, timer deadlines (a sleep's or an fd wait's
    /// with where it was written), signals, and how many tasks are ready.
    void dump(std::ostream& out) const;

    /// Handler for exceptions that escape spawned tasks; default: log and keep running.
    void set_exception_handler(std::function<void(std::exception_ptr)> h) {
        on_exception_ = std::move(h);
    }

    /// Re-creates the backend and internal fds in a forked child (event_reinit).
    void reinit_after_fork();

    // ---- used by awaiters and the rest of coev; not for application code ----
    void schedule(detail::ready_node* n) noexcept { schedule(n, n->priority); }
    /// The same, when the caller knows n->priority (spares a read of a cold node).
    void schedule(detail::ready_node* n, std::uint8_t priority) noexcept {
        ready_[priority].push(n);
        if (priority < running_priority_) preempt_ = true;
    }
    /// The priority of the tasks running now, or -1 between batches and outside run().
    int running_priority() const noexcept {
        return running_priority_ == ~0u ? -1 : int(running_priority_);
    }
    /// The destructor has begun: nothing queued runs any more.
    bool dying() const noexcept { return dying_; }
    /// Queues a spawned task's start; may throw std::bad_alloc, and then queues nothing.
    void queue_start(detail::promise_base& p, std::coroutine_handle<> h, std::stop_token&& token,
                     std::uint8_t priority, bool detached) {
        ready_[priority].push_start(&p, h, std::move(token), detached);
        if (priority < running_priority_) preempt_ = true;
    }
    /// Queues a waiter to resume with its current `ec`.
    void complete(detail::waiter* w) noexcept { schedule(&w->node); }
    detail::timer_queue& timers() noexcept { return timers_; }
    /// Where its waits keep their stop callbacks.
    detail::stop_pool& stop_slots() noexcept { return stop_slots_; }
    /// The backend submits operations (io_uring) rather than reporting readiness.
    bool completion() const noexcept { return completion_; }
    /// Completion backends: submits `w`'s operation (see detail::backend::submit).
    void submit_io(detail::io_wait& w, detail::fd_state& st) noexcept;
    /// Completion backends report an operation's result here (bytes, revents or -errno).
    void on_complete(detail::io_wait* w, int res) noexcept;
    /// Calls f(io_wait&, fd_state&) for every wait on an fd (a completion backend moving to a
    /// new ring submits those in flight again).
    template <class F> void for_each_fd_wait(F&& f) {
        for (detail::fd_state& st : fds_)
            for (detail::io_wait* w : {st.reader, st.writer})
                if (w) f(*w, st);
    }
    /// Calls f(io_wait&) for every operation still in flight whose fd was closed (they are
    /// being cancelled, and no fd's state points at them any more).
    template <class F> void for_each_orphan(F&& f) {
        const std::vector<detail::io_wait*> now = orphans_;  // f may complete them
        for (detail::io_wait* w : now) f(*w);
    }
    /// Who waits on `fd` changed; level-triggered backends adjust what they watch. Less
    /// interest is told to the backend just before it next waits (flush_interest): a task
    /// resumed from a read usually reads again before then, and the backend's entry for its
    /// fd need not change at all.
    void interest_changed(int fd, detail::fd_state& st) noexcept {
        if (!level_backend_) return;
        const std::uint8_t want = st.wanted();
        if (want == st.watched) return;
        if (want & ~st.watched) update_interest(fd, st);
        else fade_interest(fd, st);
    }
    /// Has the backend watch `fd` (see detail::backend::watch).
    std::error_code watch_fd(int fd, detail::fd_state& st, bool rearm) noexcept;
    void cancel_wait(detail::io_wait& w, std::error_code ec) noexcept;
    /// Deregisters a wait whose frame is being destroyed; nothing is resumed.
    void drop_wait(detail::io_wait& w) noexcept;
    /// Takes a queued wake-up back (its frame is being destroyed).
    void unschedule(detail::ready_node* n) noexcept { ready_[n->priority].remove(n); }
    /// A write_some to `fd` may go straight to send(), with no look at its entry: it is a
    /// socket, its last write_some on this loop went out whole (and no try_write_some since
    /// fell short) and nobody waits to write to it. One byte
    /// per fd, so a loop writing to thousands of sockets keeps the hints in cache where the
    /// entries would miss. A hint only: a send that does not go out whole takes the usual path.
    bool may_send_now(int fd) const noexcept {
        auto i = static_cast<std::size_t>(fd);
        return i < send_now_.size() && send_now_[i];
    }
    void set_send_now(int fd, bool on) noexcept {
        auto i = static_cast<std::size_t>(fd);
        if (i < send_now_.size()) send_now_[i] = on;
        else if (on) grow_send_now(i);
    }
    /// `fd`'s entry if the table has one yet (arm_now's look: it never grows the table).
    detail::fd_state* known_fd(int fd) noexcept {
        auto i = static_cast<std::size_t>(fd);
        return i < fds_.size() ? &fds_[i] : nullptr;
    }
    detail::fd_state& fd(int fd) {
        auto i = static_cast<std::size_t>(fd);
        return i < fds_.size() ? fds_[i] : grow_fds(i);
    }
    /// Reads or writes what `fd` takes now, never waiting (coev::try_read_some); bytes or
    /// -errno, -EAGAIN when it would block.
    long try_read(int fd, void* buf, std::size_t len) noexcept;
    long try_write(int fd, const void* buf, std::size_t len) noexcept;
    /// Forgets everything cached for `fd` before it is closed; waiters resume with
    /// error::closed.
    void forget_fd(int fd) noexcept;
    /// forget_fd() on every loop created on this thread (what unique_fd::close() calls, so a
    /// close outside run() still reaches the loop).
    static void forget_fd_everywhere(int fd) noexcept;
    /// Called from a stop callback: cancels now on this thread, else queues it.
    void request_cancel(detail::waiter* w) noexcept;
    /// Removes a queued cross-thread cancel for `w` (its awaiter is going away).
    void retract_cancel(detail::waiter* w) noexcept;
    void add_root(detail::promise_base* p) noexcept {
        p->root.prev = nullptr;
        p->root.next = roots_;
        if (roots_) roots_->root.prev = p;
        roots_ = p;
    }
    void remove_root(detail::promise_base* p) noexcept;
    /// Debug mode: where a root was spawned (for reports about it).
    void note_root_site(const detail::promise_base* p, coev::source_location where);
    coev::source_location root_site(const detail::promise_base* p) const noexcept;
    void drop_root_site(const detail::promise_base* p) noexcept;
    void unhandled(std::exception_ptr e) noexcept;
    detail::signal_hub& signals();
    std::error_code watch_signal_fd(int fd) noexcept;
    void count_wait(int delta) noexcept { waits_ += delta; }
    std::uint8_t default_priority() const noexcept { return default_priority_; }
    /// queue_start() at the default priority: spawn()'s common case.
    void queue_start_default(detail::promise_base& p, std::coroutine_handle<> h,
                             std::stop_token&& token, bool detached) {
        default_ready_->push_start(&p, h, std::move(token), detached);
        if (default_priority_ < running_priority_) preempt_ = true;
    }
    /// Clamp for priorities given by users.
    std::uint8_t clamp_priority(int p) const noexcept;
    bool on_loop_thread() const noexcept { return current() == this; }
    /// An fd operation that would finish without suspending asks first: a task that finds
    /// its fd ready again and again (a peer that never stops sending) would otherwise never
    /// give the loop back. Past `step_budget` such operations in one resumption it suspends,
    /// and the operation is done for it in the next iteration (Tokio's coop budget).
    bool take_budget() noexcept { return ++fast_ops_ <= step_budget; }
    static constexpr unsigned step_budget = 128;
    /// A readiness wait armed while the cache already says ready (the task ran out of budget):
    /// no edge will report it, so the next iteration does.
    void refire(detail::io_wait* w) { refire_.push_back(w); }
    /// Backends report readiness here: bit 0 readable, bit 1 writable.
    void on_fd_event(int fd, std::uint8_t bits) noexcept;
    /// Backends with a batch of events: starts loading `fd`'s entry, then (a step later, once
    /// it is there) its waiters, so on_fd_event() does not wait on memory between the batch's
    /// system calls.
    void prefetch_fd(int fd) const noexcept {
        if (static_cast<std::size_t>(fd) < fds_.size()) __builtin_prefetch(&fds_[std::size_t(fd)]);
    }
    void prefetch_waiters(int fd) const noexcept {
        if (static_cast<std::size_t>(fd) >= fds_.size()) return;
        const detail::fd_state& st = fds_[std::size_t(fd)];
        for (const detail::io_wait* w : {st.reader, st.writer})
            if (w) {
                auto* p = reinterpret_cast<const char*>(w);
                __builtin_prefetch(p, 1);
                __builtin_prefetch(p + 64, 1);
                __builtin_prefetch(p + 120, 1);
            }
    }

private:
    time_point read_clock() const noexcept;
    void iterate(bool may_block);
    void run_ready();
    void drain_posted();
    struct scope;
    void note_thread() noexcept;
    detail::fd_state& grow_fds(std::size_t i);
    void grow_send_now(std::size_t i) noexcept;
    void fade_interest(int fd, detail::fd_state& st) noexcept;
    void flush_interest() noexcept;
    void update_interest(int fd, detail::fd_state& st) noexcept;
    void wake_fd_waiter(int fd, detail::fd_state& st, detail::io_wait*& slot) noexcept;

    std::unique_ptr<detail::backend> backend_;
    std::vector<detail::ready_list> ready_;
    detail::timer_queue timers_;
    std::vector<detail::fd_state> fds_;
    std::vector<std::uint8_t> send_now_;  // see may_send_now()
    std::vector<int> fading_;             // fds whose waiters left (interest_changed)
    std::vector<detail::io_wait*> orphans_;  // see for_each_orphan()
    std::unique_ptr<detail::signal_hub> signals_;
    detail::stop_pool stop_slots_;  // outlives the waits the destructor's body ends
    detail::promise_base* roots_ = nullptr;
    // Debug mode only: where each root was spawned (a frame has no room to spare for it).
    std::unordered_map<const detail::promise_base*, coev::source_location> root_sites_;
    std::function<void(std::exception_ptr)> on_exception_;
    struct exit_node : detail::timer_node {
        event_loop* loop = nullptr;
    };
    exit_node exit_timer_;
    loop_counters counters_;
    time_point now_{};
    time_point manual_now_{};
    clock_mode clock_;
    bool precise_ = false;
    std::uint8_t default_priority_ = 0;        // the middle one (libevent's default)
    detail::ready_list* default_ready_ = nullptr;  // its queue
    int waits_ = 0;                   // armed fd and signal waits
    bool level_backend_ = false;      // the backend needs interest_changed()
    bool completion_ = false;         // the backend completes operations itself
    // The lists of the threads that created or ran this loop (event_loop.cpp), and the thread
    // running it now (none when idle).
    std::vector<std::shared_ptr<detail::loop_list>> threads_;
    std::atomic<std::thread::id> runner_{};
    unsigned running_priority_ = ~0u;
    bool preempt_ = false;
    unsigned fast_ops_ = 0;                 // see take_budget()
    std::vector<detail::io_wait*> refire_;  // see refire()
    std::vector<detail::io_wait*> refire_spare_;
    bool dying_ = false;
    std::atomic<bool> stop_flag_{false};
    bool exit_flag_ = false;
    bool got_stop_ = false;
    bool got_exit_ = false;

    std::mutex post_mutex_;
    std::vector<std::function<void()>> posted_;
    std::vector<detail::waiter*> remote_cancels_;
    std::atomic<bool> post_pending_{false};
};

namespace detail {

/// start_root() for a priority, in debug mode, on a dying loop or for a promise not where
/// GCC and Clang usually put it; throws std::invalid_argument for one more than 2 KiB into
/// its frame (promise_base::frame_words cannot say where that frame starts).
void start_root_noted(event_loop& loop, std::coroutine_handle<> h, promise_base& p,
                      bool detached, std::stop_token&& token, int priority,
                      coev::source_location where);
/// Makes `h` a root task of `loop` and queues it to start. Throws std::bad_alloc and changes
/// nothing when the queue cannot grow.
/// The token is taken by reference and moved once, where it is stored. The common case (no
/// priority, no debug bookkeeping, a live loop) queues inline: every spawn() comes here.
inline void start_root(event_loop& loop, std::coroutine_handle<> h, promise_base& p,
                       bool detached, std::stop_token&& token, int priority,
                       coev::source_location where) {
    // The promise's place in the frame is a constant once spawn() is inlined.
    const std::ptrdiff_t offset = reinterpret_cast<char*>(&p) - static_cast<char*>(h.address());
    if (priority < 0 && offset == usual_promise_offset && !loop.dying() && !debug_mode())
        [[likely]]
        loop.queue_start_default(p, h, std::move(token), detached);
    else
        start_root_noted(loop, h, p, detached, std::move(token), priority, where);
}
/// Writes a root's bookkeeping into its promise and links it into the loop's roots.
void init_root(event_loop& loop, std::coroutine_handle<> h, promise_base& p, bool detached,
               std::stop_token&& token, std::uint8_t prio) noexcept;

}  // namespace detail

/// Options for spawn(): a stop token for the task tree and a run-queue priority.
struct spawn_options {
    std::stop_token stop;
    int priority = -1;  ///< -1: the loop's middle priority (libevent's default)
};

/// Detaches `t` onto `loop`; it starts in a coming iteration. An exception escaping it goes
/// to the loop's exception handler. Throws std::bad_alloc when the run queue cannot grow, and
/// std::invalid_argument for a promise aligned so strictly that it lies more than 2 KiB into
/// its frame (`t` is then destroyed, never started).
template <class T>
void spawn(event_loop& loop, task<T> t, spawn_options opts = {},
           coev::source_location where = coev::source_location::current()) {
    auto h = t.handle();
    if (!h) throw std::invalid_argument("coev::spawn: an empty (moved-from) task");
    detail::start_root(loop, h, h.promise(), true, std::move(opts.stop), opts.priority, where);
    (void)t.release();  // the loop owns the frame now
}

/// Runs `t` to completion on a fresh loop and returns its value (like asyncio.run).
template <class T>
T run(task<T> t, const loop_config& config = {}) {
    event_loop loop(config);
    task<T> owned = std::move(t);  // declared after the loop: its frame dies first
    auto h = owned.handle();
    detail::start_root(loop, h, h.promise(), false, std::stop_token{}, -1,
                       coev::source_location::current());
    loop.run();
    if (!h.done()) {
        if (h.promise().is_root) {
            loop.remove_root(&h.promise());
            h.promise().is_root = false;
        }
        throw std::logic_error("coev::run: the task is suspended on something nothing will wake");
    }
    return h.promise().take();
}

}  // namespace coev
