// ioloop: how the IOCP backend moves a pipe's bytes (Windows): the Win32 calls of the
// overlapped stream transport when its handle is a named pipe, under the names of what
// they do for it. What Windows' pipes say, learnt from the documentation and checked under
// Wine:
// - A zero-byte overlapped ReadFile stays pending until data arrives, then completes and
//   takes nothing: the pipe's form of the zero-byte WSARecv, so an idle pipe holds no read
//   buffer either.
// - The end of the stream is an error, not a zero-byte read: ERROR_BROKEN_PIPE once the
//   writer has gone and the bytes it left are read (ERROR_PIPE_NOT_CONNECTED and
//   ERROR_HANDLE_EOF say the same of a disconnected server end).
// - A reader gone makes writes fail with ERROR_NO_DATA (at once) or ERROR_BROKEN_PIPE (a
//   write in flight); detail/windows.hpp maps both to errc::broken_pipe.
// - A call that fails at its start queues no completion, unless its error is a warning:
//   ERROR_MORE_DATA (a message-mode pipe's message larger than the read) queues one.
#ifndef IOLOOP_NET_IOCP_PIPE_IO_HPP
#define IOLOOP_NET_IOCP_PIPE_IO_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/windows.hpp"

#if defined(IOLOOP_WINDOWS)

#include <cstddef>
#include <cstdint>
#include <span>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A read's error that means the writer has gone: the stream's EOF.
inline bool pipe_read_ended(unsigned long err) noexcept {
    return err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED || err == ERROR_HANDLE_EOF;
}

// ReadFile's or WriteFile's answer to an overlapped call: 0 if it started (pending, or
// done: either way its completion will come to the port), else its error.
inline unsigned long file_call_started(BOOL ok) noexcept {
    if (ok) return 0;
    const unsigned long err = ::GetLastError();
    return err == ERROR_IO_PENDING || err == ERROR_MORE_DATA ? 0 : err;
}

inline DWORD file_call_size(std::size_t size) noexcept {
    return size > MAXDWORD ? MAXDWORD : static_cast<DWORD>(size);
}

// A zero-byte read on h: its completion says data is there (or the writer went away).
inline unsigned long start_waiting_for_pipe_data(HANDLE h, OVERLAPPED* o) noexcept {
    static char nothing;  // never written: the read takes 0 bytes
    return file_call_started(::ReadFile(h, &nothing, 0, nullptr, o));
}

inline unsigned long start_pipe_write(HANDLE h, const char* data, std::size_t size,
                                      OVERLAPPED* o) noexcept {
    return file_call_started(::WriteFile(h, data, file_call_size(size), nullptr, o));
}

// One read of what h holds now, into `into`, without the port: the OVERLAPPED names the
// loop's quiet event with its lowest bit set, which tells Windows to signal the event and
// queue no completion. Data is there (a zero-byte read said so), so the read completes at
// once; if another reader took it first, the read is cancelled and waited for (it may
// have got bytes meanwhile). Returns 0 and the count in `bytes` (0: nothing after all),
// or the error (pipe_read_ended: EOF).
inline unsigned long read_pipe_now(HANDLE h, std::span<char> into, HANDLE quiet_event,
                                   unsigned long& bytes) noexcept {
    bytes = 0;
    OVERLAPPED o{};
    o.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<std::uintptr_t>(quiet_event) | 1);
    if (!::ReadFile(h, into.data(), file_call_size(into.size()), nullptr, &o)) {
        const unsigned long err = ::GetLastError();
        if (err == ERROR_IO_PENDING) {
            ::CancelIoEx(h, &o);
        } else if (err != ERROR_MORE_DATA) {
            return err;  // failed at its start: nothing is in flight
        }
    }
    if (!HasOverlappedIoCompleted(&o)) ::WaitForSingleObject(quiet_event, INFINITE);
    DWORD moved = 0;
    const bool ok = ::GetOverlappedResult(h, &o, &moved, FALSE);
    bytes = moved;
    if (ok) return 0;
    // ERROR_MORE_DATA: a message-mode pipe's message goes on in the next read.
    const unsigned long err = ::GetLastError();
    return err == ERROR_MORE_DATA || err == ERROR_OPERATION_ABORTED ? 0 : err;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
