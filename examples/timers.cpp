// Timers: call_later and call_at fire in deadline order whatever order they were
// scheduled in; a cancelled timer never fires; a periodic timer re-arms itself.
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

int main() {
    ioloop::event_loop loop;
    const auto start = loop.time();
    auto say = [&](const char* what) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(loop.time() - start);
        std::printf("%4lld ms  %s\n", static_cast<long long>(ms.count()), what);
    };

    loop.call_later(300ms, [&] { say("third (call_later 300 ms)"); });
    loop.call_later(100ms, [&] { say("first (call_later 100 ms)"); });
    loop.call_at(start + 200ms, [&] { say("second (call_at start + 200 ms)"); });

    ioloop::timer_handle never = loop.call_later(150ms, [&] { say("never printed"); });
    never.cancel();

    // A periodic timer is a callback that schedules its next run, like asyncio's.
    int ticks = 0;
    struct ticker {
        ioloop::event_loop& loop;
        int& ticks;
        void operator()() const {
            std::printf("         tick %d\n", ++ticks);
            if (ticks < 4) loop.call_later(70ms, ticker{loop, ticks});
        }
    };
    loop.call_later(70ms, ticker{loop, ticks});

    loop.call_later(400ms, [&] {
        say("done");
        loop.stop();
    });
    loop.run_forever();
    loop.close();
}
