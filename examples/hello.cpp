// The first program: one callback now, one timer later, then the loop stops.
//   g++ -std=c++20 -I single_include examples/hello.cpp -o hello && ./hello
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <cstdio>

int main() {
    ioloop::event_loop loop;  // asyncio.new_event_loop()
    loop.call_soon([] { std::puts("Hello from the event loop"); });
    loop.call_later(std::chrono::milliseconds(100), [&loop] {
        std::puts("...and from a timer, 100 ms later");
        loop.stop();
    });
    loop.run_forever();
    loop.close();
}
