// ioloop: condition (asyncio.Condition), a lock plus a queue of tasks waiting to be
// notified. wait() releases the lock, waits for notify(), and takes the lock back before
// it returns, also when the task is cancelled: code after a wait always holds the lock.
// wait() and wait_for() are coroutines as in asyncio (one frame each per call), since
// taking the lock back may itself have to wait.
#ifndef IOLOOP_CORO_CONDITION_HPP
#define IOLOOP_CORO_CONDITION_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/lock.hpp"
#include "ioloop/coro/release_guard.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <cstddef>
#include <exception>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

// Lives on its loop's thread and must outlive the tasks that wait on it (and so must the
// lock it was given).
class condition {
public:
    // Over a lock of its own.
    condition() noexcept : lock_(&own_) {}
    // Over `l`, shared with other conditions or used directly (asyncio's Condition(lock)).
    explicit condition(ioloop::lock& l) noexcept : lock_(&l) {}
    condition(const condition&) = delete;
    condition& operator=(const condition&) = delete;

    using guard = lock::guard;

    // The underlying lock's interface.
    bool locked() const noexcept { return lock_->locked(); }
    [[nodiscard]] lock::acquire_awaiter acquire() noexcept { return lock_->acquire(); }
    [[nodiscard]] detail::scoped_acquire<lock::acquire_awaiter, lock> scoped() noexcept {
        return lock_->scoped();
    }
    void release() { lock_->release(); }

    // co_await c.wait(): the lock must be held (invalid_state_error otherwise). Releases
    // it, waits until notified, takes it back. Cancelled while waiting: the lock is taken
    // back first, then cancelled_error comes out (further cancels meanwhile are folded
    // into that one, as asyncio does).
    // A template only so that the coroutine is compiled where it is used: g++ generates
    // a plain inline coroutine in every translation unit that includes it.
    template <class = void>
    coro<void> wait() {
        if (!lock_->locked())
            throw invalid_state_error("condition::wait: the lock is not acquired");
        lock_->release();
        std::exception_ptr cancelled;
        try {
            co_await notified_awaiter(*this);
        } catch (const cancelled_error&) {
            cancelled = std::current_exception();
        }
        for (;;) {
            try {
                co_await lock_->acquire();
                break;
            } catch (const cancelled_error&) {
                cancelled = std::current_exception();
            }
        }
        if (cancelled) std::rethrow_exception(cancelled);
    }

    // co_await c.wait_for(pred): waits until pred() is true, testing it first and after
    // each notification, with the lock held; returns pred()'s last result.
    template <class Predicate>
    coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate pred) {
        auto result = pred();
        while (!result) {
            co_await wait();
            result = pred();
        }
        co_return result;
    }

    // Wakes up to n waiters, first come first woken. The lock must be held
    // (invalid_state_error otherwise); the woken return from wait() once they get it.
    void notify(std::size_t n = 1) {
        if (!lock_->locked())
            throw invalid_state_error("condition::notify: the lock is not acquired");
        wake(n);
    }

    void notify_all() { notify(waiting_.size()); }

private:
    class notified_awaiter final : public detail::queued_wait {
    public:
        explicit notified_awaiter(condition& c) noexcept
            : queued_wait(c.waiting_, "condition::wait"), c_(c) {}
        ~notified_awaiter() {
            if (linked()) leave();
        }

        void await_resume() {
            if (task->take_cancel()) {
                leave();
                throw cancelled_error();
            }
            unlink();
        }

    private:
        // A notification that reached a waiter which will not return normally goes to
        // the next waiter, so that notify(1) is not lost (asyncio 3.13 does the same).
        void leave() noexcept {
            const bool notified = queue() == &c_.notified_;
            unlink();
            if (notified) c_.wake(1);
        }

        condition& c_;
    };

    void wake(std::size_t n) noexcept {
        for (; n > 0 && !waiting_.empty(); --n) waiting_.wake_front_into(notified_);
    }

    ioloop::lock own_;
    ioloop::lock* lock_;
    detail::waiter_queue waiting_;   // waiting for a notification, in arrival order
    detail::waiter_queue notified_;  // notified, not run yet
};

IOLOOP_NAMESPACE_END

#endif
