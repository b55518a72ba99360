// ioloop: TLS over OpenSSL for the single ioloop.hpp beside it (link -lssl -lcrypto).
// SPDX-License-Identifier: MIT
//
// GENERATED FILE, DO NOT EDIT. Made by tools/amalgamate.py from include/ioloop/;
// change the sources there and run the script again.

// begin file ioloop/ssl.hpp
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

#include "ioloop.hpp"

// ioloop.hpp's end undefined the internal macros: this part uses them too.
// begin file ioloop/detail/macro_scope.hpp
// ioloop: the internal macros, defined (nlohmann/json's macro_scope): included by
// detail/config.hpp, and again by <ioloop/ssl.hpp> after <ioloop/ioloop.hpp>, whose end
// undefines them (detail/macro_unscope.hpp). No include guard: it is meant to be included
// again; defining a macro again with the same text is allowed.
// IWYU pragma: private
// Keeps a cold path (errors, slow-path frees) out of the hot function that calls it.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define IOLOOP_NOINLINE __declspec(noinline)
#else
#define IOLOOP_NOINLINE
#endif

// Keeps a small hot function inlined where the compiler's budget would call it instead.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define IOLOOP_ALWAYS_INLINE __forceinline
#else
#define IOLOOP_ALWAYS_INLINE inline
#endif

// Asks for a cache line ahead of use: timers fire in deadline order, not memory order.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_PREFETCH(address) __builtin_prefetch(address)
#else
#define IOLOOP_PREFETCH(address) ((void)(address))
#endif

// The version and the default backend name the inline ABI namespace, so translation units
// built with different backend macros fail to link instead of silently breaking the ODR.
#define IOLOOP_ABI_CONCAT_(a, b, c, d) v##a##_##b##_##c##_##d
#define IOLOOP_ABI_CONCAT(a, b, c, d) IOLOOP_ABI_CONCAT_(a, b, c, d)
#define IOLOOP_ABI_TAG                                                                  \
    IOLOOP_ABI_CONCAT(IOLOOP_VERSION_MAJOR, IOLOOP_VERSION_MINOR, IOLOOP_VERSION_PATCH, \
                      IOLOOP_DEFAULT_BACKEND)
#define IOLOOP_NAMESPACE_BEGIN \
    namespace ioloop {         \
    inline namespace IOLOOP_ABI_TAG {
#define IOLOOP_NAMESPACE_END \
    }                        \
    }

// end file ioloop/detail/macro_scope.hpp

// begin file ioloop/tls/ssl_context.hpp
// ioloop: ssl_context, a TLS configuration (Python's ssl.SSLContext) over OpenSSL's SSL_CTX:
// certificates, trusted roots, peer verification, host-name checks, ALPN, versions and
// ciphers. Copies share one SSL_CTX and one configuration, as Python's references to one
// context do: a change through one copy is seen through all.
//
//     ioloop::ssl_context client = ioloop::create_default_context();          // a client's
//     ioloop::ssl_context server = ioloop::create_default_context(ioloop::purpose::client_auth);
//     server.load_cert_chain("cert.pem", "key.pem");
#ifndef IOLOOP_TLS_SSL_CONTEXT_HPP
#define IOLOOP_TLS_SSL_CONTEXT_HPP

// begin file ioloop/tls/ssl_error.hpp
// ioloop: ssl_category(), the error category of TLS failures, and how an OpenSSL failure
// becomes a std::system_error whose message says what went wrong.
//
// A code's value is OpenSSL's packed error (ERR_get_error(): the library and the reason),
// or, when the peer's certificate failed verification, minus the verification result
// (X509_V_ERR_*): then e.code().value() tells an unknown CA from a host-name mismatch or an
// expired certificate, and the message names it ("certificate verify failed: Hostname
// mismatch"), as Python's ssl.SSLCertVerificationError does.
#ifndef IOLOOP_TLS_SSL_ERROR_HPP
#define IOLOOP_TLS_SSL_ERROR_HPP


#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <string>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class ssl_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "ssl"; }

    std::string message(int ev) const override {
        if (ev < 0) {
            return std::string("certificate verify failed: ") +
                   X509_verify_cert_error_string(-static_cast<long>(ev));
        }
        if (const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ev))) {
            return reason;
        }
        return "TLS error " + std::to_string(ev);
    }
};

}  // namespace detail

// The category of the std::system_error a TLS handshake or verification failure is.
inline const std::error_category& ssl_category() noexcept {
    static const detail::ssl_error_category category;
    return category;
}

namespace detail {

// The error OpenSSL's queue holds (the earliest: the cause), cleared; for a verification
// failure of `ssl`, the verification result instead. A failure that left nothing in the
// queue is `fallback`.
inline std::error_code take_ssl_error(const SSL* ssl, std::error_code fallback) {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return fallback;
    if (ssl && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        const long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) return {-static_cast<int>(verify), ssl_category()};
    }
    // A system call's failure inside OpenSSL (a file that cannot be opened): its errno.
    if (ERR_SYSTEM_ERROR(e)) return {static_cast<int>(ERR_GET_REASON(e)), std::generic_category()};
    return {static_cast<int>(e), ssl_category()};
}

// Throws the error OpenSSL's queue holds as a std::system_error, `what` naming the call.
[[noreturn]] inline void throw_ssl_error(const std::string& what) {
    throw std::system_error(take_ssl_error(nullptr, {EINVAL, std::generic_category()}), what);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/tls/ssl_error.hpp

#include <openssl/ssl.h>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// What a context is for (Python's ssl.Purpose): server_auth, to authenticate servers (a
// client's context); client_auth, to authenticate clients (a server's).
enum class purpose { server_auth, client_auth };

// Whether and how the peer's certificate is checked (ssl.CERT_NONE, CERT_OPTIONAL,
// CERT_REQUIRED). On a server, optional asks for a client certificate and checks one that
// comes; required fails a client without one.
enum class verify_mode { none, optional, required };

enum class tls_version { tls1_2, tls1_3 };

class ssl_context {
public:
    // A bare context (Python's SSLContext(PROTOCOL_TLS_CLIENT / _SERVER)): no roots
    // loaded; a client's verifies the peer and checks its host name, a server's does
    // neither. create_default_context gives the usual settings.
    explicit ssl_context(purpose p = purpose::server_auth) : s_(std::make_shared<state>()) {
        s_->ctx = SSL_CTX_new(TLS_method());
        if (!s_->ctx) detail::throw_ssl_error("ssl_context: SSL_CTX_new");
        s_->is_client = p == purpose::server_auth;
        // Idle connections hold no record buffers; renegotiation (TLS 1.2) is refused.
        SSL_CTX_set_mode(s_->ctx, SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_options(s_->ctx, SSL_OP_NO_RENEGOTIATION);
        SSL_CTX_set_min_proto_version(s_->ctx, TLS1_2_VERSION);
        if (s_->is_client) {
            s_->check_hostname = true;
            set_verify_mode(verify_mode::required);
        } else {
            set_verify_mode(verify_mode::none);
        }
    }

    // The certificate (PEM, with its chain) this end presents, and its private key
    // (`keyfile` empty: in certfile too). A file that cannot be read is a
    // std::system_error naming it; a key that does not match, one in ssl_category().
    void load_cert_chain(const std::string& certfile, const std::string& keyfile = "") {
        const std::string& key = keyfile.empty() ? certfile : keyfile;
        if (SSL_CTX_use_certificate_chain_file(s_->ctx, certfile.c_str()) != 1) {
            detail::throw_ssl_error("load_cert_chain: " + certfile);
        }
        if (SSL_CTX_use_PrivateKey_file(s_->ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
            detail::throw_ssl_error("load_cert_chain: " + key);
        }
        if (SSL_CTX_check_private_key(s_->ctx) != 1) {
            detail::throw_ssl_error("load_cert_chain: the key does not match the certificate");
        }
    }

    // Certificates to trust: a PEM file of them, and/or a directory hashed by c_rehash.
    void load_verify_locations(const std::string& cafile, const std::string& capath = "") {
        if (cafile.empty() && capath.empty()) {
            throw std::invalid_argument("load_verify_locations: cafile or capath is needed");
        }
        if (SSL_CTX_load_verify_locations(s_->ctx, cafile.empty() ? nullptr : cafile.c_str(),
                                          capath.empty() ? nullptr : capath.c_str()) != 1) {
            detail::throw_ssl_error("load_verify_locations: " + (cafile.empty() ? capath : cafile));
        }
    }

    // The system's trusted roots (Debian: /etc/ssl/certs).
    void load_default_certs() {
        if (SSL_CTX_set_default_verify_paths(s_->ctx) != 1) {
            detail::throw_ssl_error("load_default_certs");
        }
    }

    // The protocols offered (a client) or accepted (a server, in its order of preference)
    // through ALPN, e.g. {"h2", "http/1.1"}. The one chosen is the transport's
    // get_extra_info("alpn_protocol").
    void set_alpn_protocols(std::initializer_list<std::string_view> protocols) {
        set_alpn_from(std::vector<std::string_view>(protocols));
    }
    void set_alpn_protocols(const std::vector<std::string>& protocols) {
        std::vector<std::string_view> views(protocols.begin(), protocols.end());
        set_alpn_from(views);
    }

    // The cipher list of TLS 1.2 and below (OpenSSL's syntax), and TLS 1.3's suites.
    void set_ciphers(const std::string& ciphers) {
        if (SSL_CTX_set_cipher_list(s_->ctx, ciphers.c_str()) != 1) {
            detail::throw_ssl_error("set_ciphers: " + ciphers);
        }
    }
    void set_ciphersuites(const std::string& suites) {
        if (SSL_CTX_set_ciphersuites(s_->ctx, suites.c_str()) != 1) {
            detail::throw_ssl_error("set_ciphersuites: " + suites);
        }
    }

    // The versions a handshake may agree on (TLS 1.2 at least by default).
    void set_minimum_version(tls_version v) {
        SSL_CTX_set_min_proto_version(s_->ctx, native_version(v));
    }
    void set_maximum_version(tls_version v) {
        SSL_CTX_set_max_proto_version(s_->ctx, native_version(v));
    }

    // Whether a client checks that the server's certificate is for the name it connected
    // to (server_hostname, or the host). Turning it on sets verify_mode required, as
    // Python does.
    void set_check_hostname(bool on) {
        if (on && s_->verify == verify_mode::none) set_verify_mode(verify_mode::required);
        s_->check_hostname = on;
    }
    bool get_check_hostname() const noexcept { return s_->check_hostname; }

    // verify_mode::none while check_hostname is on is refused (std::invalid_argument), as
    // Python refuses CERT_NONE then.
    void set_verify_mode(verify_mode m) {
        if (m == verify_mode::none && s_->check_hostname) {
            throw std::invalid_argument(
                "set_verify_mode: verify_mode::none while check_hostname is on (turn it off "
                "first)");
        }
        int flags = SSL_VERIFY_NONE;
        if (m != verify_mode::none) flags = SSL_VERIFY_PEER;
        if (m == verify_mode::required && !s_->is_client) flags |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(s_->ctx, flags, nullptr);
        s_->verify = m;
    }
    verify_mode get_verify_mode() const noexcept { return s_->verify; }

    // OpenSSL's context, for what this class does not offer.
    SSL_CTX* native_handle() const noexcept { return s_->ctx; }

private:
    struct state {
        state() = default;
        state(const state&) = delete;
        state& operator=(const state&) = delete;
        ~state() { SSL_CTX_free(ctx); }

        SSL_CTX* ctx = nullptr;
        std::string alpn;  // the ALPN names in their wire form (length-prefixed)
        verify_mode verify = verify_mode::none;
        bool check_hostname = false;
        bool is_client = true;
    };

    static int native_version(tls_version v) noexcept {
        return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    }

    void set_alpn_from(const std::vector<std::string_view>& views) {
        std::string wire;
        for (std::string_view p : views) {
            if (p.empty() || p.size() > 255) {
                throw std::invalid_argument("set_alpn_protocols: a name must be 1 to 255 bytes");
            }
            wire.push_back(static_cast<char>(p.size()));
            wire.append(p);
        }
        s_->alpn = std::move(wire);
        const auto* data = reinterpret_cast<const unsigned char*>(s_->alpn.data());
        if (SSL_CTX_set_alpn_protos(s_->ctx, data, static_cast<unsigned>(s_->alpn.size())) != 0) {
            throw std::bad_alloc();
        }
        SSL_CTX_set_alpn_select_cb(s_->ctx, &select_alpn, s_.get());
    }

    // A server's choice: its first name the client offers too; none in common, no ALPN
    // (the handshake goes on, as Python's does).
    static int select_alpn(SSL*, const unsigned char** out, unsigned char* out_size,
                           const unsigned char* offered, unsigned offered_size, void* arg) {
        const auto* s = static_cast<const state*>(arg);
        const auto* ours = reinterpret_cast<const unsigned char*>(s->alpn.data());
        unsigned char* chosen = nullptr;
        if (SSL_select_next_proto(&chosen, out_size, ours, static_cast<unsigned>(s->alpn.size()),
                                  offered, offered_size) != OPENSSL_NPN_NEGOTIATED) {
            return SSL_TLSEXT_ERR_NOACK;
        }
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }

    std::shared_ptr<state> s_;
};

// Python's ssl.create_default_context: server_auth (the default), a client's context that
// trusts the system's roots, verifies the server and checks its host name; client_auth, a
// server's, which asks nothing of clients (load its certificate with load_cert_chain).
// Both: TLS 1.2 at least, OpenSSL's default ciphers.
inline ssl_context create_default_context(purpose p = purpose::server_auth) {
    ssl_context ctx(p);
    if (p == purpose::server_auth) ctx.load_default_certs();
    return ctx;
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/tls/ssl_context.hpp
// begin file ioloop/tls/tls_layer.hpp
// ioloop: the TLS layer of one connection (asyncio's sslproto, in spirit): between a
// transport, whose protocol it is, and the protocol above, whose transport it is. OpenSSL
// reads the ciphertext the transport received and writes the records it makes back to it
// through a BIO of this layer's own, so the layer works over any stream transport of any
// backend family with no code of its own for one.
//
// Its life, as asyncio's: the handshake (writes wait in the layer until it is done; a
// connect call waits for it, a server's protocol hears connection_made after it), then
// records both ways, then the close: close() sends close_notify once the writes made before
// it, waits (ssl_shutdown_timeout at most) for the peer's, and closes the transport. TLS has
// no half-close: the peer's close_notify, or its bare EOF, is the protocol's eof_received,
// then the connection closes.
//
// Buffers: the ciphertext received is read into a 64 KiB block of the loop thread's
// recycler (a transport of the protocol's kind, buffered, reads straight into it), and the
// records one OpenSSL call makes are gathered in another, written below at the end of the
// call; both go back when they empty, so an idle connection holds neither (OpenSSL's own
// are released as well: SSL_MODE_RELEASE_BUFFERS).
#ifndef IOLOOP_TLS_TLS_LAYER_HPP
#define IOLOOP_TLS_TLS_LAYER_HPP


#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class tls_layer final : public buffered_protocol, public transport {
    using duration = std::chrono::steady_clock::duration;
    static constexpr std::size_t block_size = recycler::read_block_size;

public:
    // Takes ssl (its BIO set already) and, if it succeeds, the protocol in `app`.
    tls_layer(loop_base& loop, SSL* ssl, owned_stream_protocol& app, tls_handshake_link* link,
              duration handshake_timeout, duration shutdown_timeout) noexcept
        : loop_(loop),
          app_(std::move(app.ptr)),
          ssl_(ssl),
          link_(link),
          handshake_timeout_(handshake_timeout),
          shutdown_timeout_(shutdown_timeout),
          app_buffered_(app.buffered),
          call_made_(!link || link->call_connection_made),
          app_made_(!call_made_) {
        BIO_set_data(SSL_get_rbio(ssl_), this);
        if (link_) {
            link_->upper = this;
            link_->back = &link_;
        }
    }

    tls_layer(const tls_layer&) = delete;
    tls_layer& operator=(const tls_layer&) = delete;

    ~tls_layer() override {
        timer_.cancel();
        soon_.cancel();
        forget_link();
        SSL_free(ssl_);
        if (in_) deallocate_read_block(in_);
        if (out_) deallocate_read_block(out_);
    }

    // The BIO through which OpenSSL reaches a layer.
    static BIO_METHOD* bio_method() {
        static BIO_METHOD* const method = [] {
            BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ioloop");
            if (m) {
                BIO_meth_set_write_ex(m, &bio_write);
                BIO_meth_set_read_ex(m, &bio_read);
                BIO_meth_set_ctrl(m, &bio_ctrl);
                BIO_meth_set_create(m, [](BIO* b) {
                    BIO_set_init(b, 1);
                    return 1;
                });
            }
            return m;
        }();
        if (!method) throw std::bad_alloc();
        return method;
    }

    // ---- towards the transport below ------------------------------------------------

    void connection_made(transport& below) override {
        raw_ = &below;
        below.resume_reading();  // loop.start_tls: the protocol may have paused it
        timer_ = loop_.call_later(handshake_timeout_, [this] { handshake_timed_out(); });
        do_handshake();
        release_input();
    }

    std::span<char> get_buffer(std::size_t) override {
        if (!in_) {
            in_ = allocate_read_block();
            in_start_ = in_end_ = 0;
        } else if (in_start_ > 0) {  // what OpenSSL has not read yet (a partial record) moves down
            std::memmove(in_, in_ + in_start_, in_end_ - in_start_);
            in_end_ -= in_start_;
            in_start_ = 0;
        }
        return {in_ + in_end_, block_size - in_end_};
    }

    void buffer_updated(std::size_t n) override {
        in_end_ += n;
        advance();
    }

    // The peer's TCP EOF. TLS has no half-close: the connection closes once what came
    // before it is read (later, if the protocol paused reading).
    bool eof_received() override {
        if (phase_ == phase::handshake) {
            fail({ECONNRESET, std::generic_category()}, false);
            return false;
        }
        if (phase_ == phase::open && app_paused_ && has_input()) {
            eof_pending_ = true;
            return true;
        }
        end_of_input();
        return false;
    }

    void connection_lost(std::error_code ec) override {
        lost_ = true;
        closing_ = true;
        timer_.cancel();
        soon_.cancel();
        if (phase_ == phase::handshake) {
            tell_handshake_failed(ec ? ec : std::error_code(ECONNRESET, std::generic_category()),
                                  "TLS handshake: the connection was lost");
        }
        phase_ = phase::done;
        forget_link();
        if (!app_made_) return;
        app_made_ = false;
        try {
            app_->connection_lost(error_ ? error_ : ec);
        } catch (...) {
            report_protocol_error(loop_, "connection_lost");
        }
    }

    // The transport's buffer went above its high-water mark, and back: the protocol above
    // hears it as its own (the layer keeps no buffer of its own once the handshake is done).
    void pause_writing() override {
        if (!app_made_) return;
        try {
            app_->pause_writing();
        } catch (...) {
            report_protocol_error(loop_, "pause_writing");
        }
    }
    void resume_writing() override {
        if (!app_made_) return;
        try {
            app_->resume_writing();
        } catch (...) {
            report_protocol_error(loop_, "resume_writing");
        }
    }

    // ---- towards the protocol above ----------------------------------------------------

    using transport::write;  // the std::span<const std::byte> form
    void write(std::string_view data) override {
        if (user_closed_) throw invalid_state_error("transport::write: the transport is closed");
        if (gate_ && !gate_->own_write) {
            throw invalid_state_error("transport::write: loop.sendfile is in progress");
        }
        if (data.empty()) return;
        if (phase_ == phase::handshake) {
            early_.append(data);  // sent once the handshake is done
            return;
        }
        if (phase_ != phase::open) return;  // lost, or closing after the peer's close_notify
        encrypt(data);
    }

    void write_eof() override {
        throw invalid_state_error(
            "transport::write_eof: TLS has no half-close (can_write_eof() is false)");
    }
    bool can_write_eof() const noexcept override { return false; }

    void pause_reading() override {
        if (closing_ || app_paused_) return;
        app_paused_ = true;
        if (raw_) raw_->pause_reading();
    }

    // Reading goes on; what was received meanwhile is delivered on a later iteration, as
    // asyncio does (not from inside this call, which the protocol may make while it reads).
    void resume_reading() override {
        if (closing_ || !app_paused_) return;
        app_paused_ = false;
        if (raw_) raw_->resume_reading();
        if ((has_input() || eof_pending_) && !soon_) {
            soon_ = loop_.call_soon([this] {
                soon_ = handle();
                advance();
            });
        }
    }

    bool is_reading() const noexcept override { return !app_paused_ && !closing_; }

    // Sends close_notify after what was written, then closes once the peer answers (or
    // ssl_shutdown_timeout passes). During the handshake: aborts, as asyncio does.
    void close() override {
        if (user_closed_) return;
        user_closed_ = true;
        if (closing_) return;
        closing_ = true;
        if (phase_ == phase::handshake) return abort();
        if (phase_ != phase::open) return;
        phase_ = phase::shutdown;
        (void)SSL_shutdown(ssl_);
        ERR_clear_error();
        flush_out();
        timer_ = loop_.call_later(shutdown_timeout_, [this] {
            error_ = std::make_error_code(std::errc::timed_out);
            if (raw_) raw_->abort();
        });
        drain_after_shutdown();
        release_input();
    }

    void abort() override {
        user_closed_ = true;
        closing_ = true;
        // A start_tls waiting for the handshake fails now, not never.
        if (phase_ == phase::handshake) {
            tell_handshake_failed(std::make_error_code(std::errc::connection_aborted),
                                  "TLS handshake: the transport was closed");
        }
        phase_ = phase::done;
        early_.clear();
        if (raw_) raw_->abort();
    }

    bool is_closing() const noexcept override { return closing_; }

    extra_info get_extra_info(std::string_view name) const override {
        if (lost_) return {};
        if (name == "ssl_object") return extra_info(static_cast<void*>(ssl_));
        if (name == "cipher") {
            const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
            return c ? extra_info(std::string(SSL_CIPHER_get_name(c))) : extra_info();
        }
        if (name == "ssl_version") {
            return phase_ == phase::handshake ? extra_info()
                                              : extra_info(std::string(SSL_get_version(ssl_)));
        }
        if (name == "alpn_protocol") {
            const unsigned char* p = nullptr;
            unsigned size = 0;
            SSL_get0_alpn_selected(ssl_, &p, &size);
            if (size == 0) return {};
            return extra_info(std::string(reinterpret_cast<const char*>(p), size));
        }
        if (name == "peercert") return peer_certificate();
        return raw_ ? raw_->get_extra_info(name) : extra_info();
    }

    std::size_t get_write_buffer_size() const noexcept override {
        return (raw_ ? raw_->get_write_buffer_size() : 0) + early_.size();
    }
    void set_write_buffer_limits(std::size_t high, std::size_t low) override {
        if (raw_) raw_->set_write_buffer_limits(high, low);
    }
    write_buffer_limits get_write_buffer_limits() const noexcept override {
        if (raw_) return raw_->get_write_buffer_limits();
        return {default_write_high_water / 4, default_write_high_water};
    }

private:
    enum class phase : unsigned char { handshake, open, shutdown, done };

    // Never a resource of the loop itself: the transport below is, and frees this layer.
    void on_loop_close() noexcept override {}

    // loop.sendfile over TLS: always by reads and writes (the file's bytes must be
    // encrypted), through the transport below's gate, which wakes the sendfile when that
    // transport's buffer empties and tells it when the transport goes.
    bool set_sendfile_gate(sendfile_gate* gate) noexcept override {
        if (gate && (!raw_ || phase_ != phase::open)) return false;
        if (!raw_ || !sendfile_access::set_gate(*raw_, gate)) return false;
        gate_ = gate;
        return true;
    }

    bool has_input() const noexcept { return in_end_ > in_start_ || SSL_has_pending(ssl_); }

    // New ciphertext, or reading resumed: on with whatever the phase is.
    void advance() noexcept {
        if (phase_ == phase::handshake) do_handshake();
        if (phase_ == phase::open) do_read();
        if (phase_ == phase::shutdown) drain_after_shutdown();
        if (eof_pending_ && !app_paused_ && !has_input()) {
            eof_pending_ = false;
            end_of_input();
        }
        release_input();
    }

    void do_handshake() noexcept {
        const int r = SSL_do_handshake(ssl_);
        flush_out();
        if (r == 1) return handshake_done();
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        fail(take_ssl_error(ssl_, {ECONNRESET, std::generic_category()}), false);
    }

    void handshake_done() noexcept {
        timer_.cancel();
        phase_ = phase::open;
        if (link_ && !link_->done.done()) link_->done.set_result();
        if (call_made_) {
            app_made_ = true;
            try {
                if (app_buffered_) {
                    static_cast<buffered_protocol&>(*app_).connection_made(*this);
                } else {
                    static_cast<protocol&>(*app_).connection_made(*this);
                }
            } catch (...) {
                return protocol_failed("connection_made");
            }
        }
        if (!early_.empty() && phase_ == phase::open) {
            std::string early = std::move(early_);
            early_ = std::string();
            encrypt(early);
        }
    }

    // Records to the protocol above, as long as it reads and whole ones are here. A peek
    // first: a buffered protocol is asked for its buffer only when there are bytes to put
    // in it (a record may carry none: a session ticket).
    void do_read() noexcept {
        while (phase_ == phase::open && !app_paused_) {
            if (SSL_pending(ssl_) == 0) {
                char probe;
                std::size_t got = 0;
                const int r = SSL_peek_ex(ssl_, &probe, 1, &got);
                const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
                flush_out();  // a post-handshake message may have an answer
                if (r != 1) return read_failed(e);
            }
            std::span<char> buffer;
            try {
                buffer = app_buffered_
                             ? static_cast<buffered_protocol&>(*app_).get_buffer(block_size)
                             : net_access::read_buffer(loop_);
                if (buffer.empty()) throw invalid_state_error("get_buffer() returned an empty buffer");
            } catch (...) {
                return protocol_failed("get_buffer");
            }
            std::size_t filled = 0;
            int r = 1;
            int e = SSL_ERROR_NONE;
            while (filled < buffer.size()) {
                std::size_t n = 0;
                r = SSL_read_ex(ssl_, buffer.data() + filled, buffer.size() - filled, &n);
                if (r != 1) {
                    // Now: what the protocol writes from data_received (SSL_write) resets
                    // the SSL's last error before read_failed would ask for it.
                    e = SSL_get_error(ssl_, r);
                    break;
                }
                filled += n;
            }
            if (filled > 0) {
                try {
                    if (app_buffered_) {
                        static_cast<buffered_protocol&>(*app_).buffer_updated(filled);
                    } else {
                        static_cast<protocol&>(*app_).data_received(
                            std::string_view(buffer.data(), filled));
                    }
                } catch (...) {
                    return protocol_failed(app_buffered_ ? "buffer_updated" : "data_received");
                }
            }
            if (r != 1) return read_failed(e);
        }
    }

    // SSL_read or SSL_peek stopped (`e`: SSL_get_error's word, taken at once): for more
    // ciphertext, at the peer's close_notify, or on an error.
    void read_failed(int e) noexcept {
        // Waiting for more leaves nothing in OpenSSL's error queue: no clearing (a message
        // of a 1 KiB echo costs 390 instructions less).
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
        if (e == SSL_ERROR_ZERO_RETURN) return end_of_input();
        fail(take_ssl_error(ssl_, {ECONNRESET, std::generic_category()}), false);
    }

    // The peer will send no more (its close_notify, or its EOF without one: asyncio
    // treats both alike). The protocol hears eof_received (what it returns cannot keep a
    // TLS connection half open), then the connection closes.
    void end_of_input() noexcept {
        if (phase_ == phase::open) {
            phase_ = phase::done;
            if (app_made_) {
                try {
                    if (app_buffered_) {
                        (void)static_cast<buffered_protocol&>(*app_).eof_received();
                    } else {
                        (void)static_cast<protocol&>(*app_).eof_received();
                    }
                } catch (...) {
                    return protocol_failed("eof_received");
                }
            }
            (void)SSL_shutdown(ssl_);  // our close_notify, after what was written
            ERR_clear_error();
            flush_out();
        }
        phase_ = phase::done;
        closing_ = true;
        timer_.cancel();
        if (raw_) raw_->close();
    }

    // After our close_notify: what comes is read and dropped until the peer's.
    void drain_after_shutdown() noexcept {
        const std::span<char> scratch = net_access::read_buffer(loop_);
        for (;;) {
            std::size_t n = 0;
            const int r = SSL_read_ex(ssl_, scratch.data(), scratch.size(), &n);
            if (r == 1) continue;
            const int e = SSL_get_error(ssl_, r);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            break;  // the peer's close_notify, or an error: either way, the end
        }
        phase_ = phase::done;
        timer_.cancel();
        if (raw_) raw_->close();
    }

    void encrypt(std::string_view data) noexcept {
        std::size_t n = 0;
        const int r = SSL_write_ex(ssl_, data.data(), data.size(), &n);
        flush_out();
        if (r != 1) fail(take_ssl_error(ssl_, {EPIPE, std::generic_category()}), false);
    }

    // A fatal TLS error: the connection ends with it (the protocol's connection_lost, or the
    // waiting connect call's exception). The alert OpenSSL made goes out first, unless
    // `now` (a peer that does not answer is not waited for).
    void fail(std::error_code ec, bool now) noexcept {
        if (phase_ == phase::done) return;
        const bool in_handshake = phase_ == phase::handshake;
        phase_ = phase::done;
        closing_ = true;
        error_ = ec;
        early_.clear();
        timer_.cancel();
        if (in_handshake) tell_handshake_failed(ec, "TLS handshake failed");
        flush_out();
        if (!raw_) return;
        if (now) {
            raw_->abort();
        } else {
            raw_->close();
        }
    }

    void handshake_timed_out() noexcept {
        timer_ = timer_handle();
        fail(std::make_error_code(std::errc::timed_out), true);
    }

    // The connect call waiting for the handshake fails with `ec`; a server's connection
    // that nobody waits for is only reported in debug mode, as asyncio does.
    void tell_handshake_failed(std::error_code ec, const char* what) noexcept {
        try {
            if (link_ && !link_->done.done()) {
                const char* how = ec == std::errc::timed_out ? "TLS handshake timed out" : what;
                link_->done.set_exception(std::make_exception_ptr(std::system_error(ec, how)));
            } else if (!link_ && loop_.get_debug()) {
                loop_.call_exception_handler(
                    {what, std::make_exception_ptr(std::system_error(ec, what)), {}});
            }
        } catch (...) {
        }
    }

    void protocol_failed(const char* hook) noexcept {
        report_protocol_error(loop_, hook);
        error_ = std::make_error_code(std::errc::connection_aborted);
        abort();
    }

    void forget_link() noexcept {
        if (!link_) return;
        link_->upper = nullptr;
        link_->back = nullptr;
        link_ = nullptr;
    }

    extra_info peer_certificate() const {
        X509* cert = SSL_get1_peer_certificate(ssl_);
        if (!cert) return {};
        std::string pem;
        if (BIO* mem = BIO_new(BIO_s_mem())) {
            if (PEM_write_bio_X509(mem, cert) == 1) {
                char* data = nullptr;
                const long size = BIO_get_mem_data(mem, &data);
                if (size > 0) pem.assign(data, static_cast<std::size_t>(size));
            }
            BIO_free(mem);
        }
        X509_free(cert);
        return pem.empty() ? extra_info() : extra_info(std::move(pem));
    }

    // ---- the ciphertext's way in and out ------------------------------------------------

    // The block of ciphertext goes back once OpenSSL has read all of it.
    void release_input() noexcept {
        if (in_ && in_start_ == in_end_) {
            deallocate_read_block(in_);
            in_ = nullptr;
            in_start_ = in_end_ = 0;
        }
    }

    // The records made so far go down to the transport, as one write.
    void flush_out() noexcept {
        if (out_size_ == 0) return;
        write_below(std::string_view(out_, out_size_));
        out_size_ = 0;
        deallocate_read_block(out_);
        out_ = nullptr;
    }

    void write_below(std::string_view data) noexcept {
        if (!raw_ || raw_->is_closing()) return;  // closed below: nothing more can go out
        // While loop.sendfile runs, the transport below lets only its writes through: every
        // record of this layer is one (the file's, and what TLS itself sends meanwhile).
        const bool own = gate_ && gate_->own_write;
        if (gate_) gate_->own_write = true;
        try {
            raw_->write(data);
        } catch (...) {
        }
        if (gate_) gate_->own_write = own;
    }

    static int bio_write(BIO* b, const char* data, std::size_t size, std::size_t* written) {
        auto* self = static_cast<tls_layer*>(BIO_get_data(b));
        BIO_clear_retry_flags(b);
        if (self->out_size_ + size > block_size) self->flush_out();
        if (size > block_size) {
            self->write_below(std::string_view(data, size));
        } else {
            if (!self->out_) {
                try {
                    self->out_ = allocate_read_block();
                } catch (...) {
                    return 0;
                }
            }
            std::memcpy(self->out_ + self->out_size_, data, size);
            self->out_size_ += size;
        }
        *written = size;
        return 1;
    }

    static int bio_read(BIO* b, char* out, std::size_t size, std::size_t* read) {
        auto* self = static_cast<tls_layer*>(BIO_get_data(b));
        BIO_clear_retry_flags(b);
        const std::size_t have = self->in_end_ - self->in_start_;
        if (have == 0) {
            BIO_set_retry_read(b);
            return 0;
        }
        const std::size_t n = size < have ? size : have;
        std::memcpy(out, self->in_ + self->in_start_, n);
        self->in_start_ += n;
        *read = n;
        return 1;
    }

    static long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

    loop_base& loop_;
    transport* raw_ = nullptr;           // the transport below (it owns this layer)
    std::unique_ptr<base_protocol> app_;  // the protocol above
    SSL* ssl_;
    tls_handshake_link* link_;           // the connect call waiting for the handshake
    timer_handle timer_;                 // the handshake's or the close's time limit
    handle soon_;                        // delivery after resume_reading
    sendfile_gate* gate_ = nullptr;      // the loop.sendfile that runs, if one does
    std::string early_;                  // written before the handshake was done
    char* in_ = nullptr;                 // ciphertext received: [in_start_, in_end_) unread
    std::size_t in_start_ = 0;
    std::size_t in_end_ = 0;
    char* out_ = nullptr;                // records made, not yet written below
    std::size_t out_size_ = 0;
    duration handshake_timeout_;
    duration shutdown_timeout_;
    std::error_code error_;              // the TLS failure the connection ends with
    phase phase_ = phase::handshake;
    bool app_buffered_;
    bool call_made_;                     // the protocol hears connection_made after the handshake
    bool app_made_;                      // the protocol has its connection (and will hear its loss)
    bool app_paused_ = false;
    bool closing_ = false;
    bool user_closed_ = false;
    bool lost_ = false;
    bool eof_pending_ = false;           // the peer's EOF came while reading was paused
};

}  // namespace detail

// The maker of an ssl_context's layers (ssl_option reaches it, net/ssl_option.hpp).
template <>
struct detail::tls_entry<ssl_context> {
    static detail::tls_layer_factory make(const ssl_context& ctx, const tls_options& o) {
        std::string name = o.server_hostname ? o.server_hostname : "";
        const bool server_side = o.server_side;
        if (!server_side && ctx.get_check_hostname() && name.empty()) {
            throw std::invalid_argument(
                "ssl: the context checks host names: give server_hostname (or a host)");
        }
        return [ctx, name = std::move(name), server_side, handshake = o.ssl_handshake_timeout,
                shutdown = o.ssl_shutdown_timeout](loop_base& loop, owned_stream_protocol& app,
                                                   tls_handshake_link* link) {
            SSL* ssl = SSL_new(ctx.native_handle());
            if (!ssl) throw_ssl_error("ssl: SSL_new");
            BIO* bio = BIO_new(tls_layer::bio_method());
            if (!bio) {
                SSL_free(ssl);
                throw std::bad_alloc();
            }
            SSL_set_bio(ssl, bio, bio);  // one reference, for both ways
            if (server_side) {
                SSL_set_accept_state(ssl);
            } else {
                SSL_set_connect_state(ssl);
                if (!configure_client(ssl, name, ctx.get_check_hostname())) {
                    SSL_free(ssl);
                    throw_ssl_error("ssl: server_hostname " + name);
                }
            }
            tls_layer* layer;
            try {
                layer = new tls_layer(loop, ssl, app, link, handshake, shutdown);
            } catch (...) {
                SSL_free(ssl);
                throw;
            }
            return tls_layer_made{owned_stream_protocol(std::unique_ptr<buffered_protocol>(layer)),
                                  layer};
        };
    }

private:
    // SNI (a name, not an address) and the name or address the certificate must carry.
    static bool configure_client(SSL* ssl, const std::string& name, bool check) {
        if (name.empty()) return true;
        ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str());
        const bool is_address = ip != nullptr;
        ASN1_OCTET_STRING_free(ip);
        if (!is_address && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return false;
        if (!check) return true;
        if (is_address) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
        return SSL_set1_host(ssl, name.c_str()) == 1;
    }
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/tls/tls_layer.hpp

// begin file ioloop/detail/macro_unscope.hpp
// ioloop: the internal macros end here (nlohmann/json's macro_unscope), at the end of
// <ioloop/ioloop.hpp> and of <ioloop/ssl.hpp>; IOLOOP_HAS_*, IOLOOP_DEFAULT_BACKEND and the
// version stay. No include guard: it is meant to be included again.
// IWYU pragma: private
#undef IOLOOP_NOINLINE
#undef IOLOOP_ALWAYS_INLINE
#undef IOLOOP_PREFETCH
#undef IOLOOP_NAMESPACE_BEGIN
#undef IOLOOP_NAMESPACE_END
#undef IOLOOP_ABI_TAG
#undef IOLOOP_ABI_CONCAT
#undef IOLOOP_ABI_CONCAT_

// end file ioloop/detail/macro_unscope.hpp

#endif
// end file ioloop/ssl.hpp
