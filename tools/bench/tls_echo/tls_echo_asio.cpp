// TLS echo server on asio's ssl::stream (Debian's asio 1.22, standalone, over OpenSSL 3).
//
//   tls_echo_asio PORT CERT KEY
//
// The plain echo_asio (../echo/echo_asio.cpp) with the socket wrapped in an
// asio::ssl::stream: a session per connection, owned through shared_ptr by its pending
// handler, first async_handshake (server), then async_read_some into a 16 KiB member
// buffer (the largest message, as echo_asio) and async_write of what arrived, then read
// again. The context is asio's tls_server with the certificate chain and key, TLS 1.3 only
// and the one suite TLS_BENCH_SUITE, set on its native SSL_CTX (asio has no call for TLS
// 1.3 suites). Everything else is asio's default: its engine sets SSL_MODE_RELEASE_BUFFERS
// and moves records through a BIO pair into its own 17 KiB buffers. io_context::executor_type
// instead of any_io_executor and one io_context (concurrency hint 1) on one thread, as
// echo_asio. SIGINT and SIGTERM stop the io_context; the exit status is 0.
#include "tls_common.h"

#include <cstddef>
#include <cstdio>
#include <memory>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>

namespace {

using executor = asio::io_context::executor_type;
using tcp = asio::ip::tcp;
using socket_type = asio::basic_stream_socket<tcp, executor>;
using acceptor_type = asio::basic_socket_acceptor<tcp, executor>;
using stream_type = asio::ssl::stream<socket_type>;

class session : public std::enable_shared_from_this<session> {
public:
    session(socket_type socket, asio::ssl::context& ctx) : stream_(std::move(socket), ctx) {}

    void start() {
        stream_.async_handshake(asio::ssl::stream_base::server,
                                [self = shared_from_this()](std::error_code ec) {
                                    if (!ec) self->read();
                                });
    }

private:
    void read() {
        stream_.async_read_some(asio::buffer(data_),
                                [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                    if (!ec) self->write(n);
                                });
    }

    void write(std::size_t n) {
        asio::async_write(stream_, asio::buffer(data_, n),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (!ec) self->read();
                          });
    }

    stream_type stream_;
    char data_[16384];
};

void accept(acceptor_type& acceptor, asio::ssl::context& ctx) {
    acceptor.async_accept([&acceptor, &ctx](std::error_code ec, socket_type socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<session>(std::move(socket), ctx)->start();
        }
        accept(acceptor, ctx);
    });
}

} // namespace

int main(int argc, char** argv) {
    const tls_echo_args args = tls_echo_setup(argc, argv);
    asio::ssl::context tls(asio::ssl::context::tls_server);
    tls.use_certificate_chain_file(args.cert);
    tls.use_private_key_file(args.key, asio::ssl::context::pem);
    if (SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(tls.native_handle(), TLS_BENCH_SUITE) != 1) {
        std::fputs("tls_echo_asio: cannot restrict the context to TLS 1.3 and " TLS_BENCH_SUITE "\n",
                   stderr);
        return 1;
    }
    asio::io_context ctx{1};
    acceptor_type acceptor(ctx.get_executor(),
                           tcp::endpoint(asio::ip::address_v4::loopback(), args.port));
    asio::basic_signal_set<executor> signals(ctx.get_executor(), SIGINT, SIGTERM);
    signals.async_wait([&ctx](std::error_code, int) { ctx.stop(); });
    accept(acceptor, tls);
    ctx.run();
    return 0;
}
