// ioloop: what a descriptor must be before the loop waits on it (wait_readable) or makes
// it a pipe transport (connect_read_pipe, connect_write_pipe). Checked here, before any
// backend sees it, so that every backend refuses the same descriptors with the same
// words: epoll refuses a regular file (EPERM) where poll and select would take it and
// report it always ready, and poll would take a closed descriptor and report POLLNVAL.
// On Windows a pipe is a HANDLE: the IOCP backend checks it here (check_pipe_handle), and
// select, which waits on sockets only, refuses every one.

#ifndef IOLOOP_NET_DESCRIPTOR_CHECK_HPP
#define IOLOOP_NET_DESCRIPTOR_CHECK_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <cstdint>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_not_supported(std::string_view what, std::string_view why) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                            concat({what, ": ", why}));
}

// The end of the message that refuses a regular file, on every platform.
inline constexpr std::string_view use_the_file_api =
    "read files with ioloop::open_file (the file API)";

// What a pipe transport needs to know of its descriptor.
struct pipe_descriptor {
    // Readability of the write end can only mean that the reader went away: a pipe or a
    // FIFO opened for writing alone (asyncio watches for it; a terminal opened for reading
    // and writing would be readable when someone types).
    bool reader_gone_is_readable = false;
};

#if defined(IOLOOP_POSIX)

// Throws EBADF unless fd is an open descriptor.
inline void require_open_descriptor(native_socket fd, std::string_view what) {
    if (!is_open_fd(fd)) {
        throw_errno(EBADF, concat({what, ": fd ", decimal(fd), " is not an open descriptor"}));
    }
}

// A descriptor a pipe transport can take: a pipe, a FIFO, a terminal, a character device,
// a socket (asyncio takes one too; it is then read and written as a pipe). A regular file
// or a directory is refused: it is always "ready", and reading it belongs to the file API.
inline pipe_descriptor check_pipe_descriptor(native_descriptor fd, std::string_view what) {
    struct stat st{};
    if (::fstat(fd, &st) == -1) {
        const int err = errno;
        throw_errno(err, concat({what, ": fd ", decimal(fd), err == EBADF
                                                                 ? " is not an open descriptor"
                                                                 : ": fstat failed"}));
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        throw_errno(EPERM, concat({what, ": fd ", decimal(fd),
                                   S_ISREG(st.st_mode) ? " is a regular file" : " is a directory",
                                   ": pipes and terminals only; ", use_the_file_api}));
    }
    const int flags = ::fcntl(fd, F_GETFL);
    const int access = flags == -1 ? O_RDWR : (flags & O_ACCMODE);
    pipe_descriptor d;
#if defined(__linux__)
    // Linux pipes are one-way: the write end is O_WRONLY. A FIFO opened O_RDWR would be
    // readable with its own bytes.
    d.reader_gone_is_readable = S_ISFIFO(st.st_mode) && access == O_WRONLY;
#else
    // The BSDs' and macOS's pipes are two-way, both ends O_RDWR: the write end's read
    // side reports EOF when the other end closes.
    d.reader_gone_is_readable = S_ISFIFO(st.st_mode) && access != O_RDONLY;
#endif
    return d;
}

#elif defined(IOLOOP_WINDOWS)

inline void require_open_descriptor(native_socket, std::string_view) {}

// The readiness family on Windows is select, and Winsock's select takes sockets only.
inline pipe_descriptor check_pipe_descriptor(native_descriptor, std::string_view what) {
    throw_not_supported(what,
                        "Windows' select waits on sockets only: it cannot wait on a pipe or a "
                        "console; use the IOCP backend (Windows' default) for pipes");
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

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
