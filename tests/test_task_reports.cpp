// What tasks and coroutines report through the loop's exception handler: an exception
// nobody retrieved (once), and in debug mode a coroutine never awaited and a task step
// that blocked the loop.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

ioloop::coro<void> fail(std::string message) {
    co_await ioloop::sleep(0ms);
    throw std::runtime_error(message);
}

ioloop::coro<int> answer() { co_return 42; }

// Runs `body` on a fresh loop whose exception handler records every context.
template <class Body>
std::vector<ioloop::exception_context> reports_of(Body body, bool debug = false) {
    std::vector<ioloop::exception_context> reports;
    {
        ioloop::event_loop loop;
        loop.set_debug(debug);
        loop.set_exception_handler(
            [&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
        loop.run_until_complete(body());
        loop.close();
    }
    return reports;
}

}  // namespace

TEST_CASE("an exception nobody retrieved is reported exactly once, naming the task") {
    auto reports = reports_of([]() -> ioloop::coro<void> {
        {
            auto t = ioloop::create_task(fail("lost"), "careless");
            co_await ioloop::sleep(1ms);
            CHECK(t.done());
        }  // the last handle goes: now it is known that nobody will read it
        co_await ioloop::sleep(0ms);
    });
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].message == "exception was never retrieved");
    CHECK(contains(reports[0].callback, "task careless"));
    CHECK(contains(reports[0].callback, "coroutine fail"));
    CHECK(contains(reports[0].callback, "test_task_reports.cpp"));
    REQUIRE(reports[0].exception);
    CHECK_THROWS_WITH_AS(std::rethrow_exception(reports[0].exception), "lost", std::runtime_error);
}

TEST_CASE("a task that nobody holds and that fails is reported once it is done") {
    auto reports = reports_of([]() -> ioloop::coro<void> {
        ioloop::create_task(fail("orphan"));
        co_await ioloop::sleep(1ms);
    });
    REQUIRE(reports.size() == 1);
    CHECK(contains(reports[0].callback, "coroutine fail"));
}

TEST_CASE("retrieved exceptions, results and cancellations are not reported") {
    auto reports = reports_of([]() -> ioloop::coro<void> {
        auto awaited = ioloop::create_task(fail("awaited"));
        try {
            co_await awaited;
        } catch (const std::runtime_error&) {
        }
        auto inspected = ioloop::create_task(fail("inspected"));
        co_await ioloop::sleep(1ms);
        CHECK(inspected.exception() != nullptr);
        auto cancelled = ioloop::create_task(fail("never runs"));
        cancelled.cancel();
        co_await ioloop::sleep(1ms);
        CHECK(cancelled.cancelled());
        auto fine = ioloop::create_task(answer());
        co_await ioloop::sleep(1ms);
    });
    CHECK(reports.empty());
}

TEST_CASE("a future's unretrieved exception is reported too") {
    auto reports = reports_of([]() -> ioloop::coro<void> {
        {
            auto f = ioloop::get_running_loop().create_future<int>();
            f.set_exception(std::make_exception_ptr(std::runtime_error("in a future")));
        }
        co_await ioloop::sleep(0ms);
    });
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].callback == "future");
}

TEST_CASE("an exception thrown by a done callback reaches the exception handler") {
    auto reports = reports_of([]() -> ioloop::coro<void> {
        auto t = ioloop::create_task(answer());
        t.add_done_callback([] { throw std::runtime_error("from the callback"); });
        co_await t;
        co_await ioloop::sleep(0ms);
    });
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].message == "exception in callback");
}

TEST_CASE("debug mode: a coroutine destroyed without ever being awaited is reported") {
    auto reports = reports_of(
        []() -> ioloop::coro<void> {
            { ioloop::coro<int> forgotten = answer(); }
            co_await ioloop::sleep(0ms);
        },
        true);
    REQUIRE(reports.size() == 1);
    CHECK(contains(reports[0].message, "coroutine answer"));
    CHECK(contains(reports[0].message, "was never awaited"));
    // Without debug mode, nothing is said.
    CHECK(reports_of([]() -> ioloop::coro<void> {
              { ioloop::coro<int> forgotten = answer(); }
              co_await ioloop::sleep(0ms);
          }).empty());
}

TEST_CASE("debug mode: a task step that blocks the loop is reported, naming the task") {
    auto reports = reports_of(
        []() -> ioloop::coro<void> {
            ioloop::get_running_loop().set_slow_callback_duration(20ms);
            auto blocker = []() -> ioloop::coro<void> {
                co_await ioloop::sleep(0ms);
                std::this_thread::sleep_for(50ms);  // the blocking call under test
            };
            co_await ioloop::create_task(blocker(), "blocker");
        },
        true);
    REQUIRE(reports.size() >= 1);
    bool named = false;
    for (const auto& r : reports) {
        named =
            named || (contains(r.message, "executing task blocker") &&
                      contains(r.message, "coroutine operator()") && contains(r.message, "took"));
    }
    CHECK(named);
}
