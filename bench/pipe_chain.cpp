// bench/pipe_chain.cpp
// libevent's test/bench.c with coroutines: N socketpairs, A active, W writes; each read triggers
// a write on the next pair. Prints the median time per round; bench/libevent/pipe_chain.c is
// its libevent twin (same flags, same last line).
#include <coev/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <vector>

namespace {

struct chain {
    std::vector<coev::unique_fd> read_end, write_end;
    long count = 0;    // bytes read this round
    long writes = 0;   // writes still to do this round
    long fired = 0;    // bytes sent this round
};

// One persistent reader per pair, as libevent's EV_READ|EV_PERSIST event with read_cb.
coev::task<> reader(chain& c, std::size_t idx) {
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

void raise_nofile(long needed) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= rlim_t(needed)) return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rlim_t(needed)) {
        std::fprintf(stderr,
                     "pipe_chain: need %ld file descriptors but the hard RLIMIT_NOFILE is %llu; "
                     "lower -n\n",
                     needed, static_cast<unsigned long long>(rl.rlim_max));
        std::exit(2);
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        std::perror("pipe_chain: setrlimit");
        std::exit(2);
    }
}

double now_us() {
    using namespace std::chrono;
    return double(duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count()) /
           1e3;
}

[[noreturn]] void usage() {
    std::fprintf(stderr, "usage: pipe_chain -n N -a A -w W -r ROUNDS [--backend NAME]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    long num_pipes = 100, num_active = 1, num_writes = 100, rounds = 25;
    std::string backend;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "-n") num_pipes = std::atol(v);
        else if (a == "-a") num_active = std::atol(v);
        else if (a == "-w") num_writes = std::atol(v);
        else if (a == "-r") rounds = std::atol(v);
        else if (a == "--backend" || a == "-b") backend = v;
        else usage();
    }
    if (num_pipes < 1 || num_active < 1 || num_active > num_pipes || rounds < 1) usage();
    raise_nofile(2 * num_pipes + 64);

    coev::loop_config cfg;
    cfg.prefer = backend;
    cfg.ignore_env = !backend.empty();  // the flag wins over COEV_BACKEND
    coev::event_loop loop(cfg);
    if (!backend.empty() && loop.backend_name() != backend) {
        std::fprintf(stderr, "pipe_chain: backend '%s' unavailable (got %.*s)\n", backend.c_str(),
                     int(loop.backend_name().size()), loop.backend_name().data());
        return 2;
    }
    std::fprintf(stderr, "pipe_chain: coev %.*s, backend %.*s\n", int(coev::version().size()),
                 coev::version().data(), int(loop.backend_name().size()),
                 loop.backend_name().data());

    chain c;
    for (long i = 0; i < num_pipes; ++i) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            std::perror("pipe_chain: socketpair");
            return 2;
        }
        c.read_end.emplace_back(sv[0]);
        c.write_end.emplace_back(sv[1]);
    }
    for (std::size_t i = 0; i < c.read_end.size(); ++i) coev::spawn(loop, reader(c, i));
    loop.poll();  // every reader reaches its first wait

    auto round = [&] {
        const long space = num_pipes / num_active;
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
    };

    round();  // warm-up
    std::vector<double> times;
    for (long r = 0; r < rounds; ++r) times.push_back(round());
    std::sort(times.begin(), times.end());
    double median = times.size() % 2 ? times[times.size() / 2]
                                     : (times[times.size() / 2 - 1] + times[times.size() / 2]) / 2;

    // Closing wakes every reader with error::closed; run() returns once they have all ended.
    struct closer {
        chain& c;
        void operator()() {
            for (auto& fd : c.read_end) fd.close();
        }
    };
    loop.post(closer{c});
    loop.run();
    std::printf("pipe_bench n=%ld a=%ld w=%ld us_per_round=%.2f\n", num_pipes, num_active,
                num_writes, median);
    return 0;
}
