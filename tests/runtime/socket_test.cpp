// tests/runtime/socket_test.cpp
// accept, connect, readv and writev on loopback TCP and Unix sockets (and writev on a pipe),
// on every backend.
#include "helpers.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <netinet/in.h>
#include <string>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

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

namespace {
std::string drain(int fd, std::size_t want) {
    std::string got;
    char buf[65536];
    for (int spins = 0; got.size() < want && spins < 1'000'000; ++spins) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) got.append(buf, std::size_t(n));
        else if (n == 0) break;
    }
    return got;
}
}  // namespace

// A writev that would block waits (io_uring: a sendmsg submitted to the ring; a pipe: readiness,
// then writev) and is finished once the reader makes room; its bytes follow the queued ones.
TEST_CASE("a writev that would block finishes once the peer reads, after what was queued") {
    coev::event_loop loop;
    coev::unique_fd reader_end, writer_end;
    SUBCASE("socket pair") {
        auto s = coev_test::make_socket_pair();
        reader_end = std::move(s.b);
        writer_end = std::move(s.a);
    }
    SUBCASE("pipe") {
        auto p = coev_test::make_pipe();
        reader_end = std::move(p.read_end);
        writer_end = std::move(p.write_end);
    }
    // Fill with 'x' until the kernel refuses more.
    std::size_t queued = 0;
    {
        std::vector<char> junk(4096, 'x');
        for (int i = 0; i < 100'000; ++i) {
            ssize_t n = ::write(writer_end.get(), junk.data(), junk.size());
            if (n <= 0) break;
            queued += std::size_t(n);
        }
    }
    REQUIRE(queued > 0);
    char head[] = "head-", tail[] = "and-tail";
    iovec iov[2] = {{head, 5}, {tail, 8}};
    coev::result<std::size_t> sent;
    bool finished = false;
    auto writer = [&]() -> coev::task<> {
        sent = co_await coev::writev_some(writer_end.get(), iov);
        finished = true;
    };
    coev::spawn(loop, writer());
    loop.poll();
    CHECK_FALSE(finished);  // it waits: the buffer is full
    std::string got = drain(reader_end.get(), queued);
    REQUIRE(got.size() >= queued);
    {
        watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
    }
    REQUIRE(finished);
    REQUIRE(sent.has_value());
    REQUIRE(*sent > 0);
    REQUIRE(*sent <= 13);
    got += drain(reader_end.get(), queued + *sent - got.size());
    REQUIRE(got.size() == queued + *sent);
    CHECK(got.find_first_not_of('x') == queued);
    CHECK(got.substr(queued) == std::string("head-and-tail").substr(0, *sent));
}

TEST_CASE("a writev waiting on a full socket fails with EPIPE when the peer goes, raising no "
          "SIGPIPE") {
    coev_test::sigpipe_counter sigpipes;
    coev::event_loop loop;
    auto s = coev_test::make_socket_pair();
    coev_test::fill_send_buffer(s.a.get());
    char data[] = "lost";
    iovec iov[1] = {{data, 4}};
    coev::result<std::size_t> sent;
    auto writer = [&]() -> coev::task<> { sent = co_await coev::writev_some(s.a.get(), iov); };
    auto closer = [&]() -> coev::task<> {
        s.b.close();
        co_return;
    };
    coev::spawn(loop, writer());
    loop.poll();  // the writev waits
    coev::spawn(loop, closer());
    {
        watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
    }
    REQUIRE_FALSE(sent.has_value());
    CHECK((sent.error() == std::errc::broken_pipe || sent.error() == std::errc::connection_reset));
    CHECK(sigpipes.count() == 0);
}

TEST_CASE("a Unix connect to a listener succeeds on every backend") {
    const std::string path = "/tmp/coev-rt-connect-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    coev::unique_fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(listener);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener.get(), 8) == 0);
    coev::event_loop loop;
    coev::result<void> connected;
    coev::result<coev::unique_fd> accepted;
    coev::unique_fd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    auto connector = [&]() -> coev::task<> {
        connected = co_await coev::connect(client.get(), reinterpret_cast<sockaddr*>(&addr),
                                           sizeof addr);
    };
    auto acceptor = [&]() -> coev::task<> { accepted = co_await coev::accept(listener.get()); };
    coev::spawn(loop, acceptor());
    coev::spawn(loop, connector());
    {
        watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
    }
    ::unlink(path.c_str());
    CHECK(connected.has_value());
    CHECK(accepted.has_value());
}

TEST_CASE("a connect without an address fails with EFAULT on every backend") {
    coev::event_loop loop;
    coev::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    coev::result<void> r;
    auto client = [&]() -> coev::task<> {
        r = co_await coev::connect(fd.get(), nullptr, sizeof(sockaddr_in));
    };
    coev::spawn(loop, client());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == std::errc::bad_address);
}

// Regression (epoll): recv() stops short at TCP's urgent mark with bytes queued behind it. The
// readiness cache took that short read for a drained socket and waited for an edge that never
// came; an urgent-data report (EPOLLPRI) now stops short reads from clearing readability.
TEST_CASE("bytes sent after urgent data are read without waiting for more") {
    coev::event_loop loop;
    sockaddr_storage addr{};
    socklen_t len = 0;
    auto listener = listen_on_loopback(AF_INET, addr, len);
    std::string received;
    coev::result<std::size_t> last = std::size_t{0};
    bool server_done = false;
    auto server = [&]() -> coev::task<> {
        auto conn = co_await coev::accept(listener.get(), nullptr, nullptr);
        REQUIRE(conn.has_value());
        char buf[64];
        // "helloab", the urgent "c" (out of band, not in the stream), then "world".
        while (received.size() < 12) {
            last = co_await coev::with_timeout(
                2s, coev::read_some(conn->get(), std::as_writable_bytes(std::span(buf))));
            if (!last || *last == 0) break;
            received += as_string(buf, *last);
        }
        server_done = true;
    };
    auto client = [&]() -> coev::task<> {
        auto fd = tcp_socket(AF_INET);
        auto c = co_await coev::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
        REQUIRE(c.has_value());
        (void)co_await coev::sleep_for(20ms);  // the server's read waits first
        REQUIRE(::send(fd.get(), "helloab", 7, 0) == 7);
        REQUIRE(::send(fd.get(), "c", 1, MSG_OOB) == 1);
        REQUIRE(::send(fd.get(), "world", 5, 0) == 5);
        // No FIN until the server is done: only the bytes themselves may end its read.
        for (int i = 0; i < 500 && !server_done; ++i) (void)co_await coev::sleep_for(10ms);
    };
    coev::spawn(loop, server());
    coev::spawn(loop, client());
    watchdog wd(loop);
    loop.run();
    CHECK(last.has_value());
    CHECK(received == "helloabworld");
    CHECK_FALSE(wd.fired());
}

// The same for a reader that waits with wait_read_ready() and reads several KiB at a time
// (under io_uring these reads stay direct system calls). The read stops at the mark after the
// second block, short of the buffer, with "world" queued behind it: an edge-triggered wait that
// took that for a drained socket would wait for an arrival that never comes.
TEST_CASE("an edge-triggered reader reads past urgent data without waiting for more") {
    coev::event_loop loop;
    sockaddr_storage addr{};
    socklen_t len = 0;
    auto listener = listen_on_loopback(AF_INET, addr, len);
    const std::string block(10'000, 'x');
    std::string received;
    bool server_done = false, timed_out = false;
    auto server = [&]() -> coev::task<> {
        auto conn = co_await coev::accept(listener.get(), nullptr, nullptr);
        REQUIRE(conn.has_value());
        std::vector<char> buf(64 * 1024);
        while (received.size() < 2 * block.size() + 5) {
            auto ready = co_await coev::with_timeout(2s, coev::wait_read_ready(conn->get()));
            if (!ready) {
                timed_out = true;
                break;
            }
            auto n = coev::try_read_some(conn->get(), std::as_writable_bytes(std::span(buf)));
            if (!n && n.error() == std::errc::resource_unavailable_try_again) continue;
            if (!n || *n == 0) break;
            received += as_string(buf.data(), *n);
        }
        server_done = true;
    };
    auto client = [&]() -> coev::task<> {
        auto fd = tcp_socket(AF_INET);
        auto c = co_await coev::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
        REQUIRE(c.has_value());
        (void)co_await coev::sleep_for(20ms);  // the server waits first
        REQUIRE(::send(fd.get(), block.data(), block.size(), 0) == long(block.size()));
        (void)co_await coev::sleep_for(20ms);  // the server has read it and waits again
        REQUIRE(::send(fd.get(), block.data(), block.size(), 0) == long(block.size()));
        REQUIRE(::send(fd.get(), "c", 1, MSG_OOB) == 1);
        REQUIRE(::send(fd.get(), "world", 5, 0) == 5);
        for (int i = 0; i < 500 && !server_done; ++i) (void)co_await coev::sleep_for(10ms);
    };
    coev::spawn(loop, server());
    coev::spawn(loop, client());
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(timed_out);
    CHECK(received == block + block + "world");
    CHECK_FALSE(wd.fired());
}
