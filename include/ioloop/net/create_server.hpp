// ioloop: loop.create_server and loop.create_unix_server (asyncio's): listening sockets
// with the defaults users expect (SO_REUSEADDR on POSIX, a backlog of 100), serving at once,
// or as serve_options say; and the sock= form, serving a socket bound already.
#ifndef IOLOOP_NET_CREATE_SERVER_HPP
#define IOLOOP_NET_CREATE_SERVER_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/create_connection.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/getaddrinfo.hpp"
#include "ioloop/net/serve_options.hpp"
#include "ioloop/net/server.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/start_tls.hpp"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A listening socket bound to `address`, with the options' socket options.
inline socket listen_on(const endpoint& address, const serve_options& o) {
    socket s = socket::open(address.family(), socket_type::stream);
    if (address.family() != address_family::unix_domain) {
        if (o.reuse_address) s.set_reuse_address(true);
        if (o.reuse_port) s.set_reuse_port(true);
    }
    // Binding "::" must not take the IPv4 port too: "0.0.0.0" is bound separately.
    if (address.family() == address_family::ipv6) s.set_v6_only(true);
    s.bind(address);
    s.listen(o.backlog);
    return s;
}

// What makes a listener of loop's family.
inline auto make_listener(loop_base& loop) {
    return [&loop](server_state& state, socket& s) {
        return with_family(loop, [&](auto ops) { return ops.listen(state, s); });
    };
}

// Every address of the hosts, each once: an empty host is every interface, IPv4 and
// IPv6 (where the system has IPv6), as asyncio. `any_host` says which are those.
template <class = void>
coro<std::vector<endpoint>> server_addresses(loop_base& loop, std::vector<std::string> hosts,
                                             std::uint16_t port, std::vector<bool>& any_host) {
    std::vector<endpoint> addresses;
    const auto add = [&](const endpoint& a, bool any) {
        for (const endpoint& b : addresses) {
            if (a == b) return;
        }
        addresses.push_back(a);
        any_host.push_back(any);
    };
    for (const std::string& host : hosts) {
        if (host.empty()) {
            add(endpoint::ip("0.0.0.0", port), true);
            add(endpoint::ip("::", port), true);
            continue;
        }
        const std::vector<endpoint> found =
            co_await loop.getaddrinfo(host, port, socket_type::stream);
        for (const endpoint& a : found) add(a, false);
    }
    co_return addresses;
}

// A server's factory: the protocol factory as it is, or each protocol under a TLS layer of
// its own when the options have ssl.
template <class Factory>
protocol_factory serving_factory(loop_base& loop, Factory factory, const serve_options& o) {
    protocol_factory plain(std::move(factory));
    if (!o.ssl) return plain;
    return tls_server_factory(loop, std::move(plain), o);
}

template <class = void>
coro<server> create_tcp_server(loop_base& loop, protocol_factory factory,
                               std::vector<std::string> hosts, std::uint16_t port,
                               serve_options o) {
    std::vector<bool> any_host;
    const std::vector<endpoint> addresses =
        co_await server_addresses(loop, std::move(hosts), port, any_host);
    auto& state = *new server_state(loop, std::move(factory), o.backlog);
    server handle(&state);  // owns it from here: closes it if a bind fails
    state.set_keep_alive(o.keep_alive);
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        const endpoint& address = addresses[i];
        try {
            state.add_listener(listen_on(address, o), {}, make_listener(loop));
        } catch (const std::system_error& e) {
            const bool no_ipv6 = e.code() == std::errc::address_family_not_supported ||
                                 e.code() == std::errc::address_not_available;
            if (!(any_host[i] && address.family() == address_family::ipv6 && no_ipv6)) throw;
        }
    }
    if (o.start_serving) state.start_serving();
    co_return handle;
}

// A socket bound already (asyncio's sock=): listened on with the options' backlog, as
// asyncio does (harmless on a socket listening already, such as systemd's).
template <class = void>
coro<server> serve_socket(loop_base& loop, protocol_factory factory, socket s, serve_options o) {
    s.listen(o.backlog);
    auto& state = *new server_state(loop, std::move(factory), o.backlog);
    server handle(&state);
    state.set_keep_alive(o.keep_alive);
    state.add_listener(std::move(s), {}, make_listener(loop));
    if (o.start_serving) state.start_serving();
    co_return handle;
}

// What create_server(sock) refuses before it starts: a socket it cannot serve, and the
// options that only apply to sockets it binds itself.
inline void check_listening_socket(const socket& s, const serve_options& o, const char* what) {
    if (!s.is_open()) throw std::invalid_argument(concat({what, ": the socket is not open"}));
    if (s.type() != socket_type::stream) {
        throw std::invalid_argument(concat({what, ": the socket is not a stream socket"}));
    }
    if (o.reuse_port || (o.hosts && !o.hosts->empty())) {
        throw std::invalid_argument(
            concat({what, ": reuse_port and hosts do not apply to sock= (bound already)"}));
    }
}

// The hosts a create_server call listens on: host, unless it is empty and options.hosts
// are given, then those. A copy: the options point to the caller's vector.
inline std::vector<std::string> hosts_of(std::string host, const serve_options& o) {
    std::vector<std::string> hosts;
    if (!host.empty() || !o.hosts) hosts.push_back(std::move(host));
    if (o.hosts) hosts.insert(hosts.end(), o.hosts->begin(), o.hosts->end());
    return hosts;
}

template <class = void>
coro<server> create_unix_server(loop_base& loop, protocol_factory factory, std::string path,
                                serve_options o) {
    const endpoint address = endpoint::unix_path(path);
    // A socket file left by an earlier run would make bind fail: asyncio removes it. Only
    // a socket is removed, never a regular file; an abstract name has no file.
    const bool has_file = !path.empty() && path.front() != '\0';
    if (has_file) remove_stale_socket_file(path.c_str());
    auto& state = *new server_state(loop, std::move(factory), o.backlog);
    server handle(&state);  // owns it from here: closes it if a bind fails
    state.add_listener(listen_on(address, o), has_file ? path : std::string(),
                       make_listener(loop));
    if (o.start_serving) state.start_serving();
    co_return handle;
}

}  // namespace detail

template <class Factory>
coro<server> loop_base::create_server(Factory factory, std::string host, std::uint16_t port,
                                      int backlog) {
    serve_options o;
    o.backlog = backlog;
    return create_server(std::move(factory), std::move(host), port, o);
}

template <class Factory>
coro<server> loop_base::create_server(Factory factory, std::string host, std::uint16_t port,
                                      const serve_options& options) {
    check_open("create_server");
    detail::check_serve_options(options, "create_server");
    std::vector<std::string> hosts = detail::hosts_of(std::move(host), options);
    serve_options o = options;
    o.hosts = nullptr;  // copied into hosts
    return detail::create_tcp_server(*this, detail::serving_factory(*this, std::move(factory), o),
                                     std::move(hosts), port, o);
}

template <class Factory>
coro<server> loop_base::create_server(Factory factory, socket sock) {
    return create_server(std::move(factory), std::move(sock), serve_options{});
}

template <class Factory>
coro<server> loop_base::create_server(Factory factory, socket sock, const serve_options& options) {
    check_open("create_server");
    detail::check_serve_options(options, "create_server");
    detail::check_listening_socket(sock, options, "create_server");
    serve_options o = options;
    o.hosts = nullptr;
    return detail::serve_socket(*this, detail::serving_factory(*this, std::move(factory), o),
                                std::move(sock), o);
}

template <class Factory>
coro<server> loop_base::create_unix_server(Factory factory, std::string path, int backlog) {
    serve_options o;
    o.backlog = backlog;
    return create_unix_server(std::move(factory), std::move(path), o);
}

template <class Factory>
coro<server> loop_base::create_unix_server(Factory factory, std::string path,
                                           const serve_options& options) {
    check_open("create_unix_server");
    detail::check_serve_options(options, "create_unix_server");
    if (options.hosts && !options.hosts->empty()) {
        throw std::invalid_argument("create_unix_server: hosts do not apply to a Unix socket");
    }
    serve_options o = options;
    o.hosts = nullptr;
    return detail::create_unix_server(*this, detail::serving_factory(*this, std::move(factory), o),
                                      std::move(path), o);
}

IOLOOP_NAMESPACE_END

#endif
