// bench/echo_load.cpp
// The load generator of bench/echo.py, plain epoll and no coev, so it favours no server:
// C connections each keep P messages of S bytes in flight for D seconds; every echoed byte is
// checked; a message's latency runs from writing its first byte to reading its last.
//   echo_load --port P -c CONNS -s BYTES -d SECONDS -p DEPTH [--host ADDR] [--warmup SECONDS]
//   echo_load --port P --hold N [--hold-seconds S]   (opens N idle connections, then waits)
// Last line: echo_load c=C s=S msgs_per_s=X p50_us=Y p99_us=Z
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "echo_load: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "echo_load: %s\n", what.c_str());
    std::exit(1);
}

// Every byte of message `msg` on connection `conn`: differs from one message to the next, so a
// lost, repeated or reordered message shows.
inline unsigned char pattern(std::uint32_t conn, std::uint64_t msg) {
    return static_cast<unsigned char>('a' + (conn * 7 + msg * 13) % 26);
}

// Whether all of p[0, n) equals v (no early exit: the loop vectorises).
inline bool all_equal(const unsigned char* p, std::size_t n, unsigned char v) {
    unsigned bad = 0;
    for (std::size_t k = 0; k < n; ++k) bad |= unsigned(p[k] ^ v);
    return bad == 0;
}

struct conn {
    int fd = -1;
    std::uint32_t id = 0;
    std::uint64_t sent = 0;      // bytes written
    std::uint64_t received = 0;  // bytes read back (all checked)
    std::uint64_t queued = 0;    // bytes we want written (whole messages)
    std::vector<clock_type::time_point> started;  // send time per message in flight (FIFO)
    std::size_t head = 0;        // index of the oldest in `started`
    bool want_out = false;
};

int connect_to(const sockaddr_in& at) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) die("connect");
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void raise_nofile(rlim_t need) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    if (lim.rlim_cur >= need) return;
    if (lim.rlim_max < need)
        fail("needs " + std::to_string(need) + " open files, hard limit is " +
             std::to_string(lim.rlim_max));
    lim.rlim_cur = need;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) die("setrlimit");
}

volatile std::sig_atomic_t stop_hold = 0;
void on_signal(int) { stop_hold = 1; }

int hold(const sockaddr_in& at, long n, double seconds) {
    raise_nofile(rlim_t(n) + 64);
    std::vector<int> fds;
    fds.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) {
        int fd = connect_to(at);
        if (::send(fd, "hi", 2, MSG_NOSIGNAL) != 2) die("send");
        fds.push_back(fd);
    }
    for (int fd : fds) {  // every connection has been served once
        char buf[2];
        std::size_t got = 0;
        while (got < 2) {
            ssize_t r = ::recv(fd, buf + got, 2 - got, 0);
            if (r <= 0) fail("a held connection closed early");
            got += std::size_t(r);
        }
    }
    std::printf("held %ld\n", n);
    std::fflush(stdout);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    const auto end = clock_type::now() + std::chrono::duration<double>(seconds);
    while (!stop_hold && clock_type::now() < end) ::usleep(20'000);
    for (int fd : fds) ::close(fd);
    return 0;
}

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: echo_load --port P -c CONNS -s BYTES -d SECONDS -p DEPTH [--host A]\n"
                 "       echo_load --port P --hold N [--hold-seconds S]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = -1, conns = 1, size = 64, depth = 1, hold_n = -1;
    double seconds = 5, warmup = -1, hold_seconds = 120;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (a == "--port") port = std::atol(v);
        else if (a == "--host") host = v;
        else if (a == "-c") conns = std::atol(v);
        else if (a == "-s") size = std::atol(v);
        else if (a == "-d") seconds = std::atof(v);
        else if (a == "-p") depth = std::atol(v);
        else if (a == "--warmup") warmup = std::atof(v);
        else if (a == "--hold") hold_n = std::atol(v);
        else if (a == "--hold-seconds") hold_seconds = std::atof(v);
        else usage();
    }
    if (port <= 0 || port > 65535 || conns < 1 || size < 1 || depth < 1 || seconds <= 0) usage();
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(std::uint16_t(port));
    if (::inet_pton(AF_INET, host.c_str(), &at.sin_addr) != 1) usage();
    std::signal(SIGPIPE, SIG_IGN);
    if (hold_n >= 0) return hold(at, hold_n, hold_seconds);
    if (warmup < 0) warmup = std::min(0.5, seconds / 10);

    raise_nofile(rlim_t(conns) + 64);
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    std::vector<conn> cs(static_cast<std::size_t>(conns));
    for (std::size_t i = 0; i < cs.size(); ++i) {
        conn& c = cs[i];
        c.id = std::uint32_t(i);
        c.fd = connect_to(at);
        int fl = 1;
        if (::ioctl(c.fd, FIONBIO, &fl) != 0) die("FIONBIO");
        c.started.resize(std::size_t(depth));
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
        ev.data.u64 = i;
        if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl");
    }

    const std::size_t msg = std::size_t(size);
    std::vector<unsigned char> out_buf(std::max<std::size_t>(msg * std::size_t(depth), 65536));
    std::vector<unsigned char> in_buf(std::max<std::size_t>(msg * std::size_t(depth), 65536));
    std::vector<std::uint32_t> lat_ns;
    lat_ns.reserve(1 << 20);
    const auto t0 = clock_type::now();
    const auto measure_from = t0 + std::chrono::duration_cast<clock_type::duration>(
                                       std::chrono::duration<double>(warmup));
    const auto end = measure_from + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(seconds));
    std::uint64_t measured = 0;
    bool running = true;

    // Writes whatever of the queued messages the socket takes.
    auto pump_out = [&](conn& c) {
        while (c.sent < c.queued) {
            const std::size_t n = std::size_t(std::min<std::uint64_t>(c.queued - c.sent,
                                                                      out_buf.size()));
            for (std::size_t k = 0; k < n;) {  // message by message
                const std::uint64_t pos = c.sent + k;
                const std::size_t run = std::min<std::size_t>(n - k, msg - pos % msg);
                std::memset(out_buf.data() + k, pattern(c.id, pos / msg), run);
                k += run;
            }
            ssize_t w = ::send(c.fd, out_buf.data(), n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN) return;
                die("send");
            }
            c.sent += std::uint64_t(w);
        }
    };
    auto start_message = [&](conn& c, clock_type::time_point now) {
        const std::uint64_t index = c.queued / msg;
        c.started[index % std::size_t(depth)] = now;
        c.queued += msg;
    };
    {
        const auto now = clock_type::now();
        for (conn& c : cs) {
            for (long k = 0; k < depth; ++k) start_message(c, now);
            pump_out(c);
        }
    }
    std::uint64_t in_flight = std::uint64_t(conns) * std::uint64_t(depth);
    std::vector<epoll_event> events(std::size_t(std::min<long>(conns, 1024)));
    while (in_flight > 0) {
        int n = ::epoll_wait(ep, events.data(), int(events.size()), 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        auto now = clock_type::now();
        if (running && now >= end) running = false;
        for (int e = 0; e < n; ++e) {
            conn& c = cs[events[std::size_t(e)].data.u64];
            if (events[std::size_t(e)].events & EPOLLOUT) pump_out(c);
            if (!(events[std::size_t(e)].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            for (;;) {
                ssize_t r = ::recv(c.fd, in_buf.data(), in_buf.size(), 0);
                if (r < 0) {
                    if (errno == EAGAIN) break;
                    die("recv");
                }
                if (r == 0) fail("the server closed connection " + std::to_string(c.id));
                for (std::size_t k = 0; k < std::size_t(r);) {
                    const std::uint64_t pos = c.received + k;
                    const std::size_t run = std::min<std::size_t>(std::size_t(r) - k,
                                                                  msg - pos % msg);
                    if (!all_equal(in_buf.data() + k, run, pattern(c.id, pos / msg)))
                        fail("wrong bytes echoed on connection " + std::to_string(c.id) +
                             " near offset " + std::to_string(pos));
                    k += run;
                }
                const std::uint64_t before = c.received / msg;
                c.received += std::uint64_t(r);
                const std::uint64_t after = c.received / msg;
                if (c.received > c.sent) fail("the server echoed bytes never sent");
                for (std::uint64_t m = before; m < after; ++m) {
                    --in_flight;
                    const auto began = c.started[m % std::size_t(depth)];
                    if (began >= measure_from && now < end) {
                        ++measured;
                        lat_ns.push_back(std::uint32_t(std::min<std::int64_t>(
                            std::chrono::duration_cast<std::chrono::nanoseconds>(now - began)
                                .count(),
                            UINT32_MAX)));
                    }
                    if (running) {
                        start_message(c, now);
                        ++in_flight;
                    }
                }
                if (after > before) pump_out(c);
                if (std::size_t(r) < in_buf.size()) break;
            }
        }
        if (clock_type::now() > end + std::chrono::seconds(10)) fail("echoes stopped coming");
    }
    for (conn& c : cs) ::close(c.fd);
    std::sort(lat_ns.begin(), lat_ns.end());
    auto pct = [&](double q) {
        if (lat_ns.empty()) return 0.0;
        return lat_ns[std::min(lat_ns.size() - 1, std::size_t(q * double(lat_ns.size())))] / 1000.0;
    };
    std::printf("echo_load c=%ld s=%ld msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f\n", conns, size,
                double(measured) / seconds, pct(0.50), pct(0.99));
    return 0;
}
