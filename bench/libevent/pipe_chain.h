/*
 * bench/libevent/pipe_chain.h -- the libevent twin's chain as functions, so that
 * bench/pipe_chain_paired can run it in the same process as coev's (pipe_chain.c
 * built with -DPIPE_CHAIN_NO_MAIN).
 */
#ifndef COEV_BENCH_LIBEVENT_PIPE_CHAIN_H
#define COEV_BENCH_LIBEVENT_PIPE_CHAIN_H

#ifdef __cplusplus
extern "C" {
#endif

/* N socketpairs, each with a persistent read event, on a base using BACKEND (epoll, poll,
 * select); exits 2 when that backend cannot be had. */
void lev_chain_start(long n, const char *backend);
/* The same in steps: the base and room for N pairs, then one pair at a time (N times). */
void lev_chain_init(long n, const char *backend);
void lev_chain_add(void);
/* One round (A bytes sent, W forwards); its time in microseconds. */
double lev_chain_round(int num_active, long num_writes);
/* Frees it all; returns the number of unexpected send/recv results. */
long lev_chain_finish(void);

#ifdef __cplusplus
}
#endif

#endif
