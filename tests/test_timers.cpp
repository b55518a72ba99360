// call_later / call_at: order, never early, cancellation (including the bulk purge of
// cancelled timers), extreme delays, and that an idle loop sleeps instead of spinning.
// Timing checks are bounds only, generous enough for a loaded 2-core machine.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using test::run_one_iteration;
using steady = std::chrono::steady_clock;

namespace {

// Runs `on_expiry` on its own thread if it has not been destroyed within `limit`. The
// watchdogs below act from another thread because timers are what is under test here: a
// timer-based watchdog would fail together with the timers it is meant to guard.
class watchdog {
public:
    watchdog(std::chrono::seconds limit, std::function<void()> on_expiry)
        : on_expiry_(std::move(on_expiry)), thread_([this, limit] {
              std::unique_lock<std::mutex> lock(mutex_);
              if (!cv_.wait_for(lock, limit, [this] { return disarmed_; })) on_expiry_();
          }) {}
    ~watchdog() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            disarmed_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

private:
    std::function<void()> on_expiry_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool disarmed_ = false;
    std::thread thread_;  // last: starts once the members above exist
};

// Runs the loop until a callback calls stop(). If that takes longer than `limit`, the
// test fails and the loop is stopped (woken through call_soon_threadsafe, which works
// whatever the loop's poll timeout is) instead of hanging.
void run_with_watchdog(ioloop::event_loop& loop, std::chrono::seconds limit = 30s) {
    watchdog guard(limit, [&loop, limit] {
        loop.call_soon_threadsafe([&loop, limit] {
            FAIL_CHECK("watchdog: the loop did not stop within " << limit.count() << " s");
            loop.stop();
        });
    });
    loop.run_forever();
}

}  // namespace

TEST_CASE("the loop's clock") {
    static_assert(std::is_same_v<ioloop::event_loop::clock, steady>);
    ioloop::event_loop loop;
    const auto a = loop.time();
    const auto b = loop.time();
    CHECK(b >= a);
}

TEST_CASE("timers fire in deadline order regardless of scheduling order") {
    ioloop::event_loop loop;
    INFO("backend: " << ioloop::event_loop::backend_type::name);

    SUBCASE("call_later") {
        const int delays_ms[] = {50, 10, 30, 0, 20, 40, 5};
        std::vector<int> fired;
        for (int d : delays_ms) {
            loop.call_later(std::chrono::milliseconds(d), [&fired, d] { fired.push_back(d); });
        }
        loop.call_later(60ms, [&] { loop.stop(); });
        run_with_watchdog(loop);
        CHECK(fired == std::vector<int>{0, 5, 10, 20, 30, 40, 50});
    }

    SUBCASE("call_at, 500 distinct deadlines in a shuffled order") {
        std::vector<int> offsets(500);
        std::iota(offsets.begin(), offsets.end(), 0);
        std::shuffle(offsets.begin(), offsets.end(), std::mt19937(12345));
        const auto base = loop.time() + 10ms;
        std::vector<int> fired;
        for (int k : offsets) {
            loop.call_at(base + std::chrono::microseconds(k * 20), [&fired, k] { fired.push_back(k); });
        }
        loop.call_at(base + 20ms, [&] { loop.stop(); });
        run_with_watchdog(loop);
        REQUIRE(fired.size() == 500);
        CHECK(std::is_sorted(fired.begin(), fired.end()));
    }
}

TEST_CASE("timers with equal deadlines run in scheduling order") {
    ioloop::event_loop loop;
    const auto when = loop.time() + 10ms;
    std::vector<int> fired;
    for (int i = 0; i < 100; ++i) loop.call_at(when, [&fired, i] { fired.push_back(i); });
    loop.call_at(when, [&] { loop.stop(); });
    run_with_watchdog(loop);
    REQUIRE(fired.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(fired[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a timer never fires before its deadline") {
    ioloop::event_loop loop;
    struct record {
        ioloop::timer_handle h;
        steady::time_point requested;  // steady_clock::now() before call_later, plus the delay
        steady::time_point ran_at{};
    };
    std::vector<record> records(20);
    int left = static_cast<int>(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto delay = std::chrono::milliseconds(1 + 7 * static_cast<int>(i % 5)) +
                           std::chrono::microseconds(333 * static_cast<int>(i));
        records[i].requested = steady::now() + delay;
        records[i].h = loop.call_later(delay, [&, i] {
            records[i].ran_at = loop.time();
            if (--left == 0) loop.stop();
        });
    }
    run_with_watchdog(loop);
    CHECK(left == 0);
    for (const record& r : records) {
        CHECK(r.ran_at >= r.h.when());
        CHECK(r.ran_at >= r.requested);
        CHECK(r.ran_at - r.requested < 5s);
    }
}

TEST_CASE("call_at with a time in the past runs on the next iteration") {
    ioloop::event_loop loop;

    SUBCASE("scheduled from a callback") {
        std::uint64_t scheduled_in = 0;
        std::uint64_t ran_in = 0;
        loop.call_soon([&] {
            scheduled_in = loop.iteration_count();
            loop.call_at(loop.time() - 1s, [&] {
                ran_in = loop.iteration_count();
                loop.stop();
            });
        });
        run_with_watchdog(loop);
        CHECK(scheduled_in != 0);
        CHECK(ran_in == scheduled_in + 1);
    }

    SUBCASE("before the loop runs: the first iteration runs it") {
        bool ran = false;
        loop.call_at(loop.time() - 1h, [&] { ran = true; });
        run_one_iteration(loop);
        CHECK(ran);
    }

    SUBCASE("the clock's epoch and its minimum are in the past too") {
        std::vector<int> fired;
        loop.call_at(steady::time_point{}, [&] { fired.push_back(1); });
        loop.call_at(steady::time_point::min(), [&] { fired.push_back(2); });
        // Nothing else is ready: the loop must compute a poll timeout from these deadlines.
        loop.call_later(5ms, [&] { loop.stop(); });
        run_with_watchdog(loop, 10s);
        CHECK(fired == std::vector<int>{2, 1});
    }
}

TEST_CASE("cancelling timers") {
    ioloop::event_loop loop;

    SUBCASE("before it fires: it never runs") {
        bool ran = false;
        ioloop::timer_handle h = loop.call_later(5ms, [&] { ran = true; });
        h.cancel();
        CHECK(h.cancelled());
        loop.call_later(30ms, [&] { loop.stop(); });
        run_with_watchdog(loop);
        CHECK_FALSE(ran);
    }

    SUBCASE("after it fired: no effect") {
        int runs = 0;
        ioloop::timer_handle h = loop.call_later(1ms, [&] {
            ++runs;
            loop.stop();
        });
        run_with_watchdog(loop);
        CHECK(runs == 1);
        CHECK_FALSE(h.cancelled());
        h.cancel();
        h.cancel();
        CHECK(h.cancelled());
        loop.call_later(10ms, [&] { loop.stop(); });
        run_with_watchdog(loop);
        CHECK(runs == 1);
    }

    SUBCASE("by an earlier timer due in the same iteration") {
        const auto when = loop.time() + 5ms;
        bool second_ran = false;
        ioloop::timer_handle second;
        loop.call_at(when, [&] { second.cancel(); });
        second = loop.call_at(when, [&] { second_ran = true; });
        loop.call_at(when + 5ms, [&] { loop.stop(); });
        run_with_watchdog(loop);
        CHECK_FALSE(second_ran);
    }

    SUBCASE("the only pending timer: the loop does not wait for it") {
        // The cancelled 1 h timer must not hold up the loop; the 10 ms one stops it.
        ioloop::timer_handle h = loop.call_later(1h, [] {});
        h.cancel();
        const auto start = steady::now();
        loop.call_later(10ms, [&] { loop.stop(); });
        run_with_watchdog(loop);
        CHECK(steady::now() - start < 5s);
    }
}

TEST_CASE("cancelling most of many pending timers: the rest still fire in order") {
    // Hundreds of cancelled timers, most of those pending: enough for the loop to clean
    // them up in bulk rather than one at a time. What is left must still come out in
    // deadline order.
    ioloop::event_loop loop;
    constexpr int count = 400;
    const auto base = loop.time() + 20ms;
    std::vector<ioloop::timer_handle> handles;
    std::vector<int> fired;
    // Deadlines in a shuffled order so that the heap is not trivially sorted.
    std::vector<int> order(count);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    std::vector<ioloop::timer_handle> by_index(count);
    for (int k : order) {
        by_index[static_cast<std::size_t>(k)] =
            loop.call_at(base + std::chrono::microseconds(50 * k), [&fired, k] { fired.push_back(k); });
    }

    std::vector<int> expected;
    SUBCASE("cancelled before the loop runs") {
        for (int k = 0; k < count; ++k) {
            if (k % 8 != 0) {
                by_index[static_cast<std::size_t>(k)].cancel();
            } else {
                expected.push_back(k);
            }
        }
    }
    SUBCASE("cancelled by a callback while the loop runs, earliest ones included") {
        loop.call_soon([&] {
            for (int k = 0; k < count; ++k) {
                if (k < 100 || k % 5 != 0) by_index[static_cast<std::size_t>(k)].cancel();
            }
        });
        for (int k = 0; k < count; ++k) {
            if (!(k < 100 || k % 5 != 0)) expected.push_back(k);
        }
    }
    loop.call_at(base + std::chrono::microseconds(50 * count) + 5ms, [&] { loop.stop(); });
    run_with_watchdog(loop);

    CHECK(fired == expected);
    for (int k = 0; k < count; ++k) {
        const bool kept = std::find(expected.begin(), expected.end(), k) != expected.end();
        CHECK(by_index[static_cast<std::size_t>(k)].cancelled() == !kept);
    }

    // The loop's bookkeeping survived the purge: new timers, and new cancellations, work.
    std::vector<int> after;
    std::vector<ioloop::timer_handle> more;
    const auto again = loop.time() + 5ms;
    for (int i = 0; i < 100; ++i) {
        more.push_back(loop.call_at(again + std::chrono::microseconds(10 * i), [&after, i] { after.push_back(i); }));
    }
    for (int i = 0; i < 100; i += 2) more[static_cast<std::size_t>(i)].cancel();
    loop.call_at(again + 10ms, [&] { loop.stop(); });
    run_with_watchdog(loop);
    REQUIRE(after.size() == 50);
    for (std::size_t j = 0; j < after.size(); ++j) CHECK(after[j] == static_cast<int>(2 * j + 1));
}

TEST_CASE("timers more than a second ahead keep their order with nearer ones") {
    // Deadlines on both sides of the one-second mark, scheduled in a scrambled order, some
    // cancelled: what fires is the rest, in deadline order.
    ioloop::event_loop loop;
    const auto base = loop.time();
    const int offsets_ms[] = {1300, 20, 1100, 600, 1250, 5, 1150, 900, 1200, 300, 1299, 1000};
    std::vector<int> fired;
    std::vector<ioloop::timer_handle> handles;
    for (int ms : offsets_ms) {
        handles.push_back(loop.call_at(base + std::chrono::milliseconds(ms), [&fired, ms] {
            fired.push_back(ms);
        }));
    }
    handles[2].cancel();   // 1100: far ahead when cancelled
    handles[11].cancel();  // 1000
    loop.call_at(base + 600ms + 1ms, [&] { handles[6].cancel(); });  // 1150, from the loop
    // Scheduled once time has moved on: lands among the timers that were more than a
    // second ahead when they were scheduled.
    loop.call_at(base + 610ms, [&] {
        loop.call_at(base + 1275ms, [&fired] { fired.push_back(1275); });
    });
    loop.call_at(base + 1310ms, [&] { loop.stop(); });
    run_with_watchdog(loop);
    CHECK(fired == std::vector<int>{5, 20, 300, 600, 900, 1200, 1250, 1275, 1299, 1300});
}

TEST_CASE("a randomized mix of timers and cancellations fires exactly the expected ones") {
    // A model check: thousands of timers with random (often equal) deadlines, some in the
    // past, a few past the one-second mark; some cancelled at once, some later, some by
    // earlier timers while the loop runs. The expected run is computed by sorting on
    // (deadline, scheduling order) and replaying the cancellations.
    ioloop::event_loop loop;
    std::mt19937 rng(2024);
    constexpr int count = 3000;
    struct timer {
        steady::time_point when;
        int seq;
        int cancels = -1;              // a later timer this one cancels when it runs
        bool cancelled_early = false;  // cancelled before the loop runs
        ioloop::timer_handle h;
        steady::time_point ran_at{};
    };
    std::vector<timer> timers(count);
    const auto base = loop.time() + 5ms;
    for (int i = 0; i < count; ++i) {
        timer& t = timers[static_cast<std::size_t>(i)];
        t.seq = i;
        const int kind = static_cast<int>(rng() % 100);
        if (kind < 5) {
            t.when = base - std::chrono::milliseconds(rng() % 50);  // already due
        } else if (kind < 7) {
            t.when = base + 1050ms + std::chrono::milliseconds(rng() % 100);  // beyond 1 s
        } else {
            t.when = base + std::chrono::microseconds(100 * (rng() % 600));  // many ties
        }
    }
    // Who cancels whom: only a timer that comes later in (deadline, seq) order.
    auto before = [&](int a, int b) {
        const timer& x = timers[static_cast<std::size_t>(a)];
        const timer& y = timers[static_cast<std::size_t>(b)];
        return x.when < y.when || (x.when == y.when && x.seq < y.seq);
    };
    for (int i = 0; i < count; ++i) {
        if (rng() % 10 == 0) {
            const int j = static_cast<int>(rng() % count);
            if (before(i, j)) timers[static_cast<std::size_t>(i)].cancels = j;
        }
    }

    std::vector<int> fired;
    for (int i = 0; i < count; ++i) {
        timer& t = timers[static_cast<std::size_t>(i)];
        t.h = loop.call_at(t.when, [&loop, &timers, &fired, i] {
            timer& me = timers[static_cast<std::size_t>(i)];
            me.ran_at = loop.time();
            fired.push_back(i);
            if (me.cancels >= 0) timers[static_cast<std::size_t>(me.cancels)].h.cancel();
        });
        if (rng() % 8 == 0) {  // cancelled right after scheduling
            t.h.cancel();
            t.cancelled_early = true;
        }
    }
    for (int i = 0; i < count; i += 7) {  // cancelled once all are scheduled
        timers[static_cast<std::size_t>(i)].h.cancel();
        timers[static_cast<std::size_t>(i)].cancelled_early = true;
    }

    // The expected run.
    std::vector<int> by_order(count);
    std::iota(by_order.begin(), by_order.end(), 0);
    std::sort(by_order.begin(), by_order.end(), before);
    std::vector<bool> cancelled(count, false);
    std::vector<int> expected;
    for (int i : by_order) {
        const timer& t = timers[static_cast<std::size_t>(i)];
        if (t.cancelled_early || cancelled[static_cast<std::size_t>(i)]) continue;
        expected.push_back(i);
        if (t.cancels >= 0) cancelled[static_cast<std::size_t>(t.cancels)] = true;
    }

    loop.call_at(base + 1200ms, [&] { loop.stop(); });
    run_with_watchdog(loop);

    CHECK(fired.size() == expected.size());
    CHECK(fired == expected);
    int early = 0;
    for (int i : fired) {
        const timer& t = timers[static_cast<std::size_t>(i)];
        if (t.ran_at < t.h.when() || t.h.when() != t.when) ++early;
    }
    CHECK(early == 0);
}

TEST_CASE("timer_handle::when() is the deadline") {
    ioloop::event_loop loop;

    SUBCASE("call_at") {
        const auto when = loop.time() + 123ms;
        ioloop::timer_handle h = loop.call_at(when, [] {});
        CHECK(h.when() == when);
    }

    SUBCASE("call_at with a coarser duration") {
        const auto when = std::chrono::time_point_cast<std::chrono::milliseconds>(loop.time()) + 50ms;
        ioloop::timer_handle h = loop.call_at(when, [] {});
        CHECK(h.when() == when);
    }

    SUBCASE("call_later") {
        const auto before = loop.time();
        ioloop::timer_handle h = loop.call_later(250ms, [] {});
        const auto after = loop.time();
        CHECK(h.when() >= before + 250ms);
        CHECK(h.when() <= after + 250ms);
    }

    SUBCASE("call_later with a fractional duration rounds up, never down") {
        const auto before = loop.time();
        ioloop::timer_handle h = loop.call_later(std::chrono::duration<double, std::milli>(1.5), [] {});
        CHECK(h.when() >= before + 1500us);
    }
}

TEST_CASE("zero and negative delays run on the next iteration") {
    ioloop::event_loop loop;
    std::vector<int> fired;
    ioloop::timer_handle zero = loop.call_later(0ms, [&] { fired.push_back(0); });
    ioloop::timer_handle negative = loop.call_later(-5s, [&] { fired.push_back(-5); });
    ioloop::timer_handle very_negative = loop.call_later(std::chrono::hours::min(), [&] {
        fired.push_back(-1000);
    });
    CHECK(zero.when() <= loop.time());
    CHECK(negative.when() <= loop.time());
    run_one_iteration(loop);
    // All three were due at once: one iteration runs them all, in deadline order (as in
    // asyncio, a negative delay is a deadline in the past, not "now").
    CHECK(fired == std::vector<int>{-1000, -5, 0});
}

TEST_CASE("a cancelled timer drops its callable at once, even while its handle is kept") {
    ioloop::event_loop loop;
    auto captured = std::make_shared<int>(7);
    ioloop::timer_handle h = loop.call_later(1h, [captured] { (void)captured; });
    CHECK(captured.use_count() == 2);
    h.cancel();
    CHECK(captured.use_count() == 1);
    CHECK(h.cancelled());
}

TEST_CASE("a huge delay does not overflow and does not fire") {
    ioloop::event_loop loop;
    bool huge_ran = false;
    const auto now = loop.time();
    ioloop::timer_handle century =
        loop.call_later(std::chrono::hours(24 * 365 * 100), [&] { huge_ran = true; });
    ioloop::timer_handle forever = loop.call_later(std::chrono::hours::max(), [&] { huge_ran = true; });
    ioloop::timer_handle at_max = loop.call_at(steady::time_point::max(), [&] { huge_ran = true; });

    CHECK(century.when() > now + std::chrono::hours(24 * 365 * 99));
    // Saturated rather than wrapped around into the past.
    CHECK(forever.when() > now + std::chrono::hours(24 * 365 * 100));
    CHECK(at_max.when() == steady::time_point::max());

    // With only these pending the loop must sleep (not spin, not wake at once) until the
    // short timer: a wrapped-around timeout would show up as a flood of iterations or as
    // an early fire of the huge timers.
    const auto before = loop.iteration_count();
    loop.call_later(50ms, [&] { loop.stop(); });
    run_with_watchdog(loop);
    CHECK_FALSE(huge_ran);
    CHECK(loop.iteration_count() - before <= 5);
}

TEST_CASE("timers scheduled from inside timer callbacks") {
    ioloop::event_loop loop;

    SUBCASE("a chain, each one after the previous") {
        std::vector<steady::time_point> times;
        struct step {
            ioloop::event_loop* loop;
            std::vector<steady::time_point>* times;
            void operator()() const {
                times->push_back(loop->time());
                if (times->size() == 10) {
                    loop->stop();
                } else {
                    loop->call_later(2ms, step{loop, times});
                }
            }
        };
        loop.call_later(1ms, step{&loop, &times});
        run_with_watchdog(loop);
        REQUIRE(times.size() == 10);
        for (std::size_t i = 1; i < times.size(); ++i) CHECK(times[i] - times[i - 1] >= 2ms);
    }

    SUBCASE("a due timer scheduled by a timer waits for the next iteration") {
        std::uint64_t outer = 0;
        std::uint64_t inner = 0;
        loop.call_later(1ms, [&] {
            outer = loop.iteration_count();
            loop.call_later(0ms, [&] {
                inner = loop.iteration_count();
                loop.stop();
            });
        });
        run_with_watchdog(loop);
        CHECK(outer != 0);
        CHECK(inner > outer);
    }

    SUBCASE("an earlier deadline scheduled from a callback overtakes pending ones") {
        std::vector<int> fired;
        loop.call_later(200ms, [&] {
            fired.push_back(2);
            loop.stop();
        });
        loop.call_soon([&] { loop.call_later(10ms, [&] { fired.push_back(1); }); });
        run_with_watchdog(loop);
        CHECK(fired == std::vector<int>{1, 2});
    }
}

TEST_CASE("an idle loop waiting for one timer sleeps instead of spinning") {
    ioloop::event_loop loop;
    const auto start = steady::now();
    const auto before = loop.iteration_count();
    loop.call_later(300ms, [&] { loop.stop(); });
    run_with_watchdog(loop);
    const auto elapsed = steady::now() - start;
    const auto iterations = loop.iteration_count() - before;
    INFO("iterations: " << iterations);
    CHECK(iterations >= 1);
    CHECK(iterations <= 5);
    CHECK(elapsed >= 300ms);
    CHECK(elapsed < 5s);
}

TEST_CASE("a loop with nothing scheduled stops from another thread") {
    ioloop::event_loop loop;
    // Nothing on the loop may act as a watchdog here, and call_soon_threadsafe is what is
    // under test: if the loop does not stop, end the process with a message.
    watchdog guard(60s, [] {
        std::fprintf(stderr, "watchdog: the loop did not stop within 60 s\n");
        std::_Exit(EXIT_FAILURE);
    });

    // The flag tells the other thread that the loop has started; after that first
    // iteration nothing at all is scheduled, so the loop blocks in its poll.
    std::atomic<bool> started{false};
    loop.call_soon([&] { started.store(true); });
    std::thread stopper([&] {
        while (!started.load()) std::this_thread::yield();
        // Give the loop time to go to sleep: the iteration count below then shows whether
        // it slept or spun. Correctness does not depend on this pause.
        std::this_thread::sleep_for(100ms);
        loop.call_soon_threadsafe([&loop] { loop.stop(); });
    });
    loop.run_forever();
    stopper.join();

    CHECK(started.load());
    CHECK_FALSE(loop.is_running());
    INFO("iterations: " << loop.iteration_count());
    CHECK(loop.iteration_count() <= 5);
}
