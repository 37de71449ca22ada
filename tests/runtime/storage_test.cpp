// tests/runtime/storage_test.cpp
// The loop's storage parts on their own: the pending-start queue (segments, order, runs read
// in place), the stop callbacks' slot pool, pod_vector's move from malloc to its own
// mapping, and error codes kept in five bytes.
#include <coev/runtime.hpp>
#include <coev/runtime/detail/pages.hpp>
#include <coev/runtime/detail/ready_queue.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <coroutine>
#include <cstring>
#include <memory>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

using coev::detail::pod_vector;
using coev::detail::start_queue;

namespace {

// A fake frame address per entry: the queue never dereferences handles.
std::coroutine_handle<> fake_handle(std::uintptr_t i) {
    return std::coroutine_handle<>::from_address(reinterpret_cast<void*>((i + 1) * 64));
}
std::uintptr_t index_of(void* frame) { return reinterpret_cast<std::uintptr_t>(frame) / 64 - 1; }
// Every seventh promise sits somewhere other than where GCC and Clang put it, as a promise of
// stricter alignment would: the queue must keep it beside the entry.
coev::detail::promise_base* fake_promise(std::uintptr_t i) {
    const std::ptrdiff_t off = i % 7 == 0 ? 48 : coev::detail::usual_promise_offset;
    return reinterpret_cast<coev::detail::promise_base*>(
        static_cast<char*>(fake_handle(i).address()) + off);
}

void push(start_queue& q, std::uint32_t i, std::stop_token t = {}) {
    q.push(fake_promise(i), fake_handle(i), std::move(t), i % 3 != 0);
}
// The front entry's index, after checking that its fields agree with what push() was given.
std::uint32_t front_index(start_queue& q, bool& fields) {
    const start_queue::view v = q.front();
    const std::uintptr_t i = index_of(v.handle.address());
    if (v.promise != fake_promise(i) || v.detached != (i % 3 != 0)) fields = false;
    return std::uint32_t(i);
}

struct other_category : std::error_category {
    const char* name() const noexcept override { return "other"; }
    std::string message(int v) const override { return "other " + std::to_string(v); }
};

}  // namespace

TEST_CASE("the start queue keeps order across segments and drains") {
    start_queue q;
    std::stop_source src;
    constexpr std::uint32_t n = 300'000;  // more than the segments up to the largest hold
    std::uint32_t pushed = 0, popped = 0;
    bool order = true, fields = true, tokens = true;
    // Interleaved: pushes run ahead of pops, so segments are added and dropped while in use.
    while (popped < n) {
        for (int k = 0; k < 7 && pushed < n; ++k, ++pushed)
            push(q, pushed, pushed % 5 == 0 ? src.get_token() : std::stop_token{});
        for (int k = 0; k < 5 && popped < pushed; ++k, ++popped) {
            if (front_index(q, fields) != popped) order = false;
            const std::stop_token* t = q.front().token;
            if ((t && t->stop_possible()) != (popped % 5 == 0)) tokens = false;
            q.drop_front();
        }
        if (q.size() != pushed - popped) order = false;
    }
    CHECK(order);
    CHECK(fields);
    CHECK(tokens);
    CHECK(q.empty());
    // Refilled after draining, and cleared with entries in it (ASan checks what is freed).
    for (std::uint32_t i = 0; i < 100'000; ++i) push(q, i, src.get_token());
    CHECK(front_index(q, fields) == 0);
    CHECK(q.size() == 100'000);
    q.clear();
    CHECK(q.empty());
    push(q, 10);  // no token, usual promise: nothing beside the entry
    CHECK(front_index(q, fields) == 10);
    CHECK(q.front().token == nullptr);
    q.drop_front();
    push(q, 14);  // no token, unusual promise: kept beside it, with an empty token
    CHECK(front_index(q, fields) == 14);
    CHECK(!q.front().token->stop_possible());
    q.drop_front();
    // Used in place, as the loop starts a task: the token moves out, then the entry ends.
    push(q, 8, src.get_token());
    push(q, 9);
    std::stop_token taken = std::move(*q.front().token);
    q.drop_front();
    CHECK(taken.stop_possible());
    CHECK(front_index(q, fields) == 9);
    CHECK(q.size() == 1);
    CHECK(fields);
}

TEST_CASE("a run of starts read in place decodes like front() and ends at its segment's end") {
    start_queue q;
    std::stop_source src;
    constexpr std::uint32_t n = 5'000;  // several segments
    for (std::uint32_t i = 0; i < n; ++i)
        push(q, i, i % 4 == 0 ? src.get_token() : std::stop_token{});
    std::uint32_t next = 0, runs = 0;
    bool order = true, fields = true, tokens = true, bounded = true;
    while (!q.empty()) {
        std::size_t count = 0;
        const std::uintptr_t* words = q.front_run(count);
        if (count == 0 || count > q.size()) bounded = false;
        ++runs;
        for (std::size_t k = 0; k < count; ++k, ++next) {
            const start_queue::view v = q.decode_front(words[k]);
            const std::uintptr_t i = index_of(v.handle.address());
            if (i != next || start_queue::frame_of(words[k]) != v.handle.address()) order = false;
            if (v.promise != fake_promise(i) || v.detached != (i % 3 != 0)) fields = false;
            if ((v.token && v.token->stop_possible()) != (i % 4 == 0)) tokens = false;
            q.drop_front();
        }
    }
    CHECK(next == n);
    CHECK(runs > 1);  // it crossed segments
    CHECK(order);
    CHECK(fields);
    CHECK(tokens);
    CHECK(bounded);
}

TEST_CASE("the stop pool gives out distinct slots, reuses given ones first, and grows") {
    using coev::detail::stop_pool;
    static_assert(sizeof(stop_pool::slot) == sizeof(stop_pool::callback));
    stop_pool pool;
    constexpr std::size_t n = 100'000;  // past the first mapped chunk
    std::vector<stop_pool::slot*> taken;
    for (std::size_t i = 0; i < n; ++i) taken.push_back(pool.take());
    bool aligned = true, present = true;
    for (stop_pool::slot* s : taken) {
        if (!s) present = false;
        if (reinterpret_cast<std::uintptr_t>(s) % alignof(stop_pool::callback) != 0)
            aligned = false;
    }
    CHECK(present);
    CHECK(aligned);
    std::vector<stop_pool::slot*> sorted = taken;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    // Every slot is writable whole (ASan: no slot overlaps a chunk's header or its end).
    for (stop_pool::slot* s : taken) std::memset(static_cast<void*>(s), 0xa5, sizeof *s);
    // Given back, the last given is the first taken again.
    for (std::size_t i = 0; i < 10; ++i) pool.give(taken[i * 1000]);
    bool lifo = true;
    for (std::size_t i = 10; i-- > 0;)
        if (pool.take() != taken[i * 1000]) lifo = false;
    CHECK(lifo);
    for (stop_pool::slot* s : taken) pool.give(s);
}

TEST_CASE("pod_vector keeps its contents when it moves into its own mapping and grows there") {
    pod_vector<std::uint64_t> v;
    const std::size_t n = 3 * coev::detail::big_array_bytes / sizeof(std::uint64_t);
    bool same = true;
    for (std::size_t i = 0; i < n; ++i) {
        v.push_back(i * 2654435761u);
        // Spot checks while it grows: the first entries survive every move.
        if ((i & (i - 1)) == 0 && (v[0] != 0 || v[i / 2] != (i / 2) * 2654435761u)) same = false;
    }
    CHECK(same);
    CHECK(v.size() == n);
    CHECK(v.capacity() >= n);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i) wrong += v[i] != i * 2654435761u;
    CHECK(wrong == 0);
    while (v.size() > 10) v.pop_back();
    CHECK(v.back() == std::uint64_t{9} * 2654435761u);
    v.release();
    CHECK(v.empty());
    v.push_back(5);
    CHECK(v.front() == 5);
}

TEST_CASE("error codes survive the five-byte slot, whatever their category") {
    static const other_category other;
    const std::error_code codes[] = {
        std::make_error_code(std::errc::operation_canceled),
        std::error_code(ECONNRESET, std::system_category()),
        coev::make_error_code(coev::error::busy),
        std::error_code(-42, other),
        std::error_code(2'000'000'000, other),
    };
    for (const std::error_code& e : codes) {
        coev::detail::error_slot s;
        s = e;
        CHECK(bool(s));
        CHECK(s.code() == e);
        CHECK(&s.code().category() == &e.category());
        coev::result<void> r = e;
        CHECK_FALSE(r);
        CHECK(r.error() == e);
        coev::result<std::size_t> rs = e;
        CHECK_FALSE(rs);
        CHECK(rs.error() == e);
        coev::result<std::string> copy = coev::result<std::string>(e);
        coev::result<std::string> moved = std::move(copy);
        CHECK(moved.error() == e);
    }
    coev::detail::error_slot s;
    CHECK_FALSE(s);
    s = std::error_code();
    CHECK_FALSE(s);
    CHECK(s.code() == std::error_code());
    // A zero value keeps its category, as std::error_code does (audit, 2026-12-07).
    const std::error_code zero(0, other);
    s = zero;
    CHECK_FALSE(s);
    CHECK(s.code() == zero);
    coev::result<int> z = zero;
    CHECK_FALSE(z.has_value());
    CHECK(&z.error().category() == &other);
    coev::result<void> zv = zero;
    CHECK(zv.has_value());
    CHECK(&zv.error().category() == &other);
    CHECK(sizeof(coev::result<void>) == 8);
    CHECK(sizeof(coev::result<std::size_t>) == 16);
}

TEST_CASE("hundreds of error categories: the first ones keep theirs, the rest their values") {
    // Categories made by the hundred (each a distinct object) fill the registry; after that a
    // code keeps its value and reads back under a stand-in category, and nothing aborts.
    // The registry is the process's: the categories the other tests compare against go in
    // first, so that the tests after this one still see theirs.
    for (const std::error_category* c : {&std::generic_category(), &std::system_category(),
                                         &coev::error_category()}) {
        coev::detail::error_slot s;
        s = std::error_code(1, *c);
        REQUIRE(&s.code().category() == c);
    }
    std::vector<std::unique_ptr<other_category>> made;
    std::vector<std::error_code> codes;
    for (int i = 0; i < 300; ++i) {
        made.push_back(std::make_unique<other_category>());
        codes.emplace_back(1000 + i, *made.back());
    }
    std::vector<coev::result<int>> kept;
    for (const std::error_code& e : codes) kept.emplace_back(e);
    int exact = 0, stand_ins = 0, wrong_value = 0;
    for (std::size_t i = 0; i < codes.size(); ++i) {
        const std::error_code got = kept[i].error();
        wrong_value += got.value() != codes[i].value();
        if (got == codes[i]) ++exact;
        else if (std::string(got.category().name()) == "coev.unrecorded") ++stand_ins;
    }
    CHECK(wrong_value == 0);
    CHECK(exact + stand_ins == 300);
    CHECK(exact >= 200);  // other tests in this process may have registered a few
    CHECK(stand_ins >= 46);
    // The common categories registered earlier still round-trip.
    coev::result<void> r = std::make_error_code(std::errc::timed_out);
    CHECK(r.error() == std::errc::timed_out);
}
