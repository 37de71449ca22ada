// examples/bufferevent_quick_start.cpp
// Seed 003's "using bufferevent" quick start as coroutines: a server that answers every message
// with "I have received the msg: ...", and a client that sends what is typed on stdin and prints
// what the server says. A buffered_stream stands where the bufferevent stood.
//   bufferevent_quick_start server [PORT]        (9999)
//   bufferevent_quick_start client HOST PORT
//   bufferevent_quick_start --selftest            (server and client in one process)
#include <coev/net.hpp>
#include <coev/runtime.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

using coev::net::buffered_stream;
using coev::net::tcp_stream;

constexpr std::string_view reply_prefix = "I have received the msg: ";

// socket_read_cb: whatever arrived is one message; the reply goes out through the output buffer.
coev::task<> serve_client(tcp_stream s) {
    buffered_stream<tcp_stream> bev(std::move(s));
    for (;;) {
        auto n = co_await bev.fill();
        if (!n) {
            std::printf("some other error\n");
            break;
        }
        if (*n == 0) {
            std::printf("connection closed\n");
            break;
        }
        std::string msg = bev.input().to_string();
        bev.input().drain(msg.size());
        std::printf("recv the client msg: %s", msg.c_str());
        auto w = co_await bev.write(std::string(reply_prefix) + msg);
        if (!w) break;
    }
}

coev::task<> serve(coev::net::tcp_listener& listener) {
    coev::task_group clients;
    for (;;) {
        auto c = co_await listener.accept();
        if (!c) break;
        std::printf("accept a client %d\n", c->stream.native_handle());
        clients.spawn(serve_client(std::move(c->stream)));
    }
    clients.request_stop();
    (void)co_await clients.join();
}

// cmd_msg_cb and server_msg_cb: stdin lines go to the server, its replies to stdout.
coev::task<int> client(coev::net::endpoint at, int input_fd) {
    auto s = co_await tcp_stream::connect(at);
    if (!s) {
        std::fprintf(stderr, "connect: %s\n", s.error().message().c_str());
        co_return 1;
    }
    buffered_stream<tcp_stream> bev(std::move(*s));
    auto from_server = [&]() -> coev::task<> {
        for (;;) {
            auto line = co_await bev.read_line(coev::net::eol_style::lf);
            if (!line) break;
            std::printf("recv %s from server\n", line->c_str());
        }
        std::printf("the server closed the connection\n");
    };
    auto from_stdin = [&]() -> coev::task<> {
        char buf[1024];
        // A plain read() after the wait: a non-blocking stdin would change the shell's too.
        for (;;) {
            auto ready = co_await coev::wait_readable(input_fd);
            if (!ready) break;
            const ssize_t n = ::read(input_fd, buf, sizeof buf);
            if (n <= 0) break;  // Ctrl-D
            auto w = co_await bev.write(std::string_view(buf, std::size_t(n)));
            if (!w) break;
        }
        (void)bev.shutdown_write();  // the server sees EOF once it has answered everything
    };
    co_await coev::when_all(from_server(), from_stdin());
    co_return 0;
}

// A signal_set's wait is not movable; a task around it can race the server in when_any.
coev::task<> until(coev::signal_set& quit) { (void)co_await quit.wait(); }

coev::task<int> run_server(coev::net::tcp_listener& listener) {
    coev::signal_set quit{SIGINT, SIGTERM};
    (void)co_await coev::when_any(serve(listener), until(quit));
    co_return 0;
}

coev::task<int> selftest() {
    auto listener = coev::net::tcp_listener::bind(*coev::net::endpoint::parse("127.0.0.1:0"));
    if (!listener) co_return 1;
    int fds[2];
    if (::pipe(fds) != 0) co_return 1;
    coev::unique_fd in(fds[0]), out(fds[1]);
    const std::string typed = "hello\nbufferevent\n";
    if (::write(out.get(), typed.data(), typed.size()) != ssize_t(typed.size())) co_return 1;
    out.close();  // then Ctrl-D
    auto done = co_await coev::when_any(serve(*listener),
                                        client(*listener->local_endpoint(), in.get()));
    co_return done.index() == 1 ? std::get<1>(done) : 1;
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: bufferevent_quick_start server [PORT] | client HOST PORT | "
                         "--selftest\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string_view mode = argc > 1 ? argv[1] : "";
    if (mode == "--selftest") return coev::run(selftest());
    if (mode == "server") {
        const int port = argc > 2 ? std::atoi(argv[2]) : 9999;
        auto listener = coev::net::tcp_listener::bind(
            *coev::net::endpoint::parse("0.0.0.0:" + std::to_string(port)));
        if (!listener) {
            std::fprintf(stderr, "tcp_server_init error: %s\n",
                         listener.error().message().c_str());
            return 1;
        }
        return coev::run(run_server(*listener));
    }
    if (mode == "client" && argc == 4) {
        auto at = coev::net::endpoint::parse(std::string(argv[2]) + ":" + argv[3]);
        if (!at) usage();
        return coev::run(client(*at, STDIN_FILENO));
    }
    usage();
}
