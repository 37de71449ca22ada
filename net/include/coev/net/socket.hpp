// coev/net/socket.hpp
// An owned socket: non-blocking and close-on-exec from birth, with the options servers set
// (libevent's evutil_make_socket_* helpers as methods).
#pragma once

#include <coev/net/address.hpp>
#include <coev/runtime/io.hpp>
#include <coev/runtime/result.hpp>

#include <chrono>
#include <optional>

namespace coev::net {

/// An RAII socket. Closing it (or destroying it) tells every loop of the thread to forget the fd.
/// Option setters return the setsockopt() error, if any.
class socket {
public:
    socket() noexcept = default;
    explicit socket(unique_fd fd) noexcept : fd_(std::move(fd)) {}
    /// A new socket of `family` (AF_INET, AF_INET6, AF_UNIX) and `type` (SOCK_STREAM,
    /// SOCK_DGRAM), non-blocking and close-on-exec. Errors: what socket() reports (EMFILE...).
    static result<socket> open(int family, int type, int protocol = 0) noexcept;

    int native_handle() const noexcept { return fd_.get(); }
    explicit operator bool() const noexcept { return bool(fd_); }
    bool is_open() const noexcept { return bool(fd_); }
    unique_fd release() noexcept { return unique_fd(fd_.release()); }
    void close() noexcept { fd_.close(); }

    result<void> bind(const endpoint& ep) noexcept;
    result<void> listen(int backlog) noexcept;
    /// Shuts down reading (SHUT_RD), writing (SHUT_WR, sends FIN) or both (SHUT_RDWR).
    result<void> shutdown(int how) noexcept;
    result<endpoint> local_endpoint() const noexcept;
    result<endpoint> peer_endpoint() const noexcept;
    /// The pending error (SO_ERROR), cleared by reading it.
    std::error_code take_error() noexcept;

    result<void> set_reuseaddr(bool on) noexcept;
    result<void> set_reuseport(bool on) noexcept;
    result<void> set_nodelay(bool on) noexcept;
    result<void> set_keepalive(bool on) noexcept;
    /// linger: nullopt = off (close returns at once, the kernel sends what is left);
    /// 0 s = reset the connection on close; n s = close waits up to n s for the data to go.
    /// EINVAL for a negative time or one past INT_MAX seconds.
    result<void> set_linger(std::optional<std::chrono::seconds> t) noexcept;
    result<void> set_send_buffer(int bytes) noexcept;
    result<void> set_recv_buffer(int bytes) noexcept;
    result<int> send_buffer() const noexcept;
    result<int> recv_buffer() const noexcept;
    /// IPv6 sockets only: refuse IPv4-mapped traffic.
    result<void> set_v6only(bool on) noexcept;
    /// Any integer option, for what the named setters do not cover.
    result<void> set_option(int level, int name, int value) noexcept;
    result<int> option(int level, int name) const noexcept;

private:
    unique_fd fd_;
};

}  // namespace coev::net
