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
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/descriptor_check.hpp"

#if defined(IOLOOP_WINDOWS)

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

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

// Whether h was opened for synchronous I/O (without FILE_FLAG_OVERLAPPED: CreatePipe's
// pipes, a named pipe opened so). The I/O manager runs such a handle's "overlapped"
// ReadFile to its end before returning, so the IOCP backend would block the loop in it
// until data came. ntdll's NtQueryInformationFile (FileModeInformation) tells, for the
// price of one system call; false if ntdll does not have it (the call is then not made).
inline bool opened_for_synchronous_io(native_descriptor h) noexcept {
    struct io_status {  // IO_STATUS_BLOCK (<winternl.h>): the status shares a pointer's room
        void* status;
        ULONG_PTR information;
    };
    using query_information_file = long(WINAPI*)(HANDLE, io_status*, void*, ULONG, int);
    constexpr int file_mode_information = 16;
    constexpr ULONG synchronous_io = 0x10 | 0x20;  // FILE_SYNCHRONOUS_IO_ALERT | _NONALERT
    static const auto query = [] {
        const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
        // Through void(*)(): the one function type a cast from FARPROC need not warn about.
        const auto any = reinterpret_cast<void (*)()>(
            ntdll ? ::GetProcAddress(ntdll, "NtQueryInformationFile") : nullptr);
        return reinterpret_cast<query_information_file>(any);
    }();
    if (query == nullptr) return false;
    io_status status{};
    ULONG mode = 0;
    return query(h, &status, &mode, sizeof mode, file_mode_information) >= 0 &&
           (mode & synchronous_io) != 0;
}

// A HANDLE the IOCP backend can make a pipe transport of: an open pipe (GetFileType),
// opened for overlapped I/O. A disk file is refused as POSIX refuses a regular file
// (EPERM, naming the file API); a console or another character device cannot be read
// through a completion port (operation_not_supported), nor can a handle opened for
// synchronous I/O. The pipe must be connected (a server end that ConnectNamedPipe has
// connected, or a client end); that is not checked: its first read or write fails.
inline void check_pipe_handle(native_descriptor h, std::string_view what) {
    const decimal number(static_cast<long long>(reinterpret_cast<std::intptr_t>(h)));
    DWORD flags = 0;
    // INVALID_HANDLE_VALUE is also the current process's pseudo-handle, which
    // GetHandleInformation takes.
    if (h == nullptr || h == INVALID_HANDLE_VALUE || !::GetHandleInformation(h, &flags)) {
        throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                                concat({what, ": handle ", number, " is not an open handle"}));
    }
    switch (::GetFileType(h)) {
        case FILE_TYPE_PIPE: break;
        case FILE_TYPE_DISK:
            throw std::system_error(
                std::make_error_code(std::errc::operation_not_permitted),
                concat({what, ": handle ", number,
                        " is a disk file (a regular file or a directory): pipes only; ",
                        use_the_file_api}));
        case FILE_TYPE_CHAR:
            throw_not_supported(what, concat({"handle ", number,
                                              " is a console or a character device: the IOCP "
                                              "backend cannot wait on one (it has no "
                                              "overlapped reads); pipes only"}));
        default:
            throw_not_supported(what, concat({"handle ", number,
                                              " is not a pipe: the IOCP backend takes "
                                              "overlapped named pipes only"}));
    }
    if (opened_for_synchronous_io(h)) {
        throw_not_supported(
            what, concat({"handle ", number,
                          " was opened for synchronous I/O (as CreatePipe's pipes are): the "
                          "IOCP backend needs a named pipe opened with FILE_FLAG_OVERLAPPED "
                          "(CreateNamedPipeW, CreateFileW), or it would block the loop"}));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
