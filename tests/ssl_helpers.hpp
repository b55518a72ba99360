// What the TLS tests share: where tests/make_certs.sh put the certificates (CTest passes
// the directory in IOLOOP_TEST_CERTS), the contexts a server and a client of the tests
// use, and a file's text (a certificate, to compare with what the peer presented).
#ifndef IOLOOP_TESTS_SSL_HELPERS_HPP
#define IOLOOP_TESTS_SSL_HELPERS_HPP

#include <ioloop/ioloop.hpp>
#include <ioloop/ssl.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

namespace ssltest {

// The directory of the certificates. Run outside CTest, the variable must be set by hand:
//   bash tests/make_certs.sh /tmp/certs && IOLOOP_TEST_CERTS=/tmp/certs ./test_ssl_epoll
inline std::string cert_dir() {
    const char* dir = std::getenv("IOLOOP_TEST_CERTS");
    REQUIRE_MESSAGE((dir != nullptr && *dir != '\0'),
                    "IOLOOP_TEST_CERTS is not set: run tests/make_certs.sh DIR and set it to DIR "
                    "(CTest does both: the ssl_certs fixture)");
    return dir;
}

// A file of that directory: "ca.pem", "server.key", ...
inline std::string cert(std::string_view name) { return cert_dir() + "/" + std::string(name); }

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot read " << path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A server's context presenting the certificate `name` (server, untrusted, wronghost,
// expired): purpose::client_auth, as asyncio's servers make theirs.
inline ioloop::ssl_context server_context(std::string_view name = "server") {
    ioloop::ssl_context ctx = ioloop::create_default_context(ioloop::purpose::client_auth);
    ctx.load_cert_chain(cert(std::string(name) + ".pem"), cert(std::string(name) + ".key"));
    return ctx;
}

// A client's context as a user makes one (system roots, peer and host name checked) that
// also trusts the tests' CA.
inline ioloop::ssl_context client_context() {
    ioloop::ssl_context ctx = ioloop::create_default_context();
    ctx.load_verify_locations(cert("ca.pem"));
    return ctx;
}

}  // namespace ssltest

#endif
