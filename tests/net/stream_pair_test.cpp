// tests/net/stream_pair_test.cpp
// stream_pair (bufferevent_pair): in-memory ends that behave like connected sockets.
#include "helpers.hpp"

#include <coev/net/buffered_stream.hpp>
#include <coev/net/stream_pair.hpp>

#include <cstring>
#include <string>

using namespace std::chrono_literals;
using coev::net::stream_pair;
using coev_test::as_bytes;
using coev_test::watchdog;

namespace {
std::string text(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}
}  // namespace

TEST_CASE("what one end of a stream_pair writes, the other reads, then EOF") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = stream_pair::make();
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::string got;
    auto reader = [&]() -> coev::task<> {
        std::byte buf[4];
        for (;;) {
            auto n = co_await b.read_some(buf);
            REQUIRE(n);
            if (*n == 0) break;
            got += text(std::span(buf, *n));
        }
    };
    auto writer = [&]() -> coev::task<> {
        for (const char* m : {"hello ", "in-memory ", "world"}) {
            auto n = co_await a.write_some(as_bytes(m));
            REQUIRE(n);
            CHECK(*n == std::strlen(m));
        }
        REQUIRE(a.shutdown_write());
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK(got == "hello in-memory world");
}

TEST_CASE("a full stream_pair direction makes its writer wait until the reader drains it") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = stream_pair::make({.capacity = 1000});
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::size_t written = 0, max_queued = 0, read = 0;
    bool writer_waited = false;
    auto writer = [&]() -> coev::task<> {
        std::vector<std::byte> chunk(300);
        while (written < 100'000) {
            const std::size_t before = written;
            auto n = co_await a.write_some(chunk);
            REQUIRE(n);
            written += *n;
            if (*n < chunk.size() && before > 0) writer_waited = true;
        }
        a.close();
    };
    auto reader = [&]() -> coev::task<> {
        std::byte buf[128];
        for (;;) {
            (void)co_await coev::sleep_for(0ms);  // a slow reader: one small read per turn
            auto n = co_await b.read_some(buf);
            REQUIRE(n);
            if (*n == 0) break;
            read += *n;
            max_queued = std::max(max_queued, written - read);
        }
    };
    coev::spawn(loop, writer());
    coev::spawn(loop, reader());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(read == written);
    CHECK(writer_waited);
    CHECK(max_queued <= 1000);
}

TEST_CASE("closing one end gives the other EOF, and its writes fail with broken_pipe") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = stream_pair::make();
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::error_code write_error;
    std::size_t eof_read = 1;
    auto run = [&]() -> coev::task<> {
        auto w = co_await a.write_some(as_bytes("last words"));
        REQUIRE(w);
        a.close();
        std::byte buf[64];
        auto n = co_await b.read_some(buf);
        REQUIRE(n);
        CHECK(text(std::span(buf, *n)) == "last words");
        auto end = co_await b.read_some(buf);
        REQUIRE(end);
        eof_read = *end;
        auto bad = co_await b.write_some(as_bytes("anyone?"));
        write_error = bad.error();
        auto closed = co_await a.read_some(buf);
        CHECK(closed.error() == coev::error::closed);
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(eof_read == 0);
    CHECK(write_error == std::errc::broken_pipe);
}

TEST_CASE("a waiting read on a stream_pair wakes when the peer writes, through the loop") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = stream_pair::make();
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::vector<std::string> order;
    auto reader = [&]() -> coev::task<> {
        std::byte buf[16];
        auto n = co_await b.read_some(buf);
        REQUIRE(n);
        order.push_back("read " + text(std::span(buf, *n)));
    };
    auto writer = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        auto w = co_await a.write_some(as_bytes("x"));
        REQUIRE(w);
        order.push_back("wrote");  // before the reader runs: no inline resumption
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK(order == std::vector<std::string>{"wrote", "read x"});
}

TEST_CASE("a stream_pair end works under buffered_stream like a socket") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = stream_pair::make({.capacity = 64});
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::vector<std::string> lines;
    auto server = [&](stream_pair::end e) -> coev::task<> {
        coev::net::buffered_stream<stream_pair::end> s(std::move(e));
        for (;;) {
            auto line = co_await s.read_line();
            if (!line) {
                CHECK(line.error() == coev::error::unexpected_eof);
                CHECK(s.input().empty());
                break;
            }
            lines.push_back(*line);
            auto w = co_await s.write("ok " + *line + "\r\n");
            REQUIRE(w);
        }
    };
    auto client = [&](stream_pair::end e) -> coev::task<> {
        coev::net::buffered_stream<stream_pair::end> c(std::move(e));
        for (int i = 0; i < 50; ++i) {
            auto w = co_await c.write("line " + std::to_string(i) + "\r\n");
            REQUIRE(w);
            auto reply = co_await c.read_line();
            REQUIRE(reply);
            CHECK(*reply == "ok line " + std::to_string(i));
        }
        REQUIRE(c.shutdown_write());
    };
    coev::spawn(loop, server(std::move(b)));
    coev::spawn(loop, client(std::move(a)));
    loop.run();
    CHECK(lines.size() == 50);
}
