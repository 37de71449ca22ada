// bench/echo_server.cpp
// The coev echo server of bench/echo.py: one loop, one task per connection. An idle connection
// holds no buffer (it waits with wait_readable() and reads only once bytes are there, into the
// loop's scratch space); a peer that does not read its echoes stops being read (its unsent
// bytes move to a buffer of its own until the write completes).
//   echo_server --port P [--backend NAME] [--host ADDR]
// Serves until SIGINT or SIGTERM, then closes every connection and exits 0.
#include <coev/net/tcp_listener.hpp>
#include <coev/runtime.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <sys/resource.h>

namespace {

using coev::net::tcp_stream;

// Where every connection reads into: a connection needs it only between a read and the write
// that follows, with no suspension in between.
constexpr std::size_t scratch_size = 64 * 1024;

bool would_block(const std::error_code& e) noexcept {
    return e == std::errc::resource_unavailable_try_again;
}

coev::task<> echo(tcp_stream s, std::byte* scratch) {
    for (;;) {
        auto ready = co_await s.wait_readable();
        if (!ready) co_return;
        auto n = s.try_read_some({scratch, scratch_size});
        if (!n) {
            if (would_block(n.error())) continue;
            co_return;  // reset: nothing left to answer
        }
        if (*n == 0) co_return;  // FIN after everything was echoed: close
        auto w = s.try_write_some({scratch, *n});
        std::size_t sent = w ? *w : 0;
        if (!w && !would_block(w.error())) co_return;
        if (sent < *n) {
            // The peer is slow: keep the rest and stop reading it until the write is done.
            const std::size_t left = *n - sent;
            std::unique_ptr<std::byte[]> rest(new std::byte[left]);
            std::copy(scratch + sent, scratch + *n, rest.get());
            auto all = co_await s.write({rest.get(), left});
            if (!all) co_return;
        }
    }
}

coev::task<int> serve(coev::net::endpoint at) {
    coev::signal_set quit{SIGINT, SIGTERM};
    auto listener = coev::net::tcp_listener::bind(at, {.backlog = 4096});
    if (!listener) {
        std::fprintf(stderr, "echo_server: bind %s: %s\n", at.to_string().c_str(),
                     listener.error().message().c_str());
        co_return 2;
    }
    std::unique_ptr<std::byte[]> scratch(new std::byte[scratch_size]);
    coev::task_group connections;
    auto acceptor = [&]() -> coev::task<> {
        for (;;) {
            auto c = co_await listener->accept();
            if (!c) co_return;  // cancelled: we are stopping
            (void)c->stream.set_nodelay(true);
            connections.spawn(echo(std::move(c->stream), scratch.get()));
        }
    };
    coev::task_group accepting;
    accepting.spawn(acceptor());
    std::fprintf(stderr, "echo_server: listening on %s\n", at.to_string().c_str());
    auto signo = co_await quit.wait();
    accepting.request_stop();
    connections.request_stop();
    auto a = co_await accepting.join();
    auto c = co_await connections.join();
    (void)a;
    (void)c;
    std::fprintf(stderr, "echo_server: %s, stopped\n", signo ? strsignal(*signo) : "error");
    co_return 0;
}

void raise_nofile() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: echo_server --port P [--backend NAME] [--host ADDR]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1", backend;
    long port = -1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "--port" || a == "-p") port = std::atol(v);
        else if (a == "--backend" || a == "-b") backend = v;
        else if (a == "--host") host = v;
        else usage();
    }
    if (port < 0 || port > 65535) usage();
    auto addr = coev::net::address::parse(host);
    if (!addr) usage();
    raise_nofile();

    coev::loop_config cfg;
    cfg.prefer = backend;
    cfg.ignore_env = !backend.empty();  // the flag wins over COEV_BACKEND
    coev::event_loop loop(cfg);
    if (!backend.empty() && loop.backend_name() != backend) {
        std::fprintf(stderr, "echo_server: backend '%s' unavailable (got %.*s)\n", backend.c_str(),
                     int(loop.backend_name().size()), loop.backend_name().data());
        return 2;
    }
    std::fprintf(stderr, "echo_server: coev %.*s, backend %.*s\n", int(coev::version().size()),
                 coev::version().data(), int(loop.backend_name().size()),
                 loop.backend_name().data());
    int status = 1;
    auto main_task = [&]() -> coev::task<> {
        status = co_await serve(coev::net::endpoint(*addr, std::uint16_t(port)));
    };
    coev::spawn(loop, main_task());
    loop.run();
    return status;
}
