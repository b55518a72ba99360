// gather: results in argument order, the first error ends it while the other children keep
// running, return_exceptions gives every outcome, cancellation goes both ways as in asyncio.
// Order is sequenced with sleep(0) (one loop iteration each), never with timing.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Yields `turns` loop iterations, then records its index as finished and returns it.
ioloop::coro<int> after_turns(int index, int turns, std::vector<int>& finished) {
    for (int i = 0; i < turns; ++i) co_await ioloop::sleep(0ms);
    finished.push_back(index);
    co_return index;
}

ioloop::coro<int> fail_after_turns(int turns, std::string message) {
    for (int i = 0; i < turns; ++i) co_await ioloop::sleep(0ms);
    throw std::runtime_error(message);
}

// Sleeps for an hour unless cancelled; records that the cancellation reached it.
ioloop::coro<int> sleeper(int& cancelled_count) {
    try {
        co_await ioloop::sleep(1h);
    } catch (const ioloop::cancelled_error&) {
        ++cancelled_count;
        throw;
    }
    co_return 0;
}

}  // namespace

TEST_CASE("gather gives the results in argument order while the children finish in reverse") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<int> finished;
        // Child i yields 4 - i times: the last argument finishes first.
        auto [a, b, c, d] =
            co_await ioloop::gather(after_turns(0, 4, finished), after_turns(1, 3, finished),
                                    after_turns(2, 2, finished), after_turns(3, 1, finished));
        CHECK(finished == std::vector<int>{3, 2, 1, 0});
        CHECK(std::make_tuple(a, b, c, d) == std::make_tuple(0, 1, 2, 3));

        finished.clear();
        std::vector<ioloop::task<int>> tasks;
        for (int i = 0; i < 5; ++i)
            tasks.push_back(ioloop::create_task(after_turns(i, 5 - i, finished)));
        std::vector<int> results = co_await ioloop::gather(std::move(tasks));
        CHECK(finished == std::vector<int>{4, 3, 2, 1, 0});
        CHECK(results == std::vector<int>{0, 1, 2, 3, 4});
    };
    ioloop::run(amain());
}

TEST_CASE("gather takes coros, tasks and futures of any result type; void gives void_result") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        std::vector<int> finished;
        ioloop::task<int> kept = ioloop::create_task(after_turns(7, 1, finished));
        ioloop::future<std::string> f = loop.create_future<std::string>();
        loop.call_soon([f]() mutable { f.set_result("from a future"); });
        auto nothing = []() -> ioloop::coro<void> { co_await ioloop::sleep(0ms); };

        auto results =
            co_await ioloop::gather(after_turns(1, 2, finished), kept, std::move(f), nothing());
        static_assert(std::is_same_v<decltype(results),
                                     std::tuple<int, int, std::string, ioloop::void_result>>);
        CHECK(std::get<0>(results) == 1);
        CHECK(std::get<1>(results) == 7);
        CHECK(std::get<2>(results) == "from a future");
        // An lvalue handle stays the caller's: its result was copied, not moved out.
        CHECK(kept.result() == 7);

        std::vector<ioloop::task<void>> voids;
        voids.push_back(ioloop::create_task(nothing()));
        voids.push_back(ioloop::create_task(nothing()));
        std::vector<ioloop::void_result> v = co_await ioloop::gather(std::move(voids));
        CHECK(v.size() == 2);
    };
    ioloop::run(amain());
}

TEST_CASE("gather of a vector moves the results out; a vector kept by the caller is copied") {
    auto amain = []() -> ioloop::coro<void> {
        auto make = [](int v) -> ioloop::coro<std::unique_ptr<int>> {
            co_await ioloop::sleep(0ms);
            co_return std::make_unique<int>(v);
        };
        std::vector<ioloop::coro<std::unique_ptr<int>>> coros;
        coros.push_back(make(1));
        coros.push_back(make(2));
        std::vector<std::unique_ptr<int>> owned = co_await ioloop::gather(std::move(coros));
        REQUIRE(owned.size() == 2);
        CHECK(*owned[0] + *owned[1] == 3);

        auto text = [](std::string s) -> ioloop::coro<std::string> {
            co_await ioloop::sleep(0ms);
            co_return s;
        };
        std::vector<ioloop::task<std::string>> kept;
        kept.push_back(ioloop::create_task(text("a")));
        kept.push_back(ioloop::create_task(text("b")));
        std::vector<std::string> copies = co_await ioloop::gather(kept);
        CHECK(copies == std::vector<std::string>{"a", "b"});
        CHECK(kept[0].result() == "a");
        CHECK(kept[1].result() == "b");

        auto& loop = ioloop::get_running_loop();
        std::vector<ioloop::future<int>> futures{loop.create_future<int>(),
                                                 loop.create_future<int>()};
        loop.call_soon([f = futures]() mutable {
            f[1].set_result(20);
            f[0].set_result(10);
        });
        std::vector<int> from_futures = co_await ioloop::gather(std::move(futures));
        CHECK(from_futures == std::vector<int>{10, 20});
    };
    ioloop::run(amain());
}

TEST_CASE("gather's first error propagates at once and the other children keep running") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<int> finished;
        auto slow_a = ioloop::create_task(after_turns(1, 4, finished));
        auto failing = ioloop::create_task(fail_after_turns(1, "first"));
        auto later_failing = ioloop::create_task(fail_after_turns(3, "second"));
        auto slow_b = ioloop::create_task(after_turns(2, 5, finished));
        CHECK_THROWS_WITH_AS(co_await ioloop::gather(slow_a, failing, later_failing, slow_b),
                             "first", std::runtime_error);
        // The error came out before the others were done, and none of them was cancelled.
        CHECK(finished.empty());
        CHECK_FALSE(slow_a.done());
        CHECK_FALSE(later_failing.done());
        CHECK_FALSE(slow_b.done());
        CHECK(co_await slow_a == 1);
        CHECK(co_await slow_b == 2);
        CHECK(finished == std::vector<int>{1, 2});
        CHECK_THROWS_WITH_AS(co_await later_failing, "second", std::runtime_error);
    };
    ioloop::run(amain());
}

TEST_CASE("a child that failed before gather is awaited ends the gather without waiting") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<int> finished;
        auto failed = ioloop::create_task(fail_after_turns(0, "early"));
        co_await ioloop::sleep(0ms);
        REQUIRE(failed.done());
        auto slow = ioloop::create_task(after_turns(1, 3, finished));
        CHECK_THROWS_WITH_AS(co_await ioloop::gather(slow, failed), "early", std::runtime_error);
        CHECK_FALSE(slow.done());
        CHECK(co_await slow == 1);
    };
    ioloop::run(amain());
}

TEST_CASE("gather with return_exceptions lets every child finish and gives each outcome") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<int> finished;
        int cancels = 0;
        auto cancelled_child = ioloop::create_task(sleeper(cancels));
        auto canceller = [&]() -> ioloop::coro<void> {
            co_await ioloop::sleep(0ms);
            cancelled_child.cancel();  // cancelled on its own, not through gather
        };
        auto results =
            co_await ioloop::gather(ioloop::return_exceptions, after_turns(0, 3, finished),
                                    fail_after_turns(1, "failure"), cancelled_child, canceller());
        static_assert(std::is_same_v<decltype(results),
                                     std::tuple<ioloop::outcome<int>, ioloop::outcome<int>,
                                                ioloop::outcome<int>, ioloop::outcome<void>>>);
        CHECK(finished == std::vector<int>{0});  // the slowest child was waited for
        CHECK(std::get<0>(results).has_value());
        CHECK(std::get<0>(results).value() == 0);
        CHECK_FALSE(std::get<1>(results).has_value());
        CHECK_THROWS_WITH_AS(std::get<1>(results).value(), "failure", std::runtime_error);
        CHECK_THROWS_AS(std::get<2>(results).value(), ioloop::cancelled_error);
        CHECK(cancels == 1);
        CHECK(std::get<3>(results).has_value());

        std::vector<ioloop::task<int>> tasks;
        tasks.push_back(ioloop::create_task(fail_after_turns(2, "x")));
        tasks.push_back(ioloop::create_task(after_turns(5, 1, finished)));
        std::vector<ioloop::outcome<int>> outcomes =
            co_await ioloop::gather(ioloop::return_exceptions, std::move(tasks));
        REQUIRE(outcomes.size() == 2);
        CHECK(outcomes[0].exception() != nullptr);
        CHECK(outcomes[1].value() == 5);
    };
    ioloop::run(amain());
}

TEST_CASE("a child cancelled on its own makes gather fail with cancelled_error") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<int> finished;
        int cancels = 0;
        auto victim = ioloop::create_task(sleeper(cancels));
        auto other = ioloop::create_task(after_turns(1, 10, finished));
        auto gatherer = [&]() -> ioloop::coro<void> { co_await ioloop::gather(victim, other); };
        auto g = ioloop::create_task(gatherer());
        co_await ioloop::sleep(0ms);
        victim.cancel();
        CHECK_THROWS_AS(co_await g, ioloop::cancelled_error);
        CHECK(cancels == 1);
        CHECK_FALSE(other.done());  // asyncio: the other children are left alone
        CHECK(co_await other == 1);
    };
    ioloop::run(amain());
}

TEST_CASE("cancelling the task that awaits gather cancels every child") {
    auto amain = []() -> ioloop::coro<void> {
        int cancels = 0;
        std::vector<ioloop::task<int>> children;
        for (int i = 0; i < 3; ++i) children.push_back(ioloop::create_task(sleeper(cancels)));
        auto gatherer = [](std::vector<ioloop::task<int>> c) -> ioloop::coro<void> {
            co_await ioloop::gather(std::move(c));
        };
        auto g = ioloop::create_task(gatherer(children));
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        CHECK(g.cancel());
        CHECK_THROWS_AS(co_await g, ioloop::cancelled_error);
        CHECK(g.cancelled());
        for (auto& c : children) CHECK_THROWS_AS(co_await c, ioloop::cancelled_error);
        CHECK(cancels == 3);
    };
    ioloop::run(amain());
}

TEST_CASE("with return_exceptions, a cancelled gather waits for every child, then cancels") {
    auto amain = []() -> ioloop::coro<void> {
        int cancels = 0;
        // One child takes two more iterations to clean up after its cancellation.
        auto slow_cleanup = []() -> ioloop::coro<int> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
            }
            co_await ioloop::sleep(0ms);
            co_await ioloop::sleep(0ms);
            co_return 9;  // swallowed the cancellation
        };
        auto quick = ioloop::create_task(sleeper(cancels));
        auto stubborn = ioloop::create_task(slow_cleanup());
        auto gatherer = [&]() -> ioloop::coro<void> {
            co_await ioloop::gather(ioloop::return_exceptions, quick, stubborn);
        };
        auto g = ioloop::create_task(gatherer());
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        g.cancel();
        CHECK_THROWS_AS(co_await g, ioloop::cancelled_error);
        // asyncio: the cancellation comes out once every child is done, even though one of
        // them swallowed it.
        CHECK(quick.cancelled());
        CHECK(stubborn.done());
        CHECK(stubborn.result() == 9);
    };
    ioloop::run(amain());
}

TEST_CASE("cancelling the task that awaits gather cancels a pending future child at once") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::future<int> f = loop.create_future<int>();
        auto gatherer = [](ioloop::future<int> fut) -> ioloop::coro<void> {
            co_await ioloop::gather(std::move(fut));
        };
        auto g = ioloop::create_task(gatherer(f));
        co_await ioloop::sleep(0ms);
        g.cancel();
        CHECK(f.cancelled());
        CHECK_THROWS_AS(co_await g, ioloop::cancelled_error);
    };
    ioloop::run(amain());
}

TEST_CASE("gather of 10,000 tasks") {
    auto amain = []() -> ioloop::coro<void> {
        auto one = [](int i) -> ioloop::coro<int> {
            co_await ioloop::sleep(0ms);
            co_return i;
        };
        constexpr int n = 10'000;
        std::vector<ioloop::task<int>> tasks;
        tasks.reserve(n);
        for (int i = 0; i < n; ++i) tasks.push_back(ioloop::create_task(one(i)));
        std::vector<int> results = co_await ioloop::gather(std::move(tasks));
        REQUIRE(results.size() == std::size_t(n));
        bool in_order = true;
        for (int i = 0; i < n; ++i) in_order = in_order && results[std::size_t(i)] == i;
        CHECK(in_order);
    };
    ioloop::run(amain());
}

TEST_CASE("gather of nothing: an empty vector, an empty tuple, at once") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<ioloop::task<int>> none;
        std::vector<int> results = co_await ioloop::gather(std::move(none));
        CHECK(results.empty());
        std::vector<ioloop::outcome<int>> outcomes =
            co_await ioloop::gather(ioloop::return_exceptions, std::vector<ioloop::task<int>>{});
        CHECK(outcomes.empty());
        std::tuple<> t = co_await ioloop::gather();
        (void)t;
    };
    ioloop::run(amain());
}

TEST_CASE("gather of children already done gives their results without suspending") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::future<int> a = loop.create_future<int>();
        ioloop::future<int> b = loop.create_future<int>();
        a.set_result(1);
        b.set_result(2);
        const auto before = loop.iteration_count();
        auto [x, y] = co_await ioloop::gather(a, b);
        CHECK(loop.iteration_count() == before);
        CHECK(x + y == 3);
    };
    ioloop::run(amain());
}
