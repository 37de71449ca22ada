// runtime/src/backend/backend.hpp
// The one internal interface every event mechanism implements. Readiness backends (epoll, and
// later poll, select, kqueue) watch fds and report readiness to the loop.
#pragma once

#include <coev/runtime/event_loop.hpp>

#include "config.hpp"

#include <cstdint>
#include <memory>
#include <string_view>
#include <system_error>

namespace coev::detail {

long readiness_try_read(int fd, fd_state& st, void* buf, std::size_t len) noexcept;
/// Whether `fd` is a SOCK_STREAM socket, asked once per fd and cached: only there does a
/// short read mean the kernel buffer ran dry and may bytes be received ahead of the reader
/// (a datagram socket returns one message per read, however many are queued).
bool stream_socket(int fd, fd_state& st) noexcept;
long readiness_try_write(int fd, fd_state& st, const void* buf, std::size_t len) noexcept;

class backend {
public:
    virtual ~backend() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual backend_feature features() const noexcept = 0;
    /// The loop this backend serves (called once it exists).
    virtual void attach(event_loop& loop) noexcept { (void)loop; }
    /// The loop is about to run on the calling thread (a ring bound to one thread moves).
    virtual void on_thread() noexcept {}

    /// Makes sure `fd` is watched (st.registered tells whether it already is). With `rearm`,
    /// current readiness is reported again even if it did not change (level semantics).
    /// EPERM: the mechanism cannot watch this kind of fd (regular files under epoll).
    virtual std::error_code watch(int fd, fd_state& st, bool rearm) noexcept = 0;
    /// Level-triggered backends: who waits on `fd` changed (st.reader / st.writer), so the set
    /// of fds and events to watch changes with it. Edge-triggered backends watch everything
    /// once and never need it.
    virtual void update(int fd, fd_state& st) noexcept {
        (void)fd;
        (void)st;
    }
    // ---- completion backends (io_uring): the operation itself is submitted ----
    /// Submits `w`'s operation (poll, read or write, see io_wait::perform); its result comes
    /// back through loop.on_complete(). `st` says what kind of fd it is.
    virtual void submit(io_wait& w, fd_state& st) noexcept {
        (void)w;
        (void)st;
    }
    /// Asks the kernel to stop `w`'s operation; its completion still arrives.
    virtual void cancel(io_wait& w) noexcept { (void)w; }
    /// Cancels `w`'s operation and waits until the kernel is done with it (its buffer is about
    /// to be freed).
    virtual void cancel_sync(event_loop& loop, io_wait& w) noexcept {
        (void)loop;
        (void)w;
    }
    /// Before the loop destroys its tasks: stops every operation and waits for all of them.
    virtual void quiesce(event_loop& loop) noexcept { (void)loop; }

    /// Reads without waiting (coev::try_read_some): bytes, 0 at EOF or -errno. Readiness
    /// backends consult and update the readiness cache; completion backends serve what their
    /// receive already holds.
    virtual long try_read(int fd, fd_state& st, void* buf, std::size_t len) noexcept {
        return readiness_try_read(fd, st, buf, len);
    }

    /// Stops watching `fd` (called before it is closed).
    virtual void forget(int fd, fd_state& st) noexcept = 0;
    /// Watches an internal fd (signalfd); its readiness calls loop.signals().on_readable().
    virtual std::error_code watch_signal_fd(int fd) noexcept = 0;
    /// Waits up to `timeout_ns` (negative: no limit) and reports to the loop.
    virtual void wait(event_loop& loop, std::int64_t timeout_ns) = 0;
    /// Interrupts wait() from any thread.
    virtual void wake() noexcept = 0;

    /// System calls made to wait or to submit (loop_counters::backend_calls).
    std::uint64_t calls = 0;
};

/// What a level-triggered backend answers for an fd it has not seen: EBADF for a closed one
/// (poll and select would only flag it later), EPERM for a regular file, as epoll does (the
/// loop then treats it as always ready).
std::error_code check_fd(int fd) noexcept;

/// Each creates its backend or throws std::system_error when the system refuses.
std::unique_ptr<backend> make_epoll_backend();
std::unique_ptr<backend> make_poll_backend();
std::unique_ptr<backend> make_select_backend();
#if COEV_HAVE_IO_URING
std::unique_ptr<backend> make_uring_backend();
#endif

}  // namespace coev::detail
