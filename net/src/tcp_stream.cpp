// net/src/tcp_stream.cpp
#include <coev/net/tcp_stream.hpp>
#include <coev/runtime/timer.hpp>

#include <algorithm>
#include <vector>

namespace coev::net {

task<result<std::size_t>> stream_socket::read_exact(std::span<std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size()) {
        auto n = co_await read_some(buf.subspan(done));
        if (!n) co_return n.error();
        if (*n == 0) co_return error::unexpected_eof;
        done += *n;
    }
    co_return done;
}

task<result<std::size_t>> stream_socket::write(std::span<const std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size()) {
        auto n = co_await write_some(buf.subspan(done));
        if (!n) co_return n.error();
        done += *n;
    }
    co_return done;
}

task<result<std::size_t>> stream_socket::writev(std::span<const iovec> iov) {
    std::size_t total = 0;
    for (const iovec& v : iov) total += v.iov_len;
    // The first attempt writes from the caller's array; a short write continues on a copy,
    // advanced past what went out.
    // (At most IOV_MAX entries per call: the kernel refuses more with EMSGSIZE.)
    auto first = co_await writev_some(iov.first(std::min<std::size_t>(iov.size(), IOV_MAX)));
    if (!first) co_return first.error();
    std::size_t done = *first;
    if (done == total) co_return done;
    std::vector<iovec> rest(iov.begin(), iov.end());
    std::size_t skip = done, i = 0;
    for (;;) {
        while (i < rest.size() && skip >= rest[i].iov_len) skip -= rest[i++].iov_len;
        if (i == rest.size()) break;
        rest[i].iov_base = static_cast<char*>(rest[i].iov_base) + skip;
        rest[i].iov_len -= skip;
        std::span<const iovec> left(rest.data() + i, std::min<std::size_t>(rest.size() - i, IOV_MAX));
        auto n = co_await writev_some(left);
        if (!n) co_return n.error();
        done += *n;
        skip = *n;
    }
    co_return done;
}

task<result<void>> stream_socket::connect_socket(net::socket& s, endpoint ep,
                                                 std::optional<duration> timeout) {
    result<void> r;
    if (timeout) {
        r = co_await with_timeout(*timeout, coev::connect(s.native_handle(), ep.data(), ep.size()));
    } else {
        r = co_await coev::connect(s.native_handle(), ep.data(), ep.size());
    }
    if (!r) s.close();
    co_return r;
}

task<result<tcp_stream>> tcp_stream::connect(endpoint ep, std::optional<duration> timeout) {
    if (!ep.is_ip()) co_return std::make_error_code(std::errc::invalid_argument);
    auto s = net::socket::open(ep.family(), SOCK_STREAM);
    if (!s) co_return s.error();
    auto r = co_await connect_socket(*s, ep, timeout);
    if (!r) co_return r.error();
    co_return tcp_stream(std::move(*s));
}

}  // namespace coev::net
