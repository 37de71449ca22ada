// runtime/src/signal.cpp
// Signals through signalfd. A signal caught by any set is blocked in the loop's thread and read
// from the loop's signalfd; its disposition becomes a forwarder that re-sends it to that thread
// when the kernel delivers it to another one, and is restored with the last set that holds it.
#include "signal_hub.hpp"

#include "backend/backend.hpp"

#include <coev/runtime/log.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <ostream>
#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace coev {
namespace detail {
namespace {

constexpr int max_signal = 64;

// Process-wide: who caught each signal first, what it did before, where to forward it.
struct disposition {
    int holders = 0;  // signal_hubs (loops) holding the signal
    struct sigaction previous {};
    std::vector<int> threads;  // the holders' thread ids, latest last (forward_to's choice)
};
std::mutex registry_mutex;
disposition registry[max_signal + 1];
std::atomic<int> forward_to[max_signal + 1];  // thread id of a loop thread that blocks it

extern "C" void forward_signal(int signo) {
    // Delivered to a thread that does not block it: hand it to a loop thread that does (never
    // to this one, which would only get it back here, for ever).
    int saved = errno;
    int tid = forward_to[signo].load(std::memory_order_relaxed);
    if (tid > 0 && tid != int(::syscall(SYS_gettid))) ::syscall(SYS_tgkill, ::getpid(), tid, signo);
    errno = saved;
}

void acquire_disposition(int signo) {
    std::lock_guard lock(registry_mutex);
    disposition& d = registry[signo];
    const int tid = int(::syscall(SYS_gettid));
    d.threads.push_back(tid);
    forward_to[signo].store(tid, std::memory_order_relaxed);
    if (d.holders++ > 0) return;
    struct sigaction sa {};
    sa.sa_handler = &forward_signal;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (::sigaction(signo, &sa, &d.previous) < 0) {
        --d.holders;
        d.threads.pop_back();
        forward_to[signo].store(d.threads.empty() ? 0 : d.threads.back(),
                                std::memory_order_relaxed);
        throw std::system_error(errno, std::system_category(), "sigaction");
    }
}

// One holder on thread `tid` lets go. Returns whether another loop on that thread still holds
// the signal (the thread must then keep it blocked, or that loop's signalfd misses it).
bool release_disposition(int signo, int tid) noexcept {
    std::lock_guard lock(registry_mutex);
    disposition& d = registry[signo];
    if (auto at = std::find(d.threads.rbegin(), d.threads.rend(), tid); at != d.threads.rend())
        d.threads.erase(std::next(at).base());
    const bool still_here = std::find(d.threads.begin(), d.threads.end(), tid) != d.threads.end();
    // Forward to a thread that still blocks the signal, preferring one that is not about to
    // unblock it.
    int to = 0;
    for (auto it = d.threads.rbegin(); it != d.threads.rend() && to == 0; ++it)
        if (*it != tid || still_here) to = *it;
    forward_to[signo].store(to, std::memory_order_relaxed);
    if (--d.holders > 0) return still_here;
    forward_to[signo].store(0, std::memory_order_relaxed);
    ::sigaction(signo, &d.previous, nullptr);
    return false;
}

// A delivery taken by a loop that no longer holds the signal: to a loop that still does (never
// back to the thread taking it, which would take it again).
void resend(int signo, int self) noexcept {
    const int tid = forward_to[signo].load(std::memory_order_relaxed);
    if (tid > 0 && tid != self) ::syscall(SYS_tgkill, ::getpid(), tid, signo);
}

// Our loop moved from thread `from` to `to`: deliveries go to `to` from now on.
void move_disposition(int signo, int from, int to) noexcept {
    std::lock_guard lock(registry_mutex);
    disposition& d = registry[signo];
    if (auto at = std::find(d.threads.rbegin(), d.threads.rend(), from); at != d.threads.rend())
        d.threads.erase(std::next(at).base());
    try {
        d.threads.push_back(to);
    } catch (...) {  // out of memory: the latest holder still receives
        return;
    }
    forward_to[signo].store(to, std::memory_order_relaxed);
}

int current_tid() noexcept { return int(::syscall(SYS_gettid)); }

// A number per thread, never reused (thread ids are, once a thread has exited), read without
// a system call. A forked child keeps its parent thread's: reinit() takes the new id.
std::uint64_t thread_serial() noexcept {
    static std::atomic<std::uint64_t> next{1};
    thread_local const std::uint64_t serial = next.fetch_add(1, std::memory_order_relaxed);
    return serial;
}

void check_signal(int signo) {
    if (signo < 1 || signo > max_signal || signo == SIGKILL || signo == SIGSTOP)
        throw std::invalid_argument("coev::signal_set: cannot catch signal " +
                                    std::to_string(signo));
}

}  // namespace

signal_hub::~signal_hub() {
    if (fd_ >= 0) ::close(fd_);
}

void signal_hub::update_fd() {
    sigset_t mask;
    sigemptyset(&mask);
    for (int s = 1; s <= max_signal && s < int(counts_.size()); ++s)
        if (counts_[std::size_t(s)] > 0) sigaddset(&mask, s);
    if (fd_ >= 0) {
        if (::signalfd(fd_, &mask, 0) < 0)
            throw std::system_error(errno, std::system_category(), "signalfd");
        return;
    }
    fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "signalfd");
    if (std::error_code ec = loop_.watch_signal_fd(fd_)) {
        ::close(fd_);
        fd_ = -1;
        throw std::system_error(ec, "watching the signalfd");
    }
}

void signal_hub::add(signal_set& s) {
    counts_.resize(max_signal + 1);
    // Exactly what this call did, so a failure part-way undoes that and nothing another set
    // holds (a bad signal may come after good ones, or before ones already held).
    std::vector<int> counted, blocked;
    auto set_blocked = [](int signo, int how) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, signo);
        pthread_sigmask(how, &one, nullptr);
    };
    try {
        for (int signo : s.signals_) {
            check_signal(signo);
            counted.push_back(signo);
            if (counts_[std::size_t(signo)]++ > 0) continue;
            acquire_disposition(signo);
            blocked.push_back(signo);
            set_blocked(signo, SIG_BLOCK);
        }
        update_fd();
        if (!blocked.empty()) {
            tid_ = current_tid();
            serial_ = thread_serial();
        }
    } catch (...) {
        for (int signo : counted) --counts_[std::size_t(signo)];
        for (int signo : blocked) {
            // A delivery pending now goes to the old handler.
            if (!release_disposition(signo, current_tid())) set_blocked(signo, SIG_UNBLOCK);
        }
        throw;
    }
    s.next_ = sets_;
    sets_ = &s;
}

void signal_hub::remove(signal_set& s) noexcept {
    for (signal_set** p = &sets_; *p; p = &(*p)->next_) {
        if (*p == &s) {
            *p = s.next_;
            break;
        }
    }
    sigset_t released, unblock;
    sigemptyset(&released);
    sigemptyset(&unblock);
    bool any = false;
    const int tid = tid_ != 0 ? tid_ : current_tid();
    for (int signo : s.signals_) {
        if (--counts_[std::size_t(signo)] > 0) continue;
        sigaddset(&released, signo);
        any = true;
        // Forwarding leaves this loop first, so what arrives from now on goes to a loop that
        // still holds the signal; the thread stays blocked while another loop on it holds it.
        if (!release_disposition(signo, tid)) sigaddset(&unblock, signo);
    }
    // Our signalfd stops taking what we let go of first: such a signal still pending is for
    // another loop on this thread (which reads it), or is taken below and handed on.
    if (any) {
        try {
            update_fd();
        } catch (...) {
        }
    }
    // Deliveries already queued for what we still hold go to the remaining sets.
    on_readable();
    if (!any) return;
    // A signal still pending for this thread would hit the old disposition (or nobody, once it
    // is unblocked): take it, and hand it on if a loop elsewhere still holds it.
    timespec zero{};
    const int self = current_tid();
    for (int signo; (signo = ::sigtimedwait(&unblock, nullptr, &zero)) > 0;) resend(signo, self);
    pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
}

void signal_hub::on_readable() noexcept {
    if (fd_ < 0) return;
    signalfd_siginfo info[16];
    for (;;) {
        ssize_t n = ::read(fd_, info, sizeof info);
        if (n <= 0) return;
        for (std::size_t i = 0; i < std::size_t(n) / sizeof info[0]; ++i)
            deliver(int(info[i].ssi_signo));
    }
}

void signal_hub::deliver(int signo) noexcept {
    for (signal_set* s = sets_; s; s = s->next_) {
        bool held = false;
        for (int x : s->signals_) held = held || x == signo;
        if (!held) continue;
        if (!s->waiters_) {
            s->pending_ |= std::uint64_t{1} << (signo - 1);
            continue;
        }
        while (signal_wait* w = s->waiters_) {
            s->waiters_ = w->next;
            if (w->next) w->next->prev = nullptr;
            w->next = w->prev = nullptr;
            w->signo = signo;
            w->ec.clear();
            loop_.count_wait(-1);
            loop_.complete(w);
        }
    }
}

void signal_hub::dump(std::ostream& out) const {
    for (const signal_set* s = sets_; s; s = s->next_) {
        for (const signal_wait* w = s->waiters_; w; w = w->next) {
            out << "  signal wait {";
            for (std::size_t i = 0; i < s->signals_.size(); ++i)
                out << (i ? " " : "") << s->signals_[i];
            out << "} at " << w->where.file_name() << ':' << w->where.line() << '\n';
        }
    }
}

void signal_hub::reinit() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    // The child is single-threaded now: this thread receives its signals, and must block them
    // (the parent's loop may have blocked them on another thread, which the child lacks).
    const int tid = current_tid();
    sigset_t held;
    sigemptyset(&held);
    for (int s = 1; s <= max_signal && s < int(counts_.size()); ++s) {
        if (counts_[std::size_t(s)] == 0) continue;
        sigaddset(&held, s);
        std::lock_guard lock(registry_mutex);
        for (int& t : registry[s].threads) t = tid;  // every holder is on this thread now
        forward_to[s].store(tid, std::memory_order_relaxed);
    }
    pthread_sigmask(SIG_BLOCK, &held, nullptr);
    if (tid_ != 0) {
        tid_ = tid;
        serial_ = thread_serial();
    }
    update_fd();
}

void signal_hub::on_thread() noexcept {
    if (tid_ == 0 || thread_serial() == serial_) return;
    const int tid = current_tid();
    sigset_t held;
    sigemptyset(&held);
    for (int s = 1; s <= max_signal && s < int(counts_.size()); ++s)
        if (counts_[std::size_t(s)] > 0) sigaddset(&held, s);
    pthread_sigmask(SIG_BLOCK, &held, nullptr);
    for (int s = 1; s <= max_signal && s < int(counts_.size()); ++s)
        if (counts_[std::size_t(s)] > 0) move_disposition(s, tid_, tid);
    // The old thread keeps them blocked (it may run other loops that hold them); a delivery
    // already pending there for it alone stays there.
    tid_ = tid;
    serial_ = thread_serial();
}

bool signal_hub::take_pending(signal_set& s, signal_wait& w) noexcept {
    if (!s.pending_) return false;
    int bit = __builtin_ctzll(s.pending_);
    s.pending_ &= s.pending_ - 1;
    w.signo = bit + 1;
    return true;
}

void signal_hub::arm(signal_set& s, signal_wait& w) noexcept {
    w.prev = nullptr;
    w.next = s.waiters_;
    if (s.waiters_) s.waiters_->prev = &w;
    s.waiters_ = &w;
    loop_.count_wait(1);
}

bool signal_hub::unlink(signal_wait& w) noexcept {
    signal_set& s = *w.set;
    bool linked = w.prev || s.waiters_ == &w;
    if (!linked) return false;
    if (w.prev) w.prev->next = w.next;
    else s.waiters_ = w.next;
    if (w.next) w.next->prev = w.prev;
    w.next = w.prev = nullptr;
    loop_.count_wait(-1);
    return true;
}

}  // namespace detail

// ---- signal_set ----

namespace {

event_loop& running_loop() {
    event_loop* l = event_loop::current();
    if (!l) throw std::logic_error("coev::signal_set needs a running event_loop (or pass one)");
    return *l;
}

void cancel_signal_wait(detail::waiter* base, std::error_code ec) noexcept {
    auto* w = static_cast<detail::signal_wait*>(base);
    // Not linked: delivered already, or woken by its set's destructor.
    if (!w->set || !w->loop->signals().unlink(*w)) return;
    w->ec = ec;
    w->loop->complete(w);
}

}  // namespace

signal_set::signal_set(std::initializer_list<int> signals) : signal_set(running_loop(), signals) {}

signal_set::signal_set(event_loop& loop, std::initializer_list<int> signals)
    : loop_(loop), signals_(signals) {
    loop_.signals().add(*this);
}

signal_set::~signal_set() {
    // Waiters cannot outlive the set: their frames would be resumed for a dead object.
    while (detail::signal_wait* w = waiters_) {
        loop_.signals().unlink(*w);
        w->set = nullptr;  // it may be cancelled or destroyed before it resumes
        w->ec = make_error_code(error::closed);
        loop_.complete(w);
    }
    loop_.signals().remove(*this);
}

signal_set::wait_awaiter::~wait_awaiter() {
    stop_.disarm(w_);
    if (!armed_) return;
    event_loop& loop = *w_.loop;
    if (w_.cancel_posted.load(std::memory_order_acquire)) loop.retract_cancel(&w_);
    if (!w_.set || !loop.signals().unlink(w_)) loop.unschedule(&w_.node);
}

bool signal_set::wait_awaiter::await_ready() noexcept {
    return set_.loop().signals().take_pending(set_, w_);
}

bool signal_set::wait_awaiter::arm(std::coroutine_handle<> h, detail::promise_base* p) noexcept {
    const std::stop_token& tok = detail::stop_token_of(p);
    if (tok.stop_requested()) {
        w_.ec = std::make_error_code(std::errc::operation_canceled);
        return false;
    }
    event_loop& loop = set_.loop();
    w_.node.handle = h;
    w_.node.priority = detail::priority_of(p);
    w_.cancel = &cancel_signal_wait;
    loop.signals().arm(set_, w_);
    armed_ = true;
    if (tok.stop_possible()) stop_.arm(tok, w_);
    return true;
}

result<int> signal_set::wait_awaiter::await_resume() noexcept {
    if (armed_) {
        stop_.disarm(w_);
        if (w_.cancel_posted.load(std::memory_order_acquire)) w_.loop->retract_cancel(&w_);
        armed_ = false;
    }
    if (w_.ec) return w_.ec.code();
    return w_.signo;
}

}  // namespace coev
