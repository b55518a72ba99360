// ioloop: the loop's awaitable socket operations (asyncio's loop.sock_recv, sock_sendall,
// sock_accept, sock_connect, sock_recvfrom, sock_sendto). On the readiness backends each
// tries its syscall first, as asyncio does: data that is already there costs no loop
// iteration. Only EAGAIN (WSAEWOULDBLOCK) makes the task wait (fd_ready), after which the
// call is retried.
// A completion backend has its own versions (detail::overlapped_ops).
#ifndef IOLOOP_NET_SOCK_OPS_HPP
#define IOLOOP_NET_SOCK_OPS_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/fd_ready.hpp"
#include "ioloop/net/socket.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The completion backends' versions (IOCP: net/overlapped_sock_ops.hpp).
template <class Backend>
struct overlapped_ops;

[[noreturn]] inline void throw_sock_error(int err, std::string_view op, native_socket fd) {
    throw_system_error(err, concat({op, " on socket ", decimal(fd)}));
}

}  // namespace detail

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_recv_into(socket& s, std::span<std::byte> buf) {
    if constexpr (backend::completion_backend<Backend>) {
        co_return co_await detail::overlapped_ops<Backend>::recv_into(*this, s, buf);
    } else {
        for (;;) {
            auto* into = reinterpret_cast<char*>(buf.data());
            const std::ptrdiff_t n = detail::socket_recv(s.fd(), into, buf.size());
            if (n >= 0) co_return static_cast<std::size_t>(n);
            const int err = detail::last_socket_error();
            if (detail::interrupted(err)) continue;
            if (!detail::would_block(err)) detail::throw_sock_error(err, "sock_recv", s.fd());
            co_await detail::fd_ready<basic_event_loop>(*this, s.fd(), backend::io_read);
        }
    }
}

template <class Backend>
coro<std::string> basic_event_loop<Backend>::sock_recv(socket& s, std::size_t max_bytes) {
    // Like asyncio, a buffer of the full size per call: the caller chose max_bytes.
    std::string data(max_bytes, '\0');
    const std::size_t n = co_await sock_recv_into(s, std::as_writable_bytes(std::span(data)));
    data.resize(n);
    co_return data;
}

template <class Backend>
coro<void> basic_event_loop<Backend>::sock_sendall(socket& s, std::string_view data) {
    if constexpr (backend::completion_backend<Backend>) {
        co_return co_await detail::overlapped_ops<Backend>::sendall(*this, s, data);
    } else {
        while (!data.empty()) {
            const std::ptrdiff_t n = detail::socket_send(s.fd(), data.data(), data.size());
            if (n >= 0) {
                // A partial send: the kernel's buffer is full; the rest goes once it drains.
                data.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            const int err = detail::last_socket_error();
            if (detail::interrupted(err)) continue;
            if (!detail::would_block(err)) detail::throw_sock_error(err, "sock_sendall", s.fd());
            co_await detail::fd_ready<basic_event_loop>(*this, s.fd(), backend::io_write);
        }
    }
}

template <class Backend>
coro<std::pair<socket, endpoint>> basic_event_loop<Backend>::sock_accept(socket& listener) {
    if constexpr (backend::completion_backend<Backend>) {
        co_return co_await detail::overlapped_ops<Backend>::accept(*this, listener);
    } else {
        for (;;) {
            sockaddr_storage addr{};
            socklen_t size = 0;
            socket conn = socket::accept_on(listener.fd(), addr, size);
            if (conn.is_open()) {
                endpoint peer = size == 0 ? endpoint()
                                          : endpoint::from_native(
                                                reinterpret_cast<const sockaddr*>(&addr), size);
                co_return std::pair<socket, endpoint>(std::move(conn), std::move(peer));
            }
            const int err = detail::last_socket_error();
            // The client gave up before we took its connection; take the next.
            if (detail::accept_again(err)) continue;
            if (!detail::would_block(err)) {
                detail::throw_sock_error(err, "sock_accept", listener.fd());
            }
            co_await detail::fd_ready<basic_event_loop>(*this, listener.fd(), backend::io_read);
        }
    }
}

template <class Backend>
coro<void> basic_event_loop<Backend>::sock_connect(socket& s, endpoint to) {
    if constexpr (backend::completion_backend<Backend>) {
        co_return co_await detail::overlapped_ops<Backend>::connect(*this, s, std::move(to));
    } else {
        if (::connect(s.fd(), to.native(), to.native_size()) == 0) co_return;
        const int err = detail::last_socket_error();
        // The handshake runs on (see connect_pending): asyncio waits for writability, then
        // reads the outcome from SO_ERROR.
        if (!detail::connect_pending(err)) {
            detail::throw_system_error(err, detail::concat({"sock_connect to ", to.to_string()}));
        }
        co_await detail::fd_ready<basic_event_loop>(*this, s.fd(), backend::io_write);
        if (const std::error_code ec = s.pending_error()) {
            throw std::system_error(ec, detail::concat({"sock_connect to ", to.to_string()}));
        }
    }
}

template <class Backend>
coro<std::pair<std::string, endpoint>> basic_event_loop<Backend>::sock_recvfrom(
    socket& s, std::size_t max_bytes) {
    if constexpr (backend::completion_backend<Backend>) {
        co_return co_await detail::overlapped_ops<Backend>::recvfrom(*this, s, max_bytes);
    } else {
        std::string data(max_bytes, '\0');
        for (;;) {
            sockaddr_storage addr{};
            socklen_t size = sizeof addr;
            auto* native = reinterpret_cast<sockaddr*>(&addr);
            const std::ptrdiff_t n =
                detail::socket_recvfrom(s.fd(), data.data(), data.size(), native, &size);
            if (n >= 0) {
                data.resize(static_cast<std::size_t>(n));
                // No address (a connected stream socket, an unnamed Unix peer on some systems):
                // the sender is unspecified rather than an error.
                endpoint from = size == 0 ? endpoint() : endpoint::from_native(native, size);
                co_return std::pair<std::string, endpoint>(std::move(data), std::move(from));
            }
            const int err = detail::last_socket_error();
            if (detail::interrupted(err)) continue;
            if (!detail::would_block(err)) detail::throw_sock_error(err, "sock_recvfrom", s.fd());
            co_await detail::fd_ready<basic_event_loop>(*this, s.fd(), backend::io_read);
        }
    }
}

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_sendto(socket& s, std::string_view data,
                                                         endpoint to) {
    if constexpr (backend::completion_backend<Backend>) {
        co_return co_await detail::overlapped_ops<Backend>::sendto(*this, s, data, std::move(to));
    } else {
        for (;;) {
            const std::ptrdiff_t n = detail::socket_sendto(s.fd(), data.data(), data.size(),
                                                           to.native(), to.native_size());
            if (n >= 0) co_return static_cast<std::size_t>(n);
            const int err = detail::last_socket_error();
            if (detail::interrupted(err)) continue;
            if (!detail::would_block(err)) {
                detail::throw_system_error(
                    err, detail::concat({"sock_sendto ", to.to_string(), " on socket ",
                                         detail::decimal(s.fd())}));
            }
            co_await detail::fd_ready<basic_event_loop>(*this, s.fd(), backend::io_write);
        }
    }
}

IOLOOP_NAMESPACE_END

#endif
