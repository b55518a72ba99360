// ioloop: lock (asyncio.Lock), mutual exclusion between tasks, served first come, first
// served. As in asyncio 3.12, release() does not hand the lock over: it wakes the first
// waiter, which takes the lock when it runs. Meanwhile locked() is false, yet a task that
// arrives queues behind the woken one instead of slipping in; and if the woken waiter is
// cancelled before it runs, it wakes the next one, so nobody is left waiting on a free
// lock.
#ifndef IOLOOP_CORO_LOCK_HPP
#define IOLOOP_CORO_LOCK_HPP

#include "ioloop/coro/release_guard.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

IOLOOP_NAMESPACE_BEGIN

// Not owned by a task (asyncio's isn't either): any task may release it. Lives on its
// loop's thread and must outlive the tasks that wait on it.
class lock {
public:
    using guard = release_guard<lock>;

    class acquire_awaiter : public detail::queued_wait {
    public:
        explicit acquire_awaiter(lock& l) noexcept
            : queued_wait(l.waiting_, "lock::acquire"), l_(l) {}
        // Destroyed while woken but not yet run (the loop is closing): the wake-up goes on
        // to the next waiter, as when cancelled.
        ~acquire_awaiter() {
            if (linked()) leave();
        }

        // Free and nobody queued: taken without suspending.
        bool await_ready() noexcept {
            if (l_.locked_ || !l_.waiting_.empty() || !l_.woken_.empty()) return false;
            l_.locked_ = true;
            return true;
        }

        void await_resume() {
            if (!task) return;  // taken in await_ready
            if (task->take_cancel()) {
                // Woken and cancelled before running (or cancelled while queued): the
                // lock is not taken, and the next waiter must not be stranded.
                leave();
                throw cancelled_error();
            }
            unlink();
            l_.locked_ = true;  // woken by release(): nobody took it since (they queued)
        }

    private:
        void leave() noexcept {
            unlink();
            if (!l_.locked_) l_.wake_first();
        }

        lock& l_;
    };

    lock() noexcept = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

    bool locked() const noexcept { return locked_; }

    // co_await l.acquire(): returns once the task holds the lock; cancelled_error if the
    // task is cancelled while it waits (then it does not hold the lock).
    [[nodiscard]] acquire_awaiter acquire() noexcept { return acquire_awaiter(*this); }

    // auto guard = co_await l.scoped(): acquire(), and the guard releases at scope end
    // (asyncio's `async with lock:`).
    [[nodiscard]] detail::scoped_acquire<acquire_awaiter, lock> scoped() noexcept {
        return detail::scoped_acquire<acquire_awaiter, lock>(*this);
    }

    // Unlocks and wakes the first waiter. invalid_state_error if the lock is not locked
    // (asyncio raises RuntimeError).
    void release() {
        if (!locked_) throw invalid_state_error("lock::release: the lock is not locked");
        locked_ = false;
        wake_first();
    }

private:
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
