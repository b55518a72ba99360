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

#include "ioloop/detail/config.hpp"
#include "ioloop/tls/ssl_error.hpp"

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
