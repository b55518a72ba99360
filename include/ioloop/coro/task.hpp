// ioloop: task<T> (asyncio's Task), a coroutine scheduled on the loop, and any_task, what
// every task offers whatever its result type (current_task(), all_tasks()). A task starts
// on the next iteration and runs even if nobody awaits it; its result or exception is
// kept until read, and an exception nobody read is reported when the task goes away.
#ifndef IOLOOP_CORO_TASK_HPP
#define IOLOOP_CORO_TASK_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/future.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/result_value.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class task_state final : public task_base {
public:
    using body_handle = std::coroutine_handle<coro_promise<T>>;

    task_state(loop_base& loop, body_handle body) : task_base(loop, body, body.promise().origin()) {
        body.promise().set_root(this);
    }

    result_value<T>& value() noexcept { return value_; }

    const coro_promise_base* body_promise() const noexcept override {
        return body_ ? &body_handle::from_address(body_.address()).promise() : nullptr;
    }

    void body_finished() noexcept override {
        coro_promise<T>& p = body_handle::from_address(body_.address()).promise();
        if (p.error()) {
            error_ = std::move(p.error());
            complete(is_cancellation(error_) ? status::cancelled : status::failed);
            return;
        }
        if (take_cancel()) {
            // Cancelled while it ran, and it returned without suspending again: asyncio
            // marks such a task cancelled.
            error_ = std::make_exception_ptr(cancellation());
            complete(status::cancelled);
            return;
        }
        try {
            if constexpr (std::is_void_v<T>) {
                value_.set();
            } else {
                value_.set(std::move(p.value().get()));
            }
        } catch (...) {  // T's move constructor threw
            error_ = std::current_exception();
            complete(status::failed);
            return;
        }
        complete(status::finished);
    }

private:
    result_value<T> value_;
};

}  // namespace detail

// One coroutine of a task's stack: the coroutine function, and where it is defined.
using stack_frame = detail::coroutine_origin;

class any_task : public any_future {
public:
    using any_future::any_future;

    // The name given to create_task, or "Task-<n>".
    std::string get_name() const { return base()->get_name(); }
    void set_name(std::string name) { base()->set_name(std::move(name)); }

    // Cancel requests not withdrawn (asyncio's Task.cancelling() / uncancel()).
    std::size_t cancelling() const noexcept { return base()->cancelling(); }
    std::size_t uncancel() noexcept { return base()->uncancel(); }

    // fn() or fn(any_task&) runs on the loop once the task is done.
    template <class F>
    done_callback add_done_callback(F&& fn) {
        return add_done_callback_as<any_task>(std::forward<F>(fn));
    }

    // The coroutines the task is suspended in, its own first and the innermost last
    // (asyncio's Task.get_stack(), oldest frame first): each coroutine awaited as a coro
    // is one frame. Empty once the task is done, as asyncio's for a finished task.
    std::vector<stack_frame> get_stack() const {
        std::vector<stack_frame> frames;
        for (const detail::coro_promise_base* p = base()->body_promise(); p; p = p->awaited_child())
            frames.push_back(p->origin());
        return frames;
    }

    // Prints get_stack() to `out`, one coroutine a line (asyncio's Task.print_stack()):
    //   Stack for task Task-3 (coroutine fetch at app.cpp:12) (most recent call last):
    //     coroutine fetch at app.cpp:12
    //     coroutine read_reply at app.cpp:30
    void print_stack(std::FILE* out = stderr) const {
        const std::vector<stack_frame> frames = get_stack();
        const std::string who = base()->describe();
        if (frames.empty()) {
            std::fprintf(out, "No stack for %s\n", who.c_str());
            return;
        }
        std::fprintf(out, "Stack for %s (most recent call last):\n", who.c_str());
        for (const stack_frame& f : frames)
            std::fprintf(out, "  coroutine %s at %s:%u\n", f.function, f.file, static_cast<unsigned>(f.line));
    }

    // Waits for the task to be done, without its result (its exception still comes out).
    // Throws invalid_state_error if the task belongs to another loop than the running one.
    auto operator co_await() const {
        return detail::future_awaiter<detail::task_base, false, true>(base());
    }

protected:
    detail::task_base* base() const noexcept { return static_cast<detail::task_base*>(state_); }
};

template <class T = void>
class task : public any_task {
public:
    using value_type = T;
    using any_task::any_task;

    // The value; throws what the task failed with, cancelled_error if it was cancelled,
    // invalid_state_error if it is not done yet.
    std::add_lvalue_reference_t<T> result() {
        typed()->rethrow_if_not_finished("result");
        return typed()->value().get();
    }

    // fn() or fn(task<T>&) runs on the loop once the task is done.
    template <class F>
    done_callback add_done_callback(F&& fn) {
        return add_done_callback_as<task>(std::forward<F>(fn));
    }

    auto operator co_await() & {
        return detail::future_awaiter<detail::task_state<T>, false>(typed());
    }
    auto operator co_await() && {
        return detail::future_awaiter<detail::task_state<T>, true>(typed());
    }

private:
    detail::task_state<T>* typed() const noexcept {
        return static_cast<detail::task_state<T>*>(state_);
    }
};

namespace detail {

// The handle forms of future_base's loop checks, for the combinators: a task<T> or an
// any_task is named a task in the error; an any_future, which may hold either, a future.
template <class H>
inline constexpr const char* handle_kind = std::is_base_of_v<any_task, H> ? "task" : "future";

template <class H>
void check_running_loop(const H& h, const char* what) {
    h.state()->check_running_loop(what, handle_kind<H>);
}

template <class H>
void check_not_other_loop(const H& h, const char* what) {
    h.state()->check_not_other_loop(what, handle_kind<H>);
}

// A copy of the caller's handles, each checked before it is copied: a copy counts a
// reference, which is the other loop's thread's to count.
template <class H>
std::vector<H> checked_copy(const std::vector<H>& handles, const char* what) {
    std::vector<H> copy;
    copy.reserve(handles.size());
    for (const H& h : handles) {
        check_running_loop(h, what);
        copy.push_back(h);
    }
    return copy;
}

}  // namespace detail

namespace detail {

// create_task's body; `name` is set before an eager start, which may finish the task.
template <class T, class Name>
task<T> make_task(loop_base& loop, coro<T> body, Name name, bool eager_start) {
    if (!body) throw invalid_state_error("create_task: the coro was already awaited or moved from");
    auto h = body.release();
    task_state<T>* t;
    try {
        t = new task_state<T>(loop, h);
    } catch (...) {
        h.destroy();
        throw;
    }
    task<T> result(t);  // adopts the first reference
    if constexpr (std::is_same_v<Name, std::string>) {
        if (!name.empty()) t->set_name(std::move(name));
    } else if constexpr (!std::is_null_pointer_v<Name>) {
        if (name) t->set_name(name);
    }
    const bool eager = (eager_start || loop.get_task_factory() == task_factory::eager) &&
                       loop_access::running() == &loop;
    t->start(eager);
    return result;
}

}  // namespace detail

template <class T>
task<T> loop_base::create_task(coro<T> body) {
    check_open("create_task");
    return detail::make_task(*this, std::move(body), nullptr, false);
}

template <class T, class Name>
    requires std::is_convertible_v<Name&&, std::string>
task<T> loop_base::create_task(coro<T> body, Name&& name) {
    check_open("create_task");
    return detail::make_task(*this, std::move(body), std::string(std::forward<Name>(name)), false);
}

template <class T>
task<T> loop_base::create_task(coro<T> body, task_options options) {
    check_open("create_task");
    return detail::make_task(*this, std::move(body), options.name, options.eager_start);
}

// Schedules the coroutine on the running loop (asyncio.create_task).
template <class T>
task<T> create_task(coro<T> body) {
    return detail::loop_access::running_or_throw("create_task").create_task(std::move(body));
}

template <class T, class Name>
    requires std::is_convertible_v<Name&&, std::string>
task<T> create_task(coro<T> body, Name&& name) {
    return detail::loop_access::running_or_throw("create_task")
        .create_task(std::move(body), std::forward<Name>(name));
}

template <class T>
task<T> create_task(coro<T> body, task_options options) {
    return detail::loop_access::running_or_throw("create_task").create_task(std::move(body), options);
}

// The task running the caller; an empty any_task outside a task.
inline any_task current_task() noexcept {
    detail::task_base* t = detail::current_task;
    if (!t) return any_task();
    t->add_ref();
    return any_task(t);
}

// The running loop's unfinished tasks (asyncio.all_tasks()).
inline std::vector<any_task> all_tasks() {
    detail::task_registry& tasks =
        detail::loop_access::tasks(detail::loop_access::running_or_throw("all_tasks"));
    std::vector<any_task> result;
    result.reserve(tasks.size());
    for (detail::registered_task* r = tasks.first(); r; r = r->next) {
        auto* t = static_cast<detail::task_base*>(r);
        t->add_ref();
        result.emplace_back(t);
    }
    return result;
}

IOLOOP_NAMESPACE_END

#endif
