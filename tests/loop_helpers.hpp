// Helpers the test files share: run a loop for exactly one iteration, or until a callback
// stops it, with a watchdog that fails the test instead of hanging; every way a coroutine
// awaits a task or a future, to check that all of them refuse another loop's; a temporary
// directory of a test's own.
#ifndef IOLOOP_TESTS_LOOP_HELPERS_HPP
#define IOLOOP_TESTS_LOOP_HELPERS_HPP

#include <ioloop/ioloop.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace test {

// Runs exactly one iteration: a stop() made before run_forever makes it run one.
inline void run_one_iteration(ioloop::event_loop& loop) {
    loop.stop();
    loop.run_forever();
}

// Runs until a callback calls stop(); a timer fails the test instead of hanging. The
// timer also means the loop sleeps in its poll with a finite timeout, nothing more.
// (test_timers.cpp has its own watchdog on a thread: there, timers are under test.)
inline void run_with_watchdog(ioloop::event_loop& loop,
                              std::chrono::seconds limit = std::chrono::seconds(30)) {
    ioloop::timer_handle watchdog = loop.call_later(limit, [&loop] {
        FAIL_CHECK("watchdog: the loop did not stop in time");
        loop.stop();
    });
    loop.run_forever();
    watchdog.cancel();
}

// Runs `main` as a task of `loop` until it is done. The watchdog stops the loop instead of
// hanging: the task is then left unfinished (its loop's close abandons it).
template <class T>
ioloop::task<T> run_task_with_watchdog(ioloop::event_loop& loop, ioloop::coro<T> main,
                                       std::chrono::seconds limit = std::chrono::seconds(30)) {
    ioloop::task<T> t = loop.create_task(std::move(main));
    t.add_done_callback([&loop] { loop.stop(); });
    run_with_watchdog(loop, limit);
    return t;
}

// A new directory under the system's temporary one (std::filesystem: the same code on POSIX
// and Windows), removed with what the test left in it.
class scoped_temp_dir {
public:
    explicit scoped_temp_dir(std::string_view tag) {
        namespace fs = std::filesystem;
        const fs::path base = fs::temp_directory_path();
        // The clock's count as a name, moved on until the name is free: two test programs
        // running at once (one per backend) never share a directory.
        auto n = std::chrono::steady_clock::now().time_since_epoch().count();
        for (;; ++n) {
            fs::path p = base / ("ioloop-" + std::string(tag) + "-" + std::to_string(n));
            if (fs::create_directory(p)) {
                dir_ = p;
                break;
            }
        }
    }
    scoped_temp_dir(const scoped_temp_dir&) = delete;
    scoped_temp_dir& operator=(const scoped_temp_dir&) = delete;
    ~scoped_temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        CHECK_MESSAGE(!ec, "removing " << dir_.string() << ": " << ec.message());
    }

    // The directory, and a name in it, as the file API takes paths (UTF-8; on Windows the
    // temporary directory's path is ASCII in practice).
    std::string path() const { return dir_.string(); }
    std::string path(std::string_view name) const { return (dir_ / std::string(name)).string(); }

private:
    std::filesystem::path dir_;
};

// ---- every way to await a task or a future ------------------------------------------
// Each form awaits the task t or the future f once (the other is not touched), through
// co_await, a combinator or a task group. `what` is how its errors start, `kind` what it
// awaits. The vectors are made from copies of the handles, as a user's code would (as
// locals: g++ 12 rejects a braced vector temporary in a co_await expression).

struct await_form {
    const char* what;
    const char* kind;
    ioloop::coro<void> (*await)(ioloop::task<int>& t, ioloop::future<int>& f);
};

namespace forms {

inline ioloop::coro<void> co_await_task(ioloop::task<int>& t, ioloop::future<int>&) { co_await t; }
inline ioloop::coro<void> co_await_future(ioloop::task<int>&, ioloop::future<int>& f) {
    co_await f;
}
inline ioloop::coro<void> gather_task(ioloop::task<int>& t, ioloop::future<int>&) {
    co_await ioloop::gather(t);
}
inline ioloop::coro<void> gather_futures(ioloop::task<int>&, ioloop::future<int>& f) {
    std::vector<ioloop::future<int>> futures{f};
    co_await ioloop::gather(std::move(futures));
}
inline ioloop::coro<void> wait_tasks(ioloop::task<int>& t, ioloop::future<int>&) {
    std::vector<ioloop::task<int>> tasks{t};
    co_await ioloop::wait(tasks);
}
inline ioloop::coro<void> wait_for_task(ioloop::task<int>& t, ioloop::future<int>&) {
    co_await ioloop::wait_for(t, std::chrono::hours(1));
}
// A timeout of zero takes another path: a pending future is cancelled there at once.
inline ioloop::coro<void> wait_for_future_now(ioloop::task<int>&, ioloop::future<int>& f) {
    co_await ioloop::wait_for(f, std::chrono::seconds(0));
}
inline ioloop::coro<void> shield_task(ioloop::task<int>& t, ioloop::future<int>&) {
    co_await ioloop::shield(t);
}
inline ioloop::coro<void> as_completed_futures(ioloop::task<int>&, ioloop::future<int>& f) {
    std::vector<ioloop::future<int>> futures{f};
    auto next = ioloop::as_completed(std::move(futures));
    co_await next.next();
}
// Refused before the scope copies the handle.
inline ioloop::coro<void> timeout_future(ioloop::task<int>&, ioloop::future<int>& f) {
    co_await ioloop::timeout(std::chrono::hours(1), f);
}
// A task group takes a task made elsewhere through a child task that awaits it. The error
// is caught inside the body, where create_task throws it: out of the body it would come
// wrapped in the group's exception_group.
inline ioloop::coro<void> task_group_task(ioloop::task<int>& t, ioloop::future<int>&) {
    std::exception_ptr refused;
    co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
        try {
            tg.create_task(t);
        } catch (const ioloop::invalid_state_error&) {
            refused = std::current_exception();
        }
        co_return;
    });
    if (refused) std::rethrow_exception(refused);
}

}  // namespace forms

inline const std::vector<await_form>& await_forms() {
    static const std::vector<await_form> all{
        {"co_await", "task", forms::co_await_task},
        {"co_await", "future", forms::co_await_future},
        {"gather", "task", forms::gather_task},
        {"gather", "future", forms::gather_futures},
        {"wait", "task", forms::wait_tasks},
        {"wait_for", "task", forms::wait_for_task},
        {"wait_for", "future", forms::wait_for_future_now},
        {"shield", "task", forms::shield_task},
        {"as_completed", "future", forms::as_completed_futures},
        {"timeout", "future", forms::timeout_future},
        {"task_group::create_task", "task", forms::task_group_task},
    };
    return all;
}

// Awaits `form` on t or f, a task and a future of another loop than the running one, and
// checks that it threw invalid_state_error naming both loops at once: in the iteration it
// started, without waiting for them.
inline ioloop::coro<void> check_refused(const await_form& form, ioloop::task<int>& t,
                                        ioloop::future<int>& f) {
    INFO("awaiting a " << std::string(form.kind) << " through " << std::string(form.what));
    ioloop::event_loop& here = ioloop::get_running_loop();
    const std::uint64_t started = here.iteration_count();
    std::string message;
    try {
        co_await form.await(t, f);
    } catch (const ioloop::invalid_state_error& e) {
        message = e.what();
    } catch (const std::exception& e) {
        FAIL_CHECK("another exception: " << e.what());
    }
    CHECK(here.iteration_count() == started);
    const std::string start =
        std::string(form.what) + ": the " + form.kind + " belongs to another event loop";
    CHECK(message.substr(0, start.size()) == start);
    CHECK(message.find("the loop running on this thread") != std::string::npos);
    CHECK(message.find("run_coroutine_threadsafe") != std::string::npos);
}

}  // namespace test

#endif
