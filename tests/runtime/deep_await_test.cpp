// tests/runtime/deep_await_test.cpp
// Symmetric transfer: awaiting hands control over without growing the stack, so chains of
// awaits as deep or as long as you like run in constant stack.
//
// Sanitizer builds leave out the few checks that keep GCC 12 from making the transfer a tail call
// (see meson.build): with them any coroutine code overflows the stack here, coev or not.
#include <coev/runtime.hpp>

#include <doctest/doctest.h>

namespace {

coev::task<int> nested(int depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await nested(depth - 1);
}

coev::task<int> ready(int v) { co_return v; }

}  // namespace

TEST_CASE("deep chains of awaits do not grow the stack (symmetric transfer)") {
    constexpr int n = 100'000;
    SUBCASE("100,000 nested awaits") { CHECK(coev::run(nested(n)) == n); }
    SUBCASE("100,000 sequential awaits of tasks that finish at once") {
        auto loop_of_awaits = []() -> coev::task<long> {
            long sum = 0;
            for (int i = 0; i < n; ++i) sum += co_await ready(1);
            co_return sum;
        };
        CHECK(coev::run(loop_of_awaits()) == n);
    }
}
