// net/src/socket.cpp
#include <coev/net/socket.hpp>

#include <cerrno>
#include <limits>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace coev::net {

namespace {
std::error_code last_error() noexcept { return {errno, std::system_category()}; }
}  // namespace

result<socket> socket::open(int family, int type, int protocol) noexcept {
    int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) return last_error();
    return socket(unique_fd(fd));
}

result<void> socket::bind(const endpoint& ep) noexcept {
    if (::bind(fd_.get(), ep.data(), ep.size()) != 0) return last_error();
    return {};
}

result<void> socket::listen(int backlog) noexcept {
    if (::listen(fd_.get(), backlog) != 0) return last_error();
    return {};
}

result<void> socket::shutdown(int how) noexcept {
    if (::shutdown(fd_.get(), how) != 0) return last_error();
    return {};
}

result<endpoint> socket::local_endpoint() const noexcept {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return last_error();
    return endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

result<endpoint> socket::peer_endpoint() const noexcept {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return last_error();
    return endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::error_code socket::take_error() noexcept {
    auto e = option(SOL_SOCKET, SO_ERROR);
    if (!e) return e.error();
    return *e ? std::error_code(*e, std::system_category()) : std::error_code();
}

result<void> socket::set_option(int level, int name, int value) noexcept {
    if (::setsockopt(fd_.get(), level, name, &value, sizeof value) != 0) return last_error();
    return {};
}

result<int> socket::option(int level, int name) const noexcept {
    int value = 0;
    socklen_t len = sizeof value;
    if (::getsockopt(fd_.get(), level, name, &value, &len) != 0) return last_error();
    return value;
}

result<void> socket::set_reuseaddr(bool on) noexcept {
    return set_option(SOL_SOCKET, SO_REUSEADDR, on);
}
result<void> socket::set_reuseport(bool on) noexcept {
    return set_option(SOL_SOCKET, SO_REUSEPORT, on);
}
result<void> socket::set_nodelay(bool on) noexcept {
    return set_option(IPPROTO_TCP, TCP_NODELAY, on);
}
result<void> socket::set_keepalive(bool on) noexcept {
    return set_option(SOL_SOCKET, SO_KEEPALIVE, on);
}
result<void> socket::set_send_buffer(int bytes) noexcept {
    return set_option(SOL_SOCKET, SO_SNDBUF, bytes);
}
result<void> socket::set_recv_buffer(int bytes) noexcept {
    return set_option(SOL_SOCKET, SO_RCVBUF, bytes);
}
result<int> socket::send_buffer() const noexcept { return option(SOL_SOCKET, SO_SNDBUF); }
result<int> socket::recv_buffer() const noexcept { return option(SOL_SOCKET, SO_RCVBUF); }
result<void> socket::set_v6only(bool on) noexcept {
    return set_option(IPPROTO_IPV6, IPV6_V6ONLY, on);
}

result<void> socket::set_linger(std::optional<std::chrono::seconds> t) noexcept {
    // A negative time, or one that l_linger's int cannot hold, is an error, not a wrap.
    if (t && (t->count() < 0 || t->count() > std::numeric_limits<int>::max()))
        return std::make_error_code(std::errc::invalid_argument);
    ::linger l{};
    l.l_onoff = t.has_value();
    l.l_linger = t ? int(t->count()) : 0;
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0) return last_error();
    return {};
}

}  // namespace coev::net
