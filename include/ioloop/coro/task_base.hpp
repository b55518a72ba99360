// ioloop: the untyped part of a task (asyncio's Task): a future whose result comes from a
// coroutine, stepped by the loop. A step resumes the coroutine where it last suspended;
// an awaiter that suspends a task says so with suspend(), and wake() schedules the next
// step. cancel() reaches the awaiter the task waits in (its wait_point), so that
// cancelled_error is thrown right there.
#ifndef IOLOOP_CORO_TASK_BASE_HPP
#define IOLOOP_CORO_TASK_BASE_HPP

#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/task_registry.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class task_base;
class coro_promise_base;  // coro/coro.hpp

// The task whose step runs on this thread now, if any.
inline thread_local task_base* current_task = nullptr;

// Where a coroutine was defined, for reports: captured by its promise's constructor.
struct coroutine_origin {
    const char* function = "";
    const char* file = "";
    std::uint32_t line = 0;

    // As a default argument, evaluated where the call is: in a promise's constructor, that
    // is inside the coroutine itself.
    static constexpr coroutine_origin here(const char* function = __builtin_FUNCTION(),
                                           const char* file = __builtin_FILE(),
                                           std::uint32_t line = __builtin_LINE()) noexcept {
        return {function, file, line};
    }
};

// A coroutine_origin as a base class, so that the class's own members fill its last 4 bytes
// (a member of type coroutine_origin keeps them as padding): task_state<void> is 152 bytes
// instead of 160, a size step of the allocator less.
class origin_holder {
public:
    explicit origin_holder(coroutine_origin o) noexcept
        : function_(o.function), file_(o.file), line_(o.line) {}
    coroutine_origin origin() const noexcept { return {function_, file_, line_}; }

private:
    const char* function_;
    const char* file_;
    std::uint32_t line_;
};

// Where a suspended task waits: the awaiter that suspended it.
class wait_point {
public:
    // The task was cancelled while it waits here. Either stop waiting and wake the task
    // (it then throws cancelled_error where it waits), or pass the cancellation on to
    // what it awaits and call t.cancel_passed_on() (an awaited task or future, which
    // wakes the task once it is done).
    virtual void on_cancel(task_base& t) noexcept = 0;

protected:
    ~wait_point() = default;
};

class task_base : public future_base,
                  public registered_task,
                  private embedded_node,
                  private origin_holder {
public:
    task_base(loop_base& loop, std::coroutine_handle<> body, coroutine_origin origin)
        : future_base(loop),
          registered_task(),
          embedded_node(&run_step),
          origin_holder(origin),
          body_(body),
          resume_at_(body),
          id_(loop_access::next_task_id(loop)) {}

    // Links the task into its loop and schedules its first step, or (eager) takes it now,
    // up to the coroutine's first suspension. The loop's list keeps a reference until the
    // task is done.
    void start(bool eager = false) {
        loop_base& l = *loop();
        add_ref();
        loop_access::tasks(l).link(
            this, [](registered_task* r) noexcept { static_cast<task_base*>(r)->abandon_now(); });
        if (eager) {
            step();
            return;
        }
        scheduled_ = true;
        loop_access::schedule(l, step_node());
    }

    // ---- the awaiter protocol ---------------------------------------------------------

    // From await_suspend: the task suspends in `at`, waiting in `w` (null if what it
    // waits for cannot be interrupted). A cancel requested while the task ran is
    // delivered here, at the first suspension point after it.
    void suspend(std::coroutine_handle<> at, wait_point* w) noexcept {
        resume_at_ = at;
        wait_ = w;
        if (must_cancel_ && w) interrupt(w);
    }

    // What the task waits for happened (or the wait was cancelled): the next step runs
    // on a later iteration. Waking a task that is already scheduled does nothing.
    void wake() noexcept {
        wait_ = nullptr;
        if (scheduled_) return;
        scheduled_ = true;
        if (loop_base* l = loop()) loop_access::schedule(*l, step_node());
    }

    // From await_resume: true once if a cancel is to be thrown at this suspension point.
    // An awaiter that must undo something first (hand back a lock it was granted) calls
    // this; the others call throw_if_cancelled().
    bool take_cancel() noexcept {
        const bool cancel = must_cancel_ || interrupted_;
        must_cancel_ = interrupted_ = false;
        return cancel;
    }

    void throw_if_cancelled() {
        if (take_cancel()) throw cancellation();
    }

    // For a wait_point that passed the cancellation on (see wait_point::on_cancel).
    void cancel_passed_on() noexcept { must_cancel_ = false; }

    // ---- asyncio's Task interface -----------------------------------------------------

    // Requests cancellation: cancelled_error is thrown where the task waits, or at its next
    // suspension point if it is running. False if the task is already done.
    bool cancel() noexcept override {
        if (done()) return false;
        ++cancel_requests_;
        must_cancel_ = true;
        if (wait_point* w = wait_) interrupt(w);
        return true;
    }

    // cancel() with a message, which the cancelled_error thrown where the task waits carries
    // (asyncio's Task.cancel(msg)); the last message given wins.
    bool cancel_with(std::string msg) override {
        if (done()) return false;
        extras().cancel_message = std::move(msg);
        return cancel();
    }

    // The message of the last cancel(msg), or empty.
    const std::string* cancel_message() const noexcept {
        return extras_ && !extras_->cancel_message.empty() ? &extras_->cancel_message : nullptr;
    }

    // The cancelled_error a cancel of this task throws: with cancel(msg)'s message, if any.
    cancelled_error cancellation() const {
        const std::string* msg = cancel_message();
        return msg ? cancelled_error(*msg) : cancelled_error();
    }

    // Pending cancel requests (asyncio's Task.cancelling()).
    std::size_t cancelling() const noexcept { return cancel_requests_; }

    // Withdraws one cancel request (asyncio's Task.uncancel()); returns those left. When
    // none are left, a cancel not yet delivered is dropped too; a wait it already ended
    // still ends in cancelled_error.
    std::size_t uncancel() noexcept {
        if (cancel_requests_ > 0 && --cancel_requests_ == 0) must_cancel_ = false;
        return cancel_requests_;
    }

    std::string get_name() const {
        return extras_ && extras_->named ? extras_->name
                                         : concat({"Task-", decimal(static_cast<long long>(id_))});
    }
    void set_name(std::string name) {
        extras().name = std::move(name);
        extras_->named = true;
    }

    // "task Task-3 (coroutine fetch at app.cpp:12)"
    std::string describe() const override {
        const coroutine_origin o = origin();
        return concat({"task ", get_name(), " (coroutine ", o.function, " at ", o.file, ":",
                       decimal(static_cast<long long>(o.line)), ")"});
    }

    // Called by the task's coroutine when its body has returned or thrown, from its final
    // suspension: takes the result, destroys the coroutine, finishes the task.
    virtual void body_finished() noexcept = 0;

    // The promise of the task's own coroutine, until it finishes (the top of its stack).
    virtual const coro_promise_base* body_promise() const noexcept = 0;

protected:
    ~task_base() override {
        delete extras_;
        if (body_) body_.destroy();
    }

    // The body is over: the task is done and leaves its loop's list (and its reference).
    void complete(status s) noexcept {
        if (body_) std::exchange(body_, nullptr).destroy();
        if (loop_base* l = loop()) loop_access::tasks(*l).unlink(this);
        finish(s);
        release();
    }

private:
    // The first member: it fills the 4 bytes origin_holder leaves (see there).
    std::uint32_t cancel_requests_ = 0;

protected:
    std::coroutine_handle<> body_;  // the task's own coroutine, until it finishes

private:
    // The node the loop queues to run the next step: the task's own (embedded_node is a
    // base), queued by wake(). A pending task is alive (its loop's list holds it), so the
    // queue needs no reference.
    embedded_node* step_node() noexcept { return this; }

    // The step node's function. It describes the task for debug reports.
    static void run_step(embedded_node& node, std::string* describe) noexcept {
        auto& t = static_cast<task_base&>(node);
        if (describe) {
            *describe = t.describe();
        } else {
            t.step();
        }
    }

    void step() noexcept {
        scheduled_ = false;
        add_ref();  // finishing drops the list's reference: stay alive until the step ends
        task_base* outer = std::exchange(current_task, this);
        if (!started_ && must_cancel_) {
            // Cancelled before its first step: nothing of the body runs.
            must_cancel_ = false;
            error_ = std::make_exception_ptr(cancellation());
            complete(status::cancelled);
        } else {
            started_ = true;
            resume_at_.resume();
        }
        current_task = outer;
        release();
    }

    // Delivers a cancel to the wait the task is in. If the wait ended because of it (the
    // task was woken, the cancel not passed on), that wait throws cancelled_error even if
    // the cancel is withdrawn before the task resumes: what it waited for did not happen.
    void interrupt(wait_point* w) noexcept {
        w->on_cancel(*this);
        if (!wait_ && must_cancel_) interrupted_ = true;
    }

    // The loop is closing with the task unfinished (the list already dropped it): its
    // coroutine is destroyed where it waits, and it counts as cancelled.
    void abandon_now() noexcept {
        wait_ = nullptr;
        if (body_) std::exchange(body_, nullptr).destroy();
        error_ = std::make_exception_ptr(
            cancelled_error("the event loop closed before the task finished"));
        finish(status::cancelled);
        release();
    }

    // What few tasks have, kept apart so that the others carry one pointer for it.
    struct task_extras {
        std::string name;            // set_name's
        std::string cancel_message;  // cancel(msg)'s
        bool named = false;
    };
    task_extras& extras() {
        if (!extras_) extras_ = new task_extras();
        return *extras_;
    }

    std::coroutine_handle<> resume_at_;  // where the next step resumes
    wait_point* wait_ = nullptr;
    task_extras* extras_ = nullptr;
    std::uint64_t id_;
    bool must_cancel_ = false;  // a cancel to throw at the next suspension point
    bool interrupted_ = false;  // the current wait was ended by a cancel
    bool scheduled_ = false;
    bool started_ = false;
};

// The task that runs the caller; `what` names the caller in the error outside a task.
inline task_base& current_task_or_throw(const char* what) {
    if (!current_task) throw invalid_state_error(concat({what, ": not inside a task"}));
    return *current_task;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
