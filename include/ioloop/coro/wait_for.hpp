// ioloop: wait_for (asyncio.wait_for, Python 3.12 semantics): await work with a time limit.
//
//   int n = co_await ioloop::wait_for(fetch(url), 5s);  // or a task, a future, shield(t)
//
// On timeout the work is cancelled and waited for, so that its cleanup has run when
// timeout_error comes out; if the awaiting task is cancelled, the work is cancelled too and
// cancelled_error comes out. As in CPython 3.12, wait_for is a timeout scope around one
// await: a coro runs inline in the current task (no task is made for it), a task or future
// is awaited (a cancel of the waiting task is passed on to it), and shield(t) lets the
// timeout end only the wait.
//
// A timeout of zero or less does not let the work start: a task or future already done
// gives its result; otherwise it is cancelled, waited for, and unless it caught the
// cancellation and finished anyway, timeout_error comes out. A coro is then made a task
// and cancelled before its first step: it never runs. shield(t) with t not done times out
// at once.
//
// wait_for returns a coro (one frame per call), like CPython's coroutine function.
#ifndef IOLOOP_CORO_WAIT_FOR_HPP
#define IOLOOP_CORO_WAIT_FOR_HPP

#include "ioloop/coro/awaitable.hpp"
#include "ioloop/coro/children.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/shield.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/timeout.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What wait_for accepts, held by value in its frame, and the result type it gives.
template <class A>
struct wait_for_arg {
    static constexpr bool valid = false;
};
template <class T>
struct wait_for_arg<coro<T>> {
    static constexpr bool valid = true;
    using value_type = T;
};
template <class T>
struct wait_for_arg<task<T>> {
    static constexpr bool valid = true;
    using value_type = T;
};
template <class T>
struct wait_for_arg<future<T>> {
    static constexpr bool valid = true;
    using value_type = T;
};
template <class H, bool M>
struct wait_for_arg<shielded<H, M>> {
    static constexpr bool valid = true;
    using value_type = typename wait_for_arg<H>::value_type;
};
template <>
struct wait_for_arg<any_task> {
    static constexpr bool valid = true;
    using value_type = void;
};

template <class A>
inline constexpr bool is_shielded = false;
template <class H, bool M>
inline constexpr bool is_shielded<shielded<H, M>> = true;

// A done handle's result (its exception or cancelled_error if it has none).
template <class T, bool Move, class H>
T result_of_done(H& h) {
    if constexpr (std::is_void_v<T>) {
        h.state()->rethrow_if_not_finished("wait_for");
    } else {
        return take_result<Move>(h);
    }
}

// The task or future a wait_for argument that is not a coro holds: itself, or a shield's.
template <class Held>
const auto& handle_of(const Held& held) noexcept {
    if constexpr (is_shielded<Held>) {
        return held.inner();
    } else {
        return held;
    }
}

// Timeout of zero or less (CPython's wait_for before its timeout scope).
template <class T, bool Move, class Held>
coro<T> wait_for_now(Held held) {
    if constexpr (is_coro_argument<Held>) {
        co_return co_await wait_for_now<T, true>(create_task(std::move(held)));
    } else if constexpr (is_shielded<Held>) {
        // Cancelling the shield's outer wait does not touch the work: unless it is done,
        // the wait times out.
        if (!held.inner().done()) throw timeout_error();
        co_return co_await std::move(held);
    } else {
        if (!held.done()) {
            held.cancel();
            // Waits for the cancelled work to finish; our own cancellation ends the wait.
            co_await shield_awaiter<Held, false, true>(held);
            if (held.cancelled()) throw timeout_error();
        }
        co_return result_of_done<T, Move>(held);
    }
}

template <class T, bool Move, class Held, class Rep, class Period>
coro<T> wait_for_impl(Held held, std::chrono::duration<Rep, Period> timeout) {
    // Before either path reads it (the one for a timeout of zero cancels it at once).
    if constexpr (!is_coro_argument<Held>) check_running_loop(handle_of(held), "wait_for");
    if (timeout <= timeout.zero()) co_return co_await wait_for_now<T, Move>(std::move(held));
    timeout_scope scope(timeout);  // counted from the await, as CPython's coroutine does
    if constexpr (Move) {
        co_return co_await scope.run(std::move(held));
    } else {
        co_return co_await scope.run(held);
    }
}

}  // namespace detail

// co_await wait_for(aw, timeout): aw's result, or timeout_error once aw was cancelled
// because the timeout passed. aw: a coro, a task, a future, or shield(x).
template <class A, class Rep, class Period>
requires detail::wait_for_arg<std::remove_cvref_t<A>>::valid auto wait_for(
    A&& aw, std::chrono::duration<Rep, Period> timeout) {
    using held = std::remove_cvref_t<A>;
    using T = typename detail::wait_for_arg<held>::value_type;
    static_assert(!detail::is_coro_argument<held> || !std::is_lvalue_reference_v<A>,
                  "wait_for: a coro runs once: pass std::move(c), or the call f() itself");
    constexpr bool move =
        detail::is_coro_argument<held> || detail::is_shielded<held> || detail::moves_result<A&&>;
    // A handle copied into the frame is checked first (a copy counts a reference), yet only
    // against a loop running here: wait_for returns a coro, which may be made outside any
    // loop (loop.run_until_complete(wait_for(t, 1s))). The await checks it again.
    if constexpr (std::is_lvalue_reference_v<A> && !detail::is_coro_argument<held>)
        detail::check_not_other_loop(detail::handle_of(aw), "wait_for");
    return detail::wait_for_impl<T, move>(held(std::forward<A>(aw)), timeout);
}

// Any other awaitable (a lock's acquire(), a queue's get(), a stream's readline()): a
// temporary is moved into the wait_for, which may then be kept and awaited later; a named
// one is awaited where it lies, and must outlive the wait_for.
template <class A, class Rep, class Period>
requires(!detail::wait_for_arg<std::remove_cvref_t<A>>::valid &&
         detail::awaitable<A>) auto wait_for(A&& aw, std::chrono::duration<Rep, Period> timeout) {
    return wait_for(detail::hold_awaitable(std::forward<A>(aw)), timeout);
}

IOLOOP_NAMESPACE_END

#endif
