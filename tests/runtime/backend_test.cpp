// tests/runtime/backend_test.cpp
// Choosing a backend like libevent's event_config: preference, avoidance, required features,
// the COEV_BACKEND override, select's fd limit, and io_uring's cancellation contract.
#include "helpers.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using coev::backend_feature;
using coev_test::make_socket_pair;
using coev_test::send_now;
using coev_test::watchdog;

namespace {

bool supported(std::string_view name) {
    auto all = coev::supported_backends();
    return std::find(all.begin(), all.end(), name) != all.end();
}

coev::loop_config only(std::string name) {
    coev::loop_config cfg;
    cfg.prefer = std::move(name);
    cfg.ignore_env = true;
    return cfg;
}

// io_uring may be built yet refused by this kernel (sysctl, seccomp): then there is nothing
// io_uring-specific to test.
bool uring_works() {
    if (!supported("io_uring")) return false;
    coev::event_loop probe(only("io_uring"));
    return probe.backend_name() == "io_uring";
}

}  // namespace

TEST_CASE("supported_backends() lists the readiness backends in preference order") {
    auto all = coev::supported_backends();
    auto at = [&](std::string_view n) {
        return std::find(all.begin(), all.end(), n) - all.begin();
    };
    REQUIRE(supported("epoll"));
    REQUIRE(supported("poll"));
    REQUIRE(supported("select"));
    CHECK(at("epoll") < at("poll"));
    CHECK(at("poll") < at("select"));
    if (supported("io_uring")) CHECK(at("io_uring") < at("epoll"));
}

TEST_CASE("a preferred backend is used, with the features it reports") {
    for (std::string_view name : {"epoll", "poll", "select"}) {
        CAPTURE(name);
        coev::event_loop loop(only(std::string(name)));
        CHECK(loop.backend_name() == name);
    }
    CHECK(coev::has_all(coev::event_loop(only("epoll")).features(),
                        backend_feature::edge_triggered | backend_feature::o1_add_remove));
    CHECK_FALSE(coev::has_all(coev::event_loop(only("select")).features(),
                              backend_feature::arbitrary_fds));
    const auto poll_features = coev::event_loop(only("poll")).features();
    CHECK(coev::has_all(poll_features, backend_feature::arbitrary_fds));
    CHECK_FALSE(coev::has_all(poll_features, backend_feature::edge_triggered));
    CHECK_FALSE(coev::has_all(poll_features, backend_feature::completion));
    if (uring_works()) {
        coev::event_loop uring(only("io_uring"));
        CHECK(uring.backend_name() == "io_uring");
        CHECK(coev::has_all(uring.features(), backend_feature::completion |
                                                  backend_feature::o1_add_remove |
                                                  backend_feature::arbitrary_fds));
    }
}

TEST_CASE("an avoided backend is never chosen; the next best is") {
    coev::loop_config cfg = only("epoll");
    cfg.avoid = {"epoll", "io_uring"};
    coev::event_loop loop(cfg);
    CHECK(loop.backend_name() == "poll");
}

TEST_CASE("required features pick a backend that has them") {
    coev::loop_config cfg;
    cfg.ignore_env = true;
    cfg.require = backend_feature::edge_triggered;
    coev::event_loop loop(cfg);
    CHECK(loop.backend_name() == "epoll");
}

TEST_CASE("required features no backend has are a clear error, not a silent fallback") {
    coev::loop_config cfg;
    cfg.require = backend_feature::edge_triggered | backend_feature::completion;
    try {
        coev::event_loop loop(cfg);
        FAIL("a loop was created on " << loop.backend_name());
    } catch (const std::system_error& e) {
        CHECK(e.code() == coev::error::no_backend);
    }
    cfg = coev::loop_config{};
    cfg.avoid = {"io_uring", "epoll", "poll", "select"};
    CHECK_THROWS_AS(coev::event_loop{cfg}, std::system_error);
}

TEST_CASE("COEV_BACKEND overrides the preference unless the config ignores the environment") {
    const char* env = std::getenv("COEV_BACKEND");
    if (!env || !supported(env)) return;  // run outside meson test: nothing to compare
    coev::loop_config cfg;
    cfg.prefer = std::string_view(env) == "select" ? "poll" : "select";
    coev::event_loop with_env(cfg);
    if (std::string_view(env) != "io_uring" || uring_works())
        CHECK(with_env.backend_name() == std::string_view(env));
    cfg.ignore_env = true;
    coev::event_loop without(cfg);
    CHECK(without.backend_name() == cfg.prefer);
}

TEST_CASE("select refuses an fd at or above FD_SETSIZE with invalid_argument") {
    REQUIRE(coev_test::raise_fd_limit() > FD_SETSIZE + 8);
    coev::event_loop loop(only("select"));
    auto s = make_socket_pair();
    coev::unique_fd high(::fcntl(s.a.get(), F_DUPFD_CLOEXEC, FD_SETSIZE + 4));
    REQUIRE(high.get() >= FD_SETSIZE);
    coev::result<void> r;
    auto t = [&]() -> coev::task<> { r = co_await coev::wait_readable(high.get()); };
    coev::spawn(loop, t());
    watchdog wd(loop);
    loop.run();
    CHECK(r.error() == std::errc::invalid_argument);
    CHECK_FALSE(loop.has_pending());
}

// The backends' scans of a result skip what is not ready in bulk: select 64 fds to a word
// (every word of the set, its first and last bit, the last fd it can watch), poll four
// array entries to a test (a group, then a tail of two). On every backend.
TEST_CASE("fds spread over select's words and poll's array groups are all reported") {
    REQUIRE(coev_test::raise_fd_limit() > FD_SETSIZE + 8);
    coev::event_loop loop;
    auto s = make_socket_pair();
    std::vector<coev::unique_fd> fds;
    for (int at : {64, 127, 128, 511, 640, FD_SETSIZE - 1}) {
        fds.emplace_back(::fcntl(s.a.get(), F_DUPFD_CLOEXEC, at));
        REQUIRE(fds.back().get() == at);
    }
    std::vector<int> woke;
    auto wait_on = [&](int fd) -> coev::task<> {
        if (co_await coev::wait_readable(fd)) woke.push_back(fd);
    };
    for (auto& fd : fds) coev::spawn(loop, wait_on(fd.get()));
    loop.poll();  // all waiting
    CHECK(woke.empty());
    REQUIRE(coev_test::send_now(s.b.get(), "x") == 1);
    watchdog wd(loop);
    loop.run();
    std::sort(woke.begin(), woke.end());
    CHECK(woke == std::vector<int>{64, 127, 128, 511, 640, FD_SETSIZE - 1});
}

// The buffer of a cancelled read lives in the task's frame; if the kernel could still write
// into it after the task resumed and ended, ASan would see it. The bytes sent afterwards must
// also still be there: the cancelled receive consumed nothing. A pipe and a datagram socket
// put the task's own buffer in the kernel's hands (IORING_OP_READ, IORING_OP_RECV), so their
// cancel is IORING_OP_ASYNC_CANCEL; a stream socket's read waits in coev's receive queue.
TEST_CASE("a cancelled io_uring read resumes only when the kernel is done with its buffer") {
    if (!uring_works()) return;
    coev::event_loop loop(only("io_uring"));
    coev::unique_fd rd, wr;
    SUBCASE("pipe") {
        int p[2];
        REQUIRE(::pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
        rd = coev::unique_fd(p[0]);
        wr = coev::unique_fd(p[1]);
    }
    SUBCASE("datagram socket") {
        auto s = make_socket_pair(SOCK_DGRAM);
        rd = std::move(s.a);
        wr = std::move(s.b);
    }
    SUBCASE("stream socket") {
        auto s = make_socket_pair();
        rd = std::move(s.a);
        wr = std::move(s.b);
    }
    std::stop_source stop;
    coev::result<std::size_t> first, second;
    std::string got;
    auto reader = [&]() -> coev::task<> {
        auto buf = std::make_unique<std::byte[]>(64);
        first = co_await coev::read_some(rd.get(), std::span(buf.get(), 64));
    };
    auto canceller = [&]() -> coev::task<> {
        stop.request_stop();
        co_return;
    };
    coev::spawn(loop, reader(), {.stop = stop.get_token()});
    loop.poll();  // the read is submitted and waits
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(first.error() == std::errc::operation_canceled);
    REQUIRE(::write(wr.get(), "after", 5) == 5);
    auto again = [&]() -> coev::task<> {
        std::byte buf[64];
        second = co_await coev::read_some(rd.get(), buf);
        if (second) got.assign(reinterpret_cast<const char*>(buf), *second);
    };
    coev::spawn(loop, again());
    loop.run();
    REQUIRE(second.has_value());
    CHECK(got == "after");
    CHECK_FALSE(wd.fired());
}

TEST_CASE("destroying an io_uring loop with a pipe read in flight cancels it first") {
    if (!uring_works()) return;
    int p[2];
    REQUIRE(::pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    coev::unique_fd rd(p[0]), wr(p[1]);
    {
        coev::event_loop loop(only("io_uring"));
        auto reader = [&]() -> coev::task<> {
            std::byte buf[256];  // in the frame: the kernel holds it until the cancel lands
            (void)co_await coev::read_some(rd.get(), buf);
        };
        coev::spawn(loop, reader());
        loop.poll();
    }  // the frame (and its buffer) dies here
    // The cancelled read took nothing: what is written now is still there to read.
    REQUIRE(::write(wr.get(), "late", 4) == 4);
    char buf[8];
    CHECK(::read(rd.get(), buf, sizeof buf) == 4);
}

TEST_CASE("destroying an io_uring loop with reads in flight waits for the kernel first") {
    if (!uring_works()) return;
    auto s = make_socket_pair();
    {
        coev::event_loop loop(only("io_uring"));
        auto reader = [&]() -> coev::task<> {
            std::byte buf[256];
            (void)co_await coev::read_some(s.a.get(), buf);
        };
        coev::spawn(loop, reader());
        loop.poll();
    }  // the frame (and its buffer) dies here
    // Data arriving now must go nowhere: the receive was cancelled before the frame died.
    CHECK(send_now(s.b.get(), "late") == 4);
    char buf[8];
    CHECK(::recv(s.a.get(), buf, sizeof buf, 0) == 4);
}

namespace {

// Makes io_uring_setup fail with ENOSYS in this process, as a kernel without io_uring (or a
// seccomp policy that forbids it) would.
bool forbid_io_uring() {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

}  // namespace

TEST_CASE("without io_uring the loop falls back with one log line, unless it was required") {
    if (!supported("io_uring")) return;  // built without it: nothing to fall back from
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Exit codes: 0 all as expected, 1 no seccomp, 2 wrong backend, 3 wrong log, 4 no error.
        if (!forbid_io_uring()) ::_exit(1);
        std::vector<std::string> lines;
        coev::set_log_handler([&](coev::log_level, std::string_view l) { lines.emplace_back(l); });
        coev::loop_config cfg;
        cfg.ignore_env = true;
        {
            coev::event_loop loop(cfg);
            if (loop.backend_name() != "epoll") ::_exit(2);
        }
        if (lines.size() != 1 || lines[0].find("io_uring") == std::string::npos) ::_exit(3);
        cfg.require = coev::backend_feature::completion;
        try {
            coev::event_loop loop(cfg);
            ::_exit(4);
        } catch (const std::system_error& e) {
            ::_exit(e.code() == coev::error::no_backend ? 0 : 4);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

// Issue 4: submissions are batched per iteration (no system call per operation while the ring
// has room); readiness backends report many fds per wait. Pipes, so that io_uring submits
// every read (sockets would park on a multishot receive armed once).
TEST_CASE("200 reads that wait together cost the backend a few system calls, not one each") {
    constexpr int pipes = 200;
    coev::event_loop loop;  // the backend under test (COEV_BACKEND)
    std::vector<coev::unique_fd> read_ends, write_ends;
    for (int i = 0; i < pipes; ++i) {
        auto p = coev_test::make_pipe();
        read_ends.push_back(std::move(p.read_end));
        write_ends.push_back(std::move(p.write_end));
    }
    int done = 0;
    auto reader = [&](int fd) -> coev::task<> {
        std::byte buf[16];
        auto n = co_await coev::read_some(fd, buf);
        if (n && *n == 1) ++done;
    };
    auto round = [&] {
        done = 0;
        for (auto& fd : read_ends) coev::spawn(loop, reader(fd.get()));
        loop.poll();  // every read starts waiting
        for (auto& fd : write_ends) REQUIRE(::write(fd.get(), "x", 1) == 1);
        watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
        CHECK(done == pipes);
    };
    round();  // the backend learns the fds (epoll_ctl happens here, once per fd)
    const auto before = loop.counters().backend_calls;
    round();
    const auto calls = loop.counters().backend_calls - before;
    CAPTURE(loop.backend_name());
    CAPTURE(calls);
    CHECK(calls >= 1);
    CHECK(calls <= pipes / 8);
}
