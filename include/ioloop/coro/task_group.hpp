// ioloop: task_group (asyncio's TaskGroup), structured concurrency. Every task created in
// a group is done before the group's scope ends; the first task to fail cancels the other
// tasks and the group's body, and all the failures come out together as one
// exception_group. A cancel of the task running the group from outside cancels the
// children too and comes out as cancelled_error.
//
//     co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
//         ioloop::task<std::string> a = tg.create_task(fetch("a"));
//         tg.create_task(fetch("b"), "fetch-b");
//         co_return;
//     });  // both tasks are done here
//
// asyncio writes `async with TaskGroup() as tg:`, whose exit waits for the children even
// when an exception leaves the block. C++ has no asynchronous destructor: a scope object
// could only cancel its children when an exception unwinds past it, never wait for them.
// So the scope is a coroutine, run(), which waits for every child however its body ends
// (returns, throws, is cancelled). The task_group handle it passes to the body is a
// counted reference: a copy kept by a child or a callback never dangles, and creating a
// task through it once the group is finished throws invalid_state_error.
#ifndef IOLOOP_CORO_TASK_GROUP_HPP
#define IOLOOP_CORO_TASK_GROUP_HPP

#include "ioloop/coro/awaitable.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/result_value.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <coroutine>
#include <cstddef>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

class task_group;

namespace detail {

// What a group shares between its scope (run's frame), its handles and the callbacks of
// its children: counted, on the loop's thread.
class task_group_state {
public:
    explicit task_group_state(task_base& parent) noexcept
        : loop_(parent.loop()), parent_(&parent) {}
    task_group_state(const task_group_state&) = delete;
    task_group_state& operator=(const task_group_state&) = delete;

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }

    template <class T>
    task<T> create_task(coro<T> body, std::string name) {
        if (exiting_ && count_ == 0) {
            discard(body);
            throw invalid_state_error("task_group::create_task: the task group is finished");
        }
        if (aborting_) {
            discard(body);
            throw invalid_state_error(
                "task_group::create_task: the task group is shutting down (a task failed or it "
                "was cancelled)");
        }
        // Allocated first: a failed allocation must not leave a task running outside it.
        struct pending_member {
            member* m;
            ~pending_member() { delete m; }
        } fresh{new member(*this)};
        task<T> t = loop_->create_task(std::move(body), std::move(name));
        member* m = std::exchange(fresh.m, nullptr);
        m->task = static_cast<task_base*>(t.state());
        m->task->add_ref();
        m->prev = tail_;
        if (tail_) {
            tail_->next = m;
        } else {
            head_ = m;
        }
        tail_ = m;
        ++count_;
        m->task->add_link(m);
        return t;
    }

    // The end of the scope (asyncio's __aexit__): waits for every child, then rethrows
    // what the group's outcome is. body_error is what the body threw, if anything.
    // A template only so that the coroutine is compiled where it is used: g++ generates
    // a plain inline coroutine in every translation unit that includes it.
    template <class = void>
    coro<void> close(std::exception_ptr body_error);

    // The scope is gone: normally with no child left; at the loop's close, the parent's
    // coroutine destroyed where it waited, with children the loop abandons in turn.
    void drop() noexcept {
        exiting_ = true;
        dropped_ = true;
        while (member* m = head_) {
            unlink(m);
            m->task->remove_link(m);
            m->task->release();
            delete m;
        }
        joiner_ = nullptr;
        parent_ = nullptr;
        errors_.clear();
    }

private:
    ~task_group_state() = default;

    // A child: heard from when its task is done (the task's own list of links).
    struct member final : done_link {
        explicit member(task_group_state& g) noexcept : group(&g) {}
        // Handled on a later iteration, as asyncio's done callbacks are: a sibling woken
        // in the same iteration still runs its step first, so children that fail "at the
        // same time" all get to report their own error rather than a cancellation.
        void on_done() noexcept override {
            if (loop_base* l = task->loop()) loop_access::post(*l, done_step(group, this));
        }
        task_group_state* group;
        task_base* task = nullptr;  // counted: read after it is done
        member* prev = nullptr;
        member* next = nullptr;
    };

    // The posted callback. It keeps the state alive; the member may be gone if the scope
    // was dropped meanwhile (the loop closing), which the state says.
    class done_step {
    public:
        done_step(task_group_state* g, member* m) noexcept : group_(g), member_(m) {
            group_->add_ref();
        }
        done_step(done_step&& o) noexcept
            : group_(std::exchange(o.group_, nullptr)), member_(o.member_) {}
        done_step(const done_step&) = delete;
        done_step& operator=(const done_step&) = delete;
        done_step& operator=(done_step&&) = delete;
        ~done_step() {
            if (group_) group_->release();
        }
        void operator()() noexcept {
            if (!group_->dropped_) group_->child_done(member_);
        }

    private:
        task_group_state* group_;
        member* member_;
    };

    // Where the parent waits for the last child (asyncio awaits a future for this).
    class join final : public wait_point {
    public:
        explicit join(task_group_state& g) noexcept : group_(g) {}
        join(const join&) = delete;
        join& operator=(const join&) = delete;
        ~join() {
            if (group_.joiner_ == this) group_.joiner_ = nullptr;
        }

        bool await_ready() const noexcept { return group_.count_ == 0; }
        void await_suspend(std::coroutine_handle<> h) {
            task_ = &current_task_or_throw("task_group");
            group_.joiner_ = this;
            task_->suspend(h, this);
        }
        void await_resume() {
            if (task_) task_->throw_if_cancelled();
        }

        void on_cancel(task_base& t) noexcept override {
            group_.joiner_ = nullptr;
            t.wake();
        }
        void children_done() noexcept {
            group_.joiner_ = nullptr;
            task_->wake();
        }

    private:
        task_group_state& group_;
        task_base* task_ = nullptr;
    };

    // A coroutine the group refuses is destroyed unrun without the "never awaited" report
    // (asyncio closes it): the refusal is already reported by the exception.
    template <class T>
    static void discard(coro<T>& body) noexcept {
        if (auto h = body.release()) h.destroy();
    }

    void unlink(member* m) noexcept {
        if (m->prev) {
            m->prev->next = m->next;
        } else {
            head_ = m->next;
        }
        if (m->next) {
            m->next->prev = m->prev;
        } else {
            tail_ = m->prev;
        }
        --count_;
    }

    // Cancels every child not done yet; from now on the group takes no new task.
    void abort() noexcept {
        aborting_ = true;
        for (member* m = head_; m; m = m->next) {
            if (!m->task->done()) m->task->cancel();
        }
    }

    // A child is done (asyncio's _on_task_done). Its first failure aborts the group and
    // cancels the parent, counted as the group's own request so that close() withdraws it
    // with uncancel() and turns it back into the errors.
    void child_done(member* m) noexcept {
        unlink(m);
        task_base* t = m->task;
        delete m;
        if (count_ == 0 && joiner_) joiner_->children_done();
        if (!t->cancelled()) {
            // Reading it marks it retrieved: the group reports it, the task need not.
            // (Out of memory in push_back ends the program: the error could not be kept.)
            if (std::exception_ptr e = t->exception()) {
                errors_.push_back(std::move(e));
                if (!aborting_ && !parent_cancel_requested_) {
                    abort();
                    parent_cancel_requested_ = true;
                    parent_->cancel();
                }
            }
        }
        t->release();
    }

    loop_base* loop_;
    task_base* parent_;  // the task running the body; null once the scope is gone
    member* head_ = nullptr;
    member* tail_ = nullptr;
    std::size_t count_ = 0;  // children whose done_step has not run yet
    join* joiner_ = nullptr;
    std::vector<std::exception_ptr> errors_;
    std::size_t refs_ = 1;
    bool exiting_ = false;   // the body is over
    bool aborting_ = false;  // children cancelled: a failure, or the scope is cancelled
    bool parent_cancel_requested_ = false;
    bool dropped_ = false;
};

template <class>
coro<void> task_group_state::close(std::exception_ptr body_error) {
    exiting_ = true;
    const bool body_cancelled = future_base::is_cancellation(body_error);
    // A cancellation that reached the body goes on up, unless it was the group's own.
    std::exception_ptr propagate = body_cancelled ? body_error : nullptr;
    if (body_error && !aborting_) abort();
    while (count_ != 0) {
        try {
            co_await join(*this);
        } catch (const cancelled_error&) {
            // Cancelled while waiting: by the group itself (a child failed; the wait goes
            // on), or from outside, which cancels the children and stays a cancellation.
            if (!aborting_) {
                propagate = std::current_exception();
                abort();
            }
        }
    }
    // Withdraw the group's own cancel request; one left over came from outside.
    if (parent_cancel_requested_ && parent_->uncancel() == 0) propagate = nullptr;
    if (propagate && errors_.empty()) std::rethrow_exception(propagate);
    if (body_error && !body_cancelled) errors_.push_back(std::move(body_error));
    if (errors_.empty()) co_return;
    // The errors win over an outside cancel, which must not be lost either: cancelling
    // again (the count unchanged) makes the parent's next suspension point throw.
    if (parent_->cancelling() != 0) {
        parent_->uncancel();
        parent_->cancel();
    }
    throw exception_group(std::move(errors_));
}

// Ends the scope however run's coroutine ends, destroyed at the loop's close included.
struct task_group_scope {
    task_group_state& state;
    ~task_group_scope() { state.drop(); }
};

// T for a body F called as F(task_group&) -> coro<T>; a readable error for anything else.
template <class C>
struct task_group_body_result {
    static_assert(dependent_false<C>,
                  "task_group::run: the body must return an ioloop::coro<T> (write the lambda "
                  "as [&](ioloop::task_group& tg) -> ioloop::coro<void> { ... })");
    using type = void;
};
template <class T>
struct task_group_body_result<coro<T>> {
    using type = T;
};
template <class F, bool = std::is_invocable_v<F&, task_group&>>
struct task_group_run_result {
    static_assert(dependent_false<F>, "task_group::run: the body must take a task_group&");
    using type = void;
};
template <class F>
struct task_group_run_result<F, true>
    : task_group_body_result<std::invoke_result_t<F&, task_group&>> {};

// What task_group::create_task takes besides a coro: a task or a future, which a child awaits.
template <class H>
inline constexpr bool joins_by_await = false;
template <class T>
inline constexpr bool joins_by_await<task<T>> = true;
template <class T>
inline constexpr bool joins_by_await<future<T>> = true;

}  // namespace detail

class task_group {
public:
    // Runs body(group) in the awaiting task, then waits until every task created in the
    // group is done. Returns the body's result; throws exception_group if a child or the
    // body failed (the other children are cancelled at the first failure), or
    // cancelled_error if the awaiting task was cancelled from outside.
    template <class F>
    static coro<typename detail::task_group_run_result<F>::type> run(F body);

    // A task of this group (asyncio's TaskGroup.create_task): scheduled now, awaited by
    // the group's scope. Throws invalid_state_error once the group is finished or shutting
    // down (a child failed, or the group was cancelled); the coroutine is then dropped.
    template <class T>
    task<T> create_task(coro<T> body, std::string name = {}) {
        return state_->create_task(std::move(body), std::move(name));
    }

    // A callable returning a coro (`tg.create_task([x]() -> coro<void> { ... })`): moved
    // into the task, so that it lives, with what it captured, as long as the coroutine it
    // made runs. (`tg.create_task([&]() -> coro<void> { ... }())`, the lambda called in
    // the expression, hands over a coroutine whose closure dies with the expression: pass
    // the lambda itself.)
    template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
    auto create_task(F&& fn, std::string name = {}) {
        static_assert(detail::coro_callable<F>,
                      "task_group::create_task: the callable must return an ioloop::coro<T> "
                      "(write the lambda as [x]() -> ioloop::coro<void> { ... })");
        return create_task(detail::call_kept(std::decay_t<F>(std::forward<F>(fn))),
                           std::move(name));
    }

    // A task or future made elsewhere (to_thread, run_in_executor) joins the group through
    // a child that awaits it: cancelling the child cancels it. One of another loop than the
    // running one throws invalid_state_error here, rather than in the child; and before the
    // handle is copied (taken by reference for that: a copy counts a reference).
    template <class H, class T = typename std::remove_cvref_t<H>::value_type>
    requires detail::joins_by_await<std::remove_cvref_t<H>>
    task<T> create_task(H&& work, std::string name = {}) {
        detail::check_running_loop(work, "task_group::create_task");
        return create_task(detail::await_owned(std::remove_cvref_t<H>(std::forward<H>(work))),
                           std::move(name));
    }

    task_group(const task_group& o) noexcept : state_(o.state_) { state_->add_ref(); }
    task_group& operator=(const task_group& o) noexcept {
        o.state_->add_ref();
        state_->release();
        state_ = o.state_;
        return *this;
    }
    ~task_group() { state_->release(); }

private:
    explicit task_group(detail::task_group_state* adopted) noexcept : state_(adopted) {}

    detail::task_group_state* state_;  // never null
};

template <class F>
coro<typename detail::task_group_run_result<F>::type> task_group::run(F body) {
    using R = typename detail::task_group_run_result<F>::type;
    // The body lives in this frame: a lambda's captures outlive its coroutine.
    task_group group(
        new detail::task_group_state(detail::current_task_or_throw("task_group::run")));
    detail::task_group_scope scope{*group.state_};
    std::exception_ptr body_error;
    detail::result_value<R> value;
    try {
        if constexpr (std::is_void_v<R>) {
            co_await body(group);
        } else {
            value.set(co_await body(group));
        }
    } catch (...) {
        body_error = std::current_exception();
    }
    co_await group.state_->close(std::move(body_error));
    if constexpr (std::is_void_v<R>) {
        co_return;
    } else {
        co_return std::move(value.get());
    }
}

IOLOOP_NAMESPACE_END

#endif
