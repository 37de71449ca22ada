// runtime/src/backend/epoll.cpp
// epoll, edge-triggered: an fd is registered once for in, out and rdhup and stays registered;
// the loop's readiness cache turns edges into "try the call, wait only on EAGAIN".
#include "backend.hpp"

#include "config.hpp"

#include "../signal_hub.hpp"

#include <coev/runtime/log.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <vector>

namespace coev::detail {
namespace {

constexpr std::uint64_t wake_tag = std::uint64_t{1} << 40;
constexpr std::uint64_t signal_tag = std::uint64_t{1} << 41;
constexpr std::uint32_t all_events = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET;

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

class epoll_backend final : public backend {
public:
    epoll_backend() : events_(64) {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) throw std::system_error(last_error(), "epoll_create1");
        wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wakefd_ < 0) {
            auto ec = last_error();
            ::close(epfd_);
            throw std::system_error(ec, "eventfd");
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = wake_tag;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) {
            auto ec = last_error();
            ::close(wakefd_);
            ::close(epfd_);
            throw std::system_error(ec, "epoll_ctl(eventfd)");
        }
    }
    ~epoll_backend() override {
        ::close(wakefd_);
        ::close(epfd_);
    }

    std::string_view name() const noexcept override { return "epoll"; }
    backend_feature features() const noexcept override {
        return backend_feature::edge_triggered | backend_feature::o1_add_remove |
               backend_feature::arbitrary_fds;
    }

    std::error_code watch(int fd, fd_state& st, bool rearm) noexcept override {
        epoll_event ev{};
        ev.events = all_events;
        ev.data.u64 = static_cast<std::uint32_t>(fd);
        if (!st.registered) {
            if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) {
                st.registered = true;
                return {};
            }
            if (errno != EEXIST) return last_error();
            // Registered under a closed-and-reused number that was never forgotten: re-arm.
        } else if (!rearm) {
            return {};
        }
        // MOD re-queues the fd if it is ready now: level semantics on an ET registration.
        if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) {
            st.registered = true;
            return {};
        }
        if (errno != ENOENT) return last_error();
        // The number was closed (epoll dropped it) and reused without forget_fd(): add anew.
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) {
            st.registered = true;
            return {};
        }
        return last_error();
    }

    void forget(int fd, fd_state& st) noexcept override {
        if (st.registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        st.registered = false;
    }

    std::error_code watch_signal_fd(int fd) noexcept override {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = signal_tag;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) return last_error();
        return {};
    }

    void wait(event_loop& loop, std::int64_t timeout_ns) override {
        ++calls;
        int n = wait_for(timeout_ns);
        if (n < 0) {
            if (errno == EINTR) return;
            fatal(std::string("epoll_wait failed: ") + std::strerror(errno));
        }
        // Each event's entry, then its waiter one event ahead: the memory arrives while the
        // previous event's read runs in the kernel.
        // (The wake-up and signal tags are past any fd: prefetch_* ignore them.)
        for (int i = 0; i < n; ++i) loop.prefetch_fd(fd_of(events_[i]));
        for (int i = 0; i < n; ++i) {
            const epoll_event& e = events_[i];
            if (i + 1 < n) loop.prefetch_waiters(fd_of(events_[i + 1]));
            if (e.data.u64 == wake_tag) {
                std::uint64_t v;
                while (::read(wakefd_, &v, sizeof v) > 0) {
                }
                continue;
            }
            if (e.data.u64 == signal_tag) {
                loop.signals().on_readable();
                continue;
            }
            std::uint8_t bits = 0;
            // Errors and hang-ups wake both sides: the next call reports what happened.
            if (e.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) bits |= 1;
            if (e.events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) bits |= 2;
            // The peer's close is an edge that never comes again: remember it for good.
            if (e.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) bits |= fd_state::read_closed;
            // Urgent data: readable, and short reads stop proving the socket drained.
            if (e.events & EPOLLPRI) bits |= 1 | fd_state::urgent;
            loop.on_fd_event(static_cast<int>(e.data.u64), bits);
        }
        if (static_cast<std::size_t>(n) == events_.size() && events_.size() < 4096)
            events_.resize(events_.size() * 2);
    }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wakefd_, &one, sizeof one);
    }

private:
    // An event's fd, or -1 for the wake-up and signal tags.
    static int fd_of(const epoll_event& e) noexcept {
        return e.data.u64 >> 31 ? -1 : static_cast<int>(e.data.u64);
    }
    int wait_for(std::int64_t timeout_ns) noexcept {
        const int max = static_cast<int>(events_.size());
#if COEV_HAVE_EPOLL_PWAIT2
        if (have_pwait2_ && timeout_ns > 0) {
            timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                        static_cast<long>(timeout_ns % 1'000'000'000)};
            int n = ::epoll_pwait2(epfd_, events_.data(), max, &ts, nullptr);
            if (n >= 0 || errno != ENOSYS) return n;
            have_pwait2_ = false;  // kernel older than 5.11
        }
#endif
        int ms = -1;
        if (timeout_ns >= 0) {
            // Round up: waking before the deadline would only spin.
            std::int64_t m = (timeout_ns + 999'999) / 1'000'000;
            ms = m > 0x7fffffff ? 0x7fffffff : static_cast<int>(m);
        }
        return ::epoll_wait(epfd_, events_.data(), max, ms);
    }

    int epfd_ = -1;
    int wakefd_ = -1;
    std::vector<epoll_event> events_;
#if COEV_HAVE_EPOLL_PWAIT2
    bool have_pwait2_ = true;
#endif
};

}  // namespace

std::unique_ptr<backend> make_epoll_backend() { return std::make_unique<epoll_backend>(); }

}  // namespace coev::detail
