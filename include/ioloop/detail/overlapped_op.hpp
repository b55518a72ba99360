// ioloop: one overlapped operation in flight on the IOCP backend. The OVERLAPPED and
// every buffer the operation names belong to the kernel from the call that starts it
// until its completion is dequeued, even after the socket is closed or the operation is
// cancelled: so an operation is freed only by its own completion, never by its starter.
#ifndef IOLOOP_DETAIL_OVERLAPPED_OP_HPP
#define IOLOOP_DETAIL_OVERLAPPED_OP_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/windows.hpp"

#if defined(IOLOOP_WINDOWS)

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class overlapped_op : public io_watcher {
public:
    OVERLAPPED* overlapped() noexcept { return &slot_.overlapped; }

    // The operation a dequeued OVERLAPPED belongs to.
    static overlapped_op* from(OVERLAPPED* o) noexcept {
        return reinterpret_cast<slot*>(o)->owner;  // the OVERLAPPED is the slot's first member
    }

    // Once completed, on socket s: the bytes moved, and the error (0 when none) as Winsock
    // names it (a cancelled operation: WSA_OPERATION_ABORTED).
    unsigned long result(native_socket s, unsigned long& bytes) noexcept {
        DWORD moved = 0;
        DWORD flags = 0;
        const bool ok = ::WSAGetOverlappedResult(s, overlapped(), &moved, FALSE, &flags);
        bytes = moved;
        return ok ? 0 : static_cast<unsigned long>(::WSAGetLastError());
    }

    // The same on a pipe's (or any file's) handle h, the error as Win32 names it (a
    // cancelled operation: ERROR_OPERATION_ABORTED).
    unsigned long file_result(HANDLE h, unsigned long& bytes) noexcept {
        DWORD moved = 0;
        const bool ok = ::GetOverlappedResult(h, overlapped(), &moved, FALSE);
        bytes = moved;
        return ok ? 0 : ::GetLastError();
    }

    // Makes the OVERLAPPED ready for the next operation.
    void reset() noexcept { slot_.overlapped = OVERLAPPED{}; }

protected:
    overlapped_op() noexcept : slot_{OVERLAPPED{}, this} {}
    overlapped_op(const overlapped_op&) = delete;
    overlapped_op& operator=(const overlapped_op&) = delete;
    ~overlapped_op() = default;

private:
    // Standard layout, so a pointer to its first member is a pointer to it.
    struct slot {
        OVERLAPPED overlapped;
        overlapped_op* owner;
    };
    slot slot_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
