// coev/net/buffer.hpp
// A byte queue of reference-counted segments (libevent's evbuffer): appending, moving data between
// buffers and handing it to writev() never copies; length queries are O(1).
#pragma once

#include <coev/net/detail/buffer_segment.hpp>
#include <coev/runtime/result.hpp>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <sys/uio.h>

namespace coev::net {

/// libevent's evbuffer_eol_style.
enum class eol_style : std::uint8_t {
    any,          ///< any run of CR and LF characters
    crlf,         ///< CRLF or a bare LF
    crlf_strict,  ///< exactly CRLF
    lf,           ///< exactly LF
    nul,          ///< a single NUL byte
};

/// Where an end of line was found: its offset from the front and how many bytes it spans.
struct eol_match {
    std::size_t pos = 0;
    std::size_t len = 0;
};

/// What a change callback is told after each change (libevent's evbuffer_cb_info).
struct buffer_change {
    std::size_t orig_size = 0;
    std::size_t added = 0;
    std::size_t deleted = 0;
};


/// A queue of bytes held in segments. Move-only; not thread-safe (one loop owns it).
/// Mutating a frozen end throws std::logic_error: freezing is how an owner (a buffered stream
/// with a write in flight) says "not now", and breaking that is a programming error.
class buffer {
public:
    static constexpr std::size_t npos = std::size_t(-1);
    using release_fn = std::function<void()>;
    using change_fn = std::function<void(buffer&, const buffer_change&)>;
    using callback_id = std::uint64_t;

    buffer() noexcept = default;
    buffer(buffer&& o) noexcept;
    buffer& operator=(buffer&& o) noexcept;
    buffer(const buffer&) = delete;
    buffer& operator=(const buffer&) = delete;
    ~buffer();

    /// Bytes held; O(1).
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    /// Contiguous bytes at the front (the first segment's length).
    std::size_t contiguous_space() const noexcept;

    // ---- adding ----
    void append(std::span<const std::byte> data) {
        // Small appends inline when they fit the last block's room. (Not big ones: GCC turns a
        // memcpy of a known large size into `rep movs`, slower than libc's.)
        detail::segment* t = tail_;
        if (data.size() - 1 < 256 && t && !frozen_back_ && !callbacks_ &&
            detail::room(t) >= data.size()) {
            std::memcpy(t->st->base + t->off + t->len, data.data(), data.size());
            t->len += data.size();
            size_ += data.size();
            return;
        }
        append_slow(data);
    }
    void append(std::string_view s) { append(std::as_bytes(std::span(s.data(), s.size()))); }
    void prepend(std::span<const std::byte> data);
    void prepend(std::string_view s);
    /// printf-style append; returns the bytes added.
    std::size_t append_printf(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    std::size_t append_vprintf(const char* fmt, va_list ap);
    /// Moves every byte of `src` to the end of this buffer without copying (segments spliced).
    void append(buffer&& src);
    /// Moves the first `n` bytes of `src` (all if fewer) to the end of this buffer; whole
    /// segments are spliced, a partial one is shared, not copied. Returns the bytes moved.
    std::size_t move_from(buffer& src, std::size_t n);
    /// Appends `data` without copying; `release` runs exactly once, when the last byte of it has
    /// been drained or the buffer holding it is destroyed.
    void add_reference(std::span<const std::byte> data, release_fn release);
    /// Appends `length` bytes of the file `fd` from `offset`; on success the buffer owns the fd
    /// and closes it once the bytes are gone (on an error it stays the caller's). Written with
    /// sendfile() by write_to() when the sink is a socket or pipe; read with pread() when the
    /// bytes are peeked, copied or pulled up.
    /// If the file shrinks afterwards, the bytes it no longer has read (and are sent) as zeros.
    /// Errors: EBADF and the like from fstat(); EINVAL when `fd` is not a regular file or the
    /// range lies beyond its end.
    result<void> add_file(int fd, off_t offset, std::size_t length);

    // ---- reading straight into the buffer ----
    /// Contiguous writable space of at least `n` bytes at the end; valid until the next change.
    /// std::bad_alloc when that much cannot be had.
    std::span<std::byte> reserve(std::size_t n);
    /// Makes `n` bytes of the last reserve() part of the buffer (n <= the reserved size).
    void commit(std::size_t n);

    // ---- looking ----
    /// Fills `out` with iovecs over the first `max_bytes` bytes (all when npos); returns how many
    /// iovecs the whole range needs (which may exceed out.size(), as evbuffer_peek does).
    std::size_t peek(std::span<iovec> out, std::size_t max_bytes = npos);
    /// Makes the first `n` bytes (all when npos) contiguous and returns them; nullptr if the
    /// buffer holds fewer than `n`. Merging segments changes the front: refused (logic_error)
    /// while the front is frozen, unless the first segment already holds `n` bytes.
    std::byte* pullup(std::size_t n = npos);
    /// Copies up to out.size() bytes from offset `from` without removing them; returns the count.
    std::size_t copy_out(std::span<std::byte> out, std::size_t from = 0);
    /// Copies then drains up to out.size() bytes; returns the count.
    std::size_t remove(std::span<std::byte> out);
    /// Removes up to `n` bytes from the front; returns the count.
    std::size_t drain(std::size_t n);
    /// The whole content as a string (tests, small messages).
    std::string to_string();

    // ---- searching ----
    /// Offset of the first occurrence of `what` at or after `start`; nullopt if absent.
    std::optional<std::size_t> search(std::string_view what, std::size_t start = 0) const;
    /// As search(), but the match must end at or before `end`.
    std::optional<std::size_t> search_range(std::string_view what, std::size_t start,
                                            std::size_t end) const;
    /// The first end of line at or after `start` in `style`. A CR at the very end may be the
    /// first half of a CRLF still to come: crlf_strict reports no match for it yet. `any`
    /// takes the run of CR and LF as it stands, as EVBUFFER_EOL_ANY does: a CRLF split
    /// between two reads ends one line at the CR, and the LF then ends an empty one.
    std::optional<eol_match> find_eol(eol_style style, std::size_t start = 0) const;
    /// Removes and returns the first line, without its end of line; nullopt if none is complete.
    std::optional<std::string> read_line(eol_style style);

    // ---- ownership rules ----
    /// Freezes or thaws the front (drain/remove/prepend refused) or the back (append refused).
    void freeze_front(bool on) noexcept { frozen_front_ = on; }
    void freeze_back(bool on) noexcept { frozen_back_ = on; }
    bool front_frozen() const noexcept { return frozen_front_; }
    bool back_frozen() const noexcept { return frozen_back_; }
    /// Calls `fn` after every change in size; returns an id for remove_callback().
    callback_id add_callback(change_fn fn);
    bool remove_callback(callback_id id);

    // ---- file descriptors (non-blocking, never waits) ----
    /// One readv() into space at the end (up to `max` bytes); 0 means EOF.
    /// Errors: what readv() reports, EAGAIN included.
    result<std::size_t> read_from(int fd, std::size_t max = 64 * 1024);
    /// One writev() (sendfile() when the front is a file) of up to `max` bytes from the front,
    /// draining what was written. Errors: what the call reports, EAGAIN included.
    result<std::size_t> write_to(int fd, std::size_t max = npos);

private:
    void append_slow(std::span<const std::byte> data);
    void run_callbacks(std::size_t orig);
    void link_back(detail::segment* g) noexcept;
    void drop_empty_tail() noexcept;

    detail::segment* head_ = nullptr;
    detail::segment* tail_ = nullptr;
    std::size_t size_ = 0;
    bool frozen_front_ = false;
    bool frozen_back_ = false;
    struct callbacks;
    callbacks* callbacks_ = nullptr;  // allocated on first add_callback()
};

}  // namespace coev::net
