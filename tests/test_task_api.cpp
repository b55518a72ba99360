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
            CHECK(contains(f.file, "test_task_api.cpp"));
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

namespace {

ioloop::coro<int> record_then_suspend(std::vector<std::string>& log) {
    log.push_back("body starts");
    co_await ioloop::sleep(0ms);
    log.push_back("body resumes");
    co_return 7;
}

}  // namespace

TEST_CASE("eager_start: the body runs inside create_task up to its first suspension") {
    ioloop::run([]() -> ioloop::coro<void> {
        std::vector<std::string> log;
        ioloop::task<int> t =
            ioloop::create_task(record_then_suspend(log), {.name = "eager", .eager_start = true});
        log.push_back("create_task returned");
        CHECK(t.get_name() == "eager");
        CHECK_FALSE(t.done());
        CHECK(co_await t == 7);
        CHECK(log == std::vector<std::string>{"body starts", "create_task returned", "body resumes"});

        // Without it, nothing runs before the next iteration.
        log.clear();
        ioloop::task<int> lazy = ioloop::create_task(record_then_suspend(log));
        log.push_back("create_task returned");
        CHECK(co_await lazy == 7);
        CHECK(log.front() == "create_task returned");

        // A body that never suspends: the task is done when create_task returns, and it is
        // the current task while it runs.
        ioloop::any_task inside;
        ioloop::task<void> quick = ioloop::create_task(
            [](ioloop::any_task& seen) -> ioloop::coro<void> {
                seen = ioloop::current_task();
                co_return;
            }(inside),
            {.eager_start = true});
        CHECK(quick.done());
        CHECK(inside.get_name() == quick.get_name());
        CHECK(ioloop::current_task().get_name() != quick.get_name());  // back to ours
    }());
}

TEST_CASE("set_task_factory(eager_task_factory): every create_task of the loop starts eagerly") {
    ioloop::event_loop loop;
    CHECK(loop.get_task_factory() == ioloop::task_factory::standard);
    loop.set_task_factory(ioloop::eager_task_factory);
    CHECK(loop.get_task_factory() == ioloop::task_factory::eager);
    std::vector<std::string> log;
    // Not running yet: scheduled as usual.
    ioloop::task<int> before = loop.create_task(record_then_suspend(log));
    CHECK(log.empty());
    loop.run_until_complete([](std::vector<std::string>& l, ioloop::task<int> first) -> ioloop::coro<void> {
        CHECK(co_await first == 7);
        l.clear();
        ioloop::task<int> t = ioloop::create_task(record_then_suspend(l));
        CHECK(l == std::vector<std::string>{"body starts"});  // already ran, inside create_task
        CHECK(co_await t == 7);
    }(log, before));
    loop.set_task_factory(nullptr);
    CHECK(loop.get_task_factory() == ioloop::task_factory::standard);
    loop.close();
}

TEST_CASE("remove_done_callback takes back a callback not yet scheduled, by what add_done_callback returned") {
    ioloop::run([]() -> ioloop::coro<void> {
        std::vector<int> ran;
        ioloop::future<int> f = ioloop::get_running_loop().create_future<int>();
        const ioloop::done_callback one = f.add_done_callback([&] { ran.push_back(1); });
        const ioloop::done_callback two = f.add_done_callback([&] { ran.push_back(2); });
        f.add_done_callback([&] { ran.push_back(3); });
        CHECK(f.remove_done_callback(two) == 1);
        CHECK(f.remove_done_callback(two) == 0);             // already taken back
        CHECK(f.remove_done_callback(ioloop::done_callback()) == 0);
        f.set_result(5);
        CHECK(f.remove_done_callback(one) == 0);  // scheduled when the future finished
        co_await ioloop::sleep(0ms);
        CHECK(ran == std::vector<int>{1, 3});

        // A task's, and a callback of another future is not this one's to remove.
        ioloop::task<int> t = ioloop::create_task(answer());
        ioloop::future<int> other = ioloop::get_running_loop().create_future<int>();
        const ioloop::done_callback on_other = other.add_done_callback([&] { ran.push_back(9); });
        const ioloop::done_callback on_task = t.add_done_callback([&] { ran.push_back(4); });
        CHECK(t.remove_done_callback(on_other) == 0);
        CHECK(t.remove_done_callback(on_task) == 1);
        CHECK(co_await t == 42);
        co_await ioloop::sleep(0ms);
        CHECK(ran == std::vector<int>{1, 3});
        other.cancel();
        co_await ioloop::sleep(0ms);
        CHECK(ran == std::vector<int>{1, 3, 9});
    }());
}
