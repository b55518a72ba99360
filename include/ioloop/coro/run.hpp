// ioloop: running coroutines to completion: loop.run_until_complete (asyncio's), the
// one-call ioloop::run (asyncio.run), and get_running_loop().
#ifndef IOLOOP_CORO_RUN_HPP
#define IOLOOP_CORO_RUN_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/fwd.hpp"

#include <cstddef>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
inline constexpr bool is_coro = false;
template <class T>
inline constexpr bool is_coro<coro<T>> = true;

// Stops the loop when a future is done.
class stop_when_done final : public done_link {
public:
    stop_when_done(loop_base& loop, future_base* f) noexcept : loop_(loop), future_(f) {
        future_->add_ref();
        future_->add_link(this);
    }
    stop_when_done(const stop_when_done&) = delete;
    stop_when_done& operator=(const stop_when_done&) = delete;
    ~stop_when_done() {
        future_->remove_link(this);
        future_->release();
    }
    void on_done() noexcept override { loop_.stop(); }

private:
    loop_base& loop_;
    future_base* future_;
};

// ioloop::run's last act before closing (asyncio.run's _cancel_all_tasks): cancels the
// tasks still unfinished and runs the loop until each has reacted, since a task may
// catch the cancellation to clean up.
template <class Loop>
void cancel_remaining_tasks(Loop& loop) {
    task_registry& tasks = loop_access::tasks(loop);
    const std::size_t count = tasks.size();
    if (count == 0) return;
    struct countdown final : done_link {
        Loop* loop = nullptr;
        std::size_t* left = nullptr;
        task_base* task = nullptr;
        void on_done() noexcept override {
            if (--*left == 0) loop->stop();
        }
        ~countdown() {
            if (task) {
                task->remove_link(this);
                task->release();
            }
        }
    };
    std::size_t left = count;
    auto* waits = new countdown[count];
    std::size_t i = 0;
    for (registered_task* r = tasks.first(); r; r = r->next, ++i) {
        auto* t = static_cast<task_base*>(r);
        t->add_ref();
        waits[i].loop = &loop;
        waits[i].left = &left;
        waits[i].task = t;
        t->add_link(&waits[i]);
    }
    for (i = 0; i < count; ++i) waits[i].task->cancel();
    try {
        loop.run_forever();
    } catch (...) {
        delete[] waits;
        throw;
    }
    delete[] waits;
}

}  // namespace detail

template <class Backend>
template <class Awaitable>
decltype(auto) basic_event_loop<Backend>::run_until_complete(Awaitable&& work) {
    using A = std::remove_cvref_t<Awaitable>;
    if constexpr (detail::is_coro<A>) {
        return run_until_complete(create_task(std::move(work)));
    } else {
        static_assert(std::is_base_of_v<any_future, A>,
                      "run_until_complete takes a coro, a task or a future");
        // Another loop's work would not stop this one (asyncio: "The future belongs to a
        // different loop than the one specified as the loop argument"). Decided before the
        // handle is copied or read: that loop may be running on another thread.
        if (!work.state()->belongs_to(*this)) {
            detail::future_base::throw_other_loop("run_until_complete", detail::handle_kind<A>,
                                                  "the one run_until_complete runs");
        }
        A f = work;
        if (!f.done()) {
            detail::stop_when_done stopper(*this, f.state());
            run_forever();
            if (!f.done()) {
                throw invalid_state_error(
                    "run_until_complete: the event loop stopped before the work was done");
            }
        }
        using T = typename A::value_type;
        if constexpr (std::is_void_v<T>) {
            f.result();
        } else if constexpr (std::is_lvalue_reference_v<Awaitable>) {
            return T(f.result());  // others may read the result too
        } else {
            return T(std::move(f.result()));
        }
    }
}

namespace detail {
// `L`, as a type that depends on T.
template <class L, class T>
struct dependent {
    using type = L;
};
}  // namespace detail

// What asyncio.run and asyncio.Runner take besides the coroutine: {.debug = true} turns on
// the loop's debug mode (loop.set_debug) from the start.
struct run_options {
    bool debug = false;
};

// asyncio.Runner: one event loop for several run() calls, made at the first of them (or at
// get_loop()), closed by close() or the destructor as asyncio.run closes its own: the tasks
// still unfinished are cancelled and given the chance to finish, then the loop closes (which
// shuts its default executor down).
//   ioloop::runner r({.debug = true});
//   r.run(setup());
//   int n = r.run(work());   // the same loop: what setup() left running still runs
template <class Loop = event_loop>
class basic_runner {
public:
    explicit basic_runner(run_options options = {}) noexcept : options_(options) {}
    basic_runner(const basic_runner&) = delete;
    basic_runner& operator=(const basic_runner&) = delete;
    ~basic_runner() {
        try {
            close();
        } catch (...) {  // destroyed while its loop runs: nothing can be closed from here
        }
    }

    // Runs main to completion on the runner's loop; its result, or its exception.
    template <class T>
    T run(coro<T> main) {
        if (detail::loop_access::running())
            throw invalid_state_error("runner::run: cannot be called while an event loop is running");
        return get_loop().run_until_complete(std::move(main));
    }

    // The runner's loop, made now if no run() made it yet.
    Loop& get_loop() {
        if (closed_) throw invalid_state_error("runner: the runner is closed");
        if (!loop_) {
            loop_ = new Loop();
            loop_->set_debug(options_.debug);
        }
        return *loop_;
    }

    // Cancels what is left, closes the loop; a closed runner runs nothing more. Closing
    // twice does nothing; closing from inside the runner's own run() is an error.
    void close() {
        if (loop_ && loop_->is_running())
            throw invalid_state_error("runner::close: the runner's loop is running");
        closed_ = true;
        if (!loop_) return;
        try {
            detail::cancel_remaining_tasks(*loop_);
        } catch (...) {  // the loop will abandon what is left
        }
        loop_->close();  // not running: cannot throw
        delete std::exchange(loop_, nullptr);
    }

private:
    Loop* loop_ = nullptr;
    run_options options_;
    bool closed_ = false;
};

// Named through T (below): the loop type is completed where run is used, after the
// networking layer has defined its I/O engine (net/engines.hpp).
using runner = basic_runner<>;

// asyncio.run: a new event loop runs `main` to completion; the tasks still unfinished
// are then cancelled and given the chance to finish, the default executor is shut down,
// and the loop is closed. Returns main's result or throws its exception.
template <class T>
T run(coro<T> main, run_options options = {}) {
    if (detail::loop_access::running())
        throw invalid_state_error("run: cannot be called while an event loop is running");
    using loop_type = typename detail::dependent<event_loop, T>::type;
    basic_runner<loop_type> r(options);
    return r.run(std::move(main));
}

// The loop running the caller (asyncio.get_running_loop()). Throws invalid_state_error
// outside a running loop, or if the running loop has another backend than Backend.
template <class Backend = default_backend>
basic_event_loop<Backend>& get_running_loop() {
    loop_base& l = detail::loop_access::running_or_throw("get_running_loop");
    if (detail::loop_access::backend_tag(l) != &detail::backend_tag<Backend>) {
        throw invalid_state_error(
            "get_running_loop: the running loop is a basic_event_loop of another backend; "
            "name it: get_running_loop<ioloop::backend::...>()");
    }
    return static_cast<basic_event_loop<Backend>&>(l);
}

IOLOOP_NAMESPACE_END

#endif
