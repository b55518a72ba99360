// ioloop: the `ssl` option of the connect and serve calls, and tls_options (loop.start_tls,
// stream_writer::start_tls). TLS itself is the separate header <ioloop/ssl.hpp>, over
// OpenSSL; this file is how the networking layer reaches it without knowing OpenSSL:
//
//     auto ctx = ioloop::create_default_context();                  // <ioloop/ssl.hpp>
//     co_await ioloop::open_connection("example.org", 443, {.ssl = ctx});
//
// An ssl_option refers to an ssl_context (or to none) and carries, made where the context's
// type is complete, the function that puts a TLS layer between a transport and its
// protocol. A program that never includes <ioloop/ssl.hpp> has no ssl_context to refer
// to, and one that names an incomplete one gets a compile error naming the header.
#ifndef IOLOOP_NET_SSL_OPTION_HPP
#define IOLOOP_NET_SSL_OPTION_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/unique_function.hpp"
#include "ioloop/net/protocol.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

class loop_base;
class transport;

// A TLS configuration (asyncio's ssl.SSLContext): defined by <ioloop/ssl.hpp>.
class ssl_context;

// What loop.start_tls and stream_writer::start_tls take besides the context (asyncio's
// keyword arguments). Owns nothing, as connect_options: server_hostname must outlive the
// call.
struct tls_options {
    // This end is the server of the handshake (it presents the context's certificate).
    bool server_side = false;
    // The name the server's certificate is checked against, and sent as SNI; null: none
    // (a client whose context checks host names then fails at the call).
    const char* server_hostname = nullptr;
    // The handshake is abandoned after this long: std::system_error(errc::timed_out).
    std::chrono::steady_clock::duration ssl_handshake_timeout = std::chrono::seconds(60);
    // After close(), how long to wait for the peer's close_notify before the connection is
    // closed anyway.
    std::chrono::steady_clock::duration ssl_shutdown_timeout = std::chrono::seconds(30);
};

namespace detail {

struct tls_handshake_link;  // net/start_tls.hpp

// A new TLS layer: the protocol to give the transport below, and the transport the
// wrapped protocol writes to (one object).
struct tls_layer_made {
    owned_stream_protocol layer;
    transport* upper;
};

// Makes the TLS layer of one connection over `app` (moved from only if it succeeds);
// keeps its context alive (a server calls it for each connection it accepts). With a
// link, the caller waits there for the handshake (net/start_tls.hpp); without one, the
// protocol's connection_made follows the handshake, and a failed one just closes the
// connection (a server's).
using tls_layer_factory =
    unique_function<tls_layer_made(loop_base&, owned_stream_protocol&, tls_handshake_link*)>;

// <ioloop/ssl.hpp> specializes this for ssl_context: make(ctx, options) gives its
// tls_layer_factory. Reached here only when ssl_context is not defined where an
// ssl_option is made.
template <class Context>
struct tls_entry {
    static_assert(sizeof(Context*) == 0,
                  "the ssl option takes an ioloop::ssl_context: #include <ioloop/ssl.hpp> "
                  "(TLS over OpenSSL; link -lssl -lcrypto)");
};

}  // namespace detail

// The `ssl` member of connect_options and serve_options: an ssl_context (`.ssl = ctx`),
// a pointer to one (`.ssl = &ctx`), or none (plain TCP). It refers to the context, which
// must outlive the call (the layers the call makes share it from then on).
class ssl_option {
public:
    ssl_option() noexcept = default;
    ssl_option(std::nullptr_t) noexcept {}  // NOLINT: converts, as a null pointer does

    template <class Context>
        requires std::is_same_v<Context, ssl_context>
    ssl_option(const Context& ctx) noexcept  // NOLINT: converts, so that `.ssl = ctx` reads
        : ctx_(&ctx), make_(&detail::tls_entry<Context>::make) {}

    // A temporary context would be gone before the call uses it (the connect calls make
    // their layers after they connect): refused at compile time.
    template <class Context>
        requires std::is_same_v<Context, ssl_context>
    ssl_option(Context&& ctx) noexcept {  // NOLINT: only to refuse a temporary
        static_assert(sizeof(Context*) == 0,
                      "ssl= refers to the ssl_context, which must outlive the call: keep it in "
                      "a variable, not a temporary");
        (void)ctx;
    }

    template <class Context>
        requires std::is_same_v<Context, ssl_context>
    ssl_option(const Context* ctx) noexcept  // NOLINT: converts, as the reference does
        : ctx_(ctx), make_(ctx ? &detail::tls_entry<Context>::make : nullptr) {}

    explicit operator bool() const noexcept { return ctx_ != nullptr; }
    const ssl_context* get() const noexcept { return ctx_; }

    friend bool operator==(const ssl_option& a, std::nullptr_t) noexcept { return !a.ctx_; }

    // The layers' maker for these options (the context is not null).
    detail::tls_layer_factory layer_factory(const tls_options& o) const {
        return make_(*ctx_, o);
    }

private:
    const ssl_context* ctx_ = nullptr;
    detail::tls_layer_factory (*make_)(const ssl_context&, const tls_options&) = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
