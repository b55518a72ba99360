// ioloop: what a descriptor must be before the loop waits on it (wait_readable) or makes
// it a pipe transport (connect_read_pipe, connect_write_pipe). Checked here, before any
// backend sees it, so that every backend refuses the same descriptors with the same
// words: epoll refuses a regular file (EPERM) where poll and select would take it and
// report it always ready, and poll would take a closed descriptor and report POLLNVAL.
// On Windows a pipe is a HANDLE: select, which waits on sockets only, refuses every one
// here; the IOCP backend checks its own (net/iocp/pipe_io.hpp, check_pipe_handle).

#ifndef IOLOOP_NET_DESCRIPTOR_CHECK_HPP
#define IOLOOP_NET_DESCRIPTOR_CHECK_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

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

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
