// call_soon_threadsafe: many threads feeding a loop that sleeps in its poll. Also run under
// ThreadSanitizer (CTest label "threads").
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using test::run_one_iteration;

namespace {

// What the producers' callbacks update. Only the loop thread touches it, so it needs no
// lock: ThreadSanitizer would report any callback that ran elsewhere.
struct tally {
    static constexpr int threads = 4;
    static constexpr int per_thread = 10'000;
    static constexpr int total = threads * per_thread;

    ioloop::event_loop* loop = nullptr;
    std::thread::id loop_thread;
    int count = 0;
    int out_of_order = 0;
    int off_thread = 0;
    int last[threads] = {-1, -1, -1, -1};

    void arrive(int thread, int seq) {
        if (std::this_thread::get_id() != loop_thread) ++off_thread;
        if (seq != last[thread] + 1) ++out_of_order;
        last[thread] = seq;
        if (++count == total) loop->stop();
    }
};

}  // namespace

TEST_CASE("call_soon_threadsafe from 4 threads x 10,000 calls wakes a sleeping loop and loses none") {
    ioloop::event_loop loop;
    INFO("backend: " << ioloop::event_loop::backend_type::name);
    tally t;
    t.loop = &loop;
    t.loop_thread = std::this_thread::get_id();

    // The producers start once the loop runs. After this first callback nothing is ready
    // and the only timer is the watchdog, far away: the loop sleeps in its poll, and only
    // the producers' calls can wake it.
    std::atomic<bool> go{false};
    loop.call_soon([&go] { go.store(true, std::memory_order_release); });
    bool watchdog_fired = false;
    ioloop::timer_handle watchdog = loop.call_later(30s, [&] {
        watchdog_fired = true;
        FAIL_CHECK("watchdog: only " << t.count << " of " << tally::total << " callbacks arrived");
        loop.stop();
    });

    std::vector<std::thread> producers;
    for (int id = 0; id < tally::threads; ++id) {
        producers.emplace_back([&loop, &go, &t, id] {
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            for (int seq = 0; seq < tally::per_thread; ++seq) {
                loop.call_soon_threadsafe([&t, id, seq] { t.arrive(id, seq); });
            }
        });
    }
    loop.run_forever();
    for (std::thread& p : producers) p.join();
    watchdog.cancel();

    CHECK_FALSE(watchdog_fired);
    CHECK(t.count == tally::total);
    CHECK(t.out_of_order == 0);
    CHECK(t.off_thread == 0);
    for (int id = 0; id < tally::threads; ++id) CHECK(t.last[id] == tally::per_thread - 1);

    // Nothing is left over: one more iteration runs nothing.
    run_one_iteration(loop);
    CHECK(t.count == tally::total);
}

TEST_CASE("call_soon_threadsafe callbacks run on the loop thread") {
    ioloop::event_loop loop;
    const std::thread::id loop_thread = std::this_thread::get_id();
    std::thread::id ran_on;
    std::thread::id producer_id;
    bool watchdog_fired = false;
    ioloop::timer_handle watchdog = loop.call_later(10s, [&] {
        watchdog_fired = true;
        loop.stop();
    });
    std::thread producer([&] {
        // Scheduled while the loop may already be asleep, or before it started: both work.
        loop.call_soon_threadsafe([&] {
            ran_on = std::this_thread::get_id();
            loop.stop();
        });
    });
    producer_id = producer.get_id();
    loop.run_forever();
    producer.join();
    watchdog.cancel();

    CHECK_FALSE(watchdog_fired);
    CHECK(ran_on == loop_thread);
    CHECK(ran_on != producer_id);
}

TEST_CASE("call_soon_threadsafe from the loop thread itself runs on the next iteration") {
    ioloop::event_loop loop;
    std::uint64_t scheduled_in = 0;
    std::uint64_t ran_in = 0;
    loop.call_soon([&] {
        scheduled_in = loop.iteration_count();
        loop.call_soon_threadsafe([&] {
            ran_in = loop.iteration_count();
            loop.stop();
        });
    });
    ioloop::timer_handle watchdog = loop.call_later(10s, [&] {
        FAIL_CHECK("watchdog");
        loop.stop();
    });
    loop.run_forever();
    watchdog.cancel();
    CHECK(scheduled_in != 0);
    CHECK(ran_in > scheduled_in);
}

TEST_CASE("call_soon_threadsafe on a closed loop throws invalid_state_error") {
    ioloop::event_loop loop;
    loop.close();
    CHECK_THROWS_WITH_AS(loop.call_soon_threadsafe([] {}), doctest::Contains("closed"),
                         ioloop::invalid_state_error);

    // From another thread too: the check is made under the loop's lock.
    bool threw = false;
    std::thread other([&] {
        try {
            loop.call_soon_threadsafe([] {});
        } catch (const ioloop::invalid_state_error&) {
            threw = true;
        }
    });
    other.join();
    CHECK(threw);
}

TEST_CASE("a call_soon_threadsafe handle can be cancelled from the calling thread") {
    ioloop::event_loop loop;

    SUBCASE("before the loop runs") {
        std::atomic<bool> ran{false};
        ioloop::handle h;
        std::thread other([&] {
            h = loop.call_soon_threadsafe([&] { ran = true; });
            h.cancel();
        });
        other.join();
        CHECK(h.cancelled());
        run_one_iteration(loop);
        run_one_iteration(loop);
        CHECK_FALSE(ran.load());
    }

    SUBCASE("while the loop is busy in a callback") {
        // The loop's callback waits until the other thread has scheduled and cancelled its
        // call: the cancelled callback is then queued and must be skipped.
        std::promise<void> loop_busy;
        std::future<void> loop_busy_seen = loop_busy.get_future();
        std::promise<void> cancelled;
        std::future<void> cancelled_done = cancelled.get_future();
        bool ran = false;
        bool neighbour_ran = false;
        std::thread other([&] {
            loop_busy_seen.wait();
            ioloop::handle h = loop.call_soon_threadsafe([&] { ran = true; });
            loop.call_soon_threadsafe([&] { neighbour_ran = true; });
            h.cancel();
            cancelled.set_value();
        });
        loop.call_soon([&] {
            loop_busy.set_value();
            if (cancelled_done.wait_for(10s) != std::future_status::ready) {
                FAIL_CHECK("the other thread did not schedule its call in time");
            }
            // Two more iterations: the remote queue is taken in the next one.
            loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
        });
        ioloop::timer_handle watchdog = loop.call_later(10s, [&] {
            FAIL_CHECK("watchdog");
            loop.stop();
        });
        loop.run_forever();
        other.join();
        watchdog.cancel();
        CHECK_FALSE(ran);
        CHECK(neighbour_ran);
    }
}

TEST_CASE("close() while other threads call call_soon_threadsafe") {
    // Every call is either accepted (then close() drops it: it never runs, and its callable
    // is destroyed) or refused with invalid_state_error. Nothing leaks, nothing races.
    auto token = std::make_shared<int>(0);
    std::atomic<int> accepted{0};
    std::atomic<int> refused{0};
    std::atomic<int> ran{0};
    std::atomic<bool> go{false};
    {
        ioloop::event_loop loop;
        std::vector<std::thread> producers;
        for (int id = 0; id < 3; ++id) {
            producers.emplace_back([&] {
                while (!go.load()) std::this_thread::yield();
                for (int i = 0; i < 2000; ++i) {
                    try {
                        loop.call_soon_threadsafe([token, &ran] { ++ran; });
                        ++accepted;
                    } catch (const ioloop::invalid_state_error&) {
                        ++refused;
                    }
                }
            });
        }
        go.store(true);
        // Let some calls in first, then close while the producers are still at it.
        while (accepted.load() < 100) std::this_thread::yield();
        loop.close();
        for (std::thread& p : producers) p.join();
        CHECK_THROWS_AS(loop.run_forever(), ioloop::invalid_state_error);
    }
    CHECK(accepted.load() + refused.load() == 3 * 2000);
    CHECK(accepted.load() >= 100);
    CHECK(ran.load() == 0);
    CHECK(token.use_count() == 1);  // every accepted callable was destroyed
}

TEST_CASE("awaiting a task or future of a loop running in another thread throws at once") {
    // What the two threads share is made before loop b's thread starts: b, and per way of
    // awaiting a task of b and a future of b. Each task waits for `gate`; once b's first
    // iteration has run their first steps (which count references to them), b's thread
    // leaves them alone until the gate opens, so the handles pass between the threads
    // race-free. Only the way loop a awaits them is under test (and under ThreadSanitizer).
    const std::vector<test::await_form>& forms = test::await_forms();
    ioloop::event_loop b;
    ioloop::future<void> gate = b.create_future<void>();
    auto wait_for_gate = [](ioloop::future<void> g) -> ioloop::coro<int> {
        co_await g;
        co_return 7;
    };
    std::vector<ioloop::task<int>> tasks;
    std::vector<ioloop::future<int>> futures;
    for (std::size_t i = 0; i < forms.size(); ++i) {
        tasks.push_back(b.create_task(wait_for_gate(gate)));
        futures.push_back(b.create_future<int>());  // b's thread never touches these
    }
    std::promise<void> tasks_waiting;
    b.call_soon([&] { tasks_waiting.set_value(); });  // after the tasks' first steps
    ioloop::event_loop a;

    std::thread b_thread([&] { test::run_with_watchdog(b); });
    tasks_waiting.get_future().wait();

    auto main = [&]() -> ioloop::coro<void> {
        for (std::size_t i = 0; i < forms.size(); ++i)
            co_await test::check_refused(forms[i], tasks[i], futures[i]);
    };
    ioloop::task<void> checked = test::run_task_with_watchdog(a, main(), 10s);
    CHECK(checked.done());

    // b went on undisturbed: its tasks finish once the gate opens.
    b.call_soon_threadsafe([&] {
        gate.set_result();
        b.call_soon([&] { b.stop(); });  // the tasks' steps are queued: they run first
    });
    b_thread.join();
    for (ioloop::task<int>& t : tasks) CHECK(t.result() == 7);
    for (ioloop::future<int>& f : futures) CHECK_FALSE(f.done());
}

TEST_CASE("co_await on a task another thread's loop finishes meanwhile throws, race-free") {
    // The gate opens as loop a's task awaits: b's thread finishes the task (its state, its
    // reference count, its waiters) while a's thread decides. The decision reads nothing
    // that b's thread writes.
    ioloop::event_loop b;
    ioloop::future<void> gate = b.create_future<void>();
    auto wait_for_gate = [](ioloop::future<void> g) -> ioloop::coro<int> {
        co_await g;
        ioloop::get_running_loop().stop();
        co_return 7;
    };
    ioloop::task<int> t = b.create_task(wait_for_gate(gate));
    ioloop::future<int> unused = b.create_future<int>();
    std::promise<void> task_waiting;
    b.call_soon([&] { task_waiting.set_value(); });
    ioloop::event_loop a;

    std::thread b_thread([&] { test::run_with_watchdog(b); });
    task_waiting.get_future().wait();

    const test::await_form& co_await_task = test::await_forms().front();
    REQUIRE(std::string(co_await_task.what) == "co_await");
    auto main = [&]() -> ioloop::coro<void> {
        b.call_soon_threadsafe([&] { gate.set_result(); });
        co_await test::check_refused(co_await_task, t, unused);
    };
    ioloop::task<void> checked = test::run_task_with_watchdog(a, main(), 10s);
    CHECK(checked.done());
    b_thread.join();
    CHECK(t.result() == 7);
}
