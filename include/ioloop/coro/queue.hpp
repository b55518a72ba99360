// ioloop: queue<T>, priority_queue<T, Compare> and lifo_queue<T> (asyncio's Queue,
// PriorityQueue and LifoQueue): producer/consumer queues for the tasks of one loop.
// put() waits while the queue is full, get() while it is empty; waiting getters are served
// in the order they started waiting, and so are waiting putters. join() waits until every
// item put was marked task_done(); shutdown() is asyncio 3.13's.
//
// One difference with asyncio, on purpose: asyncio wakes the first waiting getter when an
// item arrives but leaves the item in the queue, so a task that runs before the woken one
// (get_nowait, or a get() that finds the item) may take it, and the woken getter waits
// again at the back of the line. Here the woken getter is promised the item: qsize(),
// empty() and get_nowait() no longer see it, and nobody can take it first. The promised
// item still sits in the queue until its getter resumes, so it still takes room (full()
// counts it, as asyncio does); if the getter is cancelled before it resumes, the promise
// passes to the next waiting getter, or the item becomes free again. Putters alike: the
// first waiting putter is woken with a slot reserved for it. So qsize() may be below
// maxsize() while full() is true, for the moment between a waiting task being woken and
// it resuming.
#ifndef IOLOOP_CORO_QUEUE_HPP
#define IOLOOP_CORO_QUEUE_HPP

#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/queue_storage.hpp"
#include "ioloop/errors.hpp"

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>  // declares std::less too (libstdc++, libc++, MSVC): <functional> costs 0.07 s

IOLOOP_NAMESPACE_BEGIN

// put, put_nowait, or get (and get_nowait) on an empty queue, after shutdown()
// (asyncio.QueueShutDown).
class queue_shut_down : public error {
public:
    queue_shut_down() : error("the queue is shut down") {}
    using error::error;
};

namespace detail {

// A task suspended in get() or put(). It is linked in the queue's line while it waits,
// then, once woken with an item promised (a slot reserved), in the queue's list of woken
// tasks until it resumes. Unlinked, it no longer touches the queue: a queue destroyed
// while tasks wait on it detaches them (waiter_queue's destructor).
class queue_waiter : public queued_wait {
public:
    enum class outcome : unsigned char { waiting, granted, shut_down };

protected:
    queue_waiter(waiter_queue& line, const char* what) noexcept : queued_wait(line, what) {}
    queue_waiter(queue_waiter&&) noexcept = default;  // before it is awaited (see waiter)
    ~queue_waiter() = default;

    // Resumed unlinked and not cancelled: told of a shutdown; or granted, then detached by
    // the queue's destruction; or else cancelled and its cancel withdrawn since (uncancel):
    // it left the line all the same.
    [[noreturn]] void throw_unlinked(const char* what) const {
        if (outcome_ == outcome::shut_down)
            throw queue_shut_down(concat({what, ": the queue is shut down"}));
        if (outcome_ == outcome::granted)
            throw invalid_state_error(
                concat({what, ": the queue was destroyed while the task waited"}));
        throw cancelled_error();
    }

    outcome outcome_ = outcome::waiting;

private:
    friend class queue_core;
};

// Everything of a queue but its items: the counts, the lines of waiting tasks, who is
// woken when. Not a template, so that it is compiled once whatever the item type.
class queue_core {
public:
    queue_core(const queue_core&) = delete;
    queue_core& operator=(const queue_core&) = delete;

    // Items a get() or get_nowait() can take now (an item promised to a woken getter that
    // has not resumed yet is not counted).
    std::size_t qsize() const noexcept { return stored_ - granted_getters_.size(); }

    // The bound given to the constructor; 0 means unbounded.
    std::size_t maxsize() const noexcept { return maxsize_; }

    bool empty() const noexcept { return qsize() == 0; }

    // No room for another put: the items stored (promised ones too) and the slots reserved
    // for woken putters reach maxsize(). Never true for an unbounded queue.
    bool full() const noexcept {
        return maxsize_ != 0 && stored_ + granted_putters_.size() >= maxsize_;
    }

    // A consumer is done with an item it got: when every item put was marked done, join()
    // returns. Throws invalid_state_error if called more times than items were put.
    void task_done() {
        if (unfinished_ == 0)
            throw invalid_state_error("task_done: called more times than items were put");
        if (--unfinished_ == 0) joiners_.wake_all();
    }

protected:
    explicit queue_core(std::size_t maxsize) noexcept : maxsize_(maxsize) {}
    ~queue_core() = default;  // the lines detach the tasks still in them

    void check_put(const char* shut_down_message) const {
        if (shut_down_) throw queue_shut_down(shut_down_message);
        if (full()) throw queue_full();
    }

    void check_get(const char* shut_down_message) const {
        if (!empty()) return;
        if (shut_down_) throw queue_shut_down(shut_down_message);
        throw queue_empty();
    }

    // An item was stored: it is promised to the first waiting getter, if any.
    void item_stored() noexcept {
        ++stored_;
        ++unfinished_;
        wake_getters();
    }

    // An item was taken: its slot is reserved for the first waiting putter, if any.
    void item_taken() noexcept {
        --stored_;
        wake_putters();
    }

    // Whenever an item may have become free (stored, or a promise given back).
    void wake_getters() noexcept {
        while (!getters_.empty() && qsize() > 0) grant(getters_, granted_getters_);
    }

    // Whenever room may have appeared (an item taken, or a reservation given back).
    void wake_putters() noexcept {
        while (!putters_.empty() && !full()) grant(putters_, granted_putters_);
    }

    // asyncio 3.13's shutdown, but the items (the caller drained `drained` of them when
    // immediate). Waiting putters fail, and so do waiting getters (they wait only when
    // nothing is left for them); getters promised an item keep it, unless immediate.
    void shut_down_waiters(bool immediate, std::size_t drained) noexcept {
        shut_down_ = true;
        stored_ -= drained;
        if (immediate) {
            unfinished_ = unfinished_ > drained ? unfinished_ - drained : 0;
            withdraw_all(granted_getters_);
            if (unfinished_ == 0) joiners_.wake_all();
        }
        withdraw_all(granted_putters_);
        fail_all(getters_);
        fail_all(putters_);
    }

private:
    using outcome = queue_waiter::outcome;
    friend class queue_join;
    template <class Queue>
    friend class queue_get;
    template <class Queue, bool Move>
    friend class queue_put;

    static queue_waiter* pop(waiter_queue& l) noexcept {
        return static_cast<queue_waiter*>(l.pop_front());  // the lines hold only these
    }

    static void grant(waiter_queue& line, waiter_queue& granted) noexcept {
        static_cast<queue_waiter*>(line.front())->outcome_ = outcome::granted;
        line.wake_front_into(granted);
    }

    // Wakes every task in the line with queue_shut_down.
    static void fail_all(waiter_queue& line) noexcept {
        while (!line.empty()) {
            queue_waiter* w = pop(line);
            w->outcome_ = outcome::shut_down;
            w->task->wake();
        }
    }

    // Woken tasks whose promise or reservation is withdrawn: they resume with
    // queue_shut_down (they are already woken).
    static void withdraw_all(waiter_queue& granted) noexcept {
        while (!granted.empty()) pop(granted)->outcome_ = outcome::shut_down;
    }

    std::size_t maxsize_;
    std::size_t stored_ = 0;      // items in the storage, promised ones included
    std::size_t unfinished_ = 0;  // items put and not yet task_done'd
    bool shut_down_ = false;
    waiter_queue getters_;          // waiting in get(), in arrival order
    waiter_queue putters_;          // waiting in put(), in arrival order
    waiter_queue joiners_;          // waiting in join()
    waiter_queue granted_getters_;  // woken, an item promised, not resumed yet
    waiter_queue granted_putters_;  // woken, a slot reserved, not resumed yet
};

// co_await q.join(): returns once every item put was task_done'd.
class queue_join final : public queued_wait {
public:
    explicit queue_join(queue_core& q) noexcept : queued_wait(q.joiners_, "join"), q_(q) {}

    bool await_ready() const noexcept { return q_.unfinished_ == 0; }

private:
    queue_core& q_;
};

// co_await q.get(): the next item, once there is one.
template <class Queue>
class queue_get final : public queue_waiter {
public:
    explicit queue_get(Queue& q) noexcept : queue_waiter(q.getters_, "get"), q_(q) {}
    queue_get(queue_get&&) noexcept = default;  // before it is awaited (see waiter)
    // Destroyed while promised an item (the loop is closing): the item is free again.
    ~queue_get() {
        if (!linked() || outcome_ != outcome::granted) return;
        unlink();
        q_.wake_getters();
    }

    // Ready when an item is free, or when the queue is shut down (get then throws). When
    // getters wait, no item is free: a new get() joins the end of the line.
    bool await_ready() const noexcept { return !q_.empty() || q_.shut_down_; }

    typename Queue::value_type await_resume() {
        if (!task) return q_.get_nowait_as("get: the queue is shut down and empty");
        const bool cancel = task->take_cancel();
        if (!linked()) {
            if (cancel) throw cancelled_error();
            throw_unlinked("get");
        }
        unlink();  // the item promised to this getter is free again...
        if (cancel) {
            q_.wake_getters();  // ...for the next in line, as asyncio does
            throw cancelled_error();
        }
        try {
            return q_.take();  // ...and this getter takes it first
        } catch (...) {        // T's move constructor threw: the item stays for the others
            q_.wake_getters();
            throw;
        }
    }

private:
    Queue& q_;
};

// co_await q.put(item): stores the item, once there is room. The item is copied or moved
// from the caller's object only when it is stored: a put that throws (cancelled_error,
// queue_shut_down) leaves it with the caller.
template <class Queue, bool Move>
class queue_put final : public queue_waiter {
    using value_type = typename Queue::value_type;
    using item_ref = std::conditional_t<Move, value_type&&, const value_type&>;
    using item_ptr = std::conditional_t<Move, value_type*, const value_type*>;

public:
    queue_put(Queue& q, item_ptr item) noexcept
        : queue_waiter(q.putters_, "put"), q_(q), item_(item) {}
    queue_put(queue_put&&) noexcept = default;  // before it is awaited (see waiter)
    // Destroyed with a slot reserved (the loop is closing): the slot is free again.
    ~queue_put() {
        if (!linked() || outcome_ != outcome::granted) return;
        unlink();
        q_.wake_putters();
    }

    bool await_ready() const noexcept { return !q_.full() || q_.shut_down_; }

    void await_resume() {
        if (!task) {
            q_.put_as("put: the queue is shut down", static_cast<item_ref>(*item_));
            return;
        }
        const bool cancel = task->take_cancel();
        if (!linked()) {
            if (cancel) throw cancelled_error();
            throw_unlinked("put");
        }
        unlink();  // the slot reserved for this putter is free again...
        if (cancel) {
            q_.wake_putters();  // ...for the next in line
            throw cancelled_error();
        }
        try {
            q_.store(static_cast<item_ref>(*item_));  // ...and this putter fills it
        } catch (...) {  // copying or moving the item threw: the slot stays free
            q_.wake_putters();
            throw;
        }
    }

private:
    Queue& q_;
    item_ptr item_;
};

// What the three queues share: the operations, over their storage.
template <class T, class Storage>
class basic_queue : public queue_core {
public:
    using value_type = T;

    // Waits while the queue is full, then stores a copy of the item (asyncio's put).
    // Throws queue_shut_down after shutdown(), cancelled_error if the task is cancelled
    // while it waits; either way nothing was stored.
    [[nodiscard]] queue_put<basic_queue, false> put(const T& item) noexcept {
        return queue_put<basic_queue, false>(*this, &item);
    }
    // The same, moving the item in once there is room. As with every put(), co_await the
    // result in the same expression: the operation refers to the caller's item, which is
    // copied or moved only when it is stored (so a put that throws leaves it untouched).
    [[nodiscard]] queue_put<basic_queue, true> put(T&& item) noexcept {
        return queue_put<basic_queue, true>(*this, &item);
    }

    // Waits while the queue is empty, then removes and returns an item. Throws
    // queue_shut_down once the queue is shut down and has nothing left for this getter,
    // cancelled_error if the task is cancelled while it waits (no item is taken then).
    [[nodiscard]] queue_get<basic_queue> get() noexcept { return queue_get<basic_queue>(*this); }

    // Waits until every item put was task_done'd; returns at once if none is pending.
    [[nodiscard]] queue_join join() noexcept { return queue_join(*this); }

    // Stores the item now, or throws queue_full (queue_shut_down after shutdown()); on a
    // throw the caller keeps the item.
    void put_nowait(const T& item) { put_as("put_nowait: the queue is shut down", item); }
    void put_nowait(T&& item) { put_as("put_nowait: the queue is shut down", std::move(item)); }

    // Removes and returns an item now, or throws queue_empty (queue_shut_down once the
    // queue is shut down and empty).
    T get_nowait() { return get_nowait_as("get_nowait: the queue is shut down and empty"); }

    // asyncio 3.13's Queue.shutdown: from now on put and put_nowait throw queue_shut_down,
    // and so do get and get_nowait once the queue is empty; tasks waiting in put() or
    // get() resume with queue_shut_down. With immediate, the items left are dropped (each
    // counts as task_done for join(), which may then return) and gets fail at once.
    void shutdown(bool immediate = false) noexcept {
        const std::size_t drained = immediate ? storage_.clear() : 0;
        shut_down_waiters(immediate, drained);
    }

protected:
    template <class... StorageArgs>
    explicit basic_queue(std::size_t maxsize, StorageArgs&&... storage_args)
        : queue_core(maxsize), storage_(std::forward<StorageArgs>(storage_args)...) {}
    basic_queue(const basic_queue&) = delete;
    basic_queue& operator=(const basic_queue&) = delete;
    ~basic_queue() = default;

private:
    friend class queue_get<basic_queue>;
    friend class queue_put<basic_queue, false>;
    friend class queue_put<basic_queue, true>;

    template <class U>
    void put_as(const char* shut_down_message, U&& item) {
        check_put(shut_down_message);
        store(std::forward<U>(item));
    }

    T get_nowait_as(const char* shut_down_message) {
        check_get(shut_down_message);
        return take();
    }

    template <class U>
    void store(U&& item) {
        storage_.push(std::forward<U>(item));
        item_stored();
    }

    T take() {
        T item = storage_.pop();
        item_taken();
        return item;
    }

    Storage storage_;
};

}  // namespace detail

// A first in, first out queue (asyncio.Queue). maxsize 0 means unbounded (asyncio's
// maxsize <= 0). Items may be move-only. Belongs to the loop's thread, like its tasks.
template <class T>
class queue : public detail::basic_queue<T, detail::fifo_storage<T>> {
public:
    explicit queue(std::size_t maxsize = 0)
        : detail::basic_queue<T, detail::fifo_storage<T>>(maxsize) {}
};

// A last in, first out queue (asyncio.LifoQueue).
template <class T>
class lifo_queue : public detail::basic_queue<T, detail::lifo_storage<T>> {
public:
    explicit lifo_queue(std::size_t maxsize = 0)
        : detail::basic_queue<T, detail::lifo_storage<T>>(maxsize) {}
};

// A queue that gives the smallest item first under Compare (asyncio.PriorityQueue, built
// on Python's heapq): with the default std::less, get() returns the lowest value, not the
// highest as std::priority_queue does. Items that compare equal come out in no particular
// order: to keep them in arrival order, put (priority, sequence number, data), as asyncio's
// documentation suggests with tuples.
template <class T, class Compare = std::less<T>>
class priority_queue : public detail::basic_queue<T, detail::heap_storage<T, Compare>> {
public:
    explicit priority_queue(std::size_t maxsize = 0, Compare compare = Compare())
        : detail::basic_queue<T, detail::heap_storage<T, Compare>>(maxsize, std::move(compare)) {}
};

IOLOOP_NAMESPACE_END

#endif
