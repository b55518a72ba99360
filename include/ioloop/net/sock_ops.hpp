// ioloop: the loop's awaitable socket operations (asyncio's loop.sock_recv, sock_sendall,
// sock_accept, sock_connect, sock_recvfrom, sock_sendto). Each is its backend family's:
// the loop's engine makes the calls (net/reactive/engine.hpp: try the syscall, wait for
// readiness only on EAGAIN; net/iocp/engine.hpp: overlapped operations).
#ifndef IOLOOP_NET_SOCK_OPS_HPP
#define IOLOOP_NET_SOCK_OPS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/socket.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_recv_into(socket& s, std::span<std::byte> buf) {
    return engine_.sock_recv_into(*this, s, buf);
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
    return engine_.sock_sendall(*this, s, data);
}

template <class Backend>
coro<std::pair<socket, endpoint>> basic_event_loop<Backend>::sock_accept(socket& listener) {
    return engine_.sock_accept(*this, listener);
}

template <class Backend>
coro<void> basic_event_loop<Backend>::sock_connect(socket& s, endpoint to) {
    return engine_.sock_connect(*this, s, std::move(to));
}

template <class Backend>
coro<std::pair<std::size_t, endpoint>> basic_event_loop<Backend>::sock_recvfrom_into(
    socket& s, std::span<std::byte> buf) {
    return engine_.sock_recvfrom_into(*this, s, buf);
}

template <class Backend>
coro<std::pair<std::string, endpoint>> basic_event_loop<Backend>::sock_recvfrom(
    socket& s, std::size_t max_bytes) {
    std::string data(max_bytes, '\0');
    auto [n, from] = co_await sock_recvfrom_into(s, std::as_writable_bytes(std::span(data)));
    data.resize(n);
    co_return std::pair<std::string, endpoint>(std::move(data), std::move(from));
}

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_sendto(socket& s, std::string_view data,
                                                         endpoint to) {
    return engine_.sock_sendto(*this, s, data, std::move(to));
}

IOLOOP_NAMESPACE_END

#endif
