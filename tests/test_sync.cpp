// event, lock, semaphore, bounded_semaphore, condition, barrier: what asyncio's
// synchronization primitives promise. Waiters are served in arrival order; a task
// cancelled while it waits gets cancelled_error right there and leaves the primitive
// usable, with nobody stranded; frames destroyed at loop close leave nothing linked.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Lets the loop run n iterations: the tasks scheduled before run their next step.
ioloop::coro<void> yield_iterations(int n) {
    for (int i = 0; i < n; ++i) co_await ioloop::sleep(0ms);
}

// ioloop::run, with a watchdog that fails the test instead of hanging when a waiter is
// stranded (run_until_complete then throws: the loop stopped before the work was done).
void run_test(ioloop::coro<void> body) {
    auto guarded = [](ioloop::coro<void> b) -> ioloop::coro<void> {
        ioloop::event_loop& loop = ioloop::get_running_loop();
        ioloop::timer_handle watchdog = loop.call_later(30s, [&loop] {
            FAIL_CHECK("watchdog: a task is still waiting after 30 s");
            loop.stop();
        });
        co_await std::move(b);
        watchdog.cancel();
    };
    ioloop::run(guarded(std::move(body)));
}

// Records id once it holds the lock, keeps it one iteration (so that others contend),
// releases it.
ioloop::coro<void> take_lock(ioloop::lock& l, std::vector<int>& order, int id) {
    co_await l.acquire();
    order.push_back(id);
    co_await ioloop::sleep(0ms);
    l.release();
}

// The same with a semaphore unit, through the guard.
ioloop::coro<void> take_unit(ioloop::semaphore& s, std::vector<int>& order, int id) {
    auto guard = co_await s.scoped();
    order.push_back(id);
    co_await ioloop::sleep(0ms);
}

ioloop::coro<void> wait_event(ioloop::event& e, std::vector<int>& order, int id) {
    co_await e.wait();
    order.push_back(id);
}

// Waits for a notification with the condition's lock held, records id once back.
ioloop::coro<void> wait_notified(ioloop::condition& c, std::vector<int>& order, int id) {
    auto guard = co_await c.scoped();
    co_await c.wait();
    CHECK(c.locked());  // wait() returns with the lock held again
    order.push_back(id);
}

ioloop::coro<void> pass_barrier(ioloop::barrier& b, std::vector<std::size_t>& index_of, int id) {
    index_of[static_cast<std::size_t>(id)] = co_await b.wait();
}

// Cancels t if it is still running (after a failed check), then waits for it, whatever
// it ends with: a failing test finishes instead of hanging.
ioloop::coro<void> settle(ioloop::task<void>& t) {
    if (!t.done()) t.cancel();
    try {
        co_await t;
    } catch (const std::exception&) {
    }
}

}  // namespace

// ---- event -------------------------------------------------------------------------------

TEST_CASE("event: wait returns at once when set, blocks until set otherwise, clear re-arms it") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::event e;
        CHECK_FALSE(e.is_set());
        std::vector<int> order;
        auto t = ioloop::create_task(wait_event(e, order, 1));
        co_await yield_iterations(3);
        CHECK(order.empty());  // still waiting
        e.set();
        CHECK(e.is_set());
        co_await t;
        CHECK(order == std::vector<int>{1});
        co_await e.wait();  // set: no wait at all
        e.clear();
        CHECK_FALSE(e.is_set());
        auto u = ioloop::create_task(wait_event(e, order, 2));
        co_await yield_iterations(3);
        CHECK(order.size() == 1);
        e.set();
        co_await u;
        CHECK(order == std::vector<int>{1, 2});
    }());
}

TEST_CASE("event: set wakes every waiter, in the order they started waiting") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::event e;
        std::vector<int> order;
        std::vector<ioloop::task<void>> waiters;
        for (int id : {3, 1, 4, 0, 2})
            waiters.push_back(ioloop::create_task(wait_event(e, order, id)));
        co_await ioloop::sleep(0ms);
        CHECK(order.empty());
        e.set();
        for (auto& w : waiters) co_await w;
        CHECK(order == std::vector<int>{3, 1, 4, 0, 2});
    }());
}

TEST_CASE("event: a waiter woken by set returns even if clear comes before it runs") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::event e;
        std::vector<int> order;
        auto t = ioloop::create_task(wait_event(e, order, 1));
        co_await ioloop::sleep(0ms);
        e.set();
        e.clear();
        co_await yield_iterations(2);
        CHECK(order == std::vector<int>{1});
        co_await settle(t);
    }());
}

TEST_CASE(
    "event: a cancelled waiter gets cancelled_error at its wait; set still wakes the others") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::event e;
        std::vector<int> order;
        auto a = ioloop::create_task(wait_event(e, order, 1));
        auto b = ioloop::create_task(wait_event(e, order, 2));
        auto c = ioloop::create_task(wait_event(e, order, 3));
        co_await ioloop::sleep(0ms);
        b.cancel();
        CHECK_THROWS_AS(co_await b, ioloop::cancelled_error);
        CHECK(b.cancelled());
        e.set();
        co_await a;
        co_await c;
        CHECK(order == std::vector<int>{1, 3});
        // Woken, then cancelled before it ran: the cancel wins, as in asyncio.
        e.clear();
        auto d = ioloop::create_task(wait_event(e, order, 4));
        co_await ioloop::sleep(0ms);
        e.set();
        d.cancel();
        CHECK_THROWS_AS(co_await d, ioloop::cancelled_error);
        CHECK(order == std::vector<int>{1, 3});
    }());
}

// ---- lock --------------------------------------------------------------------------------

TEST_CASE("lock: acquire, locked, release; releasing an unlocked lock is an invalid_state_error") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        CHECK_FALSE(l.locked());
        CHECK_THROWS_WITH_AS(l.release(), "lock::release: the lock is not locked",
                             ioloop::invalid_state_error);
        co_await l.acquire();
        CHECK(l.locked());
        l.release();
        CHECK_FALSE(l.locked());
        CHECK_THROWS_AS(l.release(), ioloop::invalid_state_error);
        co_await l.acquire();  // still usable
        CHECK(l.locked());
        l.release();
    }());
}

TEST_CASE("lock: waiters get the lock in the order they asked for it") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        std::vector<int> order;
        co_await l.acquire();
        std::vector<ioloop::task<void>> waiters;
        for (int id : {3, 1, 4, 0, 2})
            waiters.push_back(ioloop::create_task(take_lock(l, order, id)));
        co_await ioloop::sleep(0ms);  // all queued
        CHECK(order.empty());
        l.release();
        for (auto& w : waiters) co_await w;
        CHECK(order == std::vector<int>{3, 1, 4, 0, 2});
        CHECK_FALSE(l.locked());
    }());
}

TEST_CASE("lock: a task arriving while the woken waiter has not run yet queues behind it") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        std::vector<int> order;
        co_await l.acquire();
        auto first = ioloop::create_task(take_lock(l, order, 1));
        co_await ioloop::sleep(0ms);
        l.release();
        // asyncio 3.12: the lock is free until the woken waiter runs and takes it...
        CHECK_FALSE(l.locked());
        // ...yet a newcomer does not slip in ahead of it.
        co_await l.acquire();
        order.push_back(2);
        l.release();
        co_await first;
        CHECK(order == std::vector<int>{1, 2});
    }());
}

TEST_CASE("lock: a cancelled waiter gets cancelled_error at acquire; the next one still gets it") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        std::vector<int> order;
        co_await l.acquire();
        auto a = ioloop::create_task(take_lock(l, order, 1));
        auto b = ioloop::create_task(take_lock(l, order, 2));
        auto c = ioloop::create_task(take_lock(l, order, 3));
        co_await ioloop::sleep(0ms);
        b.cancel();
        CHECK_THROWS_AS(co_await b, ioloop::cancelled_error);
        CHECK(l.locked());  // still the main task's
        l.release();
        co_await a;
        co_await c;
        CHECK(order == std::vector<int>{1, 3});
        CHECK_FALSE(l.locked());
    }());
}

TEST_CASE("lock: a woken waiter cancelled before it runs passes the lock on to the next") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        std::vector<int> order;
        co_await l.acquire();
        auto a = ioloop::create_task(take_lock(l, order, 1));
        auto b = ioloop::create_task(take_lock(l, order, 2));
        co_await ioloop::sleep(0ms);
        l.release();  // wakes a...
        a.cancel();   // ...which is cancelled before it runs
        CHECK_THROWS_AS(co_await a, ioloop::cancelled_error);
        co_await yield_iterations(3);
        CHECK(order == std::vector<int>{2});  // b was not stranded
        co_await settle(b);
        CHECK_FALSE(b.cancelled());
        CHECK_FALSE(l.locked());
    }());
}

TEST_CASE("lock: the guard releases at scope end, on an exception and on cancellation") {
    static_assert(!std::is_copy_constructible_v<ioloop::lock::guard>);
    static_assert(!std::is_copy_assignable_v<ioloop::lock::guard>);
    static_assert(std::is_nothrow_move_constructible_v<ioloop::lock::guard>);
    static_assert(std::is_nothrow_move_assignable_v<ioloop::lock::guard>);
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        {
            auto guard = co_await l.scoped();
            CHECK(l.locked());
            CHECK(guard.owns());
        }
        CHECK_FALSE(l.locked());

        auto failing = [](ioloop::lock& lk) -> ioloop::coro<void> {
            auto guard = co_await lk.scoped();
            throw std::runtime_error("inside the critical section");
        };
        CHECK_THROWS_WITH_AS(co_await failing(l), "inside the critical section",
                             std::runtime_error);
        CHECK_FALSE(l.locked());

        // Moved: the new owner releases, once.
        ioloop::lock::guard outer;
        CHECK_FALSE(outer.owns());
        {
            auto inner = co_await l.scoped();
            outer = std::move(inner);
            CHECK_FALSE(inner.owns());
        }
        CHECK(l.locked());
        outer.release();
        CHECK_FALSE(outer.owns());
        CHECK_FALSE(l.locked());

        // Released behind the guard's back: its destructor cannot throw, it skips it.
        {
            auto guard = co_await l.scoped();
            l.release();
        }
        CHECK_FALSE(l.locked());

        // Cancelled while holding the guard in a sleep.
        auto holder = [](ioloop::lock& lk) -> ioloop::coro<void> {
            auto guard = co_await lk.scoped();
            co_await ioloop::sleep(1h);
        };
        auto t = ioloop::create_task(holder(l));
        co_await ioloop::sleep(0ms);
        CHECK(l.locked());
        t.cancel();
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK_FALSE(l.locked());
    }());
}

// ---- semaphore ---------------------------------------------------------------------------

TEST_CASE("semaphore: value counts free units, acquire waits at zero, release frees one") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::semaphore s(2);
        CHECK(s.value() == 2);
        CHECK_FALSE(s.locked());
        co_await s.acquire();
        CHECK(s.value() == 1);
        co_await s.acquire();
        CHECK(s.value() == 0);
        CHECK(s.locked());
        std::vector<int> order;
        auto t = ioloop::create_task(take_unit(s, order, 1));
        co_await yield_iterations(3);
        CHECK(order.empty());  // no unit free
        s.release();
        co_await t;
        CHECK(order == std::vector<int>{1});
        CHECK(s.value() == 1);  // t gave its unit back
        s.release();
        CHECK(s.value() == 2);
        s.release();  // a plain semaphore may go past its initial value
        CHECK(s.value() == 3);
        ioloop::semaphore closed(0);
        CHECK(closed.locked());
        ioloop::semaphore one;
        CHECK(one.value() == 1);
    }());
}

TEST_CASE("semaphore: waiters get units in the order they asked for them") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::semaphore s(2);
        std::vector<int> order;
        co_await s.acquire();
        co_await s.acquire();
        std::vector<ioloop::task<void>> waiters;
        for (int id : {3, 1, 4, 0, 2, 5})
            waiters.push_back(ioloop::create_task(take_unit(s, order, id)));
        co_await ioloop::sleep(0ms);
        CHECK(order.empty());
        s.release();
        s.release();
        for (auto& w : waiters) co_await w;
        CHECK(order == std::vector<int>{3, 1, 4, 0, 2, 5});
        CHECK(s.value() == 2);
    }());
}

TEST_CASE("semaphore: a task arriving while woken waiters have not run yet queues behind them") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::semaphore s(1);
        std::vector<int> order;
        co_await s.acquire();
        auto first = ioloop::create_task(take_unit(s, order, 1));
        co_await ioloop::sleep(0ms);
        s.release();  // the unit is reserved for `first`
        CHECK(s.value() == 0);
        CHECK(s.locked());
        co_await s.acquire();
        order.push_back(2);
        s.release();
        co_await first;
        CHECK(order == std::vector<int>{1, 2});
        CHECK(s.value() == 1);
    }());
}

TEST_CASE("semaphore: a unit freed while the only waiter is woken goes to whoever queued next") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::semaphore s(1);
        std::vector<int> order;
        co_await s.acquire();
        auto first = ioloop::create_task(take_unit(s, order, 1));
        co_await ioloop::sleep(0ms);
        s.release();  // reserved for `first`
        s.release();  // nobody else waits: stays free
        CHECK(s.value() == 1);
        CHECK(s.locked());          // yet `first` has not run: a newcomer queues...
        co_await s.acquire();       // ...and `first`, once it runs, wakes it at once:
        CHECK_FALSE(first.done());  // both hold a unit now
        CHECK(s.value() == 0);
        order.push_back(2);
        s.release();
        co_await first;
        CHECK(order == std::vector<int>{1, 2});
        CHECK(s.value() == 2);
    }());
}

TEST_CASE("semaphore: cancelled waiters, woken or not, leave the count right and strand nobody") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::semaphore s(1);
        std::vector<int> order;
        co_await s.acquire();
        auto a = ioloop::create_task(take_unit(s, order, 1));
        auto b = ioloop::create_task(take_unit(s, order, 2));
        auto c = ioloop::create_task(take_unit(s, order, 3));
        co_await ioloop::sleep(0ms);
        b.cancel();  // queued
        CHECK_THROWS_AS(co_await b, ioloop::cancelled_error);
        CHECK(s.value() == 0);
        s.release();  // reserved for a...
        a.cancel();   // ...cancelled before it runs: the unit goes on to c
        CHECK_THROWS_AS(co_await a, ioloop::cancelled_error);
        co_await yield_iterations(3);
        CHECK(order == std::vector<int>{3});
        co_await settle(c);
        CHECK_FALSE(c.cancelled());
        CHECK(s.value() == 1);
        CHECK_FALSE(s.locked());
    }());
}

TEST_CASE("bounded_semaphore: releasing past the initial value is an invalid_state_error") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::bounded_semaphore s(2);
        CHECK_THROWS_AS(s.release(), ioloop::invalid_state_error);
        CHECK(s.value() == 2);
        co_await s.acquire();
        {
            auto guard = co_await s.scoped();
            CHECK(s.value() == 0);
        }
        s.release();
        CHECK(s.value() == 2);
        CHECK_THROWS_WITH_AS(s.release(),
                             "bounded_semaphore::release: released more times than acquired",
                             ioloop::invalid_state_error);
        CHECK(s.value() == 2);
    }());
}

TEST_CASE("semaphore: the guard gives the unit back on an exception") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::semaphore s(1);
        auto failing = [](ioloop::semaphore& sem) -> ioloop::coro<void> {
            auto guard = co_await sem.scoped();
            CHECK(sem.value() == 0);
            throw std::runtime_error("failed while holding a unit");
        };
        CHECK_THROWS_AS(co_await failing(s), std::runtime_error);
        CHECK(s.value() == 1);
    }());
}

// ---- condition ---------------------------------------------------------------------------

TEST_CASE("condition: notify wakes waiters first come first woken, each returns with the lock") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::condition c;
        std::vector<int> order;
        std::vector<ioloop::task<void>> waiters;
        for (int id : {2, 0, 3, 1})
            waiters.push_back(ioloop::create_task(wait_notified(c, order, id)));
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(c.locked());  // every waiter released it to wait
        {
            ioloop::condition::guard guard = co_await c.scoped();
            c.notify();
        }
        co_await yield_iterations(3);
        CHECK(order == std::vector<int>{2});
        {
            auto guard = co_await c.scoped();
            c.notify(2);
        }
        co_await yield_iterations(3);
        CHECK(order == std::vector<int>{2, 0, 3});
        {
            auto guard = co_await c.scoped();
            c.notify_all();
            c.notify_all();  // nobody left: nothing happens
        }
        for (auto& w : waiters) co_await w;
        CHECK(order == std::vector<int>{2, 0, 3, 1});
        CHECK_FALSE(c.locked());
    }());
}

TEST_CASE("condition: wait_for returns once the predicate holds, with its value") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::condition c;
        int level = 0;
        int tests = 0;
        auto watcher = [](ioloop::condition& cond, int& lvl, int& n) -> ioloop::coro<int> {
            auto guard = co_await cond.scoped();
            co_return co_await cond.wait_for([&] {
                ++n;
                return lvl >= 3 ? lvl : 0;
            });
        };
        auto t = ioloop::create_task(watcher(c, level, tests));
        co_await ioloop::sleep(0ms);
        CHECK(tests == 1);  // tested once before waiting
        for (int i = 1; i <= 4; ++i) {
            {
                auto guard = co_await c.scoped();
                level = i;
                c.notify_all();
            }
            co_await yield_iterations(3);  // the watcher tests the predicate again
            CHECK(tests == 1 + std::min(i, 3));
            CHECK(t.done() == (i >= 3));
        }
        CHECK(co_await t == 3);
        // True at once: no wait, no notification needed.
        auto guard = co_await c.scoped();
        CHECK(co_await c.wait_for([] { return true; }));
    }());
}

TEST_CASE("condition: wait and notify without the lock are invalid_state_errors") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::condition c;
        CHECK_THROWS_WITH_AS(c.notify(), "condition::notify: the lock is not acquired",
                             ioloop::invalid_state_error);
        CHECK_THROWS_AS(c.notify_all(), ioloop::invalid_state_error);
        CHECK_THROWS_WITH_AS(co_await c.wait(), "condition::wait: the lock is not acquired",
                             ioloop::invalid_state_error);
        CHECK_THROWS_AS(c.release(), ioloop::invalid_state_error);
        CHECK_FALSE(c.locked());
    }());
}

TEST_CASE("condition: over an existing lock, shared with another condition") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::lock l;
        ioloop::condition not_empty(l);
        ioloop::condition not_full(l);
        std::vector<int> order;
        auto t = ioloop::create_task(wait_notified(not_empty, order, 1));
        co_await ioloop::sleep(0ms);
        co_await l.acquire();
        CHECK(not_empty.locked());
        CHECK(not_full.locked());
        not_full.notify_all();  // nobody waits on this one
        not_empty.notify();
        l.release();
        co_await t;
        CHECK(order == std::vector<int>{1});
        CHECK_FALSE(l.locked());
    }());
}

TEST_CASE("condition: a waiter cancelled takes the lock back before cancelled_error comes out") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::condition c;
        bool held_when_cancelled = false;
        auto waiter = [](ioloop::condition& cond, bool& held) -> ioloop::coro<void> {
            auto guard = co_await cond.scoped();
            try {
                co_await cond.wait();
            } catch (const ioloop::cancelled_error&) {
                held = cond.locked();
                throw;
            }
        };
        auto t = ioloop::create_task(waiter(c, held_when_cancelled));
        co_await ioloop::sleep(0ms);
        co_await c.acquire();  // someone else holds the lock when the cancel comes
        t.cancel();
        co_await yield_iterations(3);
        CHECK_FALSE(t.done());  // waiting for the lock, not yet out with cancelled_error
        c.release();
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(t.cancelled());
        CHECK(held_when_cancelled);
        CHECK_FALSE(c.locked());  // and the guard released it on the way out
    }());
}

TEST_CASE("condition: a cancel while taking the lock back still returns with the lock") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::condition c;
        bool held_when_cancelled = false;
        auto waiter = [](ioloop::condition& cond, bool& held) -> ioloop::coro<void> {
            auto guard = co_await cond.scoped();
            try {
                co_await cond.wait();
            } catch (const ioloop::cancelled_error&) {
                held = cond.locked();
                throw;
            }
        };
        auto t = ioloop::create_task(waiter(c, held_when_cancelled));
        co_await ioloop::sleep(0ms);
        co_await c.acquire();
        c.notify();  // t is woken and queues for the lock
        co_await yield_iterations(2);
        t.cancel();  // while it waits for the lock
        co_await yield_iterations(2);
        CHECK_FALSE(t.done());
        c.release();
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(held_when_cancelled);
        CHECK_FALSE(c.locked());
    }());
}

TEST_CASE("condition: a notified waiter cancelled before it runs passes the notification on") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::condition c;
        std::vector<int> order;
        auto a = ioloop::create_task(wait_notified(c, order, 1));
        auto b = ioloop::create_task(wait_notified(c, order, 2));
        co_await ioloop::sleep(0ms);
        {
            auto guard = co_await c.scoped();
            c.notify(1);  // a...
            a.cancel();   // ...will not return normally
        }
        CHECK_THROWS_AS(co_await a, ioloop::cancelled_error);
        co_await yield_iterations(3);
        CHECK(order == std::vector<int>{2});  // b got the notification
        co_await settle(b);
        CHECK_FALSE(b.cancelled());
        CHECK_FALSE(c.locked());
    }());
}

// ---- barrier -----------------------------------------------------------------------------

TEST_CASE("barrier: the last party releases the round; indices follow arrival; rounds repeat") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::barrier b(3);
        CHECK(b.parties() == 3);
        CHECK(b.n_waiting() == 0);
        CHECK_FALSE(b.broken());
        for (int round = 0; round < 2; ++round) {
            std::vector<std::size_t> index_of(2, 99);
            auto second = ioloop::create_task(pass_barrier(b, index_of, 1));
            auto first = ioloop::create_task(pass_barrier(b, index_of, 0));
            co_await ioloop::sleep(0ms);
            CHECK(b.n_waiting() == 2);
            CHECK(index_of == std::vector<std::size_t>{99, 99});
            CHECK(co_await b.wait() == 2);  // the last: does not wait
            co_await first;
            co_await second;
            CHECK(index_of == std::vector<std::size_t>{1, 0});  // task 1 arrived first
            CHECK(b.n_waiting() == 0);
        }
    }());
}

TEST_CASE("barrier: a task arriving while the round drains waits for the next round") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::barrier b(2);
        std::vector<std::size_t> index_of(3, 99);
        auto early = ioloop::create_task(pass_barrier(b, index_of, 0));
        co_await ioloop::sleep(0ms);
        CHECK(co_await b.wait() == 1);  // releases `early`, which has not left yet
        CHECK(b.n_waiting() == 0);      // draining
        CHECK_FALSE(early.done());
        auto late = ioloop::create_task(pass_barrier(b, index_of, 1));
        // Arrives while round 1 drains: waits until `early` has left, then joins round 2,
        // where `late` (scheduled before it was woken) came first.
        CHECK(co_await b.wait() == 1);
        CHECK(early.done());
        co_await early;
        co_await late;
        CHECK(index_of[0] == 0);
        CHECK(index_of[1] == 0);
        CHECK(b.n_waiting() == 0);
    }());
}

TEST_CASE("barrier: abort breaks it for the waiting and later tasks until reset") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::barrier b(3);
        std::vector<std::size_t> index_of(3, 99);
        auto a = ioloop::create_task(pass_barrier(b, index_of, 0));
        auto c = ioloop::create_task(pass_barrier(b, index_of, 1));
        co_await ioloop::sleep(0ms);
        b.abort();
        CHECK(b.broken());
        CHECK(b.n_waiting() == 0);
        CHECK_THROWS_AS(co_await a, ioloop::broken_barrier_error);
        CHECK_THROWS_AS(co_await c, ioloop::broken_barrier_error);
        CHECK_THROWS_WITH_AS(co_await b.wait(), "barrier::wait: the barrier was aborted",
                             ioloop::broken_barrier_error);
        b.reset();
        CHECK_FALSE(b.broken());
        auto d = ioloop::create_task(pass_barrier(b, index_of, 0));
        auto e = ioloop::create_task(pass_barrier(b, index_of, 1));
        co_await ioloop::sleep(0ms);
        CHECK(co_await b.wait() == 2);
        co_await d;
        co_await e;
        CHECK(index_of[0] == 0);
        CHECK(index_of[1] == 1);
    }());
}

TEST_CASE("barrier: reset sends the waiting tasks away with broken_barrier_error, then works") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::barrier b(3);
        std::vector<std::size_t> index_of(3, 99);
        auto a = ioloop::create_task(pass_barrier(b, index_of, 0));
        auto c = ioloop::create_task(pass_barrier(b, index_of, 1));
        co_await ioloop::sleep(0ms);
        CHECK(b.n_waiting() == 2);
        b.reset();
        CHECK_FALSE(b.broken());
        CHECK_THROWS_AS(co_await a, ioloop::broken_barrier_error);
        CHECK_THROWS_AS(co_await c, ioloop::broken_barrier_error);
        CHECK(b.n_waiting() == 0);
        auto d = ioloop::create_task(pass_barrier(b, index_of, 0));
        auto e = ioloop::create_task(pass_barrier(b, index_of, 1));
        co_await ioloop::sleep(0ms);
        CHECK(b.n_waiting() == 2);
        CHECK(co_await b.wait() == 2);
        co_await d;
        co_await e;
        CHECK(index_of[0] == 0);
        CHECK(index_of[1] == 1);
    }());
}

TEST_CASE("barrier: a cancelled waiter no longer counts; the barrier stays usable") {
    run_test([]() -> ioloop::coro<void> {
        ioloop::barrier b(2);
        std::vector<std::size_t> index_of(2, 99);
        auto a = ioloop::create_task(pass_barrier(b, index_of, 0));
        co_await ioloop::sleep(0ms);
        CHECK(b.n_waiting() == 1);
        a.cancel();
        CHECK_THROWS_AS(co_await a, ioloop::cancelled_error);
        CHECK(b.n_waiting() == 0);
        CHECK_FALSE(b.broken());
        auto c = ioloop::create_task(pass_barrier(b, index_of, 1));
        co_await ioloop::sleep(0ms);
        CHECK(b.n_waiting() == 1);
        CHECK(co_await b.wait() == 1);
        co_await c;
        CHECK(index_of[1] == 0);
    }());
}

TEST_CASE("barrier: zero parties is an invalid_argument") {
    CHECK_THROWS_AS(ioloop::barrier(0), std::invalid_argument);
}

// ---- loop close --------------------------------------------------------------------------

TEST_CASE("waiters destroyed with their frames at loop close leave nothing linked") {
    ioloop::event e;
    ioloop::lock l;
    ioloop::semaphore s(1);
    ioloop::condition c;
    ioloop::barrier b(3);
    std::vector<int> order;
    std::vector<std::size_t> index_of(2, 99);
    {
        ioloop::event_loop loop;
        loop.run_until_complete([](ioloop::lock& lk, ioloop::semaphore& sem) -> ioloop::coro<void> {
            co_await lk.acquire();  // kept: the waiters below queue
            co_await sem.acquire();
        }(l, s));
        loop.create_task(wait_event(e, order, 1));
        loop.create_task(take_lock(l, order, 2));
        loop.create_task(take_lock(l, order, 3));
        loop.create_task(take_unit(s, order, 4));
        loop.create_task(take_unit(s, order, 5));
        loop.create_task(wait_notified(c, order, 6));
        loop.create_task(pass_barrier(b, index_of, 0));
        loop.run_until_complete(yield_iterations(2));
        // The first lock and semaphore waiters are woken, and never run.
        l.release();
        s.release();
        loop.close();  // destroys every waiting frame
    }
    CHECK(order.empty());
    // The woken waiters' destructors gave back what was reserved for them.
    CHECK_FALSE(l.locked());
    CHECK(s.value() == 1);
    CHECK_FALSE(s.locked());
    // Nothing links to the freed frames: waking would touch them (ASan would see it).
    e.set();
    b.abort();
    ioloop::event_loop again;
    again.run_until_complete([](ioloop::lock& lk, ioloop::semaphore& sem,
                                ioloop::condition& cond) -> ioloop::coro<void> {
        co_await lk.acquire();  // free: at once
        lk.release();
        auto g = co_await sem.scoped();
        auto cg = co_await cond.scoped();
        cond.notify_all();
    }(l, s, c));
    again.close();
    CHECK_FALSE(l.locked());
    CHECK(s.value() == 1);
    CHECK_FALSE(c.locked());
}

TEST_CASE("primitives destroyed before the tasks waiting on them (at loop close) leave nothing") {
    struct primitives {
        ioloop::event e;
        ioloop::lock l;
        ioloop::semaphore s{0};
        ioloop::condition c;
        ioloop::barrier b{2};
    };
    bool owner_gone = false;
    {
        ioloop::event_loop loop;
        ioloop::future<primitives*> shared = loop.create_future<primitives*>();
        // The waiters start first; the loop abandons the newest task first, so the
        // owner's frame, and the primitives in it, go before the waiters' frames.
        auto waiter = [](ioloop::future<primitives*> f, int which) -> ioloop::coro<void> {
            primitives* p = co_await f;
            switch (which) {
                case 0:
                    co_await p->e.wait();
                    break;
                case 1:
                    co_await p->l.acquire();
                    break;
                case 2:
                    co_await p->s.acquire();
                    break;
                case 3:  // no guard here: a guard must not outlive its primitive
                    co_await p->c.acquire();
                    co_await p->c.wait();
                    break;
                default:
                    co_await p->b.wait();
            }
        };
        for (int i = 0; i < 5; ++i) loop.create_task(waiter(shared, i));
        struct flag_on_destroy {
            bool* flag;
            ~flag_on_destroy() { *flag = true; }
        };
        auto owner = [](ioloop::future<primitives*> f, bool* gone) -> ioloop::coro<void> {
            flag_on_destroy mark{gone};
            primitives p;
            co_await p.l.acquire();
            f.set_result(&p);
            co_await ioloop::sleep(1h);
        };
        loop.create_task(owner(shared, &owner_gone));
        loop.run_until_complete(yield_iterations(3));
        CHECK(shared.done());
        CHECK_FALSE(owner_gone);
        loop.close();
    }
    CHECK(owner_gone);
}
