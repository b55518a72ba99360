// ioloop: overlapped_call, the current task starts one overlapped operation (WSARecv,
// WSASend, AcceptEx, ConnectEx, WSARecvFrom, WSASendTo) on a completion backend and waits
// for its completion: the IOCP side of what fd_ready is on the readiness backends.
//
// Buffer ownership: the kernel owns the OVERLAPPED and the buffers until the completion
// is dequeued. So cancelling the task cancels the operation (CancelIoEx) and the task
// wakes only with that completion; and an operation whose task is destroyed mid-flight
// (its loop is closing) waits there for the kernel to let go, then frees itself when the
// loop dequeues its completion.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_CALL_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_CALL_HPP

#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/socket.hpp"

#if defined(IOLOOP_WINDOWS)

#include <coroutine>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What an overlapped operation ended with: the bytes moved and Winsock's error (0: none).
struct overlapped_result {
    unsigned long bytes = 0;
    unsigned long error = 0;
};

class overlapped_wait : public wait_point {
public:
    overlapped_wait(const overlapped_wait&) = delete;
    overlapped_wait& operator=(const overlapped_wait&) = delete;

    bool await_ready() const noexcept { return false; }

    // A cancelled operation throws cancelled_error. One that completed although the task
    // was cancelled meanwhile returns its result (its bytes are not lost); the cancel
    // stays pending for the task's next suspension point.
    overlapped_result await_resume() {
        if (result_.error == ERROR_OPERATION_ABORTED) task_->throw_if_cancelled();
        return result_;
    }

    void on_cancel(task_base&) noexcept override {
        if (op_) ::CancelIoEx(reinterpret_cast<HANDLE>(s_), op_->overlapped());
    }

protected:
    overlapped_wait(loop_base& loop, native_socket s) noexcept : loop_(loop), s_(s) {}
    ~overlapped_wait() {
        if (op_) op_->orphan(s_);
    }

    // Starts the operation through start(OVERLAPPED*), which returns 0 once it is started
    // (pending or done: either way a completion will come) or Winsock's error.
    template <class Start>
    bool suspend_for(std::coroutine_handle<> h, Start& start) {
        task_ = &current_task_or_throw("waiting for a socket operation");
        auto* op = new call_op(*this);
        operation_started(loop_);
        if (const unsigned long err = start(op->overlapped())) {
            operation_not_started(loop_);
            delete op;
            result_.error = err;
            return false;  // resumes at once with the error
        }
        op_ = op;
        task_->suspend(h, this);
        return true;
    }

private:
    class call_op final : public overlapped_op {
    public:
        explicit call_op(overlapped_wait& owner) noexcept : owner_(&owner) {}

        // The task went away with the operation in flight: cancel it and wait until the
        // kernel is done with its buffers (they live in the task's frame).
        void orphan(native_socket s) noexcept {
            owner_ = nullptr;
            ::CancelIoEx(reinterpret_cast<HANDLE>(s), overlapped());
            while (!HasOverlappedIoCompleted(overlapped())) ::SwitchToThread();
        }

    private:
        void on_io(unsigned) noexcept override {
            if (overlapped_wait* w = owner_) {
                w->op_ = nullptr;
                w->result_.error = result(w->s_, w->result_.bytes);
                w->task_->wake();
            }
            delete this;
        }

        overlapped_wait* owner_;
    };

    loop_base& loop_;
    native_socket s_;
    task_base* task_ = nullptr;
    call_op* op_ = nullptr;  // in flight
    overlapped_result result_;
};

// `co_await overlapped_call(loop, s, start)`: start(OVERLAPPED*) makes the Winsock call.
template <class Start>
class overlapped_call final : public overlapped_wait {
public:
    overlapped_call(loop_base& loop, native_socket s, Start start)
        : overlapped_wait(loop, s), start_(std::move(start)) {}

    bool await_suspend(std::coroutine_handle<> h) { return suspend_for(h, start_); }

private:
    Start start_;
};

// Winsock's answer to an overlapped call: 0 if it started, else the error.
inline unsigned long started(int rc) noexcept {
    if (rc == 0) return 0;
    const int err = ::WSAGetLastError();
    return err == WSA_IO_PENDING ? 0 : static_cast<unsigned long>(err);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
