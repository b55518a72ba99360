// ioloop: the FIFO of tasks suspended on a synchronization primitive (event, lock,
// semaphore, condition, barrier). The links live in the awaiters, that is in the waiting
// coroutines' frames: queueing allocates nothing. A primitive wakes waiters from the
// front, so they are served in the order they arrived, as asyncio's deques of futures.
#ifndef IOLOOP_CORO_WAITER_QUEUE_HPP
#define IOLOOP_CORO_WAITER_QUEUE_HPP

#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"

#include <coroutine>
#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class waiter_queue;

// One task waiting in a waiter_queue; the base of the primitives' awaiters.
class waiter {
public:
    waiter() noexcept = default;
    // Awaiters are moved only before they are first awaited (into a wait_for, a timeout,
    // a race: see hold_awaitable), that is before they are linked: the new one is not.
    waiter(waiter&& o) noexcept : task(o.task) {}
    waiter(const waiter&) = delete;
    waiter& operator=(const waiter&) = delete;

    // The queue it is in, or null. A primitive may keep a woken waiter in a second queue
    // until it runs (a lock handed to it, a semaphore unit reserved for it): which queue
    // says which state the waiter is in.
    const waiter_queue* queue() const noexcept { return queue_; }
    bool linked() const noexcept { return queue_ != nullptr; }

    inline void unlink() noexcept;

    task_base* task = nullptr;  // the suspended task, set before the waiter is linked

protected:
    ~waiter() = default;

private:
    friend class waiter_queue;
    waiter* prev_ = nullptr;
    waiter* next_ = nullptr;
    waiter_queue* queue_ = nullptr;
};

class waiter_queue {
public:
    waiter_queue() noexcept = default;
    waiter_queue(const waiter_queue&) = delete;
    waiter_queue& operator=(const waiter_queue&) = delete;

    // A primitive destroyed while tasks still wait on it (its owner's frame went first
    // when the loop closed) detaches them, so that their awaiters, destroyed later, find
    // themselves unlinked and touch nothing of it.
    ~waiter_queue() {
        while (head_) pop_front();
    }

    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    waiter* front() const noexcept { return head_; }

    void push_back(waiter* w) noexcept {
        w->queue_ = this;
        w->next_ = nullptr;
        w->prev_ = tail_;
        if (tail_) {
            tail_->next_ = w;
        } else {
            head_ = w;
        }
        tail_ = w;
        ++size_;
    }

    void remove(waiter* w) noexcept {
        if (w->prev_) {
            w->prev_->next_ = w->next_;
        } else {
            head_ = w->next_;
        }
        if (w->next_) {
            w->next_->prev_ = w->prev_;
        } else {
            tail_ = w->prev_;
        }
        w->prev_ = w->next_ = nullptr;
        w->queue_ = nullptr;
        --size_;
    }

    waiter* pop_front() noexcept {
        waiter* w = head_;
        remove(w);
        return w;
    }

    // Wakes the first waiter and keeps it in `woken` until it runs.
    void wake_front_into(waiter_queue& woken) noexcept {
        waiter* w = pop_front();
        woken.push_back(w);
        w->task->wake();
    }

    // Wakes every waiter, in the order they arrived (each task's step is scheduled in
    // that order, so they also run in it).
    void wake_all() noexcept {
        while (head_) pop_front()->task->wake();
    }

private:
    waiter* head_ = nullptr;
    waiter* tail_ = nullptr;
    std::size_t size_ = 0;
};

inline void waiter::unlink() noexcept {
    if (queue_) queue_->remove(this);
}

// The awaiter that suspends the current task in a queue until a primitive wakes it, or
// until the task is cancelled: then it leaves the queue and cancelled_error is thrown
// where it waited. Primitives derive from it to decide when not to wait (await_ready)
// and what being woken grants (await_resume).
class queued_wait : public waiter, public wait_point {
public:
    queued_wait(waiter_queue& join, const char* what) noexcept : join_(&join), what_(what) {}
    queued_wait(queued_wait&&) noexcept = default;  // before it is awaited (see waiter)
    ~queued_wait() { unlink(); }  // destroyed while waiting: the loop is closing

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task = &current_task_or_throw(what_);
        join_->push_back(this);
        task->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }

    void await_resume() {
        if (task) task->throw_if_cancelled();  // null: await_ready said not to wait
    }

    // Only a waiter still waiting gets here: waking a task clears its wait point.
    void on_cancel(task_base& t) noexcept override {
        unlink();
        t.wake();
    }

private:
    waiter_queue* join_;
    const char* what_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
