// ioloop: what connect_read_pipe and connect_write_pipe hand to the loop's backend family
// (reactive_ops::start_pipe, iocp_ops::start_pipe): a descriptor that is not a socket (a
// pipe, a FIFO, a terminal, a character device on POSIX; an overlapped named pipe's HANDLE
// on Windows), owned from the call on. On the readiness backends the socket transport
// moves its bytes with read() and write() (POSIX); on IOCP the overlapped stream transport
// with ReadFile and WriteFile. Windows' select waits on sockets only, and says so.
#ifndef IOLOOP_NET_PIPE_TRANSPORT_HPP
#define IOLOOP_NET_PIPE_TRANSPORT_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Which descriptor a stream transport serves, and so how its bytes move.
enum class descriptor_kind : unsigned char { socket, read_pipe, write_pipe };

// The descriptor given to connect_read_pipe / connect_write_pipe, owned from the call on:
// closed unless a transport takes it, so a refused descriptor, a factory that throws or a
// connect never awaited leaves nothing open (close() on POSIX, CloseHandle on Windows).
class owned_descriptor {
public:
    owned_descriptor() noexcept : fd_(no_descriptor()) {}
    explicit owned_descriptor(native_descriptor fd) noexcept : fd_(fd) {}
    owned_descriptor(owned_descriptor&& other) noexcept : fd_(other.release()) {}
    owned_descriptor& operator=(owned_descriptor&& other) noexcept {
        if (this != &other) {
            if (fd_ != no_descriptor()) close_descriptor(fd_);
            fd_ = other.release();
        }
        return *this;
    }
    ~owned_descriptor() {
        if (fd_ != no_descriptor()) close_descriptor(fd_);
    }

    native_descriptor get() const noexcept { return fd_; }
    native_descriptor release() noexcept { return std::exchange(fd_, no_descriptor()); }

private:
    native_descriptor fd_;
};

inline const char* pipe_call(descriptor_kind kind) noexcept {
    return kind == descriptor_kind::read_pipe ? "connect_read_pipe" : "connect_write_pipe";
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
