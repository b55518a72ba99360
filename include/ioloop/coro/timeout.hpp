// ioloop: timeout scopes (asyncio.timeout, timeout_at and their Timeout object): a
// deadline for a stretch of work in the current task.
//
//   co_await ioloop::timeout(2s, fetch(url));          // timeout_error after 2 s
//   co_await ioloop::timeout(2s, [&] { return step(); }); // a callable making the coro
//
//   ioloop::timeout_scope scope(2s);                   // asyncio's `async with ... as cm`
//   try {
//       co_await scope.run([&](ioloop::timeout_scope& s) -> ioloop::coro<void> {
//           co_await read_header();
//           s.reschedule(s.when() + 1s);              // more time for the body
//           co_await read_body();
//       });
//   } catch (const ioloop::timeout_error&) {
//       assert(scope.expired());
//   }
//
// C++ has no asynchronous destructor, so a scope cannot end at a closing brace: the work
// it covers is given to it as a body: a coro, a task or future, shield(x), or a callable
// returning a coro (called with the scope if it takes one; it is kept alive, with what it
// captured, as long as the coro it made runs). The scope is entered when the body is
// awaited, and the body runs inline in the current task, as asyncio's `async with` block.
//
// Semantics are asyncio's: at the deadline the scope cancels its task, and if the body
// then ends in cancelled_error the scope turns it into timeout_error. It counts with the
// task's cancel requests (cancelling() / uncancel()): a cancel from outside during the
// scope stays cancelled_error, and of nested scopes only the one that expired raises
// timeout_error. If the body catches the cancellation and finishes anyway, its result is
// returned and expired() is true.
#ifndef IOLOOP_CORO_TIMEOUT_HPP
#define IOLOOP_CORO_TIMEOUT_HPP

#include "ioloop/coro/awaitable.hpp"
#include "ioloop/coro/children.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/shield.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/handle.hpp"

#include <coroutine>
#include <cstddef>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class timeout_scope;

namespace detail {

template <class F, class Aw, bool Move>
class scoped_awaiter;

// now + delay on the loop's clock, saturated: a delay past the clock's range is no
// deadline at all.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> delay) {
    return saturating_deadline(std::chrono::steady_clock::now(), delay);
}

}  // namespace detail

class timeout_scope {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    // The deadline that never comes (asyncio's when=None).
    static constexpr time_point never() noexcept { return time_point::max(); }

    // A deadline at `when` on the loop's clock (asyncio.timeout_at).
    explicit timeout_scope(time_point when) noexcept : when_(when) {}

    // A deadline `delay` from now (asyncio.timeout: counted from when the scope is made).
    template <class Rep, class Period>
    explicit timeout_scope(std::chrono::duration<Rep, Period> delay)
        : when_(detail::deadline_after(delay)) {}

    // The scope's timer refers to it: it stays where it was made.
    timeout_scope(const timeout_scope&) = delete;
    timeout_scope& operator=(const timeout_scope&) = delete;
    ~timeout_scope() { timer_.cancel(); }

    time_point when() const noexcept { return when_; }

    // Moves the deadline (never() removes it); a past deadline expires on the next
    // iteration. Only while the body runs and before the scope expired, as asyncio.
    void reschedule(time_point when) {
        if (state_ != state::entered) {
            throw invalid_state_error(state_ == state::created
                                          ? "reschedule: the timeout scope has not been entered"
                                          : "reschedule: the timeout scope has expired or ended");
        }
        when_ = when;
        timer_.cancel();
        arm();
    }

    // The deadline passed while the body ran (the scope cancelled it).
    bool expired() const noexcept { return state_ == state::expiring || state_ == state::expired; }

    // co_await scope.run(body): runs the body under the deadline; its result, or
    // timeout_error if the deadline cancelled it. A scope runs once.
    template <class Body>
    auto run(Body&& body) &;

private:
    template <class F, class Aw, bool Move>
    friend class detail::scoped_awaiter;

    enum class state : unsigned char { created, entered, expiring, expired, exited };

    // asyncio's __aenter__: the task, its cancel requests so far, the timer.
    void enter() {
        if (state_ != state::created)
            throw invalid_state_error("timeout: a timeout scope is entered once");
        detail::task_base& t = detail::current_task_or_throw("timeout");
        task_ = &t;
        cancelling_ = t.cancelling();
        state_ = state::entered;
        arm();
    }

    // asyncio's __aexit__: true if the scope's own expiry cancelled the body and no other
    // cancel is pending, so a cancelled_error leaving the body becomes timeout_error.
    bool leave() noexcept {
        timer_.cancel();
        if (state_ == state::expiring) {
            state_ = state::expired;
            return task_->uncancel() <= cancelling_;
        }
        if (state_ == state::entered) state_ = state::exited;
        return false;
    }

    void arm() {
        if (when_ == never()) return;
        timer_ = task_->loop()->call_at(when_, [this] { expire(); });
    }

    void expire() noexcept {
        state_ = state::expiring;
        task_->cancel();
    }

    time_point when_;
    detail::task_base* task_ = nullptr;
    std::size_t cancelling_ = 0;
    timer_handle timer_;
    state state_ = state::created;
};

namespace detail {

struct no_callable {};
struct direct_body {};
struct callable_body {};

// A body given to a timeout scope: F is the callable kept alive (or no_callable), Aw the
// awaitable (a coro, a task or future handle, shield(x)), Move whether its result is moved
// out. Entering happens in await_suspend, leaving in await_resume.
// The awaiter of an awaitable, taken from an rvalue (the result may be moved out) or from
// an lvalue (the result is referenced).
template <class Aw, bool Move>
struct awaiter_of {
    using type = decltype(std::declval<Aw&&>().operator co_await());
};
template <class Aw>
struct awaiter_of<Aw, false> {
    using type = decltype(std::declval<Aw&>().operator co_await());
};

template <class F, class Aw, bool Move>
class [[nodiscard]] scoped_awaiter {
    using inner_type = typename awaiter_of<Aw, Move>::type;
    using result = decltype(std::declval<inner_type&>().await_resume());

public:
    template <class B>
    scoped_awaiter(timeout_scope& scope, direct_body, B&& body)
        : scope_(scope), aw_(std::forward<B>(body)), inner_(awaiter()) {}

    template <class B>
    scoped_awaiter(timeout_scope& scope, callable_body, B&& fn)
        : scope_(scope), fn_(std::forward<B>(fn)), aw_(call(fn_, scope)), inner_(awaiter()) {}

    scoped_awaiter(const scoped_awaiter&) = delete;
    scoped_awaiter& operator=(const scoped_awaiter&) = delete;

    bool await_ready() const noexcept { return false; }

    bool await_suspend(std::coroutine_handle<> h) {
        scope_.enter();
        try {
            if (inner_.await_ready()) return false;
            using suspend_result = decltype(inner_.await_suspend(h));
            if constexpr (std::is_void_v<suspend_result>) {
                inner_.await_suspend(h);
                return true;
            } else {
                static_assert(std::is_same_v<suspend_result, bool>);
                return inner_.await_suspend(h);
            }
        } catch (...) {
            scope_.leave();
            throw;
        }
    }

    result await_resume() {
        try {
            if constexpr (std::is_void_v<result>) {
                inner_.await_resume();
                scope_.leave();
            } else {
                result r = inner_.await_resume();
                scope_.leave();
                return std::forward<result>(r);
            }
        } catch (const cancelled_error&) {
            if (scope_.leave()) throw timeout_error();
            throw;
        } catch (...) {
            scope_.leave();
            throw;
        }
    }

private:
    inner_type awaiter() {
        if constexpr (Move) {
            return std::move(aw_).operator co_await();
        } else {
            return aw_.operator co_await();
        }
    }

    static decltype(auto) call(F& fn, timeout_scope& scope) {
        if constexpr (std::is_invocable_v<F&, timeout_scope&>) {
            return fn(scope);
        } else {
            return fn();
        }
    }

    timeout_scope& scope_;
    [[no_unique_address]] F fn_;
    Aw aw_;
    inner_type inner_;
};

// How a body of type B (as forwarded) is held.
template <class B, class D = std::remove_cvref_t<B>>
struct body_traits {
    // A callable returning a coro.
    using fn_result =
        std::conditional_t<std::is_invocable_v<D&, timeout_scope&>,
                           std::invoke_result<D&, timeout_scope&>, std::invoke_result<D&>>;
    using made = typename fn_result::type;
    static_assert(is_coro_argument<made>,
                  "timeout: the body is a coro, a task, a future, shield(x), or a callable "
                  "returning a coro (called with the timeout_scope& if it takes one)");
    using type = scoped_awaiter<D, made, true>;
    using tag = callable_body;
};
template <class B, class T>
struct body_traits<B, coro<T>> {
    using type = scoped_awaiter<no_callable, coro<T>, true>;
    using tag = direct_body;
};
template <class B, class T>
struct body_traits<B, task<T>> {
    using type = scoped_awaiter<no_callable, task<T>, moves_result<B>>;
    using tag = direct_body;
};
template <class B, class T>
struct body_traits<B, future<T>> {
    using type = scoped_awaiter<no_callable, future<T>, moves_result<B>>;
    using tag = direct_body;
};
template <class B>
struct body_traits<B, any_task> {
    using type = scoped_awaiter<no_callable, any_task, false>;
    using tag = direct_body;
};
template <class B, class H, bool M>
struct body_traits<B, shielded<H, M>> {
    using type = scoped_awaiter<no_callable, shielded<H, M>, true>;
    using tag = direct_body;
};

// A body that is none of the above but can be awaited (a lock's acquire(), a queue's
// get()): a temporary is moved into the scope's coro, a named one awaited where it lies.
template <class D>
inline constexpr bool is_handle_body = is_coro_argument<D>;
template <class T>
inline constexpr bool is_handle_body<task<T>> = true;
template <class T>
inline constexpr bool is_handle_body<future<T>> = true;
template <>
inline constexpr bool is_handle_body<any_task> = true;
template <class H, bool M>
inline constexpr bool is_handle_body<shielded<H, M>> = true;

template <class B, class D = std::remove_cvref_t<B>>
concept in_place_body = !is_handle_body<D> && !std::is_invocable_v<D&> &&
                        !std::is_invocable_v<D&, timeout_scope&> && awaitable<B>;

// A task or future body of another loop is refused before the scope copies the handle (a
// copy counts a reference, which is that loop's thread's to count): only against a loop
// running here, like shield(x); the body's co_await checks it fully.
template <class B>
void check_body_loop(const B& body) {
    if constexpr (std::is_base_of_v<any_future, std::remove_cvref_t<B>>)
        check_not_other_loop(body, "timeout");
}

// What ioloop::timeout returns: the scope and its body, awaited once.
template <class Scoped>
class [[nodiscard]] timeout_awaiter {
public:
    template <class Tag, class B>
    timeout_awaiter(timeout_scope::time_point when, Tag tag, B&& body)
        : scope_(when), run_(scope_, tag, std::forward<B>(body)) {}

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) { return run_.await_suspend(h); }
    decltype(auto) await_resume() { return run_.await_resume(); }

private:
    timeout_scope scope_;
    Scoped run_;
};

}  // namespace detail

template <class Body>
auto timeout_scope::run(Body&& body) & {
    if constexpr (detail::in_place_body<Body>) {
        return run(detail::hold_awaitable(std::forward<Body>(body)));
    } else {
        detail::check_body_loop(body);
        using traits = detail::body_traits<Body&&>;
        return typename traits::type(*this, typename traits::tag{}, std::forward<Body>(body));
    }
}

// co_await timeout_at(when, body): body's result, or timeout_error once `when` passed.
template <class Body>
auto timeout_at(timeout_scope::time_point when, Body&& body) {
    if constexpr (detail::in_place_body<Body>) {
        return timeout_at(when, detail::hold_awaitable(std::forward<Body>(body)));
    } else {
        detail::check_body_loop(body);
        using traits = detail::body_traits<Body&&>;
        return detail::timeout_awaiter<typename traits::type>(when, typename traits::tag{},
                                                              std::forward<Body>(body));
    }
}

// co_await timeout(delay, body): body's result, or timeout_error after `delay`.
template <class Rep, class Period, class Body>
auto timeout(std::chrono::duration<Rep, Period> delay, Body&& body) {
    return timeout_at(detail::deadline_after(delay), std::forward<Body>(body));
}

IOLOOP_NAMESPACE_END

#endif
