// ioloop: reactive_ops, what the networking layer asks of the readiness family (epoll,
// kqueue, poll, select): its transports, its connect and its listeners. Plain functions,
// compiled only where a program uses them: a loop that never touches the network pays
// nothing for them. net/engines.hpp (with_family) is the one place that picks them.
#ifndef IOLOOP_NET_REACTIVE_OPS_HPP
#define IOLOOP_NET_REACTIVE_OPS_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/reactive/datagram_socket_transport.hpp"
#include "ioloop/net/descriptor_check.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/fd_ready.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/reactive/listener.hpp"
#include "ioloop/net/server_state.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/reactive/socket_transport.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/transport.hpp"

#include <memory>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct reactive_ops {
    // A transport for a connected stream socket: takes the socket and the protocol, calls
    // connection_made. If the backend cannot take the socket, the socket is closed, the
    // protocol dropped without a callback, and the error thrown. `server`: the server that
    // accepted the connection, if any.
    static transport& start_stream(loop_base& loop, socket s, owned_stream_protocol p,
                                   connection_counter* server) {
        return socket_transport::start(loop, std::move(s), std::move(p), server);
    }

    // The same for a datagram socket.
    static datagram_transport& start_datagram(loop_base& loop, socket s,
                                              std::unique_ptr<datagram_protocol> p) {
        return datagram_socket_transport::start(loop, std::move(s), std::move(p));
    }

    // Connects s to `to`, asyncio's way: a non-blocking connect, then writability, then
    // SO_ERROR. `what` begins the error's message.
    template <class = void>
    static coro<void> connect(loop_base& loop, socket& s, endpoint to, const char* what) {
        if (::connect(s.fd(), to.native(), to.native_size()) == 0) co_return;
        const int err = last_socket_error();
        // The handshake goes on (see connect_pending). The outcome is in SO_ERROR once the
        // socket is writable, or (Windows) once select reports the connect failed.
        if (!connect_pending(err)) throw_system_error(err, concat({what, " to ", to.to_string()}));
        co_await fd_ready(loop, s.fd(), backend::io_write, what);
        if (const std::error_code ec = s.pending_error()) {
            throw std::system_error(ec, concat({what, " to ", to.to_string()}));
        }
    }

    // A pipe transport (connect_read_pipe, connect_write_pipe): checks the descriptor,
    // makes it non-blocking and close-on-exec, and starts the transport (connection_made).
    // On failure the descriptor is closed, the protocol dropped without a callback, and
    // the error thrown. (Windows' select refuses every pipe in the check.)
    static transport& start_pipe(loop_base& loop, owned_descriptor fd, descriptor_kind kind,
                                 owned_stream_protocol p) {
        const pipe_descriptor d = check_pipe_descriptor(fd.get(), pipe_call(kind));
#if defined(IOLOOP_POSIX)
        try {
            set_nonblocking_cloexec(fd.get());
        } catch (const std::system_error& e) {
            throw std::system_error(
                e.code(), concat({pipe_call(kind), ": fd ", decimal(fd.get()),
                                  " (making it non-blocking and close-on-exec)"}));
        }
#endif
        const bool watch_hangup = kind == descriptor_kind::write_pipe && d.reader_gone_is_readable;
        return socket_transport::start_pipe(loop, descriptor_as_socket(fd.release()), kind,
                                            watch_hangup, std::move(p));
    }

    // Accepts on a listening socket of the server's, once told to serve.
    static std::unique_ptr<server_listener> listen(server_state& server, socket& s) {
        return std::make_unique<reactive_listener>(server, s.fd(), &start_stream);
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
