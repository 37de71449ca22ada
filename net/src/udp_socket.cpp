// net/src/udp_socket.cpp
// Datagram calls are made directly and waited for with level-triggered readiness: a stream-style
// read awaiter would let the completion backend join datagrams into one read.
#include <coev/net/udp_socket.hpp>
#include <coev/runtime/io.hpp>

#include <cerrno>
#include <sys/socket.h>

namespace coev::net {

namespace {
std::error_code last_error() noexcept { return {errno, std::system_category()}; }
bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }
}  // namespace

result<udp_socket> udp_socket::open(int family) noexcept {
    auto s = net::socket::open(family, SOCK_DGRAM);
    if (!s) return s.error();
    return udp_socket(std::move(*s));
}

result<udp_socket> udp_socket::bind(const endpoint& ep, bool reuse_address) noexcept {
    auto s = net::socket::open(ep.family(), SOCK_DGRAM);
    if (!s) return s.error();
    if (reuse_address) {
        if (auto r = s->set_reuseaddr(true); !r) return r.error();
    }
    if (auto r = s->bind(ep); !r) return r.error();
    return udp_socket(std::move(*s));
}

result<void> udp_socket::connect(const endpoint& peer) noexcept {
    if (::connect(sock_.native_handle(), peer.data(), peer.size()) != 0) return last_error();
    return {};
}

task<result<std::size_t>> udp_socket::send_to(std::span<const std::byte> data, endpoint to) {
    for (;;) {
        ssize_t n = ::sendto(sock_.native_handle(), data.data(), data.size(), MSG_DONTWAIT,
                             to.data(), to.size());
        if (n >= 0) co_return std::size_t(n);
        if (errno == EINTR) continue;
        if (!would_block(errno)) co_return last_error();
        auto r = co_await wait_writable(sock_.native_handle());
        if (!r) co_return r.error();
    }
}

task<result<std::size_t>> udp_socket::send(std::span<const std::byte> data) {
    for (;;) {
        ssize_t n = ::send(sock_.native_handle(), data.data(), data.size(), MSG_DONTWAIT);
        if (n >= 0) co_return std::size_t(n);
        if (errno == EINTR) continue;
        if (!would_block(errno)) co_return last_error();
        auto r = co_await wait_writable(sock_.native_handle());
        if (!r) co_return r.error();
    }
}

task<result<datagram>> udp_socket::recv_from(std::span<std::byte> buf) {
    for (;;) {
        sockaddr_storage ss;
        iovec iov{buf.data(), buf.size()};
        msghdr msg{};
        msg.msg_name = &ss;
        msg.msg_namelen = sizeof ss;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        ssize_t n = ::recvmsg(sock_.native_handle(), &msg, MSG_DONTWAIT);
        if (n >= 0) {
            datagram d;
            d.size = std::size_t(n);
            d.truncated = msg.msg_flags & MSG_TRUNC;
            // A sender with no address (an unbound Unix datagram socket) comes with none at
            // all: it is the unnamed Unix endpoint, as accept() reports an unbound client.
            // (An IP sender always has one.)
            if (msg.msg_namelen < sizeof(sa_family_t)) {
                ss.ss_family = AF_UNIX;
                msg.msg_namelen = sizeof(sa_family_t);
            }
            auto from = endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), msg.msg_namelen);
            if (from) d.from = *from;
            co_return d;
        }
        if (errno == EINTR) continue;
        if (!would_block(errno)) co_return last_error();
        auto r = co_await wait_readable(sock_.native_handle());
        if (!r) co_return r.error();
    }
}

task<result<std::size_t>> udp_socket::recv(std::span<std::byte> buf) {
    auto d = co_await recv_from(buf);
    if (!d) co_return d.error();
    co_return d->size;
}

}  // namespace coev::net
