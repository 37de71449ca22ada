// tests/runtime/helpers.hpp
// What the runtime tests share: socket pairs, a watchdog that turns a hang into a failure, a log
// capture for debug-mode checks, and a few time helpers.
#pragma once

#include <coev/runtime.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <mutex>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <vector>

namespace coev_test {

using namespace std::chrono_literals;

/// Both ends of a non-blocking AF_UNIX socketpair (local, like loopback).
struct socket_pair {
    coev::unique_fd a;
    coev::unique_fd b;
};

inline socket_pair make_socket_pair(int type = SOCK_STREAM) {
    int fds[2];
    if (::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::system_error(errno, std::system_category(), "socketpair");
    return {coev::unique_fd(fds[0]), coev::unique_fd(fds[1])};
}

/// Both ends of a non-blocking pipe.
struct pipe_pair {
    coev::unique_fd read_end;
    coev::unique_fd write_end;
};

inline pipe_pair make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        throw std::system_error(errno, std::system_category(), "pipe2");
    return {coev::unique_fd(fds[0]), coev::unique_fd(fds[1])};
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
    return std::as_bytes(std::span(s.data(), s.size()));
}

/// A plain non-blocking send for test setup; returns bytes sent or -errno.
inline long send_now(int fd, std::string_view s) noexcept {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    return n < 0 ? -errno : long(n);
}

/// Fills the socket's send buffer until the kernel refuses more.
inline void fill_send_buffer(int fd) {
    std::vector<char> junk(64 * 1024, 'x');
    for (int i = 0; i < 10'000 && ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) > 0; ++i) {
    }
}

/// Busy-waits: work that takes time without giving the loop a chance to run.
inline void spin_for(coev::duration d) noexcept {
    const auto end = coev::clock::now() + d;
    while (coev::clock::now() < end) {
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
inline rlim_t raise_fd_limit() noexcept {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
    return lim.rlim_cur;
}

/// Stops `loop` from another thread if the test is still running after `limit`: a hang becomes a
/// failed check instead of a stuck suite. Destroy it before the loop.
class watchdog {
public:
    explicit watchdog(coev::event_loop& loop, std::chrono::seconds limit = 10s)
        : thread_([this, &loop, limit] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  fired_ = true;
                  loop.stop();
              }
          }) {}
    watchdog(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }
    bool fired() const noexcept { return fired_; }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::atomic<bool> fired_{false};
    std::thread thread_;  // last: starts once the members above exist
};

/// Captures coev's log lines (and turns debug mode on) for the scope; restores both after.
class log_capture {
public:
    explicit log_capture(bool debug = true) : was_debug_(coev::debug_mode()) {
        coev::set_debug_mode(debug);
        coev::set_log_handler([this](coev::log_level, std::string_view line) {
            std::lock_guard lock(mutex_);
            lines_.emplace_back(line);
        });
    }
    log_capture(const log_capture&) = delete;
    ~log_capture() {
        coev::set_log_handler(nullptr);
        coev::set_debug_mode(was_debug_);
    }
    std::vector<std::string> lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }
    std::size_t count(std::string_view needle) const {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& l : lines_) n += l.find(needle) != std::string::npos;
        return n;
    }
    bool contains(std::string_view needle) const { return count(needle) > 0; }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
    bool was_debug_;
};

/// "file:line" as coev's debug reports print a std::source_location.
/// How coev prints a location: "file:line", or ":0" where the compiler records none (clang 14
/// has no __builtin_source_location; see coev/runtime/source_location.hpp).
inline std::string location(const char* file, int line) {
    if (coev::source_location::current().line() == 0) return ":0";
    return std::string(file) + ":" + std::to_string(line);
}

/// For its lifetime, SIGPIPE is counted instead of killing the test binary: a write that raises
/// one fails a check rather than the whole suite.
class sigpipe_counter {
public:
    sigpipe_counter() {
        struct sigaction mine {};
        mine.sa_handler = &on_signal;
        sigemptyset(&mine.sa_mask);
        caught_ = 0;
        REQUIRE(::sigaction(SIGPIPE, &mine, &previous_) == 0);
    }
    sigpipe_counter(const sigpipe_counter&) = delete;
    sigpipe_counter& operator=(const sigpipe_counter&) = delete;
    ~sigpipe_counter() { ::sigaction(SIGPIPE, &previous_, nullptr); }
    int count() const noexcept { return int(caught_); }

private:
    static void on_signal(int) { caught_ = caught_ + 1; }
    static inline volatile std::sig_atomic_t caught_ = 0;
    struct sigaction previous_ {};
};

/// Counts live instances: constructions minus destructions must return to zero.
struct counted {
    static inline int made = 0;
    static inline int gone = 0;
    static int live() noexcept { return made - gone; }
    counted() noexcept { ++made; }
    counted(const counted&) noexcept { ++made; }
    counted(counted&&) noexcept { ++made; }
    counted& operator=(const counted&) = default;
    ~counted() { ++gone; }
};

}  // namespace coev_test

// Failure messages show vectors and durations instead of "{?}".
namespace doctest {
template <class T> struct StringMaker<std::vector<T>> {
    static String convert(const std::vector<T>& v) {
        std::string out = "{";
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (i) out += ", ";
            out += toString(v[i]).c_str();
        }
        return (out + "}").c_str();
    }
};
template <class Rep, class Period> struct StringMaker<std::chrono::duration<Rep, Period>> {
    static String convert(const std::chrono::duration<Rep, Period>& d) {
        std::ostringstream out;
        out << std::chrono::duration_cast<std::chrono::nanoseconds>(d).count() << "ns";
        return out.str().c_str();
    }
};
}  // namespace doctest
