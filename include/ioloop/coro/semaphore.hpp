// ioloop: semaphore and bounded_semaphore (asyncio.Semaphore, BoundedSemaphore), a
// counter of units that tasks acquire and release, served first come, first served. As
// in asyncio 3.12, release() reserves its unit for the first waiter and wakes it; while
// any task waits or is woken and not yet run, locked() is true and a task that arrives
// queues behind them. A woken waiter cancelled before it runs gives its unit back and
// wakes the next one.
#ifndef IOLOOP_CORO_SEMAPHORE_HPP
#define IOLOOP_CORO_SEMAPHORE_HPP

#include "ioloop/coro/acquirable.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <cstddef>

IOLOOP_NAMESPACE_BEGIN

// Lives on its loop's thread and must outlive the tasks that wait on it.
class semaphore : public acquirable<semaphore> {
public:
    // `value` units are free to start with.
    explicit semaphore(std::size_t value = 1) noexcept : value_(value), bound_(~std::size_t{0}) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    // True if acquire() would wait: no unit is free, or tasks are queued ahead.
    bool locked() const noexcept { return value_ == 0 || !waiting_.empty() || !woken_.empty(); }

    // Free units, not counting those reserved for woken waiters (asyncio's _value).
    std::size_t value() const noexcept { return value_; }

    // Gives a unit back and wakes the first waiter. On a bounded_semaphore, releasing
    // more than was acquired throws invalid_state_error (asyncio raises ValueError).
    void release() {
        if (value_ >= bound_) {
            throw invalid_state_error(
                "bounded_semaphore::release: released more times than acquired");
        }
        ++value_;
        wake_next();
    }

protected:
    semaphore(std::size_t value, std::size_t bound) noexcept : value_(value), bound_(bound) {}

private:
    friend class detail::acquire_wait<semaphore>;
    static constexpr const char* acquire_name = "semaphore::acquire";  // in errors

    // A unit is free and nobody queued: taken without suspending.
    bool try_take() noexcept {
        if (locked()) return false;
        --value_;
        return true;
    }
    // The unit release() reserved for the waiter is now its own; units released while it
    // was queued behind others wake those behind it.
    void taken_after_wait() noexcept { wake_while_free(); }
    void leave_queue(detail::waiter& w) noexcept {
        if (w.queue() == &woken_) ++value_;  // reserved for it, not taken
        w.unlink();
        wake_while_free();
    }

    // Reserves a unit for the first waiter and wakes it; false if none waits.
    bool wake_next() noexcept {
        if (waiting_.empty()) return false;
        --value_;
        waiting_.wake_front_into(woken_);
        return true;
    }

    void wake_while_free() noexcept {
        while (value_ > 0 && wake_next()) {
        }
    }

    detail::waiter_queue waiting_;  // suspended, in arrival order
    detail::waiter_queue woken_;    // a unit reserved for each, not run yet
    std::size_t value_;
    std::size_t bound_;  // release() may not raise value_ past it
};

// A semaphore that refuses to be released more times than it was acquired: release()
// past the initial value throws invalid_state_error.
class bounded_semaphore : public semaphore {
public:
    explicit bounded_semaphore(std::size_t value = 1) noexcept : semaphore(value, value) {}
};

IOLOOP_NAMESPACE_END

#endif
