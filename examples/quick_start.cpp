// examples/quick_start.cpp
// Seed 003's quick start: a TCP server that answers every message with "I have received the
// msg: ...", one task per client, plus a task printing what is typed on stdin.
#include <coev/runtime.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view reply_prefix = "I have received the msg: ";

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

// socket/bind/listen on 127.0.0.1:port, non-blocking; port 0 lets the kernel pick one.
coev::unique_fd tcp_server_init(std::uint16_t port) {
    coev::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int on = 1;  // a restarted server may bind while old connections sit in TIME_WAIT
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const sockaddr_in sin = loopback(port);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sin), sizeof sin) < 0 ||
        ::listen(fd.get(), 16) < 0)
        return {};
    return fd;
}

coev::task<> serve_client(coev::unique_fd conn) {
    char msg[4096];
    for (;;) {
        auto n = co_await coev::read_some(conn.get(), std::as_writable_bytes(std::span(msg)));
        if (!n || *n == 0) break;  // error, cancel or the client left: the fd closes with us
        const std::string text(msg, *n);
        std::printf("recv the client msg : %s\n", text.c_str());
        const std::string reply = std::string(reply_prefix) + text;
        if (!co_await coev::write_all(conn.get(), std::as_bytes(std::span(reply)))) break;
    }
    std::printf("client %d closed\n", conn.get());
}

// The seed's EV_READ|EV_PERSIST accept event: wait until the listener is readable, accept.
coev::task<> serve(int listener) {
    coev::task_group clients;
    while (co_await coev::wait_readable(listener)) {
        coev::unique_fd conn(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!conn) {
            // Out of descriptors the connection stays queued and the listener readable: back
            // off instead of spinning (coev::net::tcp_listener does this, and more, for you).
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                std::perror("accept");
                (void)co_await coev::sleep_for(std::chrono::milliseconds(100));
            }
            continue;  // otherwise the client gave up before we got to it
        }
        std::printf("accept a client %d\n", conn.get());
        clients.spawn(serve_client(std::move(conn)));
    }
    clients.request_stop();  // we were cancelled: so are the clients
    (void)co_await clients.join();
}

// Plain read() after the wait: making our stdin non-blocking would change the shell's too.
coev::task<> echo_stdin() {
    char line[1024];
    while (co_await coev::wait_readable(STDIN_FILENO)) {
        const ssize_t n = ::read(STDIN_FILENO, line, sizeof line);
        if (n <= 0) break;  // Ctrl-D or no stdin at all: the server keeps running
        std::printf("you typed: %.*s", int(n), line);
    }
}

coev::task<int> server(int listener) {
    co_await coev::when_all(serve(listener), echo_stdin());
    co_return 0;
}

// The seed's client, for --selftest: connect, send one message, check the reply.
coev::task<bool> client(std::uint16_t port) {
    coev::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const sockaddr_in sin = loopback(port);
    ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sin), sizeof sin);  // in progress
    const std::string_view msg = "hello from the selftest";
    // Writable means connected; a failed connect shows up as the write's error.
    if (!co_await coev::wait_writable(fd.get()) ||
        !co_await coev::write_all(fd.get(), std::as_bytes(std::span(msg))))
        co_return false;
    const std::string want = std::string(reply_prefix) + std::string(msg);
    std::string got;
    char buf[256];
    while (got.size() < want.size()) {  // TCP may hand the reply over in pieces
        auto n = co_await coev::read_some(fd.get(), std::as_writable_bytes(std::span(buf)));
        if (!n || *n == 0) break;
        got.append(buf, *n);
    }
    std::printf("recv %s from server\n", got.c_str());
    co_return got == want;
}

coev::task<int> selftest(int listener) {
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len);
    // The client ends first and wins; when_any then cancels the server and waits for it.
    auto done = co_await coev::when_any(serve(listener), client(ntohs(bound.sin_port)));
    co_return done.index() == 1 && std::get<1>(done) ? 0 : 1;
}

}  // namespace

// Usage: quick_start [--port N] | --selftest
int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines show up at once when piped too
    const std::string_view opt = argc > 1 ? argv[1] : "";
    const bool self = opt == "--selftest";
    if (!(argc == 1 || self || (opt == "--port" && argc == 3))) {
        std::fprintf(stderr, "usage: %s [--port N] | --selftest\n", argv[0]);
        return 2;
    }
    const int port = self ? 0 : argc == 3 ? std::atoi(argv[2]) : 9999;
    coev::unique_fd listener = tcp_server_init(std::uint16_t(port));
    if (!listener) {
        std::perror("tcp_server_init error");
        return 1;
    }
    return coev::run(self ? selftest(listener.get()) : server(listener.get()));
}
