// ioloop: loop.create_connection and loop.create_unix_connection (asyncio's): connect a
// socket without blocking the loop, then hand it to a transport and the factory's
// protocol. The connect part (detail::connect_any) serves the streams too.
#ifndef IOLOOP_NET_CREATE_CONNECTION_HPP
#define IOLOOP_NET_CREATE_CONNECTION_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/getaddrinfo.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Factory, class Base>
constexpr void check_factory() {
    static_assert(std::is_base_of_v<Base, protocol_of<Factory>>,
                  "the protocol factory must return std::unique_ptr<P>, with P derived from "
                  "ioloop::datagram_protocol");
}

// A socket of to's family connected to `to` (TCP_NODELAY on for TCP), the way the loop's
// backend family connects (the same path as loop.sock_connect).
template <class = void>
coro<socket> connect_socket(loop_base& loop, endpoint to) {
    socket s = socket::open(to.family(), socket_type::stream);
    if (to.family() != address_family::unix_domain) s.set_no_delay(true);
    co_await with_family(loop, [&](auto ops) { return ops.connect(loop, s, to, "connect"); });
    co_return s;
}

// The first of `addresses` that accepts a connection, tried in order (asyncio's
// sequential attempts); if none does, the last attempt's error.
template <class = void>
coro<socket> connect_any(loop_base& loop, std::vector<endpoint> addresses) {
    std::exception_ptr failure;
    for (endpoint& to : addresses) {
        try {
            co_return co_await connect_socket(loop, std::move(to));
        } catch (const std::system_error&) {
            failure = std::current_exception();
        }
    }
    if (failure) std::rethrow_exception(failure);
    throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                            "connect: the host has no address");
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> start_connection(loop_base& loop, Factory factory,
                                                 std::vector<endpoint> addresses) {
    socket s = co_await connect_any(loop, std::move(addresses));
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    transport& t = with_family(loop, [&](auto ops) -> transport& {
        return ops.start_stream(loop, std::move(s), std::move(proto), nullptr);
    });
    co_return std::pair<transport*, P*>(&t, p);
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> create_connection(loop_base& loop, Factory factory,
                                                  std::string host, std::uint16_t port) {
    std::vector<endpoint> addresses = co_await loop.getaddrinfo(host, port, socket_type::stream);
    co_return co_await start_connection<P>(loop, std::move(factory), std::move(addresses));
}

}  // namespace detail

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::string host, std::uint16_t port) {
    check_open("create_connection");
    using P = detail::protocol_of<Factory>;
    return detail::create_connection<P>(*this, std::move(factory), std::move(host), port);
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_unix_connection(
    Factory factory, std::string path) {
    check_open("create_unix_connection");
    using P = detail::protocol_of<Factory>;
    std::vector<endpoint> addresses{endpoint::unix_path(path)};
    return detail::start_connection<P>(*this, std::move(factory), std::move(addresses));
}

IOLOOP_NAMESPACE_END

#endif
