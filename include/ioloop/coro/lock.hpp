// ioloop: lock (asyncio.Lock), mutual exclusion between tasks, served first come, first
// served. As in asyncio 3.12, release() does not hand the lock over: it wakes the first
// waiter, which takes the lock when it runs. Meanwhile locked() is false, yet a task that
// arrives queues behind the woken one instead of slipping in; and if the woken waiter is
// cancelled before it runs, it wakes the next one, so nobody is left waiting on a free
// lock.
#ifndef IOLOOP_CORO_LOCK_HPP
#define IOLOOP_CORO_LOCK_HPP

#include "ioloop/coro/acquirable.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

IOLOOP_NAMESPACE_BEGIN

// Not owned by a task (asyncio's isn't either): any task may release it. Lives on its
// loop's thread and must outlive the tasks that wait on it.
class lock : public acquirable<lock> {
public:
    lock() noexcept = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

    bool locked() const noexcept { return locked_; }

    // Unlocks and wakes the first waiter. invalid_state_error if the lock is not locked
    // (asyncio raises RuntimeError).
    void release() {
        if (!locked_) throw invalid_state_error("lock::release: the lock is not locked");
        locked_ = false;
        wake_first();
    }

private:
    friend class detail::acquire_wait<lock>;
    static constexpr const char* acquire_name = "lock::acquire";  // in errors

    // Free and nobody queued: taken without suspending.
    bool try_take() noexcept {
        if (locked_ || !waiting_.empty() || !woken_.empty()) return false;
        locked_ = true;
        return true;
    }
    // Woken by release(): nobody took the lock since (arrivals queued behind).
    void taken_after_wait() noexcept { locked_ = true; }
    void leave_queue(detail::waiter& w) noexcept {
        w.unlink();
        if (!locked_) wake_first();
    }

    // Wakes the first waiter unless one is already woken (it is the one to take the lock).
    void wake_first() noexcept {
        if (woken_.empty() && !waiting_.empty()) waiting_.wake_front_into(woken_);
    }

    detail::waiter_queue waiting_;  // suspended, in arrival order
    detail::waiter_queue woken_;    // at most one: woken by release(), not run yet
    bool locked_ = false;
};

IOLOOP_NAMESPACE_END

#endif
