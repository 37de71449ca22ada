// examples/echo_server.cpp
// The libevent book's evconnlistener echo server (seed 001, 8.6) as coroutines: a listener, and
// per connection a buffered stream whose input moves to its output (no copy) and is flushed.
// Listener errors (out of descriptors...) go to an error hook, as evconnlistener_set_error_cb.
//   echo_server [PORT]        serves 0.0.0.0:PORT (9876) until Ctrl-C
//   echo_server --selftest    serves a loopback port, echoes a few lines to itself, exits
#include <coev/net.hpp>
#include <coev/runtime.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using coev::net::buffered_stream;
using coev::net::tcp_stream;

coev::task<> echo(tcp_stream s) {
    buffered_stream<tcp_stream> conn(std::move(s));
    for (;;) {
        auto n = co_await conn.fill();  // the read callback: some bytes arrived
        if (!n || *n == 0) break;       // BEV_EVENT_ERROR or BEV_EVENT_EOF
        conn.output().append(std::move(conn.input()));  // evbuffer_add_buffer
        auto flushed = co_await conn.flush();
        if (!flushed) break;
    }
    // bufferevent_free with BEV_OPT_CLOSE_ON_FREE: the stream closes as `conn` goes.
}

coev::task<> serve(coev::net::tcp_listener& listener) {
    listener.set_error_handler([](std::error_code e) {
        std::fprintf(stderr, "Got an error %d (%s) on the listener.\n", e.value(),
                     e.message().c_str());
    });
    coev::task_group connections;
    for (;;) {
        auto c = co_await listener.accept();
        if (!c) break;  // cancelled or closed
        connections.spawn(echo(std::move(c->stream)));
    }
    connections.request_stop();
    (void)co_await connections.join();
}

// A signal_set's wait is not movable; a task around it can race the server in when_any.
coev::task<> until(coev::signal_set& quit) { (void)co_await quit.wait(); }

coev::task<int> run_server(coev::net::tcp_listener& listener) {
    coev::signal_set quit{SIGINT, SIGTERM};
    auto done = co_await coev::when_any(serve(listener), until(quit));
    (void)done;
    std::printf("bye\n");
    co_return 0;
}

coev::task<int> selftest(coev::net::tcp_listener& listener) {
    auto client = [&]() -> coev::task<bool> {
        auto s = co_await tcp_stream::connect(*listener.local_endpoint());
        if (!s) co_return false;
        buffered_stream<tcp_stream> c(std::move(*s));
        for (std::string_view line : {"hello", "echo", "world"}) {
            auto w = co_await c.write(std::string(line) + "\n");
            auto back = co_await c.read_line(coev::net::eol_style::lf);
            if (!w || !back || *back != line) co_return false;
            std::printf("echoed: %s\n", back->c_str());
        }
        co_return true;
    };
    auto done = co_await coev::when_any(serve(listener), client());
    co_return done.index() == 1 && std::get<1>(done) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string_view arg = argc > 1 ? argv[1] : "";
    const bool self = arg == "--selftest";
    const int port = self ? 0 : argc > 1 ? std::atoi(argv[1]) : 9876;
    if (port < 0 || port > 65535 || (!self && argc > 1 && port == 0)) {
        std::puts("Invalid port");
        return 1;
    }
    auto at = coev::net::endpoint::parse(self ? "127.0.0.1:0"
                                              : "0.0.0.0:" + std::to_string(port));
    auto listener = coev::net::tcp_listener::bind(*at);
    if (!listener) {
        std::fprintf(stderr, "Couldn't create listener: %s\n", listener.error().message().c_str());
        return 1;
    }
    return coev::run(self ? selftest(*listener) : run_server(*listener));
}
