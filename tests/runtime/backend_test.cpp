// tests/runtime/backend_test.cpp
// Choosing a backend like libevent's event_config: preference, avoidance, required features,
// the COEV_BACKEND override, select's fd limit, and io_uring's cancellation contract.
#include "helpers.hpp"

#include <algorithm>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

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

// The buffer of a cancelled read lives in the task's frame; if the kernel could still write
// into it after the task resumed and ended, ASan would see it. The bytes sent afterwards must
// also still be there: the cancelled receive consumed nothing.
TEST_CASE("a cancelled io_uring read resumes only when the kernel is done with its buffer") {
    if (!uring_works()) return;
    coev::event_loop loop(only("io_uring"));
    auto s = make_socket_pair();
    std::stop_source stop;
    coev::result<std::size_t> first, second;
    std::string got;
    auto reader = [&]() -> coev::task<> {
        auto buf = std::make_unique<std::byte[]>(64);
        first = co_await coev::read_some(s.a.get(), std::span(buf.get(), 64));
    };
    auto canceller = [&]() -> coev::task<> {
        stop.request_stop();
        co_return;
    };
    coev::spawn(loop, reader(), {.stop = stop.get_token()});
    loop.poll();  // the read is submitted and waits in the kernel
    coev::spawn(loop, canceller());
    watchdog wd(loop);
    loop.run();
    CHECK(first.error() == std::errc::operation_canceled);
    REQUIRE(send_now(s.b.get(), "after") == 5);
    auto again = [&]() -> coev::task<> {
        std::byte buf[64];
        second = co_await coev::read_some(s.a.get(), buf);
        if (second) got.assign(reinterpret_cast<const char*>(buf), *second);
    };
    coev::spawn(loop, again());
    loop.run();
    REQUIRE(second.has_value());
    CHECK(got == "after");
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
