// tests/net/address_test.cpp
// Addresses and endpoints: parse, format, compare, hash, sockaddr round trips; bad text is an error.
#include <coev/net/address.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <ostream>  // doctest prints std::error_code
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <sys/un.h>
#include <unordered_set>

using coev::net::address;
using coev::net::endpoint;

TEST_CASE("endpoints round-trip through text") {
    for (const char* text : {"127.0.0.1:80", "0.0.0.0:0", "255.255.255.255:65535", "[::1]:443",
                             "[2001:db8::1]:8080", "[::ffff:1.2.3.4]:1", "[fe80::1%1]:80",
                             "unix:/tmp/coev.sock", "unix:@coev-abstract"}) {
        CAPTURE(text);
        auto e = endpoint::parse(text);
        REQUIRE(e);
        CHECK(e->to_string() == text);
        auto again = endpoint::parse(e->to_string());
        REQUIRE(again);
        CHECK(*again == *e);
    }
}

TEST_CASE("a bare address parses as an endpoint with port 0, as evutil_parse_sockaddr_port does") {
    auto v4 = endpoint::parse("10.1.2.3");
    REQUIRE(v4);
    CHECK(v4->port() == 0);
    CHECK(v4->address().to_string() == "10.1.2.3");
    auto v6 = endpoint::parse("::1");
    REQUIRE(v6);
    CHECK(v6->family() == AF_INET6);
    CHECK(v6->address().is_loopback());
    auto bracketed = endpoint::parse("[::1]");
    REQUIRE(bracketed);
    CHECK(*bracketed == *v6);
}

TEST_CASE("bad endpoint text is an error, never a crash") {
    for (const char* text :
         {"", ":", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4: 80",
          " 1.2.3.4:80", "1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:1", "[::1", "[::1]80",
          "[::1]:", "[1.2.3.4]:80", "::1]:80", "[::1]:99999", "[:::]:1", "host:80", "unix:",
          "[fe80::1%]:1", "[fe80::1%no-such-if0]:1", "1.2.3.4:8080x", "[::1]:80:80",
          "12345678901234567890123456789012345678901234567890:1"}) {
        CAPTURE(text);
        CHECK_FALSE(endpoint::parse(text));
    }
    CHECK(endpoint::parse("1.2.3.4:x").error() == std::errc::invalid_argument);
}

// Regression: Linux's interface lookup stops at ':', so a scope "lo:80" read as "lo" and the
// port, written without brackets, was silently dropped.
TEST_CASE("a scope id with anything but an interface name or a number is refused") {
    for (const char* text : {"fe80::1%lo:80", "fe80::1%lo:junk", "fe80::1%1%2",
                             "fe80::1%4294967296", "fe80::1%lo/64", "fe80::1%l o"}) {
        CAPTURE(text);
        auto a = coev::net::address::parse(text);
        REQUIRE_FALSE(a);
        CHECK(a.error() == std::errc::invalid_argument);
    }
    for (const char* text : {"fe80::1%lo:80", "[fe80::1%lo:443]:80", "[fe80::1%1%2]:80"}) {
        CAPTURE(text);
        CHECK_FALSE(endpoint::parse(text));
    }
    auto max = coev::net::address::parse("fe80::1%4294967295");
    REQUIRE(max);
    CHECK(max->scope_id() == 4294967295u);
}

// Regression: the C parsers stop at a NUL, so text with one inside parsed as its prefix.
TEST_CASE("text with a NUL inside is refused, not cut short") {
    using namespace std::string_view_literals;
    for (std::string_view text : {"127.0.0.1\0garbage:80"sv, "[::1\0zzz]:80"sv,
                                  "[fe80::1%lo\0xx]:1"sv, "1.2.3.4:8\0"sv}) {
        CAPTURE(text.size());
        CHECK_FALSE(endpoint::parse(text));
    }
    CHECK_FALSE(coev::net::address::parse("127.0.0.1\0evil"sv));
}

// Regression: Linux reports a 108-byte Unix path without its NUL as sizeof(sockaddr_un) + 1
// (unix(7)); from_sockaddr refused it, and accept() then reported such a peer as 0.0.0.0:0.
TEST_CASE("a Unix address of a full 108-byte path, as the kernel reports it, is accepted") {
    sockaddr_storage ss{};
    auto* sun = reinterpret_cast<sockaddr_un*>(&ss);
    sun->sun_family = AF_UNIX;
    const std::string path(sizeof(sockaddr_un::sun_path), 'p');
    std::memcpy(sun->sun_path, path.data(), path.size());
    auto e = endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss),
                                     socklen_t(sizeof(sockaddr_un) + 1));
    REQUIRE(e);
    CHECK(e->path() == path);
    CHECK_FALSE(endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss),
                                        socklen_t(sizeof(sockaddr_un) + 2)));
}

TEST_CASE("a Unix path longer than sockaddr_un holds is refused") {
    std::string path(sizeof(sockaddr_un::sun_path), 'a');
    auto e = endpoint::unix_path("/" + path);
    REQUIRE_FALSE(e);
    CHECK(e.error() == std::errc::filename_too_long);
    CHECK(endpoint::unix_path(std::string(sizeof(sockaddr_un::sun_path) - 2, 'b')));
}

TEST_CASE("addresses parse, classify and format") {
    auto a = address::parse("127.0.0.1");
    REQUIRE(a);
    CHECK(a->is_v4());
    CHECK(a->is_loopback());
    CHECK(*a == address::loopback_v4());
    auto u = address::parse("::");
    REQUIRE(u);
    CHECK(u->is_unspecified());
    CHECK(u->to_string() == "::");
    auto scoped = address::parse("fe80::abcd%7");
    REQUIRE(scoped);
    CHECK(scoped->scope_id() == 7);
    CHECK(scoped->to_string() == "fe80::abcd%7");
    auto lo = address::parse("::1%lo");
    REQUIRE(lo);
    CHECK(lo->scope_id() != 0);
    CHECK_FALSE(address::parse("1.2.3.4:80"));
    CHECK_FALSE(address::parse("[::1]"));
}

TEST_CASE("endpoints convert to sockaddr and back") {
    auto e = endpoint::parse("[2001:db8::7]:9000");
    REQUIRE(e);
    REQUIRE(e->size() == sizeof(sockaddr_in6));
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(e->data());
    CHECK(ntohs(sin6->sin6_port) == 9000);
    auto back = endpoint::from_sockaddr(e->data(), e->size());
    REQUIRE(back);
    CHECK(*back == *e);

    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(53);
    sin.sin_addr.s_addr = htonl(0x0a000001);
    auto v4 = endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    REQUIRE(v4);
    CHECK(v4->to_string() == "10.0.0.1:53");
    CHECK_FALSE(endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), 4));
    sockaddr bad{};
    bad.sa_family = AF_APPLETALK;
    CHECK(endpoint::from_sockaddr(&bad, sizeof bad).error() ==
          std::errc::address_family_not_supported);
}

TEST_CASE("endpoints order and hash consistently") {
    auto a = *endpoint::parse("10.0.0.1:80");
    auto b = *endpoint::parse("10.0.0.1:81");
    auto c = *endpoint::parse("[::1]:80");
    auto a2 = *endpoint::parse("10.0.0.1:80");
    CHECK(a < b);
    CHECK(a != c);
    CHECK(a == a2);
    std::unordered_set<endpoint> set{a, b, c, a2};
    CHECK(set.size() == 3);
    std::unordered_set<address> addrs{a.address(), b.address(), c.address()};
    CHECK(addrs.size() == 2);
}

TEST_CASE("inet_pton and inet_ntop mirror evutil's") {
    unsigned char buf[16];
    REQUIRE(coev::net::inet_pton(AF_INET, "192.168.1.9", buf));
    CHECK(coev::net::inet_ntop(AF_INET, buf) == "192.168.1.9");
    REQUIRE(coev::net::inet_pton(AF_INET6, "2001:db8::ff", buf));
    CHECK(coev::net::inet_ntop(AF_INET6, buf) == "2001:db8::ff");
    CHECK(coev::net::inet_pton(AF_INET, "192.168.1", buf).error() == std::errc::invalid_argument);
    CHECK(coev::net::inet_pton(AF_UNIX, "x", buf).error() ==
          std::errc::address_family_not_supported);
}
