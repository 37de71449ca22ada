// net/src/unix_stream.cpp
#include <coev/net/unix_stream.hpp>

#include <cerrno>
#include <sys/socket.h>

namespace coev::net {

task<result<unix_stream>> unix_stream::connect(endpoint ep, std::optional<duration> timeout) {
    if (!ep.is_unix()) co_return std::make_error_code(std::errc::invalid_argument);
    auto s = net::socket::open(AF_UNIX, SOCK_STREAM);
    if (!s) co_return s.error();
    auto r = co_await connect_socket(*s, ep, timeout);
    if (!r) co_return r.error();
    co_return unix_stream(std::move(*s));
}

result<std::pair<unix_stream, unix_stream>> socket_pair() noexcept {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        return std::error_code(errno, std::system_category());
    return std::pair{unix_stream(unique_fd(fds[0])), unix_stream(unique_fd(fds[1]))};
}

}  // namespace coev::net
