// ioloop: fd_ready, the one way a task waits once for readiness: until a descriptor is
// readable (or writable). The sock_* operations, a non-blocking connect and
// wait_readable / wait_writable use it. It registers through the loop's table of
// descriptors (add_reader / add_writer's), so a reader and a writer of the same socket
// can wait at once. The registration lives only while the task waits, so an idle socket
// costs the loop nothing, and a cancelled wait leaves the descriptor unwatched and usable.
#ifndef IOLOOP_NET_FD_READY_HPP
#define IOLOOP_NET_FD_READY_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/io_engine.hpp"
#include "ioloop/net/net_access.hpp"

#include <coroutine>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class fd_ready final : public wait_point {
public:
    // `which` is backend::io_read or backend::io_write; `what` names the wait in errors.
    fd_ready(loop_base& loop, native_socket fd, unsigned which, const char* what) noexcept
        : loop_(loop), fd_(fd), which_(which), what_(what) {}
    // Before it is awaited (into a wait_for, a race): nothing is watched yet.
    fd_ready(fd_ready&& o) noexcept : loop_(o.loop_), fd_(o.fd_), which_(o.which_), what_(o.what_) {}
    fd_ready(const fd_ready&) = delete;
    fd_ready& operator=(const fd_ready&) = delete;
    // Destroyed while waiting: the loop is closing with the task unfinished. The loop may
    // already have dropped the registration; removing it again is then a no-op.
    ~fd_ready() { unwatch(); }

    // The caller tried the syscall and got EAGAIN: there is always something to wait for.
    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw(what_);
        // Registered before suspend(): suspend() may deliver a pending cancel at once, and
        // on_cancel must then find a registration to remove.
        fd_ready* self = this;
        callback_node* n = net_access::make_persistent_node(loop_, [self] { self->ready(); });
        net_access::engine(loop_).add_watch(fd_, which_, n, what_, false);
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
        // A closed loop has already forgotten the descriptor (remove_watch returns false).
        // The backend can still fail if the caller closed the socket while a task waited
        // on it; the registration is dropped either way, and a destructor cannot report.
        try {
            net_access::engine(loop_).remove_watch(fd_, which_);
        } catch (...) {
        }
    }

    loop_base& loop_;
    native_socket fd_;
    unsigned which_;
    const char* what_;
    task_base* task_ = nullptr;
    bool watching_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
