// ioloop: what the combinators (gather, wait, as_completed, shield, wait_for) accept and
// how they watch it. Each argument becomes a handle: a coro is made a task, as asyncio's
// ensure_future wraps a coroutine, and a task or future is kept as given. A combinator
// watches its children through links that live in the combinator itself (one per child,
// no allocation per child) and tell it which child finished.
#ifndef IOLOOP_CORO_CHILDREN_HPP
#define IOLOOP_CORO_CHILDREN_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/future.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/detail/config.hpp"

#include <exception>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What a combinator keeps for an argument of type A (cv-ref removed): its handle type, and
// its result type if it has one (any_task and any_future only say when they are done).
template <class A>
struct child_of {
    static constexpr bool valid = false;
};
template <class T>
struct child_of<coro<T>> {
    static constexpr bool valid = true;
    static constexpr bool has_value = true;
    using handle = task<T>;
    using value_type = T;
};
template <class T>
struct child_of<task<T>> {
    static constexpr bool valid = true;
    static constexpr bool has_value = true;
    using handle = task<T>;
    using value_type = T;
};
template <class T>
struct child_of<future<T>> {
    static constexpr bool valid = true;
    static constexpr bool has_value = true;
    using handle = future<T>;
    using value_type = T;
};
template <>
struct child_of<any_task> {
    static constexpr bool valid = true;
    static constexpr bool has_value = false;
    using handle = any_task;
};
template <>
struct child_of<any_future> {
    static constexpr bool valid = true;
    static constexpr bool has_value = false;
    using handle = any_future;
};

template <class A>
concept child_awaitable = child_of<std::remove_cvref_t<A>>::valid;

template <class A>
concept valued_child =
    child_of<std::remove_cvref_t<A>>::valid && child_of<std::remove_cvref_t<A>>::has_value;

template <class A>
using child_handle = typename child_of<std::remove_cvref_t<A>>::handle;

template <class A>
using child_value = typename child_of<std::remove_cvref_t<A>>::value_type;

// The caller gave the argument up (an rvalue; a coro always is), so its result may be
// moved out of the task. An lvalue handle is shared with the caller: its result is copied.
template <class A>
inline constexpr bool moves_result = !std::is_lvalue_reference_v<A>;

template <class A>
inline constexpr bool is_coro_argument = false;
template <class T>
inline constexpr bool is_coro_argument<coro<T>> = true;

// A coro becomes a task on the running loop; a task or future handle is copied or moved.
template <class A>
child_handle<A> make_child(A&& a) {
    if constexpr (is_coro_argument<std::remove_cvref_t<A>>) {
        static_assert(!std::is_lvalue_reference_v<A>,
                      "a coro runs once: pass std::move(c), or the call f() itself");
        return create_task(std::move(a));
    } else {
        return child_handle<A>(std::forward<A>(a));
    }
}

// The handles of a vector of children: a vector of coros becomes a vector of tasks, made
// in order; a vector of handles is taken over as it is.
template <class A>
std::vector<child_handle<A>> handles_of(std::vector<A>&& aws) {
    if constexpr (is_coro_argument<A>) {
        std::vector<child_handle<A>> tasks;
        tasks.reserve(aws.size());
        for (A& c : aws) tasks.push_back(make_child(std::move(c)));
        return tasks;
    } else {
        return std::move(aws);
    }
}

// A child's result for a combinator: moved out if the combinator owns the only claim on
// it, copied otherwise. The child must have finished with a value.
template <bool Move, class H>
decltype(auto) take_result(H& h) {
    if constexpr (std::is_void_v<decltype(h.result())>) {
        h.result();  // only its exception, if any
    } else if constexpr (Move) {
        return std::move(h.result());
    } else {
        return h.result();
    }
}

// The exception a done child ended with (its cancelled_error if it was cancelled), or null
// if it finished with a value. Reading it marks it retrieved, as asyncio's exception() does.
inline std::exception_ptr error_of(future_base& s) noexcept {
    try {
        s.rethrow_if_not_finished("error_of");
    } catch (...) {
        return std::current_exception();
    }
    return nullptr;
}

// Sits on one child's list of waiters and tells the owner when that child is done. The
// owner keeps an array of them: the child is `state`, its position is the link's index.
template <class Owner>
class child_link final : public done_link {
public:
    void on_done() noexcept override { owner->child_done(*this); }

    void unlink() noexcept {
        if (linked()) state->remove_link(this);
    }

    Owner* owner = nullptr;
    future_base* state = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
