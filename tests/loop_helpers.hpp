// Helpers the test files share: run a loop for exactly one iteration, or until a callback
// stops it, with a watchdog that fails the test instead of hanging.
#ifndef IOLOOP_TESTS_LOOP_HELPERS_HPP
#define IOLOOP_TESTS_LOOP_HELPERS_HPP

#include <ioloop/ioloop.hpp>

#include <doctest/doctest.h>

#include <chrono>

namespace test {

// Runs exactly one iteration: a stop() made before run_forever makes it run one.
inline void run_one_iteration(ioloop::event_loop& loop) {
    loop.stop();
    loop.run_forever();
}

// Runs until a callback calls stop(); a timer fails the test instead of hanging. The
// timer also means the loop sleeps in its poll with a finite timeout, nothing more.
// (test_timers.cpp has its own watchdog on a thread: there, timers are under test.)
inline void run_with_watchdog(ioloop::event_loop& loop,
                              std::chrono::seconds limit = std::chrono::seconds(30)) {
    ioloop::timer_handle watchdog = loop.call_later(limit, [&loop] {
        FAIL_CHECK("watchdog: the loop did not stop in time");
        loop.stop();
    });
    loop.run_forever();
    watchdog.cancel();
}

}  // namespace test

#endif
