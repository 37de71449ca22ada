// runtime/src/event_loop.cpp
// The loop itself: backend choice, one iteration (wait, timers, run queue), run modes, posted
// work, roots, dump.
#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/io.hpp>
#include <coev/runtime/log.hpp>

#include "backend/backend.hpp"
#include "config.hpp"
#include "signal_hub.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <ostream>
#include <sstream>
#include <sys/stat.h>

namespace coev {

namespace {

struct backend_entry {
    std::string_view name;
    backend_feature features;
    std::unique_ptr<detail::backend> (*make)();
};

// Preference order when nothing is asked (best first).
const backend_entry all_backends[] = {
#if COEV_HAVE_IO_URING
    {"io_uring",
     backend_feature::completion | backend_feature::o1_add_remove |
         backend_feature::arbitrary_fds,
     &detail::make_uring_backend},
#endif
    {"epoll",
     backend_feature::edge_triggered | backend_feature::o1_add_remove |
         backend_feature::arbitrary_fds,
     &detail::make_epoll_backend},
    {"poll", backend_feature::arbitrary_fds, &detail::make_poll_backend},
    {"select", backend_feature::none, &detail::make_select_backend},
};

std::unique_ptr<detail::backend> choose_backend(const loop_config& cfg) {
    std::string prefer = cfg.prefer;
    if (!cfg.ignore_env) {
        if (const char* env = std::getenv("COEV_BACKEND"); env && *env) prefer = env;
    }
    auto allowed = [&](const backend_entry& b) {
        if (std::find(cfg.avoid.begin(), cfg.avoid.end(), b.name) != cfg.avoid.end())
            return false;
        return has_all(b.features, cfg.require);
    };
    std::vector<const backend_entry*> order;
    if (!prefer.empty()) {
        bool known = false;
        for (const auto& b : all_backends) {
            if (b.name == prefer) {
                known = true;
                if (allowed(b)) order.push_back(&b);
            }
        }
        if (!known) log(log_level::warn, "coev: unknown backend '" + prefer + "' ignored");
    }
    for (const auto& b : all_backends)
        if (allowed(b) && (order.empty() || order.front() != &b)) order.push_back(&b);
    std::string failures;
    for (const backend_entry* b : order) {
        try {
            return b->make();
        } catch (const std::system_error& e) {
            log(log_level::warn, std::string("coev: backend ") + std::string(b->name) +
                                     " unavailable: " + e.what());
            failures += std::string(failures.empty() ? "" : "; ") + e.what();
        }
    }
    throw std::system_error(make_error_code(error::no_backend),
                            failures.empty() ? "no backend satisfies the loop_config" : failures);
}

// Frames resumed in a batch are usually cold (an epoll batch or a run of expired timers
// touches many tasks once each): start loading the next one while the current one runs.
inline void prefetch_frame(void* frame) noexcept {
    auto* p = static_cast<const char*>(frame);
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 128);
    __builtin_prefetch(p + 192);
}

// How many pending starts ahead run_ready() loads: about one memory latency of work.
constexpr std::size_t start_lookahead = 8;

// A task's first run writes its promise and builds its first awaiter: most of a small frame,
// whose size the handle does not tell. 512 bytes covers a frame like bench/timers' (320; six
// lines measured no better than eight, nor did prefetching the stop token's state).
inline void prefetch_start(void* frame) noexcept {
    auto* p = static_cast<const char*>(frame);
    for (int line = 0; line < 8; ++line) __builtin_prefetch(p + 64 * line, 1);
}

// Writes a root's bookkeeping into its promise (init_root(), and the loop starting a task).
[[gnu::always_inline]] inline void write_root(event_loop& loop, std::coroutine_handle<> h,
                                              detail::promise_base& p, bool detached,
                                              std::stop_token&& token,
                                              std::uint8_t prio) noexcept {
    detail::root_info* r = &p.root;
    p.is_root = true;
    p.root_loop = &loop;
    p.detached = detached;
    p.frame_words =
        std::uint8_t((reinterpret_cast<char*>(&p) - static_cast<char*>(h.address())) / 8);
    // Construct over the fresh promise's empty token rather than assign to it: assignment
    // reads the old state first, a cache miss per start when many frames are cold. Ending an
    // empty stop_token's life without its destructor has no effect ([basic.life]).
    std::construct_at(&r->token, std::move(token));
    p.stop = &r->token;
    p.priority = prio;
    loop.add_root(&p);
}

}  // namespace

[[gnu::tls_model("initial-exec")]] constinit thread_local event_loop* detail::current_loop = nullptr;

std::vector<std::string_view> supported_backends() {
    std::vector<std::string_view> out;
    for (const auto& b : all_backends) out.push_back(b.name);
    return out;
}

// The loops created on a thread or run on it: a unique_fd closed on that thread, inside a
// task or not, must reach them. Shared, since a loop may outlive a thread it ran on; locked,
// since a loop may be destroyed on another thread.
struct detail::loop_list {
    std::mutex mutex;
    std::vector<event_loop*> loops;
};

namespace {
thread_local const std::shared_ptr<detail::loop_list> thread_loops =
    std::make_shared<detail::loop_list>();
}  // namespace

void event_loop::forget_fd_everywhere(int fd) noexcept {
    detail::loop_list& list = *thread_loops;
    const std::thread::id me = std::this_thread::get_id();
    std::lock_guard lock(list.mutex);
    for (event_loop* l : list.loops) {
        // Never one running on another thread now: its tables are that thread's.
        const std::thread::id runner = l->runner_.load(std::memory_order_acquire);
        if (runner == std::thread::id{} || runner == me) l->forget_fd(fd);
    }
}

void event_loop::note_thread() noexcept {
    detail::loop_list* mine = thread_loops.get();
    for (const auto& l : threads_)
        if (l.get() == mine) return;
    try {
        threads_.push_back(thread_loops);
        std::lock_guard lock(mine->mutex);
        mine->loops.push_back(this);
    } catch (...) {  // out of memory: closes on this thread just will not reach us
    }
}

struct event_loop::scope {
    event_loop* loop;
    event_loop* saved;
    std::thread::id saved_runner;
    // `to_run`: the loop is about to run here (not to be destroyed: a backend bound to one
    // thread then moves to this one during quiesce(), cancelling instead of resubmitting).
    explicit scope(event_loop* l, bool to_run = true) noexcept
        : loop(l),
          saved(detail::current_loop),
          saved_runner(l->runner_.exchange(std::this_thread::get_id(), std::memory_order_acq_rel)) {
        detail::current_loop = l;
        l->note_thread();
        if (to_run) {
            l->backend_->on_thread();
            if (l->signals_) [[unlikely]] l->signals_->on_thread();
        }
    }
    ~scope() {
        loop->runner_.store(saved_runner, std::memory_order_release);
        detail::current_loop = saved;
    }
};


event_loop::event_loop() : event_loop(loop_config{}) {}

event_loop::event_loop(const loop_config& config)
    : backend_(choose_backend(config)),
      ready_(static_cast<std::size_t>(std::clamp(config.priorities, 1, 256))),
      clock_(config.clock),
      precise_(config.precise_time) {
    default_priority_ = std::uint8_t(ready_.size() / 2);
    default_ready_ = &ready_[default_priority_];
    completion_ = has_all(backend_->features(), backend_feature::completion);
    backend_->attach(*this);
    note_thread();
    level_backend_ =
        !completion_ && !has_all(backend_->features(), backend_feature::edge_triggered);
    if (clock_ != clock_mode::monotonic) manual_now_ = clock::now();
    update_time();
    exit_timer_.loop = this;
    exit_timer_.fire = [](detail::timer_node* n) noexcept {
        static_cast<exit_node*>(n)->loop->exit_flag_ = true;
    };
}

event_loop::~event_loop() {
    // A post(), stop() or cancel from another thread that the loop already saw may still be
    // waking the backend: it holds this lock until it is done.
    { std::lock_guard lock(post_mutex_); }
    scope s(this, false);  // awaiters that deregister while their frames die look us up
    // The list of the thread that created us (a loop may be destroyed elsewhere).
    for (const auto& list : threads_) {
        std::lock_guard lock(list->mutex);
        std::erase(list->loops, this);
    }
    // The kernel may still write into buffers that live in the frames about to die.
    backend_->quiesce(*this);
    // Queued wake-ups point into frames about to die; nothing runs again. Tasks spawned and
    // never started belong to no one else. From here a spawn (from a destructor in a dying
    // frame) makes a root that is never scheduled, and the loop below destroys it.
    dying_ = true;
    for (auto& q : ready_) {
        while (!q.starts.empty()) {
            const detail::start_queue::view s = q.front_start();
            q.drop_start();
            // Suspended at its start, as far as its author can tell.
            if (debug_mode()) report_misuse("task still suspended when its loop was destroyed",
                                            root_site(s.promise));
            drop_root_site(s.promise);
            if (s.detached) s.handle.destroy();  // run()'s task belongs to run()
        }
        q.reset();
    }
    while (roots_) {
        detail::promise_base* p = roots_;
        if (debug_mode()) report_misuse("task still suspended when its loop was destroyed",
                                        root_site(p));
        remove_root(p);
        p->is_root = false;
        if (p->detached) p->root_handle().destroy();  // run()'s task belongs to run()
    }
    timers_.cancel(exit_timer_);
    signals_.reset();
    backend_.reset();
}

time_point event_loop::read_clock() const noexcept {
    return clock_ == clock_mode::monotonic ? clock::now() : manual_now_;
}

std::string_view event_loop::backend_name() const noexcept { return backend_->name(); }
backend_feature event_loop::features() const noexcept { return backend_->features(); }

std::uint8_t event_loop::clamp_priority(int p) const noexcept {
    if (p < 0) return default_priority();
    return static_cast<std::uint8_t>(std::min<std::size_t>(std::size_t(p), ready_.size() - 1));
}

bool event_loop::has_pending() const noexcept {
    for (const auto& q : ready_)
        if (!q.empty()) return true;
    if (waits_ > 0 || post_pending_.load(std::memory_order_acquire)) return true;
    // Under a manual clock only advance() makes a timer due; one armed already due still fires.
    return !timers_.empty() && (clock_ != clock_mode::manual || timers_.next_deadline() <= now_);
}

namespace {
// A task that runs its own loop would interleave two iterations (and a nested run clears the
// stop flag its caller may have set): refused.
void refuse_reentry_of(const event_loop* l) {
    if (detail::current_loop == l)
        throw std::logic_error("coev::event_loop: run(), run_once() or poll() called from a task "
                               "of the same loop");
}
}  // namespace

void event_loop::run(run_mode mode) {
    refuse_reentry_of(this);
    scope s(this);
    stop_flag_.store(false, std::memory_order_relaxed);
    exit_flag_ = false;
    while (!stop_flag_.load(std::memory_order_relaxed) && !exit_flag_) {
        if (mode == run_mode::until_empty && !has_pending()) break;
        iterate(true);
    }
    // stop_after() (loopexit) returns once what was already due has run: the tasks woken with
    // the exit at lower priorities too, which one iteration (one priority) left queued.
    for (std::size_t pass = 0; exit_flag_ && pass < ready_.size() &&
                               !stop_flag_.load(std::memory_order_relaxed);
         ++pass) {
        bool any = false;
        for (const auto& q : ready_) any = any || !q.empty();
        if (!any) break;
        run_ready();
    }
    got_stop_ = stop_flag_.load(std::memory_order_relaxed);
    got_exit_ = exit_flag_;
}

bool event_loop::run_once() {
    refuse_reentry_of(this);
    scope s(this);
    stop_flag_.store(false, std::memory_order_relaxed);
    exit_flag_ = false;
    // As EVLOOP_ONCE: a loop with nothing pending has nothing to wait for, so it returns.
    iterate(has_pending());
    got_stop_ = stop_flag_.load(std::memory_order_relaxed);
    got_exit_ = exit_flag_;
    return has_pending();
}

bool event_loop::poll() {
    refuse_reentry_of(this);
    scope s(this);
    stop_flag_.store(false, std::memory_order_relaxed);
    exit_flag_ = false;
    iterate(false);
    got_stop_ = stop_flag_.load(std::memory_order_relaxed);
    got_exit_ = exit_flag_;
    return has_pending();
}

void event_loop::stop() noexcept {
    if (on_loop_thread()) {
        stop_flag_.store(true, std::memory_order_relaxed);
        return;
    }
    // Flag and wake-up under the lock the destructor takes: once the loop can see the flag it
    // may return from run() and be destroyed, and the wake-up must not come after that.
    std::lock_guard lock(post_mutex_);
    stop_flag_.store(true, std::memory_order_relaxed);
    backend_->wake();
}

void event_loop::stop_after(duration d) {
    // Outside run() the cached time is as old as the last iteration: from the clock, then
    // (moving the cache forward, as the timers expect; never back).
    if (current() != this) update_time();
    timers_.add_after(exit_timer_, now(), d);  // saturates: duration::max() never fires
}

void event_loop::advance(duration d) {
    if (clock_ == clock_mode::monotonic)
        throw std::logic_error("event_loop::advance needs a manual or auto_advance clock");
    scope s(this);
    // A stop() that ended an earlier run() (or came since) is not for this call.
    stop_flag_.store(false, std::memory_order_relaxed);
    manual_now_ += d;
    update_time();
    timers_.expire(now_);
    // Run what became due, what that wakes in turn and the timers those tasks arm already due
    // (sleep_for(0ms), a late interval tick), without waiting for anything.
    while (true) {
        bool any = !timers_.empty() && timers_.next_deadline() <= now_;
        for (const auto& q : ready_) any = any || !q.empty();
        if (!any || stop_flag_.load(std::memory_order_relaxed)) break;
        iterate(false);
    }
}

void event_loop::iterate(bool may_block) {
    ++counters_.iterations;
    if (post_pending_.load(std::memory_order_acquire)) drain_posted();

    bool ready = false;
    for (const auto& q : ready_) ready = ready || !q.empty();

    std::int64_t timeout = -1;
    if (!may_block || ready || !refire_.empty() || stop_flag_.load(std::memory_order_relaxed) ||
        exit_flag_) {
        timeout = 0;
    } else if (clock_ == clock_mode::monotonic) {
        if (!timers_.empty()) {
            update_time();  // tasks may have run a while since the last wait
            // Compared before subtracting: a deadline far in the past (sleep_until of the
            // clock's start) would make the difference wrap into a wait of centuries.
            const time_point next = timers_.next_deadline();
            timeout = next > now_ ? std::int64_t((next - now_).count()) : 0;
        }
    } else if (!timers_.empty() && (timers_.next_deadline() <= now_ ||
                                    (clock_ == clock_mode::auto_advance &&
                                     timers_.next_deadline() != time_point::max()))) {
        // Manual clocks wait for I/O, post() and stop() only: not when a timer is due already,
        // nor when auto_advance is about to jump to the next deadline. (With nothing to wait
        // for, run(until_empty) has returned before getting here.)
        timeout = 0;
    }

    if (!fading_.empty()) flush_interest();
    if (timeout != 0) {
        time_point before = clock::now();
        backend_->wait(*this, timeout);
        counters_.ns_blocked += std::uint64_t((clock::now() - before).count());
    } else {
        backend_->wait(*this, 0);
    }
    update_time();
    if (post_pending_.load(std::memory_order_acquire)) drain_posted();
    if (!refire_.empty()) [[unlikely]] {
        // Swapped with a spare that keeps its capacity: a flooding peer refires every
        // iteration, and must not cost an allocation each time.
        std::vector<detail::io_wait*>& now = refire_spare_;
        now.swap(refire_);
        for (detail::io_wait* w : now) {
            // Only if it still waits there (it may have been cancelled, its fd closed).
            if (static_cast<std::size_t>(w->fd) >= fds_.size()) continue;
            detail::fd_state& st = fds_[std::size_t(w->fd)];
            if ((w->dir ? st.writer : st.reader) == w) on_fd_event(w->fd, std::uint8_t(1u << w->dir));
        }
        now.clear();
    }

    if (clock_ == clock_mode::auto_advance && !timers_.empty()) {
        bool idle = true;
        for (const auto& q : ready_) idle = idle && q.empty();
        // A deadline of time_point::max() (sleep_for(duration::max())) is never reached, as
        // under the real clock: the clock does not jump there.
        if (idle && timers_.next_deadline() > now_ && timers_.next_deadline() != time_point::max()) {
            manual_now_ = timers_.next_deadline();
            update_time();
        }
    }
    timers_.expire(now_);
    run_ready();
}

void event_loop::run_ready() {
    // libevent's rule: one priority per iteration, the most urgent that has work; a task
    // woken at a more urgent priority cuts the batch short.
    for (std::size_t p = 0; p < ready_.size(); ++p) {
        detail::ready_list& q = ready_[p];
        if (q.empty()) continue;
        running_priority_ = unsigned(p);
        preempt_ = false;  // set by wake-ups queued while nothing was running
        // Only what was queued before we started: a task that keeps waking itself cannot
        // keep the loop from polling for I/O.
        std::size_t budget = q.count();
        while (budget-- > 0 && !q.empty()) {
            if (q.start_next()) {
                // A run of starts (a burst of spawns) is taken in place from the queue's words,
                // which show frames further ahead than the list's one-step look does, until a
                // woken node is due, the batch ends or the segment does.
                std::size_t run;
                const std::uintptr_t* words = q.starts.front_run(run);
                for (std::size_t i = 0;;) {
                    if (i + start_lookahead < run)
                        prefetch_start(detail::start_queue::frame_of(words[i + start_lookahead]));
                    // Used in place: the token moves once more, into the promise.
                    const detail::start_queue::view s = q.starts.decode_front(words[i]);
                    std::stop_token none;
                    write_root(*this, s.handle, *s.promise, s.detached,
                               std::move(s.token ? *s.token : none), std::uint8_t(p));
                    q.drop_start();  // may free `words` only when words[i] was their last
                    ++counters_.resumed;
                    fast_ops_ = 0;
                    s.handle.resume();
                    if (stop_flag_.load(std::memory_order_relaxed) || preempt_) goto batch_end;
                    if (++i == run || budget == 0 || q.head) break;
                    --budget;
                }
                continue;
            }
            detail::ready_node* n = q.pop();
            if (detail::ready_node* next = n->next) {
                // The next node was loaded one step ago (below), so reading its handle does
                // not wait: its frame starts loading now, and the node after it for the next
                // step. Reading the handle of a node not yet loaded would stall here instead.
                prefetch_frame(next->handle.address());
                if (next->next) __builtin_prefetch(next->next);
            }
            ++counters_.resumed;
            fast_ops_ = 0;
            n->handle.resume();
            if (stop_flag_.load(std::memory_order_relaxed) || preempt_) break;
        }
    batch_end:
        running_priority_ = ~0u;
        preempt_ = false;
        break;
    }
}

void event_loop::post(std::function<void()> fn) {
    std::lock_guard lock(post_mutex_);  // to the end: see stop()
    posted_.push_back(std::move(fn));
    if (!post_pending_.exchange(true, std::memory_order_acq_rel)) backend_->wake();
}

void event_loop::drain_posted() {
    post_pending_.store(false, std::memory_order_release);
    std::vector<std::function<void()>> work;
    std::vector<detail::waiter*> cancels;
    {
        std::lock_guard lock(post_mutex_);
        work.swap(posted_);
        cancels.swap(remote_cancels_);
    }
    for (detail::waiter* w : cancels)
        w->cancel(w, std::make_error_code(std::errc::operation_canceled));
    for (auto& fn : work) {
        try {
            fn();
        } catch (...) {
            unhandled(std::current_exception());
        }
    }
}

void event_loop::request_cancel(detail::waiter* w) noexcept {
    if (on_loop_thread()) {
        w->cancel(w, std::make_error_code(std::errc::operation_canceled));
        return;
    }
    w->cancel_posted.store(true, std::memory_order_release);
    std::lock_guard lock(post_mutex_);  // to the end: see stop()
    remote_cancels_.push_back(w);
    if (!post_pending_.exchange(true, std::memory_order_acq_rel)) backend_->wake();
}

void event_loop::retract_cancel(detail::waiter* w) noexcept {
    std::lock_guard lock(post_mutex_);
    std::erase(remote_cancels_, w);
}

void detail::cancel_on_stop::operator()() noexcept { w->loop->request_cancel(w); }

// ---- stop callbacks ----

namespace detail {

namespace {
// Chunks double from 64 slots (4 KiB) to 2 MiB, which is mapped (huge pages where allowed):
// a burst of a million stop-token waits faults about 550 times rather than 16,000.
constexpr std::size_t first_chunk_bytes = std::size_t(4) << 10;
constexpr std::size_t last_chunk_bytes = std::size_t(2) << 20;
}  // namespace

stop_pool::~stop_pool() {
    while (chunk* c = chunks_) {
        chunks_ = c->prev;
        if (c->bytes >= big_array_bytes) unmap_pages(c, c->bytes);
        else ::operator delete(c);
    }
}

stop_pool::slot* stop_pool::grow() noexcept {
    const std::size_t bytes =
        chunks_ ? std::min(chunks_->bytes * 2, last_chunk_bytes) : first_chunk_bytes;
    void* mem;
    try {
        mem = bytes >= big_array_bytes ? map_pages(bytes) : ::operator new(bytes);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
    auto* c = ::new (mem) chunk{chunks_, bytes};
    chunks_ = c;
    next_ = reinterpret_cast<slot*>(c + 1);
    end_ = next_ + (bytes - sizeof(chunk)) / sizeof(slot);
    return next_++;
}

bool stop_link::arm(const std::stop_token& t, waiter& w) noexcept {
    stop_pool& pool = w.loop->stop_slots();
    slot_ = pool.take();
    if (!slot_) [[unlikely]] {
        w.cancel(&w, std::make_error_code(std::errc::not_enough_memory));
        return false;
    }
    ::new (static_cast<void*>(slot_->storage)) stop_pool::callback(t, cancel_on_stop{&w});
    w.stop_armed = true;
    return true;
}

void stop_link::release(waiter& w) noexcept {
    std::destroy_at(std::launder(reinterpret_cast<stop_pool::callback*>(slot_->storage)));
    w.loop->stop_slots().give(slot_);
    w.stop_armed = false;
}

}  // namespace detail

// ---- fds ----

detail::fd_state& event_loop::grow_fds(std::size_t i) {
    fds_.resize(std::max(i + 1, fds_.size() * 2));
    return fds_[i];
}

void event_loop::grow_send_now(std::size_t i) noexcept {
    // Out of memory the hint stays off: writes take the usual path.
    try {
        send_now_.resize(std::max(i + 1, send_now_.size() * 2));
        send_now_[i] = 1;
    } catch (const std::bad_alloc&) {
    }
}

std::error_code detail::check_fd(int fd) noexcept {
    struct stat sb;
    if (::fstat(fd, &sb) < 0) return {errno, std::system_category()};
    if (S_ISREG(sb.st_mode)) return {EPERM, std::system_category()};
    return {};
}

void event_loop::update_interest(int fd, detail::fd_state& st) noexcept {
    backend_->update(fd, st);
    st.watched = st.wanted();
}

void event_loop::fade_interest(int fd, detail::fd_state& st) noexcept {
    try {
        fading_.push_back(fd);
    } catch (...) {
        update_interest(fd, st);  // no room to put it off: now
    }
}

// Before a level-triggered backend waits: what it watches must not outlast its waiters, or
// every wait would return at once for an fd nobody reads.
void event_loop::flush_interest() noexcept {
    for (int fd : fading_) {
        if (static_cast<std::size_t>(fd) >= fds_.size()) continue;
        detail::fd_state& st = fds_[std::size_t(fd)];
        if (st.wanted() != st.watched) update_interest(fd, st);
    }
    fading_.clear();
}

long event_loop::try_read(int fd, void* buf, std::size_t len) noexcept {
    if (fd < 0) return -EBADF;
    detail::fd_state& st = this->fd(fd);
    if (completion_ && !st.seen) {
        // The completion backend serves sockets from its receive stream: it must know the kind.
        struct stat sb;
        if (::fstat(fd, &sb) < 0) return -errno;
        st.seen = true;
        st.always_ready = S_ISREG(sb.st_mode);
        st.not_socket = !S_ISSOCK(sb.st_mode);
    }
    return backend_->try_read(fd, st, buf, len);
}

long event_loop::try_write(int fd, const void* buf, std::size_t len) noexcept {
    if (fd < 0) return -EBADF;
    const long n = detail::readiness_try_write(fd, this->fd(fd), buf, len);
    // Only a send that fell short says anything new to the next write_some (may_send_now);
    // a whole one leaves the hint as it was, and costs nothing more.
    if (std::size_t(n) != len) [[unlikely]] set_send_now(fd, false);
    return n;
}

void event_loop::submit_io(detail::io_wait& w, detail::fd_state& st) noexcept {
    w.in_flight = true;
    w.cancelling = false;
    backend_->submit(w, st);
}

void event_loop::on_complete(detail::io_wait* w, int res) noexcept {
    w->in_flight = false;
    if (w->orphaned) [[unlikely]] {
        w->orphaned = false;
        std::erase(orphans_, w);
    }
    detail::io_wait** slot = nullptr;
    if (static_cast<std::size_t>(w->fd) < fds_.size()) {
        detail::fd_state& st = fds_[std::size_t(w->fd)];
        slot = w->dir ? &st.writer : &st.reader;
        if (w->poll_first && res >= 0 && !w->cancelling && !w->perform(w, st)) {
            submit_io(*w, st);  // readiness came and went: wait again
            return;
        }
        if (*slot != w) slot = nullptr;
    }
    --waits_;
    if (slot) *slot = nullptr;
    if (w->cancelling && res < 0) {
        // w->ec already says why: operation_canceled, timed_out or closed. (An operation that
        // had not reached the kernel yet may fail otherwise, e.g. EBADF after a close.)
    } else if (w->poll_first && res >= 0) {
        w->ec.clear();  // perform() above stored the transfer's result
    } else if (w->perform) {
        w->ec.clear();  // a transfer that finished before the cancel reached it still counts
        static_cast<detail::rw_wait*>(w)->n = res;
    } else if (res < 0) {
        w->ec = std::error_code(-res, std::system_category());
    } else {
        w->ec.clear();
    }
    schedule(&w->node);
}

std::error_code event_loop::watch_fd(int fd, detail::fd_state& st, bool rearm) noexcept {
    return backend_->watch(fd, st, rearm);
}

void event_loop::cancel_wait(detail::io_wait& w, std::error_code ec) noexcept {
    if (completion_) {
        // The task resumes when the kernel answers: until then it owns the buffer.
        if (!w.in_flight || w.cancelling) return;
        w.cancelling = true;
        w.ec = ec;
        backend_->cancel(w);
        return;
    }
    if (static_cast<std::size_t>(w.fd) >= fds_.size()) return;
    detail::fd_state& st = fds_[std::size_t(w.fd)];
    detail::io_wait*& slot = w.dir ? st.writer : st.reader;
    if (slot != &w) return;  // already completed
    slot = nullptr;
    --waits_;
    interest_changed(w.fd, st);
    w.ec = ec;
    schedule(&w.node);
}

void event_loop::drop_wait(detail::io_wait& w) noexcept {
    if (w.in_flight) backend_->cancel_sync(*this, w);  // completes it, and queues it
    if (static_cast<std::size_t>(w.fd) < fds_.size()) {
        detail::fd_state& st = fds_[std::size_t(w.fd)];
        detail::io_wait*& slot = w.dir ? st.writer : st.reader;
        if (slot == &w) {
            slot = nullptr;
            --waits_;
            interest_changed(w.fd, st);
            return;
        }
    }
    unschedule(&w.node);  // it completed but never ran
}

// on_fd_event() is in io.cpp, beside the reads it performs inline.

void event_loop::forget_fd(int fd) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    detail::fd_state& st = fds_[std::size_t(fd)];
    for (detail::io_wait* w : {st.reader, st.writer}) {
        if (!w) continue;
        if (completion_) {
            w->cancelling = false;  // closing wins over an earlier cancel or deadline
            cancel_wait(*w, make_error_code(error::closed));
            if (w->in_flight && !w->orphaned) {  // until the kernel answers
                w->orphaned = true;
                orphans_.push_back(w);
            }
            continue;
        }
        --waits_;
        w->ec = make_error_code(error::closed);
        schedule(&w->node);
    }
    st.reader = st.writer = nullptr;
    set_send_now(fd, false);
    backend_->forget(fd, st);
    st = detail::fd_state{};
}

// ---- roots ----

void event_loop::remove_root(detail::promise_base* p) noexcept {
    detail::root_info& r = p->root;
    if (r.prev) r.prev->root.next = r.next;
    else roots_ = r.next;
    if (r.next) r.next->root.prev = r.prev;
    r.prev = r.next = nullptr;
    drop_root_site(p);
}

void event_loop::note_root_site(const detail::promise_base* p, coev::source_location where) {
    root_sites_[p] = where;
}

void event_loop::drop_root_site(const detail::promise_base* p) noexcept {
    if (!root_sites_.empty()) root_sites_.erase(p);
}

coev::source_location event_loop::root_site(const detail::promise_base* p) const noexcept {
    auto it = root_sites_.find(p);
    return it == root_sites_.end() ? coev::source_location() : it->second;
}

void event_loop::unhandled(std::exception_ptr e) noexcept {
    if (on_exception_) {
        try {
            on_exception_(e);
            return;
        } catch (...) {
            e = std::current_exception();
        }
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log(log_level::error, std::string("coev: unhandled exception in a spawned task: ") +
                                  ex.what());
    } catch (...) {
        log(log_level::error, "coev: unhandled non-standard exception in a spawned task");
    }
}

detail::signal_hub& event_loop::signals() {
    if (!signals_) signals_ = std::make_unique<detail::signal_hub>(*this);
    return *signals_;
}

std::error_code event_loop::watch_signal_fd(int fd) noexcept {
    return backend_->watch_signal_fd(fd);
}

loop_counters event_loop::counters() const noexcept {
    loop_counters c = counters_;
    c.backend_calls += backend_->calls;
    return c;
}

void event_loop::reinit_after_fork() {
    counters_.backend_calls += backend_->calls;  // the parent's backend's share
    loop_config same;
    same.prefer = std::string(backend_->name());
    same.ignore_env = true;
    backend_ = choose_backend(same);
    backend_->attach(*this);
    // Closed while in flight in the parent's ring: the new backend will never answer them.
    for (detail::io_wait* w : std::vector<detail::io_wait*>(orphans_)) on_complete(w, -ECANCELED);
    for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
        detail::fd_state& st = fds_[fd];
        st.registered = false;
        st.watched = 0;  // the new backend watches nothing yet
        if (!st.reader && !st.writer) continue;
        if (completion_) {  // the parent's ring is not ours: submit again
            for (detail::io_wait* w : {st.reader, st.writer})
                if (w && w->in_flight) backend_->submit(*w, st);
            continue;
        }
        backend_->watch(int(fd), st, true);
        interest_changed(int(fd), st);
    }
    if (signals_) signals_->reinit();
    if (post_pending_.load()) backend_->wake();
}

namespace detail {
// What a timer node is for, when dump() can tell (timer.cpp, io.cpp).
const coev::source_location* sleep_location(const timer_node& t) noexcept;
const io_wait* deadline_owner(const timer_node& t) noexcept;
bool is_timeout_deadline(const timer_node& t) noexcept;
}  // namespace detail

void event_loop::dump(std::ostream& out) const {
    std::size_t ready = 0;
    for (const auto& q : ready_) ready += q.count();
    out << "event_loop backend=" << backend_->name() << " ready=" << ready
        << " timers=" << timers_.size() << " waits=" << waits_ << '\n';
    for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
        const detail::fd_state& st = fds_[fd];
        for (const detail::io_wait* w : {st.reader, st.writer}) {
            if (!w) continue;
            out << "  fd " << fd << (w->dir ? " write" : " read") << " waiting at "
                << w->where.file_name() << ':' << w->where.line() << '\n';
        }
    }
    timers_.for_each([&](const detail::timer_node& t) {
        auto in = std::chrono::duration_cast<std::chrono::microseconds>(t.deadline - now_);
        out << "  timer due in " << in.count() << "us";
        if (const coev::source_location* at = detail::sleep_location(t)) {
            out << " (sleep at " << at->file_name() << ':' << at->line() << ')';
        } else if (const detail::io_wait* w = detail::deadline_owner(t)) {
            out << " (deadline of fd " << w->fd << (w->dir ? " write" : " read") << " at "
                << w->where.file_name() << ':' << w->where.line() << ')';
        } else if (detail::is_timeout_deadline(t)) {
            out << " (with_timeout)";
        } else if (&t == &exit_timer_) {
            out << " (stop_after)";
        }
        out << '\n';
    });
    if (signals_) signals_->dump(out);
}

namespace detail {

void init_root(event_loop& loop, std::coroutine_handle<> h, promise_base& p, bool detached,
               std::stop_token&& token, std::uint8_t prio) noexcept {
    write_root(loop, h, p, detached, std::move(token), prio);
}

void start_root_noted(event_loop& loop, std::coroutine_handle<> h, promise_base& p,
                      bool detached, std::stop_token&& token, int priority,
                      coev::source_location where) {
    const std::ptrdiff_t offset = reinterpret_cast<char*>(&p) - static_cast<char*>(h.address());
    if (offset <= 0 || offset % 8 != 0 || offset / 8 > 255)
        throw std::invalid_argument("coev: a task's promise lies more than 2 KiB into its frame");
    const std::uint8_t prio = loop.clamp_priority(priority);
    if (debug_mode()) loop.note_root_site(&p, where);  // may throw bad_alloc: nothing queued yet
    if (loop.dying()) {
        // A loop being destroyed runs nothing more: its root teardown destroys this one.
        init_root(loop, h, p, detached, std::move(token), prio);
        return;
    }
    // Nothing else touches the frame until the loop starts the task (see start_queue).
    try {
        loop.queue_start(p, h, std::move(token), prio, detached);
    } catch (...) {
        loop.drop_root_site(&p);
        throw;
    }
}

std::coroutine_handle<> finish_root(std::coroutine_handle<> h, promise_base& p) noexcept {
    event_loop* loop = p.root_loop;
    loop->remove_root(&p);
    p.is_root = false;
    p.root_loop = nullptr;
    if (p.detached) {
        std::exception_ptr e = std::move(p.error);
        h.destroy();
        if (e) loop->unhandled(std::move(e));
    }
    return std::noop_coroutine();
}

}  // namespace detail
}  // namespace coev
