// ioloop: loop.create_server and loop.create_unix_server (asyncio's): listening sockets
// with the defaults users expect (SO_REUSEADDR on POSIX, a backlog of 100), serving at once.
#ifndef IOLOOP_NET_CREATE_SERVER_HPP
#define IOLOOP_NET_CREATE_SERVER_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/create_connection.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/getaddrinfo.hpp"
#include "ioloop/net/server.hpp"
#include "ioloop/net/socket.hpp"

#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A listening socket bound to `address`.
inline socket listen_on(const endpoint& address, int backlog) {
    socket s = socket::open(address.family(), socket_type::stream);
    if (listen_with_reuse_address && address.family() != address_family::unix_domain)
        s.set_reuse_address(true);
    // Binding "::" must not take the IPv4 port too: "0.0.0.0" is bound separately.
    if (address.family() == address_family::ipv6) s.set_v6_only(true);
    s.bind(address);
    s.listen(backlog);
    return s;
}

// What makes a listener of loop's family.
inline auto make_listener(loop_base& loop) {
    return [&loop](server_state& state, socket& s) {
        return with_family(loop, [&](auto ops) { return ops.listen(state, s); });
    };
}

template <class = void>
coro<server> create_tcp_server(loop_base& loop, protocol_factory factory, std::string host,
                               std::uint16_t port, int backlog) {
    // No host: every interface, IPv4 and IPv6 (where the system has IPv6), as asyncio.
    const bool any_host = host.empty();
    std::vector<endpoint> addresses;
    if (any_host) {
        addresses = {endpoint::ip("0.0.0.0", port), endpoint::ip("::", port)};
    } else {
        addresses = co_await loop.getaddrinfo(host, port, socket_type::stream);
    }
    auto& state = *new server_state(loop, std::move(factory), backlog);
    server handle(&state);  // owns it from here: closes it if a bind fails
    for (const endpoint& address : addresses) {
        try {
            state.add_listener(listen_on(address, backlog), {}, make_listener(loop));
        } catch (const std::system_error& e) {
            const bool no_ipv6 = e.code() == std::errc::address_family_not_supported ||
                                 e.code() == std::errc::address_not_available;
            if (!(any_host && address.family() == address_family::ipv6 && no_ipv6)) throw;
        }
    }
    state.start_serving();
    co_return handle;
}

template <class = void>
coro<server> create_unix_server(loop_base& loop, protocol_factory factory, std::string path,
                                int backlog) {
    const endpoint address = endpoint::unix_path(path);
    // A socket file left by an earlier run would make bind fail: asyncio removes it. Only
    // a socket is removed, never a regular file; an abstract name has no file.
    const bool has_file = !path.empty() && path.front() != '\0';
    if (has_file) remove_stale_socket_file(path.c_str());
    auto& state = *new server_state(loop, std::move(factory), backlog);
    server handle(&state);  // owns it from here: closes it if a bind fails
    state.add_listener(listen_on(address, backlog), has_file ? path : std::string(),
                       make_listener(loop));
    state.start_serving();
    co_return handle;
}

}  // namespace detail

template <class Factory>
coro<server> loop_base::create_server(Factory factory, std::string host, std::uint16_t port,
                                      int backlog) {
    check_open("create_server");
    return detail::create_tcp_server(*this, detail::protocol_factory(std::move(factory)),
                                     std::move(host), port, backlog);
}

template <class Factory>
coro<server> loop_base::create_unix_server(Factory factory, std::string path, int backlog) {
    check_open("create_unix_server");
    return detail::create_unix_server(*this, detail::protocol_factory(std::move(factory)),
                                      std::move(path), backlog);
}

IOLOOP_NAMESPACE_END

#endif
