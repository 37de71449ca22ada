// tests/net/buffer_test.cpp
// The evbuffer equivalent: random operations against a std::string model, end-of-line styles on
// segment boundaries, zero-copy references, files, fds, freezing and change callbacks.
#include "helpers.hpp"

#include <coev/net/buffer.hpp>

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>

using coev::net::buffer;
using coev::net::eol_style;

namespace {

std::span<const std::byte> bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// A buffer whose segments are exactly `parts` (references never merge), each released into
// `released` when gone.
buffer segmented(std::initializer_list<std::string_view> parts, int* released = nullptr) {
    buffer b;
    for (std::string_view p : parts) {
        auto* copy = new std::string(p);
        b.add_reference(bytes(*copy), [copy, released] {
            delete copy;
            if (released) ++*released;
        });
    }
    return b;
}

// The model's answer for find_eol, written the slow and obvious way.
std::optional<coev::net::eol_match> model_eol(const std::string& s, eol_style style) {
    switch (style) {
    case eol_style::lf: {
        auto p = s.find('\n');
        if (p == std::string::npos) return std::nullopt;
        return coev::net::eol_match{p, 1};
    }
    case eol_style::nul: {
        auto p = s.find('\0');
        if (p == std::string::npos) return std::nullopt;
        return coev::net::eol_match{p, 1};
    }
    case eol_style::crlf: {
        auto p = s.find('\n');
        if (p == std::string::npos) return std::nullopt;
        if (p > 0 && s[p - 1] == '\r') return coev::net::eol_match{p - 1, 2};
        return coev::net::eol_match{p, 1};
    }
    case eol_style::crlf_strict: {
        auto p = s.find("\r\n");
        if (p == std::string::npos) return std::nullopt;
        return coev::net::eol_match{p, 2};
    }
    case eol_style::any: {
        auto p = s.find_first_of("\r\n");
        if (p == std::string::npos) return std::nullopt;
        auto q = s.find_first_not_of("\r\n", p);
        return coev::net::eol_match{p, (q == std::string::npos ? s.size() : q) - p};
    }
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("a buffer follows a std::string model through 100,000 random operations") {
    std::mt19937 rng(20261123);
    auto pick = [&](std::size_t n) { return std::size_t(rng() % (n ? n : 1)); };
    const char alphabet[] = "ab\r\n\0xyz";
    auto random_text = [&](std::size_t max) {
        std::string s(pick(max + 1), '\0');
        for (char& c : s) c = alphabet[pick(sizeof alphabet - 1)];
        return s;
    };
    buffer b, other;
    std::string model, other_model;
    int references_made = 0, references_released = 0;
    for (int step = 0; step < 100'000; ++step) {
        switch (pick(16)) {
        case 0: {
            auto s = random_text(300);
            b.append(s);
            model += s;
            break;
        }
        case 1: {
            auto s = random_text(40);
            b.prepend(s);
            model.insert(0, s);
            break;
        }
        case 2: {
            const unsigned v = unsigned(rng());
            std::size_t n = b.append_printf("<%u|%s>", v, "fmt");
            std::string s = "<" + std::to_string(v) + "|fmt>";
            CHECK(n == s.size());
            model += s;
            break;
        }
        case 3: {
            auto s = random_text(5000);
            other.append(s);
            other_model += s;
            const std::size_t n = pick(other_model.size() + 2);
            const std::size_t moved = b.move_from(other, n);
            REQUIRE(moved == std::min(n, other_model.size()));
            model += other_model.substr(0, moved);
            other_model.erase(0, moved);
            break;
        }
        case 4: {
            auto* s = new std::string(random_text(200));
            ++references_made;
            model += *s;  // first: an empty reference is released at once
            b.add_reference(bytes(*s), [s, &references_released] {
                delete s;
                ++references_released;
            });
            break;
        }
        case 5: {
            auto s = random_text(9000);
            auto space = b.reserve(s.size());
            REQUIRE(space.size() >= s.size());
            std::memcpy(space.data(), s.data(), s.size());
            b.commit(s.size());
            model += s;
            break;
        }
        case 6: {
            const std::size_t n = pick(model.size() + 10);
            CHECK(b.drain(n) == std::min(n, model.size()));
            model.erase(0, std::min(n, model.size()));
            break;
        }
        case 7: {
            std::string out(pick(400), '\0');
            const std::size_t n = b.remove(std::as_writable_bytes(std::span(out)));
            REQUIRE(n == std::min(out.size(), model.size()));
            CHECK(out.substr(0, n) == model.substr(0, n));
            model.erase(0, n);
            break;
        }
        case 8: {
            const std::size_t from = pick(model.size() + 1);
            std::string out(pick(600), '\0');
            const std::size_t n = b.copy_out(std::as_writable_bytes(std::span(out)), from);
            REQUIRE(n == std::min(out.size(), model.size() - from));
            CHECK(out.substr(0, n) == model.substr(from, n));
            break;
        }
        case 9: {
            const std::size_t n = pick(model.size() + 1);
            std::byte* p = b.pullup(n);
            if (n > 0) {
                REQUIRE(p != nullptr);
                CHECK(std::string(reinterpret_cast<char*>(p), n) == model.substr(0, n));
            }
            break;
        }
        case 10: {
            iovec iov[8];
            const std::size_t max = pick(model.size() + 1);
            const std::size_t needed = b.peek(iov, max);
            std::string seen;
            for (std::size_t i = 0; i < std::min<std::size_t>(needed, 8); ++i)
                seen.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
            if (needed <= 8) CHECK(seen == model.substr(0, max));
            else CHECK(seen == model.substr(0, seen.size()));
            break;
        }
        case 11: {
            std::string what = random_text(4);
            const std::size_t start = pick(model.size() + 1);
            auto got = b.search(what, start);
            auto want = model.find(what, start);
            if (want == std::string::npos) CHECK_FALSE(got.has_value());
            else CHECK(got == std::optional<std::size_t>(want));
            break;
        }
        case 12:
        case 13: {
            const auto style = eol_style(pick(5));
            auto got = b.find_eol(style);
            auto want = model_eol(model, style);
            REQUIRE(got.has_value() == want.has_value());
            if (want) {
                CHECK(got->pos == want->pos);
                CHECK(got->len == want->len);
            }
            auto line = b.read_line(style);
            REQUIRE(line.has_value() == want.has_value());
            if (want) {
                CHECK(*line == model.substr(0, want->pos));
                model.erase(0, want->pos + want->len);
            }
            break;
        }
        case 14: {
            const std::size_t start = pick(model.size() + 1);
            const std::size_t end = start + pick(model.size() - start + 1);
            std::string what = random_text(3);
            auto got = b.search_range(what, start, end);
            std::size_t want = model.find(what, start);
            if (want != std::string::npos && want + what.size() > end) want = std::string::npos;
            if (want == std::string::npos) CHECK_FALSE(got.has_value());
            else CHECK(got == std::optional<std::size_t>(want));
            break;
        }
        case 15: {
            buffer moved(std::move(b));
            b = std::move(moved);
            break;
        }
        }
        REQUIRE(b.size() == model.size());
        if (step % 97 == 0) REQUIRE(b.to_string() == model);
        if (model.size() > 200'000) {  // keep it bounded
            b.drain(150'000);
            model.erase(0, 150'000);
        }
    }
    CHECK(b.to_string() == model);
    b = buffer();
    CHECK(references_released == references_made);
}

TEST_CASE("every end-of-line style finds lines across segment boundaries") {
    SUBCASE("CRLF split between two segments") {
        for (auto style : {eol_style::crlf, eol_style::crlf_strict, eol_style::any}) {
            buffer b = segmented({"first\r", "\nsecond\r\n"});
            CHECK(b.read_line(style) == std::optional<std::string>("first"));
            CHECK(b.read_line(style) == std::optional<std::string>("second"));
            CHECK(b.empty());
        }
    }
    SUBCASE("a CR at the very end is not yet a strict CRLF") {
        buffer b = segmented({"line\r"});
        CHECK_FALSE(b.read_line(eol_style::crlf_strict));
        CHECK_FALSE(b.read_line(eol_style::crlf));
        CHECK_FALSE(b.read_line(eol_style::lf));
        b.append("\n");
        CHECK(b.read_line(eol_style::crlf_strict) == std::optional<std::string>("line"));
    }
    SUBCASE("any takes a CR at the very end as it stands, as EVBUFFER_EOL_ANY does") {
        buffer b = segmented({"line\r"});
        CHECK(b.read_line(eol_style::any) == std::optional<std::string>("line"));
        b.append("\nnext\n");
        CHECK(b.read_line(eol_style::any) == std::optional<std::string>(""));
        CHECK(b.read_line(eol_style::any) == std::optional<std::string>("next"));
    }
    SUBCASE("a lone CR inside a line is data for crlf_strict, an end for any") {
        buffer b = segmented({"a\rb", "\r\n"});
        CHECK(b.find_eol(eol_style::crlf_strict)->pos == 3);
        CHECK(b.find_eol(eol_style::any)->pos == 1);
        CHECK(b.read_line(eol_style::crlf_strict) == std::optional<std::string>("a\rb"));
    }
    SUBCASE("CR CR LF: crlf takes the last CR, any takes the whole run") {
        buffer b = segmented({"x\r", "\r", "\ny"});
        auto crlf = b.find_eol(eol_style::crlf);
        CHECK(crlf->pos == 2);
        CHECK(crlf->len == 2);
        auto any = b.find_eol(eol_style::any);
        CHECK(any->pos == 1);
        CHECK(any->len == 3);
        CHECK(b.read_line(eol_style::any) == std::optional<std::string>("x"));
        CHECK(b.to_string() == "y");
    }
    SUBCASE("empty lines and NUL") {
        buffer b = segmented({"\n", "\n", "a", std::string_view("b\0c", 3)});
        CHECK(b.read_line(eol_style::lf) == std::optional<std::string>(""));
        CHECK(b.read_line(eol_style::lf) == std::optional<std::string>(""));
        CHECK(b.read_line(eol_style::nul) == std::optional<std::string>("ab"));
        CHECK(b.to_string() == "c");
    }
}

TEST_CASE("a zero-copy reference is released exactly once") {
    int released = 0;
    SUBCASE("after its last byte is drained") {
        buffer b = segmented({"hello"}, &released);
        b.drain(4);
        CHECK(released == 0);
        b.drain(1);
        CHECK(released == 1);
    }
    SUBCASE("when the buffer holding it is destroyed") {
        { buffer b = segmented({"hello"}, &released); }
        CHECK(released == 1);
    }
    SUBCASE("when moved whole into another buffer and drained there") {
        buffer a = segmented({"hello"}, &released);
        buffer b;
        b.append(std::move(a));
        CHECK(a.empty());
        CHECK(released == 0);
        b.drain(5);
        CHECK(released == 1);
    }
    SUBCASE("when split by a partial move, after both sides are drained") {
        buffer a = segmented({std::string(1000, 'r')}, &released);
        buffer b;
        CHECK(b.move_from(a, 600) == 600);
        b.drain(600);
        CHECK(released == 0);
        a.drain(400);
        CHECK(released == 1);
    }
    CHECK(released == 1);
}

TEST_CASE("add_file bytes come out through copy_out, pullup and write_to") {
    char path[] = "/tmp/coev-buffer-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    std::string content;
    for (int i = 0; i < 20'000; ++i) content += char('a' + i % 26);
    REQUIRE(::write(fd, content.data(), content.size()) == ssize_t(content.size()));

    SUBCASE("copied and pulled up") {
        buffer b;
        b.append("head:");
        REQUIRE(b.add_file(::dup(fd), 100, 5000));
        CHECK(b.size() == 5005);
        std::string out(5005, '\0');
        CHECK(b.copy_out(std::as_writable_bytes(std::span(out))) == 5005);
        CHECK(out == "head:" + content.substr(100, 5000));
        std::byte* p = b.pullup();
        CHECK(std::string(reinterpret_cast<char*>(p), 5005) == out);
    }
    SUBCASE("written to a socket with sendfile") {
        auto ac_ = coev_test::make_socket_pair();
        auto& a = ac_.a;
        auto& c = ac_.b;
        buffer b;
        b.append("<");
        REQUIRE(b.add_file(::dup(fd), 0, content.size()));
        b.append(">");
        std::string got;
        for (int i = 0; i < 1000 && !b.empty(); ++i) {
            auto n = b.write_to(a.get());
            if (!n) REQUIRE(n.error() == std::errc::resource_unavailable_try_again);
            char tmp[65536];
            for (;;) {
                ssize_t r = ::recv(c.get(), tmp, sizeof tmp, MSG_DONTWAIT);
                if (r <= 0) break;
                got.append(tmp, std::size_t(r));
            }
        }
        CHECK(b.empty());
        CHECK(got == "<" + content + ">");
    }
    SUBCASE("a file that shrinks after add_file is still written out, its lost end as zeros") {
        auto ac_ = coev_test::make_socket_pair();
        buffer b;
        REQUIRE(b.add_file(::dup(fd), 0, 10'000));
        REQUIRE(::ftruncate(fd, 100) == 0);
        std::string got;
        for (int i = 0; i < 1000 && !b.empty(); ++i) {
            auto n = b.write_to(ac_.a.get());
            if (!n) REQUIRE(n.error() == std::errc::resource_unavailable_try_again);
            char tmp[65536];
            for (;;) {
                ssize_t r = ::recv(ac_.b.get(), tmp, sizeof tmp, MSG_DONTWAIT);
                if (r <= 0) break;
                got.append(tmp, std::size_t(r));
            }
        }
        CHECK(b.empty());
        CHECK(got == content.substr(0, 100) + std::string(9'900, '\0'));
    }
    SUBCASE("a range past the end of the file, or an fd that is not a file, is refused") {
        buffer b;
        CHECK(b.add_file(fd, 19'000, 5000).error() == std::errc::invalid_argument);
        // Past the end by 8, with a length whose sum with the offset wraps to the file's size.
        const auto size = std::size_t(::lseek(fd, 0, SEEK_END));
        CHECK(b.add_file(fd, off_t(size + 8), size - (size + 8)).error() ==
              std::errc::invalid_argument);
        CHECK(b.add_file(fd, 8, std::size_t(-1) - 3).error() == std::errc::invalid_argument);
        CHECK(b.add_file(-1, 0, 1).error() == std::errc::bad_file_descriptor);
        int p[2];
        REQUIRE(::pipe(p) == 0);
        CHECK(b.add_file(p[0], 0, 10).error() == std::errc::invalid_argument);
        ::close(p[0]);
        ::close(p[1]);
        CHECK(b.empty());
    }
    ::close(fd);
}

TEST_CASE("read_from and write_to move bytes through a socket, with EAGAIN and EOF") {
    auto ac_ = coev_test::make_socket_pair();
    auto& a = ac_.a;
    auto& c = ac_.b;
    buffer out, in;
    std::string sent(300'000, 'q');
    for (std::size_t i = 0; i < sent.size(); i += 7) sent[i] = char('0' + i % 10);
    out.append(sent);
    bool saw_full = false;
    for (int i = 0; i < 10'000 && in.size() < sent.size(); ++i) {
        if (!out.empty()) {
            auto w = out.write_to(a.get());
            if (!w) {
                CHECK(w.error() == std::errc::resource_unavailable_try_again);
                saw_full = true;
            }
        }
        auto r = in.read_from(c.get());
        if (!r) CHECK(r.error() == std::errc::resource_unavailable_try_again);
    }
    CHECK(saw_full);
    CHECK(in.to_string() == sent);
    auto empty = in.read_from(c.get());
    CHECK(empty.error() == std::errc::resource_unavailable_try_again);
    a.close();
    auto eof = in.read_from(c.get());
    REQUIRE(eof);
    CHECK(*eof == 0);
}

TEST_CASE("a frozen end refuses changes with std::logic_error") {
    buffer b;
    b.append("abc");
    b.freeze_back(true);
    CHECK_THROWS_AS(b.append("x"), std::logic_error);
    CHECK_THROWS_AS((void)b.reserve(10), std::logic_error);
    CHECK(b.drain(1) == 1);  // the front is still free
    b.freeze_back(false);
    b.freeze_front(true);
    CHECK_THROWS_AS(b.drain(1), std::logic_error);
    CHECK_THROWS_AS(b.prepend("x"), std::logic_error);
    CHECK_THROWS_AS((void)b.read_line(eol_style::lf), std::logic_error);
    b.append("d");
    CHECK(b.to_string() == "bcd");
}

// Regression: pullup merged the front segments of a frozen front, freeing the bytes a pending
// write pointed into (a buffered_stream flushing to a stream_pair).
TEST_CASE("pullup does not merge across a frozen front") {
    int released = 0;
    buffer b = segmented({"abc", "def"}, &released);
    b.freeze_front(true);
    CHECK_THROWS_AS((void)b.pullup(4), std::logic_error);
    CHECK(released == 0);
    REQUIRE(b.pullup(3) != nullptr);  // already contiguous: nothing changes
    CHECK(b.to_string() == "abcdef");
    b.freeze_front(false);
    REQUIRE(b.pullup(4) != nullptr);
    CHECK(released == 1);  // "abc" merged away; "def" keeps its last two bytes
    CHECK(b.to_string() == "abcdef");
}

TEST_CASE("reserving more than memory can hold is bad_alloc, not a smaller span") {
    buffer b;
    CHECK_THROWS_AS((void)b.reserve(buffer::npos), std::bad_alloc);
    CHECK_THROWS_AS((void)b.reserve(buffer::npos - 60), std::bad_alloc);
    CHECK(b.empty());
    CHECK(b.reserve(100).size() >= 100);
}

namespace {
void fill_thread_local_buffer() {
    thread_local buffer kept;  // made before this thread's block pools, so destroyed after them
    kept.append(std::string(5000, 'x'));
    buffer passing;  // its block and segment go back to the pools, which then hold memory
    passing.append(std::string(5000, 'z'));
}
}  // namespace

// Regression (seen by ASan): a buffer destroyed after its thread's block pools (a thread_local
// or static one made first) gave its blocks back into the destroyed pools' vectors.
TEST_CASE("a buffer that outlives its thread's block pools frees its blocks safely") {
    std::thread t(fill_thread_local_buffer);
    t.join();
    buffer b;  // and this thread's pools still work
    b.append(std::string(5000, 'y'));
    CHECK(b.size() == 5000);
}

TEST_CASE("change callbacks report every change in size") {
    buffer b;
    std::vector<coev::net::buffer_change> seen;
    auto id = b.add_callback([&](buffer&, const coev::net::buffer_change& c) { seen.push_back(c); });
    b.append("hello");
    b.drain(2);
    b.reserve(100);
    b.commit(0);  // no change: no call
    buffer other;
    other.append("xyz");
    b.move_from(other, 2);
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].orig_size == 0);
    CHECK(seen[0].added == 5);
    CHECK(seen[1].deleted == 2);
    CHECK(seen[2].orig_size == 3);
    CHECK(seen[2].added == 2);
    CHECK(b.remove_callback(id));
    b.append("more");
    CHECK(seen.size() == 3);
    CHECK_FALSE(b.remove_callback(id));
}

TEST_CASE("an emptied buffer holds no block, and commit past the reserve is a logic error") {
    buffer b;
    auto space = b.reserve(100);
    REQUIRE(space.size() >= 100);
    b.commit(0);
    CHECK(b.contiguous_space() == 0);
    CHECK_THROWS_AS(b.commit(1), std::logic_error);
    b.append("x");
    CHECK_THROWS_AS(b.commit(1'000'000), std::logic_error);
    CHECK(b.to_string() == "x");
}
