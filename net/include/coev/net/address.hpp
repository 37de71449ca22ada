// coev/net/address.hpp
// IP addresses and socket endpoints (IPv4, IPv6 with scope ids, Unix paths): parsing, formatting,
// comparing, hashing and sockaddr glue; libevent's evutil_inet_pton/ntop and
// evutil_parse_sockaddr_port in value form.
#pragma once

#include <coev/runtime/result.hpp>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <sys/socket.h>

namespace coev::net {

/// An IPv4 or IPv6 address (IPv6 with its scope id); no port.
class address {
public:
    /// 0.0.0.0
    address() noexcept = default;
    /// Parses "127.0.0.1", "::1", "fe80::1%eth0" or "fe80::1%2". Errors: invalid_argument for
    /// anything else (no surrounding spaces, no brackets, no port), no_such_device for an
    /// unknown interface name.
    static result<address> parse(std::string_view text);
    static address v4(std::array<std::uint8_t, 4> bytes) noexcept;
    static address v6(std::array<std::uint8_t, 16> bytes, std::uint32_t scope_id = 0) noexcept;
    static address any_v4() noexcept { return {}; }
    static address loopback_v4() noexcept { return v4({127, 0, 0, 1}); }
    static address any_v6() noexcept { return v6({}); }
    static address loopback_v6() noexcept;

    bool is_v4() const noexcept { return family_ == AF_INET; }
    bool is_v6() const noexcept { return family_ == AF_INET6; }
    int family() const noexcept { return family_; }
    bool is_loopback() const noexcept;
    bool is_unspecified() const noexcept;
    /// The address in network byte order: 4 or 16 bytes.
    std::span<const std::uint8_t> bytes() const noexcept {
        return {bytes_.data(), is_v4() ? 4u : 16u};
    }
    std::uint32_t scope_id() const noexcept { return scope_; }
    /// "127.0.0.1", "::1", "fe80::1%2" (the scope as a number: names can change).
    std::string to_string() const;

    friend bool operator==(const address&, const address&) noexcept = default;
    friend std::strong_ordering operator<=>(const address&, const address&) noexcept = default;

private:
    std::uint16_t family_ = AF_INET;
    std::array<std::uint8_t, 16> bytes_{};
    std::uint32_t scope_ = 0;
};

/// Where a socket is bound or connected: an address and a port, or a Unix socket path
/// ("unix:/run/x.sock"; "unix:@name" is Linux's abstract namespace).
class endpoint {
public:
    /// 0.0.0.0:0
    endpoint() noexcept;
    endpoint(const address& a, std::uint16_t port) noexcept;
    /// Parses "127.0.0.1:80", "[::1]:443", "[fe80::1%eth0]:80", "unix:/path", "unix:@name", and
    /// (as evutil_parse_sockaddr_port does) a bare address with port 0: "127.0.0.1", "::1",
    /// "[::1]". Errors: invalid_argument for bad text or a port outside 0..65535,
    /// filename_too_long for a Unix path that does not fit sockaddr_un.
    static result<endpoint> parse(std::string_view text);
    /// A Unix socket path (a leading '@' means the abstract namespace).
    static result<endpoint> unix_path(std::string_view path);
    /// Copies a sockaddr the kernel gave. Errors: address_family_not_supported, invalid_argument
    /// when `len` is too short for its family.
    static result<endpoint> from_sockaddr(const sockaddr* sa, socklen_t len);

    int family() const noexcept { return storage_.ss_family; }
    bool is_ip() const noexcept { return family() == AF_INET || family() == AF_INET6; }
    bool is_unix() const noexcept { return family() == AF_UNIX; }
    /// The address of an IP endpoint (0.0.0.0 for a Unix one).
    coev::net::address address() const noexcept;
    std::uint16_t port() const noexcept;
    /// The path of a Unix endpoint ("@name" for an abstract one; empty for IP or unnamed).
    std::string path() const;

    const sockaddr* data() const noexcept {
        return reinterpret_cast<const sockaddr*>(&storage_);
    }
    socklen_t size() const noexcept { return len_; }

    /// "127.0.0.1:80", "[::1]:443", "unix:/path".
    std::string to_string() const;

    friend bool operator==(const endpoint& a, const endpoint& b) noexcept {
        return (a <=> b) == 0;
    }
    friend std::strong_ordering operator<=>(const endpoint& a, const endpoint& b) noexcept;

private:
    sockaddr_storage storage_;
    socklen_t len_;
};

/// evutil_inet_pton: parses a numeric address of family `af` into `dst` (4 or 16 bytes).
/// Errors: invalid_argument for bad text, address_family_not_supported for `af`.
result<void> inet_pton(int af, std::string_view text, void* dst) noexcept;
/// evutil_inet_ntop: formats 4 (AF_INET) or 16 (AF_INET6) bytes.
std::string inet_ntop(int af, const void* src);

}  // namespace coev::net

template <> struct std::hash<coev::net::address> {
    std::size_t operator()(const coev::net::address& a) const noexcept;
};
template <> struct std::hash<coev::net::endpoint> {
    std::size_t operator()(const coev::net::endpoint& e) const noexcept;
};
