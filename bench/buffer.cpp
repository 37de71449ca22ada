// bench/buffer.cpp
// coev::net::buffer on evbuffer's home ground; bench/libevent/buffer.c is its twin (same data,
// same phases, same output). Each phase prints "<phase> ns_per_op=<median of rounds>".
//   buffer [-r ROUNDS]
#include <coev/net/buffer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int ops = 1'000'000;

// The same pseudo-random line lengths as the C twin (an LCG both implement).
std::vector<std::string> make_lines() {
    std::vector<std::string> lines;
    lines.reserve(ops);
    unsigned seed = 12345;
    for (int i = 0; i < ops; ++i) {
        seed = seed * 1103515245u + 12345u;
        const std::size_t len = 8 + (seed >> 16) % 120;
        std::string l(len, char('a' + i % 26));
        l += "\r\n";
        lines.push_back(std::move(l));
    }
    return lines;
}

template <class F> double time_ns(F f) {
    const auto t0 = clock_type::now();
    f();
    return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0)
                      .count());
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 5;
    if (argc == 3 && !std::strcmp(argv[1], "-r")) rounds = std::atoi(argv[2]);
    const auto lines = make_lines();
    const char record[] = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: text/**\r\n\r\n";
    static_assert(sizeof record - 1 == 64);
    std::vector<double> append, readln, cycle;
    std::size_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
        {
            coev::net::buffer b;
            append.push_back(time_ns([&] {
                for (int i = 0; i < ops; ++i) b.append(std::string_view(record, 64));
                b.drain(b.size());
            }) / ops);
        }
        {
            coev::net::buffer b;
            for (const auto& l : lines) b.append(l);
            readln.push_back(time_ns([&] {
                while (auto l = b.read_line(coev::net::eol_style::crlf)) sink += l->size();
            }) / ops);
        }
        {
            coev::net::buffer b;
            char chunk[512];
            std::memset(chunk, 'c', sizeof chunk);
            cycle.push_back(time_ns([&] {
                for (int i = 0; i < ops / 8; ++i) {
                    for (int k = 0; k < 8; ++k) b.append(std::string_view(chunk, sizeof chunk));
                    b.drain(4096);
                }
            }) / ops);
        }
    }
    std::printf("append ns_per_op=%.2f\n", median(append));
    std::printf("read_line ns_per_op=%.2f\n", median(readln));
    std::printf("append_drain ns_per_op=%.2f\n", median(cycle));
    return sink == 0;  // keeps the line reads from being optimised away
}
