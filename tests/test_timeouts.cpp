// wait_for and timeout scopes (asyncio.wait_for in its 3.12 form, asyncio.timeout): the
// inner work is cancelled and waited for, only a scope's own expiry becomes timeout_error,
// an outside cancel stays cancelled_error. Deadlines are short and the work they cut is
// an hour long, so the checks are about order; the only bounds are generous.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Sleeps an hour; when cancelled, cleans up for one more iteration, sets `cleaned` and
// lets the cancellation go on.
ioloop::coro<int> slow_with_cleanup(bool& cleaned) {
    bool cancelled = false;
    try {
        co_await ioloop::sleep(1h);
    } catch (const ioloop::cancelled_error&) {
        cancelled = true;  // no co_await in a handler: the cleanup follows it
    }
    if (cancelled) {
        co_await ioloop::sleep(0ms);  // the cleanup takes an iteration
        cleaned = true;
        throw ioloop::cancelled_error();
    }
    co_return 0;
}

ioloop::coro<int> value_after(std::chrono::milliseconds d, int v) {
    co_await ioloop::sleep(d);
    co_return v;
}

// What ended a piece of work: "value", "timeout", "cancelled", or another error's what().
template <class Coro>
ioloop::coro<std::string> outcome_of(Coro c) {
    try {
        co_await std::move(c);
        co_return "value";
    } catch (const ioloop::timeout_error&) {
        co_return "timeout";
    } catch (const ioloop::cancelled_error&) {
        co_return "cancelled";
    } catch (const std::exception& e) {
        co_return e.what();
    }
}

auto since(ioloop::loop_base::time_point start) {
    return ioloop::get_running_loop().time() - start;
}

}  // namespace

TEST_CASE("wait_for that completes in time returns the value") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        CHECK(co_await ioloop::wait_for(value_after(1ms, 5), 10s) == 5);

        auto t = ioloop::create_task(value_after(1ms, 6));
        CHECK(co_await ioloop::wait_for(t, 10s) == 6);
        CHECK(t.result() == 6);  // an lvalue task keeps its result

        ioloop::future<std::string> f = loop.create_future<std::string>();
        loop.call_soon([f]() mutable { f.set_result("set"); });
        CHECK(co_await ioloop::wait_for(std::move(f), 10s) == "set");

        auto nothing = []() -> ioloop::coro<void> { co_await ioloop::sleep(0ms); };
        co_await ioloop::wait_for(nothing(), 10s);
        ioloop::any_task untyped = ioloop::create_task(nothing());
        co_await ioloop::wait_for(untyped, 10s);
        CHECK(untyped.done());

        CHECK_THROWS_WITH_AS(co_await ioloop::wait_for(
                                 []() -> ioloop::coro<int> {
                                     co_await ioloop::sleep(0ms);
                                     throw std::runtime_error("inner error");
                                 }(),
                                 10s),
                             "inner error", std::runtime_error);
    };
    ioloop::run(amain());
}

TEST_CASE("wait_for that times out cancels the inner coro and waits for its cleanup") {
    auto amain = []() -> ioloop::coro<void> {
        bool cleaned = false;
        const auto start = ioloop::get_running_loop().time();
        CHECK_THROWS_AS(co_await ioloop::wait_for(slow_with_cleanup(cleaned), 20ms),
                        ioloop::timeout_error);
        CHECK(cleaned);  // the cleanup ran before timeout_error came out
        CHECK(since(start) >= 20ms);
        CHECK(since(start) < 10s);
        // The scope withdrew its own cancel request: the task is not cancelled.
        CHECK(ioloop::current_task().cancelling() == 0);
        co_await ioloop::sleep(0ms);
    };
    ioloop::run(amain());
}

TEST_CASE("wait_for that times out cancels the inner task and waits for its cleanup") {
    auto amain = []() -> ioloop::coro<void> {
        bool cleaned = false;
        auto t = ioloop::create_task(slow_with_cleanup(cleaned));
        CHECK_THROWS_AS(co_await ioloop::wait_for(t, 20ms), ioloop::timeout_error);
        CHECK(cleaned);
        CHECK(t.cancelled());
    };
    ioloop::run(amain());
}

TEST_CASE("cancelling the task in wait_for cancels the inner work: cancelled_error, not timeout") {
    auto amain = []() -> ioloop::coro<void> {
        bool cleaned = false;
        auto inner = ioloop::create_task(slow_with_cleanup(cleaned));
        auto outer = ioloop::create_task(outcome_of(ioloop::wait_for(inner, 1h)));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        outer.cancel();
        CHECK(co_await outer == "cancelled");
        CHECK(inner.cancelled());
        CHECK(cleaned);

        // The same with a coro running inline in the cancelled task.
        bool cleaned_inline = false;
        auto outer2 = ioloop::create_task(
            outcome_of(ioloop::wait_for(slow_with_cleanup(cleaned_inline), 1h)));
        co_await ioloop::sleep(0ms);
        outer2.cancel();
        CHECK(co_await outer2 == "cancelled");
        CHECK(cleaned_inline);
    };
    ioloop::run(amain());
}

TEST_CASE("wait_for whose inner work swallows the cancellation returns its value (3.12)") {
    auto amain = []() -> ioloop::coro<void> {
        auto stubborn = []() -> ioloop::coro<int> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
            }
            co_return 11;
        };
        CHECK(co_await ioloop::wait_for(stubborn(), 10ms) == 11);
    };
    ioloop::run(amain());
}

TEST_CASE("wait_for with a timeout of zero or less") {
    auto amain = []() -> ioloop::coro<void> {
        // Done already: its result.
        auto done = ioloop::create_task(value_after(0ms, 3));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        REQUIRE(done.done());
        CHECK(co_await ioloop::wait_for(done, 0s) == 3);

        // Pending: cancelled, waited for (its cleanup runs), then timeout_error.
        bool cleaned = false;
        auto pending = ioloop::create_task(slow_with_cleanup(cleaned));
        co_await ioloop::sleep(0ms);
        CHECK_THROWS_AS(co_await ioloop::wait_for(pending, -5s), ioloop::timeout_error);
        CHECK(pending.cancelled());
        CHECK(cleaned);

        // A coro never starts.
        bool ran = false;
        auto body = [&]() -> ioloop::coro<int> {
            ran = true;
            co_return 1;
        };
        CHECK_THROWS_AS(co_await ioloop::wait_for(body(), 0ms), ioloop::timeout_error);
        CHECK_FALSE(ran);
    };
    ioloop::run(amain());
}

TEST_CASE("delays past the clock's range saturate: hours::min() is now, hours::max() never") {
    using std::chrono::hours;
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        const std::uint64_t before = loop.iteration_count();
        co_await ioloop::sleep(hours::min());  // a deadline in the past: the next iteration
        CHECK(loop.iteration_count() - before <= 2);

        CHECK_THROWS_AS(co_await ioloop::timeout(hours::min(), value_after(1h, 1)),
                        ioloop::timeout_error);
        CHECK(co_await ioloop::timeout(hours::max(), value_after(1ms, 2)) == 2);
        CHECK_THROWS_AS(co_await ioloop::wait_for(value_after(1h, 3), hours::min()),
                        ioloop::timeout_error);
        CHECK(co_await ioloop::wait_for(value_after(1ms, 4), hours::max()) == 4);

        std::vector<ioloop::task<int>> tasks{ioloop::create_task(value_after(1h, 5))};
        const auto [done, pending] = co_await ioloop::wait(tasks, hours::min());
        CHECK(done.empty());
        CHECK(pending.size() == 1);
        tasks[0].cancel();
        tasks[0] = ioloop::create_task(value_after(1ms, 6));
        const auto [all_done, none] = co_await ioloop::wait(tasks, hours::max());
        CHECK(all_done.size() == 1);
        CHECK(none.empty());
    };
    ioloop::run(ioloop::wait_for(amain(), 30s));
}

TEST_CASE("wait_for(shield(t)) times out and t goes on") {
    auto amain = []() -> ioloop::coro<void> {
        auto t = ioloop::create_task(value_after(50ms, 8));
        CHECK_THROWS_AS(co_await ioloop::wait_for(ioloop::shield(t), 1ms), ioloop::timeout_error);
        CHECK_FALSE(t.done());
        CHECK(co_await t == 8);
        CHECK_THROWS_AS(
            co_await ioloop::wait_for(ioloop::shield(ioloop::create_task(value_after(1h, 0))), 0s),
            ioloop::timeout_error);
    };
    ioloop::run(amain());
}

TEST_CASE("a timeout scope that expires raises timeout_error and reports expired()") {
    auto amain = []() -> ioloop::coro<void> {
        bool cleaned = false;
        ioloop::timeout_scope scope(20ms);
        const auto deadline = scope.when();
        CHECK_FALSE(scope.expired());
        CHECK_THROWS_AS(co_await scope.run(slow_with_cleanup(cleaned)), ioloop::timeout_error);
        CHECK(scope.expired());
        CHECK(cleaned);
        CHECK(ioloop::get_running_loop().time() >= deadline);
        CHECK(ioloop::current_task().cancelling() == 0);
        // A scope runs once; its deadline cannot move once it ended.
        CHECK_THROWS_AS(co_await scope.run(value_after(0ms, 1)), ioloop::invalid_state_error);
        CHECK_THROWS_AS(scope.reschedule(ioloop::timeout_scope::never()),
                        ioloop::invalid_state_error);
    };
    ioloop::run(amain());
}

TEST_CASE("a timeout scope whose body finishes in time gives the body's result") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::timeout_scope scope(10s);
        CHECK(co_await scope.run(value_after(1ms, 4)) == 4);
        CHECK_FALSE(scope.expired());
        // The free forms: a coro, a callable making a coro, a task.
        CHECK(co_await ioloop::timeout(10s, value_after(0ms, 5)) == 5);
        int calls = 0;
        CHECK(co_await ioloop::timeout(10s, [&]() -> ioloop::coro<int> {
                  ++calls;
                  co_await ioloop::sleep(0ms);
                  co_return calls;
              }) == 1);
        auto t = ioloop::create_task(value_after(0ms, 6));
        CHECK(co_await ioloop::timeout_at(ioloop::timeout_scope::never(), t) == 6);
        bool cleaned = false;
        CHECK_THROWS_AS(co_await ioloop::timeout(10ms, slow_with_cleanup(cleaned)),
                        ioloop::timeout_error);
        CHECK(cleaned);
    };
    ioloop::run(amain());
}

TEST_CASE("reschedule moves a scope's deadline: later, never, or earlier") {
    auto amain = []() -> ioloop::coro<void> {
        // Without the reschedule, the 20 ms deadline would cut the 60 ms sleep.
        ioloop::timeout_scope later(20ms);
        CHECK_THROWS_AS(later.reschedule(later.when()), ioloop::invalid_state_error);
        co_await later.run([](ioloop::timeout_scope& s) -> ioloop::coro<void> {
            s.reschedule(s.when() + 1h);
            co_await ioloop::sleep(60ms);
        });
        CHECK_FALSE(later.expired());

        ioloop::timeout_scope removed(20ms);
        co_await removed.run([](ioloop::timeout_scope& s) -> ioloop::coro<void> {
            s.reschedule(ioloop::timeout_scope::never());
            CHECK(s.when() == ioloop::timeout_scope::never());
            co_await ioloop::sleep(60ms);
        });
        CHECK_FALSE(removed.expired());

        // Earlier: a deadline in the past expires on the next iteration.
        ioloop::timeout_scope sooner(1h);
        const auto start = ioloop::get_running_loop().time();
        CHECK_THROWS_AS(co_await sooner.run([](ioloop::timeout_scope& s) -> ioloop::coro<void> {
            s.reschedule(ioloop::get_running_loop().time() - 1s);
            co_await ioloop::sleep(1h);
        }),
                        ioloop::timeout_error);
        CHECK(sooner.expired());
        CHECK(since(start) < 10s);
    };
    ioloop::run(amain());
}

TEST_CASE("a cancel from outside during a timeout scope stays cancelled_error") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::timeout_scope scope(1h);
        bool cleaned = false;
        auto body = [&]() -> ioloop::coro<void> { co_await scope.run(slow_with_cleanup(cleaned)); };
        auto t = ioloop::create_task(outcome_of(body()));
        co_await ioloop::sleep(0ms);
        t.cancel();
        CHECK(co_await t == "cancelled");
        CHECK(cleaned);
        CHECK_FALSE(scope.expired());
    };
    ioloop::run(amain());
}

TEST_CASE("a cancel from outside after the scope expired stays cancelled_error") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::future<void> expiry_seen = loop.create_future();
        ioloop::timeout_scope scope(1ms);
        auto body = [&]() -> ioloop::coro<void> {
            co_await scope.run([&]() -> ioloop::coro<void> {
                try {
                    co_await ioloop::sleep(1h);
                } catch (const ioloop::cancelled_error&) {
                    expiry_seen.set_result();  // the scope's cancel; the body goes on
                }
                co_await ioloop::sleep(1h);  // here the cancel from outside arrives
            });
        };
        auto t = ioloop::create_task(outcome_of(body()));
        co_await expiry_seen;
        CHECK(scope.expired());
        t.cancel();
        // Two requests were made, the scope withdrew only its own: a cancellation.
        CHECK(co_await t == "cancelled");
    };
    ioloop::run(amain());
}

TEST_CASE("nested timeout scopes: only the one that expired raises timeout_error") {
    auto amain = []() -> ioloop::coro<void> {
        // The inner one expires: it raises timeout_error, the outer one goes on.
        ioloop::timeout_scope outer(1h);
        ioloop::timeout_scope inner(10ms);
        std::string seen;
        co_await outer.run([&]() -> ioloop::coro<void> {
            try {
                co_await inner.run(value_after(1h, 0));
            } catch (const ioloop::timeout_error&) {
                seen = "inner timeout";
            }
            co_await ioloop::sleep(0ms);  // still inside the outer scope, not cancelled
        });
        CHECK(seen == "inner timeout");
        CHECK(inner.expired());
        CHECK_FALSE(outer.expired());

        // The outer one expires: the inner one lets the cancellation through unchanged and
        // the outer one turns it into timeout_error.
        ioloop::timeout_scope outer2(10ms);
        ioloop::timeout_scope inner2(1h);
        std::string inner_saw;
        CHECK_THROWS_AS(co_await outer2.run([&]() -> ioloop::coro<void> {
            try {
                co_await inner2.run(value_after(1h, 0));
            } catch (const ioloop::cancelled_error&) {
                inner_saw = "cancelled";
                throw;
            }
        }),
                        ioloop::timeout_error);
        CHECK(inner_saw == "cancelled");
        CHECK(outer2.expired());
        CHECK_FALSE(inner2.expired());
        CHECK(ioloop::current_task().cancelling() == 0);
    };
    ioloop::run(amain());
}

TEST_CASE("a body that catches the expiry and finishes gives its value; the scope expired") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::timeout_scope scope(5ms);
        int r = co_await scope.run([]() -> ioloop::coro<int> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
            }
            co_return 12;
        });
        CHECK(r == 12);
        CHECK(scope.expired());
        CHECK(ioloop::current_task().cancelling() == 0);
    };
    ioloop::run(amain());
}

TEST_CASE("a timeout scope outside a task is an error") {
    ioloop::timeout_scope scope(1s);
    CHECK_THROWS_AS(scope.reschedule(scope.when()), ioloop::invalid_state_error);
}

TEST_CASE(
    "wait_for and timeout take any awaitable: a queue's get, a lock's acquire, an event's wait") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        CHECK_THROWS_AS(co_await ioloop::wait_for(q.get(), 5ms), ioloop::timeout_error);
        q.put_nowait(4);
        CHECK(co_await ioloop::wait_for(q.get(), 10s) == 4);
        CHECK(q.empty());  // the timed-out get took nothing

        ioloop::lock l;
        co_await l.acquire();
        CHECK_THROWS_AS(co_await ioloop::timeout(5ms, l.acquire()), ioloop::timeout_error);
        l.release();
        CHECK_FALSE(l.locked());  // the timed-out acquire left no trace
        co_await ioloop::timeout(10s, l.acquire());
        CHECK(l.locked());
        l.release();

        ioloop::event e;
        ioloop::get_running_loop().call_later(1ms, [&e] { e.set(); });
        co_await ioloop::wait_for(e.wait(), 10s);
        CHECK(e.is_set());
    };
    ioloop::run(amain());
}

// ---- a wait_for or timeout kept past the expression that made it ---------------------------

TEST_CASE("a wait_for or timeout of an awaiter can be kept and awaited later") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<std::string> q;
        // The awaiter of q.get() is a temporary: it is moved into the wait_for, so the
        // wait_for refers to nothing that died with its first statement.
        auto w = ioloop::wait_for(q.get(), 1h);
        q.put_nowait(std::string(100, 'q'));
        CHECK(co_await std::move(w) == std::string(100, 'q'));

        ioloop::lock l;
        auto kept = ioloop::timeout(1h, l.acquire());
        co_await kept;  // the timeout awaiter itself stays where it is
        CHECK(l.locked());
        auto blocked = ioloop::wait_for(l.acquire(), 1ms);
        bool timed_out = false;
        try {
            co_await std::move(blocked);
        } catch (const ioloop::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        l.release();
        CHECK_FALSE(l.locked());  // the timed-out acquire took nothing

        auto nap = ioloop::wait_for(ioloop::sleep(0ms), 1h);
        co_await std::move(nap);

        // A named awaiter is awaited where it lies: it outlives the wait_for here.
        ioloop::event e;
        auto named = e.wait();
        e.set();
        co_await ioloop::wait_for(named, 1h);
    };
    ioloop::run(amain());
}
