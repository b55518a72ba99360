// Footprint: the smallest timer program on ioloop -- one 1 ms call_later that prints and
// stops. No <chrono>: ioloop.hpp provides the durations its API takes (and, with libstdc++,
// only those), so a user need not pay for the whole C++20 <chrono>.
#include <cstdio>

#include <ioloop/ioloop.hpp>

int main() {
    ioloop::event_loop loop;
    loop.call_later(std::chrono::milliseconds(1), [&loop] {
        std::puts("hello");
        loop.stop();
    });
    loop.run_forever();
    loop.close();
}
