// net/src/buffer.cpp
// Segments point into reference-counted storage: owned blocks (recycled per thread), memory
// someone else owns (add_reference) or a file range (add_file). Moving bytes between buffers
// moves segments; a segment split by a partial move shares its storage instead of copying.
#include <coev/net/buffer.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace coev::net {

namespace {

using detail::segment;
using detail::storage;
using detail::storage_kind;

constexpr std::uint8_t no_class = 0xff;
// Whole allocations (header and data) of the recycled block sizes.
constexpr std::array<std::size_t, 3> block_sizes = {4096, 16384, 65536};
constexpr std::size_t header = (sizeof(storage) + 15) & ~std::size_t(15);
// Blocks kept for reuse per size class and thread; the rest go back to malloc, so a burst does
// not pin memory for good.
constexpr std::size_t pool_keep = 256;

struct pools;
// This thread's pools: null until first used, and again once they are destroyed at thread
// exit. A buffer can outlive them (a static one, or a thread_local made before the pools) and
// must then free straight to the system. Plain pointers and flags stay readable all through
// the thread's teardown.
thread_local pools* pool_of_thread = nullptr;
thread_local bool pools_gone = false;

struct pools {
    std::array<std::vector<storage*>, block_sizes.size()> blocks;
    std::vector<segment*> segments;
    ~pools() {
        pool_of_thread = nullptr;
        pools_gone = true;
        for (auto& v : blocks)
            for (storage* s : v) {
                s->~storage();
                std::free(s);
            }
        for (segment* s : segments) delete s;
    }
};

pools* thread_pools() noexcept {
    if (pool_of_thread || pools_gone) return pool_of_thread;
    thread_local pools owner;
    pool_of_thread = &owner;
    return pool_of_thread;
}

storage* new_block(std::size_t at_least) {
    if (at_least > std::numeric_limits<std::size_t>::max() - header) throw std::bad_alloc();
    std::uint8_t cls = no_class;
    for (std::uint8_t i = 0; i < block_sizes.size(); ++i)
        if (at_least <= block_sizes[i] - header) {
            cls = i;
            break;
        }
    pools* pool = thread_pools();
    if (cls != no_class && pool && !pool->blocks[cls].empty()) {
        storage* s = pool->blocks[cls].back();
        pool->blocks[cls].pop_back();
        s->refs = 1;
        return s;
    }
    const std::size_t total = cls != no_class ? block_sizes[cls] : header + at_least;
    void* mem = std::malloc(total);
    if (!mem) throw std::bad_alloc();
    auto* s = new (mem) storage;
    s->size_class = cls;
    s->cap = total - header;
    s->base = static_cast<std::byte*>(mem) + header;
    return s;
}

void unref(storage* s) noexcept {
    if (--s->refs != 0) return;
    switch (s->kind) {
    case storage_kind::owned:
        if (pools* pool = thread_pools();
            pool && s->size_class != no_class && pool->blocks[s->size_class].size() < pool_keep) {
            try {
                pool->blocks[s->size_class].push_back(s);
                return;
            } catch (...) {  // no room to remember it: free it instead
            }
        }
        s->~storage();
        std::free(s);
        return;
    case storage_kind::reference:
        if (s->release) {
            try {
                s->release();
            } catch (...) {  // a release callback must not throw; nothing sensible to do
            }
        }
        delete s;
        return;
    case storage_kind::file:
        if (s->fd >= 0) ::close(s->fd);
        std::free(s->base);
        delete s;
        return;
    }
}

segment* new_segment(storage* st, std::size_t off, std::size_t len) {
    segment* g;
    pools* pool = thread_pools();
    if (pool && !pool->segments.empty()) {
        g = pool->segments.back();
        pool->segments.pop_back();
        g->next = nullptr;
    } else {
        g = new segment;
    }
    g->st = st;
    g->off = off;
    g->len = len;
    return g;
}

void free_segment(segment* g) noexcept {
    unref(g->st);
    if (pools* pool = thread_pools(); pool && pool->segments.size() < pool_keep * 4) {
        try {
            pool->segments.push_back(g);
            return;
        } catch (...) {
        }
    }
    delete g;
}

using detail::room;

// The segment's bytes in memory; a file range is read in on first need.
const std::byte* bytes_of(const segment* g) {
    storage* s = g->st;
    if (s->kind == storage_kind::file && !s->base) {
        // The whole range the storage covers (every segment cut from it lies inside).
        const std::size_t n = s->cap;
        auto* mem = static_cast<std::byte*>(std::malloc(n ? n : 1));
        if (!mem) throw std::bad_alloc();
        std::size_t done = 0;
        while (done < n) {
            ssize_t r = ::pread(s->fd, mem + done, n - done, s->file_offset + off_t(done));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {  // the file shrank or failed: what cannot be read reads as zeros
                std::memset(mem + done, 0, n - done);
                break;
            }
            done += std::size_t(r);
        }
        s->base = mem;
    }
    return s->base + g->off;
}

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

void frozen(const char* what) { throw std::logic_error(std::string("coev::net::buffer: ") + what); }

}  // namespace

struct buffer::callbacks {
    struct entry {
        callback_id id;
        change_fn fn;
    };
    std::vector<entry> list;
    callback_id next_id = 1;
};

buffer::buffer(buffer&& o) noexcept
    : head_(std::exchange(o.head_, nullptr)),
      tail_(std::exchange(o.tail_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      frozen_front_(std::exchange(o.frozen_front_, false)),
      frozen_back_(std::exchange(o.frozen_back_, false)),
      callbacks_(std::exchange(o.callbacks_, nullptr)) {}

buffer& buffer::operator=(buffer&& o) noexcept {
    if (this != &o) {
        this->~buffer();
        new (this) buffer(std::move(o));
    }
    return *this;
}

buffer::~buffer() {
    for (segment* g = head_; g;) {
        segment* next = g->next;
        free_segment(g);
        g = next;
    }
    delete callbacks_;
}

std::size_t buffer::contiguous_space() const noexcept { return head_ ? head_->len : 0; }

// Runs the change callbacks if the size changed.
#define COEV_BUFFER_NOTIFY(orig)                                                             \
    do {                                                                                     \
        if (callbacks_ && size_ != (orig)) run_callbacks(orig);                              \
    } while (0)

void buffer::append_slow(std::span<const std::byte> data) {
    if (frozen_back_) frozen("append to a frozen end");
    if (data.empty()) return;
    const std::size_t orig = size_;
    std::size_t done = 0;
    if (std::size_t r = room(tail_)) {
        done = std::min(r, data.size());
        std::memcpy(tail_->st->base + tail_->off + tail_->len, data.data(), done);
        tail_->len += done;
    }
    while (done < data.size()) {
        const std::size_t left = data.size() - done;
        // A growing buffer takes bigger blocks: fewer segments to walk and to hand to writev.
        const std::size_t want = std::max(left, std::min(size_ / 4, block_sizes[1] - header));
        storage* st = new_block(std::min(want, block_sizes.back() - header));
        const std::size_t n = std::min(left, st->cap);
        std::memcpy(st->base, data.data() + done, n);
        link_back(new_segment(st, 0, n));
        done += n;
    }
    size_ += data.size();
    COEV_BUFFER_NOTIFY(orig);
}


void buffer::prepend(std::span<const std::byte> data) {
    if (frozen_front_) frozen("prepend to a frozen front");
    if (data.empty()) return;
    const std::size_t orig = size_;
    std::size_t left = data.size();
    // Fill the room before the first byte of an unshared owned head, then new blocks whose
    // bytes sit at their end, so the next prepend fits in front of them.
    if (head_ && head_->st->kind == storage_kind::owned && head_->st->refs == 1 && head_->off) {
        const std::size_t n = std::min(left, head_->off);
        head_->off -= n;
        head_->len += n;
        std::memcpy(head_->st->base + head_->off, data.data() + left - n, n);
        left -= n;
    }
    while (left > 0) {
        storage* st = new_block(std::min(left, block_sizes.back() - header));
        const std::size_t n = std::min(left, st->cap);
        segment* g = new_segment(st, st->cap - n, n);
        std::memcpy(st->base + g->off, data.data() + left - n, n);
        g->next = head_;
        head_ = g;
        if (!tail_) tail_ = g;
        left -= n;
    }
    size_ += data.size();
    COEV_BUFFER_NOTIFY(orig);
}

void buffer::prepend(std::string_view s) { prepend(std::as_bytes(std::span(s.data(), s.size()))); }

std::size_t buffer::append_printf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::size_t n = append_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

std::size_t buffer::append_vprintf(const char* fmt, va_list ap) {
    if (frozen_back_) frozen("append to a frozen end");
    va_list again;
    va_copy(again, ap);
    // Straight into the tail's room when it fits, as evbuffer_add_vprintf does.
    char small[256];
    int n = std::vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(again);
        return 0;
    }
    if (std::size_t(n) < sizeof small) {
        va_end(again);
        append(std::string_view(small, std::size_t(n)));
        return std::size_t(n);
    }
    std::string big(std::size_t(n) + 1, '\0');
    std::vsnprintf(big.data(), big.size(), fmt, again);
    va_end(again);
    append(std::string_view(big.data(), std::size_t(n)));
    return std::size_t(n);
}

void buffer::append(buffer&& src) {
    if (&src == this) return;
    if (frozen_back_) frozen("append to a frozen end");
    if (src.frozen_front_) frozen("move from a frozen front");
    if (!src.head_) return;
    const std::size_t orig = size_, src_orig = src.size_;
    if (tail_) tail_->next = src.head_;
    else head_ = src.head_;
    tail_ = src.tail_;
    size_ += src.size_;
    src.head_ = src.tail_ = nullptr;
    src.size_ = 0;
    COEV_BUFFER_NOTIFY(orig);
    if (src.callbacks_) src.run_callbacks(src_orig);
}

std::size_t buffer::move_from(buffer& src, std::size_t n) {
    if (&src == this || n == 0 || !src.head_) return 0;
    if (n >= src.size_) {
        n = src.size_;
        append(std::move(src));
        return n;
    }
    if (frozen_back_) frozen("append to a frozen end");
    if (src.frozen_front_) frozen("move from a frozen front");
    const std::size_t orig = size_, src_orig = src.size_;
    std::size_t left = n;
    while (left > 0 && src.head_->len <= left) {
        segment* g = src.head_;
        src.head_ = g->next;
        if (!src.head_) src.tail_ = nullptr;
        g->next = nullptr;
        left -= g->len;
        link_back(g);
    }
    if (left > 0) {
        segment* g = src.head_;
        if (left <= 256 && room(tail_) >= left) {  // a few bytes: copying beats sharing
            std::memcpy(tail_->st->base + tail_->off + tail_->len, bytes_of(g), left);
            tail_->len += left;
        } else {
            ++g->st->refs;
            link_back(new_segment(g->st, g->off, left));
        }
        g->off += left;
        g->len -= left;
    }
    size_ += n;
    src.size_ -= n;
    COEV_BUFFER_NOTIFY(orig);
    if (src.callbacks_) src.run_callbacks(src_orig);
    return n;
}

void buffer::add_reference(std::span<const std::byte> data, release_fn release) {
    if (frozen_back_) frozen("append to a frozen end");
    auto* st = new storage;
    st->kind = storage_kind::reference;
    st->base = const_cast<std::byte*>(data.data());
    st->cap = data.size();
    st->release = std::move(release);
    if (data.empty()) {  // nothing to hold: released at once
        unref(st);
        return;
    }
    const std::size_t orig = size_;
    link_back(new_segment(st, 0, data.size()));
    size_ += data.size();
    COEV_BUFFER_NOTIFY(orig);
}

result<void> buffer::add_file(int fd, off_t offset, std::size_t length) {
    if (frozen_back_) frozen("append to a frozen end");
    struct stat sb;
    if (::fstat(fd, &sb) != 0) return last_error();
    // Regular files only: a pipe or socket has no offsets to pread() or sendfile() from.
    // (Compared so that nothing wraps: offset + length can pass 2^64.)
    if (!S_ISREG(sb.st_mode) || offset < 0 || sb.st_size < offset ||
        length > std::uint64_t(sb.st_size - offset))
        return std::make_error_code(std::errc::invalid_argument);
    if (length == 0) {
        ::close(fd);
        return {};
    }
    auto* st = new storage;
    st->kind = storage_kind::file;
    st->fd = fd;
    st->file_offset = offset;
    st->cap = length;
    const std::size_t orig = size_;
    link_back(new_segment(st, 0, length));
    size_ += length;
    COEV_BUFFER_NOTIFY(orig);
    return {};
}

std::span<std::byte> buffer::reserve(std::size_t n) {
    if (frozen_back_) frozen("reserve at a frozen end");
    if (n == 0) n = 1;
    if (room(tail_) >= n) return {tail_->st->base + tail_->off + tail_->len, room(tail_)};
    storage* st = new_block(n);
    link_back(new_segment(st, 0, 0));
    return {st->base, st->cap};
}

void buffer::commit(std::size_t n) {
    if (frozen_back_) frozen("commit at a frozen end");
    if (!tail_ || n > room(tail_)) {
        if (n == 0) return;
        throw std::logic_error("coev::net::buffer: commit() beyond the reserved space");
    }
    const std::size_t orig = size_;
    tail_->len += n;
    size_ += n;
    drop_empty_tail();
    COEV_BUFFER_NOTIFY(orig);
}

std::size_t buffer::peek(std::span<iovec> out, std::size_t max_bytes) {
    std::size_t count = 0, bytes = 0;
    for (segment* g = head_; g && bytes < max_bytes; g = g->next) {
        if (g->len == 0) continue;
        const std::size_t n = std::min(g->len, max_bytes - bytes);
        if (count < out.size()) out[count] = {const_cast<std::byte*>(bytes_of(g)), n};
        ++count;
        bytes += n;
    }
    return count;
}

std::byte* buffer::pullup(std::size_t n) {
    if (n == npos) n = size_;
    if (n > size_) return nullptr;
    if (n == 0) return head_ ? const_cast<std::byte*>(bytes_of(head_)) : nullptr;
    if (head_->len >= n) return const_cast<std::byte*>(bytes_of(head_));
    // Merging frees the front segments, whose bytes a frozen front promises to keep (a write
    // in flight points into them).
    if (frozen_front_) frozen("pullup across a frozen front");
    storage* st = new_block(n);
    std::size_t done = 0;
    while (done < n) {
        segment* g = head_;
        const std::size_t take = std::min(g->len, n - done);
        std::memcpy(st->base + done, bytes_of(g), take);
        done += take;
        if (take == g->len) {
            head_ = g->next;
            if (!head_) tail_ = nullptr;
            free_segment(g);
        } else {
            g->off += take;
            g->len -= take;
        }
    }
    segment* merged = new_segment(st, 0, n);
    merged->next = head_;
    head_ = merged;
    if (!tail_) tail_ = merged;
    return st->base;
}

std::size_t buffer::copy_out(std::span<std::byte> out, std::size_t from) {
    std::size_t done = 0;
    for (segment* g = head_; g && done < out.size(); g = g->next) {
        if (from >= g->len) {
            from -= g->len;
            continue;
        }
        const std::size_t n = std::min(g->len - from, out.size() - done);
        std::memcpy(out.data() + done, bytes_of(g) + from, n);
        done += n;
        from = 0;
    }
    return done;
}

std::size_t buffer::remove(std::span<std::byte> out) {
    if (frozen_front_) frozen("remove from a frozen front");
    const std::size_t n = copy_out(out);
    drain(n);
    return n;
}

std::size_t buffer::drain(std::size_t n) {
    if (frozen_front_) frozen("drain a frozen front");
    const std::size_t orig = size_;
    n = std::min(n, size_);
    std::size_t left = n;
    while (head_ && (left > 0 || head_->len == 0)) {
        segment* g = head_;
        if (g->len > left) {
            g->off += left;
            g->len -= left;
            left = 0;
            break;
        }
        left -= g->len;
        head_ = g->next;
        if (!head_) tail_ = nullptr;
        free_segment(g);
    }
    size_ -= n;
    COEV_BUFFER_NOTIFY(orig);
    return n;
}

std::string buffer::to_string() {
    std::string s(size_, '\0');
    copy_out(std::as_writable_bytes(std::span(s)));
    return s;
}

// ---- searching ----

namespace {

// A position inside the segment list: the segment, the offset in it, the absolute offset.
struct cursor {
    const segment* g;
    std::size_t in;
    std::size_t at;
};

// The cursor at absolute offset `pos`, or g == nullptr past the end.
cursor seek(const segment* head, std::size_t pos) {
    std::size_t at = 0;
    for (const segment* g = head; g; g = g->next) {
        if (pos < at + g->len) return {g, pos - at, pos};
        at += g->len;
    }
    return {nullptr, 0, at};
}

// Whether `what` starts at `c` (possibly across segments).
bool matches_at(cursor c, std::string_view what) {
    std::size_t i = 0;
    while (i < what.size()) {
        if (!c.g) return false;
        const std::byte* p = bytes_of(c.g);
        const std::size_t n = std::min(c.g->len - c.in, what.size() - i);
        if (std::memcmp(p + c.in, what.data() + i, n) != 0) return false;
        i += n;
        c.in += n;
        if (c.in == c.g->len) {
            c.g = c.g->next;
            c.in = 0;
        }
    }
    return true;
}

// The first offset >= c.at whose byte satisfies `pred`, before `end`; npos if none.
template <class Pred> std::size_t find_byte(cursor c, std::size_t end, Pred pred) {
    std::size_t at = c.at;
    for (const segment* g = c.g; g && at < end; g = g->next) {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes_of(g));
        const std::size_t stop = std::min(g->len, c.in + (end - at));
        for (std::size_t i = c.in; i < stop; ++i)
            if (pred(p[i])) return at + (i - c.in);
        at += g->len - c.in;
        c.in = 0;
    }
    return buffer::npos;
}

// memchr per segment: the common case of one byte to find.
std::size_t find_char(cursor c, std::size_t end, unsigned char ch) {
    std::size_t at = c.at;
    for (const segment* g = c.g; g && at < end; g = g->next) {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes_of(g)) + c.in;
        const std::size_t span = std::min(g->len - c.in, end - at);
        if (const void* hit = std::memchr(p, ch, span))
            return at + std::size_t(static_cast<const unsigned char*>(hit) - p);
        at += g->len - c.in;
        c.in = 0;
    }
    return buffer::npos;
}

unsigned char byte_at(const segment* head, std::size_t pos) {
    cursor c = seek(head, pos);
    return reinterpret_cast<const unsigned char*>(bytes_of(c.g))[c.in];
}

}  // namespace

std::optional<std::size_t> buffer::search(std::string_view what, std::size_t start) const {
    return search_range(what, start, size_);
}

std::optional<std::size_t> buffer::search_range(std::string_view what, std::size_t start,
                                                std::size_t end) const {
    end = std::min(end, size_);
    if (start > end || what.size() > end - start) return std::nullopt;
    if (what.empty()) return start;
    const std::size_t last = end - what.size();  // the last offset a match may start at
    std::size_t pos = start;
    while (pos <= last) {
        std::size_t hit = find_char(seek(head_, pos), last + 1, (unsigned char)what[0]);
        if (hit == npos) return std::nullopt;
        if (matches_at(seek(head_, hit), what)) return hit;
        pos = hit + 1;
    }
    return std::nullopt;
}

std::optional<eol_match> buffer::find_eol(eol_style style, std::size_t start) const {
    if (start >= size_) return std::nullopt;
    const cursor c = seek(head_, start);
    switch (style) {
    case eol_style::lf:
    case eol_style::nul: {
        std::size_t p = find_char(c, size_, style == eol_style::lf ? '\n' : '\0');
        if (p == npos) return std::nullopt;
        return eol_match{p, 1};
    }
    case eol_style::crlf: {
        std::size_t p = find_char(c, size_, '\n');
        if (p == npos) return std::nullopt;
        if (p > start && byte_at(head_, p - 1) == '\r') return eol_match{p - 1, 2};
        return eol_match{p, 1};
    }
    case eol_style::crlf_strict: {
        std::size_t pos = start;
        for (;;) {
            std::size_t p = find_char(seek(head_, pos), size_, '\r');
            // A CR at the very end may be half of a CRLF still to come: no line yet.
            if (p == npos || p + 1 >= size_) return std::nullopt;
            if (byte_at(head_, p + 1) == '\n') return eol_match{p, 2};
            pos = p + 1;
        }
    }
    case eol_style::any: {
        auto is_eol = [](unsigned char ch) { return ch == '\r' || ch == '\n'; };
        std::size_t p = find_byte(c, size_, is_eol);
        if (p == npos) return std::nullopt;
        std::size_t q = find_byte(seek(head_, p), size_, [&](unsigned char ch) {
            return !is_eol(ch);
        });
        return eol_match{p, (q == npos ? size_ : q) - p};
    }
    }
    return std::nullopt;
}

std::optional<std::string> buffer::read_line(eol_style style) {
    if (frozen_front_) frozen("read a line from a frozen front");
    auto eol = find_eol(style);
    if (!eol) return std::nullopt;
    std::string line(eol->pos, '\0');
    copy_out(std::as_writable_bytes(std::span(line)));
    drain(eol->pos + eol->len);
    return line;
}

// ---- callbacks ----

buffer::callback_id buffer::add_callback(change_fn fn) {
    if (!callbacks_) callbacks_ = new callbacks;
    const callback_id id = callbacks_->next_id++;
    callbacks_->list.push_back({id, std::move(fn)});
    return id;
}

bool buffer::remove_callback(callback_id id) {
    if (!callbacks_) return false;
    auto& l = callbacks_->list;
    auto it = std::find_if(l.begin(), l.end(), [&](const auto& e) { return e.id == id; });
    if (it == l.end()) return false;
    l.erase(it);
    return true;
}

void buffer::run_callbacks(std::size_t orig) {
    buffer_change c;
    c.orig_size = orig;
    if (size_ > orig) c.added = size_ - orig;
    else c.deleted = orig - size_;
    // A copy: a callback may add or remove callbacks.
    const std::vector<callbacks::entry> list = callbacks_->list;
    for (const auto& e : list) e.fn(*this, c);
}

// ---- list plumbing ----

void buffer::link_back(detail::segment* g) noexcept {
    // An empty reserved tail in front of new bytes would split the data for nothing.
    if (tail_ && tail_->len == 0) {
        segment* dead = tail_;
        segment** p = &head_;
        while (*p != dead) p = &(*p)->next;
        *p = g;
        tail_ = g;
        free_segment(dead);
        return;
    }
    if (tail_) tail_->next = g;
    else head_ = g;
    tail_ = g;
}

void buffer::drop_empty_tail() noexcept {
    // Reserved space that received nothing goes back to the pool: an idle buffer holds no block.
    if (!tail_ || tail_->len != 0) return;
    segment* dead = tail_;
    segment** p = &head_;
    segment* prev = nullptr;
    while (*p != dead) {
        prev = *p;
        p = &(*p)->next;
    }
    *p = nullptr;
    tail_ = prev;
    free_segment(dead);
}

// ---- file descriptors ----

result<std::size_t> buffer::read_from(int fd, std::size_t max) {
    if (frozen_back_) frozen("read into a frozen end");
    if (max == 0) return std::size_t(0);
    iovec iov[2];
    int count = 0;
    std::size_t in_tail = std::min(room(tail_), max);
    if (in_tail > 0) iov[count++] = {tail_->st->base + tail_->off + tail_->len, in_tail};
    segment* extra = nullptr;
    if (in_tail < max) {
        storage* st = new_block(std::min<std::size_t>(max - in_tail, 16384 - header));
        extra = new_segment(st, 0, 0);
        iov[count++] = {st->base, std::min(st->cap, max - in_tail)};
    }
    ssize_t n;
    do {
        n = ::readv(fd, iov, count);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        const std::error_code e = n < 0 ? last_error() : std::error_code();
        if (extra) free_segment(extra);
        if (n < 0) return e;
        return std::size_t(0);
    }
    const std::size_t orig = size_;
    std::size_t got = std::size_t(n);
    const std::size_t first = std::min(got, in_tail);
    if (first) tail_->len += first;
    if (got > first) {
        extra->len = got - first;
        link_back(extra);
    } else if (extra) {
        free_segment(extra);
    }
    size_ += got;
    COEV_BUFFER_NOTIFY(orig);
    return got;
}

result<std::size_t> buffer::write_to(int fd, std::size_t max) {
    if (frozen_front_) frozen("write from a frozen front");
    if (!head_ || max == 0) return std::size_t(0);
    ssize_t n;
    if (head_->st->kind == storage_kind::file && !head_->st->base) {
        off_t at = head_->st->file_offset + off_t(head_->off);
        const std::size_t want = std::min(head_->len, max);
        do {
            n = ::sendfile(fd, head_->st->fd, &at, want);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
            bytes_of(head_);  // this sink takes no sendfile(): read the range in and writev it
            return write_to(fd, max);
        }
        if (n == 0) {
            // The file ended before the range did (it shrank since add_file): that part reads
            // as zeros, as it does for copy_out(); sending nothing forever would hang a flush.
            bytes_of(head_);
            return write_to(fd, max);
        }
    } else {
        iovec iov[64];
        int count = 0;
        std::size_t bytes = 0;
        for (segment* g = head_; g && count < 64 && bytes < max; g = g->next) {
            if (g->len == 0) continue;
            if (g->st->kind == storage_kind::file && !g->st->base) break;  // next call: sendfile
            const std::size_t take = std::min(g->len, max - bytes);
            iov[count++] = {const_cast<std::byte*>(bytes_of(g)), take};
            bytes += take;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = std::size_t(count);
        do {
            n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno == ENOTSOCK) {
            do {
                n = ::writev(fd, iov, count);
            } while (n < 0 && errno == EINTR);
        }
    }
    if (n < 0) return last_error();
    drain(std::size_t(n));
    return std::size_t(n);
}

}  // namespace coev::net
