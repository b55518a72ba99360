// Echo server on asio's C++20 coroutines (Debian's asio 1.22, standalone).
//
//   echo_asio_coro PORT
//
// Written as asio's own cpp20 coroutine echo_server example writes it: a listener
// coroutine co_awaits async_accept and co_spawns (detached) one coroutine per connection,
// which loops on `co_await async_read_some` into a buffer on its own frame and
// `co_await async_write` of what arrived; end of stream or an error leaves the loop
// through an exception, as in the example. Awaitables and tokens use
// io_context::executor_type instead of the default type-erased any_io_executor (asio's
// fastest spelling, as in tasks_asio.cpp), and one io_context (concurrency hint 1) runs
// on one thread. The buffer is ECHO_ASIO_BUFFER bytes (see the README for the size).
// SIGINT and SIGTERM arrive through an asio::signal_set and stop the io_context; the
// exit status is 0.
#include "echo_common.h"

#include <cstddef>
#include <exception>
#include <utility>

// Asio 1.22 enables co_await under clang only if <experimental/coroutine> exists; with
// libstdc++'s C++20 <coroutine> it works there as it does under g++.
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#ifndef ECHO_ASIO_BUFFER
#define ECHO_ASIO_BUFFER 16384
#endif

namespace {

using executor = asio::io_context::executor_type;
template <typename T>
using awaitable = asio::awaitable<T, executor>;
constexpr asio::use_awaitable_t<executor> use_awaitable;
using tcp = asio::ip::tcp;
using socket_type = asio::basic_stream_socket<tcp, executor>;
using acceptor_type = asio::basic_socket_acceptor<tcp, executor>;

awaitable<void> echo(socket_type socket) {
    try {
        char data[ECHO_ASIO_BUFFER];
        for (;;) {
            const std::size_t n = co_await socket.async_read_some(asio::buffer(data), use_awaitable);
            co_await asio::async_write(socket, asio::buffer(data, n), use_awaitable);
        }
    } catch (const std::exception&) {
        // asio::error::eof, or the peer reset the connection: the session is over.
    }
}

awaitable<void> listener(acceptor_type& acceptor) {
    const executor ex = co_await asio::this_coro::executor;
    for (;;) {
        socket_type socket = co_await acceptor.async_accept(use_awaitable);
        std::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        asio::co_spawn(ex, echo(std::move(socket)), asio::detached);
    }
}

} // namespace

int main(int argc, char** argv) {
    const unsigned short port = echo_setup(argc, argv);
    asio::io_context ctx{1};
    // The endpoint constructor sets SO_REUSEADDR, binds and listens (backlog SOMAXCONN).
    acceptor_type acceptor(ctx.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), port));
    asio::basic_signal_set<executor> signals(ctx.get_executor(), SIGINT, SIGTERM);
    signals.async_wait([&ctx](std::error_code, int) { ctx.stop(); });
    asio::co_spawn(ctx, listener(acceptor), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ctx.run();
    return 0;
}
