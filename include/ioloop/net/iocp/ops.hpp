// ioloop: iocp_ops, what the networking layer asks of the completion family (IOCP): its
// transports, its connect and its listeners. Plain functions, compiled only where a
// program uses them; net/engines.hpp (with_family) is the one place that picks them.
#ifndef IOLOOP_NET_IOCP_OPS_HPP
#define IOLOOP_NET_IOCP_OPS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/iocp/listener.hpp"
#include "ioloop/net/iocp/overlapped_datagram_transport.hpp"
#include "ioloop/net/iocp/overlapped_sock_ops.hpp"
#include "ioloop/net/iocp/overlapped_socket_transport.hpp"
#include "ioloop/net/iocp/pipe_io.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/server_state.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/transport.hpp"

#if defined(IOLOOP_WINDOWS)

#include <memory>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct iocp_ops {
    // As reactive_ops'. The socket's completions go to this loop's port first, unless a
    // connect or a sock_* operation saw to it already.
    static transport& start_stream(loop_base& loop, socket s, owned_stream_protocol p,
                                   connection_counter* server) {
        associate_once(loop, s);
        return overlapped_socket_transport::start(loop, std::move(s), std::move(p), server);
    }

    static datagram_transport& start_datagram(loop_base& loop, socket s,
                                              std::unique_ptr<datagram_protocol> p) {
        associate_once(loop, s);
        return overlapped_datagram_transport::start(loop, std::move(s), std::move(p));
    }

    // ConnectEx.
    static coro<void> connect(loop_base& loop, socket& s, endpoint to, const char* what) {
        return overlapped_connect(loop, s, std::move(to), what);
    }

    // A pipe transport over an overlapped named pipe's handle (connect_read_pipe,
    // connect_write_pipe): checks the handle (net/iocp/pipe_io.hpp), sends its
    // completions to this loop's port and starts the transport (connection_made). On
    // failure the handle is closed, the protocol dropped without a callback, and the error
    // thrown.
    static transport& start_pipe(loop_base& loop, owned_descriptor h, descriptor_kind kind,
                                 owned_stream_protocol p) {
        check_pipe_handle(h.get(), pipe_call(kind));
        iocp_io& io = iocp_io::of(loop);
        io.make_quiet_event();
        io.associate_pipe(h.get(), pipe_call(kind));
        return overlapped_socket_transport::start_pipe(loop, h.release(), kind, std::move(p));
    }

    static std::unique_ptr<server_listener> listen(server_state& server, socket& s) {
        return std::make_unique<iocp_listener>(server, s, &start_stream);
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
