// tests/runtime/stream_test.cpp
// read_some over a stream socket, the way buffered streams will use it: bytes arrive in order
// however the reads are cut, EOF comes after the last byte, a slow reader loses nothing, and a
// closed and reused fd starts afresh. (On io_uring this exercises the multishot receive and
// its per-socket queue.)
#include "helpers.hpp"

#include <string>

using namespace std::chrono_literals;
using coev_test::make_socket_pair;
using coev_test::send_now;
using coev_test::watchdog;

namespace {

coev::task<> read_all(int fd, std::size_t chunk, std::string& out, coev::result<void>& status) {
    std::vector<std::byte> buf(chunk);
    for (;;) {
        auto n = co_await coev::read_some(fd, buf);
        if (!n) {
            status = n.error();
            co_return;
        }
        if (*n == 0) co_return;
        out.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = char('a' + (i * 7 + i / 4096) % 26);
    return s;
}

}  // namespace

TEST_CASE("bytes read one at a time arrive in order, then EOF") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    REQUIRE(send_now(s.b.get(), "abcdef") == 6);
    s.b.close();
    std::string got;
    coev::result<void> status;
    coev::spawn(loop, read_all(s.a.get(), 1, got, status));
    watchdog wd(loop);
    loop.run();
    CHECK(status.has_value());
    CHECK(got == "abcdef");
}

TEST_CASE("a megabyte through a reader slower than the writer arrives intact") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    const std::string data = pattern(1 << 20);
    std::string got;
    coev::result<void> status;
    coev::result<std::size_t> wrote;
    auto writer = [&]() -> coev::task<> {
        wrote = co_await coev::write_all(s.b.get(), std::as_bytes(std::span(data)));
        s.b.close();  // EOF once everything is out
    };
    auto slow_reader = [&]() -> coev::task<> {
        std::vector<std::byte> buf(1000);  // not a multiple of any buffer size
        for (int i = 0;; ++i) {
            if (i % 64 == 0) (void)co_await coev::sleep_for(1ms);  // let the writer run ahead
            auto n = co_await coev::read_some(s.a.get(), buf);
            if (!n) {
                status = n.error();
                co_return;
            }
            if (*n == 0) co_return;
            got.append(reinterpret_cast<const char*>(buf.data()), *n);
        }
    };
    coev::spawn(loop, writer());
    coev::spawn(loop, slow_reader());
    watchdog wd(loop, 30s);
    loop.run();
    REQUIRE(wrote.has_value());
    CHECK(*wrote == data.size());
    CHECK(status.has_value());
    CHECK(got.size() == data.size());
    CHECK(got == data);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("a socket closed with unread bytes, and its fd number reused, starts afresh") {
    coev::event_loop loop;
    std::string first, second;
    coev::result<void> status;
    auto t = [&]() -> coev::task<> {
        auto s = make_socket_pair();
        send_now(s.b.get(), "left unread");
        std::byte one[1];
        auto n = co_await coev::read_some(s.a.get(), one);  // the rest stays queued
        if (n && *n == 1) first.assign(reinterpret_cast<const char*>(one), 1);
        const int number = s.a.get();
        s.a.close();
        s.b.close();
        auto again = make_socket_pair();  // likely the same numbers
        CHECK((again.a.get() == number || again.b.get() == number));
        send_now(again.b.get(), "fresh");
        again.b.close();
        co_await read_all(again.a.get(), 64, second, status);
    };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    CHECK(first == "l");
    CHECK(status.has_value());
    CHECK(second == "fresh");
}

// Regression (io_uring): closing the fd outside run() completed the parked read through
// event_loop::current(), which is null there.
TEST_CASE("closing an fd outside run() resumes the read waiting on it with error::closed") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::result<std::size_t> r;
    auto reader = [&]() -> coev::task<> {
        std::byte buf[16];
        r = co_await coev::read_some(s.a.get(), buf);
    };
    coev::spawn(loop, reader());
    loop.poll();  // the read waits
    s.a.close();
    watchdog wd(loop);
    loop.run();
    CHECK(r.error() == coev::error::closed);
    CHECK_FALSE(loop.has_pending());
}
