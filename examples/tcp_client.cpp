// examples/tcp_client.cpp
// Seed 001's TCP example (示例 / TCP) as coroutines: a client that connects to 127.0.0.1:6666,
// sends each line typed on stdin, and prints what the server says; and the server it talks to,
// which prints each message and answers it.
//   tcp_client server [PORT]     (6666)
//   tcp_client client [PORT]
//   tcp_client --selftest        (both in one process, stdin replaced by a pipe)
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

coev::task<> serve_client(tcp_stream s) {
    buffered_stream<tcp_stream> bev(std::move(s));
    for (;;) {
        auto line = co_await bev.read_line(coev::net::eol_style::lf);
        if (!line) break;
        std::printf("[server]client say: %s\n", line->c_str());
        auto w = co_await bev.write("server got: " + *line + "\n");
        if (!w) break;
    }
    std::printf("[server]connection close\n");
}

coev::task<> serve(coev::net::tcp_listener& listener) {
    coev::task_group clients;
    for (;;) {
        auto c = co_await listener.accept();
        if (!c) break;
        clients.spawn(serve_client(std::move(c->stream)));
    }
    clients.request_stop();
    (void)co_await clients.join();
}

coev::task<int> client(coev::net::endpoint at, int input_fd) {
    auto s = co_await tcp_stream::connect(at);  // bufferevent_socket_connect
    if (!s) {
        std::printf("[client]connection error\n");
        co_return 1;
    }
    std::printf("[client]connection success\n");  // BEV_EVENT_CONNECTED
    buffered_stream<tcp_stream> bev(std::move(*s));
    auto read_cb = [&]() -> coev::task<> {
        for (;;) {
            auto line = co_await bev.read_line(coev::net::eol_style::lf);
            if (!line) break;
            std::printf("[client]server say: %s\n", line->c_str());
        }
        std::printf("[client]connection close\n");  // BEV_EVENT_EOF
    };
    auto send_cb = [&]() -> coev::task<> {  // the EV_READ|EV_PERSIST event on stdin
        char buf[1024];
        for (;;) {
            auto ready = co_await coev::wait_readable(input_fd);
            if (!ready) break;
            const ssize_t n = ::read(input_fd, buf, sizeof buf);
            if (n <= 0) break;
            auto w = co_await bev.write(std::string_view(buf, std::size_t(n)));
            if (!w) break;
        }
        (void)bev.shutdown_write();
    };
    co_await coev::when_all(read_cb(), send_cb());
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
    const std::string typed = "first line\nsecond line\n";
    if (::write(out.get(), typed.data(), typed.size()) != ssize_t(typed.size())) co_return 1;
    out.close();
    auto done = co_await coev::when_any(serve(*listener),
                                        client(*listener->local_endpoint(), in.get()));
    co_return done.index() == 1 ? std::get<1>(done) : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string_view mode = argc > 1 ? argv[1] : "";
    const int port = argc > 2 ? std::atoi(argv[2]) : 6666;
    if (mode == "--selftest") return coev::run(selftest());
    if (mode == "server") {
        auto listener = coev::net::tcp_listener::bind(
            *coev::net::endpoint::parse("127.0.0.1:" + std::to_string(port)));
        if (!listener) {
            std::fprintf(stderr, "bind: %s\n", listener.error().message().c_str());
            return 1;
        }
        return coev::run(run_server(*listener));
    }
    if (mode == "client")
        return coev::run(client(*coev::net::endpoint::parse("127.0.0.1:" + std::to_string(port)),
                                STDIN_FILENO));
    std::fprintf(stderr, "usage: tcp_client server [PORT] | client [PORT] | --selftest\n");
    return 2;
}
