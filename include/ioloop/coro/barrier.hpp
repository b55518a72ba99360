// ioloop: barrier (asyncio.Barrier), where `parties` tasks wait for each other. The last
// to arrive releases them all; each gets its arrival index (0 for the first). While the
// released tasks leave ("draining"), newcomers wait for the next round. reset() sends the
// tasks waiting back with broken_barrier_error and starts empty again; abort() breaks the
// barrier for good: every wait, present and future, throws broken_barrier_error.
//
// The state machine is asyncio's. asyncio guards it with a Condition because its wait()
// spans several awaits; here all of it runs on the loop thread between suspension points,
// so no lock is needed, and reset() and abort() are plain functions, not coroutines.
#ifndef IOLOOP_CORO_BARRIER_HPP
#define IOLOOP_CORO_BARRIER_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <cstddef>
#include <stdexcept>

IOLOOP_NAMESPACE_BEGIN

// Lives on its loop's thread and must outlive the tasks that wait on it.
class barrier {
public:
    // std::invalid_argument if parties is 0 (asyncio raises ValueError).
    explicit barrier(std::size_t parties) : parties_(parties) {
        if (parties == 0) throw std::invalid_argument("barrier: parties must be at least 1");
    }
    barrier(const barrier&) = delete;
    barrier& operator=(const barrier&) = delete;

    // co_await b.wait() -> this task's arrival index in its round, 0 to parties() - 1.
    // broken_barrier_error if the barrier is aborted, or reset while the task waits;
    // cancelled_error if the task is cancelled while it waits (it then no longer counts
    // as arrived, and the barrier stays usable). A coroutine: one frame per call.
    // A template only so that the coroutine is compiled where it is used: g++ generates
    // a plain inline coroutine in every translation unit that includes it.
    template <class = void>
    coro<std::size_t> wait() {
        // The previous round is still leaving, or a reset is under way.
        while (state_ == state::draining || state_ == state::resetting) {
            co_await detail::queued_wait(changed_, "barrier::wait");
        }
        if (state_ == state::broken)
            throw broken_barrier_error("barrier::wait: the barrier was aborted");
        const std::size_t index = count_++;
        // Not a scope guard: destroying this frame at loop close must not touch the
        // barrier, which may be gone already.
        try {
            if (index + 1 == parties_) {
                state_ = state::draining;  // the round is full: release it
                changed_.wake_all();
            } else {
                while (state_ == state::filling) {
                    co_await detail::queued_wait(changed_, "barrier::wait");
                }
                if (state_ == state::broken || state_ == state::resetting) {
                    throw broken_barrier_error(
                        "barrier::wait: the barrier was aborted or reset while waiting");
                }
            }
        } catch (...) {
            leave();
            throw;
        }
        leave();
        co_return index;
    }

    // Back to empty: the tasks waiting get broken_barrier_error. Also repairs an aborted
    // barrier.
    void reset() noexcept {
        if (count_ > 0) {
            state_ = state::resetting;  // the last task to leave makes it filling again
        } else {
            state_ = state::filling;
        }
        changed_.wake_all();
    }

    // Breaks the barrier: the tasks waiting, and every later wait(), get
    // broken_barrier_error until reset().
    void abort() noexcept {
        state_ = state::broken;
        changed_.wake_all();
    }

    std::size_t parties() const noexcept { return parties_; }

    // Tasks waiting for the current round to fill (0 while it drains or is broken).
    std::size_t n_waiting() const noexcept { return state_ == state::filling ? count_ : 0; }

    bool broken() const noexcept { return state_ == state::broken; }

private:
    enum class state : unsigned char { filling, draining, resetting, broken };

    // A task leaves wait(), released, broken or cancelled. The last one out of a round
    // (or of a reset) lets the next round fill.
    void leave() noexcept {
        if (--count_ != 0) return;
        if (state_ == state::draining || state_ == state::resetting) state_ = state::filling;
        changed_.wake_all();
    }

    detail::waiter_queue changed_;  // tasks waiting for state_ to change
    std::size_t parties_;
    std::size_t count_ = 0;  // tasks between arrival and leaving
    state state_ = state::filling;
};

IOLOOP_NAMESPACE_END

#endif
