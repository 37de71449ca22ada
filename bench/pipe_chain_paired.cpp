// bench/pipe_chain_paired.cpp
// pipe_chain for coev and libevent in one process, their rounds taking turns (coev first in
// odd rounds, libevent first in even ones), each on its own N socketpairs. The ratio is the
// median of the per-round ratios: two rounds run a few milliseconds apart see the same
// machine, where two processes run seconds apart may not (on the machine this was written on
// absolute figures moved by 20 % between runs, this ratio by 2-3 %).
#include "libevent/pipe_chain.h"
#include "pipe_chain.hpp"

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    pipe_chain::options o = pipe_chain::parse(
        argc, argv, "pipe_chain_paired -n N -a A -w W -r ROUNDS [--backend epoll|poll|select]");
    if (o.backend.empty()) o.backend = "epoll";
    const std::string& backend = o.backend;
    if (backend != "epoll" && backend != "poll" && backend != "select") {
        std::fprintf(stderr, "pipe_chain_paired: libevent has epoll, poll and select\n");
        return 2;
    }
    // Both chains are open at once; libevent's select aborts at any fd >= 1024.
    const long fds = 4 * o.pipes + 64;
    if (backend == "select" && fds > 1024) {
        std::fprintf(stderr, "pipe_chain_paired: select needs 4*N+64 <= 1024 (-n <= 240)\n");
        return 2;
    }
    pipe_chain::raise_nofile("pipe_chain_paired", fds);

    coev::event_loop loop(pipe_chain::config_for(backend));
    pipe_chain::require_backend("pipe_chain_paired", loop, backend);
    // The two chains' pairs are made in turns: neither gets the lower fd numbers or the
    // earlier kernel objects (whichever chain was made first measured 2 % faster).
    pipe_chain::chain c;
    lev_chain_init(o.pipes, backend.c_str());
    for (long i = 0; i < o.pipes; ++i) {
        if (!pipe_chain::add_pair(c)) return 2;
        lev_chain_add();
    }
    pipe_chain::spawn_readers(loop, c);

    const int active = int(o.active);
    pipe_chain::round(loop, c, o.active, o.writes);  // warm-up, both
    lev_chain_round(active, o.writes);
    std::vector<double> coev_us, lev_us, ratio;
    for (long r = 0; r < o.rounds; ++r) {
        double x, y;
        if (r % 2) {
            x = pipe_chain::round(loop, c, o.active, o.writes);
            y = lev_chain_round(active, o.writes);
        } else {
            y = lev_chain_round(active, o.writes);
            x = pipe_chain::round(loop, c, o.active, o.writes);
        }
        coev_us.push_back(x);
        lev_us.push_back(y);
        ratio.push_back(x / y);
    }
    pipe_chain::finish(loop, c);
    if (long bad = lev_chain_finish()) {
        std::fprintf(stderr, "pipe_chain_paired: libevent: %ld unexpected send/recv results\n",
                     bad);
        return 1;
    }
    std::printf("pipe_pair n=%ld a=%ld w=%ld backend=%s coev_us=%.2f libevent_us=%.2f "
                "ratio=%.4f\n",
                o.pipes, o.active, o.writes, backend.c_str(), pipe_chain::median(coev_us),
                pipe_chain::median(lev_us), pipe_chain::median(ratio));
    return 0;
}
