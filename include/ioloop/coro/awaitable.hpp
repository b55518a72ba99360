// ioloop: any awaitable made a coro, so that what takes a coro also takes what asyncio's
// functions take: `co_await wait_for(q.get(), 1s)`, `co_await timeout(1s, l.acquire())`,
// `tg.create_task(to_thread(f))`.
#ifndef IOLOOP_CORO_AWAITABLE_HPP
#define IOLOOP_CORO_AWAITABLE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"

#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The awaiter `co_await aw` uses: aw's operator co_await, or aw itself.
template <class Aw>
decltype(auto) get_awaiter(Aw&& aw) {
    if constexpr (requires { std::forward<Aw>(aw).operator co_await(); }) {
        return std::forward<Aw>(aw).operator co_await();
    } else {
        return std::forward<Aw>(aw);
    }
}

template <class Aw>
concept awaitable = requires(Aw&& aw) {
    get_awaiter(std::forward<Aw>(aw)).await_ready();
    get_awaiter(std::forward<Aw>(aw)).await_resume();
};

template <class Aw>
using await_result_t = decltype(get_awaiter(std::declval<Aw>()).await_resume());

// What a coro that awaits Aw gives: a copy of a result given by reference (an lvalue
// task's, a shield's of a named task), since coro<T&> holds no reference.
template <class Aw>
using awaited_value_t = std::remove_cvref_t<await_result_t<Aw>>;

// Awaits `aw` where it lies: the caller named it (an lvalue), so it outlives the coro as
// long as the caller's scope does.
template <class Aw>
coro<awaited_value_t<Aw&>> await_in_place(Aw& aw) {
    co_return co_await aw;
}

// Awaits an awaitable moved into the coro's frame: the coro may be kept, moved, made a
// task; nothing it refers to was a temporary of the caller's expression.
template <class Aw>
coro<awaited_value_t<Aw>> await_value(Aw aw) {
    co_return co_await std::move(aw);
}

// Awaits a handle the coro owns (a task, a future): safe to keep or to make a task.
template <class H>
coro<await_result_t<H>> await_owned(H handle) {
    co_return co_await std::move(handle);
}

// What a wrapper (wait_for, timeout, race, create_task) makes of an awaitable that is not
// a coro, task or future: a named one (an lvalue) is awaited where it lies; a temporary is
// moved into the wrapper's frame, so that `auto w = wait_for(reader.readline(), 1s);
// co_await std::move(w);` refers to nothing dead. Every awaiter of the library can be
// moved until it is first awaited; one that cannot be moved is refused here, at compile
// time, rather than kept by reference past the end of its expression.
template <class A>
auto hold_awaitable(A&& aw) {
    if constexpr (std::is_lvalue_reference_v<A>) {
        return await_in_place(aw);
    } else if constexpr (!std::is_move_constructible_v<A>) {
        static_assert(dependent_false<A>,
                      "ioloop: this awaitable cannot be moved, so wait_for / timeout / race / "
                      "create_task cannot keep it alive past the expression that made it; name "
                      "it first (auto aw = ...; co_await ioloop::wait_for(aw, 1s);)");
    } else {
        return await_value(std::move(aw));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
