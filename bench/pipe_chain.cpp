// bench/pipe_chain.cpp
// libevent's test/bench.c with coroutines: N socketpairs, A active, W writes; each read triggers
// a write on the next pair. Prints the median time per round; bench/libevent/pipe_chain.c is
// its libevent twin (same flags, same last line).
#include "pipe_chain.hpp"

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    const pipe_chain::options o = pipe_chain::parse(
        argc, argv, "pipe_chain -n N -a A -w W -r ROUNDS [--backend NAME]");
    pipe_chain::raise_nofile("pipe_chain", 2 * o.pipes + 64);

    coev::event_loop loop(pipe_chain::config_for(o.backend));
    pipe_chain::require_backend("pipe_chain", loop, o.backend);
    std::fprintf(stderr, "pipe_chain: coev %.*s, backend %.*s\n", int(coev::version().size()),
                 coev::version().data(), int(loop.backend_name().size()),
                 loop.backend_name().data());

    pipe_chain::chain c;
    if (!pipe_chain::start(loop, c, o.pipes)) return 2;
    pipe_chain::round(loop, c, o.active, o.writes);  // warm-up
    std::vector<double> times;
    for (long r = 0; r < o.rounds; ++r)
        times.push_back(pipe_chain::round(loop, c, o.active, o.writes));
    pipe_chain::finish(loop, c);
    std::printf("pipe_bench n=%ld a=%ld w=%ld us_per_round=%.2f\n", o.pipes, o.active, o.writes,
                pipe_chain::median(times));
    return 0;
}
