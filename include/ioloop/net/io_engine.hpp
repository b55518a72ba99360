// ioloop: io_engine, how a loop moves bytes: the one thing that differs between the
// backend families. A readiness backend (epoll, kqueue, poll, select) tells when a
// descriptor is ready, and the engine then makes the call (net/reactive/); a completion
// backend (IOCP) runs overlapped operations whose buffers the kernel owns until they
// complete (net/iocp/). Everything above it (transports' protocol-facing rules, servers,
// connections, streams) is written once against this interface.
//
// Each basic_event_loop<Backend> owns the engine of Backend's family, chosen in one place
// (net/engines.hpp), and loop_base keeps a pointer to it: its one member for I/O. A third
// family (io_uring) is one more engine.
#ifndef IOLOOP_NET_IO_ENGINE_HPP
#define IOLOOP_NET_IO_ENGINE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"

#include <cstddef>
#include <memory>
#include <span>

IOLOOP_NAMESPACE_BEGIN

class loop_base;

namespace detail {

class connection_counter;  // net/stream_core.hpp
class server_state;        // net/server_state.hpp
class server_listener;     // net/server_state.hpp

class io_engine {
public:
    // How much one read takes at most: libuv's 64 KiB.
    static constexpr std::size_t read_buffer_size = 64 * 1024;

    io_engine(const io_engine&) = delete;
    io_engine& operator=(const io_engine&) = delete;

    // ---- what each family does its own way ---------------------------------------------

    // A transport for a connected stream socket: takes the socket and the protocol, calls
    // connection_made. If the backend cannot take the socket, the socket is closed, the
    // protocol dropped without a callback, and the error thrown. `server`: the server that
    // accepted the connection, if any.
    virtual transport& start_stream(loop_base& loop, socket s, std::unique_ptr<protocol> p,
                                    connection_counter* server) = 0;
    // The same for a datagram socket.
    virtual datagram_transport& start_datagram(loop_base& loop, socket s,
                                               std::unique_ptr<datagram_protocol> p) = 0;
    // Connects s to `to`, waiting for the handshake; `what` begins the error's message.
    virtual coro<void> connect(loop_base& loop, socket& s, endpoint to, const char* what) = 0;
    // Accepts on a listening socket of the server's, once told to serve.
    virtual std::unique_ptr<server_listener> listen(server_state& server, socket& s) = 0;

    // Readiness, for what waits on a descriptor it does not own (add_reader, wait_readable,
    // the sock_* operations) or watches its own (the readiness transports): runs `n` each
    // time fd is readable (io_read) or writable (io_write), replacing an earlier one.
    // Takes the node's one reference, also when it throws. A completion engine cannot
    // wait for readiness and says so.
    virtual void add_watch(native_socket fd, unsigned which, callback_node* n,
                           const char* what) = 0;
    // True if fd had one for `which`.
    virtual bool remove_watch(native_socket fd, unsigned which) = 0;
    // A descriptor the networking layer owns, registered for w (old -> now; 0 unwatches).
    virtual void watch(native_socket fd, unsigned old_events, unsigned new_events,
                       io_watcher& w) = 0;

    // ---- what every family keeps alike ------------------------------------------------

    // Where every transport of the loop reads into: an idle connection holds no buffer.
    std::span<char> read_buffer() {
        if (!read_buffer_) read_buffer_ = std::make_unique<char[]>(read_buffer_size);
        return {read_buffer_.get(), read_buffer_size};
    }

    // The open transports and servers, closed with the loop.
    void add_resource(loop_resource& r) noexcept { resources_.add(r); }
    void remove_resource(loop_resource& r) noexcept { resources_.remove(r); }
    void close_resources() noexcept { resources_.close_all(); }

protected:
    io_engine() = default;
    ~io_engine() = default;

private:
    resource_list resources_;
    std::unique_ptr<char[]> read_buffer_;  // made on first use
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
