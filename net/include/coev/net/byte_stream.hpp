// coev/net/byte_stream.hpp
// What a stream must offer to be read and written by buffered_stream, tls_stream and the
// protocol modules: tcp_stream, unix_stream, stream_pair's ends and buffered streams satisfy it.
#pragma once

#include <coev/runtime/result.hpp>
#include <coev/runtime/timer.hpp>  // coev::detail::await_result_t

#include <concepts>
#include <cstddef>
#include <span>
#include <sys/uio.h>

namespace coev::net {

/// A readable and writable stream of bytes, every call awaited on the loop that owns it:
/// - `read_some(span<byte>)`: some bytes (0 = the peer finished sending) or an error;
/// - `write_some(span<const byte>)`, `writev_some(span<const iovec>)`: at least one byte
///   written or an error;
/// - `wait_readable()`: returns once a read is likely not to wait (data, EOF or an error are
///   there), so a reader can take memory for the bytes only when they arrive; it may return
///   early, and a read_some() after it may still wait;
/// - `shutdown_write()`: sends EOF (FIN) after what was written; `close()`.
template <class S>
concept byte_stream = requires(S& s, std::span<std::byte> in, std::span<const std::byte> out,
                               std::span<const iovec> iov) {
    { s.read_some(in) };
    { s.write_some(out) };
    { s.writev_some(iov) };
    { s.wait_readable() };
    { s.shutdown_write() } -> std::same_as<result<void>>;
    { s.close() };
    requires std::same_as<coev::detail::await_result_t<decltype(s.read_some(in))>,
                          result<std::size_t>>;
    requires std::same_as<coev::detail::await_result_t<decltype(s.write_some(out))>,
                          result<std::size_t>>;
    requires std::same_as<coev::detail::await_result_t<decltype(s.writev_some(iov))>,
                          result<std::size_t>>;
    requires std::same_as<coev::detail::await_result_t<decltype(s.wait_readable())>, result<void>>;
};

/// A byte_stream that can also read without waiting: `try_read_some(span<byte>)` gives bytes,
/// 0 at EOF, or EAGAIN (std::errc::resource_unavailable_try_again) when nothing is there. A
/// reader then waits with wait_readable() holding no buffer at all.
template <class S>
concept try_read_stream = byte_stream<S> && requires(S& s, std::span<std::byte> in) {
    { s.try_read_some(in) } -> std::same_as<result<std::size_t>>;
};

/// A byte_stream over a file descriptor (sockets, pipes): buffered streams use the fd directly
/// to hand file segments to sendfile().
template <class S>
concept fd_stream = byte_stream<S> && requires(const S& s) {
    { s.native_handle() } -> std::same_as<int>;
};

}  // namespace coev::net
