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

// On io_uring the loop's pool of receive buffers starts smaller than this: every socket holds a
// buffer until its reader runs, so the pool must grow (or reads fall back to plain receives)
// without losing or reordering a byte.
TEST_CASE("more sockets with unread bytes than the receive pool first holds lose nothing") {
    coev::event_loop loop;
    // select watches nothing at or above FD_SETSIZE: as many sockets as fit below it.
    const int sockets =
        coev::has_all(loop.features(), coev::backend_feature::arbitrary_fds) ? 1500 : 480;
    REQUIRE(coev_test::raise_fd_limit() >= rlim_t(2 * sockets + 100));
    std::vector<coev_test::socket_pair> pairs;
    pairs.reserve(std::size_t(sockets));
    for (int i = 0; i < sockets; ++i) pairs.push_back(make_socket_pair());
    int started = 0, right = 0, failed = 0;
    auto reader = [&](int i) -> coev::task<> {
        std::byte buf[256];
        // A short read: on io_uring the multishot receive starts here.
        auto first = co_await coev::read_some(pairs[std::size_t(i)].a.get(), buf);
        ++started;
        if (!first || *first != 1) {
            ++failed;
            co_return;
        }
        auto n = co_await coev::read_some(pairs[std::size_t(i)].a.get(), buf);
        const std::string want = "message " + std::to_string(i);
        if (n && std::string_view(reinterpret_cast<const char*>(buf), *n) == want)
            ++right;
        else
            ++failed;
    };
    auto writer = [&]() -> coev::task<> {
        for (auto& p : pairs) send_now(p.b.get(), "x");
        while (started < sockets) (void)co_await coev::sleep_for(0ms);
        // Every reader waits again: the next bytes all arrive before any of them runs.
        for (int i = 0; i < sockets; ++i)
            send_now(pairs[std::size_t(i)].b.get(), "message " + std::to_string(i));
    };
    for (int i = 0; i < sockets; ++i) coev::spawn(loop, reader(i));
    coev::spawn(loop, writer());
    watchdog wd(loop, 30s);
    loop.run();
    CHECK(failed == 0);
    CHECK(right == sockets);
    CHECK_FALSE(wd.fired());
}
