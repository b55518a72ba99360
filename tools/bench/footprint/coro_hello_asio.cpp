// Footprint: asio's equivalent of coro_hello_ioloop.cpp -- one coroutine, co_spawn'd
// detached, that waits 1 ms on a steady_timer with use_awaitable and prints. As there, no
// <chrono> of our own: steady_timer.hpp provides the durations.
#include <cstdio>

// Asio 1.22 turns its coroutine support on under clang only when <experimental/coroutine>
// exists (libc++ before 14); clang with libstdc++ has C++20 <coroutine>, which asio then
// uses as it does under g++.
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

asio::awaitable<void> amain() {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
    co_await timer.async_wait(asio::use_awaitable);
    std::puts("hello");
}

int main() {
    asio::io_context ctx;
    asio::co_spawn(ctx, amain(), asio::detached);
    ctx.run();
}
