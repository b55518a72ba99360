// ioloop: any awaitable made a coro, so that what takes a coro also takes what asyncio's
// functions take: `co_await wait_for(q.get(), 1s)`, `co_await timeout(1s, l.acquire())`,
// `tg.create_task(to_thread(f))`.
#ifndef IOLOOP_CORO_AWAITABLE_HPP
#define IOLOOP_CORO_AWAITABLE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"

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

// Awaits `aw` where it lies. The awaiters of the primitives and queues cannot be moved (they
// link themselves in place), so the coro refers to the caller's: it must be awaited
// within the full expression that made `aw`, as in `co_await wait_for(q.get(), 1s)`.
template <class Aw>
coro<await_result_t<Aw&>> await_in_place(Aw& aw) {
    co_return co_await aw;
}

// Awaits a handle the coro owns (a task, a future): safe to keep or to make a task.
template <class H>
coro<await_result_t<H>> await_owned(H handle) {
    co_return co_await std::move(handle);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
