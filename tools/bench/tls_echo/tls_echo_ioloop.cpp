// TLS echo server on ioloop's callback front end: the plain echo_ioloop
// (../echo/echo_ioloop.cpp) served through create_server(..., {.ssl = &ctx}). The protocol
// is the same one: data_received writes back what it is given; the TLS layer between the
// transport and the protocol decrypts and encrypts.
//
//   tls_echo_ioloop PORT CERT KEY
//
// The context is create_default_context(purpose::client_auth) (a server's) with the
// certificate chain and key, TLS 1.3 only and the one suite TLS_BENCH_SUITE. The backlog
// is 1024, so the 500 connections of an idle batch (tls_idle_rss) queue without SYN
// retries; asio listens with SOMAXCONN. SIGINT and SIGTERM stop the loop through
// add_signal_handler; the exit status is 0.
#include "tls_common.h"

#include <ioloop/ioloop.hpp>
#include <ioloop/ssl.hpp>

#include <csignal>
#include <memory>

namespace {

class echo final : public ioloop::protocol {
public:
    void connection_made(ioloop::transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    ioloop::transport* transport_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
    const tls_echo_args args = tls_echo_setup(argc, argv);
    ioloop::ssl_context tls = ioloop::create_default_context(ioloop::purpose::client_auth);
    tls.load_cert_chain(args.cert, args.key);
    tls.set_minimum_version(ioloop::tls_version::tls1_3);
    tls.set_ciphersuites(TLS_BENCH_SUITE);
    ioloop::event_loop loop;
    ioloop::server server = loop.run_until_complete(loop.create_server(
        [] { return std::make_unique<echo>(); }, "127.0.0.1", args.port,
        {.backlog = 1024, .ssl = &tls}));
    loop.add_signal_handler(SIGINT, [&] { loop.stop(); });
    loop.add_signal_handler(SIGTERM, [&] { loop.stop(); });
    loop.run_forever();
    return 0;
}
