// ioloop: loop.create_datagram_endpoint (asyncio's): a UDP or Unix datagram socket,
// bound to a local address, connected to a remote one, or both, with a transport and the
// factory's protocol.
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
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"

#include <memory>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A datagram socket bound to `local` and connected to `remote`, where given.
inline socket open_datagram_socket(const endpoint& local, const endpoint& remote) {
    const bool has_local = local.family() != address_family::unspecified;
    const bool has_remote = remote.family() != address_family::unspecified;
    if (!has_local && !has_remote) {
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "create_datagram_endpoint: give a local or a remote address");
    }
    if (has_local && has_remote && local.family() != remote.family()) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            concat({"create_datagram_endpoint: ", local.to_string(), " and ", remote.to_string(),
                    " are of different families"}));
    }
    socket s = socket::open(has_local ? local.family() : remote.family(), socket_type::datagram);
    if (has_local) s.bind(local);
    // A datagram connect only records the peer: it does not wait for anything.
    if (has_remote && ::connect(s.fd(), remote.native(), remote.native_size()) == -1) {
        throw_system_error(last_socket_error(),
                           concat({"create_datagram_endpoint: connect to ", remote.to_string()}));
    }
    return s;
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> create_datagram_endpoint(loop_base& loop,
                                                                  Factory factory,
                                                                  endpoint local,
                                                                  endpoint remote) {
    socket s = open_datagram_socket(local, remote);
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    datagram_transport& t = with_family(loop, [&](auto ops) -> datagram_transport& {
        return ops.start_datagram(loop, std::move(s), std::move(proto));
    });
    co_return std::pair<datagram_transport*, P*>(&t, p);
}

}  // namespace detail

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, endpoint local, endpoint remote) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint<P>(*this, std::move(factory), std::move(local),
                                               std::move(remote));
}

IOLOOP_NAMESPACE_END

#endif
