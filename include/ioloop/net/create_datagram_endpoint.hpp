// ioloop: loop.create_datagram_endpoint (asyncio's): a UDP or Unix datagram socket,
// bound to a local address, connected to a remote one, or both, with a transport and the
// factory's protocol. Addresses are endpoints, or host names resolved through
// loop.getaddrinfo; datagram_options carries asyncio's other arguments.
#ifndef IOLOOP_NET_CREATE_DATAGRAM_ENDPOINT_HPP
#define IOLOOP_NET_CREATE_DATAGRAM_ENDPOINT_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/create_connection.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/getaddrinfo.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// asyncio's create_datagram_endpoint arguments beyond the addresses, for designated
// initializers: {.reuse_port = true, .allow_broadcast = true}. It owns nothing (so a
// braced temporary in a co_await'ed call is safe with g++ 12, see subprocess_options).
struct datagram_options {
    // The family of the socket: with host names, a hint to the resolver; with neither
    // address given, an unbound socket of this family (asyncio's family=).
    address_family family = address_family::unspecified;
    int proto = 0;  // the resolver's hint (IPPROTO_UDP ...), as asyncio's proto=
    int flags = 0;  // the resolver's AI_* flags, as asyncio's flags=
    // SO_REUSEPORT before bind: several endpoints share the port (not on Windows:
    // std::system_error(errc::operation_not_supported), as asyncio's ValueError).
    bool reuse_port = false;
    // SO_BROADCAST: sendto a broadcast address (127.255.255.255, 255.255.255.255).
    bool allow_broadcast = false;
};

namespace detail {

// A datagram socket bound to `local` and connected to `remote`, where given.
inline socket open_datagram_socket(const endpoint& local, const endpoint& remote,
                                   const datagram_options& options = {}) {
    const bool has_local = local.family() != address_family::unspecified;
    const bool has_remote = remote.family() != address_family::unspecified;
    if (!has_local && !has_remote) {
        if (options.family != address_family::unspecified) {
            socket s = socket::open(options.family, socket_type::datagram);
            if (options.reuse_port) s.set_reuse_port(true);
            if (options.allow_broadcast) s.set_broadcast(true);
            return s;
        }
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "create_datagram_endpoint: give a local or a remote address, "
                                "or a family");
    }
    if (has_local && has_remote && local.family() != remote.family()) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            concat({"create_datagram_endpoint: ", local.to_string(), " and ", remote.to_string(),
                    " are of different families"}));
    }
    const address_family family = has_local ? local.family() : remote.family();
    if (options.family != address_family::unspecified && options.family != family) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            concat({"create_datagram_endpoint: ",
                    has_local ? local.to_string() : remote.to_string(),
                    " is not of the family the options ask for"}));
    }
    socket s = socket::open(family, socket_type::datagram);
    if (options.reuse_port) s.set_reuse_port(true);
    if (options.allow_broadcast) s.set_broadcast(true);
    if (has_local) s.bind(local);
    // A datagram connect only records the peer: it does not wait for anything.
    if (has_remote && ::connect(s.fd(), remote.native(), remote.native_size()) == -1) {
        throw_system_error(last_socket_error(),
                           concat({"create_datagram_endpoint: connect to ", remote.to_string()}));
    }
    return s;
}

// A host's addresses for one side: none when the host is empty (that side not given).
template <class = void>
coro<std::vector<address_info>> resolve_datagram_side(loop_base& loop, std::string host,
                                                      std::uint16_t port,
                                                      datagram_options options) {
    if (host.empty()) co_return std::vector<address_info>{};
    co_return co_await loop.getaddrinfo(std::move(host), port, options.family, SOCK_DGRAM,
                                        options.proto, options.flags);
}

// asyncio's pairing: for each remote address in order (each local one when there is no
// remote), a local address of its family; the first pair whose socket opens, binds and
// connects wins, else the last failure is thrown.
inline socket open_resolved_datagram_socket(const std::vector<address_info>& locals,
                                            const std::vector<address_info>& remotes,
                                            const datagram_options& options) {
    std::exception_ptr last;
    auto attempt = [&](const endpoint& l, const endpoint& r) -> socket {
        try {
            return open_datagram_socket(l, r, options);
        } catch (const std::system_error&) {
            last = std::current_exception();
            return socket();
        }
    };
    if (remotes.empty()) {
        for (const address_info& l : locals) {
            socket s = attempt(l.address, endpoint());
            if (s.is_open()) return s;
        }
    } else {
        for (const address_info& r : remotes) {
            if (locals.empty()) {
                socket s = attempt(endpoint(), r.address);
                if (s.is_open()) return s;
                continue;
            }
            for (const address_info& l : locals) {
                if (l.family != r.family) continue;
                socket s = attempt(l.address, r.address);
                if (s.is_open()) return s;
            }
        }
    }
    if (last) std::rethrow_exception(last);
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "create_datagram_endpoint: no local and remote address of one "
                            "family");
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> start_datagram_endpoint(loop_base& loop,
                                                                 Factory& factory, socket s) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    datagram_transport& t = with_family(loop, [&](auto ops) -> datagram_transport& {
        return ops.start_datagram(loop, std::move(s), std::move(proto));
    });
    co_return std::pair<datagram_transport*, P*>(&t, p);
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> create_datagram_endpoint(loop_base& loop,
                                                                  Factory factory,
                                                                  endpoint local,
                                                                  endpoint remote,
                                                                  datagram_options options) {
    socket s = open_datagram_socket(local, remote, options);
    co_return co_await start_datagram_endpoint<P>(loop, factory, std::move(s));
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> create_datagram_endpoint_by_name(
    loop_base& loop, Factory factory, std::string local_host, std::uint16_t local_port,
    std::string remote_host, std::uint16_t remote_port, datagram_options options) {
    if (local_host.empty() && remote_host.empty() &&
        options.family == address_family::unspecified) {
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "create_datagram_endpoint: give a local or a remote host, "
                                "or a family");
    }
    std::vector<address_info> locals =
        co_await resolve_datagram_side(loop, std::move(local_host), local_port, options);
    std::vector<address_info> remotes =
        co_await resolve_datagram_side(loop, std::move(remote_host), remote_port, options);
    socket s = locals.empty() && remotes.empty()
                   ? open_datagram_socket(endpoint(), endpoint(), options)
                   : open_resolved_datagram_socket(locals, remotes, options);
    co_return co_await start_datagram_endpoint<P>(loop, factory, std::move(s));
}

}  // namespace detail

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, endpoint local, endpoint remote) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint<P>(*this, std::move(factory), std::move(local),
                                               std::move(remote), datagram_options{});
}

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, endpoint local, endpoint remote,
                                    datagram_options options) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint<P>(*this, std::move(factory), std::move(local),
                                               std::move(remote), options);
}

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, std::string local_host,
                                    std::uint16_t local_port, std::string remote_host,
                                    std::uint16_t remote_port, datagram_options options) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    detail::refuse_nul(local_host, "local host");
    detail::refuse_nul(remote_host, "remote host");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint_by_name<P>(*this, std::move(factory),
                                                       std::move(local_host), local_port,
                                                       std::move(remote_host), remote_port,
                                                       options);
}

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, std::string local_host,
                                    std::uint16_t local_port, std::string remote_host,
                                    std::uint16_t remote_port) {
    return create_datagram_endpoint(std::move(factory), std::move(local_host), local_port,
                                    std::move(remote_host), remote_port, datagram_options{});
}

IOLOOP_NAMESPACE_END

#endif
