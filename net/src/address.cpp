// net/src/address.cpp
#include <coev/net/address.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <net/if.h>
#include <netinet/in.h>
#include <string_view>
#include <sys/un.h>

namespace coev::net {

namespace {

std::error_code invalid() noexcept { return std::make_error_code(std::errc::invalid_argument); }

// A decimal port: digits only (no sign, no spaces), at most 65535.
bool parse_port(std::string_view s, std::uint16_t& out) noexcept {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + unsigned(c - '0');
    }
    if (v > 65535) return false;
    out = std::uint16_t(v);
    return true;
}

// inet_pton() wants a NUL-terminated string; addresses are short, so a stack copy does.
// Text with a NUL inside is refused: the C functions would stop there and ignore the rest.
template <std::size_t N> bool to_cstr(std::string_view s, char (&buf)[N]) noexcept {
    if (s.size() >= N || s.find('\0') != std::string_view::npos) return false;
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    return true;
}

constexpr std::size_t max_unix_path = sizeof(sockaddr_un::sun_path);

}  // namespace

// ---- address ----

address address::v4(std::array<std::uint8_t, 4> b) noexcept {
    address a;
    std::copy(b.begin(), b.end(), a.bytes_.begin());
    return a;
}

address address::v6(std::array<std::uint8_t, 16> b, std::uint32_t scope_id) noexcept {
    address a;
    a.family_ = AF_INET6;
    a.bytes_ = b;
    a.scope_ = scope_id;
    return a;
}

address address::loopback_v6() noexcept {
    std::array<std::uint8_t, 16> b{};
    b[15] = 1;
    return v6(b);
}

result<address> address::parse(std::string_view text) {
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (text.find(':') == std::string_view::npos) {
        std::array<std::uint8_t, 4> b;
        if (!to_cstr(text, buf) || ::inet_pton(AF_INET, buf, b.data()) != 1) return invalid();
        return v4(b);
    }
    std::string_view host = text, scope;
    if (auto pct = text.find('%'); pct != std::string_view::npos) {
        host = text.substr(0, pct);
        scope = text.substr(pct + 1);
        if (scope.empty()) return invalid();
    }
    std::array<std::uint8_t, 16> b;
    if (!to_cstr(host, buf) || ::inet_pton(AF_INET6, buf, b.data()) != 1) return invalid();
    std::uint32_t scope_id = 0;
    if (!scope.empty()) {
        // A number, or an interface name: never ':' (Linux's lookup would stop at it, so
        // "fe80::1%lo:80", a port written without brackets, read as scope lo and no port).
        const bool digits = scope.find_first_not_of("0123456789") == std::string_view::npos;
        if (digits) {
            auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), scope_id);
            if (ec != std::errc{} || end != scope.data() + scope.size()) return invalid();
        } else {
            if (scope.find_first_of(":%/ \t\n") != std::string_view::npos) return invalid();
            char name[IF_NAMESIZE];
            if (!to_cstr(scope, name)) return invalid();
            scope_id = ::if_nametoindex(name);
            if (scope_id == 0) return std::make_error_code(std::errc::no_such_device);
        }
    }
    return v6(b, scope_id);
}

bool address::is_loopback() const noexcept {
    if (is_v4()) return bytes_[0] == 127;
    return *this == loopback_v6();
}

bool address::is_unspecified() const noexcept {
    return std::all_of(bytes_.begin(), bytes_.begin() + (is_v4() ? 4 : 16),
                       [](std::uint8_t c) { return c == 0; });
}

std::string address::to_string() const {
    std::string s = inet_ntop(family_, bytes_.data());
    if (is_v6() && scope_ != 0) s += '%' + std::to_string(scope_);
    return s;
}

// ---- endpoint ----

endpoint::endpoint() noexcept : endpoint(coev::net::address{}, 0) {}

endpoint::endpoint(const coev::net::address& a, std::uint16_t port) noexcept {
    std::memset(&storage_, 0, sizeof storage_);
    if (a.is_v4()) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&storage_);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        std::memcpy(&sin->sin_addr, a.bytes().data(), 4);
        len_ = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage_);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        std::memcpy(&sin6->sin6_addr, a.bytes().data(), 16);
        sin6->sin6_scope_id = a.scope_id();
        len_ = sizeof(sockaddr_in6);
    }
}

result<endpoint> endpoint::unix_path(std::string_view path) {
    if (path.empty()) return invalid();
    // A pathname needs its terminating NUL inside sun_path; an abstract name does not.
    const bool abstract = path[0] == '@';
    if (path.size() + (abstract ? 0 : 1) > max_unix_path)
        return std::make_error_code(std::errc::filename_too_long);
    if (path.find('\0') != std::string_view::npos) return invalid();
    endpoint e;
    std::memset(&e.storage_, 0, sizeof e.storage_);
    auto* sun = reinterpret_cast<sockaddr_un*>(&e.storage_);
    sun->sun_family = AF_UNIX;
    std::memcpy(sun->sun_path, path.data(), path.size());
    if (abstract) sun->sun_path[0] = '\0';
    e.len_ = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
    return e;
}

result<endpoint> endpoint::parse(std::string_view text) {
    if (text.starts_with("unix:")) return unix_path(text.substr(5));
    std::string_view host, port_text;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) return invalid();
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') return invalid();
            port_text = rest.substr(1);
            if (port_text.empty()) return invalid();
        }
        if (host.find(':') == std::string_view::npos) return invalid();  // "[1.2.3.4]"
    } else if (auto colon = text.find(':'); colon == std::string_view::npos) {
        host = text;  // "1.2.3.4"
    } else if (text.find(':', colon + 1) == std::string_view::npos) {
        host = text.substr(0, colon);  // "1.2.3.4:80"
        port_text = text.substr(colon + 1);
        if (port_text.empty()) return invalid();
    } else {
        host = text;  // "::1": a bare IPv6 address carries no port
    }
    std::uint16_t port = 0;
    if (!port_text.empty() && !parse_port(port_text, port)) return invalid();
    auto a = coev::net::address::parse(host);
    if (!a) return a.error();
    return endpoint(*a, port);
}

result<endpoint> endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) {
    if (!sa || len < socklen_t(sizeof(sa_family_t))) return invalid();
    endpoint e;
    switch (sa->sa_family) {
    case AF_INET:
        if (len < socklen_t(sizeof(sockaddr_in))) return invalid();
        len = sizeof(sockaddr_in);
        break;
    case AF_INET6:
        if (len < socklen_t(sizeof(sockaddr_in6))) return invalid();
        len = sizeof(sockaddr_in6);
        break;
    case AF_UNIX:
        // Linux reports a 108-byte path without its NUL as one byte more than sockaddr_un
        // (unix(7)); the storage has room for it.
        if (len > socklen_t(sizeof(sockaddr_un) + 1)) return invalid();
        break;
    default:
        return std::make_error_code(std::errc::address_family_not_supported);
    }
    std::memset(&e.storage_, 0, sizeof e.storage_);
    std::memcpy(&e.storage_, sa, len);
    e.len_ = len;
    return e;
}

coev::net::address endpoint::address() const noexcept {
    if (family() == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&storage_);
        std::array<std::uint8_t, 4> b;
        std::memcpy(b.data(), &sin->sin_addr, 4);
        return coev::net::address::v4(b);
    }
    if (family() == AF_INET6) {
        auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
        std::array<std::uint8_t, 16> b;
        std::memcpy(b.data(), &sin6->sin6_addr, 16);
        return coev::net::address::v6(b, sin6->sin6_scope_id);
    }
    return {};
}

std::uint16_t endpoint::port() const noexcept {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    if (family() == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    return 0;
}

std::string endpoint::path() const {
    if (!is_unix()) return {};
    // The bytes of sun_path, read through the storage: a 108-byte path without its NUL
    // reaches one byte past sockaddr_un (see from_sockaddr).
    const char* sun_path =
        reinterpret_cast<const char*>(&storage_) + offsetof(sockaddr_un, sun_path);
    std::size_t n = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path)
                                                           : 0;
    if (n == 0) return {};  // unnamed (socketpair, unbound)
    if (sun_path[0] == '\0') {  // abstract: shown with '@' in place of the NUL
        std::string name(sun_path, n);
        name[0] = '@';
        return name;
    }
    return std::string(sun_path, strnlen(sun_path, n));
}

std::string endpoint::to_string() const {
    if (is_unix()) return "unix:" + path();
    auto a = address();
    std::string port_text = std::to_string(port());
    if (a.is_v6()) return '[' + a.to_string() + "]:" + port_text;
    return a.to_string() + ':' + port_text;
}

std::strong_ordering operator<=>(const endpoint& a, const endpoint& b) noexcept {
    if (auto c = a.family() <=> b.family(); c != 0) return c;
    if (a.is_ip()) {
        if (auto c = a.address() <=> b.address(); c != 0) return c;
        return a.port() <=> b.port();
    }
    return a.path() <=> b.path();
}

// ---- evutil helpers ----

result<void> inet_pton(int af, std::string_view text, void* dst) noexcept {
    if (af != AF_INET && af != AF_INET6)
        return std::make_error_code(std::errc::address_family_not_supported);
    char buf[INET6_ADDRSTRLEN];
    if (!to_cstr(text, buf) || ::inet_pton(af, buf, dst) != 1) return invalid();
    return {};
}

std::string inet_ntop(int af, const void* src) {
    char buf[INET6_ADDRSTRLEN];
    if (!::inet_ntop(af, src, buf, sizeof buf)) return {};
    return buf;
}

}  // namespace coev::net

std::size_t std::hash<coev::net::address>::operator()(const coev::net::address& a) const noexcept {
    std::size_t h = std::size_t(a.family()) * 0x9e3779b97f4a7c15ull ^ a.scope_id();
    for (std::uint8_t b : a.bytes()) h = (h ^ b) * 0x100000001b3ull;
    return h;
}

std::size_t std::hash<coev::net::endpoint>::operator()(const coev::net::endpoint& e) const noexcept {
    if (e.is_unix()) return std::hash<std::string>{}(e.path());
    return std::hash<coev::net::address>{}(e.address()) * 31 + e.port();
}
