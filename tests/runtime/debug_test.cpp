// tests/runtime/debug_test.cpp
// Debug mode's misuse reports, and what dump() and has_pending() say about waits that were
// cancelled.
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using coev_test::counted;
using coev_test::location;
using coev_test::log_capture;
using coev_test::make_socket_pair;
using coev_test::watchdog;

namespace {

std::vector<std::string> dump_lines(const coev::event_loop& loop) {
    std::ostringstream out;
    loop.dump(out);
    std::vector<std::string> lines;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

}  // namespace

TEST_CASE("debug mode reports two waiters on one fd, with both locations") {
    log_capture logs;
    coev::event_loop loop;
    auto s = make_socket_pair();
    int first_line = 0, second_line = 0;
    coev::result<void> second;
    auto first_waiter = [&]() -> coev::task<> {
        first_line = __LINE__ + 1;
        (void)co_await coev::wait_readable(s.a.get());
    };
    auto second_waiter = [&]() -> coev::task<> {
        second_line = __LINE__ + 1;
        second = co_await coev::wait_readable(s.a.get());
        coev_test::send_now(s.b.get(), "x");
    };
    coev::spawn(loop, first_waiter());
    coev::spawn(loop, second_waiter());
    watchdog wd(loop);
    loop.run();
    CHECK(second.error() == coev::error::busy);
    const auto lines = logs.lines();
    CAPTURE(lines);
    // One report, naming the fd and both places (the wording is free).
    const std::string fd = "fd " + std::to_string(s.a.get());
    const std::string first_at = location(__FILE__, first_line);
    const std::string second_at = location(__FILE__, second_line);
    int reports = 0;
    for (const auto& l : lines) {
        reports += l.find(fd) != std::string::npos && l.find(first_at) != std::string::npos &&
                   l.find(second_at) != std::string::npos;
    }
    CHECK(reports == 1);
}

TEST_CASE("debug mode reports a wait on a closed fd, with its location") {
    log_capture logs;
    coev::event_loop loop;
    auto s = make_socket_pair();
    const int fd = s.b.release();
    ::close(fd);
    int line = 0;
    coev::result<void> r;
    auto waiter = [&]() -> coev::task<> {
        line = __LINE__ + 1;
        r = co_await coev::wait_readable(fd);
    };
    coev::spawn(loop, waiter());
    {
        watchdog wd(loop);
        loop.run();
    }
    CHECK(r.error() == std::errc::bad_file_descriptor);
    const auto lines = logs.lines();
    CAPTURE(lines);
    int reports = 0;
    for (const auto& l : lines) {
        reports += l.find("closed fd " + std::to_string(fd)) != std::string::npos &&
                   l.find(location(__FILE__, line)) != std::string::npos;
    }
    CHECK(reports == 1);
}

TEST_CASE("without debug mode, misuse is not reported") {
    log_capture logs(false);
    coev::event_loop loop;
    auto s = make_socket_pair();
    const int fd = s.b.release();
    ::close(fd);
    coev::result<void> r;
    auto waiter = [&]() -> coev::task<> { r = co_await coev::wait_readable(fd); };
    coev::spawn(loop, waiter());
    {
        watchdog wd(loop);
        loop.run();
    }
    CHECK(r.error() == std::errc::bad_file_descriptor);
    CHECK(logs.lines().empty());
}

TEST_CASE("debug mode reports a task left suspended by a dying loop, and its frame is freed") {
    counted::made = counted::gone = 0;
    log_capture logs;
    auto s = make_socket_pair();
    int fd_spawn_line = 0, sleep_spawn_line = 0, unstarted_spawn_line = 0;
    {
        coev::event_loop loop;
        auto inner = [&](counted c) -> coev::task<> {
            counted local;
            (void)c;
            (void)co_await coev::wait_readable(s.a.get(), loop.now() + 1h);
        };
        auto on_fd = [&]() -> coev::task<> {
            counted local;
            co_await inner(counted{});
        };
        auto asleep = [&]() -> coev::task<> {
            counted local;
            (void)co_await coev::sleep_for(1h);
        };
        auto never = [&](counted c) -> coev::task<> {
            (void)c;
            co_return;
        };
        fd_spawn_line = __LINE__ + 1;
        coev::spawn(loop, on_fd());
        sleep_spawn_line = __LINE__ + 1;
        coev::spawn(loop, asleep());
        loop.poll();  // both are now suspended
        unstarted_spawn_line = __LINE__ + 1;
        coev::spawn(loop, never(counted{}));
        // Locals and parameter copies of the frames (GCC also keeps inner()'s argument alive
        // across the co_await that consumes it).
        CHECK(counted::live() >= 5);
    }
    CHECK(counted::live() == 0);
    const auto lines = logs.lines();
    CAPTURE(lines);
    const std::string what = "task still suspended when its loop was destroyed at ";
    CHECK(logs.contains(what + location(__FILE__, fd_spawn_line)));
    CHECK(logs.contains(what + location(__FILE__, sleep_spawn_line)));
    CHECK(logs.contains(what + location(__FILE__, unstarted_spawn_line)));
    CHECK(logs.count(what) == 3);
}

TEST_CASE("dump() lists each pending wait with its location") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::signal_set signals(loop, {SIGUSR1});
    std::stop_source stop;
    int fd_line = 0, sleep_line = 0, signal_line = 0;
    auto fd_waiter = [&]() -> coev::task<> {
        fd_line = __LINE__ + 1;
        (void)co_await coev::wait_writable(s.a.get(), loop.now() + 1h);
    };
    auto sleeper = [&]() -> coev::task<> {
        sleep_line = __LINE__ + 1;
        (void)co_await coev::sleep_for(1h);
    };
    auto signal_waiter = [&]() -> coev::task<> {
        signal_line = __LINE__ + 1;
        (void)co_await signals.wait();
    };
    coev_test::fill_send_buffer(s.a.get());
    coev::spawn(loop, fd_waiter(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, sleeper(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, signal_waiter(), coev::spawn_options{.stop = stop.get_token()});
    loop.poll();
    const auto lines = dump_lines(loop);
    CAPTURE(lines);
    REQUIRE(lines.size() == 5);  // header, fd wait, its deadline, the sleep, the signal wait
    CHECK(lines[0].find("event_loop backend=" + std::string(loop.backend_name())) == 0);
    CHECK(lines[0].find("timers=2 waits=2") != std::string::npos);
    CHECK(lines[1] ==
          "  fd " + std::to_string(s.a.get()) + " write waiting at " + location(__FILE__, fd_line));
    // Both timers are due in an hour: either may come first.
    const std::string sleep_at = "(sleep at " + location(__FILE__, sleep_line) + ")";
    const std::string deadline_at = "(deadline of fd " + std::to_string(s.a.get()) +
                                    " write at " + location(__FILE__, fd_line) + ")";
    for (int i : {2, 3}) {
        CAPTURE(i);
        CHECK(lines[std::size_t(i)].find("  timer due in ") == 0);
    }
    const bool sleep_first = lines[2].ends_with(sleep_at);
    CHECK(lines[sleep_first ? 2 : 3].ends_with(sleep_at));
    CHECK(lines[sleep_first ? 3 : 2].ends_with(deadline_at));
    CHECK(lines[4] ==
          "  signal wait {" + std::to_string(SIGUSR1) + "} at " + location(__FILE__, signal_line));
    stop.request_stop();
    {
        watchdog wd(loop);
        loop.run();
    }
    CHECK(dump_lines(loop).size() == 1);
}

TEST_CASE("dump() names the timers of with_timeout and stop_after") {
    coev::event_loop loop;
    std::stop_source stop;
    int sleep_line = 0;
    auto waiter = [&]() -> coev::task<> {
        sleep_line = __LINE__ + 1;
        (void)co_await coev::with_timeout(1h, coev::sleep_for(2h));
    };
    coev::spawn(loop, waiter(), coev::spawn_options{.stop = stop.get_token()});
    loop.poll();
    loop.stop_after(50ms);  // lets run() below return once the waiter is gone
    const auto lines = dump_lines(loop);
    CAPTURE(lines);
    REQUIRE(lines.size() == 4);  // header, and the three timers in the heap's order
    auto has = [&](const std::string& what) {
        return std::count_if(lines.begin() + 1, lines.end(), [&](const std::string& l) {
                   return l.find("  timer due in ") == 0 && l.ends_with(what);
               }) == 1;
    };
    CHECK(has("(with_timeout)"));
    CHECK(has("(stop_after)"));
    CHECK(has("(sleep at " + location(__FILE__, sleep_line) + ")"));
    stop.request_stop();
    watchdog wd(loop);
    loop.run();
    CHECK_FALSE(wd.fired());
}

TEST_CASE("a cancelled wait leaves nothing in dump() and nothing pending") {
    coev::event_loop loop;
    auto s = make_socket_pair();
    coev::signal_set signals(loop, {SIGUSR1});
    std::stop_source stop;
    std::error_code outcome;
    auto record = [&](std::error_code ec) { outcome = ec; };
    std::vector<std::byte> buf(16);
    std::vector<std::byte> big(1 << 20);
    std::size_t lines_while_waiting = 0;
    int kind = 0;
    SUBCASE("sleep_for") { kind = 0; }
    SUBCASE("wait_readable") { kind = 1; }
    SUBCASE("wait_writable with a deadline") { kind = 2; }
    SUBCASE("read_some") { kind = 3; }
    SUBCASE("write_some on a full socket") { kind = 4; }
    SUBCASE("signal wait") { kind = 5; }
    SUBCASE("sleep_for cancelled from another thread") { kind = 6; }
    if (kind == 4 || kind == 2) coev_test::fill_send_buffer(s.a.get());
    auto waiter = [&]() -> coev::task<> {
        switch (kind) {
            case 0:
            case 6:
                record((co_await coev::sleep_for(1h)).error());
                break;
            case 1:
                record((co_await coev::wait_readable(s.a.get())).error());
                break;
            case 2:
                record((co_await coev::wait_writable(s.a.get(), loop.now() + 1h)).error());
                break;
            case 3:
                record((co_await coev::read_some(s.a.get(), buf)).error());
                break;
            case 4:
                record((co_await coev::write_some(s.a.get(), big)).error());
                break;
            case 5:
                record((co_await signals.wait()).error());
                break;
        }
    };
    std::thread other;
    auto canceller = [&]() -> coev::task<> {
        lines_while_waiting = dump_lines(loop).size();
        if (kind == 6)
            other = std::thread([&] { stop.request_stop(); });
        else
            stop.request_stop();
        co_return;
    };
    coev::spawn(loop, waiter(), coev::spawn_options{.stop = stop.get_token()});
    coev::spawn(loop, canceller());  // runs once the wait is armed
    {
        watchdog wd(loop);
        loop.run();
        CHECK_FALSE(wd.fired());
    }
    if (other.joinable()) other.join();
    CHECK(outcome == std::errc::operation_canceled);
    CHECK(lines_while_waiting >= 2);  // the header and the wait: the check below means something
    const auto lines = dump_lines(loop);
    CAPTURE(lines);
    CHECK(lines.size() == 1);
    CHECK(lines[0].find("ready=0 timers=0 waits=0") != std::string::npos);
    CHECK_FALSE(loop.has_pending());
}

TEST_CASE("the log level drops lines below it; a line logged by the handler does not deadlock") {
    const coev::log_level was = coev::get_log_level();
    std::vector<std::string> seen;
    coev::set_log_handler([&](coev::log_level, std::string_view line) {
        seen.emplace_back(line);
        coev::log(coev::log_level::error, "from inside the handler");  // to stderr instead
    });
    coev::set_log_level(coev::log_level::warn);
    CHECK(coev::get_log_level() == coev::log_level::warn);
    coev::log(coev::log_level::info, "dropped");
    coev::log(coev::log_level::error, "kept");
    coev::set_log_level(coev::log_level::debug);
    coev::log(coev::log_level::debug, "kept too");
    coev::set_log_handler(nullptr);
    coev::set_log_level(was);
    CHECK(seen == std::vector<std::string>{"kept", "kept too"});
}

namespace {
int fatal_pipe = -1;
void fatal_to_pipe(std::string_view message) {
    [[maybe_unused]] auto r = ::write(fatal_pipe, message.data(), message.size());
}
}  // namespace

TEST_CASE("fatal() calls the fatal handler, then aborts") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(p[0]);
        ::signal(SIGABRT, SIG_DFL);  // doctest's crash report would print from the child
        fatal_pipe = p[1];
        coev::set_fatal_handler(&fatal_to_pipe);
        coev::fatal("the end");
        ::_exit(0);  // not reached: fatal() never returns
    }
    ::close(p[1]);
    char buf[64] = {};
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    ::close(p[0]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(std::string(buf, n > 0 ? std::size_t(n) : 0) == "the end");
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
}

TEST_CASE("result<T>::value() throws std::system_error carrying the error") {
    coev::result<int> bad = std::make_error_code(std::errc::timed_out);
    REQUIRE_FALSE(bad.has_value());
    try {
        (void)bad.value();
        FAIL("value() returned");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::timed_out);
    }
    coev::result<void> bad_void = std::make_error_code(std::errc::operation_canceled);
    CHECK_THROWS_AS(bad_void.value(), std::system_error);
    coev::result<int> good = 7;
    CHECK(good.value() == 7);
}
