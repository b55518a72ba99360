// The loop's remaining task API from asyncio: Runner (several runs on one loop), run's
// debug option, Task.get_stack()/print_stack(), cancel(msg), get_exception_handler.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

ioloop::coro<int> answer() { co_return 42; }

ioloop::coro<int> leave_running(ioloop::event& go, bool& cleaned_up) {
    // A task the first run leaves behind: it runs on in the second, and close() cancels it.
    ioloop::create_task([](ioloop::event& e, bool& cleaned) -> ioloop::coro<void> {
        try {
            co_await e.wait();
            co_await ioloop::sleep(1h);
        } catch (const ioloop::cancelled_error&) {
            cleaned = true;
            throw;
        }
    }(go, cleaned_up));
    co_return 1;
}

}  // namespace

TEST_CASE("runner: several runs on one loop; what a run left goes on in the next; close cancels the rest") {
    bool cleaned_up = false;
    ioloop::event go;
    {
        ioloop::runner r;
        CHECK(r.run(leave_running(go, cleaned_up)) == 1);
        ioloop::event_loop& loop = r.get_loop();
        CHECK_FALSE(loop.is_closed());
        // The second run sees the loop, and the task, of the first.
        CHECK(r.run([](ioloop::event& e, ioloop::event_loop& first) -> ioloop::coro<int> {
                  CHECK(&ioloop::get_running_loop() == &first);
                  CHECK(ioloop::all_tasks().size() == 2);  // this one, and the first run's
                  e.set();
                  co_await ioloop::sleep(0ms);
                  co_return 2;
              }(go, loop)) == 2);
        CHECK_FALSE(cleaned_up);
        r.close();
        CHECK(cleaned_up);  // cancelled, and given the chance to clean up
        CHECK_THROWS_AS((void)r.run(answer()), ioloop::invalid_state_error);
        CHECK_THROWS_AS((void)r.get_loop(), ioloop::invalid_state_error);
        r.close();  // twice: nothing
    }
}

TEST_CASE("runner: the destructor closes; an exception of main comes out and the runner stays usable") {
    ioloop::runner r;
    CHECK_THROWS_AS(r.run([]() -> ioloop::coro<void> {
                        co_await ioloop::sleep(0ms);
                        throw std::runtime_error("main failed");
                    }()),
                    std::runtime_error);
    CHECK(r.run(answer()) == 42);
}

TEST_CASE("runner::run and close from inside a running loop are errors") {
    ioloop::runner outer;
    outer.run([](ioloop::runner& self) -> ioloop::coro<void> {
        ioloop::runner inner;
        CHECK_THROWS_AS((void)inner.run(answer()), ioloop::invalid_state_error);
        CHECK_THROWS_AS(self.close(), ioloop::invalid_state_error);
        co_return;
    }(outer));
}

TEST_CASE("run and runner with {.debug = true} run in debug mode") {
    CHECK(ioloop::run([]() -> ioloop::coro<bool> { co_return ioloop::get_running_loop().get_debug(); }(),
                      {.debug = true}));
    CHECK_FALSE(ioloop::run([]() -> ioloop::coro<bool> { co_return ioloop::get_running_loop().get_debug(); }()));
    ioloop::runner r({.debug = true});
    CHECK(r.get_loop().get_debug());
}

namespace {

ioloop::coro<int> innermost(ioloop::event& reached, ioloop::event& go) {
    reached.set();
    co_await go.wait();
    co_return 3;
}

ioloop::coro<int> middle(ioloop::event& reached, ioloop::event& go) {
    co_return co_await innermost(reached, go) + 1;
}

ioloop::coro<int> outermost(ioloop::event& reached, ioloop::event& go) {
    int n = co_await answer();  // done before the suspension: not on the stack
    n += co_await middle(reached, go);
    co_return n;
}

}  // namespace

TEST_CASE("get_stack: the coroutines a task is suspended in, its own first; print_stack prints them") {
    ioloop::run([]() -> ioloop::coro<void> {
        ioloop::event reached, go;
        ioloop::task<int> t = ioloop::create_task(outermost(reached, go), "stacked");
        co_await reached.wait();
        const std::vector<ioloop::stack_frame> frames = t.get_stack();
        REQUIRE(frames.size() == 3);
        CHECK(contains(frames[0].function, "outermost"));
        CHECK(contains(frames[1].function, "middle"));
        CHECK(contains(frames[2].function, "innermost"));
        for (const ioloop::stack_frame& f : frames) {
            CHECK(contains(f.file, "test_runner.cpp"));
            CHECK(f.line > 0);
        }
        CHECK(frames[0].line > frames[1].line);  // outermost is defined below middle

        std::FILE* out = std::tmpfile();
        REQUIRE(out != nullptr);
        t.print_stack(out);
        std::rewind(out);
        std::string printed;
        char buf[512];
        while (std::fgets(buf, sizeof buf, out)) printed += buf;
        std::fclose(out);
        CHECK(contains(printed, "Stack for task stacked"));
        CHECK(contains(printed, "(most recent call last)"));
        CHECK(printed.find("outermost") < printed.find("middle"));
        CHECK(printed.find("middle") < printed.find("innermost"));

        go.set();
        CHECK(co_await t == 46);  // 42 + 3 + 1
        CHECK(t.get_stack().empty());  // done: no stack
    }());
}

TEST_CASE("get_stack of a task that has not started is its own coroutine alone") {
    ioloop::run([]() -> ioloop::coro<void> {
        ioloop::task<int> t = ioloop::create_task(answer());
        const std::vector<ioloop::stack_frame> frames = t.get_stack();
        REQUIRE(frames.size() == 1);
        CHECK(contains(frames[0].function, "answer"));
        CHECK(co_await t == 42);
    }());
}

TEST_CASE("cancel(msg): the cancelled_error thrown where the task waits carries the message") {
    ioloop::run([]() -> ioloop::coro<void> {
        std::string seen;
        ioloop::task<void> t = ioloop::create_task([](std::string& out) -> ioloop::coro<void> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error& e) {
                out = e.what();
                throw;
            }
        }(seen));
        co_await ioloop::sleep(0ms);
        CHECK(t.cancel("shutting down"));
        try {
            co_await t;
            FAIL("the task was not cancelled");
        } catch (const ioloop::cancelled_error& e) {
            CHECK(std::string(e.what()) == "shutting down");
        }
        CHECK(seen == "shutting down");
        CHECK(t.cancelled());
        CHECK_FALSE(t.cancel("again"));  // done

        // Cancelled before its first step: the task's error carries it too.
        ioloop::task<int> early = ioloop::create_task(answer());
        early.cancel("never started");
        try {
            (void)co_await early;
            FAIL("the task was not cancelled");
        } catch (const ioloop::cancelled_error& e) {
            CHECK(std::string(e.what()) == "never started");
        }

        // A task cancelled with a message while it awaits a future passes it on.
        ioloop::future<int> f = ioloop::get_running_loop().create_future<int>();
        ioloop::task<int> waiting = ioloop::create_task(
            [](ioloop::future<int> fut) -> ioloop::coro<int> { co_return co_await fut; }(f));
        co_await ioloop::sleep(0ms);
        waiting.cancel("no answer needed");
        co_await ioloop::sleep(0ms);
        CHECK(f.cancelled());
        try {
            (void)f.result();
            FAIL("the future was not cancelled");
        } catch (const ioloop::cancelled_error& e) {
            CHECK(std::string(e.what()) == "no answer needed");
        }
        CHECK_THROWS_AS((void)co_await waiting, ioloop::cancelled_error);

        // A plain future's cancel(msg).
        ioloop::future<void> g = ioloop::get_running_loop().create_future<void>();
        CHECK(g.cancel("plain"));
        CHECK_THROWS_WITH_AS(g.result(), "plain", ioloop::cancelled_error);
    }());
}

TEST_CASE("get_exception_handler: empty for the default, the handler once set, and it can be wrapped") {
    ioloop::event_loop loop;
    CHECK_FALSE(loop.get_exception_handler());
    std::vector<std::string> first, second;
    loop.set_exception_handler([&](const ioloop::exception_context& c) { first.push_back(c.message); });
    REQUIRE(loop.get_exception_handler());
    loop.get_exception_handler()({"called through get_exception_handler", nullptr, {}});
    CHECK(first == std::vector<std::string>{"called through get_exception_handler"});
    // Wrap it: take the old one over, call it from the new one.
    loop.set_exception_handler(
        [&, old = std::move(loop.get_exception_handler())](const ioloop::exception_context& c) mutable {
            second.push_back(c.message);
            old(c);
        });
    loop.call_soon([] { throw std::runtime_error("boom"); });
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(second == std::vector<std::string>{"exception in callback"});
    CHECK(first.size() == 2);
    loop.set_exception_handler({});
    CHECK_FALSE(loop.get_exception_handler());
    loop.close();
}
