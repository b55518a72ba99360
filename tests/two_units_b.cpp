// The second translation unit of the two-unit link test: it includes the header too and
// runs its own loop. Linking it with two_units_a.cpp checks that nothing in the header is
// defined twice, and that the header's process-wide state is shared, not duplicated.
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>

// Runs a loop of its own: `count` callbacks that add 1..count, then a timer that stops the
// loop. Returns the sum.
int run_loop_in_unit_b(int count) {
    ioloop::event_loop loop;
    int sum = 0;
    for (int i = 1; i <= count; ++i) loop.call_soon([&sum, i] { sum += i; });
    loop.call_later(std::chrono::milliseconds(1), [&loop] { loop.stop(); });
    loop.run_forever();
    return sum;
}

// Tries to run a loop of its own; returns whether run_forever refused because a loop is
// already running on this thread (which only unit a's loop can be).
bool unit_b_sees_a_running_loop() {
    ioloop::event_loop loop;
    loop.stop();
    try {
        loop.run_forever();
    } catch (const ioloop::invalid_state_error&) {
        return true;
    }
    return false;
}

// Tries to take `sig` with a loop of this unit; returns whether it was refused because
// another loop (unit a's) owns it.
bool unit_b_sees_signal_owned(int sig) {
    ioloop::event_loop loop;
    try {
        loop.add_signal_handler(sig, [] {});
    } catch (const ioloop::invalid_state_error&) {
        return true;
    }
    loop.remove_signal_handler(sig);
    return false;
}
