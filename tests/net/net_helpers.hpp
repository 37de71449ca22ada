// tests/net/net_helpers.hpp
// What the net tests share: connected pairs of streams over loopback and AF_UNIX. (Tests name a
// pair and bind references to its halves: clang 14 lambdas cannot capture structured bindings.)
#pragma once

#include "helpers.hpp"

#include <coev/net/buffered_stream.hpp>
#include <coev/net/tcp_listener.hpp>
#include <coev/net/unix_stream.hpp>

#include <utility>

namespace coev_test {

using buffered_unix = coev::net::buffered_stream<coev::net::unix_stream>;

/// Two buffered streams over a connected AF_UNIX socketpair.
inline std::pair<buffered_unix, buffered_unix> buffered_unix_pair() {
    auto p = coev::net::socket_pair();
    REQUIRE(p);
    return {buffered_unix(std::move(p->first)), buffered_unix(std::move(p->second))};
}

/// Both ends of one TCP connection on 127.0.0.1.
struct tcp_pair {
    coev::net::tcp_stream client, server;
};

inline coev::task<tcp_pair> connect_tcp_pair() {
    auto l = coev::net::tcp_listener::bind(*coev::net::endpoint::parse("127.0.0.1:0"));
    REQUIRE(l);
    auto c = co_await coev::net::tcp_stream::connect(*l->local_endpoint());
    REQUIRE(c);
    auto s = co_await l->accept();
    REQUIRE(s);
    co_return tcp_pair{std::move(*c), std::move(s->stream)};
}

}  // namespace coev_test
