// Runs one callback through the loop; exit code 0 means the target worked.
#include <ioloop/ioloop.hpp>

int main() {
    ioloop::event_loop loop;
    int ran = 0;
    loop.call_soon([&] {
        ++ran;
        loop.stop();
    });
    loop.run_forever();
    return ran == 1 ? 0 : 1;
}
