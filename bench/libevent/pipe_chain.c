/*
 * pipe_chain_libevent -- libevent twin of the coev "pipe_chain" benchmark.
 *
 * Measures event-loop dispatch cost with libevent's classic test/bench.c
 * method: N AF_UNIX socketpairs, each with one persistent EV_READ event.
 * A round starts by writing one byte into A "active" pairs spaced N/A
 * apart; every read callback drains its socket and, while the write budget
 * W lasts, forwards one byte to the next pair ((i + 1) % N).  The timed part
 * of a round is the loop
 *
 *     do event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
 *     while (count != fired);
 *
 * i.e. until every byte sent has been read back.  One untimed warm-up round
 * is followed by ROUNDS timed rounds; the last line of stdout is
 *
 *     pipe_bench n=N a=A w=W us_per_round=X
 *
 * with X the median round time in microseconds.
 *
 * Usage: pipe_chain_libevent -n N -a A -w W -r ROUNDS
 *                            [--backend epoll|poll|select | -b NAME]
 *
 * Plain C against libevent 2.1; link with -levent_core.  Built with
 * -DPIPE_CHAIN_NO_MAIN it is the libevent half of bench/pipe_chain_paired
 * (pipe_chain.h).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "pipe_chain.h"

static int num_pipes;       /* N */
static int *pipes;          /* 2*N fds: pipes[2*i] read end, pipes[2*i+1] write end */
static struct event **events;

static long count;          /* bytes read in the current round */
static long writes;         /* forward sends still allowed in the current round */
static long fired;          /* bytes sent in the current round */
static long failures;       /* unexpected recv/send results */

static void read_cb(evutil_socket_t fd, short which, void *arg)
{
    long idx = (long)(intptr_t)arg;
    long widx = idx + 1;
    char buf[64];
    ssize_t n;

    (void)which;
    n = recv(fd, buf, sizeof buf, 0);
    if (n >= 0)
        count += n;
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
        failures++;
    if (writes > 0) {
        if (widx >= num_pipes)
            widx -= num_pipes;
        if (send(pipes[2 * widx + 1], "e", 1, 0) != 1)
            failures++;
        writes--;
        fired++;
    }
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

#ifndef PIPE_CHAIN_NO_MAIN
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}
#endif

/* Create an event_base that uses exactly the requested method, or exit 2. */
static struct event_base *make_base(const char *backend)
{
    struct event_config *cfg = event_config_new();
    const char **methods = event_get_supported_methods();
    struct event_base *base;
    int supported = 0;

    if (!cfg || !methods) {
        fprintf(stderr, "pipe_chain_libevent: event_config_new failed\n");
        exit(2);
    }
    for (int i = 0; methods[i]; i++) {
        if (strcmp(methods[i], backend) == 0)
            supported = 1;
        else
            event_config_avoid_method(cfg, methods[i]);
    }
    if (!supported) {
        fprintf(stderr, "pipe_chain_libevent: backend '%s' is not supported by "
                        "this libevent (supported:", backend);
        for (int i = 0; methods[i]; i++)
            fprintf(stderr, " %s", methods[i]);
        fprintf(stderr, ")\n");
        exit(2);
    }
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!base) {
        fprintf(stderr, "pipe_chain_libevent: could not create an event_base "
                        "with backend '%s' (is EVENT_NOEPOLL, EVENT_NOPOLL or "
                        "EVENT_NOSELECT set?)\n", backend);
        exit(2);
    }
    fprintf(stderr, "pipe_chain_libevent: libevent %s, method %s\n",
            event_get_version(), event_base_get_method(base));
    if (strcmp(event_base_get_method(base), backend) != 0) {
        fprintf(stderr, "pipe_chain_libevent: requested backend '%s' but "
                        "libevent chose '%s' (is EVENT_NOEPOLL, EVENT_NOPOLL or "
                        "EVENT_NOSELECT set?)\n", backend, event_base_get_method(base));
        exit(2);
    }
    return base;
}

#ifndef PIPE_CHAIN_NO_MAIN
/* Make sure 2*N+64 descriptors can be opened; raise the soft limit if needed. */
static void ensure_fd_limit(long needed)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("pipe_chain_libevent: getrlimit");
        exit(2);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)needed)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)needed) {
        fprintf(stderr, "pipe_chain_libevent: need %ld file descriptors but the "
                        "hard RLIMIT_NOFILE is %llu; raise it (ulimit -Hn) or "
                        "lower -n\n", needed, (unsigned long long)rl.rlim_max);
        exit(2);
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("pipe_chain_libevent: setrlimit(RLIMIT_NOFILE)");
        exit(2);
    }
}
#endif

/* One round; returns its duration in microseconds. */
static double run_once(struct event_base *base, int num_active, long num_writes)
{
    int space = num_pipes / num_active;
    double t0, t1;

    fired = 0;
    for (int i = 0; i < num_active; i++, fired++)
        if (send(pipes[2 * (i * space) + 1], "e", 1, 0) != 1)
            failures++;
    count = 0;
    writes = num_writes;

    t0 = now_us();
    do {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    } while (count != fired);
    t1 = now_us();
    return t1 - t0;
}

static struct event_base *chain_base;

void lev_chain_init(long n, const char *backend)
{
    num_pipes = 0;
    pipes = calloc((size_t)n * 2, sizeof *pipes);
    events = calloc((size_t)n, sizeof *events);
    if (!pipes || !events) {
        fprintf(stderr, "pipe_chain_libevent: out of memory\n");
        exit(1);
    }
    chain_base = make_base(backend);
}

void lev_chain_add(void)
{
    int i = num_pipes++;

    if (evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[2 * i]) != 0) {
        perror("pipe_chain_libevent: socketpair");
        exit(1);
    }
    evutil_make_socket_nonblocking(pipes[2 * i]);
    evutil_make_socket_nonblocking(pipes[2 * i + 1]);
    events[i] = event_new(chain_base, pipes[2 * i], EV_READ | EV_PERSIST, read_cb,
                          (void *)(intptr_t)i);
    if (!events[i] || event_add(events[i], NULL) != 0) {
        fprintf(stderr, "pipe_chain_libevent: event_new/event_add failed\n");
        exit(1);
    }
}

void lev_chain_start(long n, const char *backend)
{
    lev_chain_init(n, backend);
    for (long i = 0; i < n; i++)
        lev_chain_add();
}

double lev_chain_round(int num_active, long num_writes)
{
    return run_once(chain_base, num_active, num_writes);
}

long lev_chain_finish(void)
{
    for (int i = 0; i < num_pipes; i++) {
        event_free(events[i]);
        evutil_closesocket(pipes[2 * i]);
        evutil_closesocket(pipes[2 * i + 1]);
    }
    event_base_free(chain_base);
    free(events);
    free(pipes);
    return failures;
}

#ifndef PIPE_CHAIN_NO_MAIN
static void usage(void)
{
    fprintf(stderr, "usage: pipe_chain_libevent -n N -a A -w W -r ROUNDS "
                    "[--backend epoll|poll|select]\n");
    exit(2);
}

static long parse_long(const char *s, const char *what, long min)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min) {
        fprintf(stderr, "pipe_chain_libevent: bad %s '%s' (need an integer >= %ld)\n",
                what, s, min);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"backend", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *backend = "epoll";
    long n = 100, a = 1, w = 100, rounds = 25;
    double *times;
    int opt;

    while ((opt = getopt_long(argc, argv, "n:a:w:r:b:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = parse_long(optarg, "-n", 1); break;
        case 'a': a = parse_long(optarg, "-a", 1); break;
        case 'w': w = parse_long(optarg, "-w", 0); break;
        case 'r': rounds = parse_long(optarg, "-r", 1); break;
        case 'b': backend = optarg; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    if (n > 1000000 || rounds > 1000000) {
        fprintf(stderr, "pipe_chain_libevent: -n and -r are limited to 1000000\n");
        exit(2);
    }
    if (a > n) {
        fprintf(stderr, "pipe_chain_libevent: -a (%ld) must not exceed -n (%ld)\n", a, n);
        exit(2);
    }
    if (strcmp(backend, "epoll") && strcmp(backend, "poll") && strcmp(backend, "select")) {
        fprintf(stderr, "pipe_chain_libevent: unknown backend '%s' "
                        "(use epoll, poll or select)\n", backend);
        exit(2);
    }
    /* Debian's libevent is built with _FORTIFY_SOURCE; FD_SET on fd >= 1024
     * aborts the process, so the select backend cannot go past FD_SETSIZE. */
    if (strcmp(backend, "select") == 0 && 2 * n + 16 > 1024) {
        fprintf(stderr, "pipe_chain_libevent: select backend cannot handle -n %ld: "
                        "2*N+16 = %ld descriptors exceeds FD_SETSIZE (1024); "
                        "use -n <= 504\n", n, 2 * n + 16);
        exit(2);
    }
    ensure_fd_limit(2 * n + 64);
    times = calloc((size_t)rounds, sizeof *times);
    if (!times) {
        fprintf(stderr, "pipe_chain_libevent: out of memory\n");
        exit(1);
    }
    lev_chain_start(n, backend);
    lev_chain_round((int)a, w); /* warm-up, untimed */
    for (long r = 0; r < rounds; r++)
        times[r] = lev_chain_round((int)a, w);
    if (lev_chain_finish()) {
        fprintf(stderr, "pipe_chain_libevent: %ld unexpected send/recv results\n", failures);
        return 1;
    }
    printf("pipe_bench n=%ld a=%ld w=%ld us_per_round=%.2f\n", n, a, w,
           median(times, (int)rounds));
    free(times);
    return 0;
}
#endif /* PIPE_CHAIN_NO_MAIN */
