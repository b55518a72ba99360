// ioloop: the loop's awaitable socket operations (sock_recv, sock_sendall, sock_accept,
// sock_connect, sock_recvfrom, sock_sendto) on a completion backend. Each tries the
// non-blocking call first, as the readiness side does, so data already there costs no
// overlapped operation; only WSAEWOULDBLOCK starts one (detail::overlapped_call).
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_SOCK_OPS_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_SOCK_OPS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/iocp/overlapped_accept.hpp"
#include "ioloop/net/iocp/overlapped_call.hpp"
#include "ioloop/net/socket.hpp"

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// One WSABUF over bytes the caller owns; Winsock counts in ULONG.
inline WSABUF wsa_buffer(const void* data, std::size_t size) noexcept {
    WSABUF b;
    b.buf = static_cast<char*>(const_cast<void*>(data));
    b.len = size > ULONG_MAX ? ULONG_MAX : static_cast<ULONG>(size);
    return b;
}

template <class = void>
coro<std::size_t> overlapped_recv_into(loop_base& loop, socket& s, std::span<std::byte> buf) {
    const native_socket fd = s.fd();
    const int len = buf.size() > INT_MAX ? INT_MAX : static_cast<int>(buf.size());
    const int n = ::recv(fd, reinterpret_cast<char*>(buf.data()), len, 0);
    if (n >= 0) co_return static_cast<std::size_t>(n);
    const int err = ::WSAGetLastError();
    if (err != WSAEWOULDBLOCK) throw_overlapped_error(err, "sock_recv", fd);
    associate_once(loop, s);
    WSABUF b = wsa_buffer(buf.data(), buf.size());
    auto start = [fd, &b](OVERLAPPED* o) {
        DWORD flags = 0;
        return started(::WSARecv(fd, &b, 1, nullptr, &flags, o, nullptr));
    };
    const overlapped_result r = co_await overlapped_call(loop, fd, start);
    // A graceful close by the peer is a completion of 0 bytes, as recv's 0 is.
    if (r.error != 0 && r.error != WSAEDISCON) throw_overlapped_error(r.error, "sock_recv", fd);
    co_return r.bytes;
}

template <class = void>
coro<void> overlapped_sendall(loop_base& loop, socket& s, std::string_view data) {
    const native_socket fd = s.fd();
    while (!data.empty()) {
        const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
        const int n = ::send(fd, data.data(), len, 0);
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        const int err = ::WSAGetLastError();
        if (err != WSAEWOULDBLOCK) throw_overlapped_error(err, "sock_sendall", fd);
        // The kernel's buffer is full: one overlapped send of all the rest, which
        // completes once Winsock has taken every byte.
        associate_once(loop, s);
        WSABUF b = wsa_buffer(data.data(), data.size());
        auto start = [fd, &b](OVERLAPPED* o) {
            return started(::WSASend(fd, &b, 1, nullptr, 0, o, nullptr));
        };
        const overlapped_result r = co_await overlapped_call(loop, fd, start);
        if (r.error != 0) throw_overlapped_error(r.error, "sock_sendall", fd);
        data.remove_prefix(r.bytes);
    }
}

template <class = void>
coro<std::pair<socket, endpoint>> overlapped_accept(loop_base& loop, socket& listener) {
    const native_socket lfd = listener.fd();
    associate_once(loop, listener);
    for (;;) {
        socket conn = socket::open(family_of(lfd), socket_type::stream);
        accept_buffer addresses;
        const native_socket cfd = conn.fd();
        auto start = [lfd, cfd, &addresses](OVERLAPPED* o) {
            return start_accept(lfd, cfd, addresses, o);
        };
        const overlapped_result r = co_await overlapped_call(loop, lfd, start);
        // The client gave up before we took its connection: take the next.
        if (r.error == WSAECONNRESET || r.error == ERROR_NETNAME_DELETED) continue;
        if (r.error != 0) throw_overlapped_error(r.error, "sock_accept", lfd);
        update_accept_context(lfd, cfd);
        endpoint peer = addresses.peer();
        co_return std::pair<socket, endpoint>(std::move(conn), std::move(peer));
    }
}

// ConnectEx is an extension: Winsock hands out its address on request, once.
inline LPFN_CONNECTEX connect_ex(native_socket s) {
    static LPFN_CONNECTEX fn = nullptr;
    if (fn) return fn;
    GUID id = WSAID_CONNECTEX;
    DWORD size = 0;
    LPFN_CONNECTEX found = nullptr;
    if (::WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &found, sizeof found,
                   &size, nullptr, nullptr) != 0)
        throw_overlapped_error(::WSAGetLastError(), "WSAIoctl(ConnectEx)", s);
    fn = found;
    return fn;
}

// ConnectEx wants a bound socket: bind to the wildcard address of to's family unless
// the caller bound it already.
inline void bind_for_connect(native_socket s, const endpoint& to) {
    sockaddr_storage mine{};
    int size = sizeof mine;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&mine), &size) == 0) return;
    sockaddr_storage any{};
    any.ss_family = static_cast<ADDRESS_FAMILY>(to.native()->sa_family);
    const int any_size = any.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::bind(s, reinterpret_cast<sockaddr*>(&any), any_size) != 0)
        throw_overlapped_error(::WSAGetLastError(), "bind before ConnectEx", s);
}

template <class = void>
coro<void> overlapped_connect(loop_base& loop, socket& s, endpoint to, const char* what) {
    const native_socket fd = s.fd();
    bind_for_connect(fd, to);
    associate_once(loop, s);
    LPFN_CONNECTEX connect = connect_ex(fd);
    auto start = [fd, connect, &to](OVERLAPPED* o) {
        if (connect(fd, to.native(), static_cast<int>(to.native_size()), nullptr, 0, nullptr, o))
            return 0ul;
        const int err = ::WSAGetLastError();
        return err == ERROR_IO_PENDING ? 0ul : static_cast<unsigned long>(err);
    };
    const overlapped_result r = co_await overlapped_call(loop, fd, start);
    if (r.error != 0) {
        throw std::system_error(system_error_code(r.error),
                                concat({what, " to ", to.to_string()}));
    }
    // Until told, the socket does not know it is connected (getpeername, shutdown).
    if (::setsockopt(fd, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0)
        throw_overlapped_error(::WSAGetLastError(), "SO_UPDATE_CONNECT_CONTEXT", fd);
}

// One datagram into buf (the caller's: it outlives the operation, as sock_recvfrom_into
// asks), and its sender.
template <class = void>
coro<std::pair<std::size_t, endpoint>> overlapped_recvfrom_into(loop_base& loop, socket& s,
                                                               std::span<std::byte> buf) {
    const native_socket fd = s.fd();
    char* into = reinterpret_cast<char*>(buf.data());
    sockaddr_storage addr{};
    int size = sizeof addr;
    auto* native = reinterpret_cast<sockaddr*>(&addr);
    const int len = buf.size() > INT_MAX ? INT_MAX : static_cast<int>(buf.size());
    int n = ::recvfrom(fd, into, len, 0, native, &size);
    if (n < 0) {
        const int err = ::WSAGetLastError();
        if (err != WSAEWOULDBLOCK) throw_overlapped_error(err, "sock_recvfrom", fd);
        associate_once(loop, s);
        WSABUF b = wsa_buffer(into, buf.size());
        size = sizeof addr;
        auto start = [fd, &b, native, &size](OVERLAPPED* o) {
            DWORD flags = 0;
            return started(::WSARecvFrom(fd, &b, 1, nullptr, &flags, native, &size, o, nullptr));
        };
        const overlapped_result r = co_await overlapped_call(loop, fd, start);
        if (r.error != 0) throw_overlapped_error(r.error, "sock_recvfrom", fd);
        n = static_cast<int>(r.bytes);
    }
    endpoint from = size <= 0 ? endpoint() : endpoint::from_native(native, size);
    co_return std::pair<std::size_t, endpoint>(static_cast<std::size_t>(n), std::move(from));
}

template <class = void>
coro<std::size_t> overlapped_sendto(loop_base& loop, socket& s, std::string_view data,
                                    endpoint to) {
    const native_socket fd = s.fd();
    const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
    const int n =
        ::sendto(fd, data.data(), len, 0, to.native(), static_cast<int>(to.native_size()));
    if (n >= 0) co_return static_cast<std::size_t>(n);
    const int err = ::WSAGetLastError();
    if (err != WSAEWOULDBLOCK) {
        throw_system_error(err, concat({"sock_sendto ", to.to_string(), " on socket ",
                                        decimal(static_cast<long long>(fd))}));
    }
    associate_once(loop, s);
    WSABUF b = wsa_buffer(data.data(), data.size());
    auto start = [fd, &b, &to](OVERLAPPED* o) {
        return started(::WSASendTo(fd, &b, 1, nullptr, 0, to.native(),
                                   static_cast<int>(to.native_size()), o, nullptr));
    };
    const overlapped_result r = co_await overlapped_call(loop, fd, start);
    if (r.error != 0) throw_overlapped_error(r.error, "sock_sendto", fd);
    co_return r.bytes;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
