// ioloop: co_await wait_readable(fd) and co_await wait_writable(fd): the current task waits
// once until fd is readable (or writable), as trio's functions of those names; what
// add_reader / add_writer are for callbacks. Readiness backends only (epoll, kqueue, poll,
// select). The descriptor stays the caller's: nothing watches it before or after the
// wait, so an idle descriptor costs the loop nothing.
//
// Cancelling the task ends the wait and leaves the descriptor unwatched and usable. A
// descriptor that something else of this loop watches (add_reader, another waiting task,
// a transport) is refused with errc::file_exists, rather than taken from it.
#ifndef IOLOOP_NET_WAIT_IO_HPP
#define IOLOOP_NET_WAIT_IO_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/descriptor_check.hpp"
#include "ioloop/net/fd_ready.hpp"

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The running loop, checked for a wait on fd: fd is open. (A completion backend (IOCP)
// refuses the wait when it starts: it cannot wait for readiness.)
inline loop_base& loop_for_wait(native_socket fd, const char* what) {
    loop_base& loop = loop_access::running_or_throw(what);
    require_open_descriptor(fd, what);
    return loop;
}

}  // namespace detail

// co_await wait_readable(fd): returns once fd is readable (data, EOF, an error, a hang-up:
// whatever makes a read return at once). No running loop or a closed descriptor throw at
// the call; a descriptor watched already, or a completion backend (IOCP), at the co_await.
[[nodiscard]] inline detail::fd_ready wait_readable(native_socket fd) {
    return detail::fd_ready(detail::loop_for_wait(fd, "wait_readable"), fd, backend::io_read,
                            "wait_readable");
}

// co_await wait_writable(fd): returns once fd is writable (room in its buffer, or an error
// a write would report).
[[nodiscard]] inline detail::fd_ready wait_writable(native_socket fd) {
    return detail::fd_ready(detail::loop_for_wait(fd, "wait_writable"), fd, backend::io_write,
                            "wait_writable");
}

IOLOOP_NAMESPACE_END

#endif
