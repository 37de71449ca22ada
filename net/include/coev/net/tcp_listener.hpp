// coev/net/tcp_listener.hpp
// Listening for TCP connections (evconnlistener_new_bind in coroutine form).
#pragma once

#include <coev/net/listener.hpp>
#include <coev/net/tcp_stream.hpp>

namespace coev::net {

/// `auto l = tcp_listener::bind(*endpoint::parse("127.0.0.1:0"));`, then
/// `auto c = co_await l->accept();` gives `c->stream` (a tcp_stream) and `c->peer`.
using tcp_listener = listener<tcp_stream>;

}  // namespace coev::net
