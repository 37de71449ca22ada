// tests/runtime/socket_test.cpp
// accept, connect, readv and writev on loopback TCP, on every backend.
#include "helpers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string>
#include <unistd.h>

using namespace std::chrono_literals;
using coev_test::watchdog;

namespace {

// A non-blocking TCP socket of `family` listening on the loopback address, any port.
coev::unique_fd listen_on_loopback(int family, sockaddr_storage& bound, socklen_t& len) {
    coev::unique_fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_storage any{};
    if (family == AF_INET) {
        auto& a = reinterpret_cast<sockaddr_in&>(any);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof a;
    } else {
        auto& a = reinterpret_cast<sockaddr_in6&>(any);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        len = sizeof a;
    }
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&any), len) == 0);
    REQUIRE(::listen(fd.get(), 64) == 0);
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) == 0);
    return fd;
}

coev::unique_fd tcp_socket(int family) {
    return coev::unique_fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

std::string as_string(const char* p, std::size_t n) { return std::string(p, n); }

}  // namespace

TEST_CASE("accept and connect meet on loopback, and writev's bytes arrive through readv") {
    for (int family : {AF_INET, AF_INET6}) {
        CAPTURE(family);
        coev::event_loop loop;
        sockaddr_storage addr{};
        socklen_t len = 0;
        auto listener = listen_on_loopback(family, addr, len);
        coev::result<void> connected;
        coev::result<std::size_t> sent, got;
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof peer;
        std::string received;
        auto server = [&]() -> coev::task<> {
            auto conn = co_await coev::accept(listener.get(), reinterpret_cast<sockaddr*>(&peer),
                                              &peer_len);
            REQUIRE(conn.has_value());
            char a[2], b[16];
            iovec iov[2] = {{a, sizeof a}, {b, sizeof b}};
            got = co_await coev::readv_some(conn->get(), iov);
            if (got && *got >= 2) received = as_string(a, 2) + as_string(b, *got - 2);
        };
        auto client = [&]() -> coev::task<> {
            auto fd = tcp_socket(family);
            connected = co_await coev::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
            if (!connected) co_return;
            char he[] = "he", llo[] = "llo";
            iovec iov[2] = {{he, 2}, {llo, 3}};
            sent = co_await coev::writev_some(fd.get(), iov);
        };
        coev::spawn(loop, server());
        coev::spawn(loop, client());
        watchdog wd(loop);
        loop.run();
        REQUIRE(connected.has_value());
        REQUIRE(sent.has_value());
        CHECK(*sent == 5);
        REQUIRE(got.has_value());
        CHECK(received == "hello");
        CHECK(peer.ss_family == family);
        CHECK(peer_len > 0);
        CHECK_FALSE(wd.fired());
    }
}

TEST_CASE("a connect to a port nobody listens on fails with ECONNREFUSED") {
    coev::event_loop loop;
    sockaddr_storage addr{};
    socklen_t len = 0;
    { auto closed = listen_on_loopback(AF_INET, addr, len); }  // the port is free again
    coev::result<void> r;
    auto client = [&]() -> coev::task<> {
        auto fd = tcp_socket(AF_INET);
        r = co_await coev::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
    };
    coev::spawn(loop, client());
    watchdog wd(loop);
    loop.run();
    CHECK(r.error() == std::errc::connection_refused);
}

TEST_CASE("a cancelled accept takes no connection from the queue") {
    coev::event_loop loop;
    sockaddr_storage addr{};
    socklen_t len = 0;
    auto listener = listen_on_loopback(AF_INET, addr, len);
    std::stop_source stop;
    coev::result<coev::unique_fd> first, second;
    auto acceptor = [&]() -> coev::task<> { first = co_await coev::accept(listener.get()); };
    auto canceller = [&]() -> coev::task<> {
        stop.request_stop();
        co_return;
    };
    coev::spawn(loop, acceptor(), {.stop = stop.get_token()});
    loop.poll();  // the accept waits
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(first.error() == std::errc::operation_canceled);
    // A connection that arrives now is still there for the next accept.
    auto client_fd = tcp_socket(AF_INET);
    auto client = [&]() -> coev::task<> {
        (void)co_await coev::connect(client_fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
    };
    auto again = [&]() -> coev::task<> { second = co_await coev::accept(listener.get()); };
    coev::spawn(loop, client());
    coev::spawn(loop, again());
    loop.run();
    CHECK(second.has_value());
}
