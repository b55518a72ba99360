// ioloop: the I/O completion port backend (Windows). A completion backend: the networking
// layer starts overlapped operations (WSARecv, WSASend, AcceptEx, ConnectEx, ...) on
// sockets associated with the port, and wait() reports each finished one to the
// detail::overlapped_op that started it. Nothing here waits for readiness, so add_reader
// and add_writer do not compile on this backend.
#ifndef IOLOOP_BACKEND_IOCP_HPP
#define IOLOOP_BACKEND_IOCP_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/detail/windows.hpp"

#if defined(IOLOOP_HAS_IOCP)

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class iocp {
public:
    static constexpr std::string_view name = "iocp";

    iocp() {
        detail::start_winsock();
        // One thread (the loop's) dequeues from this port.
        port_ = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
        if (port_ == nullptr)
            detail::throw_system_error(::GetLastError(), "CreateIoCompletionPort");
    }
    iocp(const iocp&) = delete;
    iocp& operator=(const iocp&) = delete;
    ~iocp() { ::CloseHandle(port_); }

    // Makes the completions of h's overlapped operations come to this port. A handle (a
    // socket, a pipe) is associated once, for its whole life.
    void associate(HANDLE h) {
        if (::CreateIoCompletionPort(h, port_, 0, 0) == nullptr) {
            detail::throw_system_error(::GetLastError(),
                                       "CreateIoCompletionPort: associating a handle");
        }
    }

    // Queues a completion for an operation the kernel did not start (wait() reports it as
    // any other): so an operation that ended at its start still ends through the port.
    void post(OVERLAPPED* o) {
        if (!::PostQueuedCompletionStatus(port_, 0, 0, o)) {
            detail::throw_system_error(::GetLastError(), "PostQueuedCompletionStatus");
        }
    }

    // Reports each dequeued completion to its operation (the sink's data is the
    // operation's io_watcher; its events are 0, the result is in the OVERLAPPED).
    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        ULONG n = 0;
        if (!::GetQueuedCompletionStatusEx(port_, entries_, max_entries, &n,
                                           detail::timeout_ms(timeout), FALSE)) {
            const unsigned long err = ::GetLastError();
            if (err == WAIT_TIMEOUT) return;
            detail::throw_system_error(err, "GetQueuedCompletionStatusEx");
        }
        for (ULONG i = 0; i < n; ++i) {
            OVERLAPPED* done = entries_[i].lpOverlapped;
            if (done == nullptr) {
                // The wakeup packet: a later interrupt() must post again. Reset before the
                // loop reads its cross-thread queue, so no wakeup is lost.
                interrupt_posted_.store(false, detail::memory_order::release);
                continue;
            }
            sink(static_cast<detail::io_watcher*>(detail::overlapped_op::from(done)), 0u);
        }
    }

    // Posts one wakeup packet; further calls until it is dequeued post nothing.
    void interrupt() noexcept {
        if (!interrupt_posted_.exchange(true, detail::memory_order::acq_rel))
            ::PostQueuedCompletionStatus(port_, 0, 0, nullptr);
    }

private:
    static constexpr ULONG max_entries = 128;

    HANDLE port_ = nullptr;
    detail::atomic<bool> interrupt_posted_{false};
    OVERLAPPED_ENTRY entries_[max_entries];
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_IOCP
#endif
