// ioloop: the stream transport for a descriptor that is not a socket (a pipe, a FIFO, a
// terminal, a character device), of the kind the loop's backend needs: on the readiness
// backends the socket transport moving its bytes with read() and write() (POSIX). Windows
// has none yet: overlapped pipes on IOCP are to come, and Windows' select waits on
// sockets only; both say so (net/descriptor_check.hpp).
#ifndef IOLOOP_NET_PIPE_TRANSPORT_HPP
#define IOLOOP_NET_PIPE_TRANSPORT_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/descriptor_check.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket_transport.hpp"
#include "ioloop/net/transport.hpp"

#include <memory>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The descriptor given to connect_read_pipe / connect_write_pipe, owned from the call on:
// closed unless a transport takes it, so a refused descriptor, a factory that throws or a
// connect never awaited leaves nothing open. (Windows: not taken, since nothing can use it
// yet; it stays the caller's.)
class owned_descriptor {
public:
    explicit owned_descriptor(native_socket fd) noexcept : fd_(fd) {}
    owned_descriptor(owned_descriptor&& other) noexcept : fd_(other.release()) {}
    owned_descriptor& operator=(owned_descriptor&&) = delete;
    ~owned_descriptor() {
#if defined(IOLOOP_POSIX)
        if (fd_ != invalid_socket) ::close(fd_);
#endif
    }

    native_socket get() const noexcept { return fd_; }
    native_socket release() noexcept { return std::exchange(fd_, invalid_socket); }

private:
    native_socket fd_;
};

inline const char* pipe_call(descriptor_kind kind) noexcept {
    return kind == descriptor_kind::read_pipe ? "connect_read_pipe" : "connect_write_pipe";
}

// Checks the descriptor, makes it non-blocking and close-on-exec, and starts the transport
// (connection_made). On failure the descriptor is closed, the protocol dropped without a
// callback, and the error thrown.
inline transport& start_pipe_transport(loop_base& loop, owned_descriptor fd, descriptor_kind kind,
                                       std::unique_ptr<protocol> p) {
    const pipe_descriptor d = check_pipe_descriptor(loop, fd.get(), pipe_call(kind));
#if defined(IOLOOP_POSIX)
    try {
        set_nonblocking_cloexec(fd.get());
    } catch (const std::system_error& e) {
        throw std::system_error(e.code(), concat({pipe_call(kind), ": fd ", decimal(fd.get()),
                                                  " (making it non-blocking and close-on-exec)"}));
    }
#endif
    const bool watch_hangup = kind == descriptor_kind::write_pipe && d.reader_gone_is_readable;
    return socket_transport::start_pipe(loop, fd.release(), kind, watch_hangup, std::move(p));
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
