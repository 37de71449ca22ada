// net/src/buffered_stream.cpp
// buffered_stream is a template; instantiating it here for the library's own streams checks
// every member compiles for them.
#include <coev/net/buffered_stream.hpp>
#include <coev/net/stream_pair.hpp>
#include <coev/net/tcp_stream.hpp>
#include <coev/net/unix_stream.hpp>

namespace coev::net {

static_assert(fd_stream<tcp_stream> && try_read_stream<tcp_stream>);
static_assert(fd_stream<unix_stream>);
static_assert(try_read_stream<stream_pair::end> && !fd_stream<stream_pair::end>);
static_assert(byte_stream<buffered_stream<tcp_stream>>);

template class buffered_stream<tcp_stream>;
template class buffered_stream<unix_stream>;
template class buffered_stream<stream_pair::end>;

}  // namespace coev::net
