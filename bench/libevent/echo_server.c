/* bench/libevent/echo_server.c
 * libevent's twin of bench/echo_server.cpp: the evconnlistener + bufferevent echo server of
 * the libevent book (seed 001, 8.6), with the backpressure a real server needs: a connection
 * whose peer does not read its echoes stops being read until its output drains.
 *   echo_server_libevent --port P [--backend epoll|poll|select]
 * Exits 0 on SIGINT or SIGTERM, also with connections open. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Output past this stops reading the connection; reading resumes once it drained. */
#define OUTPUT_LIMIT (64 * 1024)

struct conn {
    struct bufferevent *bev;
    struct conn *prev, *next; /* every open connection, freed at exit */
};
static struct conn *all;

static void conn_free(struct conn *c) {
    if (c->prev) c->prev->next = c->next;
    else all = c->next;
    if (c->next) c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

static void read_cb(struct bufferevent *bev, void *ctx) {
    (void)ctx;
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > OUTPUT_LIMIT) bufferevent_disable(bev, EV_READ);
}

static void write_cb(struct bufferevent *bev, void *ctx) {
    struct conn *c = ctx;
    (void)c;
    /* The write low watermark (0) was reached: everything went out. */
    bufferevent_enable(bev, EV_READ);
}

static void event_cb(struct bufferevent *bev, short events, void *ctx) {
    (void)bev;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(ctx);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int len, void *ctx) {
    (void)sa;
    (void)len;
    (void)ctx;
    struct event_base *base = evconnlistener_get_base(l);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->next = all;
    if (all) all->prev = c;
    all = c;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void signal_cb(evutil_socket_t sig, short events, void *ctx) {
    (void)sig;
    (void)events;
    event_base_loopexit(ctx, NULL);
}

static struct event_base *make_base(const char *backend) {
    struct event_config *cfg = event_config_new();
    const char **methods = event_get_supported_methods();
    int supported = 0;
    for (int i = 0; methods[i]; i++) {
        if (!strcmp(methods[i], backend)) supported = 1;
        else event_config_avoid_method(cfg, methods[i]);
    }
    if (!supported) {
        fprintf(stderr, "echo_server_libevent: backend '%s' not supported\n", backend);
        exit(2);
    }
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!base) {
        fprintf(stderr, "echo_server_libevent: no event_base with backend '%s'\n", backend);
        exit(2);
    }
    return base;
}

int main(int argc, char **argv) {
    int port = -1;
    const char *backend = "epoll";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
    }
    if (port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo_server_libevent --port P [--backend NAME]\n");
        return 2;
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = make_base(backend);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((unsigned short)port);
    struct evconnlistener *l = evconnlistener_new_bind(
        base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
        (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        perror("echo_server_libevent: bind");
        return 2;
    }
    struct event *sigint = evsignal_new(base, SIGINT, signal_cb, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    fprintf(stderr, "echo_server_libevent: %s, listening on 127.0.0.1:%d\n",
            event_base_get_method(base), port);
    event_base_dispatch(base);
    while (all) conn_free(all);
    evconnlistener_free(l);
    event_free(sigint);
    event_free(sigterm);
    event_base_free(base);
    fprintf(stderr, "echo_server_libevent: stopped\n");
    return 0;
}
