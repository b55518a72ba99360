// The thread-pool bridge: thread_pool, loop.run_in_executor, ioloop::to_thread and
// run_coroutine_threadsafe. Also run under ThreadSanitizer (CTest label "threads").
// Nothing here sleeps and hopes: work on other threads waits on gates the loop opens, and
// each such wait is bounded (30 s) so that a bug fails the test instead of hanging it.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr auto patience = 30s;  // how long another thread waits before it gives up

// Opened once, by the loop; waited on by workers. wait() is false if nobody opened it.
class gate {
public:
    void open() { promise_.set_value(); }
    bool wait() const { return opened_.wait_for(patience) == std::future_status::ready; }

private:
    std::promise<void> promise_;
    std::shared_future<void> opened_ = promise_.get_future().share();
};

// Counts its live instances: a result that is dropped must be destroyed, not leaked.
struct tracked {
    static inline std::atomic<int> live{0};
    int value = 0;
    explicit tracked(int v) : value(v) { ++live; }
    tracked(tracked&& o) noexcept : value(o.value) { ++live; }
    tracked(const tracked&) = delete;
    tracked& operator=(const tracked&) = delete;
    ~tracked() { --live; }
};

// An executor that counts what it is given and hands it to a pool of its own.
class counting_executor final : public ioloop::executor {
public:
    void submit(work job) override {
        ++submitted;
        pool_.submit(std::move(job));
    }
    void shutdown() noexcept override { pool_.shutdown(); }
    std::atomic<int> submitted{0};

private:
    ioloop::thread_pool pool_{2};
};

// Runs the coroutine to completion; a watchdog stops the loop (and fails the test) if it
// takes more than 30 s.
template <class T>
T run_bounded(ioloop::event_loop& loop, ioloop::coro<T> main) {
    ioloop::timer_handle watchdog = loop.call_later(patience, [&loop] {
        FAIL_CHECK("watchdog: the coroutine did not finish in time");
        loop.stop();
    });
    struct disarm {
        ioloop::timer_handle& h;
        ~disarm() { h.cancel(); }
    } guard{watchdog};
    return loop.run_until_complete(std::move(main));
}

// A future the loop completes when a worker calls started(): the worker tells the loop
// it is inside fn, through call_soon_threadsafe.
struct start_signal {
    ioloop::event_loop& loop;
    ioloop::future<void> arrived = loop.create_future<void>();
    // Only a pointer crosses threads: a future's reference count is the loop thread's.
    void started() {
        loop.call_soon_threadsafe([this] { arrived.set_result(); });
    }
};

// True if awaiting the task throws cancelled_error. (No co_await inside doctest's macros:
// some of them expand to a lambda.)
template <class T>
ioloop::coro<bool> ends_cancelled(ioloop::task<T>& t) {
    try {
        co_await t;
    } catch (const ioloop::cancelled_error&) {
        co_return true;
    }
    co_return false;
}

}  // namespace

TEST_CASE("run_in_executor runs fn on another thread and returns its value") {
    ioloop::event_loop loop;
    INFO("backend: " << ioloop::event_loop::backend_type::name);
    const std::thread::id loop_thread = std::this_thread::get_id();
    std::thread::id fn_thread;
    auto main = [&]() -> ioloop::coro<int> {
        ioloop::task<int> t = loop.run_in_executor([&fn_thread] {
            fn_thread = std::this_thread::get_id();
            return 42;
        });
        int v = co_await t;
        CHECK(t.done());
        CHECK(!t.get_name().empty());
        co_return v;
    };
    CHECK(run_bounded(loop, main()) == 42);
    CHECK(fn_thread != std::thread::id());  // read after the task completed: published
    CHECK(fn_thread != loop_thread);
}

TEST_CASE("run_in_executor: a void fn, and a move-only result") {
    ioloop::event_loop loop;
    std::atomic<bool> ran{false};
    auto main = [&]() -> ioloop::coro<int> {
        co_await loop.run_in_executor([&ran] { ran = true; });
        std::unique_ptr<int> p =
            co_await loop.run_in_executor([] { return std::make_unique<int>(7); });
        co_return *p;
    };
    CHECK(run_bounded(loop, main()) == 7);
    CHECK(ran);
}

TEST_CASE("run_in_executor rethrows the exception fn threw, in the awaiting task") {
    ioloop::event_loop loop;
    auto main = [&]() -> ioloop::coro<std::string> {
        auto t = loop.run_in_executor([]() -> int { throw std::runtime_error("from the pool"); });
        try {
            co_await t;
        } catch (const std::runtime_error& e) {
            co_return e.what();
        }
        co_return "no exception";
    };
    CHECK(run_bounded(loop, main()) == "from the pool");
}

TEST_CASE("to_thread runs fn(args...) on another thread while the loop keeps serving timers") {
    ioloop::event_loop loop;
    CHECK_THROWS_AS(ioloop::to_thread([] {}), ioloop::invalid_state_error);  // no running loop
    const std::thread::id loop_thread = std::this_thread::get_id();
    gate release;
    std::atomic<int> ticks{0};
    // fn is released only by a task that needs three timer rounds of the loop: if the loop
    // were blocked while fn runs, fn would give up after 30 s and fail.
    auto fn = [&](std::string prefix, std::unique_ptr<int> n) {
        if (!release.wait()) throw std::runtime_error("the loop never opened the gate");
        const bool elsewhere = std::this_thread::get_id() != loop_thread;
        return prefix + std::to_string(*n + ticks.load()) + (elsewhere ? " elsewhere" : " inline");
    };
    auto ticker = [&]() -> ioloop::coro<void> {
        for (int i = 0; i < 3; ++i) {
            co_await ioloop::sleep(1ms);
            ++ticks;
        }
        release.open();
    };
    std::string prefix = "n=";
    auto main = [&]() -> ioloop::coro<std::string> {
        auto work = ioloop::to_thread(fn, prefix, std::make_unique<int>(40));
        auto timers = ioloop::create_task(ticker());
        std::string r = co_await work;
        co_await timers;
        co_return r;
    };
    CHECK(run_bounded(loop, main()) == "n=43 elsewhere");
    CHECK(prefix == "n=");  // an lvalue argument is copied, not moved from
}

TEST_CASE("the default executor runs at most min(32, cores + 4) jobs at once") {
    const std::size_t cores = std::thread::hardware_concurrency();
    const int limit = static_cast<int>(std::min<std::size_t>(32, cores + 4));
    CHECK(ioloop::thread_pool::default_max_workers() == static_cast<std::size_t>(limit));
    const int jobs = limit + 3;
    std::atomic<int> running{0};
    std::atomic<int> most{0};
    std::atomic<int> gave_up{0};
    gate release;
    auto main = [&]() -> ioloop::coro<int> {
        auto& loop = ioloop::get_running_loop();
        int started = 0;
        ioloop::future<void> all_busy = loop.create_future<void>();
        auto job = [&] {
            const int now = ++running;
            int seen = most.load();
            while (seen < now && !most.compare_exchange_weak(seen, now)) {
            }
            loop.call_soon_threadsafe([&] {
                if (++started == limit) all_busy.set_result();
            });
            if (!release.wait()) ++gave_up;
            --running;
        };
        std::vector<ioloop::task<void>> tasks;
        for (int i = 0; i < jobs; ++i) tasks.push_back(loop.run_in_executor(job));
        // `limit` jobs run at once and hold their threads until the gate opens: the pool
        // has that many threads, and the three jobs left wait in its queue.
        co_await all_busy;
        const int busy = running.load();
        release.open();
        for (auto& t : tasks) co_await t;
        co_return busy;
    };
    CHECK(ioloop::run(main()) == limit);
    CHECK(most.load() == limit);
    CHECK(gave_up.load() == 0);
}

TEST_CASE("run_in_executor uses the executor given to set_default_executor") {
    ioloop::event_loop loop;
    counting_executor custom;  // declared after the loop: shut down before the loop goes
    loop.set_default_executor(custom);
    auto main = [&]() -> ioloop::coro<int> {
        int a = co_await loop.run_in_executor([] { return 1; });
        int b = co_await ioloop::to_thread([](int x) { return x; }, 2);
        co_return a + b;
    };
    CHECK(run_bounded(loop, main()) == 3);
    CHECK(custom.submitted.load() == 2);
}

TEST_CASE("cancelling the task while fn runs: cancelled_error at once, the result dropped") {
    ioloop::event_loop loop;
    ioloop::thread_pool pool(1);  // one thread: what runs after fn proves fn is over
    loop.set_default_executor(pool);
    tracked::live = 0;
    gate release;
    std::atomic<bool> finished{false};
    auto main = [&]() -> ioloop::coro<int> {
        start_signal inside{loop};
        auto t = loop.run_in_executor([&] {
            inside.started();
            const bool opened = release.wait();
            finished = true;
            return tracked(opened ? 1 : -1);
        });
        co_await inside.arrived;
        CHECK(t.cancel());
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(cancelled);
        CHECK(t.cancelled());
        CHECK_FALSE(finished.load());  // the task did not wait for the thread
        release.open();
        // The loop and the pool go on. This job runs after fn on the pool's one thread, so
        // fn's completion reached the loop (and was dropped) before this one does.
        int next = co_await loop.run_in_executor([] { return 5; });
        CHECK(finished.load());
        CHECK(tracked::live.load() == 0);
        co_return next;
    };
    CHECK(run_bounded(loop, main()) == 5);
}

TEST_CASE("cancelling the task before fn starts: fn never runs") {
    ioloop::event_loop loop;
    ioloop::thread_pool pool(1);  // the first job holds the only thread
    loop.set_default_executor(pool);
    gate release;
    std::atomic<bool> second_ran{false};
    auto main = [&](bool let_it_start) -> ioloop::coro<void> {
        start_signal inside{loop};
        auto first = loop.run_in_executor([&] {
            inside.started();
            return release.wait();
        });
        co_await inside.arrived;
        auto second = loop.run_in_executor([&] { second_ran = true; });
        // The task either never takes its first step, or waits for the job when cancelled.
        if (let_it_start) co_await ioloop::sleep(0ms);
        CHECK(second.cancel());
        const bool cancelled = co_await ends_cancelled(second);
        CHECK(cancelled);
        release.open();
        const bool opened = co_await first;
        CHECK(opened);
        // FIFO on one thread: once this third job has run, the second was taken and skipped.
        co_await loop.run_in_executor([] {});
        CHECK_FALSE(second_ran.load());
    };
    SUBCASE("cancelled before the task's first step") { run_bounded(loop, main(false)); }
    SUBCASE("cancelled while the task waits for the job") { run_bounded(loop, main(true)); }
}

TEST_CASE("ioloop::run shuts the default executor down: its work is over when run returns") {
    std::atomic<bool> saw_closed{false};
    std::atomic<bool> finished{false};
    auto main = [&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        start_signal inside{loop};
        // Still running when the loop closes: it keeps the loop busy until
        // call_soon_threadsafe refuses (the loop is closed), then ends.
        auto t = loop.run_in_executor([&] {
            inside.started();
            const auto give_up = std::chrono::steady_clock::now() + patience;
            while (std::chrono::steady_clock::now() < give_up) {
                try {
                    loop.call_soon_threadsafe([] {});
                } catch (const ioloop::invalid_state_error&) {
                    saw_closed = true;
                    break;
                }
                std::this_thread::yield();
            }
            finished = true;
            return 1;
        });
        co_await inside.arrived;
        // main ends with `t` unfinished: run cancels it, closes the loop, shuts the pool
        // down and waits for the job.
    };
    ioloop::run(main());
    CHECK(saw_closed.load());
    CHECK(finished.load());
}

TEST_CASE("closing the loop while fn runs: the job finishes later and is dropped") {
    tracked::live = 0;
    gate release;
    std::atomic<bool> finished{false};
    {
        ioloop::event_loop loop;
        ioloop::thread_pool pool(1);  // declared after the loop: shut down before it goes
        loop.set_default_executor(pool);
        auto main = [&]() -> ioloop::coro<void> {
            start_signal inside{loop};
            auto t = loop.run_in_executor([&] {
                inside.started();
                const bool opened = release.wait();
                finished = true;
                return tracked(opened ? 1 : -1);
            });
            co_await inside.arrived;  // leaves `t` waiting for the job
        };
        run_bounded(loop, main());
        loop.close();  // abandons the task that waits for the job
        release.open();
        pool.shutdown();  // the job ends on the worker: its result finds the loop closed
        CHECK(finished.load());
        CHECK(tracked::live.load() == 0);
        // The closed loop refuses new work with a clear error.
        CHECK_THROWS_AS(loop.run_in_executor([] {}), ioloop::invalid_state_error);
    }
}

TEST_CASE("run_in_executor with a shut-down executor throws invalid_state_error") {
    ioloop::event_loop loop;
    ioloop::thread_pool pool(1);
    loop.set_default_executor(pool);
    pool.shutdown();
    auto main = [&]() -> ioloop::coro<void> {
        CHECK_THROWS_AS(loop.run_in_executor([] { return 1; }), ioloop::invalid_state_error);
        co_return;
    };
    run_bounded(loop, main());
}

TEST_CASE("thread_pool: shutdown waits for queued and running work, then refuses more") {
    std::atomic<int> done{0};
    ioloop::thread_pool pool(1);
    CHECK(pool.max_workers() == 1);
    for (int i = 0; i < 3; ++i) pool.submit([&done] { ++done; });
    pool.shutdown();
    CHECK(done.load() == 3);
    CHECK_THROWS_AS(pool.submit([] {}), ioloop::invalid_state_error);
    pool.shutdown();  // twice is fine
    CHECK_THROWS_AS(ioloop::thread_pool(0), std::system_error);
}

TEST_CASE("thread_pool: work that arrives while every thread is busy gets a new thread") {
    // Threads start on demand; four jobs that wait for each other need four at once.
    ioloop::thread_pool pool(4);
    std::atomic<int> arrived{0};
    std::thread::id ids[4];
    std::atomic<int> gave_up{0};
    for (int i = 0; i < 4; ++i) {
        pool.submit([&, i] {
            ids[i] = std::this_thread::get_id();
            ++arrived;
            const auto give_up = std::chrono::steady_clock::now() + patience;
            while (arrived.load() < 4 && std::chrono::steady_clock::now() < give_up) {
                std::this_thread::yield();
            }
            if (arrived.load() < 4) ++gave_up;
        });
    }
    pool.shutdown();
    CHECK(gave_up.load() == 0);
    std::sort(std::begin(ids), std::end(ids));
    CHECK(std::adjacent_find(std::begin(ids), std::end(ids)) == std::end(ids));
}

TEST_CASE("run_coroutine_threadsafe from a plain thread: the value through std::future") {
    ioloop::event_loop loop;
    const std::thread::id loop_thread = std::this_thread::get_id();
    std::thread::id ran_on;
    auto answer = [&]() -> ioloop::coro<int> {
        ran_on = std::this_thread::get_id();
        co_await ioloop::sleep(1ms);
        co_return 42;
    };
    int got = 0;
    bool timed_out = false;
    std::thread other([&] {
        std::future<int> f = ioloop::run_coroutine_threadsafe(answer(), loop);
        if (f.wait_for(patience) != std::future_status::ready) {
            timed_out = true;
        } else {
            got = f.get();
        }
        loop.call_soon_threadsafe([&loop] { loop.stop(); });
    });
    test::run_with_watchdog(loop);
    other.join();
    CHECK_FALSE(timed_out);
    CHECK(got == 42);
    CHECK(ran_on == loop_thread);
}

TEST_CASE("run_coroutine_threadsafe: the exception, and cancellation, through std::future") {
    ioloop::event_loop loop;
    // The tasks are kept until the thread is joined. The exception object is shared by the
    // task and the std::future, and its reference count lives in libstdc++, which
    // ThreadSanitizer does not see: the last release on the loop's thread, after the other
    // thread read the message, would be reported as a race although it is ordered.
    std::vector<ioloop::any_task> keep;
    auto fails = [&]() -> ioloop::coro<int> {
        keep.push_back(ioloop::current_task());
        co_await ioloop::sleep(0ms);
        throw std::runtime_error("from the loop");
    };
    auto cancels_itself = [&]() -> ioloop::coro<void> {
        keep.push_back(ioloop::current_task());
        ioloop::current_task().cancel();
        co_await ioloop::sleep(0ms);  // cancelled_error is thrown here
    };
    std::string error;
    bool cancelled = false;
    std::thread other([&] {
        std::future<int> f = ioloop::run_coroutine_threadsafe(fails(), loop);
        std::future<void> g = ioloop::run_coroutine_threadsafe(cancels_itself(), loop);
        try {
            f.get();
        } catch (const std::runtime_error& e) {
            error = e.what();
        }
        try {
            g.get();
        } catch (const ioloop::cancelled_error&) {
            cancelled = true;
        }
        loop.call_soon_threadsafe([&loop] { loop.stop(); });
    });
    test::run_with_watchdog(loop);
    other.join();
    CHECK(error == "from the loop");
    CHECK(cancelled);
}

TEST_CASE(
    "run_coroutine_threadsafe: a loop closed before the coroutine ends gives cancelled_error") {
    ioloop::event_loop loop;
    auto forever = [&]() -> ioloop::coro<int> {
        loop.stop();  // run_forever returns, and the loop is closed with this task waiting
        co_await ioloop::sleep(1h);
        co_return 0;
    };
    std::future<int> f;
    std::thread other([&] { f = ioloop::run_coroutine_threadsafe(forever(), loop); });
    other.join();
    test::run_with_watchdog(loop);
    loop.close();
    REQUIRE(f.wait_for(0s) == std::future_status::ready);
    CHECK_THROWS_AS(f.get(), ioloop::cancelled_error);
    CHECK_THROWS_AS(ioloop::run_coroutine_threadsafe(forever(), loop), ioloop::invalid_state_error);
}
