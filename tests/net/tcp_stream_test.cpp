// tests/net/tcp_stream_test.cpp
// tcp_stream on loopback: exact reads, whole writes, half-close, reset, on every backend.
#include "net_helpers.hpp"

#include <coev/net/tcp_listener.hpp>

#include <numeric>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace coev::net;
using coev_test::as_bytes;
using coev_test::watchdog;

using coev_test::connect_tcp_pair;

TEST_CASE("write sends every byte and read_exact receives exactly that many") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    std::vector<std::byte> sent(4 << 20), got(sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = std::byte(i * 131 + (i >> 12));
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        auto writer = [&]() -> coev::task<> {
            auto n = co_await p.client.write(sent);
            REQUIRE(n);
            CHECK(*n == sent.size());
        };
        coev::task_group g;
        g.spawn(writer());
        auto r = co_await p.server.read_exact(got);
        REQUIRE(r);
        (void)co_await g.join();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(got == sent);
}

TEST_CASE("writev sends every byte of every iovec in order") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    std::vector<std::string> parts;
    for (int i = 0; i < 64; ++i) parts.push_back(std::string(std::size_t(1000 + i * 777), char('a' + i % 26)));
    const std::string whole = std::accumulate(parts.begin(), parts.end(), std::string());
    std::string got(whole.size(), '\0');
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        std::vector<iovec> iov;
        for (auto& s : parts) iov.push_back({s.data(), s.size()});
        auto writer = [&]() -> coev::task<> {
            auto n = co_await p.client.writev(iov);
            REQUIRE(n);
            CHECK(*n == whole.size());
        };
        coev::task_group g;
        g.spawn(writer());
        auto r = co_await p.server.read_exact(std::as_writable_bytes(std::span(got)));
        REQUIRE(r);
        (void)co_await g.join();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == whole);
}

// Regression: the first sendmsg took the caller's whole array, and the kernel refuses more than
// IOV_MAX (1024) entries with EMSGSIZE.
TEST_CASE("writev of more iovecs than IOV_MAX sends them all") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    std::string whole(3000, '\0');
    for (std::size_t i = 0; i < whole.size(); ++i) whole[i] = char('a' + i % 26);
    std::string got(whole.size(), '\0');
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        std::vector<iovec> iov;
        for (char& c : whole) iov.push_back({&c, 1});
        auto n = co_await p.client.writev(iov);
        REQUIRE(n);
        CHECK(*n == whole.size());
        auto r = co_await p.server.read_exact(std::as_writable_bytes(std::span(got)));
        REQUIRE(r);
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == whole);
}

TEST_CASE("half-close: the peer reads everything, then EOF, and can still answer") {
    coev::event_loop loop;
    watchdog dog(loop);
    std::string reply;
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        auto w = co_await p.client.write(as_bytes("request"));
        REQUIRE(w);
        REQUIRE(p.client.shutdown_write());
        std::string req;
        std::byte buf[64];
        for (;;) {
            auto n = co_await p.server.read_some(buf);
            REQUIRE(n);
            if (*n == 0) break;
            req.append(reinterpret_cast<char*>(buf), *n);
        }
        CHECK(req == "request");
        auto a = co_await p.server.write(as_bytes("answer"));
        REQUIRE(a);
        p.server.close();
        for (;;) {
            auto n = co_await p.client.read_some(buf);
            REQUIRE(n);
            if (*n == 0) break;
            reply.append(reinterpret_cast<char*>(buf), *n);
        }
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(reply == "answer");
}

TEST_CASE("read_exact reports unexpected_eof when the peer closes early") {
    coev::event_loop loop;
    watchdog dog(loop);
    std::error_code got;
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        auto w = co_await p.client.write(as_bytes("abc"));
        REQUIRE(w);
        p.client.close();
        std::byte buf[10];
        auto r = co_await p.server.read_exact(buf);
        REQUIRE_FALSE(r);
        got = r.error();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == coev::error::unexpected_eof);
}

TEST_CASE("a peer reset is reported as ECONNRESET, and writes after it fail") {
    coev::event_loop loop;
    watchdog dog(loop);
    std::error_code read_error, write_error;
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        REQUIRE(p.client.socket().set_linger(std::chrono::seconds(0)));
        p.client.close();  // linger 0: RST instead of FIN
        std::byte buf[16];
        auto r = co_await p.server.read_some(buf);
        REQUIRE_FALSE(r);
        read_error = r.error();
        std::vector<std::byte> big(1 << 16);
        for (int i = 0; i < 10; ++i) {
            auto w = co_await p.server.write(big);
            if (!w) {
                write_error = w.error();
                break;
            }
        }
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(read_error == std::errc::connection_reset);
    CHECK((write_error == std::errc::broken_pipe || write_error == std::errc::connection_reset));
}

TEST_CASE("a connect to a closed port fails with connection_refused") {
    coev::event_loop loop;
    watchdog dog(loop);
    std::error_code got;
    auto run = [&]() -> coev::task<> {
        endpoint closed;
        {
            auto l = tcp_listener::bind(*endpoint::parse("127.0.0.1:0"));
            REQUIRE(l);
            closed = *l->local_endpoint();
        }
        auto s = co_await tcp_stream::connect(closed, 5s);
        REQUIRE_FALSE(s);
        got = s.error();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == std::errc::connection_refused);
}

TEST_CASE("a connect that gets no answer ends with timed_out after its timeout") {
    // A listener whose accept queue is full drops further SYNs (the client would retry in a
    // second): connects past the queue's few places wait, and the timeout must end them.
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    std::error_code got;
    coev::duration took{};
    auto run = [&]() -> coev::task<> {
        auto l = tcp_listener::bind(*endpoint::parse("127.0.0.1:0"), {.backlog = 1});
        REQUIRE(l);
        l->disable();  // nobody accepts: the queue fills
        std::vector<tcp_stream> held;
        for (int i = 0; i < 16 && !got; ++i) {
            const auto t0 = coev::clock::now();
            auto c = co_await tcp_stream::connect(*l->local_endpoint(), 200ms);
            if (c) {
                held.push_back(std::move(*c));
                continue;
            }
            got = c.error();
            took = coev::clock::now() - t0;
        }
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(got == std::errc::timed_out);
    CHECK(took >= 150ms);
    CHECK(took < 5s);
}

TEST_CASE("local and peer endpoints of a connection mirror each other") {
    coev::event_loop loop;
    auto run = [&]() -> coev::task<> {
        auto p = co_await connect_tcp_pair();
        CHECK(*p.client.local_endpoint() == *p.server.peer_endpoint());
        CHECK(*p.client.peer_endpoint() == *p.server.local_endpoint());
        CHECK(p.client.set_nodelay(true));
    };
    coev::spawn(loop, run());
    loop.run();
}
