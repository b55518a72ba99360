// ioloop: future<T> (asyncio's Future), a result that someone sets later, and any_future,
// what every future and task offers whatever its result type. Both are counted
// references to a state on the loop's thread; awaiting one suspends the current task
// until it is done. Awaiting an lvalue gives a reference to the result (several tasks
// may await it); awaiting an rvalue moves the result out.
#ifndef IOLOOP_CORO_FUTURE_HPP
#define IOLOOP_CORO_FUTURE_HPP

#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/result_value.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class future_state final : public future_base {
public:
    using future_base::future_base;
    result_value<T>& value() noexcept { return value_; }

private:
    result_value<T> value_;
};

// Suspends the current task until the future (or task) is done; a cancel of the waiting
// task is passed on to what it awaits, as asyncio does. The result is moved out (Move),
// referenced, or not taken at all (Discard: only the exception comes out).
template <class State, bool Move, bool Discard = false>
class future_awaiter final : public done_link, public wait_point {
public:
    // A future of another loop is refused before it is counted (its loop may run on
    // another thread), so the awaiter is not made and nothing is released either.
    explicit future_awaiter(State* s) : state_(s) {
        s->check_running_loop("co_await", std::is_base_of_v<task_base, State> ? "task" : "future");
        state_->add_ref();
    }
    future_awaiter(const future_awaiter&) = delete;
    future_awaiter& operator=(const future_awaiter&) = delete;
    ~future_awaiter() {
        state_->remove_link(this);
        state_->release();
    }

    bool await_ready() const noexcept { return state_->done(); }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("co_await");
        if (static_cast<future_base*>(task_) == static_cast<future_base*>(state_))
            throw invalid_state_error("co_await: a task cannot await itself");
        state_->add_link(this);
        task_->suspend(h, this);
    }

    decltype(auto) await_resume() {
        if (task_) task_->throw_if_cancelled();
        state_->rethrow_if_not_finished("co_await");
        if constexpr (!Discard) return take_value();
    }

    void on_done() noexcept override { task_->wake(); }

    void on_cancel(task_base& t) noexcept override {
        // The task's cancel(msg) message goes on to what it awaits, as in asyncio.
        // (Out of memory for the message's copy: the cancel goes on without it.)
        const std::string* msg = t.cancel_message();
        bool passed = false;
        try {
            passed = msg ? state_->cancel_with(*msg) : state_->cancel();
        } catch (...) {
            passed = state_->cancel();
        }
        if (passed) t.cancel_passed_on();
    }

private:
    // By value when moved out: the awaiter, and maybe the state, die with the expression.
    decltype(auto) take_value() {
        using T = std::remove_reference_t<decltype(state_->value().get())>;
        if constexpr (Move && !std::is_void_v<T>) {
            return T(std::move(state_->value().get()));
        } else {
            return state_->value().get();
        }
    }

    State* state_;
    task_base* task_ = nullptr;
};

// Numbers the done callbacks of this thread, from 1 (remove_done_callback tells them apart).
inline thread_local std::uint64_t last_callback_number = 0;

// A done callback: runs on the loop, like a call_soon made when the future finished.
template <class Handle, class F>
class callback_link final : public done_link {
public:
    explicit callback_link(F&& fn) : fn_(std::move(fn)), number_(++last_callback_number) {}

    std::uint64_t callback_number() const noexcept override { return number_; }

    void on_done() noexcept override { post_or_delete(); }
    void on_future_destroyed() noexcept override { delete this; }

    // The future is already done: the callback is scheduled at once.
    void schedule_now(future_base* state) noexcept {
        state_ = state;
        post_or_delete();
    }

    void bind(future_base* state) noexcept { state_ = state; }

private:
    // Owns the link, and a reference to the future, until it has run.
    struct run {
        callback_link* link;
        Handle handle;
        run(run&& o) noexcept : link(std::exchange(o.link, nullptr)), handle(std::move(o.handle)) {}
        run(callback_link* l, Handle h) noexcept : link(l), handle(std::move(h)) {}
        run(const run&) = delete;
        run& operator=(const run&) = delete;
        run& operator=(run&&) = delete;
        ~run() { delete link; }
        void operator()() {
            if constexpr (std::is_invocable_v<F&, Handle&>) {
                link->fn_(handle);
            } else {
                link->fn_();
            }
        }
    };

    void post_or_delete() noexcept {
        loop_base* l = state_->loop();
        if (!l || l->is_closed()) {
            delete this;
            return;
        }
        state_->add_ref();
        loop_access::post(*l, run(this, Handle(state_)));
    }

    F fn_;
    future_base* state_ = nullptr;
    std::uint64_t number_;
};

}  // namespace detail

// What add_done_callback returns: names the callback to remove_done_callback.
class done_callback {
public:
    done_callback() noexcept = default;

private:
    friend class any_future;
    done_callback(const void* link, std::uint64_t number) noexcept : link_(link), number_(number) {}
    const void* link_ = nullptr;
    std::uint64_t number_ = 0;
};

class any_future {
public:
    any_future() noexcept = default;
    any_future(const any_future& o) noexcept : state_(o.state_) {
        if (state_) state_->add_ref();
    }
    any_future(any_future&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
    any_future& operator=(any_future o) noexcept {
        std::swap(state_, o.state_);
        return *this;
    }
    ~any_future() {
        if (state_) state_->release();
    }

    // False for a default-constructed or moved-from handle.
    explicit operator bool() const noexcept { return state_ != nullptr; }

    bool done() const noexcept { return state_->done(); }
    bool cancelled() const noexcept { return state_->cancelled(); }

    // A future is cancelled at once; a task gets cancelled_error where it waits. False if
    // already done.
    // Takes back a callback add_done_callback added, if it has not been scheduled yet
    // (asyncio's remove_done_callback): 1 if it was, else 0. C++ callables have no identity
    // to compare, so the callback is named by what add_done_callback returned.
    std::size_t remove_done_callback(done_callback c) noexcept {
        return state_->remove_callback(c.link_, c.number_) ? 1 : 0;
    }

    bool cancel() noexcept { return state_->cancel(); }
    // The same, and the cancelled_error carries msg (asyncio's cancel(msg)).
    bool cancel(std::string msg) { return state_->cancel_with(std::move(msg)); }

    // The exception it failed with, or null; throws cancelled_error if it was cancelled
    // and invalid_state_error if it is not done.
    std::exception_ptr exception() const { return state_->exception(); }

    // Same state: the same future or task.
    friend bool operator==(const any_future& a, const any_future& b) noexcept {
        return a.state_ == b.state_;
    }

    // Adopts one reference the caller counted.
    explicit any_future(detail::future_base* adopted) noexcept : state_(adopted) {}

    detail::future_base* state() const noexcept { return state_; }

protected:
    // fn() or fn(self) runs on the loop once the future is done (at once if it is).
    template <class Handle, class F>
    done_callback add_done_callback_as(F&& fn) {
        using link = detail::callback_link<Handle, std::decay_t<F>>;
        auto* l = new link(std::decay_t<F>(std::forward<F>(fn)));
        const done_callback added{l, l->callback_number()};
        if (state_->done()) {
            l->schedule_now(state_);
        } else {
            l->bind(state_);
            state_->add_link(l);
        }
        return added;
    }

    detail::future_base* state_ = nullptr;
};

template <class T = void>
class future : public any_future {
public:
    using value_type = T;
    using any_future::any_future;

    // The value; throws what the future failed with, cancelled_error if it was cancelled,
    // invalid_state_error if it is not done yet.
    std::add_lvalue_reference_t<T> result() {
        typed()->rethrow_if_not_finished("result");
        return typed()->value().get();
    }

    template <class U = T>
    void set_result(U&& v) {
        check_pending("set_result");
        typed()->value().set(std::forward<U>(v));
        finish();
    }

    void set_result() requires std::is_void_v<T> {
        check_pending("set_result");
        typed()->value().set();
        finish();
    }

    void set_exception(std::exception_ptr e) { typed()->set_exception(std::move(e)); }

    // fn() or fn(future<T>&) runs on the loop once the future is done.
    template <class F>
    done_callback add_done_callback(F&& fn) {
        return add_done_callback_as<future>(std::forward<F>(fn));
    }

    // Throws invalid_state_error if the future belongs to another loop than the running one.
    auto operator co_await() & {
        return detail::future_awaiter<detail::future_state<T>, false>(typed());
    }
    auto operator co_await() && {
        return detail::future_awaiter<detail::future_state<T>, true>(typed());
    }

private:
    detail::future_state<T>* typed() const noexcept {
        return static_cast<detail::future_state<T>*>(state_);
    }
    void check_pending(const char* what) const {
        if (state_->done())
            throw invalid_state_error(detail::concat({what, ": the future is already done"}));
    }
    void finish() noexcept { state_->set_finished(); }
};

template <class T>
future<T> loop_base::create_future() {
    check_open("create_future");
    return future<T>(new detail::future_state<T>(*this));
}

IOLOOP_NAMESPACE_END

#endif
