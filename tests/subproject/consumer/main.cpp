// tests/subproject/consumer/main.cpp
// The parent's program: includes coev the way users do and runs one task; exit 0 iff it works.
#include <coev/net.hpp>
#include <coev/runtime.hpp>

#include <chrono>
#include <cstdio>
#include <string_view>

coev::task<int> answer() {
    auto slept = co_await coev::sleep_for(std::chrono::milliseconds(1));
    if (!slept) co_return -1;
    // coev-net through the same dependency('coev'): a line across an in-memory pair.
    auto [a, b] = coev::net::stream_pair::make();
    coev::net::buffered_stream<coev::net::stream_pair::end> in(std::move(b));
    auto w = co_await a.write_some(std::as_bytes(std::span("42\n", 3)));
    auto line = co_await in.read_line(coev::net::eol_style::lf);
    co_return w && line && *line == "42" ? 42 : -2;
}

int main() {
    const int got = coev::run(answer());
    const std::string_view linked = coev::version();
    std::printf("consumer: coev %.*s (headers %s) returned %d\n", int(linked.size()),
                linked.data(), COEV_VERSION_STRING, got);
    return got == 42 ? 0 : 1;
}
