// ioloop: a socket (a descriptor on POSIX, a SOCKET on Windows) owned by value: non-blocking
// and not inherited by child processes from birth, closed by the destructor, and every
// failing call a std::system_error that says what failed on which address, with the
// portable std::errc meaning where there is one.
#ifndef IOLOOP_NET_SOCKET_HPP
#define IOLOOP_NET_SOCKET_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/endpoint.hpp"

#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN

enum class socket_type : int { stream, datagram };

namespace detail {

[[noreturn]] inline void throw_option_error(native_socket fd, std::string_view option) {
    throw_system_error(last_socket_error(),
                       concat({"setsockopt ", option, " on socket ", decimal(fd)}));
}

// Joins the multicast group `group` (IPv4 or IPv6) on the interface `where`: for IPv4 the
// interface's address (unspecified: the one the routing table picks), for IPv6 its scope
// id ("::%lo"; none: the system's choice). Shared by socket and datagram_transport.
inline void join_multicast(native_socket fd, const endpoint& group, const endpoint& where) {
    const sockaddr* g = group.native();
    if (group.family() == address_family::ipv4) {
        if (where.family() != address_family::unspecified &&
            where.family() != address_family::ipv4) {
            throw std::system_error(
                std::make_error_code(std::errc::address_family_not_supported),
                concat({"join_multicast_group ", group.host(), ": the interface ", where.host(),
                        " is not an IPv4 address"}));
        }
        ip_mreq m{};
        m.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(g)->sin_addr;
        m.imr_interface.s_addr = htonl(INADDR_ANY);
        if (where.family() == address_family::ipv4) {
            m.imr_interface = reinterpret_cast<const sockaddr_in*>(where.native())->sin_addr;
        }
        if (set_socket_option_bytes(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) == -1) {
            throw_option_error(fd, concat({"IP_ADD_MEMBERSHIP ", group.host()}));
        }
        return;
    }
    if (group.family() == address_family::ipv6) {
        ipv6_mreq m{};
        m.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(g)->sin6_addr;
        if (where.family() == address_family::ipv6) {
            m.ipv6mr_interface = reinterpret_cast<const sockaddr_in6*>(where.native())->sin6_scope_id;
        }
        if (set_socket_option_bytes(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m) == -1) {
            throw_option_error(fd, concat({"IPV6_JOIN_GROUP ", group.host()}));
        }
        return;
    }
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            concat({"join_multicast_group: ", group.to_string(),
                                    " is not an IPv4 or IPv6 group address"}));
}

// The interface multicast datagrams leave by (IP_MULTICAST_IF): an IPv4 interface address,
// or an IPv6 endpoint whose scope id names the interface.
inline void set_multicast_interface(native_socket fd, const endpoint& where) {
    if (where.family() == address_family::ipv4) {
        const in_addr a = reinterpret_cast<const sockaddr_in*>(where.native())->sin_addr;
        if (set_socket_option_bytes(fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) == -1) {
            throw_option_error(fd, concat({"IP_MULTICAST_IF ", where.host()}));
        }
        return;
    }
    if (where.family() == address_family::ipv6) {
        const int index =
            static_cast<int>(reinterpret_cast<const sockaddr_in6*>(where.native())->sin6_scope_id);
        if (set_socket_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, index) == -1) {
            throw_option_error(fd, concat({"IPV6_MULTICAST_IF ", where.host()}));
        }
        return;
    }
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "set_multicast_interface: give an IPv4 or IPv6 interface address");
}

// SO_REUSEPORT where the system has it; Windows has none (SO_REUSEADDR there means
// something else, which asyncio refuses too).
inline void set_reuse_port(native_socket fd, bool on) {
#if defined(SO_REUSEPORT)
    if (set_socket_option(fd, SOL_SOCKET, SO_REUSEPORT, on ? 1 : 0) == -1) {
        throw_option_error(fd, "SO_REUSEPORT");
    }
#else
    (void)on;
    throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                            concat({"setsockopt SO_REUSEPORT on socket ", decimal(fd),
                                    ": this system has no SO_REUSEPORT"}));
#endif
}

}  // namespace detail

class socket {
public:
    // Owns nothing: is_open() is false.
    socket() noexcept = default;

    // Takes ownership of `adopted_fd` (from accept, a socketpair, a parent process) and
    // makes it non-blocking and close-on-exec (POSIX), which the loop relies on. The socket
    // is owned even if that fails: it is closed before the exception leaves.
    explicit socket(native_socket adopted_fd) : fd_(detail::prepare_socket(adopted_fd)) {
        if (fd_ != invalid_socket) return;
        // An invalid one is passed through with no system call to say why.
        const std::error_code ec = adopted_fd == invalid_socket
                                       ? std::make_error_code(std::errc::bad_file_descriptor)
                                       : detail::system_error_code(detail::last_socket_error());
        throw std::system_error(
            ec, detail::concat({"socket: adopting descriptor ", detail::decimal(adopted_fd),
                                " (making it non-blocking and close-on-exec)"}));
    }

    // Takes ownership of a descriptor known to be non-blocking and close-on-exec already
    // (accept4 made it so): no system call.
    static socket adopt_nonblocking(native_socket fd) noexcept {
        socket s;
        s.fd_ = fd;
        return s;
    }

    socket(socket&& other) noexcept : fd_(other.fd_), port_(other.port_) { other.release(); }
    socket& operator=(socket&& other) noexcept {
        if (this != &other) {
            close_quietly();
            port_ = other.port_;
            fd_ = other.release();
        }
        return *this;
    }
    socket(const socket&) = delete;
    socket& operator=(const socket&) = delete;
    ~socket() { close_quietly(); }

    // A new socket of the family and type, non-blocking and close-on-exec (on Windows: not
    // inheritable, and overlapped for the IOCP backend).
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
        detail::start_sockets();
        const native_socket fd = detail::open_socket(domain, kind);
        if (fd == invalid_socket) {
            detail::throw_system_error(detail::last_socket_error(),
                                       detail::concat({"socket ", describe(family, type)}));
        }
        return adopt_nonblocking(fd);
    }

    native_socket fd() const noexcept { return fd_; }
    bool is_open() const noexcept { return fd_ != invalid_socket; }

    // Gives the descriptor up without closing it; the socket is closed (is_open() false).
    native_socket release() noexcept {
        const native_socket fd = fd_;
        fd_ = invalid_socket;
        port_ = {};
        return fd;
    }

    // The IOCP loop this socket's completions go to (detail::port_binding).
    detail::port_binding& port_binding() noexcept { return port_; }

    // Closes now; a closed socket stays closed (a second close does nothing). An error
    // other than EINTR (EBADF: someone closed our fd behind our back) is thrown.
    void close() {
        const native_socket fd = release();
        if (fd == invalid_socket) return;
        // EINTR is not retried: Linux (and POSIX 2024's reading) has released the fd by
        // then, and a retry could close a descriptor another thread just opened.
        if (detail::close_socket(fd) == -1) {
            const int err = detail::last_socket_error();
            if (!detail::interrupted(err)) {
                detail::throw_system_error(err,
                                           detail::concat({"close socket ", detail::decimal(fd)}));
            }
        }
    }

    // Binds to `address`. A Unix path that exists fails with EADDRINUSE: nothing is
    // unlinked here, since removing a file is the caller's decision, not the socket's.
    void bind(const endpoint& address) {
        if (::bind(fd_, address.native(), address.native_size()) == -1)
            detail::throw_system_error(detail::last_socket_error(),
                                       detail::concat({"bind ", address.to_string()}));
    }

    // asyncio's default backlog is 100; the kernel may cap it (somaxconn).
    void listen(int backlog = 100) {
        if (::listen(fd_, backlog) == -1)
            detail::throw_system_error(detail::last_socket_error(),
                                       detail::concat({"listen on socket ", detail::decimal(fd_)}));
    }

    // The next connection on the listening socket `listener_fd`, non-blocking and
    // close-on-exec (and SO_NOSIGPIPE where that exists), with its peer's address in
    // `peer` / `size`. On failure a closed socket, with detail::last_socket_error() saying
    // why (detail::would_block: none pending).
    static socket accept_on(native_socket listener_fd, sockaddr_storage& peer,
                            socklen_t& size) noexcept {
        size = sizeof peer;
        return adopt_nonblocking(
            detail::accept_socket(listener_fd, reinterpret_cast<sockaddr*>(&peer), &size));
    }

    void set_reuse_address(bool on) { set_flag(SOL_SOCKET, SO_REUSEADDR, on, "SO_REUSEADDR"); }
    // SO_REUSEPORT: several sockets bound to one port, the kernel spreading what comes in.
    // Windows has no such option: std::system_error(errc::operation_not_supported).
    void set_reuse_port(bool on) { detail::set_reuse_port(fd_, on); }
    void set_keep_alive(bool on) { set_flag(SOL_SOCKET, SO_KEEPALIVE, on, "SO_KEEPALIVE"); }
    // SO_BROADCAST: datagrams to a broadcast address (refused with EACCES without it).
    void set_broadcast(bool on) { set_flag(SOL_SOCKET, SO_BROADCAST, on, "SO_BROADCAST"); }
    // Joins a multicast group; `where` (the interface) as detail::join_multicast says.
    void join_multicast_group(const endpoint& group, const endpoint& where = endpoint()) {
        detail::join_multicast(fd_, group, where);
    }
    // The interface this socket's multicast datagrams leave by.
    void set_multicast_interface(const endpoint& where) {
        detail::set_multicast_interface(fd_, where);
    }
    void set_no_delay(bool on) { set_flag(IPPROTO_TCP, TCP_NODELAY, on, "TCP_NODELAY"); }
    // An IPv6 socket that takes IPv6 only, so that "::" and "0.0.0.0" can both be bound.
    void set_v6_only(bool on) { set_flag(IPPROTO_IPV6, IPV6_V6ONLY, on, "IPV6_V6ONLY"); }

    // stream or datagram (SO_TYPE); errc::protocol_not_supported for another type.
    socket_type type() const {
        int kind = 0;
        if (detail::get_socket_option(fd_, SOL_SOCKET, SO_TYPE, kind) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getsockopt SO_TYPE on socket ", detail::decimal(fd_)}));
        if (kind == SOCK_STREAM) return socket_type::stream;
        if (kind == SOCK_DGRAM) return socket_type::datagram;
        throw std::system_error(std::make_error_code(std::errc::protocol_not_supported),
                                detail::concat({"socket ", detail::decimal(fd_),
                                                " is neither a stream nor a datagram socket"}));
    }

    endpoint local_endpoint() const {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getsockname on socket ", detail::decimal(fd_)}));
        return endpoint::from_native(reinterpret_cast<const sockaddr*>(&addr), size);
    }

    endpoint remote_endpoint() const {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getpeername on socket ", detail::decimal(fd_)}));
        return endpoint::from_native(reinterpret_cast<const sockaddr*>(&addr), size);
    }

    // The socket's pending error (SO_ERROR), cleared by reading it: how a non-blocking
    // connect reports its outcome once the socket turns writable (or, on Windows, failed).
    // Empty when none.
    std::error_code pending_error() const {
        int err = 0;
        if (detail::get_socket_option(fd_, SOL_SOCKET, SO_ERROR, err) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getsockopt SO_ERROR on socket ", detail::decimal(fd_)}));
        return err == 0 ? std::error_code() : detail::system_error_code(err);
    }

private:
    void set_flag(int level, int name, bool on, std::string_view option) {
        if (detail::set_socket_option(fd_, level, name, on ? 1 : 0) == -1)
            detail::throw_option_error(fd_, option);
    }

    void close_quietly() noexcept {
        // A destructor cannot report; EINTR is not retried for the reason close() gives.
        if (fd_ != invalid_socket) detail::close_socket(fd_);
        fd_ = invalid_socket;
        port_ = {};
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

    native_socket fd_ = invalid_socket;
    [[no_unique_address]] detail::port_binding port_;
};

IOLOOP_NAMESPACE_END

#endif
