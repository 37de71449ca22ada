// tests/runtime/timer_queue_test.cpp
// The loop's timer queue on its own: random add/cancel/expire sequences checked step by step
// against a std::multimap model.
#include <coev/runtime/detail/timer_queue.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using coev::detail::duration;
using coev::detail::time_point;
using coev::detail::timer_node;
using coev::detail::timer_queue;

namespace {

// What a timer does when it fires, the same on the queue and on the model, so that re-arming and
// cancelling from inside expire() is checked too.
struct reaction {
    bool rearm = false;  // arm itself again, `rearm_by` after its old deadline
    duration rearm_by{};
    int cancel = -1;  // cancel this other timer
};
reaction react(int id, int times_fired) {
    reaction r;
    if (id % 5 == 0 && times_fired % 2 == 1) {
        r.rearm = true;
        r.rearm_by = std::chrono::milliseconds(id % 3);  // 0: due again in the same expire()
    }
    if (id % 7 == 0) r.cancel = (id + 1) % 1000;
    return r;
}

struct probe;

struct harness {
    static constexpr int timers = 1000;
    timer_queue queue;
    std::vector<probe>* probes = nullptr;
    std::vector<int> fired;
    std::vector<int> fire_counts = std::vector<int>(timers);
};

struct probe : timer_node {
    int id = 0;
    harness* h = nullptr;
};

void on_fire(timer_node* t) noexcept {
    auto* p = static_cast<probe*>(t);
    harness& h = *p->h;
    h.fired.push_back(p->id);
    const reaction r = react(p->id, ++h.fire_counts[std::size_t(p->id)]);
    if (r.rearm) h.queue.add_at(*p, p->deadline + r.rearm_by);
    if (r.cancel >= 0) h.queue.cancel((*h.probes)[std::size_t(r.cancel)]);
}

// The reference: a multimap keeps equal keys in insertion order, which is the arming order the
// queue promises for ties.
class model {
public:
    using map = std::multimap<time_point, int>;
    model() : where_(harness::timers), armed_(harness::timers, false) {}

    void add(int id, time_point deadline) {
        cancel(id);
        where_[std::size_t(id)] = map_.emplace(deadline, id);
        armed_[std::size_t(id)] = true;
    }
    void cancel(int id) {
        if (!armed_[std::size_t(id)]) return;
        map_.erase(where_[std::size_t(id)]);
        armed_[std::size_t(id)] = false;
    }
    std::vector<int> expire(time_point now) {
        std::vector<int> out;
        while (!map_.empty() && map_.begin()->first <= now) {
            auto [deadline, id] = *map_.begin();
            cancel(id);
            out.push_back(id);
            const reaction r = react(id, ++fire_counts_[std::size_t(id)]);
            if (r.rearm) add(id, deadline + r.rearm_by);
            if (r.cancel >= 0) cancel(r.cancel);
        }
        return out;
    }
    bool armed(int id) const { return armed_[std::size_t(id)]; }
    std::size_t size() const { return map_.size(); }
    bool empty() const { return map_.empty(); }
    time_point next() const { return map_.begin()->first; }

private:
    map map_;
    std::vector<map::iterator> where_;
    std::vector<bool> armed_;
    std::vector<int> fire_counts_ = std::vector<int>(harness::timers);
};

std::string show(const std::vector<int>& v) {
    std::ostringstream out;
    for (int x : v) out << x << ' ';
    return out.str();
}

}  // namespace

TEST_CASE("the timer queue agrees with a multimap model over 100,000 random steps") {
    harness h;
    std::vector<probe> probes(harness::timers);
    h.probes = &probes;
    for (int i = 0; i < harness::timers; ++i) {
        probes[std::size_t(i)].id = i;
        probes[std::size_t(i)].h = &h;
        probes[std::size_t(i)].fire = &on_fire;
    }
    model m;
    std::mt19937 rng(20240601);
    time_point now{};  // add_after() needs a clock that never goes back
    now += 1h;
    // More distinct durations than the queue keeps FIFO lists for, often repeated back to back.
    duration last_duration = 3ms;
    std::size_t fired_total = 0;
    std::string failure;
    for (int step = 0; step < 100'000 && failure.empty(); ++step) {
        const int op = int(rng() % 100);
        const int id = int(rng() % harness::timers);
        probe& p = probes[std::size_t(id)];
        std::string what;
        if (op < 35) {
            const auto deadline = now + std::chrono::milliseconds(int(rng() % 60) - 5);
            h.queue.add_at(p, deadline);
            m.add(id, deadline);
            what = "add_at";
        } else if (op < 65) {
            if (rng() % 2) last_duration = std::chrono::milliseconds(rng() % 12);
            h.queue.add_after(p, now, last_duration);
            m.add(id, now + last_duration);
            what = "add_after";
        } else if (op < 82) {
            h.queue.cancel(p);
            m.cancel(id);
            what = "cancel";
        } else {
            now += std::chrono::milliseconds(rng() % 8);
            h.fired.clear();
            const std::size_t n = h.queue.expire(now);
            const std::vector<int> expected = m.expire(now);
            fired_total += n;
            if (h.fired != expected || n != expected.size())
                failure = "expire fired [" + show(h.fired) + "] but the model fired [" +
                          show(expected) + "]";
            what = "expire";
        }
        if (failure.empty() && p.armed() != m.armed(id)) failure = "armed() differs for the timer";
        if (failure.empty() && h.queue.size() != m.size())
            failure = "size " + std::to_string(h.queue.size()) + " != " + std::to_string(m.size());
        if (failure.empty() && h.queue.empty() != m.empty()) failure = "empty() differs";
        if (failure.empty() && !m.empty() && h.queue.next_deadline() != m.next())
            failure = "next_deadline() differs";
        if (!failure.empty())
            failure = "step " + std::to_string(step) + " (" + what + " of timer " +
                      std::to_string(id) + "): " + failure;
    }
    CHECK_MESSAGE(failure.empty(), failure);
    CHECK(fired_total > 10'000);  // the sequence did exercise expiry
    // Drain: everything left fires in model order.
    h.fired.clear();
    now += 1h;
    h.queue.expire(now);
    CHECK(h.fired == m.expire(now));
    CHECK(h.queue.empty());
    for (const probe& p : probes) CHECK_FALSE(p.armed());
}

TEST_CASE("a timer queue's for_each visits every armed timer once, proxies excluded") {
    timer_queue q;
    std::vector<timer_node> nodes(20);
    time_point now{};
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        nodes[i].fire = [](timer_node*) noexcept {};
        if (i % 2)
            q.add_after(nodes[i], now, 5ms);  // most of these land in one FIFO list
        else
            q.add_at(nodes[i], now + std::chrono::milliseconds(i));
    }
    q.cancel(nodes[3]);
    q.cancel(nodes[4]);
    std::size_t visited = 0;
    bool all_armed = true;
    q.for_each([&](const timer_node& n) {
        ++visited;
        all_armed = all_armed && n.armed() && n.fire != nullptr;
    });
    CHECK(visited == 18);
    CHECK(q.size() == 18);
    CHECK(all_armed);
}
