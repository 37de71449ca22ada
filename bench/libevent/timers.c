/*
 * timers_libevent -- libevent twin of the coev "timers" benchmark.
 *
 * Measures timer churn in libevent 2.1: the cost of adding, cancelling and
 * firing COUNT one-shot timers (event_new(base, -1, 0, ...)).
 *
 * Method (the coev twin mirrors it):
 *   - timeouts are relative, 0.5 s .. 1 s, from a fixed-seed xorshift64
 *     generator (seed 0x9E3779B97F4A7C15; s ^= s<<13; s ^= s>>7; s ^= s<<17;
 *     timeout_us = 500000 + next() % 500000), generated before timing;
 *   - untimed: create COUNT events;
 *   - timed "add":    event_add() each one         -> add_ns    = elapsed / COUNT
 *   - timed "cancel": event_del() every odd index  -> cancel_ns = elapsed / cancelled
 *   - untimed: sleep until every remaining deadline is past (see below);
 *   - timed "fire":   event_base_dispatch() until no events remain
 *                                                  -> fire_ns   = elapsed / fired
 *   - the callback counts firings; the count must equal COUNT - cancelled.
 *
 * -r REPS repeats the whole thing (new base, same seed) and reports the
 * median of each figure.  The last line of stdout is
 *
 *     timer_churn n=N add_ns=X cancel_ns=Y fire_ns=Z
 *
 * Usage: timers_libevent -n COUNT [-r REPS] [--backend epoll|poll|select | -b NAME]
 *
 * Plain C against libevent 2.1; link with -levent_core.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

/* Sleep this long past the add phase before firing: timeouts are < 1 s and
 * libevent reads CLOCK_MONOTONIC_COARSE (~4 ms ticks), so 20 ms of slack
 * puts every deadline several ticks in the past. */
#define SETTLE_NS (1000000000LL + 20000000LL)

static long fired_count;

static void timer_cb(evutil_socket_t fd, short which, void *arg)
{
    (void)fd;
    (void)which;
    (void)arg;
    fired_count++;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until_ns(long long deadline)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline / 1000000000LL);
    ts.tv_nsec = (long)(deadline % 1000000000LL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static uint64_t rng_state;

static uint64_t xorshift64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

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

/* Create an event_base that uses exactly the requested method, or exit 2. */
static struct event_base *make_base(const char *backend, int verbose)
{
    struct event_config *cfg = event_config_new();
    const char **methods = event_get_supported_methods();
    struct event_base *base;
    int supported = 0;

    if (!cfg || !methods) {
        fprintf(stderr, "timers_libevent: event_config_new failed\n");
        exit(2);
    }
    for (int i = 0; methods[i]; i++) {
        if (strcmp(methods[i], backend) == 0)
            supported = 1;
        else
            event_config_avoid_method(cfg, methods[i]);
    }
    if (!supported) {
        fprintf(stderr, "timers_libevent: backend '%s' is not supported by "
                        "this libevent (supported:", backend);
        for (int i = 0; methods[i]; i++)
            fprintf(stderr, " %s", methods[i]);
        fprintf(stderr, ")\n");
        exit(2);
    }
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!base) {
        fprintf(stderr, "timers_libevent: could not create an event_base "
                        "with backend '%s' (is EVENT_NOEPOLL, EVENT_NOPOLL or "
                        "EVENT_NOSELECT set?)\n", backend);
        exit(2);
    }
    if (verbose)
        fprintf(stderr, "timers_libevent: libevent %s, method %s\n",
                event_get_version(), event_base_get_method(base));
    if (strcmp(event_base_get_method(base), backend) != 0) {
        fprintf(stderr, "timers_libevent: requested backend '%s' but "
                        "libevent chose '%s' (is EVENT_NOEPOLL, EVENT_NOPOLL or "
                        "EVENT_NOSELECT set?)\n", backend, event_base_get_method(base));
        exit(2);
    }
    return base;
}

/* One repetition; stores add/cancel/fire ns per operation. */
static void run_once(const char *backend, int verbose, long n, struct event **evs,
                     struct timeval *tvs, double *add_ns, double *cancel_ns,
                     double *fire_ns)
{
    struct event_base *base = make_base(backend, verbose);
    long cancelled = 0, expected;
    long long t0, t1, t2, t3, t4;

    rng_state = 0x9E3779B97F4A7C15ULL;
    for (long i = 0; i < n; i++) {
        uint64_t us = 500000 + xorshift64() % 500000;
        tvs[i].tv_sec = (time_t)(us / 1000000);
        tvs[i].tv_usec = (suseconds_t)(us % 1000000);
        evs[i] = event_new(base, -1, 0, timer_cb, NULL);
        if (!evs[i]) {
            fprintf(stderr, "timers_libevent: event_new failed\n");
            exit(1);
        }
    }
    fired_count = 0;

    t0 = now_ns();
    for (long i = 0; i < n; i++)
        event_add(evs[i], &tvs[i]);
    t1 = now_ns();

    for (long i = 1; i < n; i += 2) {
        event_del(evs[i]);
        cancelled++;
    }
    t2 = now_ns();

    /* Every deadline is at most (time of its event_add) + 1 s, and the last
     * event_add finished at t1, so sleep until t1 + 1 s + 20 ms.  (Measuring
     * from t0 would leave late-added timers pending whenever the add phase
     * takes more than ~20 ms, and the fire phase would then include waiting.) */
    sleep_until_ns(t1 + SETTLE_NS);

    t3 = now_ns();
    event_base_dispatch(base);
    t4 = now_ns();

    expected = n - cancelled;
    if (fired_count != expected) {
        fprintf(stderr, "timers_libevent: %ld timers fired, expected %ld\n",
                fired_count, expected);
        exit(1);
    }
    *add_ns = (double)(t1 - t0) / (double)n;
    *cancel_ns = cancelled ? (double)(t2 - t1) / (double)cancelled : 0.0;
    *fire_ns = expected ? (double)(t4 - t3) / (double)expected : 0.0;

    for (long i = 0; i < n; i++)
        event_free(evs[i]);
    event_base_free(base);
}

static void usage(void)
{
    fprintf(stderr, "usage: timers_libevent -n COUNT [-r REPS] "
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
        fprintf(stderr, "timers_libevent: bad %s '%s' (need an integer >= %ld)\n",
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
    long n = 1000000, reps = 1;
    double *add, *cancel, *fire;
    struct event **evs;
    struct timeval *tvs;
    int opt;

    while ((opt = getopt_long(argc, argv, "n:r:b:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = parse_long(optarg, "-n", 1); break;
        case 'r': reps = parse_long(optarg, "-r", 1); break;
        case 'b': backend = optarg; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    if (n > 100000000 || reps > 1000) {
        fprintf(stderr, "timers_libevent: -n is limited to 100000000, -r to 1000\n");
        exit(2);
    }
    if (strcmp(backend, "epoll") && strcmp(backend, "poll") && strcmp(backend, "select")) {
        fprintf(stderr, "timers_libevent: unknown backend '%s' "
                        "(use epoll, poll or select)\n", backend);
        exit(2);
    }

    evs = calloc((size_t)n, sizeof *evs);
    tvs = calloc((size_t)n, sizeof *tvs);
    add = calloc((size_t)reps, sizeof *add);
    cancel = calloc((size_t)reps, sizeof *cancel);
    fire = calloc((size_t)reps, sizeof *fire);
    if (!evs || !tvs || !add || !cancel || !fire) {
        fprintf(stderr, "timers_libevent: out of memory\n");
        exit(1);
    }

    for (long r = 0; r < reps; r++)
        run_once(backend, r == 0, n, evs, tvs, &add[r], &cancel[r], &fire[r]);

    printf("timer_churn n=%ld add_ns=%.1f cancel_ns=%.1f fire_ns=%.1f\n", n,
           median(add, (int)reps), median(cancel, (int)reps), median(fire, (int)reps));

    free(fire);
    free(cancel);
    free(add);
    free(tvs);
    free(evs);
    return 0;
}
