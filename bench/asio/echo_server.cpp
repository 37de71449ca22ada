// bench/asio/echo_server.cpp
// Asio's twin of bench/echo_server.cpp: standalone Asio with C++20 coroutines, one io_context on
// one thread, one coroutine per connection reading into its own buffer and writing it back
// (the idiom of Asio's own cpp20 echo example).
//   echo_server_asio --port P
// Exits 0 on SIGINT or SIGTERM, also with connections open.
#include <asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/resource.h>

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

awaitable<void> echo(tcp::socket s) {
    char data[4096];
    try {
        for (;;) {
            std::size_t n = co_await s.async_read_some(asio::buffer(data), use_awaitable);
            co_await asio::async_write(s, asio::buffer(data, n), use_awaitable);
        }
    } catch (const std::exception&) {  // EOF or reset: the connection ends
    }
}

awaitable<void> listen(tcp::acceptor& acceptor) {
    for (;;) {
        tcp::socket s = co_await acceptor.async_accept(use_awaitable);
        s.set_option(tcp::no_delay(true));
        asio::co_spawn(acceptor.get_executor(), echo(std::move(s)), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    int port = -1;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!std::strcmp(argv[i], "--port")) port = std::atoi(argv[i + 1]);
    if (port < 0 || port > 65535) {
        std::fprintf(stderr, "usage: echo_server_asio --port P\n");
        return 2;
    }
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
    asio::io_context ctx(1);
    tcp::acceptor acceptor(ctx);
    tcp::endpoint at(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
    acceptor.open(at.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(at);
    acceptor.listen(4096);
    asio::signal_set quit(ctx, SIGINT, SIGTERM);
    quit.async_wait([&](auto, int) { ctx.stop(); });
    asio::co_spawn(ctx, listen(acceptor), asio::detached);
    std::fprintf(stderr, "echo_server_asio: listening on 127.0.0.1:%d\n", port);
    ctx.run();
    std::fprintf(stderr, "echo_server_asio: stopped\n");
    return 0;
}
