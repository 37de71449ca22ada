// tests/net/buffered_stream_test.cpp
// buffered_stream (bufferevent) over real sockets: lines, exact reads, watermarks and
// backpressure, timeouts, line limits, half-close, reset, files; on every backend.
#include "net_helpers.hpp"

#include <coev/net/buffered_stream.hpp>
#include <coev/net/tcp_listener.hpp>
#include <coev/net/unix_stream.hpp>

#include <cstdlib>
#include <string>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace coev::net;
using coev_test::watchdog;

namespace {
auto connected() { return coev_test::buffered_unix_pair(); }
}  // namespace

TEST_CASE("read_line, read_until, read_exact and fill take data as it trickles in") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    auto writer = [&]() -> coev::task<> {
        // Split at awkward places: inside the CRLF, inside the delimiter.
        for (std::string_view piece : {"GET / HTTP/1.1\r", "\nHost: x\r\n", "body--", "--END",
                                       "tail1234", "5678"}) {
            auto w = co_await a.write(piece);
            REQUIRE(w);
            (void)co_await coev::sleep_for(1ms);
        }
        REQUIRE(a.shutdown_write());
    };
    std::vector<std::string> got;
    auto reader = [&]() -> coev::task<> {
        auto l1 = co_await b.read_line();
        REQUIRE(l1);
        got.push_back(*l1);
        auto l2 = co_await b.read_line(eol_style::crlf_strict);
        REQUIRE(l2);
        got.push_back(*l2);
        auto body = co_await b.read_until("----END");
        REQUIRE(body);
        got.push_back(*body);
        std::byte four[4];
        auto e = co_await b.read_exact(four);
        REQUIRE(e);
        got.emplace_back(reinterpret_cast<char*>(four), 4);
        auto f = co_await b.fill(8);
        REQUIRE(f);
        CHECK(*f == 8);
        got.push_back(b.input().to_string());
        b.input().drain(8);
        auto end = co_await b.fill();
        REQUIRE(end);
        CHECK(*end == 0);
        CHECK(b.eof());
    };
    coev::spawn(loop, writer());
    coev::spawn(loop, reader());
    loop.run();
    CHECK(got == std::vector<std::string>{"GET / HTTP/1.1", "Host: x", "body", "tail",
                                          "12345678"});
}

TEST_CASE("the read high watermark stops reading until the input drains, and the writer waits") {
    coev::event_loop loop;
    watchdog dog(loop, 60s);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    constexpr std::size_t high = 32 * 1024, total = 4 << 20;
    b.set_read_watermarks(0, high);
    std::size_t sent = 0, received = 0, max_input = 0;
    bool writer_done = false, reader_saw_writer_waiting = false;
    auto writer = [&]() -> coev::task<> {
        std::vector<std::byte> chunk(64 * 1024, std::byte{'w'});
        while (sent < total) {
            auto w = co_await a.write(chunk);
            REQUIRE(w);
            sent += *w;
        }
        writer_done = true;
        REQUIRE(a.shutdown_write());
    };
    auto reader = [&]() -> coev::task<> {
        for (;;) {
            auto n = co_await b.fill();
            REQUIRE(n);
            if (*n == 0) break;
            max_input = std::max(max_input, b.input().size());
            // A slow consumer: a little at a time, with the loop turning in between.
            received += b.input().drain(4096);
            if (received == total / 2 && !writer_done) reader_saw_writer_waiting = true;
            if (received % (256 * 1024) == 0) (void)co_await coev::sleep_for(1ms);
        }
    };
    coev::spawn(loop, writer());
    coev::spawn(loop, reader());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(received == total);
    CHECK(max_input <= high);
    CHECK(reader_saw_writer_waiting);
}

TEST_CASE("a read timeout gives timed_out and the stream stays usable") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    b.set_timeouts(30ms, std::nullopt);
    std::error_code first;
    std::string line;
    auto reader = [&]() -> coev::task<> {
        auto r = co_await b.read_line();
        REQUIRE_FALSE(r);
        first = r.error();
        auto w = co_await a.write("late\r\n");
        REQUIRE(w);
        auto again = co_await b.read_line();
        REQUIRE(again);
        line = *again;
    };
    coev::spawn(loop, reader());
    loop.run();
    CHECK(first == std::errc::timed_out);
    CHECK(line == "late");
}

TEST_CASE("a write timeout gives timed_out, keeps the rest, and a later flush finishes") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    a.set_timeouts(std::nullopt, 30ms);
    std::error_code first;
    std::size_t left = 0, drained = 0;
    const std::size_t total = 8 << 20;  // far more than the socket buffers hold
    auto run = [&]() -> coev::task<> {
        std::vector<std::byte> big(total, std::byte{'z'});
        a.output().append(big);
        auto r = co_await a.flush();  // the peer reads nothing: it times out
        REQUIRE_FALSE(r);
        first = r.error();
        left = a.output().size();
        auto reader = [&]() -> coev::task<> {
            for (;;) {
                auto n = co_await b.fill();
                REQUIRE(n);
                if (*n == 0) break;
                drained += b.input().drain(*n);
            }
        };
        coev::task_group g;
        g.spawn(reader());
        a.set_timeouts(std::nullopt, std::nullopt);
        auto done = co_await a.flush();
        REQUIRE(done);
        REQUIRE(a.shutdown_write());
        (void)co_await g.join();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(first == std::errc::timed_out);
    CHECK(left > 0);
    CHECK(left < total);
    CHECK(drained == total);
}

TEST_CASE("an over-long line is an error, not unbounded memory") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    b.set_max_line(100);
    std::error_code got;
    auto run = [&]() -> coev::task<> {
        auto w = co_await a.write(std::string(10'000, 'x'));
        REQUIRE(w);
        auto r = co_await b.read_line();
        REQUIRE_FALSE(r);
        got = r.error();
        CHECK(b.input().size() <= 100 + buffered_stream<unix_stream>::read_chunk);
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == coev::error::line_too_long);
}

TEST_CASE("read_until past the maximum line length is an error too") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    b.set_max_line(100);
    std::error_code got;
    auto run = [&]() -> coev::task<> {
        auto w = co_await a.write(std::string(10'000, 'x') + "END");
        REQUIRE(w);
        auto r = co_await b.read_until("END");
        REQUIRE_FALSE(r);
        got = r.error();
        CHECK(b.input().size() <= 100 + 3 + buffered_stream<unix_stream>::read_chunk);
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == coev::error::line_too_long);
}

// Regression: the CR of a line of exactly max_line bytes counted as line content while its LF
// had not come, so the line was refused or not depending on how the bytes were split.
TEST_CASE("a line of exactly the maximum length is read however its CRLF is split") {
    for (auto style : {coev::net::eol_style::crlf, coev::net::eol_style::crlf_strict}) {
        CAPTURE(int(style));
        coev::event_loop loop;
        watchdog dog(loop);
        auto ab_ = connected();
        auto& a = ab_.first;
        auto& b = ab_.second;
        b.set_max_line(10);
        coev::result<std::string> line;
        auto writer = [&]() -> coev::task<> {
            auto w1 = co_await a.write("0123456789\r");
            REQUIRE(w1);
            (void)co_await coev::sleep_for(20ms);  // the reader sees the CR alone first
            auto w2 = co_await a.write("\n");
            REQUIRE(w2);
        };
        auto reader = [&]() -> coev::task<> { line = co_await b.read_line(style); };
        coev::spawn(loop, writer());
        coev::spawn(loop, reader());
        loop.run();
        REQUIRE(line.has_value());
        CHECK(*line == "0123456789");
    }
}

// Regression: read_until added the delimiter's length to max_line, which wrapped around when
// max_line was npos ("no limit") and refused everything longer than the delimiter.
TEST_CASE("read_until with no line limit waits for its delimiter") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    b.set_max_line(coev::net::buffer::npos);
    coev::result<std::string> got;
    auto writer = [&]() -> coev::task<> {
        auto w3 = co_await a.write("Header: value");
        REQUIRE(w3);
        (void)co_await coev::sleep_for(20ms);
        auto w4 = co_await a.write("\r\n\r\n");
        REQUIRE(w4);
    };
    auto reader = [&]() -> coev::task<> { got = co_await b.read_until("\r\n\r\n"); };
    coev::spawn(loop, writer());
    coev::spawn(loop, reader());
    loop.run();
    REQUIRE(got.has_value());
    CHECK(*got == "Header: value");
}

// Regression: with input() empty, try_read_some({}) asked the socket for 0 bytes, got 0 and
// took it for the end of the stream; every later read then reported EOF with bytes queued.
TEST_CASE("try_read_some with no room is not an end of stream") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::string got;
    auto run = [&]() -> coev::task<> {
        auto w5 = co_await a.write("hello");
        REQUIRE(w5);
        auto w6 = co_await b.wait_readable();
        REQUIRE(w6);
        auto none = b.try_read_some({});
        REQUIRE(none.has_value());
        CHECK(*none == 0);
        CHECK_FALSE(b.eof());
        char buf[16];
        auto n = co_await b.read_some(std::as_writable_bytes(std::span(buf)));
        REQUIRE(n.has_value());
        got.assign(buf, *n);
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == "hello");
}

TEST_CASE("the read low watermark makes fill() wait for that much") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    b.set_read_watermarks(1000);
    std::size_t filled = 0;
    bool second_part_sent = false, filled_before_second = false;
    auto reader = [&]() -> coev::task<> {
        auto n = co_await b.fill();
        REQUIRE(n);
        filled = *n;
        filled_before_second = !second_part_sent;
    };
    auto writer = [&]() -> coev::task<> {
        auto w1 = co_await a.write(std::string(600, 'a'));
        REQUIRE(w1);
        (void)co_await coev::sleep_for(50ms);  // the reader has 600 bytes and keeps waiting
        second_part_sent = true;
        auto w2 = co_await a.write(std::string(600, 'b'));
        REQUIRE(w2);
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK(filled >= 1000);
    CHECK_FALSE(filled_before_second);
}

TEST_CASE("the write low watermark lets flush() return with that much still queued") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    // More than the socket takes while nobody reads: flush() must stop at the mark.
    constexpr std::size_t total = 4 * 1024 * 1024, low = 3 * 1024 * 1024;
    a.set_write_low_watermark(low);
    std::size_t left = 0, read = 0;
    auto run = [&]() -> coev::task<> {
        a.output().append(std::string(total, 'w'));
        auto reader = [&]() -> coev::task<> {
            while (read < total) {
                auto n = co_await b.fill();
                if (!n || *n == 0) co_return;
                read += b.input().drain(*n);
            }
        };
        coev::task_group g;
        g.spawn(reader());
        auto f = co_await a.flush();
        REQUIRE(f);
        left = a.output().size();
        a.set_write_low_watermark(0);
        auto rest = co_await a.flush();  // the rest, now that the mark is 0
        REQUIRE(rest);
        a.close();
        (void)co_await g.join();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(left > 0);
    CHECK(left <= low);
    CHECK(read == total);
    CHECK_FALSE(dog.fired());
}

TEST_CASE("half-close: lines then a clean EOF; a reset peer is ECONNRESET") {
    coev::event_loop loop;
    watchdog dog(loop);
    std::vector<std::string> lines;
    std::error_code at_end, reset;
    auto run = [&]() -> coev::task<> {
        {
            auto ab_ = connected();
            auto& a = ab_.first;
            auto& b = ab_.second;
            auto w = co_await a.write("one\ntwo\n");
            REQUIRE(w);
            REQUIRE(a.shutdown_write());
            for (;;) {
                auto l = co_await b.read_line(eol_style::lf);
                if (!l) {
                    at_end = l.error();
                    CHECK(b.input().empty());  // a clean end: no partial line
                    break;
                }
                lines.push_back(*l);
            }
            // The half-closed side can still answer.
            auto back = co_await b.write("bye\n");
            REQUIRE(back);
            auto l = co_await a.read_line(eol_style::lf);
            REQUIRE(l);
            CHECK(*l == "bye");
        }
        auto p = co_await coev_test::connect_tcp_pair();
        REQUIRE(p.client.socket().set_linger(std::chrono::seconds(0)));
        p.client.close();
        buffered_stream<tcp_stream> server(std::move(p.server));
        auto r = co_await server.fill();
        REQUIRE_FALSE(r);
        reset = r.error();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(lines == std::vector<std::string>{"one", "two"});
    CHECK(at_end == coev::error::unexpected_eof);
    CHECK(reset == std::errc::connection_reset);
}

TEST_CASE("a file added to the output goes out through sendfile") {
    coev::event_loop loop;
    watchdog dog(loop);
    char path[] = "/tmp/coev-bs-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    std::string content(300'000, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = char('A' + i % 23);
    REQUIRE(::write(fd, content.data(), content.size()) == ssize_t(content.size()));
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    std::string got;
    auto run = [&]() -> coev::task<> {
        a.output().append("[");
        REQUIRE(a.output().add_file(fd, 0, content.size()));
        a.output().append("]");
        auto reader = [&]() -> coev::task<> {
            for (;;) {
                auto n = co_await b.fill();
                REQUIRE(n);
                if (*n == 0) break;
                got += b.input().to_string();
                b.input().drain(*n);
            }
        };
        coev::task_group g;
        g.spawn(reader());
        auto f = co_await a.flush();
        REQUIRE(f);
        REQUIRE(a.shutdown_write());
        (void)co_await g.join();
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == "[" + content + "]");
}

TEST_CASE("an idle buffered stream holds no read buffer") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = connected();
    auto& a = ab_.first;
    auto& b = ab_.second;
    bool checked = false;
    auto reader = [&]() -> coev::task<> {
        auto n = co_await b.fill();
        REQUIRE(n);
        b.input().drain(*n);
        auto again = co_await b.fill();  // waits here while the writer checks
        REQUIRE(again);
    };
    auto writer = [&]() -> coev::task<> {
        auto w = co_await a.write("first");
        REQUIRE(w);
        (void)co_await coev::sleep_for(5ms);
        // The reader is waiting for more: its input holds no block at all.
        CHECK(b.input().empty());
        CHECK(b.input().contiguous_space() == 0);
        std::byte* none = b.input().pullup(0);
        CHECK(none == nullptr);
        checked = true;
        auto w2 = co_await a.write("second");
        REQUIRE(w2);
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK(checked);
}
