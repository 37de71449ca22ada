/* bench/epoll_echo_server.c
 * The practical limit for bench/echo.py: a minimal hand-written echo server, one thread,
 * edge-triggered epoll, one shared read buffer; bytes a slow peer does not take wait in a
 * buffer of that connection's own, and the connection is not read until they are gone.
 *   epoll_echo_server --port P
 * Exits 0 on SIGINT or SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    char *pending; /* unsent bytes, or NULL */
    size_t len, off;
};

static char scratch[65536];

static void drop(struct conn *c) {
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Sends the pending bytes; 1 when none are left, 0 when the socket is full, -1 on error. */
static int flush_pending(struct conn *c) {
    while (c->off < c->len) {
        ssize_t w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN ? 0 : -1;
        c->off += (size_t)w;
    }
    free(c->pending);
    c->pending = NULL;
    c->len = c->off = 0;
    return 1;
}

/* Reads and echoes until the socket is drained; 0 to keep the connection, -1 to drop it.
 * A writable-only wake-up matters only with bytes pending: no read is tried for it. */
static int serve(struct conn *c, unsigned events) {
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !c->pending) return 0;
    if (c->pending) {
        int f = flush_pending(c);
        if (f < 0) return -1;
        if (f == 0) return 0; /* still full: do not read */
    }
    for (;;) {
        ssize_t r = recv(c->fd, scratch, sizeof scratch, 0);
        if (r < 0) return errno == EAGAIN ? 0 : -1;
        if (r == 0) return -1; /* FIN: everything before it was echoed */
        size_t off = 0;
        while (off < (size_t)r) {
            ssize_t w = send(c->fd, scratch + off, (size_t)r - off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN) return -1;
                c->len = (size_t)r - off;
                c->pending = malloc(c->len);
                if (!c->pending) return -1;
                memcpy(c->pending, scratch + off, c->len);
                c->off = 0;
                return 0;
            }
            off += (size_t)w;
        }
        if ((size_t)r < sizeof scratch) return 0;
    }
}

int main(int argc, char **argv) {
    int port = -1;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    if (port < 0 || port > 65535) {
        fprintf(stderr, "usage: epoll_echo_server --port P\n");
        return 2;
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    sigset_t quit;
    sigemptyset(&quit);
    sigaddset(&quit, SIGINT);
    sigaddset(&quit, SIGTERM);
    sigprocmask(SIG_BLOCK, &quit, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &quit, SFD_NONBLOCK | SFD_CLOEXEC);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) || listen(lfd, 4096)) {
        perror("epoll_echo_server: bind");
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
    fprintf(stderr, "epoll_echo_server: listening on 127.0.0.1:%d\n", port);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        for (int i = 0; i < n; ++i) {
            void *p = events[i].data.ptr;
            if (p == &sfd) {
                fprintf(stderr, "epoll_echo_server: stopped\n");
                return 0; /* the kernel closes what is left */
            }
            if (!p) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                              .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            struct conn *c = p;
            if (serve(c, events[i].events) < 0) drop(c);
        }
    }
}
