// ioloop: io_wait, the current task waits once until a descriptor is readable or writable
// (a non-blocking connect's outcome; wait_readable / wait_writable). It registers itself
// with the backend directly, not through add_reader; the loop refuses it (EEXIST) for a
// descriptor that something else watches already.
#ifndef IOLOOP_NET_IO_WAIT_HPP
#define IOLOOP_NET_IO_WAIT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/net_access.hpp"

#include <coroutine>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class io_wait final : public wait_point, private io_watcher {
public:
    // `which` is backend::io_read or backend::io_write; `what` names the wait in the error
    // of an await outside a task.
    io_wait(loop_base& loop, native_socket fd, unsigned which,
            const char* what = "waiting for a socket") noexcept
        : loop_(loop), fd_(fd), which_(which), what_(what) {}
    io_wait(const io_wait&) = delete;
    io_wait& operator=(const io_wait&) = delete;
    // Destroyed while waiting: the task is being abandoned (its loop is closing).
    ~io_wait() { unwatch(); }

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw(what_);
        // Registered before suspend(), which may deliver a pending cancel at once.
        net_access::watch(loop_, fd_, 0, which_, *this);
        watching_ = true;
        task_->suspend(h, this);
    }

    void await_resume() { task_->throw_if_cancelled(); }

    void on_cancel(task_base& t) noexcept override {
        unwatch();
        t.wake();
    }

private:
    void on_io(unsigned) noexcept override {
        if (!watching_) return;  // unwatched earlier in this poll batch
        unwatch();
        task_->wake();
    }

    void unwatch() noexcept {
        if (!watching_ || loop_.is_closed()) return;
        watching_ = false;
        try {
            net_access::watch(loop_, fd_, which_, 0, *this);
        } catch (...) {
            // Only a descriptor closed under the wait fails here; it is unwatched anyway.
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
