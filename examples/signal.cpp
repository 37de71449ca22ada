// examples/signal.cpp
// Stopping cleanly on SIGINT/SIGTERM: a signal_set waits for the signal while a ticker runs,
// then the ticker is cancelled through its task_group and the program says goodbye.
#include <coev/runtime.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string_view>

using namespace std::chrono_literals;

namespace {

coev::task<> ticker(coev::duration period) {
    coev::interval every(period);
    for (int n = 1;; ++n) {
        if (!co_await every.tick()) break;  // cancelled: the group is stopping
        std::printf("tick %d (Ctrl-C to stop)\n", n);
    }
    std::printf("ticker stopped\n");
}

// --selftest stands in for the user pressing Ctrl-C.
coev::task<> raise_later(coev::duration delay) {
    // Not `if (co_await ...)`: GCC 12.2 miscompiles that in a coroutine without local
    // variables (its body never runs and the task never ends).
    auto slept = co_await coev::sleep_for(delay);
    if (slept) std::raise(SIGTERM);
}

coev::task<int> tick_until_signal(bool selftest) {
    // Created before anything can raise: from here on SIGINT and SIGTERM no longer kill us,
    // and one that arrives before wait() is kept for it.
    coev::signal_set quit{SIGINT, SIGTERM};
    coev::task_group work;
    work.spawn(ticker(selftest ? 100ms : 1s));
    if (selftest) work.spawn(raise_later(350ms));

    auto signo = co_await quit.wait();
    if (!signo) co_return 1;
    std::printf("caught %s, stopping\n", strsignal(*signo));
    work.request_stop();
    // Children that ended with an error would show up here; cancelled ones just return.
    if (!co_await work.join()) co_return 1;
    std::printf("goodbye\n");
    co_return 0;
}

}  // namespace

// Usage: signal [--selftest]
int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines show up at once when piped too
    const bool selftest = argc > 1 && std::string_view(argv[1]) == "--selftest";
    return coev::run(tick_until_signal(selftest));
}
