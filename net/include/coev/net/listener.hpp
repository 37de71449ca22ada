// coev/net/listener.hpp
// A listening socket that hands out connections (libevent's evconnlistener): co_await accept(),
// enable/disable, and an error hook; running out of file descriptors never spins or ends it.
#pragma once

#include <coev/net/socket.hpp>
#include <coev/runtime/task.hpp>

#include <functional>
#include <memory>
#include <sys/socket.h>

namespace coev::net {

struct listen_options {
    int backlog = SOMAXCONN;
    bool reuse_address = true;  ///< SO_REUSEADDR (IP only): rebind while old connections linger
    bool reuse_port = false;    ///< SO_REUSEPORT: several listeners share the port
    bool v6only = false;        ///< IPv6 only: refuse IPv4-mapped connections
};

namespace detail {
struct listener_state;

/// The accept loop shared by every listener type.
class listener_base {
public:
    listener_base() noexcept;
    listener_base(listener_base&&) noexcept;
    listener_base& operator=(listener_base&&) noexcept;
    ~listener_base();

    /// Stops taking connections: a waiting accept() stays suspended (connections wait in the
    /// kernel's backlog) until enable(). Loop thread only.
    void disable() noexcept;
    void enable() noexcept;
    bool enabled() const noexcept;
    /// Called with errors accept() survives on its own: EMFILE/ENFILE/ENOBUFS/ENOMEM (one queued
    /// connection is then refused so the listener does not spin) — evconnlistener's error
    /// callback.
    void set_error_handler(std::function<void(std::error_code)> fn);
    /// Ends a waiting accept() with error::closed and closes the socket.
    void close() noexcept;
    bool is_open() const noexcept;
    int native_handle() const noexcept;
    result<endpoint> local_endpoint() const noexcept;

protected:
    static result<net::socket> open_listening(const endpoint& ep, const listen_options& o);
    void adopt(net::socket s);
    /// One connection and its peer's address.
    task<result<unique_fd>> accept_fd(endpoint* peer);

private:
    // Shared with a running accept(), which may outlive the listener (it then ends closed).
    std::shared_ptr<listener_state> st_;
};
}  // namespace detail

/// A connection accepted by a listener.
template <class Stream> struct accepted {
    Stream stream;
    endpoint peer;
};

/// A listening socket for `Stream` connections (tcp_stream or unix_stream). Not thread-safe;
/// one accept() at a time. Destroying it (or assigning over it) ends a waiting accept() with
/// error::closed, as close() does.
template <class Stream> class listener : public detail::listener_base {
public:
    listener() noexcept = default;
    /// Binds and listens. Errors: EADDRINUSE, EACCES, EMFILE...
    static result<listener> bind(const endpoint& ep, listen_options o = {}) {
        auto s = open_listening(ep, o);
        if (!s) return s.error();
        listener l;
        l.adopt(std::move(*s));
        return l;
    }
    /// The next connection. Errors: error::closed after close(), operation_canceled, or a
    /// failure of the listening socket itself. Transient failures (a connection reset while
    /// queued, EMFILE...) are retried, not returned.
    /// Cancel: no connection is taken from the queue.
    task<result<accepted<Stream>>> accept() {
        endpoint peer;
        auto fd = co_await accept_fd(&peer);
        if (!fd) co_return fd.error();
        co_return accepted<Stream>{Stream(std::move(*fd)), peer};
    }
};

}  // namespace coev::net
