// runtime/src/backend/poll.cpp
// poll(2), level-triggered: the pollfd array holds the fds someone waits on, with the events
// they wait for, and parks (negates) the fds whose waits ended; adding, changing and parking
// one is O(1), and parked entries are dropped in amortised O(1).
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
            if (at != none && pfds_[at].fd >= 0) park(at);
            return;
        }
        if (at == none) {
            index_[i] = pfds_.size();
            pfds_.push_back({fd, events, 0});
            return;
        }
        if (pfds_[at].fd < 0) --parked_;
        pfds_[at].fd = fd;
        pfds_[at].events = events;
    }

    void forget(int fd, fd_state& st) noexcept override {
        auto i = static_cast<std::size_t>(fd);
        if (i < index_.size() && index_[i] != none) {
            const std::size_t at = index_[i];
            index_[i] = none;
            pfds_[at].events = 0;  // no owner any more: compaction drops it
            if (pfds_[at].fd >= 0) park(at);
        }
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
        const bool wake = pfds_[0].revents, signal = pfds_[1].revents;
        int left = n - int(wake) - int(signal);
        // The scan visits every watched fd, each iteration, and stops at the last one ready:
        // four entries to a test while none is, in locals rather than members a push_back
        // might change (it was 40 % of the user time of bench/pipe_chain on poll).
        const pollfd* p = pfds_.data() + 2;
        const pollfd* const end = pfds_.data() + pfds_.size();
        auto take = [&](const pollfd& e) {
            --left;
            std::uint8_t bits = 0;
            if (e.revents & (POLLIN | POLLHUP | POLLERR)) bits |= 1;
            if (e.revents & (POLLOUT | POLLHUP | POLLERR)) bits |= 2;
            // POLLNVAL: closed while watched (bits 0 marks it for forget_fd below).
            ready_.push_back({e.fd, (e.revents & POLLNVAL) ? std::uint8_t(0) : bits});
        };
        for (; left > 0 && end - p >= 4; p += 4) {
            if (!(p[0].revents | p[1].revents | p[2].revents | p[3].revents)) continue;
            for (int k = 0; k < 4; ++k)
                if (p[k].revents) take(p[k]);
        }
        for (; left > 0 && p != end; ++p)
            if (p->revents) take(*p);
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

    // A wait that ends leaves its fd's entry in place, negated (poll skips negative fds), and
    // the next wait on that fd takes it back. Removing it (swapping the last entry in) made a
    // reader that waits again and again move to the end of the array each time: within a few
    // rounds the array's order, in which the kernel visits every watched file, had nothing to
    // do with where those files lie in memory, and the kernel's scan took 7 % longer than
    // libevent's (bench/pipe_chain; docs/benchmarks.md). Parked entries are dropped in one
    // pass, keeping the order of the rest, once they are half the array.
    void park(std::size_t at) noexcept {
        pfds_[at].fd = ~pfds_[at].fd;
        ++parked_;
        if (parked_ > 64 && parked_ * 2 > pfds_.size()) compact();
    }
    void compact() noexcept {
        std::size_t out = 2;  // the wake-up and signal entries stay first
        for (std::size_t in = 2; in < pfds_.size(); ++in) {
            pollfd p = pfds_[in];
            const int fd = p.fd >= 0 ? p.fd : ~p.fd;
            if (p.fd < 0) {
                // events 0: forget() let the number go already, and it may be watched again.
                if (p.events != 0) index_[std::size_t(fd)] = none;
                continue;
            }
            index_[std::size_t(fd)] = out;
            pfds_[out++] = p;
        }
        pfds_.resize(out);
        parked_ = 0;
    }

    int wakefd_ = -1;
    std::vector<pollfd> pfds_;
    std::vector<std::size_t> index_;  // fd -> its place in pfds_, or none
    std::size_t parked_ = 0;          // entries with a negated fd (see park())
    std::vector<std::pair<int, std::uint8_t>> ready_;
};

}  // namespace

std::unique_ptr<backend> make_poll_backend() { return std::make_unique<poll_backend>(); }

}  // namespace coev::detail
