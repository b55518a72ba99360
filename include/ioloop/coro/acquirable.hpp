// ioloop: acquirable<Primitive>, what lock and semaphore share: acquire() (queued first
// come, first served, cancellable) and scoped() (the same, resuming with a release_guard).
// The primitive decides when a task need not wait and what waiting grants.
#ifndef IOLOOP_CORO_ACQUIRABLE_HPP
#define IOLOOP_CORO_ACQUIRABLE_HPP

#include "ioloop/coro/release_guard.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The acquire() awaiter of a primitive that hands something out (lock, semaphore): taken
// without suspending when Primitive::try_take() allows it, else queued in its `waiting_`
// until woken. The primitive says what being woken grants (taken_after_wait) and what
// leaving the queue gives back (leave_queue: cancelled, or destroyed while waiting or
// woken because the loop is closing).
template <class Primitive>
class acquire_wait : public queued_wait {
public:
    explicit acquire_wait(Primitive& p) noexcept
        : queued_wait(p.waiting_, Primitive::acquire_name), p_(p) {}
    acquire_wait(acquire_wait&&) noexcept = default;  // before it is awaited (see waiter)
    ~acquire_wait() {
        if (linked()) p_.leave_queue(*this);
    }

    bool await_ready() noexcept { return p_.try_take(); }

    void await_resume() {
        if (!task) return;  // taken in await_ready
        if (task->take_cancel()) {
            // Woken and cancelled before running, or cancelled while queued: nothing is
            // taken, and the next waiter must not be stranded.
            p_.leave_queue(*this);
            throw cancelled_error();
        }
        unlink();
        p_.taken_after_wait();
    }

private:
    Primitive& p_;
};

}  // namespace detail

template <class Primitive>
class acquirable {
public:
    using guard = release_guard<Primitive>;
    using acquire_awaiter = detail::acquire_wait<Primitive>;

    // co_await p.acquire(): returns once the task holds what the primitive hands out;
    // cancelled_error if the task is cancelled while it waits (then it holds nothing).
    [[nodiscard]] acquire_awaiter acquire() noexcept { return acquire_awaiter(self()); }

    // auto guard = co_await p.scoped(): acquire(), and the guard releases at scope end
    // (asyncio's `async with lock:`).
    [[nodiscard]] detail::scoped_acquire<acquire_awaiter, Primitive> scoped() noexcept {
        return detail::scoped_acquire<acquire_awaiter, Primitive>(self());
    }

protected:
    acquirable() = default;
    ~acquirable() = default;

private:
    Primitive& self() noexcept { return static_cast<Primitive&>(*this); }
};

IOLOOP_NAMESPACE_END

#endif
