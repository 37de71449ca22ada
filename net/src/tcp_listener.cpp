// net/src/tcp_listener.cpp
// The accept loop every listener shares.
#include <coev/net/listener.hpp>
#include <coev/runtime/log.hpp>
#include <coev/runtime/timer.hpp>

#include <cerrno>
#include <chrono>
#include <fcntl.h>
#include <optional>
#include <stop_token>
#include <unistd.h>

namespace coev::net::detail {

using namespace std::chrono_literals;

struct listener_state {
    net::socket sock;
    bool enabled = true;
    timer gate;                     // a disabled listener's accept() waits here
    std::stop_source interrupt;     // disable() and close() cut the accept wait short
    bool accepting = false;
    // Kept open so that at EMFILE one descriptor can be freed to take and refuse a connection:
    // otherwise the queued connection keeps the socket readable and accept() spins.
    int reserve_fd = -1;
    duration backoff = 0ms;
    std::function<void(std::error_code)> on_error;

    ~listener_state() {
        if (reserve_fd >= 0) ::close(reserve_fd);
    }
    void open_reserve() noexcept {
        if (reserve_fd < 0) reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    void report(std::error_code e) {
        if (on_error) on_error(e);
        else coev::log(log_level::warn, "listener: accept failed: " + e.message());
    }
    void interrupt_accept() noexcept {
        if (accepting) interrupt.request_stop();
        gate.cancel();
    }
};

namespace {

bool transient(int e) noexcept {
    // The connection died while queued, or the firewall refused it: the next one may be fine.
    return e == ECONNABORTED || e == EPROTO || e == EPERM || e == EINTR || e == ENETDOWN ||
           e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
           e == EOPNOTSUPP || e == ENETUNREACH || e == ETIMEDOUT;
}

bool out_of_resources(int e) noexcept {
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

}  // namespace

listener_base::listener_base() noexcept = default;
listener_base::listener_base(listener_base&&) noexcept = default;
listener_base& listener_base::operator=(listener_base&& o) noexcept {
    if (this != &o) {
        close();  // an accept() still running on the old socket ends with error::closed
        st_ = std::move(o.st_);
    }
    return *this;
}
// A task waiting in accept() holds the state too: it resumes with error::closed.
listener_base::~listener_base() { close(); }

result<net::socket> listener_base::open_listening(const endpoint& ep, const listen_options& o) {
    auto s = net::socket::open(ep.family(), SOCK_STREAM);
    if (!s) return s.error();
    if (ep.is_ip() && o.reuse_address) {
        if (auto r = s->set_reuseaddr(true); !r) return r.error();
    }
    if (o.reuse_port) {
        if (auto r = s->set_reuseport(true); !r) return r.error();
    }
    if (ep.family() == AF_INET6) {
        if (auto r = s->set_v6only(o.v6only); !r) return r.error();
    }
    if (auto r = s->bind(ep); !r) return r.error();
    if (auto r = s->listen(o.backlog); !r) return r.error();
    return s;
}

void listener_base::adopt(net::socket s) {
    st_ = std::make_shared<listener_state>();
    st_->sock = std::move(s);
    st_->open_reserve();
}

void listener_base::disable() noexcept {
    if (!st_ || !st_->enabled) return;
    st_->enabled = false;
    st_->interrupt_accept();
}

void listener_base::enable() noexcept {
    if (!st_ || st_->enabled) return;
    st_->enabled = true;
    st_->gate.cancel();
}

bool listener_base::enabled() const noexcept { return st_ && st_->enabled; }

void listener_base::set_error_handler(std::function<void(std::error_code)> fn) {
    if (st_) st_->on_error = std::move(fn);
}

void listener_base::close() noexcept {
    if (!st_) return;
    st_->interrupt_accept();
    st_->sock.close();
}

bool listener_base::is_open() const noexcept { return st_ && st_->sock.is_open(); }

int listener_base::native_handle() const noexcept { return st_ ? st_->sock.native_handle() : -1; }

result<endpoint> listener_base::local_endpoint() const noexcept {
    if (!st_) return std::make_error_code(std::errc::bad_file_descriptor);
    return st_->sock.local_endpoint();
}

task<result<unique_fd>> listener_base::accept_fd(endpoint* peer) {
    coev::detail::promise_base& self = co_await coev::detail::this_promise_t{};
    const std::shared_ptr<listener_state> keep = st_;  // the listener may go while we wait
    listener_state* st = keep.get();
    if (!st) co_return error::closed;
    for (;;) {
        if (!st->sock.is_open()) co_return error::closed;
        if (self.stop->stop_requested()) co_return std::errc::operation_canceled;
        if (!st->enabled) {
            auto r = co_await st->gate.wait_for(std::chrono::hours(24 * 365));
            (void)r;  // enable(), close() or our own stop token: the loop top tells which
            continue;
        }
        if (st->interrupt.stop_requested()) st->interrupt = std::stop_source();
        std::optional<std::stop_callback<coev::detail::forward_stop>> link;
        if (self.stop->stop_possible())
            link.emplace(*self.stop, coev::detail::forward_stop{&st->interrupt});
        const std::stop_token token = st->interrupt.get_token();
        sockaddr_storage ss;
        socklen_t len = sizeof ss;
        std::optional<result<unique_fd>> fd;
        st->accepting = true;
        {
            coev::detail::stop_redirect redirect(self, &token);
            fd.emplace(co_await coev::accept(st->sock.native_handle(),
                                             reinterpret_cast<sockaddr*>(&ss), &len));
        }
        st->accepting = false;
        link.reset();
        if (*fd) {
            st->backoff = 0ms;
            if (peer) {
                auto ep = endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
                *peer = ep ? *ep : endpoint();
            }
            co_return std::move(*fd);
        }
        // Sorted by category and value, not by comparing with std::errc: that asks the category
        // (a virtual call the sanitizers check by opening a pipe, which fails at EMFILE).
        const std::error_code e = fd->error();
        const std::error_category* cat = &e.category();
        if (cat == &coev::error_category() && e.value() == int(error::closed)) continue;
        if (cat != &std::system_category() && cat != &std::generic_category()) co_return e;
        if (e.value() == ECANCELED || transient(e.value())) continue;
        if (!out_of_resources(e.value())) co_return e;
        st->report(e);
        // The hook may have closed or disabled the listener, with no wait yet to cut short:
        // the loop top says what happened, before any back-off.
        if (!st->sock.is_open() || !st->enabled) continue;
        // Free the reserve, take the queued connection and refuse it, then take the reserve back:
        // the peer sees a reset instead of hanging, and the socket stops being readable.
        if (st->reserve_fd >= 0) {
            ::close(std::exchange(st->reserve_fd, -1));
            int c = ::accept4(st->sock.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
            if (c >= 0) ::close(c);
            st->open_reserve();
            if (c >= 0) continue;
        }
        // No descriptor to spare (or the kernel is out of memory): wait before trying again,
        // longer each time, so the loop keeps serving everyone else. On the gate, so that
        // disable() and close() cut the wait short; the loop top tells what happened.
        st->backoff = std::min<duration>(std::max<duration>(st->backoff * 2, 10ms), 1s);
        (void)co_await st->gate.wait_for(st->backoff);
    }
}

}  // namespace coev::net::detail
