// runtime/src/backend/uring.cpp
// io_uring, completion mode: a wait submits the operation itself (recv, send, read, write,
// readv, sendmsg, accept, connect, or a poll for plain readiness waits) and resumes with its
// result. Submissions queue up during an iteration and go to the kernel together with the
// wait, in one io_uring_enter.
#include "backend.hpp"

#include "../signal_hub.hpp"

#include <coev/runtime/io.hpp>
#include <coev/runtime/log.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <liburing.h>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace coev::detail {
namespace {

// user_data values that are not an io_wait*: pointers are aligned, these are odd.
constexpr std::uint64_t wake_tag = 1;
constexpr std::uint64_t signal_tag = 3;
constexpr std::uint64_t cancel_tag = 5;

constexpr unsigned ring_entries = 1024;

// Provided buffers for multishot receives: shared by every socket of the loop, taken only while
// data waits to be read, so an idle connection holds none. The pool starts at 512 (2 MiB) and
// doubles whenever the kernel finds it empty: a thousand busy connections each hold a buffer
// between a loop's turns, and an empty pool ends every multishot receive it meets.
constexpr unsigned recv_buffers_initial = 512;
constexpr unsigned recv_buffers_max = 4096;  // the ring's entries: a power of two
constexpr unsigned recv_buffer_size = 4096;
// A read that comes up short (the socket is drained) starts the multishot receive when it is
// this small: what comes next then arrives without a receive call per read. Larger reads keep
// reading directly: the copy out of a provided buffer would cost more than the call it saves.
constexpr long recv_small_read = recv_buffer_size;
constexpr std::uint16_t recv_group = 0;
// A socket whose unread data passes this stops receiving until its reader catches up.
constexpr std::size_t recv_backlog_cap = 64 * 1024;
// user_data of a multishot receive: its stream's address with this bit set (pointers to
// io_wait and recv_stream are 8-aligned; the internal tags are odd).
constexpr std::uint64_t stream_bit = 2;

std::error_code errno_code(int e) noexcept { return {e, std::system_category()}; }

// Which thread this is, for the ring's single issuer: a number per thread that is never given
// to another (thread ids and TLS addresses are, once a thread has exited).
std::uint64_t this_thread_serial() noexcept {
    static std::atomic<std::uint64_t> next{1};
    thread_local const std::uint64_t serial = next.fetch_add(1, std::memory_order_relaxed);
    return serial;
}

// What a socket's multishot receive has delivered and nobody has read yet.
struct recv_stream {
    struct chunk {
        std::uint16_t bid;
        std::uint32_t offset;
        std::uint32_t length;
    };
    int fd = -1;
    bool armed = false;     // the multishot receive is in the kernel
    bool stopping = false;  // a cancel was sent: backlog cap or fd forgotten
    bool dead = false;      // forgotten: freed when its last completion arrives
    bool ended = false;     // EOF (end == 0) or an error (end < 0) follows the queued data
    int end = 0;
    std::vector<chunk> queue;  // FIFO from `head`
    std::size_t head = 0;
    std::size_t queued = 0;  // bytes
    rw_wait* waiter = nullptr;
    std::size_t dying_at = 0;  // its index in dying_, once dead
};

class uring_backend final : public backend {
public:
    uring_backend() {
        // Older kernels set the ring up but then refuse what the loop relies on (multishot
        // poll: 5.13; cancelling every request at shutdown: 5.19), which would spin or hang
        // the loop instead of failing: fall back to the next backend.
        require_kernel(5, 19);
        // Multishot receives came in 6.0. Decided here, once: an EINVAL from one receive later
        // is that socket's error (an unconnected Unix socket), not the kernel's verdict.
        buffers_failed_ = !kernel_at_least(6, 0);
        const int r = setup_ring();
        if (r < 0) throw std::system_error(errno_code(-r), "io_uring_setup");
        wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wakefd_ < 0) {
            int e = errno;
            io_uring_queue_exit(&ring_);
            throw std::system_error(errno_code(e), "eventfd");
        }
        arm_poll(wakefd_, wake_tag);
    }
    // Best first: completion work deferred to the loop's own wait, on a ring with one issuer
    // (6.1); it starts disabled, and the thread that first enters it becomes that issuer (see
    // bind_here). Then cooperative task work, then whatever the kernel takes.
    int setup_ring() noexcept {
        const unsigned attempts[] = {
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
                IORING_SETUP_TASKRUN_FLAG,
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
            0,
        };
        int r = -EINVAL;
        for (unsigned flags : attempts) {
            io_uring_params p{};
            p.flags = flags | IORING_SETUP_CQSIZE;
            p.cq_entries = ring_entries * 4;
            r = io_uring_queue_init_params(ring_entries, &ring_, &p);
            if (r == 0) {
                single_issuer_ = flags & IORING_SETUP_SINGLE_ISSUER;
                owner_ = 0;
                break;
            }
            if (r != -EINVAL) break;  // ENOSYS, EPERM (sysctl, seccomp), ENOMEM: give up
        }
        return r;
    }

    static bool kernel_at_least(int major, int minor) noexcept {
        utsname u{};
        int ma = 0, mi = 0;
        return ::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &ma, &mi) == 2 &&
               (ma > major || (ma == major && mi >= minor));
    }
    static void require_kernel(int major, int minor) {
        if (kernel_at_least(major, minor)) return;
        utsname u{};
        ::uname(&u);
        throw std::system_error(errno_code(ENOSYS),
                                std::string("io_uring: kernel ") + u.release + " is older than " +
                                    std::to_string(major) + "." + std::to_string(minor));
    }

    ~uring_backend() override {
        io_uring_queue_exit(&ring_);
        ::close(wakefd_);
        for (recv_stream* st : streams_) delete st;
        for (recv_stream* st : dying_) delete st;
        if (bufs_) ::munmap(bufs_, std::size_t(recv_buffers_max) * recv_buffer_size);
        if (br_) ::munmap(br_, recv_buffers_max * sizeof(io_uring_buf));
    }

    std::string_view name() const noexcept override { return "io_uring"; }
    backend_feature features() const noexcept override {
        return backend_feature::completion | backend_feature::o1_add_remove |
               backend_feature::arbitrary_fds;
    }

    void attach(event_loop& loop) noexcept override { loop_ = &loop; }
    void on_thread() noexcept override { bind_here(); }

    std::error_code watch(int, fd_state&, bool) noexcept override { return {}; }
    void forget(int fd, fd_state& st) noexcept override {
        bind_here();
        st.registered = false;
        if (std::size_t(fd) < streams_.size() && streams_[std::size_t(fd)]) {
            recv_stream* rs = streams_[std::size_t(fd)];
            streams_[std::size_t(fd)] = nullptr;  // a reused number starts a stream of its own
            drop_queue(*rs);
            if (rs->armed) {
                rs->dead = true;
                rs->dying_at = dying_.size();
                dying_.push_back(rs);
                stop_stream(*rs);
            } else {
                delete rs;
            }
        }
        // The fd is about to be closed. A request still queued in the ring names it by number:
        // the kernel must see it now, or it would act on whatever file gets the number next (a
        // dead stream's receive taking the first bytes of the next socket).
        if (io_uring_sq_ready(&ring_) > 0) {
            ++calls;
            io_uring_submit(&ring_);
        }
    }

    std::error_code watch_signal_fd(int fd) noexcept override {
        bind_here();
        signalfd_ = fd;
        arm_poll(fd, signal_tag);
        return {};
    }

    void submit(io_wait& w, fd_state& st) noexcept override {
        bind_here(&w);
        auto& rw = static_cast<rw_wait&>(w);
        // readv too: a socket's bytes may already sit in its receive queue, and a readv sent
        // to the kernel would overtake them (or race the multishot receive for what comes).
        if ((w.op == io_op::read || w.op == io_op::readv) && !st.not_socket && !w.poll_first &&
            rw.len > 0 && !buffers_failed_ && buffers_ready() && stream_socket(w.fd, st)) {
            park(rw);
            return;
        }
        // A socket with a multishot receive keeps its unread bytes here, not in the kernel:
        // a readiness wait must look here (level semantics).
        if (w.op == io_op::poll && w.dir == 0 && std::size_t(w.fd) < streams_.size() &&
            streams_[std::size_t(w.fd)]) {
            recv_stream& rs = *streams_[std::size_t(w.fd)];
            if (rs.queued > 0 || rs.ended) {
                w.loop->on_complete(&w, POLLIN);
                return;
            }
            if (rs.armed) {
                rs.waiter = &rw;
                return;
            }
        }
        io_uring_sqe* sqe = get_sqe();
        if (w.poll_first || w.op == io_op::poll) {
            io_uring_prep_poll_add(sqe, w.fd, w.dir ? POLLOUT : POLLIN);
        } else if (w.op == io_op::read) {  // sockets only, as below: others are poll_first
            io_uring_prep_recv(sqe, w.fd, rw.buf, rw.len, 0);
            // A read is submitted after the last one drained the socket: arm the poll first
            // instead of failing a receive attempt now.
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        } else if (w.op == io_op::write) {
            io_uring_prep_send(sqe, w.fd, rw.buf, rw.len, MSG_NOSIGNAL);
        } else if (w.op == io_op::readv) {
            io_uring_prep_readv(sqe, w.fd, static_cast<const iovec*>(rw.buf), rw.count, -1);
        } else if (w.op == io_op::writev) {
            io_uring_prep_sendmsg(sqe, w.fd, static_cast<const msghdr*>(rw.buf), MSG_NOSIGNAL);
            // Submitted because the last attempt would have blocked: wait for room first.
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        } else if (w.op == io_op::accept) {
            io_uring_prep_accept(sqe, w.fd, static_cast<sockaddr*>(rw.buf),
                                 rw.buf ? &rw.addrlen : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        } else {  // connect: the address stays valid until it completes (see coev::connect)
            io_uring_prep_connect(sqe, w.fd, static_cast<const sockaddr*>(rw.buf), rw.addrlen);
        }
        io_uring_sqe_set_data(sqe, &w);
        ++in_flight_;
    }

    long try_read(int fd, fd_state& st, void* buf, std::size_t len) noexcept override {
        bind_here();
        // Receiving ahead into a byte queue is for streams: it would merge datagrams.
        if (st.not_socket || st.always_ready || buffers_failed_ || !buffers_ready() ||
            !stream_socket(fd, st))
            return readiness_try_read(fd, st, buf, len);
        if (std::size_t(fd) >= streams_.size()) streams_.resize(std::size_t(fd) + 1, nullptr);
        recv_stream*& slot = streams_[std::size_t(fd)];
        if (!slot) {
            slot = new recv_stream;
            slot->fd = fd;
        }
        recv_stream& rs = *slot;
        if (rs.queued > 0 || rs.ended) {
            int n = deliver(rs, buf, len);
            // A stream stopped at the backlog cap resumes once its reader catches up.
            if (!rs.armed && !rs.ended && !quiescing_ && rs.queued <= recv_backlog_cap / 2)
                arm_stream(rs);
            return n;
        }
        if (rs.armed) return -EAGAIN;  // the kernel receives for us: what comes lands in the queue
        // Nothing receives on this socket yet: read directly, and once it runs dry let the
        // multishot receive collect what comes next.
        long n = readiness_try_read(fd, st, buf, len);
        if ((n == -EAGAIN || (n > 0 && n <= recv_small_read && !(st.ready & 1u))) &&
            !quiescing_)
            arm_stream(rs);
        return n;
    }

    void cancel(io_wait& w) noexcept override {
        bind_here();
        if (recv_stream* rs = parked_on(w)) {  // no kernel operation owns its buffer
            rs->waiter = nullptr;
            w.loop->on_complete(&w, -ECANCELED);
            return;
        }
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, &w, 0);
        io_uring_sqe_set_data64(sqe, cancel_tag);
        // Now, not with the next batch: what the task does next (a listener disabled, then a
        // connect) must not race the operation it has just cancelled.
        ++calls;
        io_uring_submit(&ring_);
    }

    void cancel_sync(event_loop& loop, io_wait& w) noexcept override {
        // Marked first: a move to this thread's ring then completes it instead of submitting
        // it again.
        const bool first = !w.cancelling;
        if (first) {
            w.cancelling = true;
            w.ec = std::make_error_code(std::errc::operation_canceled);
        }
        bind_here();
        if (!w.in_flight) return;
        if (recv_stream* rs = parked_on(w)) {
            rs->waiter = nullptr;
            loop.on_complete(&w, -ECANCELED);
            return;
        }
        if (first) cancel(w);
        while (w.in_flight) reap(loop, -1);
    }

    void quiesce(event_loop& loop) noexcept override {
        quiescing_ = true;  // first: a move now completes what is in flight as cancelled
        bind_here();
        for (recv_stream* rs : streams_) {
            if (!rs || !rs->waiter) continue;
            rw_wait* w = std::exchange(rs->waiter, nullptr);
            w->cancelling = true;
            w->ec = std::make_error_code(std::errc::operation_canceled);
            loop.on_complete(w, -ECANCELED);
        }
        if (in_flight_ == 0) return;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, cancel_tag);
        while (in_flight_ > 0) reap(loop, -1);
    }

    void wait(event_loop& loop, std::int64_t timeout_ns) override {
        bind_here();
        reap(loop, timeout_ns);
    }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wakefd_, &one, sizeof one);
    }

private:
    // ---- the single issuer ----
    // A deferred-task-run ring answers only the thread that enabled it: nothing completes
    // unless that thread enters it. Every entry point calls this first. The first thread to
    // use the ring becomes its issuer; when the loop is later used from another thread (made on
    // one, run on a second, destroyed on a third), the ring is replaced by one of this thread
    // (rebind). `skip`: a wait being submitted right now, which rebind must not submit too.
    void bind_here(const io_wait* skip = nullptr) noexcept {
        if (!single_issuer_ || rebinding_) return;
        const std::uint64_t me = this_thread_serial();
        if (owner_ == me) [[likely]] return;
        if (owner_ == 0) {
            enable();
            owner_ = me;
            return;
        }
        rebind(skip, me);
    }

    void enable() noexcept {
        ++calls;
        // Raw syscall: Debian 12's liburing declares io_uring_enable_rings but does not ship it.
        if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                      nullptr, 0) < 0)
            fatal(std::string("io_uring: enabling the ring: ") + std::strerror(errno));
    }

    // Moves the loop to a fresh ring owned by the calling thread. The old ring does nothing
    // without its issuer: in this mode the kernel runs completion work only inside the
    // issuer's io_uring_enter (a closed ring's leftovers are cancelled, never run), and every
    // operation the loop submits is a socket operation or a poll, which the kernel performs
    // in that completion work, never on a worker thread. So what the old ring has not
    // completed (reap() leaves nothing in overflow) has not touched memory: it is submitted
    // again to the new ring, or completed as cancelled if it was being cancelled or the loop is
    // shutting down. What the old ring did complete is taken out first and handed on only once
    // the new ring stands, so that nothing it triggers (a retried poll) lands in the old one.
    void rebind(const io_wait* skip, std::uint64_t me) noexcept {
        rebinding_ = true;  // what runs below may call entry points: they must not move again
        struct done {
            std::uint64_t tag;
            int res;
            unsigned flags;
        };
        std::vector<done> completed;
        unsigned head, seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            completed.push_back({cqe->user_data, cqe->res, cqe->flags});
        }
        io_uring_cq_advance(&ring_, seen);
        if (cq_overflow())
            log(log_level::error, "io_uring: completions left in overflow when the loop moved "
                                  "to another thread are lost");
        // Received bytes join their streams' queues now, before the buffer ring is rebuilt
        // from what no queue holds; every other stream state belonged to the old ring.
        for (const done& d : completed) {
            if ((d.tag & 7) != stream_bit) continue;
            auto& rs = *reinterpret_cast<recv_stream*>(d.tag & ~std::uint64_t{7});
            // A dead stream's buffer is free again below; a parked read re-parks below and
            // meets a not-connected socket's error again then.
            if (!rs.dead) take_received(rs, d.res, d.flags);
        }
        for (recv_stream* rs : dying_) delete rs;
        dying_.clear();
        for (recv_stream* rs : streams_) {
            if (!rs) continue;
            rs->armed = rs->stopping = false;
            rs->waiter = nullptr;  // parked waits are submitted again below, and park again
        }
        // Operations the old ring completed are not in flight any more.
        for (const done& d : completed)
            if (is_wait(d.tag)) reinterpret_cast<io_wait*>(d.tag)->in_flight = false;

        io_uring_queue_exit(&ring_);
        ++calls;
        const int r = setup_ring();
        if (r < 0) fatal(std::string("io_uring: a ring for the loop's new thread: ") +
                         std::strerror(-r));
        if (single_issuer_) enable();
        owner_ = me;
        in_flight_ = 0;
        arm_poll(wakefd_, wake_tag);
        if (signalfd_ >= 0) arm_poll(signalfd_, signal_tag);
        if (br_) register_buffers_again();

        loop_->for_each_orphan([&](io_wait& w) {
            if (w.in_flight) loop_->on_complete(&w, -ECANCELED);  // else its completion is above
        });
        loop_->for_each_fd_wait([&](io_wait& w, fd_state& st) {
            if (w.in_flight && &w != skip) resubmit(w, st);
        });
        for (const done& d : completed) {
            if (is_wait(d.tag)) loop_->on_complete(reinterpret_cast<io_wait*>(d.tag), d.res);
            else if (d.tag == wake_tag || d.tag == signal_tag) on_internal(*loop_, d.tag, d.res);
        }
        rebinding_ = false;
    }

    static bool is_wait(std::uint64_t tag) noexcept {
        return tag != 0 && (tag & 7) == 0;  // internal tags are odd, streams carry stream_bit
    }

    void resubmit(io_wait& w, fd_state& st) noexcept {
        // Cancelled and not completed: the kernel never got to it. Nor does it now, when the
        // loop is being destroyed (a queued connection stays queued, unsent bytes unsent).
        if (w.cancelling || quiescing_) {
            if (!w.cancelling) w.ec = std::make_error_code(std::errc::operation_canceled);
            w.cancelling = true;
            loop_->on_complete(&w, -ECANCELED);
            return;
        }
        if (w.op == io_op::connect && !w.poll_first) {
            // Whether the old ring's connect started is unknown: ask the socket. A connect in
            // progress finishes by waiting for writability (perform_connect reads SO_ERROR).
            auto& rw = static_cast<rw_wait&>(w);
            int e = ::connect(w.fd, static_cast<const sockaddr*>(rw.buf), rw.addrlen) == 0
                        ? 0
                        : errno;
            if (e == 0 || e == EISCONN) {
                loop_->on_complete(&w, 0);
                return;
            }
            if (e != EINPROGRESS && e != EALREADY && e != EINTR) {
                loop_->on_complete(&w, -e);
                return;
            }
            rw.n = 1;
            w.poll_first = true;
        }
        submit(w, st);
    }

    // The new ring gets a buffer ring of its own, holding every buffer that no stream holds.
    void register_buffers_again() noexcept {
        const std::size_t ring_bytes = recv_buffers_max * sizeof(io_uring_buf);
        ::munmap(br_, ring_bytes);  // the old ring's registration was dropped with it
        br_ = nullptr;
        void* ring_mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE,
                                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_mem);
        reg.ring_entries = recv_buffers_max;
        reg.bgid = recv_group;
        ++calls;
        if (ring_mem == MAP_FAILED || io_uring_register_buf_ring(&ring_, &reg, 0) < 0) {
            if (ring_mem != MAP_FAILED) ::munmap(ring_mem, ring_bytes);
            buffers_failed_ = true;  // reads take the plain path from now on
            return;
        }
        br_ = static_cast<io_uring_buf_ring*>(ring_mem);
        io_uring_buf_ring_init(br_);
        std::vector<bool> held(nbufs_, false);
        for (recv_stream* rs : streams_)
            if (rs)
                for (std::size_t i = rs->head; i < rs->queue.size(); ++i)
                    held[rs->queue[i].bid] = true;
        unsigned added = 0;
        for (unsigned i = 0; i < nbufs_; ++i)
            if (!held[i]) add_buffer(std::uint16_t(i), added++);
        io_uring_buf_ring_advance(br_, int(added));
    }

    io_uring_sqe* get_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (!sqe) {  // the ring is full: hand what is queued to the kernel first
            ++calls;
            const int r = io_uring_submit(&ring_);
            if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
                fatal(std::string("io_uring_enter: ") + std::strerror(-r));
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void arm_poll(int fd, std::uint64_t tag) noexcept {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_multishot(sqe, fd, POLLIN);
        io_uring_sqe_set_data64(sqe, tag);
    }

    // Submits what is queued, waits up to timeout_ns (negative: no limit, 0: not at all) for
    // at least one completion, and hands every completion to the loop.
    void reap(event_loop& loop, std::int64_t timeout_ns) noexcept {
        ++calls;
        int r;
        if (timeout_ns == 0) {
            r = io_uring_submit_and_get_events(&ring_);
        } else if (timeout_ns < 0) {
            r = io_uring_submit_and_wait(&ring_, 1);
        } else {
            __kernel_timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
            io_uring_cqe* cqe = nullptr;
            r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        }
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
            fatal(std::string("io_uring_enter: ") + std::strerror(-r));
        drain(loop);
        // The kernel runs a bounded batch of completions' task work per enter (20 on recent
        // kernels) and flags the rest. One more batch now, the rest after the tasks have run.
        // Fetching it all (up to 64 batches, as before) ran a thousand echo connections'
        // receives back to back before any task answered; the kernel then frees a thousand
        // received packets here on behalf of the sender's CPU and interrupts that CPU every 32
        // (perf: 6 % of the server's time in x2apic_send_IPI). 1,000 x 64 B echo went from
        // 0.95x epoll to 1.03x; pipe_chain on io_uring did not move.
        for (int i = 0; i < 64 && cq_overflow(); ++i) {  // completions the CQ had no room for
            ++calls;
            io_uring_get_events(&ring_);
            drain(loop);
        }
        if (task_work_pending()) {
            ++calls;
            io_uring_get_events(&ring_);
            drain(loop);
        }
    }

    // The wake-up eventfd or the signalfd became readable.
    void on_internal(event_loop& loop, std::uint64_t tag, int res) noexcept {
        if (tag == wake_tag) {
            std::uint64_t v;
            while (::read(wakefd_, &v, sizeof v) > 0) {
            }
        } else if (res >= 0) {
            loop.signals().on_readable();
        }
    }

    bool task_work_pending() const noexcept {
        return IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN;
    }
    // Completions the CQ had no room for wait in the kernel; entering the ring flushes them.
    bool cq_overflow() const noexcept {
        return IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW;
    }

    void drain(event_loop& loop) noexcept {
        unsigned head, seen = 0;
        io_uring_cqe* cqe;
        grown_ = false;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            dispatch(loop, cqe);
        }
        io_uring_cq_advance(&ring_, seen);
    }

    void dispatch(event_loop& loop, const io_uring_cqe* cqe) noexcept {
        const std::uint64_t tag = cqe->user_data;
        if (tag == cancel_tag) return;
        if ((tag & 7) == stream_bit) {
            on_stream(loop, *reinterpret_cast<recv_stream*>(tag & ~std::uint64_t{7}), cqe);
            return;
        }
        if (tag == wake_tag || tag == signal_tag) {
            on_internal(loop, tag, cqe->res);
            const int fd = tag == wake_tag ? wakefd_ : signalfd_;
            // A multishot poll ends on its own now and then (overflow, cancel): start it anew.
            if (!(cqe->flags & IORING_CQE_F_MORE) && !quiescing_ && fd >= 0) arm_poll(fd, tag);
            return;
        }
        --in_flight_;
        loop.on_complete(reinterpret_cast<io_wait*>(tag), cqe->res);
    }

    // ---- multishot receives ----

    // The buffer ring is set up on first use; false when the kernel refuses it (older than
    // 5.19): receives then stay one submission per read.
    bool buffers_ready() noexcept {
        if (br_) return true;
        if (buffers_failed_) return false;
        const std::size_t ring_bytes = recv_buffers_max * sizeof(io_uring_buf);
        const std::size_t data_bytes = std::size_t(recv_buffers_max) * recv_buffer_size;
        void* ring_mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE,
                                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        // Address space for the largest pool; pages come as buffers are first used.
        void* data = ::mmap(nullptr, data_bytes, PROT_READ | PROT_WRITE,
                            MAP_ANONYMOUS | MAP_PRIVATE | MAP_NORESERVE, -1, 0);
        if (ring_mem == MAP_FAILED || data == MAP_FAILED) {
            if (ring_mem != MAP_FAILED) ::munmap(ring_mem, ring_bytes);
            if (data != MAP_FAILED) ::munmap(data, data_bytes);
            buffers_failed_ = true;
            return false;
        }
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_mem);
        reg.ring_entries = recv_buffers_max;
        reg.bgid = recv_group;
        ++calls;
        if (io_uring_register_buf_ring(&ring_, &reg, 0) < 0) {
            ::munmap(ring_mem, ring_bytes);
            ::munmap(data, data_bytes);
            buffers_failed_ = true;
            return false;
        }
        br_ = static_cast<io_uring_buf_ring*>(ring_mem);
        bufs_ = static_cast<char*>(data);
        io_uring_buf_ring_init(br_);
        nbufs_ = recv_buffers_initial;
        for (unsigned i = 0; i < nbufs_; ++i) add_buffer(std::uint16_t(i), i);
        io_uring_buf_ring_advance(br_, int(nbufs_));
        return true;
    }

    // The kernel found the pool empty: doubles it, unless it is at its largest (false). The
    // receives that met the empty pool in one pass of the kernel complete in one drain; the
    // first one's growth serves them all.
    bool grow_buffers() noexcept {
        if (grown_) return true;
        if (nbufs_ >= recv_buffers_max) return false;
        grown_ = true;
        const unsigned more = nbufs_;
        for (unsigned i = 0; i < more; ++i) add_buffer(std::uint16_t(nbufs_ + i), i);
        io_uring_buf_ring_advance(br_, int(more));
        nbufs_ += more;
        return true;
    }

    // Puts a buffer `offset` entries past the ring's tail; the caller advances the tail.
    void add_buffer(std::uint16_t bid, unsigned offset) noexcept {
        io_uring_buf_ring_add(br_, bufs_ + std::size_t(bid) * recv_buffer_size, recv_buffer_size,
                              bid, io_uring_buf_ring_mask(recv_buffers_max), int(offset));
    }

    // A buffer the kernel filled is read (or dropped): the kernel may fill it again.
    void give_back(std::uint16_t bid) noexcept {
        add_buffer(bid, 0);
        io_uring_buf_ring_advance(br_, 1);
    }

    recv_stream* parked_on(io_wait& w) noexcept {
        if ((w.op != io_op::read && w.op != io_op::readv && w.op != io_op::poll) ||
            std::size_t(w.fd) >= streams_.size())
            return nullptr;
        recv_stream* rs = streams_[std::size_t(w.fd)];
        return rs && rs->waiter == &w ? rs : nullptr;
    }

    // A read on a socket: served from what the stream holds, or parked until data comes.
    void park(rw_wait& w) noexcept {
        if (std::size_t(w.fd) >= streams_.size()) streams_.resize(std::size_t(w.fd) + 1, nullptr);
        recv_stream*& slot = streams_[std::size_t(w.fd)];
        if (!slot) {
            slot = new recv_stream;
            slot->fd = w.fd;
        }
        recv_stream& rs = *slot;
        if (rs.queued > 0 || rs.ended) {
            w.loop->on_complete(&w, deliver(rs, w));
            return;
        }
        rs.waiter = &w;
        if (!rs.armed && !rs.stopping) arm_stream(rs);
    }

    void arm_stream(recv_stream& rs) noexcept {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_recv_multishot(sqe, rs.fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = recv_group;
        io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uint64_t>(&rs) | stream_bit);
        rs.armed = true;
        ++in_flight_;
    }

    void stop_stream(recv_stream& rs) noexcept {
        if (!rs.armed || rs.stopping) return;
        rs.stopping = true;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(&rs) | stream_bit, 0);
        io_uring_sqe_set_data64(sqe, cancel_tag);
    }

    // Copies queued bytes into the waiter's buffer; returns bytes, or the stream's end (0 for
    // EOF, -errno) once nothing is queued.
    int deliver(recv_stream& rs, rw_wait& w) noexcept {
        if (w.op != io_op::readv) return deliver(rs, w.buf, w.len);
        if (rs.queued == 0) return rs.end;
        int done = 0;
        const auto* iov = static_cast<const iovec*>(w.buf);
        for (std::uint32_t i = 0; i < w.count && rs.queued > 0; ++i) {
            const int n = deliver(rs, iov[i].iov_base, iov[i].iov_len);
            done += n;
            if (std::size_t(n) < iov[i].iov_len) break;
        }
        return done;
    }
    int deliver(recv_stream& rs, void* buf, std::size_t len) noexcept {
        if (rs.queued == 0) return rs.end;
        auto* out = static_cast<char*>(buf);
        std::size_t done = 0;
        while (done < len && rs.head < rs.queue.size()) {
            recv_stream::chunk& c = rs.queue[rs.head];
            std::size_t n = std::min<std::size_t>(len - done, c.length - c.offset);
            std::memcpy(out + done, bufs_ + std::size_t(c.bid) * recv_buffer_size + c.offset, n);
            done += n;
            c.offset += std::uint32_t(n);
            if (c.offset == c.length) {
                give_back(c.bid);
                ++rs.head;
            }
        }
        rs.queued -= done;
        if (rs.head == rs.queue.size()) {
            rs.queue.clear();
            rs.head = 0;
        }
        return int(done);
    }

    void drop_queue(recv_stream& rs) noexcept {
        for (std::size_t i = rs.head; i < rs.queue.size(); ++i) give_back(rs.queue[i].bid);
        rs.queue.clear();
        rs.head = 0;
        rs.queued = 0;
    }

    // What one multishot receive completion brings a live stream: bytes queued, EOF or an
    // error. Returns the error of a socket not connected yet, which fails one read only.
    static int take_received(recv_stream& rs, int res, unsigned flags) noexcept {
        if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
            rs.queue.push_back(
                {std::uint16_t(flags >> IORING_CQE_BUFFER_SHIFT), 0, std::uint32_t(res)});
            rs.queued += std::size_t(res);
        } else if (res == 0) {
            rs.ended = true;  // EOF: reads return 0 from now on, after the queued bytes
            rs.end = 0;
        } else if (res == -EINVAL || res == -ENOTCONN) {
            return res;  // this read fails; the socket may still connect later
        } else if (res < 0 && res != -ECANCELED && res != -ENOBUFS) {
            rs.ended = true;
            rs.end = res;
        }
        return 0;
    }

    void on_stream(event_loop& loop, recv_stream& rs, const io_uring_cqe* cqe) noexcept {
        const bool more = cqe->flags & IORING_CQE_F_MORE;
        const bool starved = cqe->res == -ENOBUFS && !grow_buffers();
        int not_connected = 0;
        if (!rs.dead) {
            not_connected = take_received(rs, cqe->res, cqe->flags);
        } else if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
            give_back(std::uint16_t(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        }
        if (!more) {
            rs.armed = false;
            rs.stopping = false;
            --in_flight_;
            if (rs.dead) {
                // Swapped out, not searched for: closing 10,000 sockets must not cost 10,000².
                recv_stream* last = dying_.back();
                dying_[rs.dying_at] = last;
                last->dying_at = rs.dying_at;
                dying_.pop_back();
                delete &rs;
                return;
            }
        }
        if (rw_wait* w = rs.waiter) {
            if (rs.queued > 0 || rs.ended) {
                rs.waiter = nullptr;
                // A readiness wait only learns there is something; a read takes it.
                loop.on_complete(w, w->op == io_op::poll ? POLLIN : deliver(rs, *w));
            } else if (not_connected && w->op != io_op::poll && !rs.armed) {
                // The read fails as a readiness backend's would (re-arming would only fail
                // again); a readiness wait asks the kernel, below.
                rs.waiter = nullptr;
                loop.on_complete(w, not_connected);
            } else if (w->op == io_op::poll && !rs.armed) {
                rs.waiter = nullptr;  // nothing will come through the stream: ask the kernel
                w->in_flight = true;
                submit_poll(*w);
            } else if (!rs.armed && (starved || buffers_failed_)) {
                // Every buffer of the largest pool is queued on some socket (or the kernel
                // cannot do multishot receives): this read takes the classic path.
                rs.waiter = nullptr;
                w->in_flight = true;
                submit_plain_recv(*w);
            } else if (!rs.armed && !quiescing_) {
                arm_stream(rs);
            }
        }
        // A reader that falls behind stops the socket from filling the shared buffers.
        if (rs.armed && rs.queued > recv_backlog_cap) stop_stream(rs);
    }

    void submit_poll(io_wait& w) noexcept {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_add(sqe, w.fd, POLLIN);
        io_uring_sqe_set_data(sqe, &w);
        ++in_flight_;
    }

    void submit_plain_recv(rw_wait& w) noexcept {
        io_uring_sqe* sqe = get_sqe();
        if (w.op == io_op::readv)
            io_uring_prep_readv(sqe, w.fd, static_cast<const iovec*>(w.buf), w.count, -1);
        else
            io_uring_prep_recv(sqe, w.fd, w.buf, w.len, 0);
        io_uring_sqe_set_data(sqe, &w);
        ++in_flight_;
    }

    io_uring ring_{};
    event_loop* loop_ = nullptr;
    bool single_issuer_ = false;  // the ring answers only the thread that enabled it
    bool rebinding_ = false;
    std::uint64_t owner_ = 0;     // that thread (this_thread_serial), 0 before it is enabled
    int wakefd_ = -1;
    int signalfd_ = -1;
    std::size_t in_flight_ = 0;  // operations of tasks, not counting the internal polls
    bool quiescing_ = false;
    io_uring_buf_ring* br_ = nullptr;
    char* bufs_ = nullptr;
    unsigned nbufs_ = 0;  // buffers in the pool: ids 0 to nbufs_ - 1
    bool grown_ = false;  // the pool grew in this drain()
    bool buffers_failed_ = false;
    std::vector<recv_stream*> streams_;  // by fd
    std::vector<recv_stream*> dying_;    // forgotten, waiting for their last completion
};

}  // namespace

std::unique_ptr<backend> make_uring_backend() { return std::make_unique<uring_backend>(); }

}  // namespace coev::detail
