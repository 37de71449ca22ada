// coev/net/stream_pair.hpp
// Two connected in-memory streams (libevent's bufferevent_pair): what one end writes the other
// reads, with no socket in between; each end is a byte_stream like a tcp_stream.
#pragma once

#include <coev/net/buffer.hpp>
#include <coev/runtime/notifier.hpp>
#include <coev/runtime/task.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <sys/uio.h>
#include <utility>

namespace coev::net {

namespace detail {
struct pair_state;
}

/// `auto [a, b] = stream_pair::make();` Both ends belong to one loop's thread.
class stream_pair {
public:
    struct options {
        /// Bytes one direction holds before its writer waits (backpressure); at least 1.
        std::size_t capacity = 64 * 1024;
    };

    /// One end. Writes move bytes into the peer's queue (a buffer: appending copies into its
    /// segments, a buffer given to write(buffer&&) is spliced without copying).
    class end {
    public:
        end() noexcept = default;
        end(end&&) noexcept = default;
        end& operator=(end&&) noexcept;
        end(const end&) = delete;
        ~end();

        /// Some bytes, 0 once the peer has shut down writing (or closed) and all was read.
        /// Errors: error::closed after close(). Cancel: nothing is consumed.
        task<result<std::size_t>> read_some(std::span<std::byte> buf);
        /// What is there now, never waiting: bytes, 0 at EOF, or EAGAIN.
        result<std::size_t> try_read_some(std::span<std::byte> buf) noexcept;
        /// Waits until the queue holds bytes or EOF. Cancel: nothing stays registered.
        task<result<void>> wait_readable();
        /// Waits for room, then queues what fits (at least one byte). Errors: broken_pipe once
        /// the peer closed or this end shut down writing. Cancel: nothing was written.
        task<result<std::size_t>> write_some(std::span<const std::byte> buf);
        task<result<std::size_t>> writev_some(std::span<const iovec> iov);
        /// Queues all of `data` without copying, waiting for room first (capacity is a
        /// threshold here, not a cap). Errors as write_some().
        task<result<std::size_t>> write(buffer&& data);
        /// The peer reads EOF after what was written.
        result<void> shutdown_write() noexcept;
        /// Ends both directions: the peer reads EOF and its writes fail with broken_pipe.
        void close() noexcept;
        bool is_open() const noexcept;

    private:
        friend class stream_pair;
        end(std::shared_ptr<detail::pair_state> st, int side) noexcept
            : st_(std::move(st)), side_(side) {}
        std::shared_ptr<detail::pair_state> st_;
        int side_ = 0;
    };

    static std::pair<end, end> make(options o);
    static std::pair<end, end> make() { return make(options{}); }
};

}  // namespace coev::net
