// coev/net/tcp_stream.hpp
// A TCP connection (libevent's bufferevent_socket_connect without the buffering).
#pragma once

#include <coev/net/stream_socket.hpp>

namespace coev::net {

/// A connected TCP socket; see stream_socket for reading and writing.
class tcp_stream : public stream_socket {
public:
    using stream_socket::stream_socket;
    /// Connects to `ep`. Errors: ECONNREFUSED, ENETUNREACH, timed_out past `timeout`,
    /// operation_canceled. Cancel: the half-open socket is closed.
    static task<result<tcp_stream>> connect(endpoint ep,
                                            std::optional<duration> timeout = std::nullopt);
    /// Disables Nagle's algorithm (small writes go out at once).
    result<void> set_nodelay(bool on) noexcept { return sock_.set_nodelay(on); }
};

}  // namespace coev::net
