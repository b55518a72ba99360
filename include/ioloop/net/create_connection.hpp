// ioloop: loop.create_connection and loop.create_unix_connection (asyncio's): connect a
// socket without blocking the loop, then hand it to a transport and the factory's
// protocol; and its sock= form and connect_accepted_socket, over a socket already connected.
// The connect part (detail::connect_any, net/happy_eyeballs.hpp) serves the streams too.
#ifndef IOLOOP_NET_CREATE_CONNECTION_HPP
#define IOLOOP_NET_CREATE_CONNECTION_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/connect_options.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/getaddrinfo.hpp"
#include "ioloop/net/happy_eyeballs.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/serve_options.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/start_tls.hpp"

#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
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

// The transport and protocol over a connected socket.
template <class P, class Factory>
std::pair<transport*, P*> start_connected(loop_base& loop, Factory& factory, socket s) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    transport& t = with_family(loop, [&](auto ops) -> transport& {
        return ops.start_stream(loop, std::move(s), std::move(proto), nullptr);
    });
    return std::pair<transport*, P*>(&t, p);
}

// The transport and protocol over a connected socket, with TLS between them if `tls`
// makes layers (then once its handshake is done).
template <class P, class Factory>
coro<std::pair<transport*, P*>> start_over(loop_base& loop, Factory& factory, socket s,
                                           tls_layer_factory tls) {
    if (tls) co_return co_await start_tls_connected<P>(loop, factory, std::move(s), std::move(tls));
    co_return start_connected<P>(loop, factory, std::move(s));
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> start_connection(loop_base& loop, Factory factory,
                                                 std::vector<endpoint> addresses,
                                                 connect_options o, const char* what,
                                                 tls_layer_factory tls = {}) {
    socket s = co_await connect_any(loop, std::move(addresses), o, what);
    co_return co_await start_over<P>(loop, factory, std::move(s), std::move(tls));
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> create_connection(loop_base& loop, Factory factory,
                                                  std::string host, std::uint16_t port,
                                                  connect_options o, tls_layer_factory tls) {
    std::vector<endpoint> addresses = co_await loop.getaddrinfo(host, port, socket_type::stream);
    co_return co_await start_connection<P>(loop, std::move(factory), std::move(addresses), o,
                                           "create_connection", std::move(tls));
}

// The layers' maker of a client's connection, made at the call so that options TLS cannot
// work with are refused before anything is opened; empty without ssl. `host` is checked
// against the server's certificate unless server_hostname names another.
inline tls_layer_factory client_tls(const connect_options& o, const char* host) {
    if (!o.ssl) return {};
    return o.ssl.layer_factory(client_tls_options(o, host));
}

// An already connected stream socket (asyncio's sock=, connect_accepted_socket), checked
// before the coroutine starts: the caller learns of a wrong socket at the call.
inline void check_connected_stream(const socket& s, const char* what) {
    if (!s.is_open()) throw std::invalid_argument(concat({what, ": the socket is not open"}));
    if (s.type() != socket_type::stream) {
        throw std::invalid_argument(concat({what, ": the socket is not a stream socket"}));
    }
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> adopt_connection(loop_base& loop, Factory factory, socket s,
                                                 tls_layer_factory tls) {
    co_return co_await start_over<P>(loop, factory, std::move(s), std::move(tls));
}

}  // namespace detail

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::string host, std::uint16_t port) {
    return create_connection(std::move(factory), std::move(host), port, connect_options{});
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::string host, std::uint16_t port, const connect_options& options) {
    check_open("create_connection");
    detail::check_connect_options(options, "create_connection");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls = detail::client_tls(options, host.c_str());
    return detail::create_connection<P>(*this, std::move(factory), std::move(host), port,
                                        options, std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::vector<endpoint> addresses, const connect_options& options) {
    check_open("create_connection");
    detail::check_connect_options(options, "create_connection");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls = detail::client_tls(options, nullptr);
    return detail::start_connection<P>(*this, std::move(factory), std::move(addresses), options,
                                       "create_connection", std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, socket sock, const connect_options& options) {
    check_open("create_connection");
    detail::check_connect_options(options, "create_connection");
    // What chooses and connects an address has no part with a connected socket (asyncio
    // refuses host and local_addr with sock).
    if (options.local_addr.family() != address_family::unspecified) {
        throw std::invalid_argument("create_connection: local_addr with sock= (already connected)");
    }
    detail::check_connected_stream(sock, "create_connection");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls = detail::client_tls(options, nullptr);
    return detail::adopt_connection<P>(*this, std::move(factory), std::move(sock), std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, socket sock) {
    return create_connection(std::move(factory), std::move(sock), connect_options{});
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_accepted_socket(
    Factory factory, socket sock) {
    return connect_accepted_socket(std::move(factory), std::move(sock), serve_options{});
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_accepted_socket(
    Factory factory, socket sock, const serve_options& options) {
    check_open("connect_accepted_socket");
    detail::check_serve_options(options, "connect_accepted_socket");
    detail::check_connected_stream(sock, "connect_accepted_socket");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls;
    if (options.ssl) tls = options.ssl.layer_factory(detail::server_tls_options(options));
    return detail::adopt_connection<P>(*this, std::move(factory), std::move(sock), std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_unix_connection(
    Factory factory, std::string path) {
    check_open("create_unix_connection");
    using P = detail::protocol_of<Factory>;
    std::vector<endpoint> addresses{endpoint::unix_path(path)};
    return detail::start_connection<P>(*this, std::move(factory), std::move(addresses),
                                       connect_options{}, "create_unix_connection");
}

IOLOOP_NAMESPACE_END

#endif
