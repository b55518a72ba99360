// ioloop: fd_ready<Loop>, the awaiter under the sock_* operations: the current task waits
// until a descriptor is readable (or writable), through the loop's add_reader/add_writer.
// The registration lives only while the task waits, so an idle socket costs the loop
// nothing, and a cancelled wait leaves the descriptor unwatched and usable.
#ifndef IOLOOP_NET_FD_READY_HPP
#define IOLOOP_NET_FD_READY_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <coroutine>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Loop>
class fd_ready final : public wait_point {
public:
    // `which` is backend::io_read or backend::io_write.
    fd_ready(Loop& loop, native_socket fd, unsigned which) noexcept
        : loop_(loop), fd_(fd), which_(which) {}
    fd_ready(const fd_ready&) = delete;
    fd_ready& operator=(const fd_ready&) = delete;
    // Destroyed while waiting: the loop is closing with the task unfinished. The loop may
    // already have dropped the registration; removing it again is then a no-op.
    ~fd_ready() { unwatch(); }

    // The caller tried the syscall and got EAGAIN: there is always something to wait for.
    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw(which_ == backend::io_read ? "sock_* (waiting to read)"
                                                                  : "sock_* (waiting to write)");
        // Registered before suspend(): suspend() may deliver a pending cancel at once, and
        // on_cancel must then find a registration to remove.
        fd_ready* self = this;
        if (which_ == backend::io_read) {
            loop_.add_reader(fd_, [self] { self->ready(); });
        } else {
            loop_.add_writer(fd_, [self] { self->ready(); });
        }
        watching_ = true;
        task_->suspend(h, this);
    }

    void await_resume() { task_->throw_if_cancelled(); }

    void on_cancel(task_base& t) noexcept override {
        unwatch();
        t.wake();
    }

private:
    // The loop's callback: one readiness report is all a wait needs. Removing the
    // registration from inside its own callback is allowed (the loop holds a reference).
    void ready() noexcept {
        unwatch();
        task_->wake();
    }

    void unwatch() noexcept {
        if (!watching_) return;
        watching_ = false;
        // A closed loop has already forgotten the descriptor (remove_* returns false). The
        // backend can still fail if the caller closed the socket while a task waited on
        // it; the registration is dropped either way, and a destructor cannot report.
        try {
            if (which_ == backend::io_read) {
                loop_.remove_reader(fd_);
            } else {
                loop_.remove_writer(fd_);
            }
        } catch (...) {
        }
    }

    Loop& loop_;
    native_socket fd_;
    unsigned which_;
    task_base* task_ = nullptr;
    bool watching_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
