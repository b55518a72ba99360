// ioloop: a socket descriptor owned by value: non-blocking and close-on-exec from birth,
// closed by the destructor, and every failing call a std::system_error that says what
// failed on which address.
#ifndef IOLOOP_NET_SOCKET_HPP
#define IOLOOP_NET_SOCKET_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/net/endpoint.hpp"

#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Linux has no SO_NOSIGPIPE: each send says MSG_NOSIGNAL instead, so a write to a closed
// peer is an EPIPE error rather than a signal that kills the process. Elsewhere the socket
// carries SO_NOSIGPIPE (socket::open) and the flag is 0.
#if defined(MSG_NOSIGNAL)
inline constexpr int send_flags = MSG_NOSIGNAL;
#else
inline constexpr int send_flags = 0;
#endif

// EAGAIN and EWOULDBLOCK may be distinct values (POSIX allows it); both mean "wait".
inline bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace detail

enum class socket_type : int { stream, datagram };

class socket {
public:
    // Owns nothing: is_open() is false.
    socket() noexcept = default;

    // Takes ownership of `adopted_fd` (from accept, a socketpair, a parent process) and
    // makes it non-blocking and close-on-exec, which the loop relies on. The descriptor is
    // owned even if that fails: it is closed before the exception leaves.
    explicit socket(int adopted_fd) : fd_(adopted_fd) {
        try {
            detail::set_nonblocking_cloexec(adopted_fd);
        } catch (const std::system_error& e) {
            close_quietly();
            throw std::system_error(
                e.code(),
                detail::concat({"socket: adopting descriptor ", detail::decimal(adopted_fd),
                                " (making it non-blocking and close-on-exec)"}));
        }
    }

    // Takes ownership of a descriptor known to be non-blocking and close-on-exec already
    // (accept4 made it so): no system call.
    static socket adopt_nonblocking(int fd) noexcept {
        socket s;
        s.fd_ = fd;
        return s;
    }

    socket(socket&& other) noexcept : fd_(other.release()) {}
    socket& operator=(socket&& other) noexcept {
        if (this != &other) {
            close_quietly();
            fd_ = other.release();
        }
        return *this;
    }
    socket(const socket&) = delete;
    socket& operator=(const socket&) = delete;
    ~socket() { close_quietly(); }

    // A new socket of the family and type, non-blocking and close-on-exec.
    static socket open(address_family family, socket_type type) {
        int domain = 0;
        switch (family) {
            case address_family::ipv4:
                domain = AF_INET;
                break;
            case address_family::ipv6:
                domain = AF_INET6;
                break;
            case address_family::unix_domain:
                domain = AF_UNIX;
                break;
            default:
                throw std::system_error(
                    std::make_error_code(std::errc::address_family_not_supported),
                    "socket::open: the address family is unspecified");
        }
        const int kind = type == socket_type::stream ? SOCK_STREAM : SOCK_DGRAM;
        const std::string_view what = describe(family, type);
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
        // Atomic flags: no window in which another thread's fork+exec inherits the fd.
        const int fd = ::socket(domain, kind | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) detail::throw_errno(errno, detail::concat({"socket ", what}));
        socket s = adopt_nonblocking(fd);
#else
        const int fd = ::socket(domain, kind, 0);
        if (fd == -1) detail::throw_errno(errno, detail::concat({"socket ", what}));
        socket s(fd);
#endif
#if defined(SO_NOSIGPIPE)
        // macOS and the BSDs have no MSG_NOSIGNAL: a write to a reset peer would raise
        // SIGPIPE unless the socket itself says no. Linux has no SO_NOSIGPIPE; its sends
        // pass MSG_NOSIGNAL instead (in the send path, not here).
        const int on = 1;
        if (::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) == -1)
            detail::throw_errno(errno, detail::concat({"setsockopt SO_NOSIGPIPE on ", what}));
#endif
        return s;
    }

    int fd() const noexcept { return fd_; }
    bool is_open() const noexcept { return fd_ != -1; }

    // Gives the descriptor up without closing it; the socket is closed (is_open() false).
    int release() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }

    // Closes now; a closed socket stays closed (a second close does nothing). An error
    // other than EINTR (EBADF: someone closed our fd behind our back) is thrown.
    void close() {
        const int fd = release();
        if (fd == -1) return;
        // EINTR is not retried: Linux (and POSIX 2024's reading) has released the fd by
        // then, and a retry could close a descriptor another thread just opened.
        if (::close(fd) == -1 && errno != EINTR) {
            detail::throw_errno(errno, detail::concat({"close socket ", detail::decimal(fd)}));
        }
    }

    // Binds to `address`. A Unix path that exists fails with EADDRINUSE: nothing is
    // unlinked here, since removing a file is the caller's decision, not the socket's.
    void bind(const endpoint& address) {
        if (::bind(fd_, address.native(), address.native_size()) == -1)
            detail::throw_errno(errno, detail::concat({"bind ", address.to_string()}));
    }

    // asyncio's default backlog is 100; the kernel may cap it (somaxconn).
    void listen(int backlog = 100) {
        if (::listen(fd_, backlog) == -1)
            detail::throw_errno(errno, detail::concat({"listen on socket ", detail::decimal(fd_)}));
    }

    // The next connection on the listening socket `listener_fd`, non-blocking and
    // close-on-exec (and SO_NOSIGPIPE where that exists), with its peer's address in
    // `peer` / `size`. On failure a closed socket, with errno saying why (EAGAIN: none
    // pending).
    static socket accept_on(int listener_fd, sockaddr_storage& peer, socklen_t& size) noexcept {
        size = sizeof peer;
        auto* native = reinterpret_cast<sockaddr*>(&peer);
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
        // Atomic flags: no window in which another thread's fork+exec inherits the fd.
        socket conn = adopt_nonblocking(
            ::accept4(listener_fd, native, &size, SOCK_NONBLOCK | SOCK_CLOEXEC));
#else
        socket conn = adopt_nonblocking(::accept(listener_fd, native, &size));
        if (conn.is_open() && (::fcntl(conn.fd_, F_SETFL, O_NONBLOCK) == -1 ||
                               ::fcntl(conn.fd_, F_SETFD, FD_CLOEXEC) == -1)) {
            const int err = errno;
            conn.close_quietly();
            errno = err;
        }
#endif
#if defined(SO_NOSIGPIPE)
        // The listener's SO_NOSIGPIPE is not inherited everywhere.
        const int on = 1;
        if (conn.is_open() &&
            ::setsockopt(conn.fd_, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) == -1) {
            const int err = errno;
            conn.close_quietly();
            errno = err;
        }
#endif
        return conn;
    }

    void set_reuse_address(bool on) { set_flag(SOL_SOCKET, SO_REUSEADDR, on, "SO_REUSEADDR"); }
    void set_no_delay(bool on) { set_flag(IPPROTO_TCP, TCP_NODELAY, on, "TCP_NODELAY"); }
    // An IPv6 socket that takes IPv6 only, so that "::" and "0.0.0.0" can both be bound.
    void set_v6_only(bool on) { set_flag(IPPROTO_IPV6, IPV6_V6ONLY, on, "IPV6_V6ONLY"); }

    endpoint local_endpoint() const {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == -1)
            detail::throw_errno(errno,
                                detail::concat({"getsockname on socket ", detail::decimal(fd_)}));
        return endpoint::from_native(reinterpret_cast<const sockaddr*>(&addr), size);
    }

    endpoint remote_endpoint() const {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == -1)
            detail::throw_errno(errno,
                                detail::concat({"getpeername on socket ", detail::decimal(fd_)}));
        return endpoint::from_native(reinterpret_cast<const sockaddr*>(&addr), size);
    }

    // The socket's pending error (SO_ERROR), cleared by reading it: how a non-blocking
    // connect reports its outcome once the socket turns writable. Empty when none.
    std::error_code pending_error() const {
        int err = 0;
        socklen_t size = sizeof err;
        if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &size) == -1)
            detail::throw_errno(
                errno, detail::concat({"getsockopt SO_ERROR on socket ", detail::decimal(fd_)}));
        return err == 0 ? std::error_code() : std::error_code(err, std::generic_category());
    }

private:
    void set_flag(int level, int name, bool on, std::string_view option) {
        const int value = on ? 1 : 0;
        if (::setsockopt(fd_, level, name, &value, sizeof value) == -1)
            detail::throw_errno(errno, detail::concat({"setsockopt ", option, " on socket ",
                                                       detail::decimal(fd_)}));
    }

    void close_quietly() noexcept {
        // A destructor cannot report; EINTR is not retried for the reason close() gives.
        if (fd_ != -1) ::close(fd_);
        fd_ = -1;
    }

    static std::string_view describe(address_family family, socket_type type) noexcept {
        const bool stream = type == socket_type::stream;
        switch (family) {
            case address_family::ipv4:
                return stream ? "(IPv4, stream)" : "(IPv4, datagram)";
            case address_family::ipv6:
                return stream ? "(IPv6, stream)" : "(IPv6, datagram)";
            default:
                return stream ? "(Unix, stream)" : "(Unix, datagram)";
        }
    }

    int fd_ = -1;
};

IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
