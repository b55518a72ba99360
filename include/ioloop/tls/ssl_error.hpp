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

#include "ioloop/detail/config.hpp"

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
