// coev/runtime/io.hpp
// Waiting on file descriptors: the coroutine form of event_new() on an fd, plus the
// read/write awaiters that try the system call first and wait only when it would block.
#pragma once

#include <coev/runtime/event_loop.hpp>
#include <coev/runtime/result.hpp>

#include <cerrno>
#include <cstddef>
#include <sys/socket.h>
#include <sys/uio.h>
#include <optional>
#include <span>
#include <stop_token>
#include <utility>

namespace coev {

/// Owns a file descriptor; closing it tells the running loop to forget what it cached.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~unique_fd() { close(); }
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void close() noexcept;

private:
    int fd_ = -1;
};

namespace detail {

/// What an fd wait does once the fd is ready (readiness backends) or what it submits
/// (completion backends).
enum class io_op : std::uint8_t { poll, read, write, readv, writev, accept, connect };

/// An fd wait, as the loop's fd table sees it.
struct io_wait : waiter {
    /// Readiness backends call it when the fd is ready; false: it would still block, keep
    /// waiting. Null for plain readiness waits.
    using perform_fn = bool (*)(io_wait*, fd_state&) noexcept;
    int fd = -1;
    std::uint8_t dir = 0;     // 0: readable, 1: writable
    bool in_flight = false;   // completion backends: submitted, completion not yet seen
    bool cancelling = false;  // completion backends: a cancel was asked; `ec` says why
    bool poll_first = false;  // completion backends: wait for readiness, then perform
    io_op op = io_op::poll;
    bool orphaned = false;  // completion backends: its fd was closed while it was in flight
    perform_fn perform = nullptr;
    // waiter::loop: set while armed
};

/// A transfer done by the loop when readiness arrives (or submitted whole). `buf` is the bytes,
/// the iovec array of a readv (`count` entries, `len` bytes in all), the msghdr of a writev
/// (`len` bytes in all) or the address.
struct rw_wait : io_wait {
    void* buf = nullptr;
    std::size_t len = 0;
    long n = 0;  // bytes (or the accepted fd), or -errno
    std::uint32_t count = 0;
    socklen_t addrlen = 0;
};

/// Completes an fd wait with `ec` on its loop (a stop request).
void cancel_io(waiter* w, std::error_code ec) noexcept;

bool perform_read(io_wait* w, fd_state& st) noexcept;
bool perform_write(io_wait* w, fd_state& st) noexcept;
bool perform_readv(io_wait* w, fd_state& st) noexcept;
bool perform_writev(io_wait* w, fd_state& st) noexcept;
bool perform_accept(io_wait* w, fd_state& st) noexcept;
bool perform_connect(io_wait* w, fd_state& st) noexcept;

/// The deadline of a readiness wait.
struct io_deadline : timer_node {
    io_wait* w = nullptr;
};

inline result<std::size_t> to_result(long n) noexcept {
    if (n >= 0) return std::size_t(n);
    return std::error_code(int(-n), std::system_category());
}

/// Shared suspend/resume logic of every fd awaiter. The hot checks are inline; arming is one
/// out-of-line call (io.cpp).
class io_wait_base {
public:
    io_wait_base(int fd, std::uint8_t dir, io_op op, io_wait::perform_fn perform,
                 coev::source_location where) noexcept {
        w_.fd = fd;
        w_.dir = dir;
        w_.op = op;
        w_.perform = perform;
        w_.where = where;
    }
    io_wait_base(const io_wait_base&) = delete;
    /// Only before the wait is armed (so the awaiter can be handed to with_timeout & co).
    io_wait_base(io_wait_base&& o) noexcept {
        w_.fd = o.w_.fd;
        w_.dir = o.w_.dir;
        w_.op = o.w_.op;
        w_.perform = o.w_.perform;
        w_.where = o.w_.where;
        w_.buf = o.w_.buf;
        w_.len = o.w_.len;
        w_.count = o.w_.count;
        w_.addrlen = o.w_.addrlen;
    }
    ~io_wait_base() {
        if (w_.loop) abandon();
        stop_.disarm(w_);
    }

protected:
    /// Does the operation now when the readiness cache says it may not block.
    bool try_now() noexcept {
        event_loop* loop = event_loop::current();
        if (!loop || w_.fd < 0) return false;  // arm() reports it
        // Completion backends submit reads and connects, and writes to a known socket: the send
        // goes with the loop's next batch, with no system call of its own. A first write, and
        // one to a pipe or file (which wait for readiness there), is tried at once.
        if (loop->completion() && (w_.dir == 0 || w_.op == io_op::connect)) return false;
        fd_state& st = loop->fd(w_.fd);
        if (loop->completion() && st.seen && !st.not_socket) return false;
        if (!st.seen) [[unlikely]] first_use(st);
        // Past its budget the task waits its turn instead, even though the fd is ready.
        return (st.ready & (1u << w_.dir)) && loop->take_budget() && w_.perform(&w_, st);
    }
    void first_use(fd_state& st) noexcept;
    /// A send write_some made before its wait existed, which did not go out whole (`n`: bytes
    /// or -errno): what the usual path would have made of it; false when the caller should wait.
    bool sent_part(event_loop& loop, long n) noexcept;
    /// Arms the wait; false when the caller should not suspend (done, ready or failed).
    bool arm(std::coroutine_handle<> h, promise_base* p, bool level,
             io_deadline* deadline = nullptr, time_point at = {}) noexcept;
    /// arm()'s usual case, inline: a readiness loop, a watched fd that is not ready and that
    /// no other task waits on, no deadline, and a caller that cannot be stopped. It arms the
    /// wait as arm() would and returns true; false (nothing done): take arm().
    bool arm_now(std::coroutine_handle<> h, promise_base* p) noexcept {
        event_loop* loop = event_loop::current();
        if (!loop || loop->completion()) return false;
        fd_state* st = loop->known_fd(w_.fd);
        if (!st || !st->registered || st->always_ready || (st->ready & (1u << w_.dir)))
            return false;
        io_wait*& slot = w_.dir ? st->writer : st->reader;
        if (slot || (p && p->stop->stop_possible())) return false;
        enlist(*loop, slot, h, p);
        loop->interest_changed(w_.fd, *st);
        return true;
    }
    /// Makes the wait `slot`'s, to be resumed through `h`.
    void enlist(event_loop& loop, io_wait*& slot, std::coroutine_handle<> h,
                promise_base* p) noexcept {
        w_.node.handle = h;
        w_.node.priority = priority_of(p);
        w_.cancel = &cancel_io;
        w_.loop = &loop;
        slot = &w_;
        if (w_.dir) loop.set_send_now(w_.fd, false);  // the next write queues behind this one
        loop.count_wait(1);
    }
    /// After the wait: disarms what is left; false when the wait failed (see w_.ec).
    bool finish() noexcept {
        stop_.disarm(w_);  // waits for a stop callback running on another thread
        if (w_.loop) {
            if (deadline_ || w_.cancel_posted.load(std::memory_order_acquire)) [[unlikely]]
                disarm();
            w_.loop = nullptr;
        }
        return !w_.ec;
    }
    bool arm_completion(event_loop& loop, fd_state& st, io_wait*& slot,
                        std::coroutine_handle<> h, promise_base* p, io_deadline* deadline,
                        time_point at) noexcept;
    void disarm() noexcept;
    void abandon() noexcept;

    rw_wait w_;
    io_deadline* deadline_ = nullptr;
    stop_link stop_;
};

/// What every byte transfer awaiter shares: try the call now if the fd may be ready, else wait
/// (or submit); the result is a byte count, 0 meaning EOF for reads.
class transfer_awaiter : protected io_wait_base {
public:
    using io_wait_base::io_wait_base;
    bool await_ready() noexcept { return try_now(); }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return arm_now(h, base_of(h)) || arm(h, base_of(h), false);
    }
    result<std::size_t> await_resume() noexcept {
        if (!finish()) return w_.ec.code();
        return to_result(w_.n);
    }
    /// See sent_part().
    bool after_send(event_loop& loop, long n) noexcept { return sent_part(loop, n); }
    void set_buffer(void* buf, std::size_t len) noexcept {
        w_.buf = buf;
        w_.len = len;
    }
};

}  // namespace detail

/// Waits until `fd` is readable (level-triggered: true at once if data is already there).
/// Errors: EBADF for a closed fd, error::busy if another task waits for the same, timed_out
/// past `deadline`. Cancel: nothing stays registered.
class wait_readiness_awaiter : detail::io_wait_base {
public:
    wait_readiness_awaiter(int fd, std::uint8_t dir, std::optional<time_point> deadline,
                           coev::source_location where) noexcept
        : io_wait_base(fd, dir, detail::io_op::poll, nullptr, where), at_(deadline) {}
    bool await_ready() noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return arm(h, detail::base_of(h), true, at_ ? &timer_ : nullptr,
                   at_.value_or(time_point{}));
    }
    result<void> await_resume() noexcept {
        if (!finish()) return w_.ec.code();
        return {};
    }

private:
    std::optional<time_point> at_;
    detail::io_deadline timer_;
};

inline wait_readiness_awaiter wait_readable(
    int fd, std::optional<time_point> deadline = std::nullopt,
    coev::source_location where = coev::source_location::current()) noexcept {
    return {fd, 0, deadline, where};
}
/// Waits until `fd` is writable; see wait_readable().
inline wait_readiness_awaiter wait_writable(
    int fd, std::optional<time_point> deadline = std::nullopt,
    coev::source_location where = coev::source_location::current()) noexcept {
    return {fd, 1, deadline, where};
}

/// Waits until the loop believes `fd` readable (or writable): edge-triggered, from the readiness
/// cache, so no system call when the last read left data behind — but it may return when nothing
/// is there any more; try_read_some() then says would-block and the caller waits again. Meant
/// for readers that take memory only once bytes are there (see try_read_some). Errors: EBADF,
/// error::busy. Cancel: nothing stays registered.
class ready_awaiter : detail::io_wait_base {
public:
    ready_awaiter(int fd, std::uint8_t dir, coev::source_location where) noexcept
        : io_wait_base(fd, dir, detail::io_op::poll, nullptr, where) {}
    bool await_ready() noexcept {
        event_loop* loop = event_loop::current();
        if (!loop || w_.fd < 0 || (loop->completion() && w_.dir == 0)) return false;
        const detail::fd_state& st = loop->fd(w_.fd);
        return st.registered && (st.ready & (1u << w_.dir)) && loop->take_budget();
    }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return arm_now(h, detail::base_of(h)) || arm(h, detail::base_of(h), false);
    }
    result<void> await_resume() noexcept {
        if (!finish()) return w_.ec.code();
        return {};
    }
};

inline ready_awaiter wait_read_ready(
    int fd, coev::source_location where = coev::source_location::current()) noexcept {
    return {fd, 0, where};
}
inline ready_awaiter wait_write_ready(
    int fd, coev::source_location where = coev::source_location::current()) noexcept {
    return {fd, 1, where};
}

/// Reads what `fd` holds now without waiting: bytes, 0 at EOF, or EAGAIN
/// (std::errc::resource_unavailable_try_again) when nothing is there. On the loop's thread it
/// keeps the readiness cache true and, under io_uring, takes the bytes the socket's receive
/// stream already holds; so pair it with wait_read_ready(), never with a plain recv().
result<std::size_t> try_read_some(int fd, std::span<std::byte> buf) noexcept;
/// Writes what `fd` takes now without waiting: bytes, or EAGAIN when its buffer is full.
result<std::size_t> try_write_some(int fd, std::span<const std::byte> buf) noexcept;

/// Reads up to `buf.size()` bytes from a non-blocking stream fd (socket, pipe, tty); 0 means
/// the peer closed its side. Tries the system call while the fd may be readable and waits only
/// when it would block. Cancel: no bytes are consumed and the fd stays usable.
class read_some_awaiter : public detail::transfer_awaiter {
public:
    read_some_awaiter(int fd, std::span<std::byte> buf, coev::source_location where) noexcept
        : transfer_awaiter(fd, 0, detail::io_op::read, &detail::perform_read, where) {
        w_.buf = buf.data();
        w_.len = buf.size();
    }
};

/// Writes some of `buf` to a non-blocking stream fd (at least one byte unless it fails).
/// Cancel: nothing was written.
class write_some_awaiter {
public:
    write_some_awaiter(int fd, std::span<const std::byte> buf, coev::source_location where) noexcept
        : buf_(buf.data()), len_(buf.size()), where_(where), fd_(fd) {}
    /// Only before it is awaited (so it can be handed to with_timeout & co).
    write_some_awaiter(write_some_awaiter&& o) noexcept
        : buf_(o.buf_), len_(o.len_), where_(o.where_), fd_(o.fd_) {}
    write_some_awaiter(const write_some_awaiter&) = delete;
    ~write_some_awaiter() {
        if (made_) wait_.~transfer_awaiter();
    }
    bool await_ready() noexcept {
        if (made_) [[unlikely]] {  // awaited again: the last await's wait is done with
            wait_.~transfer_awaiter();
            made_ = false;
        }
        // A socket whose writes go out whole: send without a look at its entry, as a callback
        // would, without making the wait.
        // Anything but the whole buffer sent goes through the entry (after_send).
        event_loop* loop = event_loop::current();
        if (loop && fd_ >= 0 && loop->may_send_now(fd_)) {
            if (!loop->take_budget()) {  // arm() sees it ready and queues it behind the others
                start();
                return false;
            }
            long n = ::send(fd_, buf_, len_, MSG_NOSIGNAL);
            if (std::size_t(n) == len_) [[likely]] return true;
            if (n < 0) n = -errno;
            start();
            return wait_.after_send(*loop, n);
        }
        start();
        return wait_.await_ready();
    }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return wait_.await_suspend(h);
    }
    result<std::size_t> await_resume() noexcept {
        if (!made_) return len_;
        return wait_.await_resume();
    }

private:
    void start() noexcept {
        ::new (static_cast<void*>(&wait_))
            detail::transfer_awaiter(fd_, 1, detail::io_op::write, &detail::perform_write, where_);
        wait_.set_buffer(const_cast<std::byte*>(buf_), len_);
        made_ = true;
    }

    // All a write that goes out whole touches: 32 bytes. The wait (128) is made only when the
    // fast path does not apply, so a frame's cold lines past these are not written on every
    // send (bench/pipe_chain: a cache line fewer per hop).
    const std::byte* buf_;
    std::size_t len_;
    coev::source_location where_;
    int fd_;
    bool made_ = false;
    union {
        detail::transfer_awaiter wait_;
    };
};

inline read_some_awaiter read_some(int fd, std::span<std::byte> buf,
                                   coev::source_location where = coev::source_location::current()) {
    return {fd, buf, where};
}
inline write_some_awaiter write_some(
    int fd, std::span<const std::byte> buf,
    coev::source_location where = coev::source_location::current()) {
    return {fd, buf, where};
}

/// Reads into several buffers at once (readv); see read_some().
class readv_some_awaiter : public detail::transfer_awaiter {
public:
    readv_some_awaiter(int fd, std::span<const iovec> iov, coev::source_location where) noexcept
        : transfer_awaiter(fd, 0, detail::io_op::readv, &detail::perform_readv, where) {
        w_.buf = const_cast<iovec*>(iov.data());
        w_.count = std::uint32_t(iov.size());
        for (const iovec& v : iov) w_.len += v.iov_len;
    }
};

/// Writes from several buffers at once (writev; sendmsg with MSG_NOSIGNAL on sockets); see
/// write_some(). The iovecs must stay valid until the write completes.
class writev_some_awaiter : public detail::transfer_awaiter {
public:
    writev_some_awaiter(int fd, std::span<const iovec> iov, coev::source_location where) noexcept
        : transfer_awaiter(fd, 1, detail::io_op::writev, &detail::perform_writev, where) {
        msg_.msg_iov = const_cast<iovec*>(iov.data());
        msg_.msg_iovlen = iov.size();
        w_.buf = &msg_;  // the completion backend submits the message whole (sendmsg)
        for (const iovec& v : iov) w_.len += v.iov_len;
    }
    writev_some_awaiter(writev_some_awaiter&& o) noexcept
        : transfer_awaiter(std::move(o)), msg_(o.msg_) {
        w_.buf = &msg_;
    }

private:
    msghdr msg_{};
};

inline readv_some_awaiter readv_some(
    int fd, std::span<const iovec> iov,
    coev::source_location where = coev::source_location::current()) noexcept {
    return {fd, iov, where};
}
inline writev_some_awaiter writev_some(
    int fd, std::span<const iovec> iov,
    coev::source_location where = coev::source_location::current()) noexcept {
    return {fd, iov, where};
}

/// Accepts one connection on a non-blocking listening socket. The new socket is non-blocking
/// and close-on-exec; the peer's address goes to `peer` (when given, `*peer_len` in and out).
/// Errors: what accept4() reports (EMFILE, ENFILE, ECONNABORTED...). Cancel: no connection is
/// taken from the queue.
class accept_awaiter : detail::io_wait_base {
public:
    accept_awaiter(int fd, sockaddr* peer, socklen_t* peer_len,
                   coev::source_location where) noexcept
        : io_wait_base(fd, 0, detail::io_op::accept, &detail::perform_accept, where),
          peer_len_(peer_len) {
        w_.buf = peer;
        w_.addrlen = peer && peer_len ? *peer_len : 0;
    }
    bool await_ready() noexcept { return try_now(); }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return arm(h, detail::base_of(h), false);
    }
    result<unique_fd> await_resume() noexcept {
        if (!finish()) return w_.ec.code();
        if (w_.n < 0) return std::error_code(int(-w_.n), std::system_category());
        if (peer_len_) *peer_len_ = w_.addrlen;
        return unique_fd(int(w_.n));
    }

private:
    socklen_t* peer_len_;
};

/// Connects a non-blocking socket to `addr` (which must stay valid until it completes).
/// Errors: ECONNREFUSED, ENETUNREACH, ETIMEDOUT... Cancel: the attempt is abandoned; close the
/// socket, its state is unspecified (as after an interrupted connect()).
class connect_awaiter : detail::io_wait_base {
public:
    connect_awaiter(int fd, const sockaddr* addr, socklen_t len,
                    coev::source_location where) noexcept
        : io_wait_base(fd, 1, detail::io_op::connect, &detail::perform_connect, where) {
        w_.buf = const_cast<sockaddr*>(addr);
        w_.addrlen = len;
    }
    bool await_ready() noexcept { return try_now(); }
    template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
        return arm(h, detail::base_of(h), false);
    }
    result<void> await_resume() noexcept {
        if (!finish()) return w_.ec.code();
        if (w_.n < 0) return std::error_code(int(-w_.n), std::system_category());
        return {};
    }
};

inline accept_awaiter accept(int fd, sockaddr* peer = nullptr, socklen_t* peer_len = nullptr,
                             coev::source_location where = coev::source_location::current()) {
    return {fd, peer, peer_len, where};
}
inline connect_awaiter connect(int fd, const sockaddr* addr, socklen_t len,
                               coev::source_location where = coev::source_location::current()) {
    return {fd, addr, len, where};
}

/// Writes all of `buf`; fails with the first error.
task<result<std::size_t>> write_all(int fd, std::span<const std::byte> buf);


/// Sets O_NONBLOCK on `fd`.
result<void> set_nonblocking(int fd) noexcept;

}  // namespace coev
