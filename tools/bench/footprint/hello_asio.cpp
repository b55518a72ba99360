// Footprint: asio's equivalent of hello_ioloop.cpp -- one 1 ms steady_timer that prints.
// As there, no <chrono> of our own: steady_timer.hpp provides the durations.
#include <cstdio>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

int main() {
    asio::io_context ctx;
    asio::steady_timer timer(ctx, std::chrono::milliseconds(1));
    timer.async_wait([](const asio::error_code&) { std::puts("hello"); });
    ctx.run();
}
