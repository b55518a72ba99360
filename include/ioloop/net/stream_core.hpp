// ioloop: what every stream transport does the same way, whatever moves its bytes: the
// checks of write(), write_eof and the half-close that waits for the buffer, pausing and
// resuming reading, the peer's EOF, what follows when the write buffer empties, and a
// server's count of its connections. Written once for both backend families: Derived
// (socket_transport, overlapped_socket_transport) only moves the bytes.
//
// Derived provides, besides what transport_core asks of it: send_or_buffer(data) (called
// with data to send on an open transport), has_write_buffer(), shutdown_write(). It may
// hide reads() and writes() (both true here): a pipe moves bytes one way only. It reads
// through receive(recv), which decides where the bytes go: a plain protocol's go to the
// loop's shared buffer and on to data_received, a buffered protocol's straight into the
// span its get_buffer lends.
#ifndef IOLOOP_NET_STREAM_CORE_HPP
#define IOLOOP_NET_STREAM_CORE_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/sendfile_gate.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

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

template <class Derived>
class stream_core : public transport_core<Derived, transport, base_protocol> {
    using core = transport_core<Derived, transport, base_protocol>;

public:
    using transport::write;  // the std::span<const std::byte> form
    void write(std::string_view data) final {
        if (!self().writes()) throw_read_only("write");
        if (this->user_closed_) {
            throw invalid_state_error("transport::write: the transport is closed");
        }
        if (eof_requested_) throw invalid_state_error("transport::write: write_eof() was called");
        if (sendfile_active_ && !link_.gate->own_write) {
            throw invalid_state_error("transport::write: loop.sendfile is in progress");
        }
        if (data.empty() || this->lost_) return;  // lost to an error: connection_lost reports it
        self().send_or_buffer(data);
    }

    // The socket's sending side shuts down once the buffered bytes are sent (a pipe has no
    // half-close: it closes then).
    void write_eof() final {
        if (!self().writes()) throw_read_only("write_eof");
        if (this->closing_ || eof_requested_) return;
        eof_requested_ = true;
        if (!self().has_write_buffer()) self().shutdown_write();
    }
    bool can_write_eof() const noexcept final { return self().writes(); }

    // A transport that does not read (a write pipe) has nothing to pause.
    void pause_reading() final {
        if (!self().reads() || this->closing_ || reading_paused_) return;
        reading_paused_ = true;
        this->update_watch();
    }
    void resume_reading() final {
        if (!self().reads() || this->closing_ || !reading_paused_) return;
        reading_paused_ = false;
        this->update_watch();
    }
    bool is_reading() const noexcept final {
        return self().reads() && !reading_paused_ && !this->closing_;
    }

protected:
    stream_core(loop_base& loop, native_socket fd, owned_stream_protocol p,
                connection_counter* server) noexcept
        : core(loop, fd, std::move(p.ptr)), link_{server}, buffered_(p.buffered) {}
    ~stream_core() override = default;

    // Reading is wanted: not closing, not paused, and the peer has not ended its side.
    bool wants_to_read() const noexcept {
        return !this->closing_ && !reading_paused_ && !eof_received_;
    }

    // Which ways the bytes move: both for a socket. Derived hides these for a pipe.
    bool reads() const noexcept { return true; }
    bool writes() const noexcept { return true; }

    // transport_core's hooks: a server counts the connection from start to end.
    void opened() noexcept {
        if (connection_counter* s = server()) s->connection_opened();
    }
    void ended() noexcept {
        if (connection_counter* s = server()) s->connection_closed();
        if (sendfile_active_) {
            link_.gate->gone = true;
            link_.gate->wake();
        }
    }

    // loop.sendfile's gate takes the server's place in link_ while it runs, and keeps the
    // server pointer meanwhile: so a transport is no larger for it (the flag lives in the
    // padding beside the other flags).
    bool set_sendfile_gate(sendfile_gate* gate) noexcept final {
        if (gate) {
            if (sendfile_active_ && link_.gate != gate) return false;
            if (!sendfile_active_) {
                gate->server = link_.server;
                link_.gate = gate;
                sendfile_active_ = true;
            }
        } else if (sendfile_active_) {
            link_.server = link_.gate->server;
            sendfile_active_ = false;
        }
        this->update_watch();
        return true;
    }
    // loop.start_tls: the TLS layer takes this transport's protocol and becomes its own.
    // Refused while loop.sendfile runs, and once the connection is closing.
    bool exchange_protocol(owned_stream_protocol& p) noexcept final {
        if (sendfile_active_ || this->closing_) return false;
        std::swap(this->protocol_, p.ptr);
        std::swap(buffered_, p.buffered);
        return true;
    }

    // Derived's socket turned writable while a native sendfile waits for it.
    bool sendfile_wants_writable() const noexcept {
        return sendfile_active_ && link_.gate->want_writable;
    }
    void sendfile_writable() noexcept {
        link_.gate->want_writable = false;
        link_.gate->wake();
        this->update_watch();
    }

    // transport_core's hook: the protocol hears of its transport.
    void tell_connection_made() {
        if (buffered_) {
            as_buffered().connection_made(*this);
        } else {
            as_plain().connection_made(*this);
        }
    }

    // One read and what it brought, to the protocol. `recv(span)` reads once into the span
    // and returns the count, 0 at the peer's EOF, or a negative value when nothing came (it
    // would block, or a fatal error that recv has closed the transport for). A plain
    // protocol's bytes land in the loop's shared buffer (an idle connection holds none of
    // its own); a buffered protocol's land where its get_buffer says, with no copy.
    //
    // The plain path is the former read path plus one predictable branch: callgrind counts
    // the same instructions per read as before in tools/bench/echo's callback server, once
    // the buffered path is out of line (inlined as one function with two `buffered_`
    // tests, it cost 14 instructions per read more).
    template <class Recv>
    void receive(Recv&& recv) noexcept {
        if (buffered_) return receive_buffered(recv);
        const std::span<char> buffer = net_access::read_buffer(this->loop_);
        const std::ptrdiff_t n = recv(buffer);
        if (n > 0) {
            try {
                as_plain().data_received(std::string_view(buffer.data(), std::size_t(n)));
            } catch (...) {
                this->protocol_failed("data_received");
            }
        } else if (n == 0) {
            eof_received();
        }
    }

    // The peer shut down its side: the protocol says whether ours stays open to write.
    void eof_received() noexcept {
        eof_received_ = true;
        this->update_watch();
        bool keep_open = false;
        try {
            keep_open = buffered_ ? as_buffered().eof_received() : as_plain().eof_received();
        } catch (...) {
            this->protocol_failed("eof_received");
            return;
        }
        // A transport that cannot write has nothing to stay open for (asyncio's read
        // pipe closes at EOF whatever eof_received says).
        if (!keep_open || !self().writes()) this->start_closing();
    }

    // Derived has sent its whole write buffer and dropped it: the protocol may resume
    // writing, and a close or a write_eof that waited for the bytes goes on. resume_writing
    // may have written again (a new buffer), closed (connection_lost is then scheduled
    // already) or aborted: only an empty, live transport goes on.
    void writes_done() noexcept {
        if (sendfile_active_) link_.gate->wake();  // it waits for an empty buffer
        this->maybe_resume_protocol();
        if (self().has_write_buffer() || this->lost_) return;
        if (this->closing_) {
            this->schedule_connection_lost({});
        } else if (eof_requested_) {
            self().shutdown_write();
        }
    }

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

    [[noreturn]] static void throw_read_only(std::string_view what) {
        throw invalid_state_error(
            concat({"transport::", what, ": this transport is a read pipe (connect_read_pipe): "
                    "it cannot write"}));
    }

    protocol& as_plain() noexcept { return static_cast<protocol&>(*this->protocol_); }
    buffered_protocol& as_buffered() noexcept {
        return static_cast<buffered_protocol&>(*this->protocol_);
    }

    template <class Recv>
    IOLOOP_NOINLINE void receive_buffered(Recv& recv) noexcept {
        const std::span<char> buffer = lend_buffer();
        if (buffer.empty()) return;  // a fatal protocol error closed the transport
        const std::ptrdiff_t n = recv(buffer);
        if (n > 0) {
            try {
                as_buffered().buffer_updated(static_cast<std::size_t>(n));
            } catch (...) {
                this->protocol_failed("buffer_updated");
            }
        } else if (n == 0) {
            eof_received();
        }
    }

    // The span a buffered protocol lends for the next read. Empty if it failed: it threw,
    // or lent nothing (asyncio's "get_buffer() returned an empty buffer"); either is fatal,
    // and the transport is closed.
    std::span<char> lend_buffer() noexcept {
        try {
            const std::span<char> buffer = as_buffered().get_buffer(net_access::read_buffer_size);
            if (buffer.empty()) throw invalid_state_error("get_buffer() returned an empty buffer");
            return buffer;
        } catch (...) {
            this->protocol_failed("get_buffer");
            return {};
        }
    }

    connection_counter* server() const noexcept {
        return sendfile_active_ ? link_.gate->server : link_.server;
    }

    // The server that accepted it (if any); while loop.sendfile runs, its gate instead,
    // which holds the server's pointer (sendfile_active_ says which).
    union link {
        connection_counter* server;
        sendfile_gate* gate;
    } link_;
    bool buffered_;               // the protocol is a buffered_protocol
    bool sendfile_active_ = false;
    bool reading_paused_ = false;
    bool eof_received_ = false;
    bool eof_requested_ = false;  // write_eof(): shut down once the buffer is sent
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
