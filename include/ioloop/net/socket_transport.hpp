// ioloop: the stream transport of the readiness backends (epoll, poll, select): a
// connected socket, its protocol, and the bytes the socket did not take yet.
//
// It is its own io_watcher, so an event reaches it without a lookup, and its protocol runs
// right inside the poll step. It reads into the loop's shared buffer and holds no read
// buffer of its own; its write buffer exists only while a write is partly sent. So an
// idle connection costs this object and its protocol, nothing more.
//
// connection_lost always runs on a later iteration (a posted callback), never inside a
// call the protocol made; the object is freed only there, so an event still to come in
// the same poll batch never reaches freed memory.
#ifndef IOLOOP_NET_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_SOCKET_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"

#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <cstddef>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A server counts its connections (wait_closed waits for them to end).
class connection_counter {
public:
    virtual void connection_opened() noexcept = 0;
    virtual void connection_closed() noexcept = 0;

protected:
    connection_counter() = default;
    connection_counter(const connection_counter&) = default;
    connection_counter& operator=(const connection_counter&) = default;
    ~connection_counter() = default;
};

// Checks asyncio's rule for set_write_buffer_limits and fills in the missing one.
inline write_buffer_limits resolve_write_limits(std::size_t high, std::size_t low) {
    if (high == base_transport::unset) {
        high = low == base_transport::unset ? default_write_high_water : 4 * low;
    }
    if (low == base_transport::unset) low = high / 4;
    if (low > high) {
        throw std::invalid_argument(concat({"set_write_buffer_limits: high (", decimal(high),
                                            ") must be >= low (", decimal(low), ")"}));
    }
    return {low, high};
}

// Reports an exception a protocol's callback threw; `hook` names the callback.
inline void report_protocol_error(loop_base& loop, std::string_view hook) noexcept {
    try {
        loop.call_exception_handler(
            {concat({"Fatal error: protocol.", hook, "() call failed."}), std::current_exception(),
             {}});
    } catch (...) {
    }
}

class socket_transport final : public transport, private io_watcher {
public:
    // Takes the connected socket and the protocol, watches the socket and calls
    // connection_made. If watching fails (the backend cannot take the descriptor), the
    // socket is closed, the protocol is dropped without a callback, and the error thrown.
    static socket_transport& start(loop_base& loop, socket sock, std::unique_ptr<protocol> p,
                                   connection_counter* server) {
        auto* t = new socket_transport(loop, sock.fd(), std::move(p), server);
        sock.release();
        try {
            t->update_watch_or_throw();
        } catch (...) {
            ::close(t->fd_);
            delete t;
            throw;
        }
        socket_transport& self = *t;
        net_access::add_resource(loop, self);
        if (server) server->connection_opened();
        try {
            self.protocol_->connection_made(self);
        } catch (...) {
            self.protocol_failed("connection_made");
        }
        return self;
    }

    // ---- transport ----------------------------------------------------------------------

    void write(std::string_view data) override {
        if (user_closed_) throw invalid_state_error("transport::write: the transport is closed");
        if (eof_requested_) throw invalid_state_error("transport::write: write_eof() was called");
        if (data.empty() || lost_) return;  // lost to an error: connection_lost reports it
        if (!pending_) {
            const ::ssize_t n = send_some(data);
            if (n < 0) return;  // a fatal error closed the transport
            data.remove_prefix(static_cast<std::size_t>(n));
            if (data.empty()) return;
            pending_ = std::make_unique<pending_writes>();
            update_watch();
        }
        pending_->data.append(data);
        maybe_pause_protocol();
    }

    void write_eof() override {
        if (closing_ || eof_requested_) return;
        eof_requested_ = true;
        if (!pending_) shutdown_write();
    }
    bool can_write_eof() const noexcept override { return true; }

    void close() override {
        user_closed_ = true;
        start_closing();
    }

    void abort() override {
        user_closed_ = true;
        force_close({});
    }

    bool is_closing() const noexcept override { return closing_; }

    void pause_reading() override {
        if (closing_ || reading_paused_) return;
        reading_paused_ = true;
        update_watch();
    }
    void resume_reading() override {
        if (closing_ || !reading_paused_) return;
        reading_paused_ = false;
        update_watch();
    }
    bool is_reading() const noexcept override { return !reading_paused_ && !closing_; }

    std::size_t get_write_buffer_size() const noexcept override {
        return pending_ ? pending_->size() : 0;
    }
    void set_write_buffer_limits(std::size_t high, std::size_t low) override {
        const write_buffer_limits limits = resolve_write_limits(high, low);
        high_ = limits.high;
        low_ = limits.low;
        maybe_pause_protocol();
    }
    write_buffer_limits get_write_buffer_limits() const noexcept override {
        return {low_, high_};
    }

    extra_info get_extra_info(std::string_view name) const override {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        auto* native = reinterpret_cast<sockaddr*>(&addr);
        int rc = -1;
        if (name == "socket") return extra_info(fd_);
        if (name == "peername") rc = ::getpeername(fd_, native, &size);
        if (name == "sockname") rc = ::getsockname(fd_, native, &size);
        // An unnamed Unix socket has an address of just its family: nothing to say.
        if (rc == -1 || size <= static_cast<socklen_t>(sizeof(sa_family_t))) return {};
        return extra_info(endpoint::from_native(native, size));
    }

private:
    // The bytes a partial send left, and how many of them went out since.
    struct pending_writes {
        std::string data;
        std::size_t sent = 0;
        std::size_t size() const noexcept { return data.size() - sent; }
    };

    socket_transport(loop_base& loop, int fd, std::unique_ptr<protocol> p,
                     connection_counter* server) noexcept
        : loop_(loop), protocol_(std::move(p)), server_(server), fd_(fd) {}
    ~socket_transport() override = default;

    // ---- events -------------------------------------------------------------------------

    void on_io(unsigned events) noexcept override {
        if ((events & backend::io_read) && (watched_ & backend::io_read)) read_ready();
        if ((events & backend::io_write) && pending_ && !lost_) write_ready();
    }

    void read_ready() noexcept {
        const std::span<char> buffer = net_access::read_buffer(loop_);
        ::ssize_t n;
        do {
            n = ::recv(fd_, buffer.data(), buffer.size(), 0);
        } while (n == -1 && errno == EINTR);
        if (n > 0) {
            try {
                protocol_->data_received(std::string_view(buffer.data(), std::size_t(n)));
            } catch (...) {
                protocol_failed("data_received");
            }
        } else if (n == 0) {
            eof_received();
        } else if (!would_block(errno)) {
            force_close(std::error_code(errno, std::generic_category()));
        }
    }

    void eof_received() noexcept {
        eof_received_ = true;
        update_watch();
        bool keep_open = false;
        try {
            keep_open = protocol_->eof_received();
        } catch (...) {
            protocol_failed("eof_received");
            return;
        }
        if (!keep_open) start_closing();
    }

    void write_ready() noexcept {
        const ::ssize_t n = send_some(std::string_view(pending_->data).substr(pending_->sent));
        if (n <= 0) return;  // would block, or a fatal error closed the transport
        pending_->sent += static_cast<std::size_t>(n);
        if (pending_->size() == 0) {
            pending_.reset();
            update_watch();
            maybe_resume_protocol();
            if (closing_) {
                schedule_connection_lost({});
            } else if (eof_requested_) {
                shutdown_write();
            }
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
    ::ssize_t send_some(std::string_view data) noexcept {
        for (;;) {
            const ::ssize_t n = ::send(fd_, data.data(), data.size(), send_flags);
            if (n >= 0) return n;
            if (errno == EINTR) continue;
            if (would_block(errno)) return 0;
            force_close(std::error_code(errno, std::generic_category()));
            return -1;
        }
    }

    void shutdown_write() noexcept {
        // ENOTCONN: the peer is gone already; reading will tell the protocol.
        if (::shutdown(fd_, SHUT_WR) == -1 && errno != ENOTCONN) {
            force_close(std::error_code(errno, std::generic_category()));
        }
    }

    // ---- flow control -------------------------------------------------------------------

    void maybe_pause_protocol() noexcept {
        if (protocol_paused_ || get_write_buffer_size() <= high_) return;
        protocol_paused_ = true;
        try {
            protocol_->pause_writing();
        } catch (...) {
            report_protocol_error(loop_, "pause_writing");
        }
    }

    void maybe_resume_protocol() noexcept {
        if (!protocol_paused_ || get_write_buffer_size() > low_) return;
        protocol_paused_ = false;
        try {
            protocol_->resume_writing();
        } catch (...) {
            report_protocol_error(loop_, "resume_writing");
        }
    }

    // ---- closing ------------------------------------------------------------------------

    // Stops reading; connection_lost follows once the buffered bytes are sent.
    void start_closing() noexcept {
        if (closing_) return;
        closing_ = true;
        update_watch();
        if (!pending_ && !lost_) schedule_connection_lost({});
    }

    // Drops the buffered bytes; connection_lost(ec) follows.
    void force_close(std::error_code ec) noexcept {
        if (lost_) return;
        pending_.reset();
        closing_ = true;
        schedule_connection_lost(ec);
    }

    void protocol_failed(std::string_view hook) noexcept {
        report_protocol_error(loop_, hook);
        force_close(std::make_error_code(std::errc::connection_aborted));
    }

    void schedule_connection_lost(std::error_code ec) noexcept {
        lost_ = true;
        update_watch();  // unwatches: nothing more comes in or goes out
        try {
            loop_access::post(loop_, [this, ec] { finish(ec); });
        } catch (...) {
            // No memory for the callback: the transport stays a resource of the loop, and
            // closing the loop frees it.
        }
    }

    void finish(std::error_code ec) noexcept {
        try {
            protocol_->connection_lost(ec);
        } catch (...) {
            report_protocol_error(loop_, "connection_lost");
        }
        destroy();
    }

    void destroy() noexcept {
        net_access::remove_resource(loop_, *this);
        if (server_) server_->connection_closed();
        ::close(fd_);
        delete this;
    }

    void on_loop_close() noexcept override {
        lost_ = true;
        update_watch();
        if (server_) server_->connection_closed();
        ::close(fd_);
        delete this;
    }

    // ---- the backend registration -------------------------------------------------------

    unsigned wanted_events() const noexcept {
        if (lost_) return 0;
        unsigned events = 0;
        if (!closing_ && !reading_paused_ && !eof_received_) events |= backend::io_read;
        if (pending_) events |= backend::io_write;
        return events;
    }

    void update_watch_or_throw() {
        const unsigned want = wanted_events();
        if (want == watched_) return;
        net_access::watch(loop_, fd_, watched_, want, *this);
        watched_ = static_cast<unsigned char>(want);
    }

    // Failing to change what the backend watches (no memory for epoll's bookkeeping)
    // leaves a connection that would hang: it is closed with the error instead.
    void update_watch() noexcept {
        try {
            update_watch_or_throw();
        } catch (const std::system_error& e) {
            if (!lost_) {
                force_close(e.code());
            } else {
                watched_ = 0;  // unwatching failed: the descriptor is closed right after
            }
        } catch (...) {
            force_close(std::make_error_code(std::errc::not_enough_memory));
        }
    }

    loop_base& loop_;
    std::unique_ptr<protocol> protocol_;
    std::unique_ptr<pending_writes> pending_;  // only while a write is partly sent
    connection_counter* server_;               // the server that accepted it, if any
    std::size_t high_ = default_write_high_water;
    std::size_t low_ = default_write_high_water / 4;
    int fd_;
    unsigned char watched_ = 0;  // the events the backend watches for us
    bool reading_paused_ = false;
    bool eof_received_ = false;
    bool eof_requested_ = false;  // write_eof(): shut down once the buffer is sent
    bool closing_ = false;
    bool user_closed_ = false;  // close() or abort() was called: writing is a bug
    bool protocol_paused_ = false;
    bool lost_ = false;  // connection_lost is scheduled; the socket is unwatched
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
