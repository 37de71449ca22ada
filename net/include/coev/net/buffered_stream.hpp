// coev/net/buffered_stream.hpp
// An input and an output buffer over any byte stream (libevent's bufferevent): lines, exact
// reads, watermarks for backpressure, per-stream timeouts and rate limits, all awaited.
#pragma once

#include <coev/net/buffer.hpp>
#include <coev/net/byte_stream.hpp>
#include <coev/net/rate_limit.hpp>
#include <coev/runtime/io.hpp>
#include <coev/runtime/timer.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/uio.h>
#include <type_traits>

namespace coev::net {

/// Reads and writes `S` through two buffers. Reading happens only while a task awaits one of the
/// read calls; an idle stream holds no read buffer (it waits with S::wait_readable() and takes
/// memory once bytes are there). Not thread-safe; one reader and one writer at a time.
///
/// Watermarks (bufferevent_setwatermark): fill() reads until the input holds at least
/// max(min, read low) bytes and never past the read high mark (0: none) — with nobody consuming,
/// the stream stops reading and the peer's writes back up (backpressure). read_line, read_until
/// and read_exact read what they need past the high mark, bounded by the maximum line length or
/// the size asked. flush() writes until the output holds at most the write low mark.
///
/// Timeouts (bufferevent_set_timeouts): a read or flush that waits longer than its timeout ends
/// in std::errc::timed_out; the stream stays usable and what was read stays in input().
template <byte_stream S>
class buffered_stream {
public:
    /// Bytes a single read asks the stream for (bufferevent's default maximum read).
    static constexpr std::size_t read_chunk = 16 * 1024;

    explicit buffered_stream(S s) noexcept(std::is_nothrow_move_constructible_v<S>)
        : s_(std::move(s)) {}
    buffered_stream(buffered_stream&&) = default;

    S& stream() noexcept { return s_; }
    const S& stream() const noexcept { return s_; }
    buffer& input() noexcept { return in_; }
    buffer& output() noexcept { return out_; }
    /// The peer finished sending (everything it sent is in input()).
    bool eof() const noexcept { return eof_; }

    void set_read_watermarks(std::size_t low, std::size_t high = 0) noexcept {
        read_low_ = low;
        read_high_ = high;
    }
    void set_write_low_watermark(std::size_t low) noexcept { write_low_ = low; }
    void set_timeouts(std::optional<duration> read, std::optional<duration> write) noexcept {
        read_timeout_ = read;
        write_timeout_ = write;
    }
    /// The longest line read_line and read_until accept (default 64 KiB); past it they give
    /// error::line_too_long and leave the input as it is.
    void set_max_line(std::size_t n) noexcept { max_line_ = n; }
    void set_rate_limit(const rate_limit_config& c) noexcept { limiter_.configure(c); }
    void join(rate_limit_group& g) noexcept { limiter_.join(g); }
    void leave_group() noexcept { limiter_.leave(); }

    // ---- reading ----

    /// Reads until input() holds at least max(min, read low watermark) bytes (not past the
    /// high watermark) or the peer finished; returns input().size(), which may be less at EOF
    /// (see eof()). Errors: the stream's, timed_out. Cancel: what was read stays in input().
    task<result<std::size_t>> fill(std::size_t min = 1) {
        std::size_t target = std::max(min, read_low_);
        if (read_high_) target = std::min(target, std::max<std::size_t>(read_high_, 1));
        while (in_.size() < target && !eof_) {
            auto n = co_await read_more(true);
            if (!n) co_return n.error();
        }
        co_return in_.size();
    }

    /// The next line without its end of line. Errors: error::unexpected_eof when the peer
    /// finishes first (a partial line stays in input(), so empty input means a clean end),
    /// error::line_too_long, the stream's errors, timed_out. Cancel: nothing is consumed.
    task<result<std::string>> read_line(eol_style style = eol_style::crlf) {
        std::size_t scanned = 0;
        for (;;) {
            if (auto eol = in_.find_eol(style, scanned)) {
                if (eol->pos > max_line_) co_return error::line_too_long;
                std::string line(eol->pos, '\0');
                in_.copy_out(std::as_writable_bytes(std::span(line)));
                in_.drain(eol->pos + eol->len);
                co_return line;
            }
            // A CR at the end may start a CRLF, so it is not line yet: a line of exactly
            // max_line bytes must not fail because its CR and LF came in separate reads.
            if (line_so_far(style) > max_line_) co_return error::line_too_long;
            // Look at that CR again next time.
            scanned = in_.size() ? in_.size() - 1 : 0;
            if (eof_) co_return error::unexpected_eof;
            auto n = co_await read_more(false);
            if (!n) co_return n.error();
        }
    }

    /// The bytes before the next `delim` (which is consumed too). Errors as read_line().
    task<result<std::string>> read_until(std::string_view delim) {
        std::size_t from = 0;
        for (;;) {
            if (auto at = in_.search(delim, from)) {
                if (*at > max_line_) co_return error::line_too_long;
                std::string s(*at, '\0');
                in_.copy_out(std::as_writable_bytes(std::span(s)));
                in_.drain(*at + delim.size());
                co_return s;
            }
            // The last delim.size() - 1 bytes may be the start of the delimiter. (Subtracted,
            // not added to max_line: set_max_line(npos) means no limit.)
            const std::size_t pending = delim.empty() ? 0 : delim.size() - 1;
            if (in_.size() > pending && in_.size() - pending > max_line_)
                co_return error::line_too_long;
            from = in_.size() >= delim.size() ? in_.size() - delim.size() + 1 : 0;
            if (eof_) co_return error::unexpected_eof;
            auto n = co_await read_more(false);
            if (!n) co_return n.error();
        }
    }

    /// Fills all of `out`. Errors: error::unexpected_eof if the peer finishes first (nothing is
    /// consumed then), the stream's, timed_out. Cancel: nothing is consumed.
    task<result<std::size_t>> read_exact(std::span<std::byte> out) {
        while (in_.size() < out.size()) {
            if (eof_) co_return error::unexpected_eof;
            auto n = co_await read_more(false, out.size() - in_.size());
            if (!n) co_return n.error();
        }
        co_return in_.remove(out);
    }

    /// byte_stream: what input() holds, else one read. 0 at EOF.
    task<result<std::size_t>> read_some(std::span<std::byte> out) {
        if (out.empty()) co_return std::size_t(0);
        if (in_.empty() && !eof_) {
            auto n = co_await read_more(true);
            if (!n) co_return n.error();
        }
        co_return in_.remove(out);
    }
    /// What input() holds, or what the stream gives without waiting; EAGAIN if nothing.
    result<std::size_t> try_read_some(std::span<std::byte> out) noexcept
        requires try_read_stream<S>
    {
        if (out.empty()) return std::size_t(0);  // not an end of stream: no read was made
        if (!in_.empty()) return in_.remove(out);
        if (eof_) return std::size_t(0);
        auto n = s_.try_read_some(out);
        if (n && *n == 0) eof_ = true;
        return n;
    }
    /// Returns once input() holds bytes or EOF, or the stream may have some.
    task<result<void>> wait_readable() {
        if (!in_.empty() || eof_) co_return result<void>{};
        co_return co_await s_.wait_readable();
    }

    // ---- writing ----

    /// Appends `data` to output() and flushes. Returns data.size().
    task<result<std::size_t>> write(std::span<const std::byte> data) {
        out_.append(data);
        auto r = co_await flush();
        if (!r) co_return r.error();
        co_return data.size();
    }
    task<result<std::size_t>> write(std::string_view s) {
        return write(std::as_bytes(std::span(s.data(), s.size())));
    }
    /// byte_stream: as write().
    task<result<std::size_t>> write_some(std::span<const std::byte> data) { return write(data); }
    task<result<std::size_t>> writev_some(std::span<const iovec> iov) {
        std::size_t n = 0;
        for (const iovec& v : iov) {
            out_.append({static_cast<const std::byte*>(v.iov_base), v.iov_len});
            n += v.iov_len;
        }
        auto r = co_await flush();
        if (!r) co_return r.error();
        co_return n;
    }

    /// Writes output() until it holds at most the write low watermark. Errors: the stream's,
    /// timed_out (the unwritten rest stays in output()). Cancel: the rest stays in output().
    task<result<void>> flush() {
        while (out_.size() > write_low_) {
            std::size_t allow = out_.size();
            if (limiter_.limited(1)) {
                auto a = co_await limiter_.acquire(1, allow);
                if (!a) co_return a.error();
                allow = *a;
            }
            auto n = co_await write_once(allow);
            if (!n) {
                limiter_.give_back(1, allow);
                co_return n.error();
            }
            limiter_.give_back(1, allow - *n);
        }
        co_return result<void>{};
    }

    /// Sends EOF after what was written; flush() first, or unflushed bytes go after nothing.
    result<void> shutdown_write() noexcept { return s_.shutdown_write(); }
    void close() noexcept { s_.close(); }

private:
    // How much of input() is certainly line content while no end of line is found: all of it,
    // but a final CR where a CRLF can end the line.
    std::size_t line_so_far(eol_style style) {
        std::size_t n = in_.size();
        if (n && (style == eol_style::crlf || style == eol_style::crlf_strict)) {
            std::byte last{};
            in_.copy_out({&last, 1}, n - 1);
            if (last == std::byte{'\r'}) --n;
        }
        return n;
    }

    // One read from the stream into input(); 0 at EOF. `respect_high`: not past the high mark.
    task<result<std::size_t>> read_more(bool respect_high, std::size_t want = read_chunk) {
        if (eof_) co_return std::size_t(0);
        want = std::clamp<std::size_t>(want, 1, read_chunk);
        if (respect_high && read_high_) {
            if (in_.size() >= read_high_) co_return std::size_t(0);
            want = std::min(want, read_high_ - in_.size());
        }
        if (limiter_.limited(0)) {
            auto a = co_await limiter_.acquire(0, want);
            if (!a) co_return a.error();
            want = *a;
        }
        for (;;) {
            // Wait first, holding no memory: reserve only once bytes are there.
            result<void> ready;
            if (read_timeout_) ready = co_await with_timeout(*read_timeout_, s_.wait_readable());
            else ready = co_await s_.wait_readable();
            if (!ready) {
                limiter_.give_back(0, want);
                co_return ready.error();
            }
            if constexpr (try_read_stream<S>) {
                auto space = in_.reserve(want).first(want);
                auto n = s_.try_read_some(space);
                in_.commit(n ? *n : 0);
                if (!n && n.error() == std::errc::resource_unavailable_try_again) continue;
                limiter_.give_back(0, n ? want - *n : want);
                if (!n) co_return n.error();
                if (*n == 0) eof_ = true;
                co_return *n;
            } else {
                auto space = in_.reserve(want).first(want);
                result<std::size_t> n = std::size_t(0);
                if (read_timeout_) n = co_await with_timeout(*read_timeout_, s_.read_some(space));
                else n = co_await s_.read_some(space);
                in_.commit(n ? *n : 0);
                limiter_.give_back(0, n ? want - *n : want);
                if (!n) co_return n.error();
                if (*n == 0) eof_ = true;
                co_return *n;
            }
        }
    }

    // One write of up to `allow` bytes from output(); drains what went out.
    task<result<std::size_t>> write_once(std::size_t allow) {
        if constexpr (fd_stream<S>) {
            // Straight from the segments: writev, or sendfile for a file range.
            for (;;) {
                auto n = out_.write_to(s_.native_handle(), allow);
                if (n || n.error() != std::errc::resource_unavailable_try_again) co_return n;
                std::optional<time_point> deadline;
                if (write_timeout_) deadline = event_loop::current()->now() + *write_timeout_;
                auto w = co_await coev::wait_writable(s_.native_handle(), deadline);
                if (!w) co_return w.error();
            }
        } else {
            iovec iov[16];
            const std::size_t count = std::min<std::size_t>(out_.peek(iov, allow), 16);
            out_.freeze_front(true);  // the iovecs point into its first segments
            result<std::size_t> n = std::size_t(0);
            std::span<const iovec> v(iov, count);
            if (write_timeout_) n = co_await with_timeout(*write_timeout_, s_.writev_some(v));
            else n = co_await s_.writev_some(v);
            out_.freeze_front(false);
            if (n) out_.drain(*n);
            co_return n;
        }
    }

    S s_;
    buffer in_, out_;
    bool eof_ = false;
    std::size_t read_low_ = 0, read_high_ = 0, write_low_ = 0;
    std::size_t max_line_ = 64 * 1024;
    std::optional<duration> read_timeout_, write_timeout_;
    rate_limiter limiter_;
};

}  // namespace coev::net
