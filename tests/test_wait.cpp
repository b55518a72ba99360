// wait (each return_when, timeout), as_completed (completion order, timeout) and shield
// (the inner work survives a cancel of the awaiter). Futures set in a chosen order sequence
// the completions; timing only bounds the timeouts, generously.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

ioloop::coro<int> value_after_turns(int turns, int v) {
    for (int i = 0; i < turns; ++i) co_await ioloop::sleep(0ms);
    co_return v;
}

ioloop::coro<int> fail_after_turns(int turns) {
    for (int i = 0; i < turns; ++i) co_await ioloop::sleep(0ms);
    throw std::runtime_error("failed");
}

std::vector<int> values(std::vector<ioloop::task<int>>& tasks) {
    std::vector<int> r;
    for (auto& t : tasks) r.push_back(t.result());
    return r;
}

}  // namespace

TEST_CASE("wait with all_completed returns once every task is done") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<ioloop::task<int>> tasks;
        for (int i = 0; i < 3; ++i)
            tasks.push_back(ioloop::create_task(value_after_turns(3 - i, i)));
        tasks.push_back(ioloop::create_task(fail_after_turns(1)));
        auto [done, pending] = co_await ioloop::wait(tasks);
        CHECK(pending.empty());
        REQUIRE(done.size() == 4);
        // Each vector keeps argument order.
        CHECK(done[0] == tasks[0]);
        CHECK(done[3] == tasks[3]);
        CHECK(done[3].exception() != nullptr);
        done.pop_back();
        CHECK(values(done) == std::vector<int>{0, 1, 2});
    };
    ioloop::run(amain());
}

TEST_CASE("wait with first_completed returns when any is done, without cancelling the rest") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        std::vector<ioloop::future<int>> futures;
        for (int i = 0; i < 3; ++i) futures.push_back(loop.create_future<int>());
        loop.call_soon([f = futures[1]]() mutable { f.set_result(1); });
        auto [done, pending] = co_await ioloop::wait(futures, ioloop::first_completed);
        REQUIRE(done.size() == 1);
        CHECK(done[0] == futures[1]);
        REQUIRE(pending.size() == 2);
        CHECK(pending[0] == futures[0]);
        CHECK(pending[1] == futures[2]);
        CHECK_FALSE(futures[0].cancelled());
        CHECK_FALSE(futures[2].cancelled());
        // asyncio's spelling names the same thing.
        static_assert(ioloop::FIRST_COMPLETED == ioloop::first_completed);
        static_assert(ioloop::FIRST_EXCEPTION == ioloop::first_exception);
        static_assert(ioloop::ALL_COMPLETED == ioloop::all_completed);
    };
    ioloop::run(amain());
}

TEST_CASE("wait with first_exception returns at the first failure; a cancel is not one") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<ioloop::task<int>> tasks;
        tasks.push_back(ioloop::create_task(value_after_turns(1, 0)));
        tasks.push_back(ioloop::create_task(value_after_turns(100, 1)));  // cancelled below
        tasks.push_back(ioloop::create_task(fail_after_turns(3)));
        tasks.push_back(ioloop::create_task(value_after_turns(1000, 3)));
        tasks[1].cancel();
        auto [done, pending] = co_await ioloop::wait(tasks, ioloop::first_exception);
        REQUIRE(done.size() == 3);
        CHECK(done[0] == tasks[0]);
        CHECK(done[1].cancelled());
        CHECK(done[2] == tasks[2]);
        CHECK(done[2].exception() != nullptr);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == tasks[3]);
        tasks[3].cancel();

        // Without any failure it waits for all.
        std::vector<ioloop::task<int>> fine;
        fine.push_back(ioloop::create_task(value_after_turns(1, 0)));
        fine.push_back(ioloop::create_task(value_after_turns(4, 1)));
        auto all = co_await ioloop::wait(std::move(fine), ioloop::first_exception);
        CHECK(all.done.size() == 2);
        CHECK(all.pending.empty());
    };
    ioloop::run(amain());
}

TEST_CASE("wait with a timeout returns what is done and cancels nothing") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::future<int> never = loop.create_future<int>();
        ioloop::task<int> quick = ioloop::create_task(value_after_turns(1, 1));
        std::vector<ioloop::any_future> set{never, quick};
        const auto start = loop.time();
        auto [done, pending] = co_await ioloop::wait(set, 20ms);
        CHECK(loop.time() - start >= 20ms);
        CHECK(loop.time() - start < 10s);
        REQUIRE(done.size() == 1);
        CHECK(done[0] == quick);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == never);
        CHECK_FALSE(never.done());
        never.set_result(2);  // still usable: nobody cancelled it
    };
    ioloop::run(amain());
}

TEST_CASE("wait takes coros and hands back their tasks") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<ioloop::coro<int>> coros;
        coros.push_back(value_after_turns(2, 5));
        coros.push_back(value_after_turns(1, 6));
        auto [done, pending] = co_await ioloop::wait(std::move(coros));
        CHECK(pending.empty());
        CHECK(values(done) == std::vector<int>{5, 6});
    };
    ioloop::run(amain());
}

TEST_CASE("cancelling the task in wait ends only the wait") {
    auto amain = []() -> ioloop::coro<void> {
        auto child = ioloop::create_task(value_after_turns(5, 7));
        auto waiter = [](ioloop::task<int> c) -> ioloop::coro<void> {
            std::vector<ioloop::task<int>> one;
            one.push_back(std::move(c));
            co_await ioloop::wait(std::move(one));
        };
        auto w = ioloop::create_task(waiter(child));
        co_await ioloop::sleep(0ms);
        w.cancel();
        CHECK_THROWS_AS(co_await w, ioloop::cancelled_error);
        CHECK_FALSE(child.done());
        CHECK(co_await child == 7);
    };
    ioloop::run(amain());
}

TEST_CASE("wait on an empty set is an error, as in asyncio") {
    auto amain = []() -> ioloop::coro<void> {
        CHECK_THROWS_AS(co_await ioloop::wait(std::vector<ioloop::task<int>>{}), ioloop::error);
    };
    ioloop::run(amain());
}

TEST_CASE("as_completed hands out the handles in the order they finish") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        std::vector<ioloop::future<int>> futures;
        for (int i = 0; i < 4; ++i) futures.push_back(loop.create_future<int>());
        futures[3].set_result(3);  // done before the call: handed out first
        auto setter = [](std::vector<ioloop::future<int>> f) -> ioloop::coro<void> {
            for (int i : {2, 0, 1}) {
                co_await ioloop::sleep(0ms);
                f[std::size_t(i)].set_result(i);
            }
        };
        auto s = ioloop::create_task(setter(futures));
        auto next = ioloop::as_completed(futures);
        CHECK(next.size() == 4);
        std::vector<int> order;
        while (!next.empty()) {
            ioloop::future<int> f = co_await next.next();
            order.push_back(f.result());
        }
        CHECK(order == std::vector<int>{3, 2, 0, 1});
        CHECK_THROWS_AS(co_await next.next(), ioloop::invalid_state_error);
        co_await s;

        // Tasks made from coros, finishing in reverse order.
        std::vector<ioloop::coro<int>> coros;
        for (int i = 0; i < 3; ++i) coros.push_back(value_after_turns(3 - i, i));
        auto by_completion = ioloop::as_completed(std::move(coros));
        std::vector<int> results;
        for (std::size_t k = 0; k < 3; ++k)
            results.push_back(co_await (co_await by_completion.next()));
        CHECK(results == std::vector<int>{2, 1, 0});
    };
    ioloop::run(amain());
}

TEST_CASE("as_completed as a range: one awaitable per handle, each the next done") {
    ioloop::run([]() -> ioloop::coro<void> {
        std::vector<ioloop::coro<int>> coros;
        for (int i = 0; i < 3; ++i) coros.push_back(value_after_turns(3 - i, i));
        std::vector<int> results;
        int rounds = 0;
        for (auto next : ioloop::as_completed(std::move(coros))) {
            ioloop::task<int> t = co_await next;
            results.push_back(co_await t);
            ++rounds;
        }
        CHECK(rounds == 3);
        CHECK(results == std::vector<int>{2, 1, 0});

        // What next() already gave is not given again: the range has what is left.
        std::vector<ioloop::coro<int>> more;
        for (int i = 0; i < 3; ++i) more.push_back(value_after_turns(i + 1, i));
        auto set = ioloop::as_completed(std::move(more));
        CHECK(co_await (co_await set.next()) == 0);
        results.clear();
        for (auto next : set) results.push_back(co_await (co_await next));
        CHECK(results == std::vector<int>{1, 2});
        CHECK(set.empty());
    }());
}

TEST_CASE("as_completed with a timeout: the done ones first, then timeout_error for each left") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        std::vector<ioloop::task<int>> tasks;
        tasks.push_back(ioloop::create_task(value_after_turns(1, 1)));
        tasks.push_back(ioloop::create_task(value_after_turns(1'000'000, 2)));
        tasks.push_back(ioloop::create_task(value_after_turns(1'000'000, 3)));
        const auto start = loop.time();
        auto next = ioloop::as_completed(tasks, 20ms);
        CHECK((co_await next.next()).result() == 1);
        CHECK_THROWS_AS(co_await next.next(), ioloop::timeout_error);
        CHECK(loop.time() - start >= 20ms);
        CHECK(next.size() == 1);
        CHECK_THROWS_AS(co_await next.next(), ioloop::timeout_error);
        CHECK(next.empty());
        // Nothing was cancelled.
        CHECK_FALSE(tasks[1].done());
        tasks[1].cancel();
        tasks[2].cancel();
    };
    ioloop::run(amain());
}

TEST_CASE("shield keeps the inner task running when the awaiting task is cancelled") {
    auto amain = []() -> ioloop::coro<void> {
        auto inner = ioloop::create_task(value_after_turns(4, 21));
        auto awaiting = [](ioloop::task<int> t) -> ioloop::coro<int> {
            co_return co_await ioloop::shield(t);
        };
        auto outer = ioloop::create_task(awaiting(inner));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        outer.cancel();
        CHECK_THROWS_AS(co_await outer, ioloop::cancelled_error);
        CHECK_FALSE(inner.done());
        CHECK_FALSE(inner.cancelled());
        CHECK(co_await inner == 21);

        // A shielded coro is made a task that goes on after the awaiter's cancellation.
        bool finished = false;
        auto work = [&]() -> ioloop::coro<void> {
            co_await value_after_turns(4, 0);
            finished = true;
        };
        auto shielding = [&]() -> ioloop::coro<void> { co_await ioloop::shield(work()); };
        auto outer2 = ioloop::create_task(shielding());
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        outer2.cancel();
        CHECK_THROWS_AS(co_await outer2, ioloop::cancelled_error);
        CHECK_FALSE(finished);
        for (int i = 0; i < 5 && !finished; ++i) co_await ioloop::sleep(0ms);
        CHECK(finished);
    };
    ioloop::run(amain());
}

TEST_CASE("shield gives the inner result, and cancelled_error if the inner is cancelled") {
    auto amain = []() -> ioloop::coro<void> {
        CHECK(co_await ioloop::shield(value_after_turns(1, 4)) == 4);
        auto inner = ioloop::create_task(value_after_turns(1000, 0));
        auto outer = ioloop::create_task([](ioloop::task<int> t) -> ioloop::coro<int> {
            co_return co_await ioloop::shield(std::move(t));
        }(inner));
        co_await ioloop::sleep(0ms);
        inner.cancel();
        CHECK_THROWS_AS(co_await outer, ioloop::cancelled_error);
        CHECK(inner.cancelled());
    };
    ioloop::run(amain());
}
