// coev/net/stream_socket.hpp
// What tcp_stream and unix_stream share: a connected stream socket read and written through the
// loop (a byte_stream and an fd_stream).
#pragma once

#include <coev/net/socket.hpp>
#include <coev/runtime/io.hpp>
#include <coev/runtime/task.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <sys/uio.h>

namespace coev::net {

/// A connected stream socket. Reads and writes are awaited on the thread's running loop; at most
/// one reader and one writer at a time (a second gets error::busy).
class stream_socket {
public:
    stream_socket() noexcept = default;
    explicit stream_socket(net::socket s) noexcept : sock_(std::move(s)) {}
    explicit stream_socket(unique_fd fd) noexcept : sock_(std::move(fd)) {}

    /// Some bytes, 0 when the peer finished sending. Errors: ECONNRESET and the like.
    /// Cancel: no bytes are consumed; the stream stays usable.
    read_some_awaiter read_some(std::span<std::byte> buf,
                                source_location w = source_location::current()) noexcept {
        return coev::read_some(sock_.native_handle(), buf, w);
    }
    /// Some bytes written (at least one). Errors: EPIPE, ECONNRESET... Cancel: nothing written.
    write_some_awaiter write_some(std::span<const std::byte> buf,
                                  source_location w = source_location::current()) noexcept {
        return coev::write_some(sock_.native_handle(), buf, w);
    }
    readv_some_awaiter readv_some(std::span<const iovec> iov,
                                  source_location w = source_location::current()) noexcept {
        return coev::readv_some(sock_.native_handle(), iov, w);
    }
    writev_some_awaiter writev_some(std::span<const iovec> iov,
                                    source_location w = source_location::current()) noexcept {
        return coev::writev_some(sock_.native_handle(), iov, w);
    }
    /// Returns once the loop believes a read would find something (data, EOF or an error):
    /// edge-triggered from the readiness cache, so it may return early; try_read_some() then
    /// gives EAGAIN and the caller waits again. Cancel: nothing stays registered.
    ready_awaiter wait_readable(source_location w = source_location::current()) noexcept {
        return coev::wait_read_ready(sock_.native_handle(), w);
    }
    ready_awaiter wait_writable(source_location w = source_location::current()) noexcept {
        return coev::wait_write_ready(sock_.native_handle(), w);
    }
    /// What the socket holds now, never waiting: bytes, 0 at EOF, or EAGAIN
    /// (std::errc::resource_unavailable_try_again). With wait_readable(), a reader takes memory
    /// for the bytes only once they are there.
    result<std::size_t> try_read_some(std::span<std::byte> buf) noexcept {
        return coev::try_read_some(sock_.native_handle(), buf);
    }
    /// Writes what the socket takes now, never waiting: bytes, or EAGAIN when it is full.
    result<std::size_t> try_write_some(std::span<const std::byte> buf) noexcept {
        return coev::try_write_some(sock_.native_handle(), buf);
    }

    /// Fills all of `buf`. Errors: error::unexpected_eof if the peer finishes first (the bytes
    /// that did arrive are in `buf`), or the read error. Cancel: what was read stays in `buf`.
    task<result<std::size_t>> read_exact(std::span<std::byte> buf);
    /// Writes all of `buf` (the awaiting task keeps `buf` alive). Errors: the first write error.
    task<result<std::size_t>> write(std::span<const std::byte> buf);
    /// Writes all bytes the iovecs describe, in order.
    task<result<std::size_t>> writev(std::span<const iovec> iov);

    /// Sends FIN after what was written; reads keep working (half-close).
    result<void> shutdown_write() noexcept { return sock_.shutdown(SHUT_WR); }
    void close() noexcept { sock_.close(); }
    bool is_open() const noexcept { return sock_.is_open(); }

    int native_handle() const noexcept { return sock_.native_handle(); }
    net::socket& socket() noexcept { return sock_; }
    const net::socket& socket() const noexcept { return sock_; }
    result<endpoint> local_endpoint() const noexcept { return sock_.local_endpoint(); }
    result<endpoint> peer_endpoint() const noexcept { return sock_.peer_endpoint(); }

protected:
    /// Connects `s` to `ep`, within `timeout` when given (timed_out past it).
    static task<result<void>> connect_socket(net::socket& s, endpoint ep,
                                             std::optional<duration> timeout);

    net::socket sock_;
};

}  // namespace coev::net
