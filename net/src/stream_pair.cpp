// net/src/stream_pair.cpp
#include <coev/net/stream_pair.hpp>

#include <algorithm>
#include <cerrno>

namespace coev::net {

namespace detail {

// One direction: the bytes in flight and who waits on either side of them.
struct pair_direction {
    buffer bytes;
    bool eof = false;     // the writer shut down or closed: the reader gets 0 after the bytes
    bool broken = false;  // the reader closed: writes fail
    notifier readable;    // the reader waits here
    notifier writable;    // the writer waits here for room
};

struct pair_state {
    std::size_t capacity;
    pair_direction dir[2];  // dir[i]: what end i reads
    bool closed[2] = {false, false};
};

}  // namespace detail

namespace {
std::error_code broken_pipe() { return std::make_error_code(std::errc::broken_pipe); }
std::error_code closed() { return make_error_code(error::closed); }
}  // namespace

std::pair<stream_pair::end, stream_pair::end> stream_pair::make(options o) {
    auto st = std::make_shared<detail::pair_state>();
    st->capacity = std::max<std::size_t>(o.capacity, 1);
    return {end(st, 0), end(st, 1)};
}

stream_pair::end& stream_pair::end::operator=(end&& o) noexcept {
    if (this != &o) {
        close();
        st_ = std::move(o.st_);
        side_ = o.side_;
    }
    return *this;
}

stream_pair::end::~end() { close(); }

bool stream_pair::end::is_open() const noexcept { return st_ && !st_->closed[side_]; }

result<std::size_t> stream_pair::end::try_read_some(std::span<std::byte> buf) noexcept {
    if (!is_open()) return closed();
    auto& in = st_->dir[side_];
    if (in.bytes.empty()) {
        if (in.eof) return std::size_t(0);
        return std::error_code(EAGAIN, std::system_category());
    }
    const std::size_t n = in.bytes.remove(buf);
    if (n > 0) in.writable.notify();
    return n;
}

task<result<void>> stream_pair::end::wait_readable() {
    for (;;) {
        if (!is_open()) co_return closed();
        auto& in = st_->dir[side_];
        if (!in.bytes.empty() || in.eof) co_return result<void>{};
        auto r = co_await in.readable.wait();
        if (!r) co_return r.error();
    }
}

task<result<std::size_t>> stream_pair::end::read_some(std::span<std::byte> buf) {
    if (buf.empty()) co_return std::size_t(0);
    for (;;) {
        auto n = try_read_some(buf);
        if (n || n.error() != std::errc::resource_unavailable_try_again) co_return n;
        auto r = co_await st_->dir[side_].readable.wait();
        if (!r) co_return r.error();
    }
}

task<result<std::size_t>> stream_pair::end::write_some(std::span<const std::byte> buf) {
    if (buf.empty()) co_return std::size_t(0);
    for (;;) {
        if (!is_open()) co_return closed();
        auto& out = st_->dir[1 - side_];
        if (out.broken || out.eof) co_return broken_pipe();
        if (out.bytes.size() < st_->capacity) {
            const std::size_t n = std::min(buf.size(), st_->capacity - out.bytes.size());
            out.bytes.append(buf.first(n));
            out.readable.notify();
            co_return n;
        }
        auto r = co_await out.writable.wait();
        if (!r) co_return r.error();
    }
}

task<result<std::size_t>> stream_pair::end::writev_some(std::span<const iovec> iov) {
    for (;;) {
        if (!is_open()) co_return closed();
        auto& out = st_->dir[1 - side_];
        if (out.broken || out.eof) co_return broken_pipe();
        if (out.bytes.size() < st_->capacity) {
            std::size_t room = st_->capacity - out.bytes.size(), n = 0;
            for (const iovec& v : iov) {
                const std::size_t take = std::min(room - n, v.iov_len);
                out.bytes.append({static_cast<const std::byte*>(v.iov_base), take});
                n += take;
                if (n == room) break;
            }
            if (n > 0) out.readable.notify();
            co_return n;
        }
        auto r = co_await out.writable.wait();
        if (!r) co_return r.error();
    }
}

task<result<std::size_t>> stream_pair::end::write(buffer&& data) {
    for (;;) {
        if (!is_open()) co_return closed();
        auto& out = st_->dir[1 - side_];
        if (out.broken || out.eof) co_return broken_pipe();
        if (out.bytes.size() < st_->capacity) {
            const std::size_t n = data.size();
            out.bytes.append(std::move(data));
            if (n > 0) out.readable.notify();
            co_return n;
        }
        auto r = co_await out.writable.wait();
        if (!r) co_return r.error();
    }
}

result<void> stream_pair::end::shutdown_write() noexcept {
    if (!is_open()) return closed();
    auto& out = st_->dir[1 - side_];
    out.eof = true;
    out.readable.notify();
    return {};
}

void stream_pair::end::close() noexcept {
    if (!is_open()) return;
    st_->closed[side_] = true;
    auto& out = st_->dir[1 - side_];
    out.eof = true;
    out.readable.notify();
    auto& in = st_->dir[side_];
    in.broken = true;
    in.writable.notify();
    // Our own waiters (a task of ours still inside read or write) wake up to see the close.
    in.readable.notify();
    out.writable.notify();
}

}  // namespace coev::net
