// ioloop: TLS, the optional part (Python's ssl module as asyncio uses it), over the
// system's OpenSSL 3: link -lssl -lcrypto (CMake: OpenSSL::SSL). <ioloop/ioloop.hpp> alone
// never needs OpenSSL.
//
//     #include <ioloop/ssl.hpp>
//     auto ctx = ioloop::create_default_context();
//     auto [reader, writer] = co_await ioloop::open_connection("example.org", 443, {.ssl = ctx});
//
// What it adds: ssl_context and create_default_context (tls/ssl_context.hpp), ssl_category
// (tls/ssl_error.hpp), and the TLS layer the `ssl` option of the connect and serve calls,
// loop.start_tls and stream_writer::start_tls put over a connection (tls/tls_layer.hpp).
#ifndef IOLOOP_SSL_HPP
#define IOLOOP_SSL_HPP

#include "ioloop/ioloop.hpp"

// ioloop.hpp's end undefined the internal macros: this part uses them too.
#include "ioloop/detail/macro_scope.hpp"

#include "ioloop/tls/ssl_context.hpp"
#include "ioloop/tls/ssl_error.hpp"
#include "ioloop/tls/tls_layer.hpp"

#include "ioloop/detail/macro_unscope.hpp"

#endif
