// ioloop: event (asyncio.Event), a flag that tasks wait for: set() wakes every waiter,
// in the order they started waiting, and later waits return at once until clear().
#ifndef IOLOOP_CORO_EVENT_HPP
#define IOLOOP_CORO_EVENT_HPP

#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"

IOLOOP_NAMESPACE_BEGIN

// Lives on its loop's thread, like everything a task touches; it must outlive the tasks
// that wait on it.
class event {
public:
    class wait_awaiter final : public detail::queued_wait {
    public:
        explicit wait_awaiter(event& e) noexcept : queued_wait(e.waiters_, "event::wait"), e_(e) {}
        bool await_ready() const noexcept { return e_.set_; }

    private:
        event& e_;
    };

    event() noexcept = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    bool is_set() const noexcept { return set_; }

    // Sets the flag and wakes every waiter. A waiter woken here returns from wait() even
    // if clear() is called before it runs (asyncio: its future is already done).
    void set() noexcept {
        if (set_) return;
        set_ = true;
        waiters_.wake_all();
    }

    void clear() noexcept { set_ = false; }

    // co_await e.wait(): returns at once if the flag is set, else when set() is called;
    // cancelled_error if the task is cancelled meanwhile.
    [[nodiscard]] wait_awaiter wait() noexcept { return wait_awaiter(*this); }

private:
    detail::waiter_queue waiters_;
    bool set_ = false;
};

IOLOOP_NAMESPACE_END

#endif
