// tests/net/socket_test.cpp
// Listeners, UDP and Unix sockets on loopback, on every backend.
#include "helpers.hpp"

#include <coev/net/tcp_listener.hpp>
#include <coev/net/udp_socket.hpp>
#include <coev/net/unix_stream.hpp>

#include <cstdio>
#include <fcntl.h>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace coev::net;
using coev_test::as_bytes;
using coev_test::watchdog;

namespace {

std::string text(std::span<const std::byte> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

tcp_listener listen_loopback(const char* where = "127.0.0.1:0", listen_options o = {}) {
    auto l = tcp_listener::bind(*endpoint::parse(where), o);
    REQUIRE(l);
    return std::move(*l);
}

/// Lowers RLIMIT_NOFILE to a few above the descriptors in use; fill() then takes every one
/// left. release() (or the destructor) gives them back and restores the limit.
struct descriptor_squeeze {
    rlimit old{};
    std::vector<coev::unique_fd> hog;

    descriptor_squeeze() {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
        int probe = ::dup(0);
        REQUIRE(probe >= 0);
        ::close(probe);
        rlimit low = old;
        low.rlim_cur = rlim_t(probe + 16);
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    }
    descriptor_squeeze(const descriptor_squeeze&) = delete;
    ~descriptor_squeeze() { release(); }
    void fill() {
        for (;;) {
            int fd = ::dup(0);
            if (fd < 0) break;
            hog.emplace_back(fd);
        }
        REQUIRE(errno == EMFILE);
    }
    bool release() noexcept {
        hog.clear();
        return ::setrlimit(RLIMIT_NOFILE, &old) == 0;
    }
};

/// A listener with one descriptor for itself and none to spare, and a client whose connection
/// waits in its queue: every accept() fails with EMFILE and, with no reserve descriptor to
/// free, backs off (10 ms doubling to 1 s).
struct starved_listener {
    descriptor_squeeze squeeze;
    coev::unique_fd client;
    std::optional<tcp_listener> listener;

    starved_listener() : client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
        REQUIRE(client);
        squeeze.fill();
        squeeze.hog.pop_back();  // one descriptor for the listener itself, none for its reserve
        listener.emplace(listen_loopback());
        const endpoint at = *listener->local_endpoint();
        int r = ::connect(client.get(), at.data(), at.size());
        REQUIRE((r == 0 || errno == EINPROGRESS));
    }
};

}  // namespace

TEST_CASE("a listener accepts 1,000 connections and reports each peer") {
    coev_test::raise_fd_limit();
    coev::event_loop loop;
    watchdog dog(loop, 60s);
    auto l = listen_loopback();
    const endpoint at = *l.local_endpoint();
    constexpr int total = 1000;
    int accepted = 0, connected = 0;
    // Both ends stay open to the end, except under select, which cannot watch an fd past
    // FD_SETSIZE: there each connection is closed once accepted.
    const bool hold = loop.backend_name() != "select";
    std::vector<tcp_stream> keep;
    keep.reserve(2 * total);
    auto server = [&]() -> coev::task<> {
        for (int i = 0; i < total; ++i) {
            auto c = co_await l.accept();
            REQUIRE(c);
            CHECK(c->peer.address().is_loopback());
            CHECK(c->peer.port() != 0);
            if (hold) keep.push_back(std::move(c->stream));
            ++accepted;
        }
    };
    auto client = [&]() -> coev::task<> {
        for (int i = 0; i < total; ++i) {
            auto s = co_await tcp_stream::connect(at);
            REQUIRE(s);
            if (hold) keep.push_back(std::move(*s));
            ++connected;
        }
    };
    coev::spawn(loop, server());
    coev::spawn(loop, client());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(accepted == total);
    CHECK(connected == total);
}

TEST_CASE("running out of descriptors neither stops nor spins the listener") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    auto l = listen_loopback();
    const endpoint at = *l.local_endpoint();
    std::vector<std::error_code> reported;
    l.set_error_handler([&](std::error_code e) { reported.push_back(e); });

    // Take every descriptor the lowered limit allows, keeping the current ones.
    descriptor_squeeze squeeze;
    // The client sockets are made before the table fills; the server then has nothing left.
    std::vector<coev::unique_fd> clients;
    for (int i = 0; i < 3; ++i) {
        clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        REQUIRE(clients.back());
    }
    squeeze.fill();
    for (auto& c : clients) {
        int r = ::connect(c.get(), at.data(), at.size());
        REQUIRE((r == 0 || errno == EINPROGRESS));
    }

    bool got_one = false;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l.accept();  // suspended through the EMFILE storm
        REQUIRE(c);
        got_one = true;
    };
    auto relief = [&]() -> coev::task<> {
        // Let the listener meet EMFILE a few times, then give descriptors back and connect anew.
        for (int i = 0; i < 200 && reported.size() < 3; ++i) (void)co_await coev::sleep_for(5ms);
        REQUIRE(squeeze.release());
        auto s = co_await tcp_stream::connect(at);
        REQUIRE(s);
        for (int i = 0; i < 400 && !got_one; ++i) (void)co_await coev::sleep_for(5ms);
    };
    coev::spawn(loop, server());
    coev::spawn(loop, relief());
    const auto iterations_before = loop.counters().iterations;
    loop.run();
    squeeze.release();
    CHECK_FALSE(dog.fired());
    CHECK(got_one);
    REQUIRE_FALSE(reported.empty());
    CHECK(reported.front() == std::errc::too_many_files_open);
    // No spinning: a few hundred loop iterations at most, not millions.
    CHECK(loop.counters().iterations - iterations_before < 5000);
}

TEST_CASE("close() cuts short the back-off of a listener with no descriptor to spare") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    starved_listener starved;
    auto& l = *starved.listener;
    std::vector<std::error_code> reported;
    l.set_error_handler([&](std::error_code e) { reported.push_back(e); });

    std::error_code got;
    auto closed_at = std::chrono::steady_clock::now();
    auto returned_at = closed_at;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l.accept();  // EMFILE, no reserve: backs off, 10 ms doubling to 1 s
        returned_at = std::chrono::steady_clock::now();
        REQUIRE_FALSE(c);
        got = c.error();
    };
    auto closer = [&]() -> coev::task<> {
        // Eight reports: the back-off now waits a whole second.
        for (int i = 0; i < 1000 && reported.size() < 8; ++i) (void)co_await coev::sleep_for(5ms);
        closed_at = std::chrono::steady_clock::now();
        l.close();
    };
    coev::spawn(loop, server());
    coev::spawn(loop, closer());
    loop.run();
    starved.squeeze.release();
    CHECK_FALSE(dog.fired());
    CHECK(reported.size() >= 8);
    CHECK(got == coev::error::closed);
    // Well under the second the back-off would have slept (generous: the machine is shared).
    CHECK(returned_at - closed_at < 500ms);
}

// Regression: close() from the error hook came before the back-off wait began, so nothing cut
// it short and accept() slept up to a second on a closed listener.
TEST_CASE("close() from the listener's error hook ends the accept at once") {
    coev::event_loop loop;
    watchdog dog(loop, 30s);
    starved_listener starved;
    auto& l = *starved.listener;
    int reports = 0;
    auto closed_at = std::chrono::steady_clock::now();
    l.set_error_handler([&](std::error_code) {
        if (++reports == 8) {  // the back-off that follows would be a whole second
            closed_at = std::chrono::steady_clock::now();
            l.close();
        }
    });
    std::error_code got;
    auto returned_at = closed_at;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l.accept();
        returned_at = std::chrono::steady_clock::now();
        REQUIRE_FALSE(c);
        got = c.error();
    };
    coev::spawn(loop, server());
    loop.run();
    starved.squeeze.release();
    CHECK_FALSE(dog.fired());
    CHECK(reports == 8);
    CHECK(got == coev::error::closed);
    CHECK(returned_at - closed_at < 500ms);  // not the second of back-off (generous bound)
}

TEST_CASE("a disabled listener leaves connections queued until it is enabled") {
    coev::event_loop loop;
    watchdog dog(loop, 20s);
    auto l = listen_loopback();
    const endpoint at = *l.local_endpoint();
    bool accepted = false;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l.accept();
        REQUIRE(c);
        accepted = true;
    };
    auto driver = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);  // the accept is waiting now
        l.disable();
        auto s = co_await tcp_stream::connect(at);
        REQUIRE(s);
        (void)co_await coev::sleep_for(50ms);
        CHECK_FALSE(accepted);
        l.enable();
        for (int i = 0; i < 400 && !accepted; ++i) (void)co_await coev::sleep_for(5ms);
    };
    coev::spawn(loop, server());
    coev::spawn(loop, driver());
    loop.run();
    CHECK_FALSE(dog.fired());
    CHECK(accepted);
}

TEST_CASE("closing a listener ends a waiting accept with error::closed") {
    coev::event_loop loop;
    auto l = listen_loopback();
    std::error_code got;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l.accept();
        REQUIRE_FALSE(c);
        got = c.error();
    };
    auto closer = [&]() -> coev::task<> {
        (void)co_await coev::sleep_for(1ms);
        l.close();
    };
    coev::spawn(loop, server());
    coev::spawn(loop, closer());
    loop.run();
    CHECK(got == coev::error::closed);
}

// Regression: the accept loop kept a raw pointer to the listener's state, which the
// listener's destruction freed under it (ASan: heap-use-after-free), enabled or disabled.
TEST_CASE("destroying a listener ends a waiting accept with error::closed") {
    for (const bool disabled : {false, true}) {
        CAPTURE(disabled);
        coev::event_loop loop;
        auto l = std::make_unique<coev::net::tcp_listener>(listen_loopback());
        if (disabled) l->disable();
        std::error_code got;
        auto server = [&]() -> coev::task<> {
            auto c = co_await l->accept();
            REQUIRE_FALSE(c);
            got = c.error();
        };
        auto destroyer = [&]() -> coev::task<> {
            (void)co_await coev::sleep_for(1ms);
            l.reset();
        };
        coev::spawn(loop, server());
        coev::spawn(loop, destroyer());
        coev_test::watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
        CHECK(got == coev::error::closed);
    }
}

TEST_CASE("a listener binds IPv6 loopback and streams meet there") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto l = listen_loopback("[::1]:0");
    const endpoint at = *l.local_endpoint();
    CHECK(at.family() == AF_INET6);
    std::string got;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l.accept();
        REQUIRE(c);
        CHECK(c->peer.family() == AF_INET6);
        std::byte buf[16];
        auto n = co_await c->stream.read_exact(std::span(buf, 5));
        REQUIRE(n);
        got = text(std::span(buf, 5));
    };
    auto client = [&]() -> coev::task<> {
        auto s = co_await tcp_stream::connect(at);
        REQUIRE(s);
        CHECK(s->peer_endpoint()->to_string() == at.to_string());
        auto w = co_await s->write(as_bytes("hello"));
        REQUIRE(w);
    };
    coev::spawn(loop, server());
    coev::spawn(loop, client());
    loop.run();
    CHECK(got == "hello");
}

TEST_CASE("UDP datagrams keep their boundaries and their sender") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto a = udp_socket::bind(*endpoint::parse("127.0.0.1:0"));
    auto b = udp_socket::bind(*endpoint::parse("127.0.0.1:0"));
    REQUIRE(a);
    REQUIRE(b);
    const endpoint at_a = *a->local_endpoint(), at_b = *b->local_endpoint();
    std::vector<std::string> got;
    bool truncated = false;
    auto receiver = [&]() -> coev::task<> {
        std::byte buf[64];
        for (int i = 0; i < 3; ++i) {
            auto d = co_await a->recv_from(buf);
            REQUIRE(d);
            CHECK(d->from == at_b);
            got.push_back(text(std::span(buf, d->size)));
        }
        std::byte small[4];
        auto d = co_await a->recv_from(small);
        REQUIRE(d);
        truncated = d->truncated;
    };
    auto sender = [&]() -> coev::task<> {
        for (const char* m : {"one", "two", "three", "a longer datagram"}) {
            auto n = co_await b->send_to(as_bytes(m), at_a);
            REQUIRE(n);
        }
    };
    coev::spawn(loop, receiver());
    coev::spawn(loop, sender());
    loop.run();
    CHECK(got == std::vector<std::string>{"one", "two", "three"});
    CHECK(truncated);
}

TEST_CASE("a datagram from an unbound Unix socket comes from the unnamed Unix endpoint") {
    // The kernel gives no address at all for such a sender; it is not 0.0.0.0:0.
    coev::event_loop loop;
    watchdog dog(loop);
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    udp_socket a{coev::net::socket{coev::unique_fd{fds[0]}}};
    udp_socket b{coev::net::socket{coev::unique_fd{fds[1]}}};
    std::optional<endpoint> from;
    auto run = [&]() -> coev::task<> {
        auto sent = co_await b.send(as_bytes("hi"));
        REQUIRE(sent);
        std::byte buf[16];
        auto d = co_await a.recv_from(buf);
        REQUIRE(d);
        from = d->from;
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK_FALSE(dog.fired());
    REQUIRE(from.has_value());
    CHECK(from->is_unix());
    CHECK(from->family() == AF_UNIX);
    CHECK(from->to_string() == "unix:");
}

TEST_CASE("a connected UDP socket sends and receives without addresses") {
    coev::event_loop loop;
    watchdog dog(loop);
    auto a = udp_socket::bind(*endpoint::parse("[::1]:0"));
    auto b = udp_socket::bind(*endpoint::parse("[::1]:0"));
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(a->connect(*b->local_endpoint()));
    REQUIRE(b->connect(*a->local_endpoint()));
    std::string got;
    auto run = [&]() -> coev::task<> {
        auto n = co_await a->send(as_bytes("ping"));
        REQUIRE(n);
        std::byte buf[16];
        auto r = co_await b->recv(buf);
        REQUIRE(r);
        got = text(std::span(buf, *r));
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(got == "ping");
}

TEST_CASE("Unix streams connect to a listener's path, and socket_pair gives a connected pair") {
    coev::event_loop loop;
    watchdog dog(loop);
    const std::string path = "/tmp/coev-net-test-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    auto ep = endpoint::unix_path(path);
    REQUIRE(ep);
    auto l = unix_listener::bind(*ep);
    REQUIRE(l);
    std::string got, pair_got;
    auto server = [&]() -> coev::task<> {
        auto c = co_await l->accept();
        REQUIRE(c);
        std::byte buf[8];
        auto n = co_await c->stream.read_exact(std::span(buf, 4));
        REQUIRE(n);
        got = text(std::span(buf, 4));
    };
    auto client = [&]() -> coev::task<> {
        auto s = co_await unix_stream::connect(*ep);
        REQUIRE(s);
        auto w = co_await s->write(as_bytes("unix"));
        REQUIRE(w);
        auto pair = socket_pair();
        REQUIRE(pair);
        auto w2 = co_await pair->first.write(as_bytes("pair"));
        REQUIRE(w2);
        std::byte buf[4];
        auto r = co_await pair->second.read_exact(buf);
        REQUIRE(r);
        pair_got = text(buf);
    };
    coev::spawn(loop, server());
    coev::spawn(loop, client());
    loop.run();
    ::unlink(path.c_str());
    CHECK(got == "unix");
    CHECK(pair_got == "pair");
}

TEST_CASE("socket options can be set and read back") {
    auto s = coev::net::socket::open(AF_INET, SOCK_STREAM);
    REQUIRE(s);
    CHECK(s->set_reuseaddr(true));
    CHECK(s->set_reuseport(true));
    CHECK(s->set_nodelay(true));
    CHECK(s->set_keepalive(true));
    CHECK(s->set_linger(std::chrono::seconds(0)));
    CHECK(s->set_linger(std::nullopt));
    CHECK(s->set_recv_buffer(64 * 1024));
    CHECK(*s->recv_buffer() >= 64 * 1024);
    CHECK(s->set_send_buffer(32 * 1024));
    CHECK(*s->send_buffer() >= 32 * 1024);
    CHECK(*s->option(SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(s->set_v6only(true).error() == std::errc::no_protocol_option);  // not IPv6
    auto s6 = coev::net::socket::open(AF_INET6, SOCK_STREAM);
    REQUIRE(s6);
    CHECK(s6->set_v6only(true));
}

TEST_CASE("sockets are opened, and connections accepted, non-blocking and close-on-exec") {
    auto flags_ok = [](int fd) {
        return (::fcntl(fd, F_GETFL) & O_NONBLOCK) && (::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    };
    auto s = coev::net::socket::open(AF_INET, SOCK_STREAM);
    REQUIRE(s);
    CHECK(flags_ok(s->native_handle()));
    coev::event_loop loop;
    watchdog dog(loop);
    bool accepted_ok = false, connected_ok = false;
    auto run = [&]() -> coev::task<> {
        auto l = tcp_listener::bind(*endpoint::parse("127.0.0.1:0"));
        REQUIRE(l);
        auto c = co_await tcp_stream::connect(*l->local_endpoint(), 5s);
        REQUIRE(c);
        connected_ok = flags_ok(c->native_handle());
        auto a = co_await l->accept();
        REQUIRE(a);
        accepted_ok = flags_ok(a->stream.native_handle());
    };
    coev::spawn(loop, run());
    loop.run();
    CHECK(connected_ok);
    CHECK(accepted_ok);
}

TEST_CASE("a Unix connect to a full backlog fails with EAGAIN instead of a false success") {
    coev::event_loop loop;
    watchdog dog(loop);
    const std::string path = "/tmp/coev-net-backlog-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    auto ep = endpoint::unix_path(path);
    REQUIRE(ep);
    auto l = unix_listener::bind(*ep, {.backlog = 0});
    REQUIRE(l);
    std::vector<std::error_code> results;
    auto run = [&]() -> coev::task<> {
        std::vector<unix_stream> keep;
        for (int i = 0; i < 4; ++i) {  // nobody accepts: the queue fills
            auto s = co_await unix_stream::connect(*ep);
            results.push_back(s ? std::error_code() : s.error());
            if (s) keep.push_back(std::move(*s));
        }
    };
    coev::spawn(loop, run());
    loop.run();
    ::unlink(path.c_str());
    REQUIRE(results.size() == 4);
    CHECK_FALSE(results.front());  // the first fits
    CHECK(results.back() == std::errc::resource_unavailable_try_again);
}

TEST_CASE("set_linger refuses a negative time and one past what the kernel holds") {
    auto s = coev::net::socket::open(AF_INET, SOCK_STREAM);
    REQUIRE(s);
    CHECK(s->set_linger(std::chrono::seconds(-1)).error() == std::errc::invalid_argument);
    CHECK(s->set_linger(std::chrono::seconds(10'000'000'000LL)).error() ==
          std::errc::invalid_argument);
    CHECK(s->set_linger(std::chrono::seconds(5)));
    CHECK(s->set_linger(std::nullopt));
}
