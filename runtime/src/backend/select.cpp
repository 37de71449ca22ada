// runtime/src/backend/select.cpp
// select(2), level-triggered: for systems (and comparisons) where nothing better exists. It
// cannot watch an fd >= FD_SETSIZE; such a wait fails with invalid_argument instead of
// writing past the fd_set.
#include "backend.hpp"

#include "../signal_hub.hpp"

#include <coev/runtime/log.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <unistd.h>
#include <vector>

namespace coev::detail {
namespace {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

class select_backend final : public backend {
public:
    select_backend() {
        FD_ZERO(&read_);
        FD_ZERO(&write_);
        wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wakefd_ < 0) throw std::system_error(last_error(), "eventfd");
        if (wakefd_ >= FD_SETSIZE) {
            ::close(wakefd_);
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "select: no fd below FD_SETSIZE for the wake-up eventfd");
        }
    }
    ~select_backend() override { ::close(wakefd_); }

    std::string_view name() const noexcept override { return "select"; }
    backend_feature features() const noexcept override { return backend_feature::none; }

    std::error_code watch(int fd, fd_state& st, bool) noexcept override {
        if (fd >= FD_SETSIZE) return std::make_error_code(std::errc::invalid_argument);
        if (st.registered) return {};
        std::error_code ec = check_fd(fd);
        st.registered = !ec;
        return ec;
    }

    void update(int fd, fd_state& st) noexcept override {
        if (fd >= FD_SETSIZE) return;  // watch() refused it already
        if (st.reader) FD_SET(fd, &read_);
        else FD_CLR(fd, &read_);
        if (st.writer) FD_SET(fd, &write_);
        else FD_CLR(fd, &write_);
        if (st.reader || st.writer) max_fd_ = std::max(max_fd_, fd);
    }

    void forget(int fd, fd_state& st) noexcept override {
        if (fd < FD_SETSIZE) {
            FD_CLR(fd, &read_);
            FD_CLR(fd, &write_);
        }
        st.registered = false;
    }

    std::error_code watch_signal_fd(int fd) noexcept override {
        if (fd >= FD_SETSIZE) return std::make_error_code(std::errc::invalid_argument);
        signalfd_ = fd;
        return {};
    }

    void wait(event_loop& loop, std::int64_t timeout_ns) override {
        fd_set r = read_, w = write_;
        FD_SET(wakefd_, &r);
        int top = std::max(max_fd_, wakefd_);
        if (signalfd_ >= 0) {
            FD_SET(signalfd_, &r);
            top = std::max(top, signalfd_);
        }
        timespec ts{};
        if (timeout_ns >= 0) {
            ts.tv_sec = time_t(timeout_ns / 1'000'000'000);
            ts.tv_nsec = long(timeout_ns % 1'000'000'000);
        }
        ++calls;
        int n = ::pselect(top + 1, &r, &w, nullptr, timeout_ns >= 0 ? &ts : nullptr, nullptr);
        if (n < 0) {
            if (errno == EINTR) return;
            if (errno == EBADF) {
                drop_closed(loop);
                return;
            }
            fatal(std::string("select failed: ") + std::strerror(errno));
        }
        if (n == 0) return;
        if (FD_ISSET(wakefd_, &r)) {
            std::uint64_t v;
            while (::read(wakefd_, &v, sizeof v) > 0) {
            }
        }
        if (signalfd_ >= 0 && FD_ISSET(signalfd_, &r)) loop.signals().on_readable();
        // A word of 64 fds at a time, and only the set bits of it: the scan runs every
        // iteration over every watched fd. The highest fd still watched shrinks lazily,
        // here, where the sets are read anyway.
        const words rs = bits_of(r), ws = bits_of(w), watched_r = bits_of(read_),
                    watched_w = bits_of(write_);
        int highest = -1;
        const int last = max_fd_ / 64;
        for (int i = 0; i <= last; ++i) {
            std::uint64_t any = rs[std::size_t(i)] | ws[std::size_t(i)];
            while (any) {
                const int bit = __builtin_ctzll(any);
                any &= any - 1;
                const int fd = i * 64 + bit;
                if (fd > max_fd_ || fd == wakefd_ || fd == signalfd_) continue;
                const std::uint64_t m = std::uint64_t{1} << bit;
                loop.on_fd_event(fd, std::uint8_t((rs[std::size_t(i)] & m ? 1 : 0) |
                                                  (ws[std::size_t(i)] & m ? 2 : 0)));
            }
            if (const std::uint64_t wanted = watched_r[std::size_t(i)] | watched_w[std::size_t(i)])
                highest = i * 64 + 63 - __builtin_clzll(wanted);
        }
        max_fd_ = std::min(highest, max_fd_);
    }

    // fd_set as 64-bit words: fd f is bit f % 64 of word f / 64 (glibc's and musl's layout).
    using words = std::array<std::uint64_t, FD_SETSIZE / 64>;
    static_assert(sizeof(fd_set) == sizeof(words));
    // With 32-bit words (fd_set's are longs) only a little-endian layout keeps that numbering.
    static_assert(sizeof(long) == 8 || std::endian::native == std::endian::little);
    static words bits_of(const fd_set& s) noexcept {
        words out;
        std::memcpy(out.data(), &s, sizeof out);
        return out;
    }

    // An fd was closed while watched: its waiters resume with error::closed.
    void drop_closed(event_loop& loop) noexcept {
        for (int fd = 0; fd <= max_fd_; ++fd) {
            if ((FD_ISSET(fd, &read_) || FD_ISSET(fd, &write_)) && ::fcntl(fd, F_GETFD) < 0)
                loop.forget_fd(fd);
        }
    }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wakefd_, &one, sizeof one);
    }

private:
    int wakefd_ = -1;
    int signalfd_ = -1;
    int max_fd_ = -1;
    fd_set read_, write_;
};

}  // namespace

std::unique_ptr<backend> make_select_backend() { return std::make_unique<select_backend>(); }

}  // namespace coev::detail
