// runtime/src/backend/poll.cpp
// poll(2), level-triggered: the pollfd array holds exactly the fds someone waits on, with the
// events they wait for; adding, changing and removing one is O(1) (swap with the last).
#include "backend.hpp"

#include "../signal_hub.hpp"

#include <coev/runtime/log.hpp>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <unistd.h>
#include <vector>

namespace coev::detail {
namespace {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

class poll_backend final : public backend {
public:
    poll_backend() {
        wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wakefd_ < 0) throw std::system_error(last_error(), "eventfd");
        pfds_.push_back({wakefd_, POLLIN, 0});  // [0]: wake-ups
        pfds_.push_back({-1, POLLIN, 0});       // [1]: the signalfd, once there is one
    }
    ~poll_backend() override { ::close(wakefd_); }

    std::string_view name() const noexcept override { return "poll"; }
    backend_feature features() const noexcept override { return backend_feature::arbitrary_fds; }

    std::error_code watch(int fd, fd_state& st, bool) noexcept override {
        if (st.registered) return {};
        std::error_code ec = check_fd(fd);
        st.registered = !ec;
        return ec;
    }

    void update(int fd, fd_state& st) noexcept override {
        short events = short((st.reader ? POLLIN : 0) | (st.writer ? POLLOUT : 0));
        auto i = static_cast<std::size_t>(fd);
        if (i >= index_.size()) index_.resize(i + 1, none);
        std::size_t at = index_[i];
        if (events == 0) {
            if (at != none) remove_at(at);
            return;
        }
        if (at == none) {
            index_[i] = pfds_.size();
            pfds_.push_back({fd, events, 0});
        } else {
            pfds_[at].events = events;
        }
    }

    void forget(int fd, fd_state& st) noexcept override {
        auto i = static_cast<std::size_t>(fd);
        if (i < index_.size() && index_[i] != none) remove_at(index_[i]);
        st.registered = false;
    }

    std::error_code watch_signal_fd(int fd) noexcept override {
        pfds_[1].fd = fd;
        return {};
    }

    void wait(event_loop& loop, std::int64_t timeout_ns) override {
        timespec ts{};
        if (timeout_ns >= 0) {
            ts.tv_sec = time_t(timeout_ns / 1'000'000'000);
            ts.tv_nsec = long(timeout_ns % 1'000'000'000);
        }
        ++calls;
        int n = ::ppoll(pfds_.data(), pfds_.size(), timeout_ns >= 0 ? &ts : nullptr, nullptr);
        if (n < 0) {
            if (errno == EINTR) return;
            fatal(std::string("poll failed: ") + std::strerror(errno));
        }
        if (n == 0) return;
        // Reporting may change the array (a completed wait drops its fd): collect first.
        ready_.clear();
        bool wake = false, signal = false;
        for (std::size_t i = 0; i < pfds_.size() && ready_.size() < std::size_t(n); ++i) {
            const pollfd& p = pfds_[i];
            if (!p.revents) continue;
            if (i == 0) {
                wake = true;
                continue;
            }
            if (i == 1) {
                signal = true;
                continue;
            }
            std::uint8_t bits = 0;
            if (p.revents & (POLLIN | POLLHUP | POLLERR)) bits |= 1;
            if (p.revents & (POLLOUT | POLLHUP | POLLERR)) bits |= 2;
            // POLLNVAL: closed while watched (bits 0 marks it for forget_fd below).
            ready_.push_back({p.fd, (p.revents & POLLNVAL) ? std::uint8_t(0) : bits});
        }
        if (wake) {
            std::uint64_t v;
            while (::read(wakefd_, &v, sizeof v) > 0) {
            }
        }
        if (signal) loop.signals().on_readable();
        for (const auto& [fd, bits] : ready_) {
            if (bits) loop.on_fd_event(fd, bits);
            else loop.forget_fd(fd);  // its waiters resume with error::closed
        }
    }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wakefd_, &one, sizeof one);
    }

private:
    static constexpr std::size_t none = ~std::size_t{0};

    void remove_at(std::size_t at) noexcept {
        index_[std::size_t(pfds_[at].fd)] = none;
        if (at + 1 != pfds_.size()) {
            pfds_[at] = pfds_.back();
            index_[std::size_t(pfds_[at].fd)] = at;
        }
        pfds_.pop_back();
    }

    int wakefd_ = -1;
    std::vector<pollfd> pfds_;
    std::vector<std::size_t> index_;  // fd -> its place in pfds_, or none
    std::vector<std::pair<int, std::uint8_t>> ready_;
};

}  // namespace

std::unique_ptr<backend> make_poll_backend() { return std::make_unique<poll_backend>(); }

}  // namespace coev::detail
