// runtime/src/signal_hub.hpp
// A loop's signal delivery: one signalfd, the signal_sets that listen, and the process-wide
// bookkeeping that installs and restores dispositions.
#pragma once

#include <coev/runtime/signal.hpp>

#include <cstdint>
#include <iosfwd>
#include <vector>

namespace coev::detail {

class signal_hub {
public:
    explicit signal_hub(event_loop& loop) : loop_(loop) {}
    signal_hub(const signal_hub&) = delete;
    ~signal_hub();

    void add(signal_set& s);
    void remove(signal_set& s) noexcept;
    /// The signalfd is readable: reads every queued signal and hands it to the sets.
    void on_readable() noexcept;
    void dump(std::ostream& out) const;
    /// A delivery kept for `s` while nobody waited, lowest signal first.
    bool take_pending(signal_set& s, signal_wait& w) noexcept;
    void arm(signal_set& s, signal_wait& w) noexcept;
    /// Takes `w` off its set's list; false when it was not on it (already delivered).
    bool unlink(signal_wait& w) noexcept;
    /// After fork(): a fresh signalfd in the new backend.
    void reinit();
    /// The loop is about to run on the calling thread: a signalfd reads only what is pending
    /// for the process or the reading thread, so the held signals must be blocked here and
    /// forwarded here (a loop may be made on one thread and run on another).
    void on_thread() noexcept;

private:
    void deliver(int signo) noexcept;
    void update_fd();
    event_loop& loop_;
    int fd_ = -1;
    signal_set* sets_ = nullptr;
    std::vector<int> counts_;   // per signal: how many sets on this loop hold it
    int tid_ = 0;               // the thread that blocks them for us (0: none yet)
    std::uint64_t serial_ = 0;  // and its thread_serial()
};

}  // namespace coev::detail
