// call_soon, handles, run_forever / stop / close, and the errors of a closed or running loop.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using test::run_one_iteration;

TEST_CASE("call_soon runs callbacks in FIFO order") {
    ioloop::event_loop loop;
    INFO("backend: " << ioloop::event_loop::backend_type::name);
    std::vector<int> order;
    for (int i = 0; i < 100; ++i) loop.call_soon([&order, i] { order.push_back(i); });
    loop.call_soon([&loop] { loop.stop(); });
    loop.run_forever();

    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("a callback scheduled while the ready queue runs waits for the next iteration") {
    ioloop::event_loop loop;

    SUBCASE("seen through iteration_count()") {
        std::uint64_t first = 0;
        std::uint64_t second = 0;
        std::uint64_t sibling = 0;
        loop.call_soon([&] {
            first = loop.iteration_count();
            loop.call_soon([&] {
                second = loop.iteration_count();
                loop.stop();
            });
        });
        // Scheduled before the loop ran: same iteration as `first`, even though it comes
        // after the callback that scheduled `second`.
        loop.call_soon([&] { sibling = loop.iteration_count(); });
        loop.run_forever();

        CHECK(first != 0);
        CHECK(sibling == first);
        CHECK(second == first + 1);
    }

    SUBCASE("seen through stop(): the second callback runs on the next run_forever") {
        bool second_ran = false;
        loop.call_soon([&] {
            loop.call_soon([&] { second_ran = true; });
            loop.stop();
        });
        loop.run_forever();
        CHECK_FALSE(second_ran);

        run_one_iteration(loop);
        CHECK(second_ran);
    }

    SUBCASE("a callback that reschedules itself does not starve the iteration") {
        // If new callbacks joined the running batch, one iteration would run it over and
        // over (up to the bound that keeps a broken loop from hanging the test).
        int runs = 0;
        struct again {
            ioloop::event_loop* loop;
            int* runs;
            void operator()() const {
                if (++*runs < 1000) loop->call_soon(again{loop, runs});
            }
        };
        loop.call_soon(again{&loop, &runs});
        run_one_iteration(loop);
        CHECK(runs == 1);
        run_one_iteration(loop);
        CHECK(runs == 2);
    }
}

TEST_CASE("handle::cancel") {
    ioloop::event_loop loop;

    SUBCASE("before the callback runs: it never runs") {
        bool ran = false;
        ioloop::handle h = loop.call_soon([&] { ran = true; });
        CHECK(h);
        CHECK_FALSE(h.cancelled());
        h.cancel();
        CHECK(h.cancelled());
        run_one_iteration(loop);
        run_one_iteration(loop);
        CHECK_FALSE(ran);
        CHECK(h.cancelled());
    }

    SUBCASE("a cancelled callback does not disturb its neighbours") {
        std::vector<int> order;
        loop.call_soon([&] { order.push_back(1); });
        ioloop::handle h = loop.call_soon([&] { order.push_back(2); });
        loop.call_soon([&] { order.push_back(3); });
        h.cancel();
        run_one_iteration(loop);
        CHECK(order == std::vector<int>{1, 3});
    }

    SUBCASE("from an earlier callback of the same iteration") {
        bool ran = false;
        ioloop::handle later;
        loop.call_soon([&] { later.cancel(); });
        later = loop.call_soon([&] { ran = true; });
        run_one_iteration(loop);
        CHECK_FALSE(ran);
        CHECK(later.cancelled());
    }

    SUBCASE("after the callback ran: no effect, no crash, cancelled() reflects the call") {
        int runs = 0;
        ioloop::handle h = loop.call_soon([&] { ++runs; });
        run_one_iteration(loop);
        CHECK(runs == 1);
        CHECK_FALSE(h.cancelled());
        h.cancel();
        CHECK(h.cancelled());
        run_one_iteration(loop);
        CHECK(runs == 1);
    }

    SUBCASE("from inside the callback itself") {
        ioloop::handle h;
        bool was_cancelled_inside = true;
        h = loop.call_soon([&] {
            was_cancelled_inside = h.cancelled();
            h.cancel();
        });
        run_one_iteration(loop);
        CHECK_FALSE(was_cancelled_inside);
        CHECK(h.cancelled());
    }

    SUBCASE("is idempotent") {
        bool ran = false;
        ioloop::handle h = loop.call_soon([&] { ran = true; });
        h.cancel();
        h.cancel();
        h.cancel();
        CHECK(h.cancelled());
        run_one_iteration(loop);
        CHECK_FALSE(ran);
        h.cancel();
        CHECK(h.cancelled());
    }
}

TEST_CASE("handle copies share state; a default handle is empty") {
    ioloop::event_loop loop;

    SUBCASE("cancelling a copy cancels the callback") {
        bool ran = false;
        ioloop::handle original = loop.call_soon([&] { ran = true; });
        ioloop::handle copy = original;
        ioloop::handle assigned;
        assigned = copy;
        assigned.cancel();
        CHECK(original.cancelled());
        CHECK(copy.cancelled());
        run_one_iteration(loop);
        CHECK_FALSE(ran);
    }

    SUBCASE("a copy outlives the original") {
        bool ran = false;
        ioloop::handle copy;
        {
            ioloop::handle original = loop.call_soon([&] { ran = true; });
            copy = original;
        }
        CHECK(copy);
        CHECK_FALSE(copy.cancelled());
        run_one_iteration(loop);
        CHECK(ran);
        copy.cancel();
        CHECK(copy.cancelled());
    }

    SUBCASE("moving leaves the source empty") {
        ioloop::handle a = loop.call_soon([] {});
        ioloop::handle b = std::move(a);
        CHECK(b);
        CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): documented state
        a.cancel();      // harmless on an empty handle
        CHECK_FALSE(b.cancelled());
    }

    SUBCASE("default handle") {
        ioloop::handle h;
        CHECK_FALSE(h);
        CHECK_FALSE(h.cancelled());
        h.cancel();
        CHECK_FALSE(h.cancelled());
        ioloop::timer_handle t;
        CHECK_FALSE(t);
        CHECK_FALSE(t.cancelled());
        CHECK(t.when() == std::chrono::steady_clock::time_point{});
        t.cancel();
    }
}

TEST_CASE("stop() and run_forever") {
    ioloop::event_loop loop;

    SUBCASE("stop() from a callback, then run_forever again works") {
        int runs = 0;
        loop.call_soon([&] {
            ++runs;
            loop.stop();
        });
        loop.run_forever();
        CHECK(runs == 1);
        CHECK_FALSE(loop.is_running());

        loop.call_soon([&] {
            ++runs;
            loop.stop();
        });
        loop.run_forever();
        CHECK(runs == 2);
    }

    SUBCASE("stop() lets the current iteration finish") {
        std::vector<int> order;
        loop.call_soon([&] {
            order.push_back(1);
            loop.stop();
        });
        loop.call_soon([&] { order.push_back(2); });
        loop.run_forever();
        CHECK(order == std::vector<int>{1, 2});
    }

    SUBCASE("stop() before run_forever runs exactly one iteration") {
        const std::uint64_t before = loop.iteration_count();
        std::vector<int> order;
        loop.call_soon([&] {
            order.push_back(1);
            loop.call_soon([&] { order.push_back(2); });
        });
        loop.stop();
        loop.run_forever();
        CHECK(loop.iteration_count() == before + 1);
        CHECK(order == std::vector<int>{1});

        // And the stop was consumed: the next run_forever needs its own.
        loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
        loop.run_forever();
        CHECK(order == std::vector<int>{1, 2});
        CHECK(loop.iteration_count() >= before + 3);
    }

    SUBCASE("stop() before run_forever on an empty loop returns without blocking") {
        loop.stop();
        loop.run_forever();
        CHECK(loop.iteration_count() == 1);
    }
}

TEST_CASE("is_running() is true inside a callback, false outside") {
    ioloop::event_loop loop;
    CHECK_FALSE(loop.is_running());
    bool inside = false;
    loop.call_soon([&] {
        inside = loop.is_running();
        loop.stop();
    });
    loop.run_forever();
    CHECK(inside);
    CHECK_FALSE(loop.is_running());
}

TEST_CASE("scheduling on a closed loop throws invalid_state_error") {
    ioloop::event_loop loop;
    CHECK_FALSE(loop.is_closed());
    loop.close();
    CHECK(loop.is_closed());

    const auto closed = doctest::Contains("closed");
    CHECK_THROWS_WITH_AS(loop.call_soon([] {}), closed, ioloop::invalid_state_error);
    CHECK_THROWS_WITH_AS(loop.call_later(1ms, [] {}), closed, ioloop::invalid_state_error);
    CHECK_THROWS_WITH_AS(loop.call_at(loop.time(), [] {}), closed, ioloop::invalid_state_error);
    CHECK_THROWS_WITH_AS(loop.call_soon_threadsafe([] {}), closed, ioloop::invalid_state_error);
    if constexpr (test::readiness_backend) {
        test::fd_pair p = test::fd_pair::pipe();
        CHECK_THROWS_WITH_AS(loop.add_reader(p.first(), [] {}), closed, ioloop::invalid_state_error);
        CHECK_THROWS_WITH_AS(loop.add_writer(p.second(), [] {}), closed, ioloop::invalid_state_error);
    }
    CHECK_THROWS_WITH_AS(loop.add_signal_handler(test::test_signal, [] {}), closed,
                         ioloop::invalid_state_error);
    // invalid_state_error is one of the library's own errors.
    CHECK_THROWS_AS(loop.call_soon([] {}), ioloop::error);
}

TEST_CASE("close()") {
    SUBCASE("from inside a running callback throws; the loop runs on") {
        ioloop::event_loop loop;
        int reports = 0;
        bool was_invalid_state = false;
        std::string what;
        loop.set_exception_handler([&](const ioloop::exception_context& ctx) {
            ++reports;
            try {
                std::rethrow_exception(ctx.exception);
            } catch (const ioloop::invalid_state_error& e) {
                was_invalid_state = true;
                what = e.what();
            } catch (...) {
            }
        });
        bool later_ran = false;
        loop.call_soon([&] { loop.close(); });
        loop.call_soon([&] {
            later_ran = true;
            loop.call_soon([&] { loop.stop(); });
        });
        loop.run_forever();

        CHECK(reports == 1);
        CHECK(was_invalid_state);
        CHECK(what.find("running") != std::string::npos);
        CHECK(later_ran);
        CHECK_FALSE(loop.is_closed());
        loop.close();
        CHECK(loop.is_closed());
    }

    SUBCASE("twice is fine") {
        ioloop::event_loop loop;
        loop.close();
        CHECK_NOTHROW(loop.close());
        CHECK(loop.is_closed());
    }

    SUBCASE("drops pending callbacks: they never run, their callables are destroyed") {
        auto token = std::make_shared<int>(0);
        bool ran = false;
        ioloop::event_loop loop;
        loop.call_soon([token, &ran] { ran = true; });
        loop.call_later(1h, [token, &ran] { ran = true; });
        CHECK(token.use_count() == 3);
        loop.close();
        CHECK(token.use_count() == 1);
        CHECK_FALSE(ran);
    }

    SUBCASE("run_forever on a closed loop throws") {
        ioloop::event_loop loop;
        loop.close();
        CHECK_THROWS_WITH_AS(loop.run_forever(), doctest::Contains("closed"),
                             ioloop::invalid_state_error);
        CHECK_FALSE(loop.is_running());
    }
}

TEST_CASE("run_forever inside a running loop's callback throws") {
    ioloop::event_loop loop;
    int reports = 0;
    loop.set_exception_handler([&](const ioloop::exception_context&) { ++reports; });

    SUBCASE("the same loop") {
        bool threw = false;
        loop.call_soon([&] {
            try {
                loop.run_forever();
            } catch (const ioloop::invalid_state_error& e) {
                threw = std::string(e.what()).find("already running") != std::string::npos;
            }
            loop.stop();
        });
        loop.run_forever();
        CHECK(threw);
        CHECK_FALSE(loop.is_running());
    }

    SUBCASE("a second loop") {
        ioloop::event_loop second;
        bool threw = false;
        bool second_ran = false;
        second.call_soon([&] { second_ran = true; });
        loop.call_soon([&] {
            try {
                second.run_forever();
            } catch (const ioloop::invalid_state_error&) {
                threw = true;
            }
            loop.stop();
        });
        loop.run_forever();
        CHECK(threw);
        CHECK_FALSE(second_ran);
        CHECK_FALSE(second.is_running());

        // Once the first loop has returned, the second one runs normally.
        second.stop();
        second.run_forever();
        CHECK(second_ran);
    }

    // Both failures were caught inside the callback: nothing escaped to the handler.
    CHECK(reports == 0);
}

TEST_CASE("callables") {
    ioloop::event_loop loop;

    SUBCASE("move-only: a captured std::unique_ptr") {
        auto p = std::make_unique<int>(42);
        int seen = 0;
        loop.call_soon([p = std::move(p), &seen] { seen = *p; });
        run_one_iteration(loop);
        CHECK(seen == 42);
    }

    SUBCASE("move-only timer callback") {
        auto p = std::make_unique<std::string>("timer");
        std::string seen;
        loop.call_later(0ms, [p = std::move(p), &seen] { seen = *p; });
        run_one_iteration(loop);
        CHECK(seen == "timer");
    }

    SUBCASE("bigger than the inline buffer") {
        std::array<std::uint64_t, 32> big{};
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = i + 1;
        std::uint64_t sum = 0;
        auto fn = [big, &sum] {
            for (auto v : big) sum += v;
        };
        static_assert(sizeof(fn) > 3 * sizeof(void*), "must not fit the inline buffer");
        loop.call_soon(std::move(fn));
        run_one_iteration(loop);
        CHECK(sum == 32 * 33 / 2);
    }

    SUBCASE("over-aligned capture") {
        struct alignas(64) aligned_value {
            int v;
        };
        aligned_value a{7};
        int seen = 0;
        loop.call_soon([a, &seen] {
            CHECK(reinterpret_cast<std::uintptr_t>(&a) % 64 == 0);
            seen = a.v;
        });
        run_one_iteration(loop);
        CHECK(seen == 7);
    }

    SUBCASE("a function object with a throwing move constructor") {
        struct throwing_move {
            int* seen;
            throwing_move(int* s) : seen(s) {}
            throwing_move(const throwing_move& o) : seen(o.seen) {}
            throwing_move(throwing_move&& o) noexcept(false) : seen(o.seen) {}
            void operator()() const { *seen = 5; }
        };
        int seen = 0;
        loop.call_soon(throwing_move(&seen));
        run_one_iteration(loop);
        CHECK(seen == 5);
    }

    SUBCASE("a plain function pointer") {
        static int calls = 0;
        calls = 0;
        loop.call_soon(+[] { ++calls; });
        run_one_iteration(loop);
        CHECK(calls == 1);
    }

    SUBCASE("the callable is destroyed once it ran and no handle holds it") {
        auto token = std::make_shared<int>(0);
        loop.call_soon([token] {});
        loop.call_soon([big = std::array<char, 128>{}, token] { (void)big; });
        CHECK(token.use_count() == 3);
        run_one_iteration(loop);
        CHECK(token.use_count() == 1);
    }
}

TEST_CASE("a handle outliving its loop can still be queried and cancelled") {
    ioloop::handle ran;
    ioloop::handle pending;
    ioloop::timer_handle timer;
    ioloop::handle remote;
    std::chrono::steady_clock::time_point deadline;
    bool pending_ran = false;
    {
        ioloop::event_loop loop;
        ran = loop.call_soon([] {});
        run_one_iteration(loop);
        pending = loop.call_soon([&] { pending_ran = true; });
        timer = loop.call_later(1h, [&] { pending_ran = true; });
        deadline = timer.when();
        remote = loop.call_soon_threadsafe([&] { pending_ran = true; });
    }  // the loop is destroyed with all of them still referenced

    CHECK_FALSE(pending_ran);
    CHECK(ran);
    CHECK_FALSE(ran.cancelled());
    ran.cancel();
    CHECK(ran.cancelled());

    CHECK_FALSE(pending.cancelled());
    pending.cancel();
    CHECK(pending.cancelled());

    CHECK(timer.when() == deadline);
    timer.cancel();
    CHECK(timer.cancelled());

    remote.cancel();
    CHECK(remote.cancelled());

    // Releasing the last handles frees what the loop left behind (LeakSanitizer checks).
    ran = {};
    pending = {};
    timer = {};
    remote = {};
    CHECK_FALSE(pending);
}

TEST_CASE("a callback that ran drops its callable, even while its handle is kept") {
    ioloop::event_loop loop;
    auto captured = std::make_shared<int>(7);
    ioloop::handle h = loop.call_soon([captured] { (void)captured; });
    CHECK(captured.use_count() == 2);
    run_one_iteration(loop);
    // asyncio drops a handle's callback once it ran: what it captured must not live on
    // in a handle someone keeps (a cycle, if the capture owns the handle).
    CHECK(captured.use_count() == 1);
    CHECK_FALSE(h.cancelled());
}
