// ioloop: shield (asyncio.shield), await work without letting a cancellation reach it.
//
//   int r = co_await ioloop::shield(save(record));  // save goes on if this task is cancelled
//
// If the awaiting task is cancelled, it gets cancelled_error at once and the inner task
// keeps running (keep its handle to await it again later); if the inner task is cancelled
// itself, the awaiter gets cancelled_error too. A coro is made a task first, as asyncio
// does, so that it has somewhere to go on running.
//
// shield(x) is an awaitable for one co_await (asyncio returns a new future): it costs no
// task and no allocation. It can also be given to wait_for or a timeout scope, asyncio's
// `wait_for(shield(t), d)`: on timeout the wait ends and t goes on.
#ifndef IOLOOP_CORO_SHIELD_HPP
#define IOLOOP_CORO_SHIELD_HPP

#include "ioloop/coro/children.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"

#include <coroutine>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Suspends the current task until the future h is done. A cancel of the waiting task ends
// only the wait (asyncio's shield, and _cancel_and_wait in wait_for). The result is moved
// out (Move) or referenced; a handle without a result gives only its exception; Discard
// only waits (nothing is thrown but the waiting task's own cancellation).
template <class H, bool Move, bool Discard = false>
class shield_awaiter final : public done_link, public wait_point {
public:
    // Refuses a task or future of another loop before reading it or linking to it.
    explicit shield_awaiter(H h) : inner_(std::move(h)) { check_running_loop(inner_, "shield"); }
    shield_awaiter(const shield_awaiter&) = delete;
    shield_awaiter& operator=(const shield_awaiter&) = delete;
    ~shield_awaiter() { inner_.state()->remove_link(this); }

    bool await_ready() const noexcept { return inner_.done(); }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("shield");
        if (static_cast<future_base*>(task_) == inner_.state())
            throw invalid_state_error("shield: a task cannot await itself");
        inner_.state()->add_link(this);
        task_->suspend(h, this);
    }

    decltype(auto) await_resume() {
        if (task_) task_->throw_if_cancelled();
        if constexpr (Discard) {
            return;
        } else if constexpr (!child_of<H>::has_value) {
            inner_.state()->rethrow_if_not_finished("shield");
        } else {
            return take_result<Move>(inner_);
        }
    }

    void on_done() noexcept override { task_->wake(); }

    void on_cancel(task_base& t) noexcept override {
        inner_.state()->remove_link(this);
        t.wake();
    }

private:
    H inner_;
    task_base* task_ = nullptr;
};

}  // namespace detail

// What shield(x) returns: the handle of the shielded work, awaited once.
template <class H, bool Move>
class [[nodiscard]] shielded {
public:
    explicit shielded(H inner) noexcept : inner_(std::move(inner)) {}

    // The shielded task or future, until the co_await takes it over.
    const H& inner() const noexcept { return inner_; }

    // Throws invalid_state_error if the work belongs to another loop than the running one.
    auto operator co_await() && { return detail::shield_awaiter<H, Move>(std::move(inner_)); }

private:
    H inner_;
};

// co_await shield(x): x's result; cancelling the awaiting task does not cancel x.
template <class A>
requires detail::child_awaitable<A> shielded<detail::child_handle<A>, detail::moves_result<A&&>>
shield(A&& aw) {
    // A handle the shield copies is checked first (a copy counts a reference), yet only
    // against a loop running here: shield(t) may be made outside any loop, for
    // loop.run_until_complete(wait_for(shield(t), 1s)). The co_await checks it again.
    if constexpr (std::is_lvalue_reference_v<A> &&
                  !detail::is_coro_argument<std::remove_cvref_t<A>>)
        detail::check_not_other_loop(aw, "shield");
    return shielded<detail::child_handle<A>, detail::moves_result<A&&>>(
        detail::make_child(std::forward<A>(aw)));
}

IOLOOP_NAMESPACE_END

#endif
