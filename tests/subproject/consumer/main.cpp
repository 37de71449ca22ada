// tests/subproject/consumer/main.cpp
// The parent's program: includes coev the way users do and runs one task; exit 0 iff it works.
#include <coev/runtime.hpp>

#include <chrono>
#include <cstdio>
#include <string_view>

coev::task<int> answer() {
    auto slept = co_await coev::sleep_for(std::chrono::milliseconds(1));
    co_return slept ? 42 : -1;
}

int main() {
    const int got = coev::run(answer());
    const std::string_view linked = coev::version();
    std::printf("consumer: coev %.*s (headers %s) returned %d\n", int(linked.size()),
                linked.data(), COEV_VERSION_STRING, got);
    return got == 42 ? 0 : 1;
}
