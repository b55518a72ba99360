// ioloop: stream_writer, the writing end of a stream connection (asyncio's StreamWriter).
// A handle on the connection's state (net/stream_reader.hpp), like stream_reader.
#ifndef IOLOOP_NET_STREAM_WRITER_HPP
#define IOLOOP_NET_STREAM_WRITER_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/net/ssl_option.hpp"
#include "ioloop/net/stream_reader.hpp"
#include "ioloop/net/transport.hpp"

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

// Writes go straight to the transport, which sends at once what the socket takes and
// buffers the rest; drain() is how a writer waits for that buffer to go down.
//
// RAII: destroying the last stream_writer of a connection without close() closes the
// transport (buffered data is still sent, then the connection is closed), as asyncio
// 3.12's StreamWriter.__del__ does. To keep a connection, keep its writer.
//
// After close() (or write_eof()), write throws invalid_state_error. After the connection
// was lost without close() (the peer went away), writes are dropped as the transport
// drops them, and drain() reports the loss.
class stream_writer {
    using transport_type = ioloop::transport;

public:
    using wait_awaiter = detail::stream_wait_awaiter;

    stream_writer() noexcept = default;  // empty: a moved-from or not yet assigned handle
    explicit stream_writer(stream_reader_protocol& p) noexcept : s_(&p) {
        p.add_ref();
        ++p.writers_;
    }
    stream_writer(stream_writer&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    stream_writer& operator=(stream_writer other) noexcept {
        std::swap(s_, other.s_);
        return *this;
    }
    ~stream_writer() { reset(); }

    explicit operator bool() const noexcept { return s_ != nullptr; }

    // Sends data (or buffers it); never waits.
    void write(std::string_view data) {
        if (transport_type* t = connected("write")) t->write(data);
    }
    void write(std::span<const std::byte> data) { write(detail::as_chars(data)); }

    // The pieces, in order, as one write.
    template <class Range>
    void writelines(const Range& pieces) {
        if (transport_type* t = connected("writelines")) t->writelines(pieces);
    }
    void writelines(std::initializer_list<std::string_view> pieces) {
        writelines<std::initializer_list<std::string_view>>(pieces);
    }

    // co_await drain(): returns at once unless the transport's buffer is above its
    // high-water mark (then it waits until it is back down to the low mark); throws the
    // connection's error (std::system_error) if it was lost to one, and
    // errc::connection_reset if the connection is gone.
    [[nodiscard]] wait_awaiter drain() {
        return wait_awaiter(&state("drain"), wait_awaiter::kind::drain);
    }

    // Half-close: the peer reads EOF once the buffered data is sent. Nothing once the
    // connection is gone.
    void write_eof() {
        if (transport_type* t = state("write_eof").transport_) t->write_eof();
    }
    bool can_write_eof() const noexcept {
        return s_ && s_->transport_ && s_->transport_->can_write_eof();
    }

    // Closes the connection: buffered data is still sent. Closing twice does nothing.
    void close() {
        stream_reader_protocol& s = state("close");
        s.writer_closed_ = true;
        if (s.transport_) s.transport_->close();
    }

    // True once close() was called or the connection is closing or gone.
    bool is_closing() const noexcept { return !s_ || s_->closing(); }

    // co_await wait_closed(): until the connection is lost (connection_lost has run);
    // throws the error it was lost to, if any.
    [[nodiscard]] wait_awaiter wait_closed() {
        return wait_awaiter(&state("wait_closed"), wait_awaiter::kind::closed);
    }

    // "peername", "sockname", "socket" ("pipe" over a pipe); nothing once the connection is
    // gone.
    extra_info get_extra_info(std::string_view name) const {
        if (!s_ || !s_->transport_) return extra_info();
        return s_->transport_->get_extra_info(name);
    }

    // get_extra_info("peername") / ("sockname") typed: the unspecified endpoint once the
    // connection is gone, or over a pipe (see base_transport::peername).
    endpoint peername() const { return s_ && s_->transport_ ? s_->transport_->peername() : endpoint(); }
    endpoint sockname() const { return s_ && s_->transport_ ? s_->transport_->sockname() : endpoint(); }

    // co_await start_tls(ssl[, options]) (asyncio's StreamWriter.start_tls): after the
    // buffered writes drain, the connection goes on over TLS (an ssl_context of
    // <ioloop/ssl.hpp>), for this writer and its reader alike, once the handshake is done.
    // The server side of the handshake is the stream of a start_server callback (as
    // asyncio decides it), or options.server_side. Defined in net/start_tls.hpp.
    template <class = void>
    coro<void> start_tls(ssl_option ssl);
    template <class = void>
    coro<void> start_tls(ssl_option ssl, const tls_options& options);

    // The transport while the connection is up; null before it is made and once it is
    // gone (the transport destroys itself after connection_lost).
    transport_type* transport() const noexcept { return s_ ? s_->transport_ : nullptr; }

private:
    friend struct detail::stream_access;

    // start_tls's coroutine, over its own handle of the stream.
    template <class = void>
    static coro<void> upgrade_to_tls(stream_writer w, loop_base& loop,
                                     detail::tls_layer_factory make);

    stream_reader_protocol& state(const char* what) const {
        if (!s_) throw invalid_state_error(detail::concat({what, ": the stream_writer is empty"}));
        return *s_;
    }

    // The transport to write to, or null to drop the data (the connection was lost).
    transport_type* connected(const char* what) const {
        stream_reader_protocol& s = state(what);
        if (s.transport_) return s.transport_;
        if (s.writer_closed_) {
            throw invalid_state_error(detail::concat({what, ": the stream_writer is closed"}));
        }
        if (!s.lost_) {
            throw invalid_state_error(detail::concat({what, ": the stream is not connected yet"}));
        }
        return nullptr;
    }

    void reset() noexcept {
        stream_reader_protocol* s = std::exchange(s_, nullptr);
        if (!s) return;
        if (--s->writers_ == 0 && s->transport_ && !s->transport_->is_closing()) {
            try {
                s->transport_->close();
            } catch (...) {  // a transport's close does not throw; a destructor cannot
            }
        }
        s->release();
    }

    stream_reader_protocol* s_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
