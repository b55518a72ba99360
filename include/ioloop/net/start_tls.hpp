// ioloop: where the networking layer puts a TLS layer (made by <ioloop/ssl.hpp>, reached
// through an ssl_option) between a transport and its protocol: over a connection just made
// (create_connection, connect_accepted_socket, each connection of create_server with the
// ssl option), and over one that already carries plain bytes (loop.start_tls, asyncio's
// STARTTLS). The layer is the transport's protocol, and the transport the protocol above
// writes to; the transport owns it, and it owns that protocol.
#ifndef IOLOOP_NET_START_TLS_HPP
#define IOLOOP_NET_START_TLS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/future.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/connect_options.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/serve_options.hpp"
#include "ioloop/net/server_state.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/ssl_option.hpp"
#include "ioloop/net/stream_reader.hpp"
#include "ioloop/net/stream_writer.hpp"
#include "ioloop/net/transport.hpp"

#include <memory>
#include <stdexcept>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What a connecting coroutine waits on, in its frame, while its layer does the handshake.
// The layer and the link know each other until either goes: the layer finishes `done`
// (with an error if the handshake fails or the connection is lost first) and forgets the
// link when it is destroyed; a link destroyed first (its coroutine cancelled) unhooks
// itself from the layer.
struct tls_handshake_link {
    explicit tls_handshake_link(future<void> f) noexcept : done(std::move(f)) {}
    tls_handshake_link(const tls_handshake_link&) = delete;
    tls_handshake_link& operator=(const tls_handshake_link&) = delete;
    ~tls_handshake_link() {
        if (back) *back = nullptr;
    }

    future<void> done;
    transport* upper = nullptr;               // the layer's transport while the layer lives
    tls_handshake_link** back = nullptr;      // where the layer keeps its pointer to this
    bool call_connection_made = true;         // false for start_tls: the protocol has one
};

struct tls_access {
    static bool exchange_protocol(transport& t, owned_stream_protocol& p) noexcept {
        return t.exchange_protocol(p);
    }
    // Whether p is t's protocol: put in place of it, the same object comes back.
    static bool has_protocol(transport& t, const base_protocol& p) noexcept {
        owned_stream_protocol probe(std::unique_ptr<base_protocol>(), false);
        if (!t.exchange_protocol(probe)) return false;
        const bool same = probe.ptr.get() == &p;
        (void)t.exchange_protocol(probe);
        return same;
    }
};

// Waits for the handshake. A caller that gives up (cancelled, a timeout around the call)
// aborts the connection, whose layer is still alive then if it has not forgotten the link.
template <class = void>
coro<void> wait_handshake(tls_handshake_link& link) {
    try {
        co_await link.done;
    } catch (...) {
        if (link.upper) link.upper->abort();
        throw;
    }
}

// The TLS client (or, for connect_accepted_socket, server) over a connected socket: the
// layer wraps the factory's protocol, which hears connection_made once the handshake is
// done; the call returns then, as asyncio's does.
template <class P, class Factory>
coro<std::pair<transport*, P*>> start_tls_connected(loop_base& loop, Factory& factory, socket s,
                                                    tls_layer_factory make) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    tls_handshake_link link(loop.create_future<void>());
    owned_stream_protocol app(std::move(proto));
    tls_layer_made made = make(loop, app, &link);
    with_family(loop, [&](auto ops) -> transport& {
        return ops.start_stream(loop, std::move(s), std::move(made.layer), nullptr);
    });
    co_await wait_handshake(link);
    co_return std::pair<transport*, P*>(made.upper, p);
}

// What the connect calls give the layer: the host the call was given is the name checked
// unless server_hostname says otherwise.
inline tls_options client_tls_options(const connect_options& o, const char* host) {
    return tls_options{false, o.server_hostname ? o.server_hostname : host,
                       o.ssl_handshake_timeout, o.ssl_shutdown_timeout};
}

inline tls_options server_tls_options(const serve_options& o) {
    return tls_options{true, nullptr, o.ssl_handshake_timeout, o.ssl_shutdown_timeout};
}

// A server's factory with TLS: each connection's protocol under a layer of its own.
inline protocol_factory tls_server_factory(loop_base& loop, protocol_factory app,
                                           const serve_options& o) {
    return [&loop, app = std::move(app), make = o.ssl.layer_factory(server_tls_options(o))]() mutable
           -> owned_stream_protocol {
        owned_stream_protocol p = app();
        return make(loop, p, nullptr).layer;
    };
}

// Puts a new layer between t and its protocol, which the layer then owns, and starts the
// handshake; gives the layer's transport. If it cannot, t is left as it was.
inline transport& put_tls_layer(loop_base& loop, transport& t, tls_layer_factory& make,
                                tls_handshake_link& link) {
    owned_stream_protocol app(std::unique_ptr<base_protocol>(), false);
    if (!tls_access::exchange_protocol(t, app)) {
        throw invalid_state_error(
            "start_tls: the transport cannot take TLS (it is closing, loop.sendfile runs on it, "
            "or it is a TLS transport already)");
    }
    tls_layer_made made{owned_stream_protocol(std::unique_ptr<base_protocol>(), false), nullptr};
    try {
        made = make(loop, app, &link);
    } catch (...) {
        (void)tls_access::exchange_protocol(t, app);  // the protocol goes back
        throw;
    }
    base_protocol* layer = made.layer.ptr.get();
    const bool buffered = made.layer.buffered;
    (void)tls_access::exchange_protocol(t, made.layer);
    // The transport told its protocol of itself long ago: the layer hears it now.
    if (buffered) {
        static_cast<buffered_protocol*>(layer)->connection_made(t);
    } else {
        static_cast<protocol*>(layer)->connection_made(t);
    }
    return *made.upper;
}

// loop.start_tls's coroutine: the layer's transport is the result once the handshake is
// done; the protocol, which has its connection already, hears nothing of it.
template <class = void>
coro<transport*> start_tls_over(loop_base& loop, transport& t, tls_layer_factory make) {
    tls_handshake_link link(loop.create_future<void>());
    link.call_connection_made = false;
    transport& upper = put_tls_layer(loop, t, make, link);
    co_await wait_handshake(link);
    co_return &upper;
}

}  // namespace detail

template <class>
coro<transport*> loop_base::start_tls(transport& t, ssl_option ssl) {
    return start_tls(t, ssl, tls_options{});
}

template <class>
coro<transport*> loop_base::start_tls(transport& t, ssl_option ssl, const tls_options& options) {
    check_open("start_tls");
    if (!ssl) throw std::invalid_argument("start_tls: no ssl context");
    detail::check_tls_timeouts(options.ssl_handshake_timeout, options.ssl_shutdown_timeout,
                               "start_tls");
    return detail::start_tls_over(*this, t, ssl.layer_factory(options));
}

template <class>
coro<transport*> loop_base::start_tls(transport& t, base_protocol& p, ssl_option ssl,
                                      const tls_options& options) {
    if (!detail::tls_access::has_protocol(t, p)) {
        throw std::invalid_argument("start_tls: the protocol is not the transport's own");
    }
    return start_tls(t, ssl, options);
}

template <class>
coro<void> stream_writer::start_tls(ssl_option ssl) {
    return start_tls(ssl, tls_options{});
}

template <class>
coro<void> stream_writer::start_tls(ssl_option ssl, const tls_options& options) {
    stream_reader_protocol& s = state("start_tls");
    if (!ssl) throw std::invalid_argument("stream_writer::start_tls: no ssl context");
    detail::check_tls_timeouts(options.ssl_handshake_timeout, options.ssl_shutdown_timeout,
                               "stream_writer::start_tls");
    transport_type* t = connected("start_tls");
    if (!t || t->is_closing()) {
        throw invalid_state_error("stream_writer::start_tls: the stream is closed");
    }
    loop_base& loop = detail::loop_access::running_or_throw("stream_writer::start_tls");
    tls_options o = options;
    if (s.from_server_) o.server_side = true;
    return upgrade_to_tls(stream_writer(s), loop, ssl.layer_factory(o));
}

template <class>
coro<void> stream_writer::upgrade_to_tls(stream_writer w, loop_base& loop,
                                         detail::tls_layer_factory make) {
    co_await w.drain();  // what was written before goes out in the clear
    stream_reader_protocol& s = *w.s_;
    if (!s.transport_ || s.transport_->is_closing()) {
        throw invalid_state_error("stream_writer::start_tls: the stream is closed");
    }
    detail::tls_handshake_link link(loop.create_future<void>());
    link.call_connection_made = false;
    // The stream reads and writes through the layer from here on; writes made during the
    // handshake wait in the layer until it is done.
    s.transport_ = &detail::put_tls_layer(loop, *s.transport_, make, link);
    co_await detail::wait_handshake(link);
}

IOLOOP_NAMESPACE_END

#endif
