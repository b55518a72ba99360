// ioloop: what every stream transport does the same way, whatever moves its bytes: the
// checks of write(), write_eof and the half-close that waits for the buffer, pausing and
// resuming reading, the peer's EOF, what follows when the write buffer empties, and a
// server's count of its connections. Written once for both backend families: Derived
// (socket_transport, overlapped_socket_transport) only moves the bytes.
//
// Derived provides, besides what transport_core asks of it: send_or_buffer(data) (called
// with data to send on an open transport), has_write_buffer(), shutdown_write(). It may
// hide reads() and writes() (both true here): a pipe moves bytes one way only.
#ifndef IOLOOP_NET_STREAM_CORE_HPP
#define IOLOOP_NET_STREAM_CORE_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#include <memory>
#include <string_view>
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
class stream_core : public transport_core<Derived, transport, protocol> {
    using core = transport_core<Derived, transport, protocol>;

public:
    void write(std::string_view data) final {
        if (!self().writes()) throw_read_only("write");
        if (this->user_closed_) {
            throw invalid_state_error("transport::write: the transport is closed");
        }
        if (eof_requested_) throw invalid_state_error("transport::write: write_eof() was called");
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
    stream_core(loop_base& loop, native_socket fd, std::unique_ptr<protocol> p,
                connection_counter* server) noexcept
        : core(loop, fd, std::move(p)), server_(server) {}
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
        if (server_) server_->connection_opened();
    }
    void ended() noexcept {
        if (server_) server_->connection_closed();
    }

    // The peer shut down its side: the protocol says whether ours stays open to write.
    void eof_received() noexcept {
        eof_received_ = true;
        this->update_watch();
        bool keep_open = false;
        try {
            keep_open = this->protocol_->eof_received();
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

    connection_counter* server_;  // the server that accepted it, if any
    bool reading_paused_ = false;
    bool eof_received_ = false;
    bool eof_requested_ = false;  // write_eof(): shut down once the buffer is sent
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
