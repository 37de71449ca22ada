// coev/net/udp_socket.hpp
// UDP: datagrams to and from any endpoint, or to one peer in connected mode.
#pragma once

#include <coev/net/socket.hpp>
#include <coev/runtime/task.hpp>

#include <cstddef>
#include <span>

namespace coev::net {

/// One datagram received: its length, who sent it, and whether it was cut to fit the buffer.
struct datagram {
    std::size_t size = 0;
    endpoint from;
    bool truncated = false;
};

/// A UDP socket. One receiver and one sender at a time.
class udp_socket {
public:
    udp_socket() noexcept = default;
    explicit udp_socket(net::socket s) noexcept : sock_(std::move(s)) {}
    /// An unbound socket of `family` (AF_INET or AF_INET6).
    static result<udp_socket> open(int family = AF_INET) noexcept;
    /// A socket bound to `ep` (port 0: the kernel picks one; see local_endpoint()).
    static result<udp_socket> bind(const endpoint& ep, bool reuse_address = false) noexcept;

    /// Connected mode: send() goes to `peer`, and only its datagrams are received.
    result<void> connect(const endpoint& peer) noexcept;

    /// Sends one datagram. Errors: EMSGSIZE, ECONNREFUSED (an earlier datagram to a closed
    /// port, connected mode)... Cancel: nothing was sent.
    task<result<std::size_t>> send_to(std::span<const std::byte> data, endpoint to);
    /// Receives one datagram. Cancel: nothing is consumed.
    task<result<datagram>> recv_from(std::span<std::byte> buf);
    /// Connected mode: send_to/recv_from without the address.
    task<result<std::size_t>> send(std::span<const std::byte> data);
    task<result<std::size_t>> recv(std::span<std::byte> buf);

    int native_handle() const noexcept { return sock_.native_handle(); }
    net::socket& socket() noexcept { return sock_; }
    result<endpoint> local_endpoint() const noexcept { return sock_.local_endpoint(); }
    void close() noexcept { sock_.close(); }

private:
    net::socket sock_;
};

}  // namespace coev::net
