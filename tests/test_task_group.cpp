// task_group (asyncio's TaskGroup): the scope ends only after its children; the first
// failure cancels the siblings and the body; every failure comes out in one
// exception_group; an outside cancel stays a cancellation. The cases follow CPython's
// Lib/test/test_asyncio/test_taskgroups.py.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct journal {
    std::vector<std::string> events;
    void add(std::string e) { events.push_back(std::move(e)); }
};

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// An exception's what(); a nested group spells its members: "group[a, b]".
std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const ioloop::exception_group& g) {
        std::string text = "group[";
        for (std::size_t i = 0; i < g.exceptions().size(); ++i) {
            if (i) text += ", ";
            text += message_of(g.exceptions()[i]);
        }
        return text + "]";
    } catch (const std::exception& x) {
        return x.what();
    }
}

// What awaiting a group gave: nothing, or an exception_group (its what() and members).
struct outcome {
    bool group_thrown = false;
    std::string what;
    std::vector<std::string> messages;
};

ioloop::coro<outcome> outcome_of(ioloop::coro<void> work) {
    outcome o;
    try {
        co_await std::move(work);
    } catch (const ioloop::exception_group& g) {
        o.group_thrown = true;
        o.what = g.what();
        for (const std::exception_ptr& e : g.exceptions()) o.messages.push_back(message_of(e));
    }
    co_return o;
}

ioloop::coro<int> value_after(std::chrono::milliseconds d, int value, journal& j) {
    co_await ioloop::sleep(d);
    j.add("finished " + std::to_string(value));
    co_return value;
}

ioloop::coro<void> fail_after(std::chrono::milliseconds d, std::string message) {
    co_await ioloop::sleep(d);
    throw std::runtime_error(message);
}

// Sleeps an hour unless cancelled; records the cancellation (its cleanup) and rethrows.
ioloop::coro<void> sleeper(journal& j, std::string name) {
    try {
        co_await ioloop::sleep(1h);
    } catch (const ioloop::cancelled_error&) {
        j.add(name + " cleaned up");
        throw;
    }
    j.add(name + " woke");
}

std::chrono::milliseconds elapsed_since(ioloop::loop_base::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(ioloop::get_running_loop().time() -
                                                                 start);
}

}  // namespace

TEST_CASE("run returns only after every child is done, however long each one takes") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        const auto start = ioloop::get_running_loop().time();
        std::vector<ioloop::task<int>> children;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            children.push_back(tg.create_task(value_after(30ms, 3, j)));
            children.push_back(tg.create_task(value_after(10ms, 1, j)));
            children.push_back(tg.create_task(value_after(20ms, 2, j)));
            co_return;  // the body ends at once; the group still waits
        });
        CHECK(j.events == std::vector<std::string>{"finished 1", "finished 2", "finished 3"});
        for (auto& c : children) CHECK(c.done());
        CHECK(elapsed_since(start) >= 30ms);
        CHECK(elapsed_since(start) < 10s);
    };
    ioloop::run(amain());
}

TEST_CASE("children's results and names are read through the tasks create_task returns") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        ioloop::task<int> a;
        ioloop::task<std::string> b;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            a = tg.create_task(value_after(1ms, 42, j));
            b = tg.create_task(
                []() -> ioloop::coro<std::string> {
                    co_await ioloop::sleep(2ms);
                    co_return "eleven";
                }(),
                "named");
            CHECK(b.get_name() == "named");
            co_return;
        });
        CHECK(a.result() == 42);
        CHECK(b.result() == "eleven");
        CHECK(co_await a == 42);
    };
    ioloop::run(amain());
}

TEST_CASE("run returns the body's result once the children are done") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        int got =
            co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<int> {
                tg.create_task(value_after(5ms, 5, j));
                co_return 7;
            });
        CHECK(got == 7);
        CHECK(j.events == std::vector<std::string>{"finished 5"});
    };
    ioloop::run(amain());
}

TEST_CASE("a group with no children returns at once; its body may still await") {
    auto amain = []() -> ioloop::coro<void> {
        int runs = 0;
        co_await ioloop::task_group::run([&](ioloop::task_group&) -> ioloop::coro<void> {
            ++runs;
            co_return;
        });
        co_await ioloop::task_group::run([&](ioloop::task_group&) -> ioloop::coro<void> {
            co_await ioloop::sleep(1ms);
            ++runs;
        });
        CHECK(runs == 2);
        CHECK(ioloop::all_tasks().size() == 1);  // only this one
    };
    ioloop::run(amain());
}

TEST_CASE("the first failure cancels the siblings (they clean up) and the body") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        const auto start = ioloop::get_running_loop().time();
        ioloop::task<void> sibling;
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                tg.create_task(fail_after(5ms, "boom"));
                sibling = tg.create_task(sleeper(j, "sibling"));
                try {
                    co_await ioloop::sleep(1h);
                } catch (const ioloop::cancelled_error&) {
                    j.add("body cancelled");
                    throw;
                }
                j.add("body went on");
            }));
        CHECK(o.group_thrown);
        CHECK(o.messages == std::vector<std::string>{"boom"});
        CHECK(contains(o.what, "1 sub-exception"));
        CHECK(contains(o.what, "boom"));
        // Cancelled in that order, children first, as asyncio does.
        CHECK(j.events == std::vector<std::string>{"sibling cleaned up", "body cancelled"});
        CHECK(sibling.cancelled());
        CHECK(elapsed_since(start) < 10s);
        // The group's cancel of this task was withdrawn: it goes on normally.
        CHECK(ioloop::current_task().cancelling() == 0);
        co_await ioloop::sleep(1ms);
    };
    ioloop::run(amain());
}

TEST_CASE("children failing in the same iteration: every error is in the exception_group") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto go = ioloop::get_running_loop().create_future<void>();
        auto fail_on = [](ioloop::future<void> f, std::string message) -> ioloop::coro<void> {
            co_await f;
            throw std::runtime_error(message);
        };
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                tg.create_task(fail_on(go, "first"));
                tg.create_task(fail_on(go, "second"));
                tg.create_task(sleeper(j, "bystander"));
                tg.create_task(fail_on(go, "third"));
                co_await ioloop::sleep(0ms);  // every child now waits
                go.set_result();              // all three fail on the next iteration
                co_await ioloop::sleep(1h);
            }));
        CHECK(o.group_thrown);
        CHECK(o.messages == std::vector<std::string>{"first", "second", "third"});
        CHECK(contains(o.what, "3 sub-exceptions"));
        CHECK(contains(o.what, "first"));
        CHECK(j.events == std::vector<std::string>{"bystander cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("the body's own exception counts as a failure and cancels the children") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        ioloop::task<void> started, never_started;
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                started = tg.create_task(sleeper(j, "started"));
                co_await ioloop::sleep(0ms);
                never_started = tg.create_task(sleeper(j, "never started"));
                throw std::logic_error("body failed");
            }));
        CHECK(o.messages == std::vector<std::string>{"body failed"});
        CHECK(started.cancelled());
        CHECK(never_started.cancelled());  // cancelled before its first step: no cleanup ran
        CHECK(j.events == std::vector<std::string>{"started cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("an outside cancel while the group waits cancels the children: cancelled_error") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto runner = [&]() -> ioloop::coro<void> {
            co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                for (int i = 0; i < 5; ++i) tg.create_task(sleeper(j, "child"));
                co_return;
            });
            j.add("runner went on");
        };
        auto r = ioloop::create_task(runner());
        co_await ioloop::sleep(0ms);  // the runner waits for its group
        co_await ioloop::sleep(0ms);  // the children sleep
        CHECK(r.cancel());
        CHECK_THROWS_AS(co_await r, ioloop::cancelled_error);  // not an exception_group
        CHECK(r.cancelled());
        CHECK(j.events == std::vector<std::string>(5, "child cleaned up"));
    };
    ioloop::run(amain());
}

TEST_CASE("an outside cancel while the body waits reaches the body and the children") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto runner = [&]() -> ioloop::coro<void> {
            co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                tg.create_task(sleeper(j, "child"));
                co_await sleeper(j, "body");
            });
        };
        auto r = ioloop::create_task(runner());
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        r.cancel();
        CHECK_THROWS_AS(co_await r, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"body cleaned up", "child cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("an outside cancel of a group without children is a cancellation of its body") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto runner = [&]() -> ioloop::coro<void> {
            co_await ioloop::task_group::run(
                [&](ioloop::task_group&) -> ioloop::coro<void> { co_await sleeper(j, "body"); });
        };
        auto r = ioloop::create_task(runner());
        co_await ioloop::sleep(0ms);
        r.cancel();
        CHECK_THROWS_AS(co_await r, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"body cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("errors win over an outside cancel, which still hits the next suspension point") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        auto messy_cleanup = []() -> ioloop::coro<void> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
                throw std::runtime_error("cleanup failed");
            }
        };
        auto runner = [&]() -> ioloop::coro<void> {
            outcome o = co_await outcome_of(
                ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                    tg.create_task(messy_cleanup());
                    co_await ioloop::sleep(1h);
                }));
            CHECK(o.messages == std::vector<std::string>{"cleanup failed"});
            CHECK(ioloop::current_task().cancelling() == 1);  // the outside request stays
            try {
                co_await ioloop::sleep(0ms);
                j.add("not cancelled");
            } catch (const ioloop::cancelled_error&) {
                j.add("cancelled again");
                throw;
            }
        };
        auto r = ioloop::create_task(runner());
        co_await ioloop::sleep(0ms);
        co_await ioloop::sleep(0ms);
        r.cancel();
        CHECK_THROWS_AS(co_await r, ioloop::cancelled_error);
        CHECK(j.events == std::vector<std::string>{"cancelled again"});
    };
    ioloop::run(amain());
}

TEST_CASE("a body that catches the outside cancel and throws makes an exception_group") {
    auto amain = []() -> ioloop::coro<void> {
        auto runner = []() -> ioloop::coro<void> {
            co_await ioloop::task_group::run([](ioloop::task_group&) -> ioloop::coro<void> {
                try {
                    co_await ioloop::sleep(1h);
                } catch (const ioloop::cancelled_error&) {
                    throw std::runtime_error("instead");
                }
            });
        };
        auto r = ioloop::create_task(runner());
        co_await ioloop::sleep(0ms);
        r.cancel();
        outcome o =
            co_await outcome_of([](ioloop::task<void> t) -> ioloop::coro<void> { co_await t; }(r));
        CHECK(o.messages == std::vector<std::string>{"instead"});
    };
    ioloop::run(amain());
}

TEST_CASE("a child that catches its cancellation and returns normally keeps its result") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::task<int> stubborn;
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                stubborn = tg.create_task([]() -> ioloop::coro<int> {
                    try {
                        co_await ioloop::sleep(1h);
                    } catch (const ioloop::cancelled_error&) {
                        co_return 7;
                    }
                    co_return 0;
                }());
                tg.create_task(fail_after(1ms, "boom"));
                co_return;
            }));
        CHECK(o.messages == std::vector<std::string>{"boom"});
        CHECK_FALSE(stubborn.cancelled());
        CHECK(stubborn.result() == 7);
    };
    ioloop::run(amain());
}

TEST_CASE("a child cancelled by hand does not abort the group") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        ioloop::task<void> cancelled;
        ioloop::task<int> other;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            cancelled = tg.create_task(sleeper(j, "cancelled"));
            co_await ioloop::sleep(0ms);
            cancelled.cancel();
            other = tg.create_task(value_after(2ms, 11, j));
        });
        CHECK(cancelled.cancelled());
        CHECK(other.result() == 11);
        CHECK(j.events == std::vector<std::string>{"cancelled cleaned up", "finished 11"});
    };
    ioloop::run(amain());
}

TEST_CASE("create_task on a finished group throws invalid_state_error; the coroutine never runs") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        std::vector<ioloop::exception_context> reports;
        loop.set_exception_handler(
            [&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
        loop.set_debug(true);  // a refused coroutine is not reported as never awaited
        std::vector<ioloop::task_group> kept;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            kept.push_back(tg);
            co_return;
        });
        bool ran = false;
        auto late = [&]() -> ioloop::coro<void> {
            ran = true;
            co_return;
        };
        CHECK_THROWS_WITH_AS(kept[0].create_task(late()), doctest::Contains("finished"),
                             ioloop::invalid_state_error);
        co_await ioloop::sleep(1ms);
        CHECK_FALSE(ran);
        for (const auto& r : reports) CHECK_FALSE(contains(r.message, "never awaited"));
        loop.set_debug(false);
    };
    ioloop::run(amain());
}

TEST_CASE("create_task on a group that is shutting down throws invalid_state_error") {
    auto amain = []() -> ioloop::coro<void> {
        bool refused = false;
        // Declared here, not in the body: the child outlives the body's frame.
        auto late_adder = [&refused](ioloop::task_group g) -> ioloop::coro<void> {
            try {
                co_await ioloop::sleep(1h);
            } catch (const ioloop::cancelled_error&) {
                try {
                    g.create_task(fail_after(0ms, "too late"));
                } catch (const ioloop::invalid_state_error& e) {
                    refused = contains(e.what(), "shutting down");
                }
                throw;
            }
        };
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                tg.create_task(late_adder(tg));
                tg.create_task(fail_after(1ms, "boom"));
                co_return;
            }));
        CHECK(o.messages == std::vector<std::string>{"boom"});
        CHECK(refused);
    };
    ioloop::run(amain());
}

TEST_CASE("children add tasks to the group while it waits at the end of its scope") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            // A copy of the handle: the child needs no reference into the body's frame.
            tg.create_task([](ioloop::task_group g, journal& jj) -> ioloop::coro<void> {
                co_await ioloop::sleep(2ms);
                g.create_task(value_after(2ms, 1, jj));
                g.create_task(value_after(4ms, 2, jj));
            }(tg, j));
            co_return;
        });
        CHECK(j.events == std::vector<std::string>{"finished 1", "finished 2"});
    };
    ioloop::run(amain());
}

TEST_CASE("nested groups: an inner failure reaches the outer group as a nested exception_group") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& outer) -> ioloop::coro<void> {
                outer.create_task(sleeper(j, "outer child"));
                co_await ioloop::task_group::run(
                    [&](ioloop::task_group& inner) -> ioloop::coro<void> {
                        inner.create_task(fail_after(1ms, "inner boom"));
                        co_return;
                    });
                j.add("after the inner group");
            }));
        CHECK(o.messages == std::vector<std::string>{"group[inner boom]"});
        CHECK(j.events == std::vector<std::string>{"outer child cleaned up"});
    };
    ioloop::run(amain());
}

TEST_CASE("nested groups: an outer failure cancels the inner group, which ends as a cancellation") {
    auto amain = []() -> ioloop::coro<void> {
        journal j;
        outcome o = co_await outcome_of(
            ioloop::task_group::run([&](ioloop::task_group& outer) -> ioloop::coro<void> {
                outer.create_task(fail_after(1ms, "outer boom"));
                try {
                    co_await ioloop::task_group::run(
                        [&](ioloop::task_group& inner) -> ioloop::coro<void> {
                            inner.create_task(sleeper(j, "inner child"));
                            co_return;
                        });
                } catch (const ioloop::cancelled_error&) {
                    j.add("inner group cancelled");
                    throw;
                }
            }));
        CHECK(o.messages == std::vector<std::string>{"outer boom"});
        CHECK(j.events ==
              std::vector<std::string>{"inner child cleaned up", "inner group cancelled"});
        CHECK(ioloop::current_task().cancelling() == 0);
    };
    ioloop::run(amain());
}

TEST_CASE("the group reads its children's errors: none is reported as never retrieved") {
    std::vector<ioloop::exception_context> reports;
    {
        ioloop::event_loop loop;
        loop.set_exception_handler(
            [&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
        auto amain = []() -> ioloop::coro<void> {
            outcome o = co_await outcome_of(
                ioloop::task_group::run([](ioloop::task_group& tg) -> ioloop::coro<void> {
                    tg.create_task(fail_after(0ms, "a"));
                    tg.create_task(fail_after(0ms, "b"));
                    co_return;
                }));
            CHECK(o.messages.size() == 2);
            co_await ioloop::sleep(1ms);
        };
        loop.run_until_complete(amain());
        loop.close();
    }
    CHECK(reports.empty());
}

TEST_CASE("closing the loop while groups wait (in the body, at the end, a failure queued)") {
    std::vector<ioloop::exception_context> reports;
    ioloop::event_loop loop;
    loop.set_exception_handler(
        [&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
    journal j;
    auto go = loop.create_future<void>();
    auto in_body = [&]() -> ioloop::coro<void> {
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            tg.create_task(sleeper(j, "a"));
            co_await ioloop::sleep(1h);
        });
    };
    auto at_end = [&]() -> ioloop::coro<void> {
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            tg.create_task(sleeper(j, "b"));
            tg.create_task([](ioloop::future<void> f) -> ioloop::coro<void> {
                co_await f;
                throw std::runtime_error("failed just before the close");
            }(go));
            co_return;
        });
    };
    auto amain = [&]() -> ioloop::coro<void> {
        auto t1 = ioloop::create_task(in_body());
        auto t2 = ioloop::create_task(at_end());
        co_await ioloop::sleep(1ms);
        go.set_result();
        // The failing child runs on the next iteration, and the loop stops after it: its
        // group hears of it only in a callback the close drops.
        co_await ioloop::sleep(0ms);
    };
    loop.run_until_complete(amain());
    loop.close();  // abandons the groups' tasks and frames: sanitizers check the rest
    CHECK(j.events.empty());
    // The failure the group never got to read is not lost: its task reports it.
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].message == "exception was never retrieved");
    CHECK(message_of(reports[0].exception) == "failed just before the close");
}

TEST_CASE("a task group takes tasks made elsewhere (to_thread), and cancels them with the rest") {
    auto amain = []() -> ioloop::coro<void> {
        int result = 0;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            ioloop::task<int> t = tg.create_task(ioloop::to_thread([] { return 6 * 7; }));
            result = co_await t;
        });
        CHECK(result == 42);

        // A sibling fails: the child that waits for a future is cancelled, and so is the
        // future it awaits (asyncio passes the cancel on).
        ioloop::future<int> never = ioloop::get_running_loop().create_future<int>();
        bool failed = false;
        try {
            co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
                tg.create_task(never);
                tg.create_task([]() -> ioloop::coro<void> {
                    co_await ioloop::sleep(1ms);
                    throw std::runtime_error("sibling failed");
                }());
                co_return;
            });
        } catch (const ioloop::exception_group& e) {
            failed = e.exceptions().size() == 1;
        }
        CHECK(failed);
        CHECK(never.cancelled());
    };
    ioloop::run(amain());
}

TEST_CASE("task_group::create_task of a lambda keeps its captures alive while the child runs") {
    auto amain = []() -> ioloop::coro<void> {
        std::vector<std::string> seen;
        co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
            for (int i = 0; i < 3; ++i) {
                // By value, owning memory: the closure is the task's, not the loop body's.
                tg.create_task(
                    [&seen, name = "child-" + std::to_string(i)]() -> ioloop::coro<void> {
                        co_await ioloop::sleep(std::chrono::milliseconds(0));
                        seen.push_back(name);
                    });
            }
            ioloop::task<int> t = tg.create_task(
                [n = std::vector<int>(5, 1)]() -> ioloop::coro<int> {
                    co_await ioloop::sleep(std::chrono::milliseconds(0));
                    co_return static_cast<int>(n.size());
                },
                "sized");
            CHECK(t.get_name() == "sized");
            CHECK(co_await t == 5);
        });
        CHECK(seen == std::vector<std::string>{"child-0", "child-1", "child-2"});
    };
    ioloop::run(amain());
}
