/* bench/libevent/buffer.c
 * evbuffer's twin of bench/buffer.cpp: the same data, phases and output. */
#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPS 1000000

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

int main(int argc, char **argv) {
    int rounds = 5;
    if (argc == 3 && !strcmp(argv[1], "-r")) rounds = atoi(argv[2]);
    if (rounds < 1 || rounds > 100) rounds = 5;
    /* The same lines as the C++ twin (same LCG). */
    char **lines = malloc(sizeof *lines * OPS);
    size_t *lens = malloc(sizeof *lens * OPS);
    unsigned seed = 12345;
    for (int i = 0; i < OPS; ++i) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 8 + (seed >> 16) % 120;
        lines[i] = malloc(len + 2);
        memset(lines[i], 'a' + i % 26, len);
        memcpy(lines[i] + len, "\r\n", 2);
        lens[i] = len + 2;
    }
    const char record[] = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: text/**\r\n\r\n";
    double append[100], readln[100], cycle[100];
    size_t sink = 0;
    for (int r = 0; r < rounds; ++r) {
        struct evbuffer *b = evbuffer_new();
        double t0 = now_ns();
        for (int i = 0; i < OPS; ++i) evbuffer_add(b, record, 64);
        evbuffer_drain(b, evbuffer_get_length(b));
        append[r] = (now_ns() - t0) / OPS;
        evbuffer_free(b);

        b = evbuffer_new();
        for (int i = 0; i < OPS; ++i) evbuffer_add(b, lines[i], lens[i]);
        t0 = now_ns();
        for (;;) {
            size_t n;
            char *l = evbuffer_readln(b, &n, EVBUFFER_EOL_CRLF);
            if (!l) break;
            sink += n;
            free(l);
        }
        readln[r] = (now_ns() - t0) / OPS;
        evbuffer_free(b);

        b = evbuffer_new();
        char chunk[512];
        memset(chunk, 'c', sizeof chunk);
        t0 = now_ns();
        for (int i = 0; i < OPS / 8; ++i) {
            for (int k = 0; k < 8; ++k) evbuffer_add(b, chunk, sizeof chunk);
            evbuffer_drain(b, 4096);
        }
        cycle[r] = (now_ns() - t0) / OPS;
        evbuffer_free(b);
    }
    printf("append ns_per_op=%.2f\n", median(append, rounds));
    printf("read_line ns_per_op=%.2f\n", median(readln, rounds));
    printf("append_drain ns_per_op=%.2f\n", median(cycle, rounds));
    return sink == 0;
}
