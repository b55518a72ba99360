// The first translation unit of the two-unit link test; see two_units_b.cpp.
#include <ioloop/ioloop.hpp>

#include "platform.hpp"

#include <doctest/doctest.h>

#include <csignal>

int run_loop_in_unit_b(int count);
bool unit_b_sees_a_running_loop();
bool unit_b_sees_signal_owned(int sig);

TEST_CASE("the header links from two translation units") {
    // Unit b's loop, then this unit's loop, then b's again: each runs on its own.
    CHECK(run_loop_in_unit_b(100) == 5050);

    ioloop::event_loop loop;
    int runs = 0;
    loop.call_soon([&] {
        ++runs;
        loop.stop();
    });
    loop.run_forever();
    CHECK(runs == 1);

    CHECK(run_loop_in_unit_b(10) == 55);
}

TEST_CASE("the header's per-thread and per-process state is one across translation units") {
    ioloop::event_loop loop;

    // "A loop is running on this thread" is seen from unit b while this unit's loop runs.
    bool refused = false;
    loop.call_soon([&] {
        refused = unit_b_sees_a_running_loop();
        loop.stop();
    });
    loop.run_forever();
    CHECK(refused);
    CHECK_FALSE(unit_b_sees_a_running_loop());  // and not once it has returned

    // A signal owned by this unit's loop is owned for unit b too.
    loop.add_signal_handler(test::other_test_signal, [] {});
    CHECK(unit_b_sees_signal_owned(test::other_test_signal));
    CHECK(loop.remove_signal_handler(test::other_test_signal));
    CHECK_FALSE(unit_b_sees_signal_owned(test::other_test_signal));
}
