// race: the first awaitable to finish gives the result (a variant, index = argument), the
// others are cancelled and done before race returns; the winner's error comes out after
// the same; a cancel of the racing task cancels and waits for every child. Order is
// sequenced with sleep(0) (one loop iteration each), never with timing.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Yields `turns` iterations, then returns `value`. If cancelled, records it in `log` and
// goes on being cancelled.
template <class T>
ioloop::coro<T> after_turns(int turns, T value, std::vector<std::string>& log, std::string name) {
    try {
        for (int i = 0; i < turns; ++i) co_await ioloop::sleep(0ms);
    } catch (const ioloop::cancelled_error&) {
        log.push_back(name + " cancelled");
        throw;
    }
    log.push_back(name + " done");
    co_return value;
}

ioloop::coro<void> void_after_turns(int turns, std::vector<std::string>& log, std::string name) {
    co_await after_turns(turns, 0, log, std::move(name));
}

ioloop::coro<int> fail_after_turns(int turns, std::string message) {
    for (int i = 0; i < turns; ++i) co_await ioloop::sleep(0ms);
    throw std::runtime_error(message);
}

// Sleeps an hour unless cancelled; takes `cleanup_turns` iterations to clean up then, so
// that race's waiting for the losers is seen.
ioloop::coro<int> slow_loser(std::vector<std::string>& log, int cleanup_turns,
                             int* started = nullptr) {
    if (started) ++*started;
    bool cancelled = false;
    try {
        co_await ioloop::sleep(1h);
    } catch (const ioloop::cancelled_error&) {
        cancelled = true;
    }
    if (!cancelled) co_return -1;
    // A cancel is thrown at one suspension point: the cleanup's own waits go on.
    for (int i = 0; i < cleanup_turns; ++i) co_await ioloop::sleep(0ms);
    log.push_back("loser cleaned up");
    throw ioloop::cancelled_error();
}

}  // namespace

TEST_CASE("race gives the first result, in a variant indexed by argument") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        std::variant<int, std::string> r = co_await ioloop::race(
            after_turns(3, 1, log, "a"), after_turns(1, std::string("b wins"), log, "b"));
        REQUIRE(r.index() == 1);
        CHECK(std::get<1>(r) == "b wins");
        // The loser was cancelled and is done: nothing of the race outlives it.
        CHECK(log == std::vector<std::string>{"b done", "a cancelled"});

        // Two arguments of one type stay apart: the index names the winner.
        log.clear();
        auto same = co_await ioloop::race(after_turns(1, 7, log, "x"), after_turns(4, 8, log, "y"));
        static_assert(std::is_same_v<decltype(same), std::variant<int, int>>);
        CHECK(same.index() == 0);
        CHECK(std::get<0>(same) == 7);
    };
    ioloop::run(amain());
}

TEST_CASE("race gives void_result for a void winner") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        auto r = co_await ioloop::race(void_after_turns(1, log, "v"), after_turns(5, 1, log, "i"));
        static_assert(std::is_same_v<decltype(r), std::variant<ioloop::void_result, int>>);
        CHECK(r.index() == 0);
        CHECK(log == std::vector<std::string>{"v done", "i cancelled"});
    };
    ioloop::run(amain());
}

TEST_CASE("race returns only once the losers have finished their cleanup") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        auto r = co_await ioloop::race(slow_loser(log, 3), after_turns(1, 5, log, "fast"));
        CHECK(r.index() == 1);
        CHECK(log == std::vector<std::string>{"fast done", "loser cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("race throws the winner's error after cancelling and awaiting the rest") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        std::string caught;
        try {
            (void)co_await ioloop::race(slow_loser(log, 2), fail_after_turns(1, "boom"));
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
        CHECK(caught == "boom");
        CHECK(log == std::vector<std::string>{"loser cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("cancelling the racing task cancels every child and waits for them") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        int started = 0;
        auto racer = ioloop::create_task([&]() -> ioloop::coro<int> {
            auto r = co_await ioloop::race(slow_loser(log, 2, &started),
                                           slow_loser(log, 1, &started));
            co_return static_cast<int>(r.index());
        });
        while (started < 2) co_await ioloop::sleep(0ms);
        racer.cancel();
        bool cancelled = false;
        try {
            (void)co_await racer;
        } catch (const ioloop::cancelled_error&) {
            cancelled = true;
        }
        CHECK(cancelled);
        CHECK(racer.cancelled());
        CHECK(log == std::vector<std::string>{"loser cleaned up", "loser cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("race takes tasks, futures and any awaitable; the caller's task is cancelled if it loses") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        ioloop::queue<int> q;
        ioloop::event never;
        ioloop::task<int> mine = ioloop::create_task(after_turns(10, 0, log, "mine"));
        auto producer = ioloop::create_task([&]() -> ioloop::coro<void> {
            co_await ioloop::sleep(0ms);
            q.put_nowait(42);
        });
        auto r = co_await ioloop::race(q.get(), never.wait(), mine, ioloop::sleep(1h));
        static_assert(std::is_same_v<decltype(r), std::variant<int, ioloop::void_result, int,
                                                                 ioloop::void_result>>);
        REQUIRE(r.index() == 0);
        CHECK(std::get<0>(r) == 42);
        CHECK(mine.cancelled());
        CHECK(log == std::vector<std::string>{"mine cancelled"});
        co_await producer;

        // A future that is set wins over a sleep; the losing event waiter leaves its queue.
        ioloop::future<std::string> f = ioloop::get_running_loop().create_future<std::string>();
        f.set_result("set");
        auto r2 = co_await ioloop::race(never.wait(), f);
        REQUIRE(r2.index() == 1);
        CHECK(std::get<1>(r2) == "set");
        never.set();  // no waiter is left to wake

        // shield(t): the race's cancel ends only its own wait; t goes on and finishes.
        ioloop::task<int> kept = ioloop::create_task(after_turns(20, 9, log, "kept"));
        auto r3 = co_await ioloop::race(ioloop::shield(kept), ioloop::sleep(0ms));
        CHECK(r3.index() == 1);
        CHECK_FALSE(kept.done());
        CHECK(co_await kept == 9);
    };
    ioloop::run(amain());
}

TEST_CASE("children already done: the first in argument order wins, without waiting") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        auto a = ioloop::create_task(after_turns(0, 1, log, "a"));
        auto b = ioloop::create_task(after_turns(0, 2, log, "b"));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        REQUIRE(a.done());
        REQUIRE(b.done());
        auto r = co_await ioloop::race(b, a);
        CHECK(r.index() == 0);
        CHECK(std::get<0>(r) == 2);
        CHECK(a.result() == 1);  // a was done: nothing cancelled it

        // A pending future loses to a done task at once: cancelled within the race's start.
        ioloop::future<int> pending = ioloop::get_running_loop().create_future<int>();
        auto r2 = co_await ioloop::race(a, pending);
        CHECK(r2.index() == 0);
        CHECK(pending.cancelled());
    };
    ioloop::run(amain());
}

TEST_CASE("a race can be kept and awaited later, or given to wait_for") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> log;
        auto kept = ioloop::race(after_turns(2, 1, log, "a"), after_turns(1, 2, log, "b"));
        auto moved = std::move(kept);
        auto r = co_await std::move(moved);
        CHECK(r.index() == 1);

        auto w = ioloop::wait_for(ioloop::race(ioloop::sleep(1h), after_turns(1, 3, log, "c")), 1h);
        auto r2 = co_await std::move(w);
        CHECK(r2.index() == 1);

        bool timed_out = false;
        try {
            (void)co_await ioloop::wait_for(ioloop::race(ioloop::sleep(1h), ioloop::sleep(2h)), 1ms);
        } catch (const ioloop::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
    };
    ioloop::run(amain());
}

TEST_CASE("a loser's own error is not lost: its task reports it") {
    std::vector<ioloop::exception_context> reports;
    {
        ioloop::event_loop loop;
        loop.set_exception_handler(
            [&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
        auto amain = []() -> ioloop::coro<void> {
            auto stubborn = []() -> ioloop::coro<int> {
                try {
                    co_await ioloop::sleep(1h);
                } catch (const ioloop::cancelled_error&) {
                    throw std::runtime_error("failed while stopping");
                }
                co_return 0;
            };
            auto r = co_await ioloop::race(stubborn(), ioloop::sleep(0ms));
            CHECK(r.index() == 1);
        };
        loop.run_until_complete(amain());
        loop.close();
    }
    REQUIRE(reports.size() == 1);
    std::string what;
    try {
        std::rethrow_exception(reports[0].exception);
    } catch (const std::runtime_error& e) {
        what = e.what();
    }
    CHECK(what == "failed while stopping");
}

TEST_CASE("a loop closed while a race waits takes the race and its children down cleanly") {
    ioloop::event_loop loop;
    int started = 0;
    std::vector<std::string> log;
    auto t = loop.create_task([&]() -> ioloop::coro<void> {
        (void)co_await ioloop::race(slow_loser(log, 0, &started), slow_loser(log, 0, &started));
    });
    for (int i = 0; i < 10 && started < 2; ++i) test::run_one_iteration(loop);
    REQUIRE(started == 2);
    CHECK_FALSE(t.done());
    loop.close();  // destroys the coroutines where they wait
    CHECK(t.cancelled());
    CHECK(log.empty());
}
