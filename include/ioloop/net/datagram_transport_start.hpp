// ioloop: the datagram transport for a datagram socket, of the kind the loop's backend
// needs: datagram_socket_transport on a readiness backend, overlapped_datagram_transport
// on a completion backend (IOCP, Windows only).
#ifndef IOLOOP_NET_DATAGRAM_TRANSPORT_START_HPP
#define IOLOOP_NET_DATAGRAM_TRANSPORT_START_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/datagram_socket_transport.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/overlapped_datagram_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"

#include <memory>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Takes the socket and the protocol, and calls connection_made (see
// datagram_socket_transport::start).
inline datagram_transport& start_datagram_transport(loop_base& loop, socket sock,
                                                    std::unique_ptr<datagram_protocol> p) {
#if defined(IOLOOP_HAS_IOCP)
    if (!net_access::has_readiness(loop))
        return overlapped_datagram_transport::start(loop, std::move(sock), std::move(p));
#endif
    return datagram_socket_transport::start(loop, std::move(sock), std::move(p));
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
