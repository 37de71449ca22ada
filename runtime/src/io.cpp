// runtime/src/io.cpp
// fd awaiters on readiness backends: try the system call while the readiness cache says it may
// succeed, otherwise wait; the loop performs the call when readiness arrives.
#include <coev/runtime/io.hpp>
#include <coev/runtime/log.hpp>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <pthread.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace coev {
namespace detail {
namespace {

static_assert(EAGAIN == EWOULDBLOCK);

// Sockets go through recv()/send() (a shorter kernel path, and MSG_NOSIGNAL turns a closed
// peer into EPIPE instead of a process-killing SIGPIPE); other fds are remembered as such and
// use read()/write().
long try_read(int fd, fd_state& st, void* buf, std::size_t len) noexcept {
    for (;;) {
        ssize_t n = st.not_socket ? ::read(fd, buf, len) : ::recv(fd, buf, len, 0);
        if (n >= 0) return n;
        if (errno == ENOTSOCK && !st.not_socket) {
            st.not_socket = true;
            continue;
        }
        if (errno != EINTR) return -errno;
    }
}

// Pipes have no MSG_NOSIGNAL: SIGPIPE is blocked around the write, and the one raised by a
// write to a pipe without readers is taken back before the mask is restored.
// TODO(perf): two extra system calls per write to a non-socket; pipes are rare on hot paths.
ssize_t writev_without_sigpipe(int fd, const iovec* iov, int count) noexcept {
    sigset_t pipe_only, saved;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, &saved);
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0 && errno == EPIPE && !sigismember(&saved, SIGPIPE)) {
        const int err = errno;
        timespec zero{};
        ::sigtimedwait(&pipe_only, nullptr, &zero);
        errno = err;
    }
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    return n;
}

ssize_t write_without_sigpipe(int fd, const void* buf, std::size_t len) noexcept {
    iovec one{const_cast<void*>(buf), len};
    return writev_without_sigpipe(fd, &one, 1);
}

long try_write(int fd, fd_state& st, const void* buf, std::size_t len) noexcept {
    for (;;) {
        ssize_t n = st.not_socket ? write_without_sigpipe(fd, buf, len)
                                  : ::send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == ENOTSOCK && !st.not_socket) {
            st.not_socket = true;
            continue;
        }
        if (errno != EINTR) return -errno;
    }
}

}  // namespace

bool stream_socket(int fd, fd_state& st) noexcept {
    if (st.kind == 0) {
        int type = 0;
        socklen_t len = sizeof type;
        const bool stream = !st.not_socket &&
                            ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
                            type == SOCK_STREAM;
        st.kind = stream ? 1 : 2;
    }
    return st.kind == 1;
}

namespace {

// Applies one attempt's outcome to the readiness cache; true when the operation is done.
// Inlined into each transfer with its direction known: it runs on every readiness event.
template <int Dir>
[[gnu::always_inline]] inline bool settle(rw_wait& w, fd_state& st, long n) noexcept {
    constexpr auto bit = std::uint8_t(1u << Dir);
    if (n == -EAGAIN) [[unlikely]] {
        st.ready &= std::uint8_t(~bit);
        return false;
    }
    // A short transfer on a stream socket means the kernel buffer ran dry (or full): the next
    // call would block, so skip it and wait for the next edge. Not a short read elsewhere: a
    // terminal returns one line per read() and a datagram socket one message, however many
    // are queued, and no edge comes for the rest. EOF (0) stays readable for good. Nor a short
    // read once urgent data came: a read stops at its mark.
    constexpr std::uint8_t sticky =
        Dir == 0 ? fd_state::read_closed | fd_state::urgent : fd_state::read_closed;
    if (n > 0 && std::size_t(n) < w.len && !(st.ready & sticky) &&
        (Dir == 1 || st.kind == 1 || (st.kind == 0 && stream_socket(w.fd, st))))
        st.ready &= std::uint8_t(~bit);
    w.n = n;
    return true;
}

// What a write_some's outcome says of the next one (event_loop::may_send_now): straight to
// send() after a socket took a whole buffer, through the entry once it would block or took a
// part. A waiting writer is in the entry until the loop resumes it: no hint before it has run.
inline void note_send(event_loop* loop, int fd, const fd_state& st, long n,
                      std::size_t len) noexcept {
    if (loop && !loop->completion())  // a completion loop submits its sends (try_now)
        loop->set_send_now(fd, !st.not_socket && (st.ready & 2u) && n >= 0 &&
                                   std::size_t(n) == len && !st.writer);
}

bool settle(rw_wait& w, fd_state& st, long n) noexcept {
    return w.dir ? settle<1>(w, st, n) : settle<0>(w, st, n);
}

void fire_deadline(timer_node* t) noexcept {
    io_wait* io = static_cast<io_deadline*>(t)->w;
    io->loop->cancel_wait(*io, std::make_error_code(std::errc::timed_out));
}

}  // namespace

long readiness_try_read(int fd, fd_state& st, void* buf, std::size_t len) noexcept {
    // A watched fd whose cached bit is clear would block: an edge will set it again.
    if (st.registered && !(st.ready & 1u)) return -EAGAIN;
    rw_wait w;
    w.fd = fd;
    w.len = len;
    const long n = try_read(fd, st, buf, len);
    settle(w, st, n);  // for the cache
    return n;
}

long readiness_try_write(int fd, fd_state& st, const void* buf, std::size_t len) noexcept {
    if (st.registered && !(st.ready & 2u)) return -EAGAIN;
    rw_wait w;
    w.fd = fd;
    w.dir = 1;
    w.len = len;
    const long n = try_write(fd, st, buf, len);
    settle(w, st, n);
    return n;
}

namespace {

[[gnu::always_inline]] inline bool read_now(rw_wait& w, fd_state& st) noexcept {
    // The buffer is usually in the waiting task's frame, cold by the time readiness comes: the
    // kernel's copy would stall on it. Fetched now, it arrives while the system call enters.
    __builtin_prefetch(w.buf, 1);
    return settle<0>(w, st, try_read(w.fd, st, w.buf, w.len));
}

}  // namespace

bool perform_read(io_wait* iw, fd_state& st) noexcept {
    return read_now(static_cast<rw_wait&>(*iw), st);
}

bool perform_write(io_wait* iw, fd_state& st) noexcept {
    auto& w = static_cast<rw_wait&>(*iw);
    const bool done = settle<1>(w, st, try_write(w.fd, st, w.buf, w.len));
    note_send(event_loop::current(), w.fd, st, done ? w.n : -EAGAIN, w.len);
    return done;
}

bool perform_readv(io_wait* iw, fd_state& st) noexcept {
    auto& w = static_cast<rw_wait&>(*iw);
    long n;
    do {
        n = ::readv(w.fd, static_cast<const iovec*>(w.buf), int(w.count));
    } while (n < 0 && errno == EINTR);
    return settle(w, st, n < 0 ? -errno : n);
}

bool perform_writev(io_wait* iw, fd_state& st) noexcept {
    auto& w = static_cast<rw_wait&>(*iw);
    const auto* msg = static_cast<const msghdr*>(w.buf);
    long n;
    for (;;) {
        if (st.not_socket) {
            n = writev_without_sigpipe(w.fd, msg->msg_iov, int(msg->msg_iovlen));
        } else {
            n = ::sendmsg(w.fd, msg, MSG_NOSIGNAL);
            if (n < 0 && errno == ENOTSOCK) {
                st.not_socket = true;
                continue;
            }
        }
        if (n >= 0 || errno != EINTR) break;
    }
    return settle(w, st, n < 0 ? -errno : n);
}

bool perform_accept(io_wait* iw, fd_state& st) noexcept {
    auto& w = static_cast<rw_wait&>(*iw);
    int fd;
    do {
        socklen_t len = w.addrlen;
        fd = ::accept4(w.fd, static_cast<sockaddr*>(w.buf), w.buf ? &len : nullptr,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) w.addrlen = len;
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        st.ready &= std::uint8_t(~1u);
        return false;
    }
    // More connections may be queued: the readiness bit stays set after a success.
    w.n = fd >= 0 ? fd : -errno;
    return true;
}

bool perform_connect(io_wait* iw, fd_state& st) noexcept {
    auto& w = static_cast<rw_wait&>(*iw);
    if (w.n == 0) {  // not started: the connect() call itself
        int r;
        do {
            r = ::connect(w.fd, static_cast<const sockaddr*>(w.buf), w.addrlen);
        } while (r < 0 && errno == EINTR);
        if (r == 0) return true;
        // EAGAIN is not "in progress": a Unix socket's listener has a full backlog (or TCP has
        // no local port left), and writability would then report a connection never made.
        if (errno != EINPROGRESS) {
            w.n = -errno;
            return true;
        }
        w.n = 1;  // in progress: writable means finished, SO_ERROR says how
        st.ready &= std::uint8_t(~2u);
        return false;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    w.n = err ? -err : 0;
    return true;
}

void cancel_io(waiter* w, std::error_code ec) noexcept {
    auto* io = static_cast<io_wait*>(w);
    io->loop->cancel_wait(*io, ec);
}

const io_wait* deadline_owner(const timer_node& t) noexcept {
    return t.fire == &fire_deadline ? static_cast<const io_deadline&>(t).w : nullptr;
}

}  // namespace detail

void event_loop::on_fd_event(int fd, std::uint8_t bits) noexcept {
    if (static_cast<std::size_t>(fd) >= fds_.size()) return;
    detail::fd_state& st = fds_[std::size_t(fd)];
    st.ready |= bits;
    if ((bits & 1) && st.reader) wake_fd_waiter(fd, st, st.reader);
    if ((bits & 2) && st.writer) wake_fd_waiter(fd, st, st.writer);
}

// Inlined into on_fd_event: one call per readiness event, not a loop over both directions. A
// read, the usual wait, is performed inline; the rest through their functions.
inline void event_loop::wake_fd_waiter(int fd, detail::fd_state& st,
                                       detail::io_wait*& slot) noexcept {
    detail::io_wait* w = slot;
    if (w->perform == &detail::perform_read) {
        if (!detail::read_now(static_cast<detail::rw_wait&>(*w), st)) return;  // spurious
    } else if (w->perform && !w->perform(w, st)) {
        return;  // spurious: still would block
    }
    slot = nullptr;
    --waits_;
    w->ec.clear();
    schedule(&w->node);
    interest_changed(fd, st);
}

namespace detail {

void io_wait_base::first_use(fd_state& st) noexcept {
    st.seen = true;
    // A blocking fd would stall every task on the loop inside read() or write().
    if (debug_mode()) {
        int flags = ::fcntl(w_.fd, F_GETFL);
        if (flags >= 0 && !(flags & O_NONBLOCK))
            report_misuse("fd " + std::to_string(w_.fd) +
                              " is blocking: read_some/write_some need O_NONBLOCK "
                              "(coev::set_nonblocking)",
                          w_.where);
    }
}

bool io_wait_base::sent_part(event_loop& loop, long n) noexcept {
    fd_state& st = loop.fd(w_.fd);
    // Interrupted, or no socket after all (the fd was closed and its number reused): the
    // usual path retries, or writes with write().
    if (n == -EINTR || n == -ENOTSOCK) {
        loop.set_send_now(w_.fd, false);
        return w_.perform(&w_, st);
    }
    const bool done = settle<1>(w_, st, n);
    note_send(&loop, w_.fd, st, done ? w_.n : -EAGAIN, w_.len);
    return done;
}

bool io_wait_base::arm(std::coroutine_handle<> h, promise_base* p, bool level,
                       io_deadline* deadline, time_point at) noexcept {
    event_loop* loop = event_loop::current();
    if (!loop) [[unlikely]] {
        w_.ec = std::make_error_code(std::errc::operation_not_permitted);
        return false;
    }
    const std::stop_token* tok = p ? p->stop : nullptr;
    if (tok && tok->stop_requested()) [[unlikely]] {
        w_.ec = std::make_error_code(std::errc::operation_canceled);
        return false;
    }
    if (w_.fd < 0) [[unlikely]] {
        w_.ec = std::make_error_code(std::errc::bad_file_descriptor);
        return false;
    }
    fd_state& st = loop->fd(w_.fd);
    io_wait*& slot = w_.dir ? st.writer : st.reader;
    if (slot) [[unlikely]] {
        if (debug_mode())
            report_misuse(std::string("two tasks wait to ") + (w_.dir ? "write" : "read") +
                              " fd " + std::to_string(w_.fd) + " (the first at " +
                              slot->where.file_name() + ":" +
                              std::to_string(slot->where.line()) + ")",
                          w_.where);
        w_.ec = make_error_code(error::busy);
        return false;
    }
    if (loop->completion()) return arm_completion(*loop, st, slot, h, p, deadline, at);
    // A registered fd needs no system call unless the wait asks for current readiness.
    if (!st.always_ready && (!st.registered || level)) {
        std::error_code ec = loop->watch_fd(w_.fd, st, level);
        if (ec) [[unlikely]] {
            if (ec.value() == EPERM && ec.category() == std::system_category()) {
                st.always_ready = true;  // a regular file: epoll refuses it, it never blocks
            } else {
                if (debug_mode() && ec.value() == EBADF)
                    report_misuse("wait on closed fd " + std::to_string(w_.fd), w_.where);
                w_.ec = ec;
                return false;
            }
        }
    }
    if (st.always_ready) [[unlikely]] {
        if (w_.perform) w_.perform(&w_, st);
        return false;
    }
    if (level) st.ready &= std::uint8_t(~(1u << w_.dir));  // the re-arm reports what is true now
    const bool ready_now = st.ready & (1u << w_.dir);  // only when out of budget (try_now)
    enlist(*loop, slot, h, p);
    loop->interest_changed(w_.fd, st);
    if (deadline) {
        deadline->w = &w_;
        deadline->fire = &fire_deadline;
        loop->timers().add_at(*deadline, at);
        deadline_ = deadline;
    }
    if (tok && tok->stop_possible()) stop_.arm(*tok, w_);
    if (ready_now) [[unlikely]] loop->refire(&w_);
    return true;
}

bool io_wait_base::arm_completion(event_loop& loop, fd_state& st, io_wait*& slot,
                                  std::coroutine_handle<> h, promise_base* p,
                                  io_deadline* deadline, time_point at) noexcept {
    if (!st.seen) {
        // What kind of fd it is decides the operation: recv/send for sockets (MSG_NOSIGNAL),
        // read/write otherwise; regular files never wait.
        struct stat sb;
        if (::fstat(w_.fd, &sb) < 0) {
            w_.ec = std::error_code(errno, std::system_category());
            if (debug_mode() && errno == EBADF)
                report_misuse("wait on closed fd " + std::to_string(w_.fd), w_.where);
            return false;
        }
        st.seen = true;
        st.always_ready = S_ISREG(sb.st_mode);
        st.not_socket = !S_ISSOCK(sb.st_mode);
    }
    if (st.always_ready) {
        if (w_.perform) w_.perform(&w_, st);
        return false;
    }
    // A write to a pipe or tty raises SIGPIPE when the reader is gone, and the kernel would
    // raise it inside io_uring_enter; so such writes wait for readiness and then go through
    // the signal-safe write(). Reads from them wait for readiness too: the kernel would run a
    // tty read on a worker thread, beyond what the loop can take back when it moves to another
    // thread's ring. Sockets send with MSG_NOSIGNAL, submitted whole.
    // A Unix connect does not wait (it connects, or fails with EAGAIN at once, which a
    // submitted connect would retry in the kernel instead): it is made here, and waits for
    // writability only if it ever reports EINPROGRESS. Other connects are submitted.
    const bool unix_connect = w_.op == io_op::connect && w_.buf &&
                              static_cast<const sockaddr*>(w_.buf)->sa_family == AF_UNIX;
    if (unix_connect && w_.perform(&w_, st)) return false;
    w_.poll_first = (st.not_socket && w_.op != io_op::poll) || unix_connect;
    if (w_.poll_first && (st.ready & (1u << w_.dir)) && w_.perform(&w_, st)) return false;
    enlist(loop, slot, h, p);
    loop.submit_io(w_, st);
    if (deadline) {
        deadline->w = &w_;
        deadline->fire = &fire_deadline;
        loop.timers().add_at(*deadline, at);
        deadline_ = deadline;
    }
    const std::stop_token* tok = p ? p->stop : nullptr;
    if (tok && tok->stop_possible()) stop_.arm(*tok, w_);
    return true;
}

void io_wait_base::disarm() noexcept {
    if (w_.cancel_posted.load(std::memory_order_acquire)) w_.loop->retract_cancel(&w_);
    if (deadline_) w_.loop->timers().cancel(*deadline_);
    deadline_ = nullptr;
}

void io_wait_base::abandon() noexcept {
    stop_.disarm(w_);
    event_loop* loop = w_.loop;
    disarm();
    loop->drop_wait(w_);
    w_.loop = nullptr;
}

}  // namespace detail

task<result<std::size_t>> write_all(int fd, std::span<const std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size()) {
        auto n = co_await write_some(fd, buf.subspan(done));
        if (!n) co_return n.error();
        done += *n;
    }
    co_return done;
}

void unique_fd::close() noexcept {
    if (fd_ < 0) return;
    event_loop::forget_fd_everywhere(fd_);
    ::close(fd_);
    fd_ = -1;
}

result<std::size_t> try_read_some(int fd, std::span<std::byte> buf) noexcept {
    event_loop* loop = event_loop::current();
    long n = loop ? loop->try_read(fd, buf.data(), buf.size())
                  : [&] {
                        ssize_t r = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
                        if (r < 0 && errno == ENOTSOCK) r = ::read(fd, buf.data(), buf.size());
                        return r < 0 ? -long(errno) : long(r);
                    }();
    return detail::to_result(n);
}

result<std::size_t> try_write_some(int fd, std::span<const std::byte> buf) noexcept {
    event_loop* loop = event_loop::current();
    long n = loop ? loop->try_write(fd, buf.data(), buf.size())
                  : [&] {
                        ssize_t r = ::send(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
                        return r < 0 ? -long(errno) : long(r);
                    }();
    return detail::to_result(n);
}

result<void> set_nonblocking(int fd) noexcept {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return std::error_code(errno, std::system_category());
    return {};
}

}  // namespace coev
