// ioloop: run_coroutine_threadsafe(coro, loop) (asyncio's): from any other thread, makes
// the coroutine a task on `loop` and returns a std::future for its result. This is the one
// header that includes <future> (about +0.18 s on every compile of <ioloop/ioloop.hpp>,
// g++ 12 -O0): std::future is what a thread without a loop can wait on.
#ifndef IOLOOP_CORO_RUN_COROUTINE_THREADSAFE_HPP
#define IOLOOP_CORO_RUN_COROUTINE_THREADSAFE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <exception>
#include <future>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The promise a task will fulfil. If it goes away unfulfilled (the loop closed before the
// task started, or abandoned it unfinished), the waiting thread gets cancelled_error
// instead of std::future_error's broken_promise: the task did not run to its end.
template <class T>
class promise_keeper {
public:
    promise_keeper() = default;
    promise_keeper(promise_keeper&& o) noexcept
        : promise_(std::move(o.promise_)), armed_(std::exchange(o.armed_, false)) {}
    promise_keeper(const promise_keeper&) = delete;
    promise_keeper& operator=(const promise_keeper&) = delete;
    promise_keeper& operator=(promise_keeper&&) = delete;
    ~promise_keeper() {
        if (armed_) {
            promise_.set_exception(std::make_exception_ptr(
                cancelled_error("run_coroutine_threadsafe: the event loop closed before the "
                                "coroutine finished")));
        }
    }

    std::future<T> get_future() { return promise_.get_future(); }

    // The task is done: its value, its exception, or cancelled_error.
    void fulfil(task<T>& t) noexcept {
        armed_ = false;
        try {
            if constexpr (std::is_void_v<T>) {
                t.result();
                promise_.set_value();
            } else {
                promise_.set_value(std::move(t.result()));
            }
        } catch (...) {
            promise_.set_exception(std::current_exception());
        }
    }

    void fail(std::exception_ptr e) noexcept {
        armed_ = false;
        promise_.set_exception(std::move(e));
    }

private:
    std::promise<T> promise_;
    bool armed_ = true;
};

}  // namespace detail

// Schedules create_task(main) on `loop` through call_soon_threadsafe, and returns a
// std::future that gets the task's value, its exception, or cancelled_error if it was
// cancelled (or the loop closed first). Throws invalid_state_error if the loop is closed.
// Call it from another thread: on the loop's own thread, blocking on the future would
// block the loop that must complete it.
//
// asyncio's concurrent future can also cancel the task; std::future has no way to ask
// for that, so here cancelling is only possible from the loop's side (task.cancel()).
template <class T>
std::future<T> run_coroutine_threadsafe(coro<T> main, loop_base& loop) {
    if (!main) {
        throw invalid_state_error(
            "run_coroutine_threadsafe: the coro was already awaited or moved from");
    }
    detail::promise_keeper<T> keeper;
    std::future<T> result = keeper.get_future();
    loop.call_soon_threadsafe(
        [&loop, body = std::move(main), keeper = std::move(keeper)]() mutable {
            task<T> t;
            try {
                t = loop.create_task(std::move(body));
            } catch (...) {
                keeper.fail(std::current_exception());
                return;
            }
            t.add_done_callback([k = std::move(keeper)](task<T>& done) mutable { k.fulfil(done); });
        });
    return result;
}

IOLOOP_NAMESPACE_END

#endif
