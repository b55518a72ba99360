// ioloop: the stream transport of the readiness backends (epoll, poll, select, kqueue): a
// connected socket, or a descriptor that is not one (a pipe, a FIFO, a terminal: POSIX
// only), its protocol, and the bytes the descriptor did not take yet.
//
// The two differ only in how the bytes move, chosen at start: a socket with recv / send
// (MSG_NOSIGNAL), a pipe with read / write (SIGPIPE held off per write, detail/pipe_io.hpp),
// one way only, and a pipe's write_eof closes it. Everything else (buffering, flow control,
// the close path) is the same code.
//
// It holds no read buffer of its own: a plain protocol's bytes land in the loop's shared
// buffer, a buffered protocol's in the protocol's (stream_core::receive). Its write buffer
// exists only while a write is partly sent. So an idle connection costs this object and
// its protocol, nothing more.
#ifndef IOLOOP_NET_REACTIVE_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_REACTIVE_SOCKET_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/pipe_io.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class socket_transport final : public stream_core<socket_transport> {
    using core = transport_core<socket_transport, transport, base_protocol>;
    friend core;
    friend stream_core<socket_transport>;

public:
    // Takes the connected socket and the protocol, watches the socket and calls
    // connection_made. If watching fails, the socket is closed, the protocol dropped
    // without a callback, and the error thrown. `server`: the server that accepted it.
    static socket_transport& start(loop_base& loop, socket sock, owned_stream_protocol p,
                                   connection_counter* server) {
        return core::start(loop, sock.release(), std::move(p), server, descriptor_kind::socket,
                           false);
    }

    // Takes `fd`, a descriptor that is not a socket (checked by net/pipe_transport.hpp),
    // already non-blocking and close-on-exec, and the protocol, as start() does; `kind` is
    // read_pipe or write_pipe. `watch_hangup`: a write pipe watches its descriptor for
    // readability, which only the reader going away causes (a pipe or a FIFO opened for
    // writing alone; asyncio's trick), so an idle pipe learns it too.
    static socket_transport& start_pipe(loop_base& loop, native_socket fd, descriptor_kind kind,
                                        bool watch_hangup, owned_stream_protocol p) {
        return core::start(loop, fd, std::move(p), nullptr, kind, watch_hangup);
    }

private:
    // The bytes a partial send left, and how many of them went out since.
    struct pending_writes {
        std::string data;
        std::size_t sent = 0;
        std::size_t size() const noexcept { return data.size() - sent; }
    };

    socket_transport(loop_base& loop, native_socket fd, owned_stream_protocol p,
                     connection_counter* server, descriptor_kind kind, bool watch_hangup) noexcept
        : stream_core(loop, fd, std::move(p), server), kind_(kind), watch_hangup_(watch_hangup) {}
    ~socket_transport() override = default;

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept {
        const bool read = kind_ == descriptor_kind::write_pipe ? watch_hangup_ : wants_to_read();
        const bool write = pending_ || sendfile_wants_writable();
        return (read ? unsigned(backend::io_read) : 0u) |
               (write ? unsigned(backend::io_write) : 0u);
    }
    std::size_t buffered() const noexcept { return pending_ ? pending_->size() : 0; }
    void drop_buffer() noexcept { pending_.reset(); }

    // A socket's addresses; a pipe has only its descriptor, as asyncio's extra "pipe".
    extra_info extra(std::string_view name) const {
        if (kind_ == descriptor_kind::socket) return core::extra(name);
        return name == "pipe" ? extra_info(fd_) : extra_info();
    }

    std::string describe() const override {
        if (kind_ == descriptor_kind::socket) return core::describe();
        return concat({"the transport of pipe ", decimal(fd_)});
    }

    // ---- what stream_core asks of us ----------------------------------------------------

    bool has_write_buffer() const noexcept { return pending_ != nullptr; }
    bool reads() const noexcept { return kind_ != descriptor_kind::write_pipe; }
    bool writes() const noexcept { return kind_ != descriptor_kind::read_pipe; }

    // Sends what the socket takes now; the rest waits for writability in pending_.
    void send_or_buffer(std::string_view data) {
        if (!pending_) {
            const std::ptrdiff_t n = send_some(data);
            if (n < 0) return;  // a fatal error closed the transport
            data.remove_prefix(static_cast<std::size_t>(n));
            if (data.empty()) return;
            pending_ = std::make_unique<pending_writes>();
            update_watch();
            if (lost_) return;  // the backend could not watch for writability
        }
        pending_->data.append(data);
        maybe_pause_protocol();
    }

    // ---- events -------------------------------------------------------------------------

    void on_io(unsigned events) noexcept override {
        if ((events & backend::io_read) && (watched_ & backend::io_read)) {
            // A write pipe readable: its reader went away (see start_pipe).
            if (kind_ == descriptor_kind::write_pipe) {
                force_close(std::make_error_code(std::errc::broken_pipe));
                return;
            }
            read_ready();
        }
        if ((events & backend::io_write) && pending_ && !lost_) write_ready();
        if ((events & backend::io_write) && !pending_ && !lost_ && sendfile_wants_writable()) {
            sendfile_writable();
        }
    }

    // A plain socket's descriptor, for sendfile(2); a pipe's is none.
    native_socket sendfile_socket() const noexcept override {
        return kind_ == descriptor_kind::socket ? fd_ : invalid_socket;
    }

    void read_ready() noexcept {
        receive([this](std::span<char> buffer) noexcept {
            std::ptrdiff_t n;
            int err = 0;
            do {
                n = recv_bytes(buffer.data(), buffer.size());
                if (n == -1) err = last_socket_error();
            } while (n == -1 && interrupted(err));
            if (n == -1 && !would_block(err)) force_close(system_error_code(err));
            return n;
        });
    }

    void write_ready() noexcept {
        const std::string_view rest = std::string_view(pending_->data).substr(pending_->sent);
        const std::ptrdiff_t n = send_some(rest);
        if (n <= 0) return;  // would block, or a fatal error closed the transport
        pending_->sent += static_cast<std::size_t>(n);
        if (pending_->size() == 0) {
            pending_.reset();
            update_watch();
            writes_done();
            return;
        }
        // Sent bytes are dropped once they are half the buffer: each byte moves at most
        // once more, however the sends split.
        if (pending_->sent >= pending_->data.size() / 2) {
            pending_->data.erase(0, pending_->sent);
            pending_->sent = 0;
        }
        maybe_resume_protocol();
    }

    // One send of what it can take: the count (0 if it would block), or -1 after a fatal
    // error, which has closed the transport.
    std::ptrdiff_t send_some(std::string_view data) noexcept {
        for (;;) {
            const std::ptrdiff_t n = send_bytes(data.data(), data.size());
            if (n >= 0) return n;
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (would_block(err)) return 0;
            force_close(system_error_code(err));
            return -1;
        }
    }

    // The bytes' one system call each way: a branch on the kind, no extra call for sockets.
    std::ptrdiff_t recv_bytes(char* into, std::size_t size) noexcept {
#if defined(IOLOOP_POSIX)
        if (kind_ != descriptor_kind::socket) return read_descriptor(fd_, into, size);
#endif
        return socket_recv(fd_, into, size);
    }
    std::ptrdiff_t send_bytes(const char* data, std::size_t size) noexcept {
#if defined(IOLOOP_POSIX)
        if (kind_ != descriptor_kind::socket) return write_without_sigpipe(fd_, data, size);
#endif
        return socket_send(fd_, data, size);
    }

    void shutdown_write() noexcept {
        // A pipe has no half-close: its write_eof closes it once the bytes are out (asyncio).
        if (kind_ != descriptor_kind::socket) {
            start_closing();
            return;
        }
        if (shutdown_send(fd_) == 0) return;
        // ENOTCONN: the peer is gone already; reading will tell the protocol.
        const std::error_code ec = system_error_code(last_socket_error());
        if (ec != std::errc::not_connected) force_close(ec);
    }

    // First: they fit in stream_core's tail padding, so a socket's transport is no larger.
    descriptor_kind kind_;
    bool watch_hangup_;  // a write pipe: readability means its reader went away
    std::unique_ptr<pending_writes> pending_;  // only while a write is partly sent
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
