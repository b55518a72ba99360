// add_signal_handler / remove_signal_handler: delivery on the loop thread, ownership by one
// loop, invalid signals, and restoring the disposition a signal had before.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <system_error>
#include <thread>

#include <signal.h>
#include <unistd.h>

using namespace std::chrono_literals;
using test::run_one_iteration;
using test::run_with_watchdog;

namespace {

// A plain sigaction handler that counts, installed for the lifetime of this object, and
// the disposition before it restored afterwards. It is the "previous disposition" that
// the loop must give back; it also keeps a stray signal from killing the test process.
volatile std::sig_atomic_t plain_hits = 0;
extern "C" void plain_handler(int) { plain_hits = plain_hits + 1; }

class plain_disposition {
public:
    explicit plain_disposition(int sig) : sig_(sig) {
        struct sigaction sa {};
        sa.sa_handler = &plain_handler;
        sigemptyset(&sa.sa_mask);
        REQUIRE(::sigaction(sig_, &sa, &saved_) == 0);
        plain_hits = 0;
    }
    ~plain_disposition() { ::sigaction(sig_, &saved_, nullptr); }
    plain_disposition(const plain_disposition&) = delete;
    plain_disposition& operator=(const plain_disposition&) = delete;

    // Whether plain_handler is the signal's handler right now.
    bool installed() const {
        struct sigaction now {};
        ::sigaction(sig_, nullptr, &now);
        return now.sa_handler == &plain_handler;
    }

private:
    int sig_;
    struct sigaction saved_ {};
};

}  // namespace

TEST_CASE("a signal runs its handler on the loop thread") {
    INFO("backend: " << ioloop::event_loop::backend_type::name);
    plain_disposition guard(SIGUSR1);
    ioloop::event_loop loop;
    const std::thread::id loop_thread = std::this_thread::get_id();
    int runs = 0;
    std::thread::id ran_on;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++runs;
        ran_on = std::this_thread::get_id();
        loop.stop();
    });

    SUBCASE("sent with kill() before the loop runs") {
        REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
        run_with_watchdog(loop);
        CHECK(runs == 1);
        CHECK(ran_on == loop_thread);
    }

    SUBCASE("sent from another thread while the loop sleeps in its poll") {
        std::atomic<bool> started{false};
        loop.call_soon([&] { started.store(true); });
        std::thread sender([&] {
            while (!started.load()) std::this_thread::yield();
            CHECK(::kill(::getpid(), SIGUSR1) == 0);
        });
        run_with_watchdog(loop);
        sender.join();
        CHECK(runs == 1);
        CHECK(ran_on == loop_thread);
    }

    CHECK(plain_hits == 0);  // the loop's handler replaced the plain one
    CHECK(loop.remove_signal_handler(SIGUSR1));
}

TEST_CASE("a burst of signals runs the handler at least once; the loop keeps running") {
    plain_disposition guard(SIGUSR1);
    ioloop::event_loop loop;
    int runs = 0;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++runs;
        loop.stop();
    });
    for (int i = 0; i < 3; ++i) REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    run_with_watchdog(loop);
    CHECK(runs >= 1);
    CHECK(runs <= 3);

    // The loop and the handler are still in business: other callbacks run, and the next
    // signal runs the handler again.
    bool other_ran = false;
    loop.call_soon([&] { other_ran = true; });
    run_one_iteration(loop);
    CHECK(other_ran);
    const int before = runs;
    REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
    run_with_watchdog(loop);
    CHECK(runs == before + 1);
    CHECK(plain_hits == 0);
    CHECK(loop.remove_signal_handler(SIGUSR1));
}

TEST_CASE("add_signal_handler again replaces the handler") {
    plain_disposition guard(SIGUSR2);
    ioloop::event_loop loop;
    int first = 0;
    int second = 0;
    loop.add_signal_handler(SIGUSR2, [&] { ++first; });
    loop.add_signal_handler(SIGUSR2, [&] {
        ++second;
        loop.stop();
    });
    REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
    run_with_watchdog(loop);
    CHECK(first == 0);
    CHECK(second == 1);
    CHECK(loop.remove_signal_handler(SIGUSR2));
    CHECK(guard.installed());
}

TEST_CASE("remove_signal_handler returns true then false and restores the previous disposition") {
    plain_disposition guard(SIGUSR2);
    ioloop::event_loop loop;
    CHECK_FALSE(loop.remove_signal_handler(SIGUSR2));  // nothing yet

    int loop_runs = 0;
    loop.add_signal_handler(SIGUSR2, [&] { ++loop_runs; });
    CHECK_FALSE(guard.installed());
    CHECK(loop.remove_signal_handler(SIGUSR2));
    CHECK_FALSE(loop.remove_signal_handler(SIGUSR2));
    CHECK(guard.installed());

    // The original handler runs again, synchronously in raise(); the loop's does not.
    REQUIRE(::raise(SIGUSR2) == 0);
    CHECK(plain_hits == 1);
    run_one_iteration(loop);
    CHECK(loop_runs == 0);
}

TEST_CASE("a signal that arrived but whose handler was removed before it ran is dropped") {
    plain_disposition guard(SIGUSR2);
    ioloop::event_loop loop;
    int runs = 0;
    loop.add_signal_handler(SIGUSR2, [&] { ++runs; });
    REQUIRE(::raise(SIGUSR2) == 0);  // pending for the loop, not run yet
    CHECK(loop.remove_signal_handler(SIGUSR2));
    run_one_iteration(loop);
    run_one_iteration(loop);
    CHECK(runs == 0);

    // Nor does it leak into a later registration.
    loop.add_signal_handler(SIGUSR2, [&] { ++runs; });
    run_one_iteration(loop);
    CHECK(runs == 0);
    CHECK(loop.remove_signal_handler(SIGUSR2));
}

TEST_CASE("one loop at a time may handle a signal") {
    plain_disposition guard(SIGUSR1);
    ioloop::event_loop first;
    ioloop::event_loop second;
    first.add_signal_handler(SIGUSR1, [] {});
    CHECK_THROWS_AS(second.add_signal_handler(SIGUSR1, [] {}), ioloop::invalid_state_error);
    CHECK_FALSE(second.remove_signal_handler(SIGUSR1));  // the failed call registered nothing

    // The owner still gets the signal.
    int first_runs = 0;
    first.add_signal_handler(SIGUSR1, [&] {
        ++first_runs;
        first.stop();
    });
    REQUIRE(::raise(SIGUSR1) == 0);
    run_with_watchdog(first);
    CHECK(first_runs == 1);

    // Once the owner lets go, the other loop may take it.
    CHECK(first.remove_signal_handler(SIGUSR1));
    int second_runs = 0;
    CHECK_NOTHROW(second.add_signal_handler(SIGUSR1, [&] {
        ++second_runs;
        second.stop();
    }));
    REQUIRE(::raise(SIGUSR1) == 0);
    run_with_watchdog(second);
    CHECK(second_runs == 1);
    CHECK(second.remove_signal_handler(SIGUSR1));
    CHECK(plain_hits == 0);
}

TEST_CASE("invalid signal numbers throw std::system_error(invalid_argument)") {
    ioloop::event_loop loop;
    for (int sig : {0, -1, 100000, NSIG}) {
        CAPTURE(sig);
        try {
            loop.add_signal_handler(sig, [] {});
            FAIL_CHECK("no exception");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::invalid_argument);
        }
        CHECK_FALSE(loop.remove_signal_handler(sig));
    }
}

TEST_CASE("signals that cannot be caught throw std::system_error") {
    ioloop::event_loop loop;
    CHECK_THROWS_AS(loop.add_signal_handler(SIGKILL, [] {}), std::system_error);
    CHECK_THROWS_AS(loop.add_signal_handler(SIGSTOP, [] {}), std::system_error);
    CHECK_FALSE(loop.remove_signal_handler(SIGKILL));

    // The failure left no claim on the signal: another loop does not see it as owned
    // (it fails for the OS's reason again, not because "another loop" has it).
    ioloop::event_loop other;
    try {
        other.add_signal_handler(SIGKILL, [] {});
        FAIL_CHECK("no exception");
    } catch (const ioloop::invalid_state_error&) {
        FAIL_CHECK("SIGKILL is still claimed by the first loop");
    } catch (const std::system_error&) {
    }
}

TEST_CASE("close() removes the loop's signal handlers and restores the previous disposition") {
    plain_disposition guard(SIGUSR1);
    int runs = 0;
    ioloop::event_loop other;
    {
        ioloop::event_loop loop;
        loop.add_signal_handler(SIGUSR1, [&] { ++runs; });
        CHECK_FALSE(guard.installed());
        loop.close();
        CHECK(guard.installed());
        REQUIRE(::raise(SIGUSR1) == 0);
        CHECK(plain_hits == 1);
        CHECK(runs == 0);
        // Another loop may take the signal now.
        CHECK_NOTHROW(other.add_signal_handler(SIGUSR1, [] {}));
        CHECK(other.remove_signal_handler(SIGUSR1));
    }
}

TEST_CASE("destroying a loop releases its signals") {
    plain_disposition guard(SIGUSR1);
    {
        ioloop::event_loop loop;
        loop.add_signal_handler(SIGUSR1, [] {});
    }
    CHECK(guard.installed());
    ioloop::event_loop other;
    CHECK_NOTHROW(other.add_signal_handler(SIGUSR1, [] {}));
    CHECK(other.remove_signal_handler(SIGUSR1));
}
