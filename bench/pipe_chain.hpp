// bench/pipe_chain.hpp
// The coev side of pipe_chain (libevent's test/bench.c with coroutines), shared by
// bench/pipe_chain and bench/pipe_chain_paired: N socketpairs, one reader task each; a round
// sends A bytes and each read forwards one to the next pair until W writes are done.
#pragma once

#include <coev/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sys/resource.h>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace pipe_chain {

struct chain {
    std::vector<coev::unique_fd> read_end, write_end;
    long count = 0;    // bytes read this round
    long writes = 0;   // writes still to do this round
    long fired = 0;    // bytes sent this round
};

// One persistent reader per pair, as libevent's EV_READ|EV_PERSIST event with read_cb.
inline coev::task<> reader(chain& c, std::size_t idx) {
    std::byte buf[64];
    const std::size_t n = c.read_end.size();
    const std::byte e[1] = {std::byte{'e'}};
    for (;;) {
        auto got = co_await coev::read_some(c.read_end[idx].get(), buf);
        if (!got || *got == 0) co_return;  // closed at the end of the benchmark
        c.count += long(*got);
        if (c.writes > 0) {
            // Counted before the write is awaited: on a completion backend it finishes in a
            // later iteration, and the round must not look finished while bytes are in flight.
            --c.writes;
            ++c.fired;
            std::size_t next = idx + 1 == n ? 0 : idx + 1;
            auto w = co_await coev::write_some(c.write_end[next].get(), e);
            if (!w) std::fprintf(stderr, "pipe_chain: write: %s\n", w.error().message().c_str());
        }
    }
}

/// The flags both programs take: -n N -a A -w W -r ROUNDS [--backend NAME].
struct options {
    long pipes = 100, active = 1, writes = 100, rounds = 25;
    std::string backend;
};
/// Parses them; a bad or missing value prints `usage_line` and exits 2.
inline options parse(int argc, char** argv, const char* usage_line) {
    options o;
    auto usage = [&] {
        std::fprintf(stderr, "usage: %s\n", usage_line);
        std::exit(2);
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "-n") o.pipes = std::atol(v);
        else if (a == "-a") o.active = std::atol(v);
        else if (a == "-w") o.writes = std::atol(v);
        else if (a == "-r") o.rounds = std::atol(v);
        else if (a == "--backend" || a == "-b") o.backend = v;
        else usage();
    }
    if (o.pipes < 1 || o.active < 1 || o.active > o.pipes || o.rounds < 1) usage();
    return o;
}

/// Raises the soft RLIMIT_NOFILE to `needed`; exits with a clear message when the hard limit
/// is lower.
inline void raise_nofile(const char* prog, long needed) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= rlim_t(needed)) return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rlim_t(needed)) {
        std::fprintf(stderr,
                     "%s: need %ld file descriptors but the hard RLIMIT_NOFILE is %llu; "
                     "lower -n\n",
                     prog, needed, static_cast<unsigned long long>(rl.rlim_max));
        std::exit(2);
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        std::perror("setrlimit");
        std::exit(2);
    }
}

inline double now_us() {
    using namespace std::chrono;
    return double(duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count()) /
           1e3;
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

/// One more pair (its reader comes with spawn_readers()).
inline bool add_pair(chain& c) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        std::perror("pipe_chain: socketpair");
        return false;
    }
    c.read_end.emplace_back(sv[0]);
    c.write_end.emplace_back(sv[1]);
    return true;
}

/// A reader per pair; the loop runs until every one waits.
inline void spawn_readers(coev::event_loop& loop, chain& c) {
    for (std::size_t i = 0; i < c.read_end.size(); ++i) coev::spawn(loop, reader(c, i));
    loop.poll();
}

/// Makes the pairs and their readers.
inline bool start(coev::event_loop& loop, chain& c, long num_pipes) {
    for (long i = 0; i < num_pipes; ++i)
        if (!add_pair(c)) return false;
    spawn_readers(loop, c);
    return true;
}

/// One round; its time in microseconds.
inline double round(coev::event_loop& loop, chain& c, long num_active, long num_writes) {
    const long space = long(c.read_end.size()) / num_active;
    c.fired = 0;
    for (long i = 0; i < num_active; ++i, ++c.fired)
        if (::send(c.write_end[std::size_t(i * space)].get(), "e", 1, 0) != 1)
            std::perror("pipe_chain: send");
    c.count = 0;
    c.writes = num_writes;
    double t0 = now_us();
    do {
        loop.poll();  // EVLOOP_ONCE | EVLOOP_NONBLOCK, as the twin
    } while (c.count != c.fired);
    return now_us() - t0;
}

/// Ends the readers: closing wakes each with error::closed; run() returns once all have ended.
inline void finish(coev::event_loop& loop, chain& c) {
    struct closer {
        chain& c;
        void operator()() {
            for (auto& fd : c.read_end) fd.close();
        }
    };
    loop.post(closer{c});
    loop.run();
}

/// The loop `--backend` asks for (it wins over COEV_BACKEND), or exit 2 when it is unavailable.
inline coev::loop_config config_for(const std::string& backend) {
    coev::loop_config cfg;
    cfg.prefer = backend;
    cfg.ignore_env = !backend.empty();
    return cfg;
}
inline void require_backend(const char* prog, coev::event_loop& loop, const std::string& backend) {
    if (!backend.empty() && loop.backend_name() != backend) {
        std::fprintf(stderr, "%s: backend '%s' unavailable (got %.*s)\n", prog, backend.c_str(),
                     int(loop.backend_name().size()), loop.backend_name().data());
        std::exit(2);
    }
}

}  // namespace pipe_chain
