// tests/runtime/io_test.cpp
// fd waits: one-shot and repeated waits, level-triggered readiness, deadlines, read/write, EOF,
// EPIPE, regular files, terminals, misuse (busy, closed fds) and many waits at once.
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <fcntl.h>
#include <netinet/in.h>
#include <numeric>
#include <optional>
#include <poll.h>
#include <stdlib.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using coev_test::make_pipe;
using coev_test::make_socket_pair;
using coev_test::send_now;
using coev_test::watchdog;

namespace {

std::string as_string(const std::vector<std::byte>& buf, std::size_t n) {
    return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

// What read_per_wakeup() got.
struct wakeup_reader {
    std::string got;
    bool eof = false;
    int wakeups = 0;
};

// Reads `fd` the way an echo server does: one try_read_some() into `size` bytes per
// wait_read_ready(), until EOF; when `pause_every` is not 0, a 300 us pause after every
// pause_every-th read lets several arrivals wait for one read.
coev::task<> read_per_wakeup(int fd, std::size_t size, wakeup_reader& r, int pause_every = 0) {
    std::vector<char> buf(size);
    for (int i = 0; i < 100'000 && !r.eof; ++i) {
        auto ready = co_await coev::wait_read_ready(fd);
        REQUIRE(ready);
        ++r.wakeups;
        auto n = coev::try_read_some(fd, std::as_writable_bytes(std::span(buf)));
        if (!n) {
            CHECK(n.error() == std::errc::resource_unavailable_try_again);
            continue;
        }
        if (*n == 0) r.eof = true;
        r.got.append(buf.data(), *n);
        if (pause_every != 0 && i % pause_every == 0)
            (void)co_await coev::sleep_for(std::chrono::microseconds(300));
    }
}

// Writes `count` messages made by make(i) to `fd`, appending each to `sent`, pausing 200 us
// after every third so the reader is often idle in between; then shuts down the write side.
template <class Make>
coev::task<> write_messages(int fd, int count, Make make, std::string& sent) {
    for (int i = 0; i < count; ++i) {
        std::string m = make(i);
        auto n = co_await coev::write_all(fd, std::as_bytes(std::span(m)));
        REQUIRE(n);
        sent += m;
        if (i % 3 == 0) (void)co_await coev::sleep_for(std::chrono::microseconds(200));
    }
    ::shutdown(fd, SHUT_WR);
}

// Reads `fd` with read_some until EOF, appending what came to `got`.
coev::task<> read_to_eof(int fd, std::string& got) {
    std::vector<std::byte> buf(64 * 1024);
    for (int i = 0; i < 100'000; ++i) {
        auto n = co_await coev::read_some(fd, buf);
        REQUIRE(n);
        if (*n == 0) break;
        got.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
}

}  // namespace

TEST_CASE("a readiness wait fires once and is then no longer pending") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    int woken = 0;
    auto once = [&]() -> coev::task<> {
        if (co_await coev::wait_readable(s.a.get())) ++woken;
    };
    coev::spawn(loop, once());
    loop.poll();  // armed
    CHECK(loop.has_pending());
    send_now(s.b.get(), "1");
    watchdog wd(loop);
    loop.run();  // returns: the wait fired and nothing else is pending
    CHECK(woken == 1);
    CHECK_FALSE(loop.has_pending());
    send_now(s.b.get(), "2");  // more readiness reaches nobody
    loop.poll();
    loop.poll();
    CHECK(woken == 1);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("waiting again in a loop keeps reporting readiness, like EV_PERSIST") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    constexpr int rounds = 100;
    int echoed = 0, answered = 0;
    auto echo = [&]() -> coev::task<> {
        for (int i = 0; i < rounds; ++i) {
            if (!co_await coev::wait_readable(s.a.get())) co_return;
            char c = 0;
            if (::recv(s.a.get(), &c, 1, 0) != 1) co_return;
            ++echoed;
            ::send(s.a.get(), &c, 1, MSG_NOSIGNAL);
        }
    };
    auto client = [&]() -> coev::task<> {
        for (int i = 0; i < rounds; ++i) {
            send_now(s.b.get(), "x");
            if (!co_await coev::wait_readable(s.b.get())) co_return;
            char c = 0;
            if (::recv(s.b.get(), &c, 1, 0) != 1) co_return;
            ++answered;
        }
    };
    coev::spawn(loop, echo());
    coev::spawn(loop, client());
    watchdog wd(loop);
    loop.run();
    CHECK(echoed == rounds);
    CHECK(answered == rounds);
}

TEST_CASE("a readiness wait is level-triggered") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    int woken = 0;
    enum { unread_data, writable, after_read_some } mode = unread_data;
    SUBCASE("data already there completes the wait, and unread data completes it again") {
        mode = unread_data;
        send_now(s.b.get(), "unread");
    }
    SUBCASE("a writable socket completes every wait_writable") { mode = writable; }
    SUBCASE("readiness consumed by read_some is reported again by a level wait") {
        mode = after_read_some;
        send_now(s.b.get(), "abc");
    }
    auto waits = [&]() -> coev::task<> {
        if (mode == after_read_some) {
            std::vector<std::byte> one(1);
            // read_some leaves "bc" behind; the readiness cache must not hide it from the wait.
            if (co_await coev::read_some(s.a.get(), one)) ++woken;
        }
        while (woken < 3) {
            auto r = mode == writable ? co_await coev::wait_writable(s.a.get())
                                      : co_await coev::wait_readable(s.a.get());
            if (!r) co_return;
            ++woken;
        }
    };
    coev::spawn(loop, waits());
    watchdog wd(loop, 5s);
    loop.run();
    CHECK(woken == 3);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("a wait past its deadline ends in timed_out") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::result<void> r;
    coev::time_point deadline{}, woke{};
    bool writable = false;
    SUBCASE("readable") { writable = false; }
    SUBCASE("writable, with a full send buffer") {
        writable = true;
        coev_test::fill_send_buffer(s.a.get());
    }
    auto waiter = [&]() -> coev::task<> {
        deadline = loop.now() + 20ms;
        r = writable ? co_await coev::wait_writable(s.a.get(), deadline)
                     : co_await coev::wait_readable(s.a.get(), deadline);
        woke = loop.now();
    };
    coev::spawn(loop, waiter());
    watchdog wd(loop);
    loop.run();
    CHECK(r.error() == std::errc::timed_out);
    CHECK(woke >= deadline);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("read_some and write_some move bytes, and write_all writes everything") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    watchdog wd(loop);
    SUBCASE("what write_some sends, read_some receives") {
        coev::result<std::size_t> wrote, got;
        std::vector<std::byte> buf(64);
        auto t = [&]() -> coev::task<> {
            wrote = co_await coev::write_some(s.a.get(), coev_test::as_bytes("hello"));
            got = co_await coev::read_some(s.b.get(), buf);
        };
        coev::spawn(loop, t());
        loop.run();
        REQUIRE(wrote.has_value());
        CHECK(*wrote == 5);
        REQUIRE(got.has_value());
        CHECK(as_string(buf, *got) == "hello");
    }
    SUBCASE("read_some waits for data that is not there yet") {
        coev::result<std::size_t> got;
        std::vector<std::byte> buf(64);
        auto reader = [&]() -> coev::task<> { got = co_await coev::read_some(s.b.get(), buf); };
        auto writer = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(5ms);
            send_now(s.a.get(), "late");
        };
        coev::spawn(loop, reader());
        coev::spawn(loop, writer());
        loop.run();
        REQUIRE(got.has_value());
        CHECK(as_string(buf, *got) == "late");
    }
    SUBCASE("write_some takes part of a buffer larger than the socket holds") {
        coev::result<std::size_t> wrote;
        std::vector<std::byte> big(8 << 20, std::byte{'z'});
        auto t = [&]() -> coev::task<> { wrote = co_await coev::write_some(s.a.get(), big); };
        coev::spawn(loop, t());
        loop.run();
        REQUIRE(wrote.has_value());
        CHECK(*wrote > 0);
        CHECK(*wrote < big.size());
    }
    SUBCASE("write_all of 4 MiB arrives whole while the peer reads") {
        std::vector<std::byte> out(4 << 20);
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte(i * 31 % 251);
        std::vector<std::byte> in;
        coev::result<std::size_t> wrote;
        std::error_code read_error;
        auto writer = [&]() -> coev::task<> { wrote = co_await coev::write_all(s.a.get(), out); };
        auto reader = [&]() -> coev::task<> {
            std::vector<std::byte> buf(64 * 1024);
            for (int i = 0; i < 100'000 && in.size() < out.size(); ++i) {
                auto n = co_await coev::read_some(s.b.get(), buf);
                if (!n || *n == 0) {
                    read_error = n.error();
                    co_return;
                }
                in.insert(in.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
            }
        };
        coev::spawn(loop, writer());
        coev::spawn(loop, reader());
        loop.run();
        REQUIRE(wrote.has_value());
        CHECK(*wrote == out.size());
        CHECK_FALSE(read_error);
        CHECK(in == out);
    }
    CHECK_FALSE(wd.fired());
}

TEST_CASE("read_some on a datagram socket returns one message per read and strands none") {
    // A short read drains a stream socket but not a datagram socket: the readiness cache
    // must not wait for an edge that never comes (edge-triggered epoll), and io_uring must
    // not receive ahead into a byte queue that would merge the messages.
    coev::event_loop loop;
    auto s = make_socket_pair(SOCK_DGRAM);
    watchdog wd(loop);
    std::vector<std::string> got;
    std::error_code failed;
    auto reader = [&]() -> coev::task<> {
        std::vector<std::byte> buf(256);
        for (int i = 0; i < 3; ++i) {
            auto n = co_await coev::with_timeout(5s, coev::read_some(s.a.get(), buf));
            if (!n) {
                failed = n.error();
                co_return;
            }
            got.push_back(as_string(buf, *n));
        }
    };
    auto writer = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(5ms);  // the reader waits first: its fd is watched
        send_now(s.b.get(), "one");
        send_now(s.b.get(), "three");
        send_now(s.b.get(), "fifteen");
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK_FALSE(failed);
    CHECK(got == std::vector<std::string>{"one", "three", "fifteen"});
    CHECK_FALSE(wd.fired());
}

TEST_CASE("readv_some after read_some on one socket continues where the read stopped") {
    // io_uring receives a socket's bytes ahead into a queue: readv must read from it too,
    // not from the kernel past it.
    coev::event_loop loop;
    auto s = make_socket_pair();
    watchdog wd(loop);
    std::string first, second, third;
    std::error_code failed;
    auto reader = [&]() -> coev::task<> {
        std::vector<std::byte> buf(4);
        auto n = co_await coev::read_some(s.a.get(), buf);
        if (!n) {
            failed = n.error();
            co_return;
        }
        first = as_string(buf, *n);
        for (std::string* out : {&second, &third}) {
            char x[2], y[2];
            const iovec iov[2] = {{x, sizeof x}, {y, sizeof y}};
            auto m = co_await coev::with_timeout(5s, coev::readv_some(s.a.get(), iov));
            if (!m) {
                failed = m.error();
                co_return;
            }
            *out = std::string(x, std::min<std::size_t>(*m, 2)) +
                   std::string(y, *m > 2 ? *m - 2 : 0);
        }
    };
    auto writer = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(5ms);  // the reader waits first
        send_now(s.b.get(), "abcdefgh");
        (void)co_await coev::sleep_for(5ms);
        send_now(s.b.get(), "ijkl");
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK_FALSE(failed);
    CHECK(first == "abcd");
    CHECK(second == "efgh");
    CHECK(third == "ijkl");
    CHECK_FALSE(wd.fired());
}

TEST_CASE("read_some returns 0 at end of file, again and again") {
    coev::event_loop loop;
    int fd = -1;
    coev::unique_fd keep;
    SUBCASE("socket pair") {
        auto s = make_socket_pair();
        send_now(s.b.get(), "last");
        s.b.close();
        keep = std::move(s.a);
    }
    SUBCASE("pipe") {
        auto p = make_pipe();
        REQUIRE(::write(p.write_end.get(), "last", 4) == 4);
        p.write_end.close();
        keep = std::move(p.read_end);
    }
    fd = keep.get();
    std::vector<coev::result<std::size_t>> reads;
    std::vector<std::byte> buf(64);
    auto reader = [&]() -> coev::task<> {
        for (int i = 0; i < 4; ++i) reads.push_back(co_await coev::read_some(fd, buf));
    };
    coev::spawn(loop, reader());
    watchdog wd(loop);
    loop.run();
    REQUIRE(reads.size() == 4);
    REQUIRE(reads[0].has_value());
    CHECK(*reads[0] == 4);
    for (std::size_t i = 1; i < reads.size(); ++i) {
        CAPTURE(i);
        REQUIRE(reads[i].has_value());
        CHECK(*reads[i] == 0);
    }
}

// Regression: writes to a pipe used write(), which raises SIGPIPE when the reader is gone; only
// sockets were protected (MSG_NOSIGNAL).
TEST_CASE("writing to a closed peer fails with EPIPE instead of raising SIGPIPE") {
    coev_test::sigpipe_counter sigpipes;
    coev::event_loop loop;
    coev::unique_fd writer_end;
    SUBCASE("socket pair") {
        auto s = make_socket_pair();
        s.b.close();
        writer_end = std::move(s.a);
    }
    SUBCASE("pipe") {
        auto p = make_pipe();
        p.read_end.close();
        writer_end = std::move(p.write_end);
    }
    coev::result<std::size_t> some;
    coev::result<std::size_t> all;
    auto writer = [&]() -> coev::task<> {
        some = co_await coev::write_some(writer_end.get(), coev_test::as_bytes("x"));
        all = co_await coev::write_all(writer_end.get(), coev_test::as_bytes("xyz"));
    };
    coev::spawn(loop, writer());
    {
        watchdog wd(loop);
        loop.run();
    }
    CHECK(some.error() == std::errc::broken_pipe);
    CHECK(all.error() == std::errc::broken_pipe);
    CHECK(sigpipes.count() == 0);
}

TEST_CASE("a regular file is always ready") {
    coev::event_loop loop;
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    const int fd = ::fileno(f);
    REQUIRE(::write(fd, "file data", 9) == 9);
    REQUIRE(::lseek(fd, 0, SEEK_SET) == 0);
    coev::result<void> readable, writable;
    coev::result<std::size_t> got;
    std::vector<std::byte> buf(64);
    bool done = false;
    auto t = [&]() -> coev::task<> {
        readable = co_await coev::wait_readable(fd);
        writable = co_await coev::wait_writable(fd);
        got = co_await coev::read_some(fd, buf);
        readable = co_await coev::wait_readable(fd);  // at EOF, still "ready"
        done = true;
    };
    coev::spawn(loop, t());
    loop.poll();  // one iteration: nothing here may need to wait
    CHECK(done);
    CHECK(readable.has_value());
    CHECK(writable.has_value());
    REQUIRE(got.has_value());
    CHECK(as_string(buf, *got) == "file data");
    CHECK_FALSE(loop.has_pending());
    std::fclose(f);
}

TEST_CASE("a second waiter on the same fd and direction gets error::busy") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::result<void> first, second, other_direction;
    auto first_waiter = [&]() -> coev::task<> { first = co_await coev::wait_readable(s.a.get()); };
    auto second_waiter = [&]() -> coev::task<> {
        second = co_await coev::wait_readable(s.a.get());
        other_direction = co_await coev::wait_writable(s.a.get());  // not the same direction
        // Lets the first waiter finish.
        send_now(s.b.get(), "x");
    };
    coev::spawn(loop, first_waiter());
    coev::spawn(loop, second_waiter());
    watchdog wd(loop);
    loop.run();
    CHECK(second.error() == coev::error::busy);
    CHECK(other_direction.has_value());
    CHECK(first.has_value());
    CHECK_FALSE(wd.fired());
}

TEST_CASE("a wait on a closed fd fails with EBADF") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    const int fd = s.b.release();
    ::close(fd);
    coev::result<void> readable, writable;
    coev::result<std::size_t> got;
    std::vector<std::byte> buf(8);
    auto t = [&]() -> coev::task<> {
        readable = co_await coev::wait_readable(fd);
        writable = co_await coev::wait_writable(fd);
        got = co_await coev::read_some(fd, buf);
    };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    CHECK(readable.error() == std::errc::bad_file_descriptor);
    CHECK(writable.error() == std::errc::bad_file_descriptor);
    CHECK(got.error() == std::errc::bad_file_descriptor);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("closing a unique_fd while a task waits on it resumes the task with error::closed") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::result<void> r;
    auto waiter = [&]() -> coev::task<> {
        r = co_await coev::wait_readable(s.a.get(), loop.now() + 10s);
    };
    auto closer = [&]() -> coev::task<> {
        s.a.close();
        co_return;
    };
    coev::spawn(loop, waiter());
    coev::spawn(loop, closer());
    watchdog wd(loop);
    loop.run();
    CHECK(r.error() == coev::error::closed);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("a cancelled read_some consumes nothing and the fd stays usable") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    std::stop_source stop;
    coev::result<std::size_t> cancelled, later;
    std::vector<std::byte> buf(16);
    auto reader = [&]() -> coev::task<> { cancelled = co_await coev::read_some(s.a.get(), buf); };
    auto second = [&]() -> coev::task<> { later = co_await coev::read_some(s.a.get(), buf); };
    auto driver = [&]() -> coev::task<> {
        stop.request_stop();
        (void)co_await coev::sleep_for(1ms);
        coev::spawn(loop, second());
        (void)co_await coev::sleep_for(1ms);
        send_now(s.b.get(), "after");
    };
    coev::spawn(loop, reader(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, driver());
    watchdog wd(loop);
    loop.run();
    CHECK(cancelled.error() == std::errc::operation_canceled);
    REQUIRE(later.has_value());
    CHECK(as_string(buf, *later) == "after");
}

// Regression: a short read cleared the readiness cache on every fd, but a terminal in canonical
// mode returns one line per read() with more queued and no new edge coming: the second line was
// never read.
TEST_CASE("read_some returns every line queued on a terminal") {
    coev::event_loop loop;
    coev::unique_fd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    REQUIRE(master);
    REQUIRE(::grantpt(master.get()) == 0);
    REQUIRE(::unlockpt(master.get()) == 0);
    coev::unique_fd terminal(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_NONBLOCK));
    REQUIRE(terminal);
    REQUIRE(::write(master.get(), "one\ntwo\n", 8) == 8);
    std::vector<std::string> got;
    auto reader = [&]() -> coev::task<> {
        // The first wait registers the fd; both lines are queued by then.
        if (!co_await coev::wait_readable(terminal.get())) co_return;
        std::vector<std::byte> buf(64);
        for (int i = 0; i < 2; ++i) {
            auto n = co_await coev::read_some(terminal.get(), buf);
            if (!n) co_return;
            got.push_back(as_string(buf, *n));
        }
    };
    coev::spawn(loop, reader());
    watchdog wd(loop, 3s);
    loop.run();
    CHECK_FALSE(wd.fired());
    CHECK(got == std::vector<std::string>{"one\n", "two\n"});
}

// Regression (epoll): a unique_fd closed while its loop was not running could not tell the loop
// to forget the fd; epoll dropped the registration with the close, the loop still believed the
// number registered, and a read_some on the reused number waited for an edge that never came.
// close() now reaches every loop of the thread.
TEST_CASE("an fd number closed while the loop was not running can be read again once reused") {
    coev::event_loop loop;
    std::vector<std::byte> buf(16);
    int old_number = -1;
    {
        auto s = make_socket_pair();
        old_number = s.a.get();
        auto first = [&]() -> coev::task<> { (void)co_await coev::read_some(s.a.get(), buf); };
        auto feed = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(1ms);
            send_now(s.b.get(), "x");
        };
        coev::spawn(loop, first());  // waits, so the fd is registered with the backend
        coev::spawn(loop, feed());
        loop.run();
    }  // both ends closed here, outside run()
    auto s = make_socket_pair();
    REQUIRE(s.a.get() == old_number);  // the kernel hands out the lowest free number
    coev::result<std::size_t> r;
    auto second = [&]() -> coev::task<> {
        r = co_await coev::with_timeout(500ms, coev::read_some(s.a.get(), buf));
    };
    auto feed = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        send_now(s.b.get(), "y");
    };
    coev::spawn(loop, second());
    coev::spawn(loop, feed());
    watchdog wd(loop);
    loop.run();
    CHECK(r.has_value());
}

// Regression (io_uring): a read that parks on a socket queues a receive in the ring, naming the
// fd by number. Closed in the same iteration, before the ring was entered, the number went to
// the next socket, whose first bytes the dead receive then took. Closing now hands queued
// requests to the kernel first.
TEST_CASE("a socket closed in the iteration its read began leaves the next socket's bytes alone") {
    coev::event_loop loop;
    std::string got;
    int old_number = -1, new_number = -1;
    auto first = make_socket_pair();
    old_number = first.a.get();
    std::vector<std::byte> one(16);
    coev::result<std::size_t> parked;
    auto reader = [&]() -> coev::task<> { parked = co_await coev::read_some(first.a.get(), one); };
    auto closer = [&]() -> coev::task<> {
        first.a.close();  // the reader resumes with error::closed
        first.b.close();
        auto next = make_socket_pair();
        new_number = next.a.get();
        REQUIRE(send_now(next.b.get(), "for the new socket") == 18);
        next.b.close();
        std::vector<std::byte> buf(64);
        for (;;) {
            auto r = co_await coev::with_timeout(2s, coev::read_some(next.a.get(), buf));
            if (!r || *r == 0) break;
            got.append(reinterpret_cast<const char*>(buf.data()), *r);
        }
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, closer());  // runs right after the reader parks, in the same iteration
    watchdog wd(loop);
    loop.run();
    CHECK(new_number == old_number);
    CHECK(parked.error() == coev::make_error_code(coev::error::closed));
    CHECK(got == "for the new socket");
    CHECK_FALSE(wd.fired());
}

// Regression (io_uring): the EINVAL of one receive (a read on an unconnected Unix socket) was
// taken for a kernel without multishot receives, which switched them off for every socket and
// stranded the bytes another socket had already received.
TEST_CASE("a read failing on one socket leaves another socket's received bytes readable") {
    coev::event_loop loop;
    std::string first, rest;
    coev::result<std::size_t> unconnected;
    auto t = [&]() -> coev::task<> {
        auto p = make_socket_pair();
        REQUIRE(send_now(p.b.get(), "ABCDEFGH") == 8);
        std::byte one[1];
        auto r1 = co_await coev::read_some(p.a.get(), one);  // "A"; the rest stays queued
        if (r1 && *r1 == 1) first = "A";
        coev::unique_fd u(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        std::byte ub[16];
        unconnected = co_await coev::with_timeout(2s, coev::read_some(u.get(), ub));
        REQUIRE(send_now(p.b.get(), "XYZ") == 3);
        p.b.close();
        std::vector<std::byte> buf(64);
        for (int i = 0; i < 10; ++i) {
            auto r = co_await coev::with_timeout(2s, coev::read_some(p.a.get(), buf));
            if (!r || *r == 0) break;
            rest.append(reinterpret_cast<const char*>(buf.data()), *r);
        }
    };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    CHECK(first == "A");
    REQUIRE_FALSE(unconnected.has_value());
    CHECK(unconnected.error() == std::errc::invalid_argument);
    CHECK(rest == "BCDEFGHXYZ");
    CHECK_FALSE(wd.fired());
}

TEST_CASE("10,000 concurrent waits on one loop all complete") {
    coev::event_loop loop;
    // A backend without arbitrary_fds (select: nothing at or above FD_SETSIZE) gets as many waits
    // as fit below its limit.
    const bool any_fd = coev::has_all(loop.features(), coev::backend_feature::arbitrary_fds);
    const int pairs = any_fd ? 5000 : 480;
    if (!any_fd) MESSAGE(loop.backend_name() << " watches fds below FD_SETSIZE only: 960 waits");
    REQUIRE(coev_test::raise_fd_limit() >= rlim_t(2 * pairs + 100));
    std::vector<coev_test::socket_pair> sockets;
    sockets.reserve(pairs);
    for (int i = 0; i < pairs; ++i) sockets.push_back(make_socket_pair());
    int done = 0;
    auto waiter = [&](int fd) -> coev::task<> {
        if (co_await coev::wait_readable(fd)) ++done;
    };
    // Spawned last, so it runs after every waiter has armed.
    auto writer = [&]() -> coev::task<> {
        for (auto& s : sockets) {
            send_now(s.a.get(), "x");
            send_now(s.b.get(), "y");
        }
        co_return;
    };
    for (auto& s : sockets) {
        coev::spawn(loop, waiter(s.a.get()));
        coev::spawn(loop, waiter(s.b.get()));
    }
    coev::spawn(loop, writer());
    watchdog wd(loop, 30s);
    loop.run();
    CHECK(done == 2 * pairs);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("fds whose waits ended, then closed and reused, wake exactly their next waiters") {
    // poll parks the entry of a wait that ended and drops parked entries in bulk; the fds'
    // places in its array must stay right through that, through closes and reused numbers.
    coev::event_loop loop;
    constexpr int pairs = 300;
    REQUIRE(coev_test::raise_fd_limit() >= rlim_t(2 * pairs + 100));
    std::vector<coev_test::socket_pair> sockets;
    for (int i = 0; i < pairs; ++i) sockets.push_back(make_socket_pair());
    std::vector<int> woke(pairs, 0);
    auto waiter = [&](int i) -> coev::task<> {
        if (co_await coev::wait_readable(sockets[std::size_t(i)].a.get())) ++woke[std::size_t(i)];
    };
    auto drain = [&](int i) {
        char buf[16];
        while (::recv(sockets[std::size_t(i)].a.get(), buf, sizeof buf, 0) > 0) {
        }
    };
    watchdog wd(loop, 30s);
    // Every wait ends: all their entries are parked at once.
    for (int i = 0; i < pairs; ++i) coev::spawn(loop, waiter(i));
    loop.poll();
    for (int i = 0; i < pairs; ++i) send_now(sockets[std::size_t(i)].b.get(), "x");
    loop.run();
    CHECK(std::count(woke.begin(), woke.end(), 1) == pairs);
    // Half the pairs closed while nobody waits, and made again: their fd numbers come back.
    for (int i = 0; i < pairs; ++i) drain(i);
    for (int i = 0; i < pairs / 2; ++i) sockets[std::size_t(i)] = coev_test::socket_pair{};
    for (int i = 0; i < pairs / 2; ++i) sockets[std::size_t(i)] = make_socket_pair();
    std::fill(woke.begin(), woke.end(), 0);
    for (int i = 0; i < pairs; ++i) coev::spawn(loop, waiter(i));
    loop.poll();
    // Every third socket gets a byte: exactly its waiter wakes, old fd or new.
    for (int i = 0; i < pairs; i += 3) send_now(sockets[std::size_t(i)].b.get(), "y");
    for (int k = 0; k < 5; ++k) loop.poll();
    int right = 0;
    for (int i = 0; i < pairs; ++i) right += woke[std::size_t(i)] == (i % 3 == 0 ? 1 : 0);
    CHECK(right == pairs);
    for (int i = 0; i < pairs; ++i)
        if (i % 3 != 0) send_now(sockets[std::size_t(i)].b.get(), "z");
    loop.run();
    CHECK(std::count(woke.begin(), woke.end(), 1) == pairs);
    CHECK_FALSE(wd.fired());
}

TEST_CASE("wait_read_ready and try_read_some read every byte and then EOF, holding no buffer") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = make_socket_pair();
    auto& a = ab_.a;
    auto& b = ab_.b;
    std::string got;
    int would_block = 0;
    bool eof = false;
    auto reader = [&]() -> coev::task<> {
        for (int i = 0; i < 10'000 && !eof; ++i) {
            auto ready = co_await coev::wait_read_ready(b.get());
            REQUIRE(ready);
            char buf[3];  // smaller than a message: several reads per wake-up
            for (;;) {
                auto n = coev::try_read_some(b.get(), std::as_writable_bytes(std::span(buf)));
                if (!n) {
                    CHECK(n.error() == std::errc::resource_unavailable_try_again);
                    ++would_block;
                    break;
                }
                if (*n == 0) {
                    eof = true;
                    break;
                }
                got.append(buf, *n);
            }
        }
    };
    auto writer = [&]() -> coev::task<> {
        for (const char* m : {"first ", "second ", "third"}) {
            (void)co_await coev::sleep_for(1ms);  // the reader is idle in between
            auto n = coev::try_write_some(a.get(), coev_test::as_bytes(m));
            REQUIRE(n);
            CHECK(*n == std::strlen(m));
        }
        (void)co_await coev::sleep_for(1ms);
        ::shutdown(a.get(), SHUT_WR);
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, writer());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(got == "first second third");
    CHECK(eof);
    CHECK(would_block >= 1);  // it did run dry and wait between the messages
}

// A reader that reads once per wake-up (an echo server) never sees EAGAIN: its reads come up
// short instead, and the readiness cache (or, under io_uring, a fresh poll) must still report
// every later arrival; long messages take two wake-ups.
TEST_CASE("a reader that reads once per wake-up gets every byte in order, then EOF") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = make_socket_pair();
    auto& a = ab_.a;
    auto& b = ab_.b;
    std::string sent;
    wakeup_reader r;
    // Short, long and back-to-back messages.
    auto make = [](int i) {
        std::string m = "message " + std::to_string(i);
        if (i % 7 == 0) m += std::string(50, '.');
        return m + ';';
    };
    // 40 bytes: most messages fit; the long ones take two wake-ups.
    coev::spawn(loop, read_per_wakeup(b.get(), 40, r));
    coev::spawn(loop, write_messages(a.get(), 300, make, sent));
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(r.eof);
    CHECK(r.got == sent);
    CHECK(r.wakeups > 1);
}

// The same with messages of several KiB read into a large buffer (under io_uring such reads
// stay direct system calls, and a read of at most 4 KiB switches the socket to its multishot
// receive): every later arrival is reported however the reads and arrivals interleave.
TEST_CASE("a reader of long messages, once per wake-up, gets every byte in order, then EOF") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = make_socket_pair();
    auto& a = ab_.a;
    auto& b = ab_.b;
    std::string sent;
    wakeup_reader r;
    auto make = [](int i) {
        return "message " + std::to_string(i) + ':' +
               std::string(std::size_t(5000 + (i * 997) % 15000), char('a' + i % 26));
    };
    coev::spawn(loop, read_per_wakeup(b.get(), 64 * 1024, r, 5));
    coev::spawn(loop, write_messages(a.get(), 200, make, sent));
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(r.eof);
    CHECK(r.got.size() == sent.size());
    CHECK(r.got == sent);
    CHECK(r.wakeups > 1);
}

// The bytes and the FIN arrive together, after the reader has waited once: the read that takes
// the bytes comes up short, and no later arrival will announce the EOF behind them.
TEST_CASE("an edge-triggered reader sees the EOF that came with its last long read") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto ab_ = make_socket_pair();
    auto& a = ab_.a;
    auto& b = ab_.b;
    const std::string block(10'000, 'z');
    wakeup_reader r;
    auto writer = [&]() -> coev::task<> {
        REQUIRE(send_now(a.get(), block) == long(block.size()));
        (void)co_await coev::sleep_for(20ms);  // the reader has read it and waits again
        REQUIRE(send_now(a.get(), block) == long(block.size()));
        ::shutdown(a.get(), SHUT_WR);
    };
    coev::spawn(loop, read_per_wakeup(b.get(), 64 * 1024, r));
    coev::spawn(loop, writer());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(r.eof);
    CHECK(r.got == block + block);
}

TEST_CASE("small writes, then one that fills the socket and waits, arrive whole and in order") {
    // Writes that go out whole take the short path (straight to send() on readiness loops,
    // submitted under io_uring); the one that fills the socket falls back, waits, and the
    // small ones after it take the short path again.
    coev::event_loop loop;
    auto s = make_socket_pair();
    std::string sent, got;
    coev::result<std::size_t> big_first;
    auto writer = [&]() -> coev::task<> {
        for (int round = 0; round < 3; ++round) {
            for (int i = 0; i < 50; ++i) {
                std::string m = "r" + std::to_string(round) + "m" + std::to_string(i) + ";";
                auto n = co_await coev::write_all(s.a.get(), coev_test::as_bytes(m));
                REQUIRE(n);
                sent += m;
            }
            std::string big(1 << 20, char('a' + round));
            auto first = co_await coev::write_some(s.a.get(), coev_test::as_bytes(big));
            REQUIRE(first);
            if (round == 0) big_first = first;
            auto rest = co_await coev::write_all(
                s.a.get(), coev_test::as_bytes(std::string_view(big).substr(*first)));
            REQUIRE(rest);
            sent += big;
        }
        ::shutdown(s.a.get(), SHUT_WR);
    };
    auto reader = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(20ms);  // the writer fills the socket first
        co_await read_to_eof(s.b.get(), got);
    };
    coev::spawn(loop, writer());
    coev::spawn(loop, reader());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    REQUIRE(big_first);
    CHECK(*big_first < std::size_t(1 << 20));  // the socket did fill
    CHECK(got.size() == sent.size());
    CHECK(got == sent);
}

TEST_CASE("a write to an fd number a socket had, now a pipe, goes to the pipe") {
    // The number was written to as a socket, so writes to it may skip its entry; a pipe given
    // the same number must still get the bytes. Closed through unique_fd, the loop forgets the
    // number. Closed behind the loop's back (outside the contract: a wait would not work), a
    // readiness loop's write still finds the pipe; io_uring's submitted send would not.
    coev::event_loop loop;
    for (bool behind_its_back : {false, true}) {
        if (behind_its_back && loop.completion()) break;
        CAPTURE(behind_its_back);
        auto s = make_socket_pair();
        auto p = make_pipe();
        const int number = s.a.get();
        std::string from_pipe;
        coev::result<std::size_t> to_socket, to_pipe;
        auto t = [&]() -> coev::task<> {
            for (int i = 0; i < 3; ++i)
                to_socket = co_await coev::write_some(s.a.get(), coev_test::as_bytes("sock"));
            if (behind_its_back) {
                ::close(s.a.release());
            } else {
                s.a.close();
            }
            REQUIRE(::dup2(p.write_end.get(), number) == number);
            to_pipe = co_await coev::write_some(number, coev_test::as_bytes("pipe"));
            char buf[16];
            const ssize_t n = ::read(p.read_end.get(), buf, sizeof buf);
            if (n > 0) from_pipe.assign(buf, std::size_t(n));
            coev::event_loop::forget_fd_everywhere(number);
            ::close(number);
        };
        coev::spawn(loop, t());
        watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
        REQUIRE(to_socket);
        CHECK(*to_socket == 4);
        REQUIRE(to_pipe);
        CHECK(*to_pipe == 4);
        CHECK(from_pipe == "pipe");
    }
}

TEST_CASE("a second writer while the first waits on a full socket gets error::busy") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::result<std::size_t> first_small, second;
    bool first_waited = false;
    auto first = [&]() -> coev::task<> {
        first_small = co_await coev::write_some(s.a.get(), coev_test::as_bytes("x"));
        std::string big(8 << 20, 'f');
        std::size_t done = 0;
        for (int i = 0; i < 1000 && done < big.size(); ++i) {
            auto n = co_await coev::write_some(
                s.a.get(), coev_test::as_bytes(std::string_view(big).substr(done)));
            if (!n) co_return;
            done += *n;
            if (done < big.size()) first_waited = true;
        }
    };
    auto second_writer = [&]() -> coev::task<> {
        // Until the first writer has filled the socket and waits (io_uring: its write is in
        // the ring).
        for (int i = 0; i < 5000 && !first_waited; ++i) (void)co_await coev::sleep_for(1ms);
        second = co_await coev::write_some(s.a.get(), coev_test::as_bytes("y"));
        s.b.close();  // the first writer ends with EPIPE
    };
    coev::spawn(loop, first());
    coev::spawn(loop, second_writer());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    REQUIRE(first_small);
    CHECK(first_waited);
    CHECK(second.error() == coev::error::busy);
}

TEST_CASE("a write cancelled on a full socket either wrote nothing or says what it wrote") {
    // Under io_uring a write to a socket already written to is submitted: a cancel that loses
    // the race to the kernel's send must report the bytes, one that wins must have sent none.
    coev::event_loop loop;
    auto s = make_socket_pair();
    std::stop_source stop;
    coev::result<std::size_t> head, wrote;
    long filled = 0;
    std::string drained;
    auto writer = [&]() -> coev::task<> {
        head = co_await coev::write_some(s.a.get(), coev_test::as_bytes("head"));
        std::vector<char> junk(64 * 1024, 'x');
        for (int i = 0; i < 10'000; ++i) {
            const ssize_t n = ::send(s.a.get(), junk.data(), junk.size(), MSG_NOSIGNAL);
            if (n <= 0) break;
            filled += n;
        }
        wrote = co_await coev::write_some(s.a.get(), coev_test::as_bytes("tail"));
    };
    auto driver = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(5ms);
        stop.request_stop();
        (void)co_await coev::sleep_for(5ms);
        ::shutdown(s.a.get(), SHUT_WR);
        co_await read_to_eof(s.b.get(), drained);
    };
    coev::spawn(loop, writer(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, driver());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    REQUIRE(head);
    CHECK(*head == 4);
    CHECK(filled > 0);
    if (wrote) {
        CHECK(*wrote == 4);
        CHECK(drained.size() == 4 + std::size_t(filled) + 4);
        CHECK(drained.ends_with("tail"));
    } else {
        CHECK(wrote.error() == std::errc::operation_canceled);
        CHECK(drained.size() == 4 + std::size_t(filled));
        CHECK(drained.ends_with(std::string(4, 'x')));
    }
    CHECK(drained.starts_with("head"));
}

TEST_CASE("try_write_some reports EAGAIN once the socket is full") {
    coev::event_loop loop;
    auto pair = make_socket_pair();  // pair.b stays open and unread
    auto& a = pair.a;
    std::vector<std::byte> chunk(64 * 1024);
    std::error_code last;
    auto run = [&]() -> coev::task<> {
        for (int i = 0; i < 10'000; ++i) {
            auto n = coev::try_write_some(a.get(), chunk);
            if (!n) {
                last = n.error();
                break;
            }
        }
        co_return;
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(last == std::errc::resource_unavailable_try_again);
}

namespace {

// Runs poll() on a thread of its own until `done` holds (or 10 s pass), then lets the thread
// end: the loop's next user is another thread.
template <class Pred> void poll_on_new_thread(coev::event_loop& loop, Pred done) {
    std::thread t([&] {
        for (int i = 0; i < 10'000 && !done(); ++i) {
            loop.poll();
            std::this_thread::sleep_for(1ms);
        }
    });
    t.join();
}

// A listening Unix socket at a fresh path (removed again when the test ends).
struct unix_listener {
    std::string path;
    sockaddr_un addr{};
    coev::unique_fd fd;
    explicit unix_listener(const std::string& name)
        : path("/tmp/coev-" + name + "-" + std::to_string(::getpid())),
          fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
        ::unlink(path.c_str());
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd.get(), 8) == 0);
    }
    ~unix_listener() { ::unlink(path.c_str()); }
    int connect_client(coev::unique_fd& client) const {
        client = coev::unique_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        return ::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    }
};

// A listening TCP socket on 127.0.0.1 and a port of the kernel's choosing.
struct tcp_loopback_listener {
    coev::unique_fd fd;
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    tcp_loopback_listener(int backlog, int flags)
        : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0)) {
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0);
        REQUIRE(::listen(fd.get(), backlog) == 0);
        REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    }
    sockaddr* address() noexcept { return reinterpret_cast<sockaddr*>(&addr); }
};

}  // namespace

TEST_CASE("a loop run on one thread and then on another keeps what was in flight") {
    // io_uring binds its ring to the thread that first enters it; run from another thread, the
    // loop moves to a new ring and must carry over a parked read, bytes received but not yet
    // read, a write waiting for room and an accept, losing and repeating nothing.
    coev::event_loop loop;  // made here, run on a second thread, then on a third
    auto parked = make_socket_pair();
    auto partial = make_socket_pair();
    auto full = make_socket_pair();
    std::size_t filled = 0;
    {
        std::vector<char> junk(64 * 1024, 'x');
        for (int i = 0; i < 10'000; ++i) {
            ssize_t n = ::send(full.a.get(), junk.data(), junk.size(), MSG_NOSIGNAL);
            if (n <= 0) break;
            filled += std::size_t(n);
        }
    }
    unix_listener listener("move");

    std::string got_parked, got_partial;
    std::atomic<int> started{0};
    std::size_t wrote = 0;
    bool accepted = false;
    auto read_parked = [&]() -> coev::task<> {
        std::vector<std::byte> buf(64);
        ++started;
        auto n = co_await coev::with_timeout(10s, coev::read_some(parked.a.get(), buf));
        if (n) got_parked = as_string(buf, *n);
    };
    auto read_partial = [&]() -> coev::task<> {
        std::vector<std::byte> buf(64);
        auto first = co_await coev::read_some(partial.a.get(), std::span(buf).first(1));
        if (first) got_partial = as_string(buf, *first);
        ++started;
        (void)co_await coev::sleep_for(100ms);  // resumes after the move
        while (got_partial.size() < 9) {
            auto n = co_await coev::with_timeout(10s, coev::read_some(partial.a.get(), buf));
            if (!n || *n == 0) break;
            got_partial += as_string(buf, *n);
        }
    };
    auto write_full = [&]() -> coev::task<> {
        const std::string tail(100, 'y');
        ++started;
        auto n = co_await coev::with_timeout(10s, coev::write_some(full.a.get(),
                                                                   coev_test::as_bytes(tail)));
        if (n) wrote = *n;
    };
    auto accept_one = [&]() -> coev::task<> {
        ++started;
        auto c = co_await coev::with_timeout(10s, coev::accept(listener.fd.get()));
        accepted = bool(c);
    };
    REQUIRE(send_now(partial.b.get(), "abcdef") == 6);
    coev::spawn(loop, read_parked());
    coev::spawn(loop, read_partial());
    coev::spawn(loop, write_full());
    coev::spawn(loop, accept_one());
    poll_on_new_thread(loop, [&, n = 0]() mutable { return started == 4 && ++n > 5; });
    REQUIRE(started == 4);
    CHECK(got_partial == "a");

    // Now the third thread: what the tasks wait for happens, and the loop runs here.
    std::string drained_tail;
    std::size_t drained = 0;
    std::thread third([&] {
        watchdog dog(loop);
        REQUIRE(send_now(parked.b.get(), "parked") == 6);
        REQUIRE(send_now(partial.b.get(), "ghi") == 3);
        coev::unique_fd client;
        REQUIRE(listener.connect_client(client) == 0);
        auto drain = [&]() -> coev::task<> {
            std::vector<std::byte> buf(64 * 1024);
            while (drained < filled + 100) {
                auto n = co_await coev::with_timeout(10s, coev::read_some(full.b.get(), buf));
                if (!n || *n == 0) break;
                drained += *n;
                drained_tail = (drained_tail + as_string(buf, *n));
                if (drained_tail.size() > 200) drained_tail.erase(0, drained_tail.size() - 200);
            }
        };
        coev::spawn(loop, drain());
        loop.run();
        CHECK_FALSE(dog.fired());
    });
    third.join();
    CHECK(got_parked == "parked");
    CHECK(got_partial == "abcdefghi");
    CHECK(wrote == 100);
    CHECK(drained == filled + 100);
    CHECK(drained_tail.substr(drained_tail.size() - 100) == std::string(100, 'y'));
    CHECK(accepted);
}

TEST_CASE("a loop destroyed on another thread than the one that ran it ends its waits") {
    struct flag_on_exit {
        bool* flag;
        ~flag_on_exit() { *flag = true; }
    };
    auto pair = make_socket_pair();
    bool frame_gone = false;
    std::atomic<bool> waiting{false};
    {
        coev::event_loop loop;
        auto reader = [&]() -> coev::task<> {
            flag_on_exit guard{&frame_gone};
            std::vector<std::byte> buf(64);
            waiting = true;
            (void)co_await coev::read_some(pair.a.get(), buf);  // never answered
        };
        auto waiter = [&]() -> coev::task<> {
            (void)co_await coev::wait_readable(pair.b.get());  // a plain readiness wait
        };
        coev::spawn(loop, reader());
        coev::spawn(loop, waiter());
        poll_on_new_thread(loop, [&, n = 0]() mutable { return waiting && ++n > 5; });
        REQUIRE(waiting);
    }  // destroyed here, on the test's thread
    CHECK(frame_gone);
    // The socket is still usable: nothing was left reading from it.
    REQUIRE(send_now(pair.b.get(), "z") == 1);
    char c = 0;
    CHECK(::recv(pair.a.get(), &c, 1, 0) == 1);
    CHECK(c == 'z');
}

TEST_CASE("a TCP connect in progress when the loop moves to another thread still completes") {
    // A listener whose accept queue is full drops the SYN, so the connect stays in progress
    // (the kernel retries after about a second) while the loop changes threads.
    tcp_loopback_listener tcp(0, SOCK_NONBLOCK);
    coev::unique_fd& listener = tcp.fd;
    sockaddr* addr = tcp.address();
    const socklen_t len = tcp.len;
    std::vector<coev::unique_fd> fillers;
    for (int i = 0; i < 4; ++i) {  // fill the accept queue (backlog 0 holds one or two)
        coev::unique_fd f(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        ::connect(f.get(), addr, len);
        fillers.push_back(std::move(f));
    }
    std::this_thread::sleep_for(50ms);

    coev::event_loop loop;
    coev::unique_fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    std::atomic<bool> started{false};
    std::optional<std::error_code> outcome;
    auto connector = [&]() -> coev::task<> {
        started = true;
        auto r = co_await coev::with_timeout(
            20s, coev::connect(sock.get(), addr, len));
        outcome = r ? std::error_code{} : r.error();
    };
    coev::spawn(loop, connector());
    // A few more iterations after it starts, so that the connect reaches the kernel.
    poll_on_new_thread(loop, [&, n = 0]() mutable { return started && ++n > 5; });
    REQUIRE(started);
    std::thread other([&] {
        // Make room: the fillers give up and whatever they queued is taken, so the connect's
        // next SYN gets through.
        fillers.clear();
        auto acceptor = [&]() -> coev::task<> {
            while (!outcome) {
                auto c = co_await coev::with_timeout(100ms, coev::accept(listener.get()));
                (void)c;  // closed at once
            }
        };
        coev::spawn(loop, acceptor());
        watchdog dog(loop, 30s);
        loop.run();
        CHECK_FALSE(dog.fired());
    });
    other.join();
    REQUIRE(outcome.has_value());
    CHECK_MESSAGE(!*outcome, outcome->message());
    int err = -1;
    socklen_t elen = sizeof err;
    REQUIRE(::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &elen) == 0);
    CHECK(err == 0);
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    CHECK(::getpeername(sock.get(), reinterpret_cast<sockaddr*>(&peer), &plen) == 0);
}

TEST_CASE("fds closed from another thread while the loop is idle end their waits once") {
    // Each close from a thread the loop does not run on moves io_uring's ring there; a wait
    // cancelled by the first close must still end (once) when the loop next runs elsewhere.
    coev::event_loop loop;
    auto first = make_socket_pair();
    auto second = make_socket_pair();
    std::string r1 = "pending", r2 = "pending";
    int resumed = 0;
    auto reader = [&]() -> coev::task<> {
        std::vector<std::byte> buf(64);
        auto n = co_await coev::read_some(first.a.get(), buf);
        ++resumed;
        r1 = n ? "bytes" : n.error().message();
    };
    auto waiter = [&]() -> coev::task<> {
        auto r = co_await coev::wait_readable(second.a.get());
        ++resumed;
        r2 = r ? "ready" : r.error().message();
    };
    coev::spawn(loop, reader());
    coev::spawn(loop, waiter());
    poll_on_new_thread(loop, [&, n = 0]() mutable { return ++n > 5; });
    first.a.close();
    second.a.close();
    std::thread other([&] {
        watchdog dog(loop);
        loop.run();
        CHECK_FALSE(dog.fired());
    });
    other.join();
    const std::string closed = make_error_code(coev::error::closed).message();
    CHECK(r1 == closed);
    CHECK(r2 == closed);
    CHECK(resumed == 2);
}

TEST_CASE("a pipe write whose readiness came and went survives the loop moving threads") {
    // The write's readiness arrives in the last iteration on one thread, but the pipe is full
    // again by the time the loop runs on the next: the write waits again, and finishes once
    // the pipe has room.
    auto pipe = make_pipe();
    auto fill = [&] {
        std::vector<char> junk(64 * 1024, 'x');
        while (::write(pipe.write_end.get(), junk.data(), junk.size()) > 0) {
        }
    };
    auto drain = [&] {
        std::vector<char> sink(64 * 1024);
        while (::read(pipe.read_end.get(), sink.data(), sink.size()) > 0) {
        }
    };
    auto other = make_socket_pair();
    fill();
    coev::event_loop loop;
    long wrote = -1;
    auto writer = [&]() -> coev::task<> {
        auto n = co_await coev::write_some(pipe.write_end.get(), coev_test::as_bytes("w"));
        wrote = n ? long(*n) : -1;
    };
    auto trigger = [&]() -> coev::task<> {
        drain();             // room: the writer's poll completes in this iteration...
        other.a.close();     // ...at once, when the close hands the ring to the kernel
        coev::event_loop::current()->stop();
        co_return;
    };
    auto known = [&]() -> coev::task<> { (void)co_await coev::wait_readable(other.a.get()); };
    coev::spawn(loop, known());
    poll_on_new_thread(loop, [&, n = 0]() mutable { return ++n > 2; });
    coev::spawn(loop, writer());
    coev::spawn(loop, trigger());
    std::thread([&] { loop.run(); }).join();
    fill();  // full again before the next thread runs the loop
    std::thread([&] {
        watchdog dog(loop);
        std::thread drainer([&] {
            std::this_thread::sleep_for(100ms);
            drain();
        });
        loop.run();
        drainer.join();
        CHECK_FALSE(dog.fired());
    }).join();
    CHECK(wrote == 1);
}

TEST_CASE("a loop destroyed on another thread performs none of the operations it cancels") {
    // While the loop is idle a client connects and the peer makes room; destroying the loop
    // then must not accept that connection or send the waiting bytes ("Cancel: no connection
    // is taken", "Cancel: nothing was written"), whichever thread destroys it.
    for (bool same_thread : {true, false}) {
        CAPTURE(same_thread);
        unix_listener listener("destroy");
        auto full = make_socket_pair();
        coev_test::fill_send_buffer(full.a.get());
        auto loop = std::make_unique<coev::event_loop>();
        bool resumed = false;
        auto acceptor = [&]() -> coev::task<> {
            auto c = co_await coev::accept(listener.fd.get());
            resumed = true;
        };
        auto writer = [&]() -> coev::task<> {
            auto n = co_await coev::write_some(full.a.get(), coev_test::as_bytes("tail"));
            resumed = true;
        };
        coev::spawn(*loop, acceptor());
        coev::spawn(*loop, writer());
        std::atomic<int> step{0};
        std::thread runner([&] {
            for (int i = 0; i < 5; ++i) {
                loop->poll();
                std::this_thread::sleep_for(2ms);
            }
            step = 1;
            while (step != 2) std::this_thread::sleep_for(1ms);
            if (same_thread) loop.reset();
        });
        while (step != 1) std::this_thread::sleep_for(1ms);
        coev::unique_fd client;
        REQUIRE(listener.connect_client(client) == 0);
        std::vector<char> sink(1 << 20);
        while (::recv(full.b.get(), sink.data(), sink.size(), MSG_DONTWAIT) > 0) {
        }
        step = 2;
        runner.join();
        if (!same_thread) std::thread([&] { loop.reset(); }).join();
        CHECK_FALSE(resumed);
        CHECK(::recv(full.b.get(), sink.data(), sink.size(), MSG_DONTWAIT) < 0);  // nothing sent
        coev::unique_fd queued(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        CHECK(queued.get() >= 0);  // the connection is still there to take
    }
}

// Runs `busy` beside a task that sleeps 1 ms at a time for 1.5 s, then sets `done`: how many
// turns the sleeper got (up to 1,500) says whether `busy` let it run.
namespace {
int ticks_beside(coev::task<> busy, std::atomic<bool>& done) {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    int ticks = 0;
    auto ticker = [&]() -> coev::task<> {
        const auto end = coev::clock::now() + 1500ms;
        while (coev::clock::now() < end) {
            (void)co_await coev::sleep_for(1ms);
            ++ticks;
        }
        done = true;
    };
    coev::spawn(loop, std::move(busy));
    coev::spawn(loop, ticker());
    loop.run();
    CHECK_FALSE(dog.fired());
    return ticks;
}
}  // namespace

TEST_CASE("a reader whose socket is never empty still lets the other tasks run") {
    // A peer that never stops sending keeps the fd ready at every look: without a budget the
    // reading task would never suspend, and timers, other sockets and stop() would wait (a
    // ticker sleeping 1 ms got a turn every 200 ms or so).
    tcp_loopback_listener tcp(1, 0);  // blocking: accept below waits for the peer
    coev::unique_fd& listener = tcp.fd;
    sockaddr* addr = tcp.address();
    const socklen_t len = tcp.len;
    std::atomic<bool> done{false};
    std::thread peer([&] {
        coev::unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(s.get(), addr, len) != 0) return;
        std::vector<char> chunk(1 << 20, 'f');
        const auto end = coev::clock::now() + 1500ms;
        while (!done && coev::clock::now() < end)
            if (::send(s.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    });
    coev::unique_fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    REQUIRE(conn.get() >= 0);

    std::size_t got = 0;
    auto reader = [&]() -> coev::task<> {
        std::vector<std::byte> buf(64);  // far less than what waits: the fd stays ready
        while (!done) {
            auto n = co_await coev::read_some(conn.get(), buf);
            if (!n || *n == 0) co_return;
            got += *n;
        }
    };
    const int ticks = ticks_beside(reader(), done);
    conn.close();  // the peer's blocked send fails now
    peer.join();
    CHECK(got > 0);
    // Up to 1,500 turns in 1.5 s; starved, the ticker got about ten.
    CHECK(ticks > 100);
}

TEST_CASE("a writer whose socket always takes its bytes still lets the other tasks run") {
    // Whole sends take write_some's fast path, which never makes its wait: the budget must
    // still send the task to the back of the queue now and then, or the ticker would starve.
    auto p = make_socket_pair();
    std::atomic<bool> done{false};
    std::thread drain([&] {  // keeps the writer's socket from ever filling
        std::vector<char> sink(1 << 16);
        const auto end = coev::clock::now() + 20s;
        while (!done && coev::clock::now() < end) {
            pollfd pfd{p.b.get(), POLLIN, 0};
            if (::poll(&pfd, 1, 10) > 0 && ::recv(p.b.get(), sink.data(), sink.size(), 0) == 0)
                break;
        }
    });
    std::size_t sent = 0;
    auto writer = [&]() -> coev::task<> {
        const std::byte one[1] = {std::byte{'w'}};
        while (!done) {
            auto n = co_await coev::write_some(p.a.get(), one);
            if (!n) co_return;
            sent += *n;
        }
    };
    const int ticks = ticks_beside(writer(), done);
    done = true;
    drain.join();
    CHECK(sent > 0);
    CHECK(ticks > 100);  // up to 1,500 turns in 1.5 s
}

TEST_CASE("a reader that stops waiting leaves its fd unwatched: the loop does not spin") {
    // Level-triggered backends (poll, select) learn of a waiter leaving only before they next
    // wait (interest_changed): if they never learned, an fd with unread bytes and no reader
    // would end every wait at once.
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    auto s = make_socket_pair();
    REQUIRE(send_now(s.b.get(), "ab") == 2);
    bool slept = false;
    auto reader = [&]() -> coev::task<> {
        auto ready = co_await coev::wait_readable(s.a.get());  // then never reads nor waits again
        if (!ready) co_return;
        (void)co_await coev::sleep_for(300ms);
        slept = true;
    };
    coev::spawn(loop, reader());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(slept);
    CHECK(loop.counters().iterations < 100);  // spinning made tens of thousands
}
