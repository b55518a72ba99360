// ioloop: serve_options, the keyword arguments of asyncio's serve calls
// (loop.create_server, start_server) as one struct, written with designated initializers:
//
//     co_await ioloop::start_server(cb, "", 8080, {.backlog = 1000, .reuse_port = true});
//
// It owns no memory, for the reason connect_options gives (g++ 12 destroys a braced
// temporary of a co_await expression twice): `hosts` and `ssl` point to what the caller
// keeps until the call returns.
#ifndef IOLOOP_NET_SERVE_OPTIONS_HPP
#define IOLOOP_NET_SERVE_OPTIONS_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/connect_options.hpp"

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

struct serve_options {
    // Each connection's stream_reader limit (start_server only; stream_default_limit).
    std::size_t limit = 64 * 1024;
    // The listen() backlog; the kernel may cap it (somaxconn).
    int backlog = 100;
    // TLS for every connection: an ssl_context of <ioloop/ssl.hpp> (its certificate
    // loaded); none: plain TCP. A connection's protocol hears connection_made once its
    // handshake is done; a failed handshake just closes that connection.
    ssl_option ssl{};
    // SO_REUSEADDR on the listening sockets: bind a port whose old connections linger in
    // TIME_WAIT (POSIX's default; on Windows it would let another process steal the port).
    bool reuse_address = detail::listen_with_reuse_address;
    // SO_REUSEPORT: several sockets (processes) bound to one port, the kernel spreading the
    // connections; std::system_error(errc::operation_not_supported) where there is none
    // (Windows).
    bool reuse_port = false;
    // SO_KEEPALIVE on every accepted connection.
    bool keep_alive = false;
    // false: listening (clients queue in the backlog) but not accepting until
    // server.start_serving() or serve_forever().
    bool start_serving = true;
    // Listen on each of these hosts' addresses too (asyncio's host=[...]); with hosts
    // given, an empty host argument adds nothing (instead of every interface). Null: the
    // host argument alone.
    const std::vector<std::string>* hosts = nullptr;
    // With ssl: each handshake's time limit, and how long a close waits for the peer's
    // close_notify (asyncio's defaults).
    std::chrono::steady_clock::duration ssl_handshake_timeout = std::chrono::seconds(60);
    std::chrono::steady_clock::duration ssl_shutdown_timeout = std::chrono::seconds(30);
};
// What keeps it safe as a braced temporary in a co_await expression (see above).
static_assert(std::is_trivially_copyable_v<serve_options> &&
              std::is_trivially_destructible_v<serve_options>);

namespace detail {

inline void check_serve_options(const serve_options& o, const char* what) {
    check_tls_timeouts(o.ssl_handshake_timeout, o.ssl_shutdown_timeout, what);
    if (o.backlog < 0) {
        throw std::invalid_argument(concat({what, ": the backlog must not be negative"}));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
