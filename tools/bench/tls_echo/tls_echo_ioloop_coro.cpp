// TLS echo server on ioloop's coroutine front end: the plain echo_ioloop_coro
// (../echo/echo_ioloop_coro.cpp) served through start_server(..., {.ssl = &ctx}): a task
// per connection that reads what is there, writes it back and drains, as asyncio's echo
// server is written.
//
//   tls_echo_ioloop_coro PORT CERT KEY
//
// The context, the suite and the backlog as tls_echo_ioloop. SIGINT and SIGTERM close the
// server; serve_forever then returns, ioloop::run cancels the connections' tasks, and the
// exit status is 0.
#include "tls_common.h"

#include <ioloop/ioloop.hpp>
#include <ioloop/ssl.hpp>

#include <csignal>
#include <string>
#include <system_error>

namespace {

ioloop::coro<void> echo(ioloop::stream_reader reader, ioloop::stream_writer writer) {
    try {
        for (;;) {
            std::string data = co_await reader.read(64 * 1024);
            if (data.empty()) break;  // EOF (close_notify, or a close without it)
            writer.write(data);
            co_await writer.drain();
        }
    } catch (const std::system_error&) {
        // The client reset the connection: nothing to say, the writer closes below.
    }
    writer.close();
}

ioloop::coro<void> serve(tls_echo_args args) {
    ioloop::ssl_context tls = ioloop::create_default_context(ioloop::purpose::client_auth);
    tls.load_cert_chain(args.cert, args.key);
    tls.set_minimum_version(ioloop::tls_version::tls1_3);
    tls.set_ciphersuites(TLS_BENCH_SUITE);
    ioloop::server server = co_await ioloop::start_server(echo, "127.0.0.1", args.port,
                                                           {.backlog = 1024, .ssl = &tls});
    auto& loop = ioloop::get_running_loop();
    loop.add_signal_handler(SIGINT, [&] { server.close(); });
    loop.add_signal_handler(SIGTERM, [&] { server.close(); });
    co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
    ioloop::run(serve(tls_echo_setup(argc, argv)));
    return 0;
}
