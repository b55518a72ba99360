// Echo server on asio's callbacks (Debian's asio 1.22, standalone).
//
//   echo_asio PORT
//
// Written as asio's own async_tcp_echo_server example writes it: a session object per
// connection, owned through shared_ptr by its pending handler, with its buffer as a
// member; async_read_some into the buffer, async_write of what arrived, then read again.
// Asio reads speculatively when it starts a read, and its async_write sends at once, so
// an echo costs no extra trip through the reactor. The sockets and the acceptor use
// io_context::executor_type instead of the default type-erased any_io_executor (asio's
// fastest spelling), and one io_context (concurrency hint 1) runs on one thread.
// The buffer is ECHO_ASIO_BUFFER bytes (see the README for the size chosen).
// SIGINT and SIGTERM arrive through an asio::signal_set and stop the io_context; the
// exit status is 0.
#include "echo_common.h"

#include <cstddef>
#include <memory>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/write.hpp>

#ifndef ECHO_ASIO_BUFFER
#define ECHO_ASIO_BUFFER 16384
#endif

namespace {

using executor = asio::io_context::executor_type;
using tcp = asio::ip::tcp;
using socket_type = asio::basic_stream_socket<tcp, executor>;
using acceptor_type = asio::basic_socket_acceptor<tcp, executor>;

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(socket_type socket) : socket_(std::move(socket)) {}

    void read() {
        socket_.async_read_some(asio::buffer(data_),
                                [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                    if (!ec) self->write(n);
                                });
    }

private:
    void write(std::size_t n) {
        asio::async_write(socket_, asio::buffer(data_, n),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (!ec) self->read();
                          });
    }

    socket_type socket_;
    char data_[ECHO_ASIO_BUFFER];
};

void accept(acceptor_type& acceptor) {
    acceptor.async_accept([&acceptor](std::error_code ec, socket_type socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<session>(std::move(socket))->read();
        }
        accept(acceptor);
    });
}

} // namespace

int main(int argc, char** argv) {
    const unsigned short port = echo_setup(argc, argv);
    asio::io_context ctx{1};
    // The endpoint constructor sets SO_REUSEADDR, binds and listens (backlog SOMAXCONN).
    acceptor_type acceptor(ctx.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), port));
    asio::basic_signal_set<executor> signals(ctx.get_executor(), SIGINT, SIGTERM);
    signals.async_wait([&ctx](std::error_code, int) { ctx.stop(); });
    accept(acceptor);
    ctx.run();
    return 0;
}
