// Cancelling tasks: cancelled_error is thrown where the task waits (a sleep, a future, an
// awaited task), a task may catch it and go on, a task cancelled before its first step
// runs nothing of its body. (The sync primitives, queues, combinators and executor test
// their own suspension points.)
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Where a cancellation was seen, for the assertions.
struct journal {
    std::vector<std::string> events;
    void add(std::string e) { events.push_back(std::move(e)); }
};

ioloop::coro<void> sleeper(journal& j, std::chrono::milliseconds d) {
    try {
        co_await ioloop::sleep(d);
        j.add("woke");
    } catch (const ioloop::cancelled_error&) {
        j.add("cancelled in sleep");
        throw;
    }
}

}  // namespace

TEST_CASE(
    "cancel a task sleeping: cancelled_error at the sleep, at once, and the task is cancelled") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto& loop = ioloop::get_running_loop();
        const auto start = loop.time();
        auto t = ioloop::create_task(sleeper(j, 1h));
        co_await ioloop::sleep(0ms);  // t is now asleep
        CHECK(t.cancel());
        CHECK_FALSE(t.done());  // it still has to run its handler
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(t.cancelled());
        CHECK(j.events == std::vector<std::string>{"cancelled in sleep"});
        CHECK(loop.time() - start < 10s);
        CHECK_FALSE(t.cancel());  // done
    };
    ioloop::run(amain());
}

TEST_CASE("cancel before the first step: nothing of the body runs") {
    auto amain = []() -> ioloop::coro<void> {
        bool started = false;
        auto body = [&]() -> ioloop::coro<int> {
            started = true;
            co_return 1;
        };
        auto t = ioloop::create_task(body());
        CHECK(t.cancel());
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(t.cancelled());
        CHECK_FALSE(started);
    };
    ioloop::run(amain());
}

TEST_CASE(
    "cancel a task waiting for a future: the future is cancelled, the task gets cancelled_error") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::future<int> f = ioloop::get_running_loop().create_future<int>();
        auto waiter = [](ioloop::future<int> fut) -> ioloop::coro<int> { co_return co_await fut; };
        auto t = ioloop::create_task(waiter(f));
        co_await ioloop::sleep(0ms);
        t.cancel();
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(f.cancelled());  // asyncio cancels the awaited future too
    };
    ioloop::run(amain());
}

TEST_CASE("cancelling a task that awaits another task cancels the inner one") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto inner = ioloop::create_task(sleeper(j, 1h));
        auto outer_body = [](ioloop::task<void> in) -> ioloop::coro<void> { co_await in; };
        auto outer = ioloop::create_task(outer_body(inner));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        outer.cancel();
        CHECK_THROWS_AS(co_await outer, ioloop::cancelled_error);
        CHECK(inner.cancelled());
        CHECK(outer.cancelled());
        CHECK(j.events == std::vector<std::string>{"cancelled in sleep"});
    };
    ioloop::run(amain());
}

TEST_CASE("an inner task that swallows the cancellation lets the outer one go on (asyncio)") {
    auto amain = []() -> ioloop::coro<void> {
        auto stubborn = []() -> ioloop::coro<int> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
            }
            co_return 5;
        };
        auto inner = ioloop::create_task(stubborn());
        auto outer_body = [](ioloop::task<int> in) -> ioloop::coro<int> { co_return co_await in; };
        auto outer = ioloop::create_task(outer_body(inner));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        outer.cancel();
        CHECK(co_await outer == 5);
        CHECK_FALSE(outer.cancelled());
    };
    ioloop::run(amain());
}

TEST_CASE(
    "a task may catch cancelled_error and continue; cancelling() and uncancel() count requests") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto resilient = [&]() -> ioloop::coro<int> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
                j.add("caught");
            }
            ioloop::any_task self = ioloop::current_task();
            CHECK(self.cancelling() == 1);
            CHECK(self.uncancel() == 0);
            co_await ioloop::sleep(1ms);  // later waits are not cancelled
            j.add("went on");
            co_return 3;
        };
        auto t = ioloop::create_task(resilient());
        co_await ioloop::sleep(0ms);
        t.cancel();
        CHECK(co_await t == 3);
        CHECK_FALSE(t.cancelled());
        CHECK(j.events == std::vector<std::string>{"caught", "went on"});
    };
    ioloop::run(amain());
}

TEST_CASE("a running task that cancels itself gets cancelled_error at its next suspension point") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto self_cancelling = [&]() -> ioloop::coro<void> {
            ioloop::current_task().cancel();
            j.add("still running");
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
                j.add("cancelled at the sleep");
                throw;
            }
        };
        auto t = ioloop::create_task(self_cancelling());
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"still running", "cancelled at the sleep"});
    };
    ioloop::run(amain());
}

TEST_CASE("cancel reaches the innermost coroutine a task is suspended in") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        struct nest {
            static ioloop::coro<void> down(journal& j, int depth) {
                if (depth == 0) {
                    co_await sleeper(j, 1h);
                    co_return;
                }
                try {
                    co_await down(j, depth - 1);
                } catch (const ioloop::cancelled_error&) {
                    j.add("unwound " + std::to_string(depth));
                    throw;
                }
            }
        };
        auto t = ioloop::create_task(nest::down(j, 2));
        co_await ioloop::sleep(0ms);
        t.cancel();
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"cancelled in sleep", "unwound 1", "unwound 2"});
    };
    ioloop::run(amain());
}

TEST_CASE("a cancel after the wake-up but before the next step still throws at that point") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::future<int> f = loop.create_future<int>();
        journal j;
        auto waiter = [&](ioloop::future<int> fut) -> ioloop::coro<void> {
            try {
                j.add("got " + std::to_string(co_await fut));
            } catch (const ioloop::cancelled_error&) {
                j.add("cancelled");
                throw;
            }
        };
        auto t = ioloop::create_task(waiter(f));
        co_await ioloop::sleep(0ms);
        // One callback: the future is done (t is woken), then t is cancelled before its
        // step runs. asyncio throws CancelledError at that await too.
        loop.call_soon([f, t]() mutable {
            f.set_result(1);
            CHECK(t.cancel());
        });
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"cancelled"});
        CHECK(f.result() == 1);
    };
    ioloop::run(amain());
}

TEST_CASE("a task cancelled while it runs that then returns without suspending is cancelled") {
    auto amain = []() -> ioloop::coro<void> {
        auto self_cancelling = []() -> ioloop::coro<int> {
            ioloop::current_task().cancel();
            co_return 1;  // asyncio: the pending cancel wins over the result
        };
        auto t = ioloop::create_task(self_cancelling());
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(t.cancelled());
    };
    ioloop::run(amain());
}

TEST_CASE("a wait ended by a cancel throws even if the cancel is withdrawn before the task resumes") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto t = ioloop::create_task(sleeper(j, 1h));
        co_await ioloop::sleep(0ms);
        CHECK(t.cancel());
        CHECK(t.uncancel() == 0);  // withdrawn, but the sleep is already over
        CHECK_THROWS_AS(co_await t, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"cancelled in sleep"});
    };
    ioloop::run(amain());
}
