// ioloop: sleep(d) (asyncio.sleep): suspends the current task for at least d; sleep(0)
// yields to the loop for one iteration. Cancelling the task wakes it at once with
// cancelled_error.
#ifndef IOLOOP_CORO_SLEEP_HPP
#define IOLOOP_CORO_SLEEP_HPP

#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/handle.hpp"

#include <coroutine>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class sleep_awaiter final : public wait_point {
public:
    explicit sleep_awaiter(std::chrono::steady_clock::duration d) noexcept : delay_(d) {}
    // Before it is awaited (into a wait_for, a race): no timer is set yet.
    sleep_awaiter(sleep_awaiter&& o) noexcept : delay_(o.delay_) {}
    sleep_awaiter(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
    ~sleep_awaiter() { timer_.cancel(); }  // destroyed while asleep: the loop is closing

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("sleep");
        if (delay_.count() <= 0) {
            task_->suspend(h, this);
            task_->wake();
            return;
        }
        task_base* t = task_;
        timer_ = t->loop()->call_later(delay_, [t] { t->wake(); });
        task_->suspend(h, this);
    }

    void await_resume() { task_->throw_if_cancelled(); }

    void on_cancel(task_base& t) noexcept override {
        timer_.cancel();
        t.wake();
    }

private:
    std::chrono::steady_clock::duration delay_;
    task_base* task_ = nullptr;
    timer_handle timer_;
};

}  // namespace detail

// co_await sleep(d): the current task resumes once d has passed, never earlier.
template <class Rep, class Period>
detail::sleep_awaiter sleep(std::chrono::duration<Rep, Period> d) {
    // Saturates: sleep(hours::max()) is forever, not an overflow.
    return detail::sleep_awaiter(detail::saturating_ceil(d));
}

IOLOOP_NAMESPACE_END

#endif
