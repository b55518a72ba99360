// coro<T>, task<T>, future<T>, sleep, ioloop::run and run_until_complete: what asyncio's
// coroutines, tasks and futures promise.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

ioloop::coro<int> answer() { co_return 42; }

ioloop::coro<std::string> fetch(std::string url, std::chrono::milliseconds delay) {
    co_await ioloop::sleep(delay);
    co_return "data from " + url;
}

ioloop::coro<void> fail_after(std::chrono::milliseconds delay, std::string message) {
    co_await ioloop::sleep(delay);
    throw std::runtime_error(message);
}

std::chrono::milliseconds elapsed_since(ioloop::loop_base::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(ioloop::get_running_loop().time() -
                                                                 start);
}

}  // namespace

TEST_CASE("ioloop::run returns the coroutine's result") { CHECK(ioloop::run(answer()) == 42); }

TEST_CASE("ioloop::run rethrows the coroutine's exception") {
    CHECK_THROWS_WITH_AS(ioloop::run(fail_after(0ms, "boom")), "boom", std::runtime_error);
}

TEST_CASE("a coro is lazy: nothing of its body runs until it is awaited") {
    int runs = 0;
    auto body = [&]() -> ioloop::coro<int> {
        ++runs;
        co_return runs;
    };
    auto amain = [&]() -> ioloop::coro<void> {
        ioloop::coro<int> c = body();
        CHECK(runs == 0);
        co_await ioloop::sleep(0ms);
        CHECK(runs == 0);
        CHECK(co_await std::move(c) == 1);
        CHECK(runs == 1);
    };
    ioloop::run(amain());
}

TEST_CASE("results and exceptions cross several levels of awaits") {
    struct level {
        static ioloop::coro<int> value(int depth) {
            if (depth == 0) {
                co_await ioloop::sleep(1ms);
                co_return 1;
            }
            co_return 1 + co_await value(depth - 1);
        }
        static ioloop::coro<int> failure(int depth) {
            if (depth == 0) {
                co_await ioloop::sleep(0ms);
                throw std::logic_error("deep failure");
            }
            co_return co_await failure(depth - 1);
        }
    };
    auto amain = []() -> ioloop::coro<void> {
        CHECK(co_await level::value(10) == 11);
        CHECK_THROWS_WITH_AS(co_await level::failure(10), "deep failure", std::logic_error);
        // The failure went through a task too.
        auto t = ioloop::create_task(level::failure(3));
        CHECK_THROWS_WITH_AS(co_await t, "deep failure", std::logic_error);
        CHECK(t.done());
        CHECK_FALSE(t.cancelled());
    };
    ioloop::run(amain());
}

TEST_CASE("a million sequential awaits of coroutines that finish at once do not grow the stack") {
    auto amain = []() -> ioloop::coro<long long> {
        long long sum = 0;
        for (int i = 0; i < 1000000; ++i) sum += co_await answer();
        co_return sum;
    };
    CHECK(ioloop::run(amain()) == 42000000LL);
}

TEST_CASE("the seed program: 100 tasks that each sleep 200 ms finish together") {
    auto amain = []() -> ioloop::coro<std::chrono::milliseconds> {
        const auto start = ioloop::get_running_loop().time();
        std::vector<ioloop::task<std::string>> tasks;
        for (int i = 0; i < 100; ++i) {
            tasks.push_back(ioloop::create_task(fetch("url-" + std::to_string(i), 200ms)));
        }
        for (int i = 0; i < 100; ++i)
            CHECK(co_await tasks[i] == "data from url-" + std::to_string(i));
        co_return elapsed_since(start);
    };
    const std::chrono::milliseconds took = ioloop::run(amain());
    CHECK(took >= 200ms);
    CHECK(took < 2000ms);  // one after the other would be 20 s
}

TEST_CASE("a task starts on the next iteration and runs even if nobody awaits it") {
    bool ran = false;
    auto body = [&]() -> ioloop::coro<void> {
        ran = true;
        co_return;
    };
    ioloop::event_loop loop;
    {
        ioloop::task<void> t = loop.create_task(body());
        CHECK_FALSE(ran);
        CHECK_FALSE(t.done());
    }  // the handle is gone; the loop keeps the task
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(ran);
    loop.close();
}

TEST_CASE("a task is awaited by several tasks, each gets the result") {
    auto amain = []() -> ioloop::coro<void> {
        auto shared = ioloop::create_task(fetch("x", 5ms));
        auto reader = [](ioloop::task<std::string> t) -> ioloop::coro<std::string> {
            co_return co_await t;
        };
        auto a = ioloop::create_task(reader(shared));
        auto b = ioloop::create_task(reader(shared));
        CHECK(co_await a == "data from x");
        CHECK(co_await b == "data from x");
        CHECK(co_await shared == "data from x");
        CHECK(shared.result() == "data from x");  // kept until read, and after
    };
    ioloop::run(amain());
}

TEST_CASE("task state: done, result, exception, names") {
    auto amain = []() -> ioloop::coro<void> {
        auto ok = ioloop::create_task(answer());
        auto bad = ioloop::create_task(fail_after(0ms, "bad"), "the-bad-one");
        CHECK_FALSE(ok.done());
        CHECK_THROWS_AS(ok.result(), ioloop::invalid_state_error);
        CHECK_THROWS_AS(ok.exception(), ioloop::invalid_state_error);
        CHECK(ok.get_name().rfind("Task-", 0) == 0);
        CHECK(bad.get_name() == "the-bad-one");
        bad.set_name("renamed");
        CHECK(bad.get_name() == "renamed");
        co_await ok;
        try {
            co_await bad;
        } catch (const std::runtime_error&) {
        }
        CHECK(ok.done());
        CHECK(ok.result() == 42);
        CHECK(ok.exception() == nullptr);
        CHECK(bad.done());
        REQUIRE(bad.exception() != nullptr);
        CHECK_THROWS_WITH_AS(bad.result(), "bad", std::runtime_error);
        CHECK_FALSE(ok.cancel());  // done: nothing to cancel
    };
    ioloop::run(amain());
}

TEST_CASE("add_done_callback runs on the loop after the task is done, in registration order") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> order;
        auto t = ioloop::create_task(fetch("cb", 1ms));
        t.add_done_callback(
            [&](ioloop::task<std::string>& done) { order.push_back("first:" + done.result()); });
        t.add_done_callback([&] { order.push_back("second"); });
        co_await t;  // registered before this await: they ran before it resumed
        CHECK(order == std::vector<std::string>{"first:data from cb", "second"});
        // Callbacks are scheduled when the future is done, not called inline.
        order.clear();
        ioloop::future<int> f = ioloop::get_running_loop().create_future<int>();
        f.add_done_callback([&](ioloop::future<int>& done) {
            order.push_back("future:" + std::to_string(done.result()));
        });
        f.set_result(9);
        CHECK(order.empty());
        co_await ioloop::sleep(0ms);
        CHECK(order == std::vector<std::string>{"future:9"});
        // On a done task, the callback is scheduled at once.
        t.add_done_callback([&] { order.push_back("late"); });
        co_await ioloop::sleep(0ms);
        CHECK(order.back() == "late");
    };
    ioloop::run(amain());
}

TEST_CASE("current_task and all_tasks") {
    CHECK_FALSE(ioloop::current_task());
    CHECK_THROWS_AS(ioloop::all_tasks(), ioloop::invalid_state_error);
    auto amain = []() -> ioloop::coro<void> {
        ioloop::any_task self = ioloop::current_task();
        REQUIRE(self);
        auto child = ioloop::create_task(fetch("a", 5ms), "child");
        auto observer = [](ioloop::any_task expected) -> ioloop::coro<void> {
            CHECK(ioloop::current_task() == expected);
            co_return;
        };
        co_await observer(self);
        std::vector<ioloop::any_task> all = ioloop::all_tasks();
        CHECK(all.size() == 2);
        int found = 0;
        for (auto& t : all) found += (t == self) + (t == child);
        CHECK(found == 2);
        co_await child;
        CHECK(ioloop::all_tasks().size() == 1);  // finished tasks leave the list
    };
    ioloop::run(amain());
}

TEST_CASE("a future is set by someone else and awaited") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::future<int> f = loop.create_future<int>();
        CHECK_FALSE(f.done());
        CHECK_THROWS_AS(f.result(), ioloop::invalid_state_error);
        loop.call_later(2ms, [f]() mutable { f.set_result(7); });
        CHECK(co_await f == 7);
        CHECK(f.result() == 7);
        CHECK_THROWS_AS(f.set_result(8), ioloop::invalid_state_error);

        ioloop::future<void> g = loop.create_future();
        loop.call_soon([g]() mutable {
            g.set_exception(std::make_exception_ptr(std::out_of_range("from the future")));
        });
        CHECK_THROWS_WITH_AS(co_await g, "from the future", std::out_of_range);

        ioloop::future<std::string> h = loop.create_future<std::string>();
        CHECK(h.cancel());
        CHECK(h.cancelled());
        CHECK_FALSE(h.cancel());
        CHECK_THROWS_AS(co_await h, ioloop::cancelled_error);
        CHECK_THROWS_AS(h.exception(), ioloop::cancelled_error);
    };
    ioloop::run(amain());
}

TEST_CASE("awaiting an rvalue task moves the result out; a move-only result works") {
    struct move_only {
        explicit move_only(int v) : value(v) {}
        move_only(move_only&&) = default;
        move_only& operator=(move_only&&) = default;
        move_only(const move_only&) = delete;
        int value;
    };
    auto make = []() -> ioloop::coro<move_only> {
        co_await ioloop::sleep(0ms);
        co_return move_only(5);
    };
    auto amain = [&]() -> ioloop::coro<int> {
        move_only m = co_await ioloop::create_task(make());
        move_only n = co_await make();
        co_return m.value + n.value;
    };
    CHECK(ioloop::run(amain()) == 10);
}

TEST_CASE("sleep never returns early, and sleep(0) yields exactly one iteration") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        const auto start = loop.time();
        co_await ioloop::sleep(20ms);
        CHECK(loop.time() - start >= 20ms);

        std::vector<int> order;
        auto ping = [&](int id) -> ioloop::coro<void> {
            for (int i = 0; i < 3; ++i) {
                order.push_back(id);
                co_await ioloop::sleep(0ms);
            }
        };
        auto a = ioloop::create_task(ping(1));
        auto b = ioloop::create_task(ping(2));
        co_await a;
        co_await b;
        CHECK(order == std::vector<int>{1, 2, 1, 2, 1, 2});
    };
    ioloop::run(amain());
}

TEST_CASE("run_until_complete takes a coro, a task or a future") {
    ioloop::event_loop loop;
    CHECK(loop.run_until_complete(answer()) == 42);
    auto t = loop.create_task(fetch("t", 1ms));
    CHECK(loop.run_until_complete(t) == "data from t");
    CHECK(t.result() == "data from t");  // an lvalue's result is copied, not moved out
    ioloop::future<int> f = loop.create_future<int>();
    loop.call_later(1ms, [f]() mutable { f.set_result(3); });
    CHECK(loop.run_until_complete(f) == 3);
    CHECK_THROWS_AS(loop.run_until_complete(fail_after(0ms, "x")), std::runtime_error);
    loop.close();
    CHECK_THROWS_AS(loop.create_task(answer()), ioloop::invalid_state_error);
    CHECK_THROWS_AS(loop.create_future<int>(), ioloop::invalid_state_error);
}

TEST_CASE("ioloop::run cancels the tasks left over and lets them clean up") {
    bool cleaned_up = false;
    bool finished = false;
    auto lingering = [&]() -> ioloop::coro<void> {
        bool cancelled = false;
        try {
            co_await ioloop::sleep(1h);
            finished = true;
        } catch (const ioloop::cancelled_error&) {
            cancelled = true;
        }
        if (cancelled) {
            co_await ioloop::sleep(1ms);  // cleanup may await
            cleaned_up = true;
            throw ioloop::cancelled_error();
        }
    };
    auto amain = [&]() -> ioloop::coro<int> {
        ioloop::create_task(lingering());
        co_await ioloop::sleep(1ms);
        co_return 1;
    };
    CHECK(ioloop::run(amain()) == 1);
    CHECK(cleaned_up);
    CHECK_FALSE(finished);
}

TEST_CASE("closing a loop destroys the coroutines of unfinished tasks") {
    struct flag_on_destroy {
        bool* flag;
        ~flag_on_destroy() { *flag = true; }
    };
    bool destroyed = false;
    auto body = [](bool* flag) -> ioloop::coro<void> {
        flag_on_destroy guard{flag};
        co_await ioloop::sleep(1h);
    };
    ioloop::event_loop loop;
    auto t = loop.create_task(body(&destroyed));
    loop.call_later(1ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK_FALSE(destroyed);
    loop.close();
    CHECK(destroyed);
    CHECK(t.done());
    CHECK(t.cancelled());
}

TEST_CASE("get_running_loop, create_task and run outside and inside a loop") {
    CHECK_THROWS_AS(ioloop::get_running_loop(), ioloop::invalid_state_error);
    CHECK_THROWS_AS(ioloop::create_task(answer()), ioloop::invalid_state_error);
    auto amain = []() -> ioloop::coro<void> {
        ioloop::event_loop& loop = ioloop::get_running_loop();
        CHECK(loop.is_running());
        CHECK_THROWS_AS(ioloop::run(answer()), ioloop::invalid_state_error);
        co_return;
    };
    ioloop::run(amain());
}

TEST_CASE("a task cannot await itself") {
    auto amain = []() -> ioloop::coro<void> {
        auto self = ioloop::current_task();
        CHECK_THROWS_AS(co_await self, ioloop::invalid_state_error);
    };
    ioloop::run(amain());
}

TEST_CASE("task and future handles may outlive their loop") {
    ioloop::task<int> finished;
    ioloop::task<void> failed;
    ioloop::task<int> unstarted;
    ioloop::future<int> unset;
    int callbacks = 0;
    {
        ioloop::event_loop loop;
        finished = loop.create_task(answer());
        failed = loop.create_task(fail_after(0ms, "nobody reads this"));
        unset = loop.create_future<int>();
        unset.add_done_callback([&] { ++callbacks; });
        loop.run_until_complete(fetch("both done", 5ms));
        unstarted = loop.create_task(answer());
    }  // destroyed, so closed: the unstarted task is abandoned
    CHECK(finished.result() == 42);
    CHECK(failed.done());
    CHECK(unstarted.cancelled());
    CHECK_FALSE(unset.done());
    unset.set_result(1);  // its loop is gone: the callback is dropped, nothing crashes
    CHECK(unset.result() == 1);
    CHECK(callbacks == 0);
    failed = {};  // an exception nobody read, and no loop left to report it to
}

// ---- a task or future of another loop -------------------------------------------------
// A task or future lives on its loop's thread: awaiting it from another loop's task would
// wait forever if that loop does not run, and race with it if it runs elsewhere. asyncio
// raises at once ("Task ... got Future ... attached to a different loop"); so does ioloop,
// for every way of awaiting (test_threadsafe.cpp: the other loop running in a thread).

TEST_CASE("awaiting a task or future of a loop that does not run throws at once") {
    ioloop::event_loop b;  // never runs: its task and future would never finish
    for (const test::await_form& form : test::await_forms()) {
        ioloop::task<int> t = b.create_task(answer());
        ioloop::future<int> f = b.create_future<int>();
        ioloop::event_loop a;
        auto main = [&]() -> ioloop::coro<void> { co_await test::check_refused(form, t, f); };
        ioloop::task<void> checked = test::run_task_with_watchdog(a, main(), 10s);
        CHECK(checked.done());
        // Left as they were: wait_for with a zero timeout, for one, cancels what it accepts.
        CHECK_FALSE(t.done());
        CHECK_FALSE(f.done());
    }
}

TEST_CASE("the error of awaiting another loop's task names both loops and what to do instead") {
    ioloop::event_loop b;
    ioloop::task<int> t = b.create_task(answer());
    ioloop::event_loop a;
    std::string message;
    auto main = [&]() -> ioloop::coro<void> {
        try {
            co_await t;
        } catch (const ioloop::invalid_state_error& e) {
            message = e.what();
        }
    };
    CHECK(test::run_task_with_watchdog(a, main(), 10s).done());
    CHECK(message ==
          "co_await: the task belongs to another event loop than the awaiting coroutine's (the "
          "loop running on this thread); await it from a task on its own loop, or pass work and "
          "results between the loops with run_coroutine_threadsafe and call_soon_threadsafe");
}

TEST_CASE("another loop's task or future is refused even when it is done") {
    // asyncio returns a done future's result whatever its loop. Here its state is not read
    // at all: its loop may be running on another thread, and whether it is done yet there
    // must not decide between a result and an error.
    ioloop::event_loop b;
    ioloop::task<int> t = b.create_task(answer());
    CHECK(b.run_until_complete(t) == 42);
    ioloop::future<int> f = b.create_future<int>();
    f.set_result(1);
    ioloop::event_loop a;
    for (const test::await_form& form : test::await_forms()) {
        auto main = [&]() -> ioloop::coro<void> { co_await test::check_refused(form, t, f); };
        CHECK(test::run_task_with_watchdog(a, main(), 10s).done());
    }
    CHECK(t.result() == 42);
    CHECK(f.result() == 1);
}

TEST_CASE("run_until_complete refuses another loop's task or future") {
    ioloop::event_loop b;
    ioloop::task<int> t = b.create_task(answer());
    ioloop::future<int> f = b.create_future<int>();
    ioloop::event_loop a;
    // Were it accepted, a would run until this watchdog stops it.
    auto watchdog = [&a] {
        return a.call_later(10s, [&a] {
            FAIL_CHECK("watchdog: run_until_complete waited for another loop's work");
            a.stop();
        });
    };
    ioloop::timer_handle on_task = watchdog();
    CHECK_THROWS_WITH_AS(a.run_until_complete(t),
                         "run_until_complete: the task belongs to another event loop than the one "
                         "run_until_complete runs; await it from a task on its own loop, or pass "
                         "work and results between the loops with run_coroutine_threadsafe and "
                         "call_soon_threadsafe",
                         ioloop::invalid_state_error);
    on_task.cancel();
    ioloop::timer_handle on_future = watchdog();
    CHECK_THROWS_WITH_AS(a.run_until_complete(std::move(f)),
                         doctest::Contains("run_until_complete: the future belongs to another"),
                         ioloop::invalid_state_error);
    on_future.cancel();
    CHECK(b.run_until_complete(t) == 42);  // on its own loop it runs as usual
}

TEST_CASE("outside a running loop, gather and as_completed refuse a task where they are made") {
    // as_completed starts watching its tasks where it is made, and gather's tuple form
    // checks them there: inside a task. Outside any loop nothing could await them.
    ioloop::event_loop b;
    ioloop::task<int> t = b.create_task(answer());
    CHECK_THROWS_WITH_AS((void)ioloop::as_completed(std::vector<ioloop::task<int>>{t}),
                         doctest::Contains("as_completed: no running event loop"),
                         ioloop::invalid_state_error);
    CHECK_THROWS_WITH_AS((void)ioloop::gather(t),
                         doctest::Contains("gather: no running event loop"),
                         ioloop::invalid_state_error);
    CHECK(b.run_until_complete(t) == 42);
}

TEST_CASE("wait_for and shield may be made outside the loop that then awaits them") {
    // What they keep is checked against the loop that awaits it, which is not running yet
    // when they are made: asyncio's loop.run_until_complete(asyncio.wait_for(t, 10)).
    ioloop::event_loop loop;
    ioloop::task<int> t = loop.create_task(answer());
    CHECK(loop.run_until_complete(ioloop::wait_for(t, 10s)) == 42);
    ioloop::task<int> u = loop.create_task(answer());
    CHECK(loop.run_until_complete(ioloop::wait_for(ioloop::shield(u), 10s)) == 42);
}

// ---- create_task of a callable: the closure lives as long as the task ---------------------

TEST_CASE("create_task of a lambda keeps its captures alive while the task runs") {
    auto amain = []() -> ioloop::coro<void> {
        // Captures that own memory: the closure is moved into the task, not left to die
        // with the create_task expression (ASan would see a use after free).
        std::string prefix = "captured ";
        ioloop::task<std::string> t = ioloop::create_task(
            [prefix, tail = std::string(64, 'x')]() -> ioloop::coro<std::string> {
                co_await ioloop::sleep(std::chrono::milliseconds(0));
                co_await ioloop::sleep(std::chrono::milliseconds(0));
                co_return prefix + std::to_string(tail.size());
            },
            "kept");
        CHECK(t.get_name() == "kept");
        CHECK(co_await t == "captured 64");

        // The loop's own create_task, and a callable object that is not a lambda.
        struct maker {
            std::vector<int> values;
            ioloop::coro<int> operator()() {
                co_await ioloop::sleep(std::chrono::milliseconds(0));
                co_return static_cast<int>(values.size());
            }
        };
        ioloop::task<int> u = ioloop::get_running_loop().create_task(maker{{1, 2, 3}}, "maker");
        CHECK(u.get_name() == "maker");
        CHECK(co_await u == 3);

        // With task_options: an eager start runs the callable's coroutine inside create_task
        // up to its first suspension, the closure already kept by the task.
        std::vector<std::string> steps;
        auto e = ioloop::create_task(
            [&steps, label = std::string(40, 'e')]() -> ioloop::coro<std::size_t> {
                steps.push_back("started");
                co_await ioloop::sleep(std::chrono::milliseconds(0));
                co_return label.size();
            },
            {.name = "eager", .eager_start = true});
        CHECK(steps == std::vector<std::string>{"started"});
        CHECK(e.get_name() == "eager");
        CHECK(co_await e == 40);

        // A void coroutine; its exception comes out of the task as usual.
        auto v = ioloop::create_task([]() -> ioloop::coro<void> {
            co_await ioloop::sleep(std::chrono::milliseconds(0));
            throw std::runtime_error("from the callable's coroutine");
        });
        std::string what;
        try {
            co_await v;
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "from the callable's coroutine");
    };
    ioloop::run(amain());
}
