// add_signal_handler / remove_signal_handler: delivery on the loop thread, ownership by one
// loop, invalid signals, and restoring the disposition a signal had before.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <system_error>
#include <thread>

#if defined(IOLOOP_POSIX)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace std::chrono_literals;
using test::run_one_iteration;
using test::run_with_watchdog;

namespace {

// A plain C signal handler that counts, installed for the lifetime of this object, and
// the disposition before it restored afterwards. It is the "previous disposition" that
// the loop must give back; it also keeps a stray signal from killing the test process.
// std::signal, not sigaction, so that it is the same code on Windows.
volatile std::sig_atomic_t plain_hits = 0;
extern "C" void plain_handler(int sig) {
    // Windows' C runtime resets the disposition before calling a handler: take it back.
    std::signal(sig, &plain_handler);
    plain_hits = plain_hits + 1;
}

class plain_disposition {
public:
    explicit plain_disposition(int sig) : sig_(sig) {
        saved_ = std::signal(sig_, &plain_handler);
        const bool installed_it = saved_ != SIG_ERR;  // doctest cannot print a function
        REQUIRE(installed_it);
        plain_hits = 0;
    }
    ~plain_disposition() { std::signal(sig_, saved_); }
    plain_disposition(const plain_disposition&) = delete;
    plain_disposition& operator=(const plain_disposition&) = delete;

    // Whether plain_handler is the signal's handler right now (std::signal can only tell
    // by replacing it, so it puts it straight back).
    bool installed() const {
        const auto now = std::signal(sig_, SIG_IGN);
        std::signal(sig_, now);
        return now == &plain_handler;
    }

private:
    int sig_;
    void (*saved_)(int) = SIG_DFL;
};

}  // namespace

TEST_CASE("a signal runs its handler on the loop thread") {
    INFO("backend: " << ioloop::event_loop::backend_type::name);
    plain_disposition guard(test::test_signal);
    ioloop::event_loop loop;
    const std::thread::id loop_thread = std::this_thread::get_id();
    int runs = 0;
    std::thread::id ran_on;
    loop.add_signal_handler(test::test_signal, [&] {
        ++runs;
        ran_on = std::this_thread::get_id();
        loop.stop();
    });

    SUBCASE("sent to the process before the loop runs") {
        REQUIRE(test::send_signal(test::test_signal));
        run_with_watchdog(loop);
        CHECK(runs == 1);
        CHECK(ran_on == loop_thread);
    }

    SUBCASE("sent from another thread while the loop sleeps in its poll") {
        std::atomic<bool> started{false};
        loop.call_soon([&] { started.store(true); });
        std::thread sender([&] {
            while (!started.load()) std::this_thread::yield();
            CHECK(test::send_signal(test::test_signal));
        });
        run_with_watchdog(loop);
        sender.join();
        CHECK(runs == 1);
        CHECK(ran_on == loop_thread);
    }

    CHECK(plain_hits == 0);  // the loop's handler replaced the plain one
    CHECK(loop.remove_signal_handler(test::test_signal));
}

TEST_CASE("a burst of signals runs the handler at least once; the loop keeps running") {
    plain_disposition guard(test::test_signal);
    ioloop::event_loop loop;
    int runs = 0;
    loop.add_signal_handler(test::test_signal, [&] {
        ++runs;
        loop.stop();
    });
    for (int i = 0; i < 3; ++i) REQUIRE(test::send_signal(test::test_signal));
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
    REQUIRE(test::send_signal(test::test_signal));
    run_with_watchdog(loop);
    CHECK(runs == before + 1);
    CHECK(plain_hits == 0);
    CHECK(loop.remove_signal_handler(test::test_signal));
}

TEST_CASE("add_signal_handler again replaces the handler") {
    plain_disposition guard(test::other_test_signal);
    ioloop::event_loop loop;
    int first = 0;
    int second = 0;
    loop.add_signal_handler(test::other_test_signal, [&] { ++first; });
    loop.add_signal_handler(test::other_test_signal, [&] {
        ++second;
        loop.stop();
    });
    REQUIRE(test::send_signal(test::other_test_signal));
    run_with_watchdog(loop);
    CHECK(first == 0);
    CHECK(second == 1);
    CHECK(loop.remove_signal_handler(test::other_test_signal));
    CHECK(guard.installed());
}

TEST_CASE("remove_signal_handler returns true then false and restores the previous disposition") {
    plain_disposition guard(test::other_test_signal);
    ioloop::event_loop loop;
    CHECK_FALSE(loop.remove_signal_handler(test::other_test_signal));  // nothing yet

    int loop_runs = 0;
    loop.add_signal_handler(test::other_test_signal, [&] { ++loop_runs; });
    CHECK_FALSE(guard.installed());
    CHECK(loop.remove_signal_handler(test::other_test_signal));
    CHECK_FALSE(loop.remove_signal_handler(test::other_test_signal));
    CHECK(guard.installed());

    // The original handler runs again, synchronously in raise(); the loop's does not.
    REQUIRE(std::raise(test::other_test_signal) == 0);
    CHECK(plain_hits == 1);
    run_one_iteration(loop);
    CHECK(loop_runs == 0);
}

TEST_CASE("a signal that arrived but whose handler was removed before it ran is dropped") {
    plain_disposition guard(test::other_test_signal);
    ioloop::event_loop loop;
    int runs = 0;
    loop.add_signal_handler(test::other_test_signal, [&] { ++runs; });
    REQUIRE(std::raise(test::other_test_signal) == 0);  // pending for the loop, not run yet
    CHECK(loop.remove_signal_handler(test::other_test_signal));
    run_one_iteration(loop);
    run_one_iteration(loop);
    CHECK(runs == 0);

    // Nor does it leak into a later registration.
    loop.add_signal_handler(test::other_test_signal, [&] { ++runs; });
    run_one_iteration(loop);
    CHECK(runs == 0);
    CHECK(loop.remove_signal_handler(test::other_test_signal));
}

TEST_CASE("one loop at a time may handle a signal") {
    plain_disposition guard(test::test_signal);
    ioloop::event_loop first;
    ioloop::event_loop second;
    first.add_signal_handler(test::test_signal, [] {});
    CHECK_THROWS_AS(second.add_signal_handler(test::test_signal, [] {}), ioloop::invalid_state_error);
    CHECK_FALSE(second.remove_signal_handler(test::test_signal));  // the failed call registered nothing

    // The owner still gets the signal.
    int first_runs = 0;
    first.add_signal_handler(test::test_signal, [&] {
        ++first_runs;
        first.stop();
    });
    REQUIRE(std::raise(test::test_signal) == 0);
    run_with_watchdog(first);
    CHECK(first_runs == 1);

    // Once the owner lets go, the other loop may take it.
    CHECK(first.remove_signal_handler(test::test_signal));
    int second_runs = 0;
    CHECK_NOTHROW(second.add_signal_handler(test::test_signal, [&] {
        ++second_runs;
        second.stop();
    }));
    REQUIRE(std::raise(test::test_signal) == 0);
    run_with_watchdog(second);
    CHECK(second_runs == 1);
    CHECK(second.remove_signal_handler(test::test_signal));
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

// SIGKILL and SIGSTOP on POSIX; on Windows, numbers the C runtime has no signal for.
TEST_CASE("signals the system refuses to deliver to a handler throw std::system_error") {
    ioloop::event_loop loop;
    for (int sig : test::refused_signals) {
        CAPTURE(sig);
        CHECK_THROWS_AS(loop.add_signal_handler(sig, [] {}), std::system_error);
        CHECK_FALSE(loop.remove_signal_handler(sig));
    }

    // The failure left no claim on the signal: another loop does not see it as owned
    // (it fails for the OS's reason again, not because "another loop" has it).
    ioloop::event_loop other;
    try {
        other.add_signal_handler(test::refused_signals[0], [] {});
        FAIL_CHECK("no exception");
    } catch (const ioloop::invalid_state_error&) {
        FAIL_CHECK("the signal is still claimed by the first loop");
    } catch (const std::system_error&) {
    }
}

TEST_CASE("close() removes the loop's signal handlers and restores the previous disposition") {
    plain_disposition guard(test::test_signal);
    int runs = 0;
    ioloop::event_loop other;
    {
        ioloop::event_loop loop;
        loop.add_signal_handler(test::test_signal, [&] { ++runs; });
        CHECK_FALSE(guard.installed());
        loop.close();
        CHECK(guard.installed());
        REQUIRE(std::raise(test::test_signal) == 0);
        CHECK(plain_hits == 1);
        CHECK(runs == 0);
        // Another loop may take the signal now.
        CHECK_NOTHROW(other.add_signal_handler(test::test_signal, [] {}));
        CHECK(other.remove_signal_handler(test::test_signal));
    }
}

TEST_CASE("destroying a loop releases its signals") {
    plain_disposition guard(test::test_signal);
    {
        ioloop::event_loop loop;
        loop.add_signal_handler(test::test_signal, [] {});
    }
    CHECK(guard.installed());
    ioloop::event_loop other;
    CHECK_NOTHROW(other.add_signal_handler(test::test_signal, [] {}));
    CHECK(other.remove_signal_handler(test::test_signal));
}

// POSIX only: Windows has no SIGCHLD. A backend that takes signals as its own events
// (kqueue) leaves this one to the sigaction handler: ignoring SIGCHLD, as it does the
// others, would make the kernel reap the children, exit status and all.
#if defined(IOLOOP_POSIX)
TEST_CASE("SIGCHLD runs its handler, and the child is still there for waitpid") {
    ioloop::event_loop loop;
    int runs = 0;
    loop.add_signal_handler(SIGCHLD, [&] {
        ++runs;
        loop.stop();
    });
    struct sigaction now {};
    REQUIRE(::sigaction(SIGCHLD, nullptr, &now) == 0);
    const bool ignored = now.sa_handler == SIG_IGN;  // doctest cannot print a function
    CHECK_FALSE(ignored);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(7);
    run_with_watchdog(loop);
    CHECK(runs >= 1);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);  // reaped by the kernel: ECHILD
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 7);
    CHECK(loop.remove_signal_handler(SIGCHLD));
}
#endif
