// coev/net/unix_stream.hpp
// Unix-domain stream sockets: a connection to a path, and a connected pair (socketpair()).
#pragma once

#include <coev/net/listener.hpp>
#include <coev/net/stream_socket.hpp>

#include <string_view>
#include <utility>

namespace coev::net {

/// A connected AF_UNIX stream socket; see stream_socket for reading and writing.
class unix_stream : public stream_socket {
public:
    using stream_socket::stream_socket;
    /// Connects to a Unix endpoint ("unix:/path" parsed, or endpoint::unix_path()).
    /// Errors: ENOENT, ECONNREFUSED, EAGAIN when the listener's backlog is full,
    /// invalid_argument for a non-Unix endpoint, timed_out.
    /// Cancel: the socket is closed.
    static task<result<unix_stream>> connect(endpoint ep,
                                             std::optional<duration> timeout = std::nullopt);
};

/// Two connected AF_UNIX stream sockets (evutil_socketpair), non-blocking and close-on-exec.
result<std::pair<unix_stream, unix_stream>> socket_pair() noexcept;

/// Listens on a Unix path; the caller removes a stale socket file before bind() (EADDRINUSE).
using unix_listener = listener<unix_stream>;
}  // namespace coev::net
