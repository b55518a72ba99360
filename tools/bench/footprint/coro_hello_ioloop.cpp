// Footprint: the smallest coroutine program on ioloop -- one coroutine that sleeps 1 ms and
// prints, run to completion by ioloop::run. Compile time at -O0 is compared with
// coro_hello_asio.cpp. No <chrono>, as in hello_ioloop.cpp.
#include <cstdio>

#include <ioloop/ioloop.hpp>

ioloop::coro<void> amain() {
    co_await ioloop::sleep(std::chrono::milliseconds(1));
    std::puts("hello");
}

int main() { ioloop::run(amain()); }
