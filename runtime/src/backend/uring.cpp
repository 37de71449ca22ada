// runtime/src/backend/uring.cpp
// io_uring, completion mode: a wait submits the operation itself (recv, send, read, write or a
// poll for plain readiness waits) and resumes with its result. Submissions queue up during an
// iteration and go to the kernel together with the wait, in one io_uring_enter.
#include "backend.hpp"

#include "../signal_hub.hpp"

#include <coev/runtime/io.hpp>
#include <coev/runtime/log.hpp>

#include <cerrno>
#include <cstring>
#include <liburing.h>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace coev::detail {
namespace {

// user_data values that are not an io_wait*: pointers are aligned, these are odd.
constexpr std::uint64_t wake_tag = 1;
constexpr std::uint64_t signal_tag = 3;
constexpr std::uint64_t cancel_tag = 5;

constexpr unsigned ring_entries = 1024;

std::error_code errno_code(int e) noexcept { return {e, std::system_category()}; }

class uring_backend final : public backend {
public:
    uring_backend() {
        // Best first: task work deferred to our own wait (one issuer, the loop's thread; the
        // ring starts disabled so whichever thread runs the loop becomes that issuer), then
        // cooperative task work, then whatever the kernel takes.
        const unsigned attempts[] = {
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
                IORING_SETUP_TASKRUN_FLAG,
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
            0,
        };
        int r = -EINVAL;
        for (unsigned flags : attempts) {
            io_uring_params p{};
            p.flags = flags;
            p.cq_entries = ring_entries * 4;
            p.flags |= IORING_SETUP_CQSIZE;
            r = io_uring_queue_init_params(ring_entries, &ring_, &p);
            if (r == 0) {
                disabled_ = flags & IORING_SETUP_R_DISABLED;
                break;
            }
            if (r != -EINVAL) break;  // ENOSYS, EPERM (sysctl, seccomp), ENOMEM: give up
        }
        if (r < 0) throw std::system_error(errno_code(-r), "io_uring_setup");
        wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wakefd_ < 0) {
            int e = errno;
            io_uring_queue_exit(&ring_);
            throw std::system_error(errno_code(e), "eventfd");
        }
        arm_poll(wakefd_, wake_tag);
    }
    ~uring_backend() override {
        io_uring_queue_exit(&ring_);
        ::close(wakefd_);
    }

    std::string_view name() const noexcept override { return "io_uring"; }
    backend_feature features() const noexcept override {
        return backend_feature::completion | backend_feature::o1_add_remove |
               backend_feature::arbitrary_fds;
    }

    std::error_code watch(int, fd_state&, bool) noexcept override { return {}; }
    void forget(int, fd_state& st) noexcept override { st.registered = false; }

    std::error_code watch_signal_fd(int fd) noexcept override {
        signalfd_ = fd;
        arm_poll(fd, signal_tag);
        return {};
    }

    void submit(io_wait& w, fd_state& st) noexcept override {
        io_uring_sqe* sqe = get_sqe();
        auto& rw = static_cast<rw_wait&>(w);
        if (w.poll_first || w.op == io_op::poll) {
            io_uring_prep_poll_add(sqe, w.fd, w.dir ? POLLOUT : POLLIN);
        } else if (w.op == io_op::read) {
            if (st.not_socket) {
                io_uring_prep_read(sqe, w.fd, rw.buf, unsigned(rw.len), -1);
            } else {
                io_uring_prep_recv(sqe, w.fd, rw.buf, rw.len, 0);
                // A read is submitted after the last one drained the socket: arm the poll
                // first instead of failing a receive attempt now.
                sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
            }
        } else if (w.op == io_op::write) {  // sockets only: others are poll_first
            io_uring_prep_send(sqe, w.fd, rw.buf, rw.len, MSG_NOSIGNAL);
        } else if (w.op == io_op::readv) {
            io_uring_prep_readv(sqe, w.fd, static_cast<const iovec*>(rw.buf), rw.count, -1);
        } else if (w.op == io_op::accept) {
            io_uring_prep_accept(sqe, w.fd, static_cast<sockaddr*>(rw.buf),
                                 rw.buf ? &rw.addrlen : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        } else {
            io_uring_prep_nop(sqe);  // unreachable: writev and connect are poll_first
        }
        io_uring_sqe_set_data(sqe, &w);
        ++in_flight_;
    }

    void cancel(io_wait& w) noexcept override {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, &w, 0);
        io_uring_sqe_set_data64(sqe, cancel_tag);
    }

    void cancel_sync(event_loop& loop, io_wait& w) noexcept override {
        if (!w.cancelling) {
            w.cancelling = true;
            w.ec = std::make_error_code(std::errc::operation_canceled);
            cancel(w);
        }
        while (w.in_flight) reap(loop, -1);
    }

    void quiesce(event_loop& loop) noexcept override {
        quiescing_ = true;
        if (in_flight_ == 0) return;
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, cancel_tag);
        while (in_flight_ > 0) reap(loop, -1);
    }

    void wait(event_loop& loop, std::int64_t timeout_ns) override { reap(loop, timeout_ns); }

    void wake() noexcept override {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(wakefd_, &one, sizeof one);
    }

private:
    io_uring_sqe* get_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (!sqe) {  // the ring is full: hand what is queued to the kernel first
            enable();
            io_uring_submit(&ring_);
            sqe = io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void enable() noexcept {
        if (!disabled_) return;
        disabled_ = false;
        // Raw syscall: Debian 12's liburing declares io_uring_enable_rings but does not ship it.
        if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS,
                      nullptr, 0) < 0)
            fatal(std::string("io_uring enable rings: ") + std::strerror(errno));
        io_uring_register_ring_fd(&ring_);  // optional: skips an fd lookup per enter
    }

    void arm_poll(int fd, std::uint64_t tag) noexcept {
        io_uring_sqe* sqe = get_sqe();
        io_uring_prep_poll_multishot(sqe, fd, POLLIN);
        io_uring_sqe_set_data64(sqe, tag);
    }

    // Submits what is queued, waits up to timeout_ns (negative: no limit, 0: not at all) for
    // at least one completion, and hands every completion to the loop.
    void reap(event_loop& loop, std::int64_t timeout_ns) noexcept {
        enable();
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
        // kernels) and flags the rest: fetch those now, not one loop iteration later each.
        for (int i = 0; i < 64 && task_work_pending(); ++i) {
            io_uring_get_events(&ring_);
            drain(loop);
        }
    }

    bool task_work_pending() const noexcept {
        return IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN;
    }

    void drain(event_loop& loop) noexcept {
        unsigned head, seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            dispatch(loop, cqe);
        }
        io_uring_cq_advance(&ring_, seen);
    }

    void dispatch(event_loop& loop, const io_uring_cqe* cqe) noexcept {
        const std::uint64_t tag = cqe->user_data;
        if (tag == cancel_tag) return;
        if (tag == wake_tag || tag == signal_tag) {
            const int fd = tag == wake_tag ? wakefd_ : signalfd_;
            if (tag == wake_tag) {
                std::uint64_t v;
                while (::read(wakefd_, &v, sizeof v) > 0) {
                }
            } else if (cqe->res >= 0) {
                loop.signals().on_readable();
            }
            // A multishot poll ends on its own now and then (overflow, cancel): start it anew.
            if (!(cqe->flags & IORING_CQE_F_MORE) && !quiescing_ && fd >= 0) arm_poll(fd, tag);
            return;
        }
        --in_flight_;
        loop.on_complete(reinterpret_cast<io_wait*>(tag), cqe->res);
    }

    io_uring ring_{};
    int wakefd_ = -1;
    int signalfd_ = -1;
    std::size_t in_flight_ = 0;  // operations of tasks, not counting the internal polls
    bool disabled_ = false;
    bool quiescing_ = false;
};

}  // namespace

std::unique_ptr<backend> make_uring_backend() { return std::make_unique<uring_backend>(); }

}  // namespace coev::detail
