// ioloop: the stream transport for a connected socket, of the kind the loop's backend
// needs: socket_transport on a readiness backend, overlapped_socket_transport on a
// completion backend (IOCP, Windows only).
#ifndef IOLOOP_NET_STREAM_TRANSPORT_HPP
#define IOLOOP_NET_STREAM_TRANSPORT_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/overlapped_socket_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/socket_transport.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/transport.hpp"

#include <memory>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Takes the socket and the protocol, and calls connection_made (see socket_transport::
// start). `server`: the server that accepted the connection, if any.
inline transport& start_stream_transport(loop_base& loop, socket sock, owned_stream_protocol p,
                                         connection_counter* server) {
#if defined(IOLOOP_HAS_IOCP)
    if (!net_access::has_readiness(loop))
        return overlapped_socket_transport::start(loop, std::move(sock), std::move(p), server);
#endif
    return socket_transport::start(loop, std::move(sock), std::move(p), server);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
