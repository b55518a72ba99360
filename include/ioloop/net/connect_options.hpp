// ioloop: connect_options, the keyword arguments of asyncio's connect calls
// (loop.create_connection, open_connection) as one struct, written with designated
// initializers (serve_options, net/serve_options.hpp, is the serving side's):
//
//     co_await loop.create_connection(factory, "example.org", 80,
//                                     {.happy_eyeballs_delay = 250ms});
//
// It owns no memory: a braced temporary in a co_await expression is destroyed twice by
// g++ 12, so a string in here would be freed twice. What it points to (server_hostname,
// the ssl context) must outlive the call.
#ifndef IOLOOP_NET_CONNECT_OPTIONS_HPP
#define IOLOOP_NET_CONNECT_OPTIONS_HPP

#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/ssl_option.hpp"

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

struct connect_options {
    // The stream_reader's limit (open_connection only; stream_default_limit).
    std::size_t limit = 64 * 1024;
    // TLS over the connection: an ssl_context of <ioloop/ssl.hpp>; none: plain TCP. The
    // call returns once the handshake is done.
    ssl_option ssl{};
    // The name the server's certificate is checked against and sent as SNI (with ssl only);
    // null: the host.
    const char* server_hostname = nullptr;
    // Bind the socket here before connecting (asyncio's local_addr); unspecified: not bound.
    // Only addresses of its family are tried.
    endpoint local_addr{};
    // RFC 8305's connection attempt delay: the next address is tried when the one before
    // has neither connected nor failed within it, while the earlier ones go on; the first to
    // connect wins and the others are closed. Negative (the default): one address at a time,
    // each attempt to its end (asyncio's None).
    std::chrono::steady_clock::duration happy_eyeballs_delay{-1};
    // Reorder the addresses by family: this many of the first family, then one of each
    // family in turn. Negative (the default): 1 with a happy_eyeballs_delay, else 0 (the
    // resolver's order), as asyncio.
    int interleave = -1;
    // When no address connects: false, one std::system_error (the one error, or
    // "Multiple exceptions: ..." naming each); true, an ioloop::connect_errors listing every
    // address's error (asyncio's ExceptionGroup).
    bool all_errors = false;
    // With ssl: the handshake's time limit (std::system_error(errc::timed_out) after it),
    // and how long close() waits for the peer's close_notify (asyncio's defaults).
    std::chrono::steady_clock::duration ssl_handshake_timeout = std::chrono::seconds(60);
    std::chrono::steady_clock::duration ssl_shutdown_timeout = std::chrono::seconds(30);
};
// What keeps it safe as a braced temporary in a co_await expression (see above).
static_assert(std::is_trivially_copyable_v<connect_options> &&
              std::is_trivially_destructible_v<connect_options>);

namespace detail {

// A negative or zero time limit is refused at the call, as asyncio refuses it.
inline void check_tls_timeouts(std::chrono::steady_clock::duration handshake,
                               std::chrono::steady_clock::duration shutdown, const char* what) {
    if (handshake.count() <= 0) {
        throw std::invalid_argument(concat({what, ": ssl_handshake_timeout must be positive"}));
    }
    if (shutdown.count() <= 0) {
        throw std::invalid_argument(concat({what, ": ssl_shutdown_timeout must be positive"}));
    }
}

inline void check_connect_options(const connect_options& o, const char* what) {
    check_tls_timeouts(o.ssl_handshake_timeout, o.ssl_shutdown_timeout, what);
    if (o.server_hostname && !o.ssl) {
        throw std::invalid_argument(
            concat({what, ": server_hostname is only meaningful with ssl"}));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
