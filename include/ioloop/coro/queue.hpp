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

#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <coroutine>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>  // also declares std::less on libstdc++, libc++ and MSVC: no <functional>

IOLOOP_NAMESPACE_BEGIN

// put, put_nowait, or get (and get_nowait) on an empty queue, after shutdown()
// (asyncio.QueueShutDown).
class queue_shut_down : public error {
public:
    queue_shut_down() : error("the queue is shut down") {}
    using error::error;
};

namespace detail {

class waiter_list;
class queue_core;

// A task suspended in one of a queue's operations. It sits in one of the queue's lists
// while it has a claim on the queue: waiting, or woken with an item promised (a slot
// reserved). A queue destroyed first detaches it, so that it never touches the queue again.
class queue_waiter : public wait_point {
public:
    enum class outcome : unsigned char { waiting, granted, shut_down, cancelled };

    queue_waiter(const queue_waiter&) = delete;
    queue_waiter& operator=(const queue_waiter&) = delete;

    // The task was cancelled while waiting (not yet woken): leave the line.
    void on_cancel(task_base& t) noexcept final;

protected:
    explicit queue_waiter(queue_core* q) noexcept : queue_(q) {}
    ~queue_waiter() = default;

    queue_core* queue_;  // null once the queue is destroyed
    task_base* task_ = nullptr;
    waiter_list* list_ = nullptr;
    outcome outcome_ = outcome::waiting;

private:
    friend class waiter_list;
    friend class queue_core;
    queue_waiter* prev_ = nullptr;
    queue_waiter* next_ = nullptr;
};

// An intrusive FIFO of waiters: no allocation, removal from the middle in O(1).
class waiter_list {
public:
    waiter_list() noexcept = default;
    waiter_list(const waiter_list&) = delete;
    waiter_list& operator=(const waiter_list&) = delete;

    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    queue_waiter* front() const noexcept { return head_; }

    void push_back(queue_waiter* w) noexcept {
        w->list_ = this;
        w->prev_ = tail_;
        w->next_ = nullptr;
        if (tail_) {
            tail_->next_ = w;
        } else {
            head_ = w;
        }
        tail_ = w;
        ++size_;
    }

    void remove(queue_waiter* w) noexcept {
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
        w->list_ = nullptr;
        --size_;
    }

private:
    queue_waiter* head_ = nullptr;
    queue_waiter* tail_ = nullptr;
    std::size_t size_ = 0;
};

inline void queue_waiter::on_cancel(task_base& t) noexcept {
    if (list_) list_->remove(this);
    outcome_ = outcome::cancelled;
    t.wake();
}

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
        if (--unfinished_ == 0) wake_all(joiners_, outcome::granted);
    }

protected:
    explicit queue_core(std::size_t maxsize) noexcept : maxsize_(maxsize) {}

    // Tasks still waiting here are left waiting, detached: a queue local to a coroutine
    // that returned while workers waited in get() is common, and those workers are then
    // cancelled (ioloop::run does it) without touching the queue.
    ~queue_core() {
        for (waiter_list* l :
             {&getters_, &putters_, &joiners_, &granted_getters_, &granted_putters_}) {
            while (queue_waiter* w = l->front()) {
                l->remove(w);
                w->queue_ = nullptr;
            }
        }
    }

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

    // Called whenever an item may have become free (stored, or a promise given back).
    void wake_getters() noexcept {
        while (!getters_.empty() && qsize() > 0) grant(getters_, granted_getters_);
    }

    // Called whenever room may have appeared (an item taken, or a reservation given back).
    void wake_putters() noexcept {
        while (!putters_.empty() && !full()) grant(putters_, granted_putters_);
    }

    // asyncio 3.13's shutdown, but the items (drained by the caller when immediate).
    // Waiting putters fail, and so do waiting getters (they wait only when nothing is
    // left for them); getters promised an item keep it, unless immediate.
    void shut_down_waiters(bool immediate, std::size_t drained) noexcept {
        shut_down_ = true;
        stored_ -= drained;
        if (immediate) {
            unfinished_ = unfinished_ > drained ? unfinished_ - drained : 0;
            drop_all(granted_getters_);
            if (unfinished_ == 0) wake_all(joiners_, outcome::granted);
        }
        drop_all(granted_putters_);
        wake_all(getters_, outcome::shut_down);
        wake_all(putters_, outcome::shut_down);
    }

private:
    using outcome = queue_waiter::outcome;
    friend class queue_waiter;
    friend class queue_join;
    template <class Queue>
    friend class queue_get;
    template <class Queue, bool Move>
    friend class queue_put;

    static void grant(waiter_list& from, waiter_list& to) noexcept {
        queue_waiter* w = from.front();
        from.remove(w);
        to.push_back(w);
        w->outcome_ = outcome::granted;
        w->task_->wake();
    }

    static void wake_all(waiter_list& l, outcome o) noexcept {
        while (queue_waiter* w = l.front()) {
            l.remove(w);
            w->outcome_ = o;
            w->task_->wake();
        }
    }

    // Woken tasks whose promise or reservation is withdrawn: they resume with
    // queue_shut_down (they were already woken).
    static void drop_all(waiter_list& l) noexcept {
        while (queue_waiter* w = l.front()) {
            l.remove(w);
            w->outcome_ = outcome::shut_down;
        }
    }

    std::size_t maxsize_;
    std::size_t stored_ = 0;      // items in the storage, promised ones included
    std::size_t unfinished_ = 0;  // items put and not yet task_done'd
    bool shut_down_ = false;
    waiter_list getters_;          // waiting in get(), in arrival order
    waiter_list putters_;          // waiting in put(), in arrival order
    waiter_list joiners_;          // waiting in join()
    waiter_list granted_getters_;  // woken, an item promised, not resumed yet
    waiter_list granted_putters_;  // woken, a slot reserved, not resumed yet
};

// co_await q.join(): returns once every item put was task_done'd.
class queue_join final : public queue_waiter {
public:
    explicit queue_join(queue_core* q) noexcept : queue_waiter(q) {}
    ~queue_join() {
        if (list_) list_->remove(this);
    }

    bool await_ready() const noexcept { return queue_->unfinished_ == 0; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("join");
        queue_->joiners_.push_back(this);
        task_->suspend(h, this);
    }

    void await_resume() {
        if (!task_) return;
        if (task_->take_cancel() || outcome_ != outcome::granted) throw cancelled_error();
    }
};

// co_await q.get(): the next item, once there is one.
template <class Queue>
class queue_get final : public queue_waiter {
public:
    explicit queue_get(Queue* q) noexcept : queue_waiter(q) {}
    ~queue_get() {
        if (!list_) return;
        list_->remove(this);
        // Destroyed while promised an item (the loop is closing): the item is free again.
        if (outcome_ == outcome::granted) queue_->wake_getters();
    }

    // Ready when an item is free, or when the queue is shut down (get then throws). When
    // getters wait, no item is free: a new get() joins the end of the line.
    bool await_ready() const noexcept { return !queue_->empty() || queue_->shut_down_; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("get");
        queue_->getters_.push_back(this);
        task_->suspend(h, this);
    }

    typename Queue::value_type await_resume() {
        Queue* q = static_cast<Queue*>(queue_);
        if (!task_) return q->get_nowait_as("get: the queue is shut down and empty");
        const bool cancel = task_->take_cancel();
        if (!q) {
            if (cancel) throw cancelled_error();
            throw invalid_state_error("get: the queue was destroyed while the task waited");
        }
        if (outcome_ == outcome::granted) {
            queue_->granted_getters_.remove(this);  // the promised item is free again...
            if (cancel) {
                queue_->wake_getters();  // ...for the next in line, as asyncio does
                throw cancelled_error();
            }
            try {
                return q->take();  // ...and this getter takes it first
            } catch (...) {        // T's move constructor threw: the item stays for the others
                queue_->wake_getters();
                throw;
            }
        }
        if (cancel || outcome_ != outcome::shut_down) throw cancelled_error();
        throw queue_shut_down("get: the queue is shut down");
    }
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
    queue_put(Queue* q, item_ptr item) noexcept : queue_waiter(q), item_(item) {}
    ~queue_put() {
        if (!list_) return;
        list_->remove(this);
        // Destroyed with a slot reserved (the loop is closing): the slot is free again.
        if (outcome_ == outcome::granted) queue_->wake_putters();
    }

    bool await_ready() const noexcept { return !queue_->full() || queue_->shut_down_; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("put");
        queue_->putters_.push_back(this);
        task_->suspend(h, this);
    }

    void await_resume() {
        Queue* q = static_cast<Queue*>(queue_);
        if (!task_) {
            q->put_as("put: the queue is shut down", static_cast<item_ref>(*item_));
            return;
        }
        const bool cancel = task_->take_cancel();
        if (!q) {
            if (cancel) throw cancelled_error();
            throw invalid_state_error("put: the queue was destroyed while the task waited");
        }
        if (outcome_ == outcome::granted) {
            queue_->granted_putters_.remove(this);  // the reserved slot is free again...
            if (cancel) {
                queue_->wake_putters();  // ...for the next in line
                throw cancelled_error();
            }
            try {
                q->store(static_cast<item_ref>(*item_));  // ...and this putter fills it
            } catch (...) {  // copying or moving the item threw: the slot stays free
                queue_->wake_putters();
                throw;
            }
            return;
        }
        if (cancel || outcome_ != outcome::shut_down) throw cancelled_error();
        throw queue_shut_down("put: the queue is shut down");
    }

private:
    item_ptr item_;
};

// The storage of a queue<T>: a ring buffer that doubles when full (and never shrinks).
// Cheaper to compile than <deque>, and as fast for push at the back, pop at the front.
template <class T>
class fifo_storage {
public:
    fifo_storage() noexcept = default;
    fifo_storage(const fifo_storage&) = delete;
    fifo_storage& operator=(const fifo_storage&) = delete;
    ~fifo_storage() {
        clear();
        deallocate(slots_);
    }

    template <class U>
    void push(U&& item) {
        if (size_ == capacity_) grow();
        ::new (static_cast<void*>(slots_ + ((head_ + size_) & (capacity_ - 1))))
            T(std::forward<U>(item));
        ++size_;
    }

    T pop() {
        T& front = slots_[head_];
        T item(std::move(front));
        front.~T();
        head_ = (head_ + 1) & (capacity_ - 1);
        --size_;
        return item;
    }

    std::size_t clear() noexcept {
        const std::size_t n = size_;
        for (; size_ != 0; --size_) {
            slots_[head_].~T();
            head_ = (head_ + 1) & (capacity_ - 1);
        }
        head_ = 0;
        return n;
    }

private:
    // Moves the items, in order, to a buffer twice as large. A copy is made instead where
    // moving may throw, so that a failure leaves the queue as it was.
    void grow() {
        const std::size_t capacity = capacity_ != 0 ? capacity_ * 2 : 8;
        T* fresh = allocate(capacity);
        std::size_t i = 0;
        try {
            for (; i < size_; ++i) {
                ::new (static_cast<void*>(fresh + i))
                    T(std::move_if_noexcept(slots_[(head_ + i) & (capacity_ - 1)]));
            }
        } catch (...) {
            while (i != 0) fresh[--i].~T();
            deallocate(fresh);
            throw;
        }
        const std::size_t n = clear();
        deallocate(slots_);
        slots_ = fresh;
        capacity_ = capacity;
        size_ = n;
    }

    static T* allocate(std::size_t n) {
        if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
            return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
        } else {
            return static_cast<T*>(::operator new(n * sizeof(T)));
        }
    }

    static void deallocate(T* p) noexcept {
        if (!p) return;
        if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
            ::operator delete(p, std::align_val_t(alignof(T)));
        } else {
            ::operator delete(p);
        }
    }

    T* slots_ = nullptr;
    std::size_t capacity_ = 0;  // 0 or a power of two
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

// The storage of a lifo_queue<T>: a stack.
template <class T>
class lifo_storage {
public:
    template <class U>
    void push(U&& item) {
        items_.push_back(std::forward<U>(item));
    }

    T pop() {
        T item(std::move(items_.back()));
        items_.pop_back();
        return item;
    }

    std::size_t clear() noexcept {
        const std::size_t n = items_.size();
        items_.clear();
        return n;
    }

private:
    std::vector<T> items_;
};

// The storage of a priority_queue<T, Compare>: a binary heap whose top is the smallest
// item under Compare, like Python's heapq. The heap is kept by swaps, so that a Compare
// that throws leaves every item in the storage (and the heap possibly out of order).
template <class T, class Compare>
class heap_storage {
public:
    explicit heap_storage(Compare compare) : compare_(std::move(compare)) {}

    template <class U>
    void push(U&& item) {
        items_.push_back(std::forward<U>(item));
        std::size_t i = items_.size() - 1;
        while (i > 0) {
            const std::size_t parent = (i - 1) / 2;
            if (!compare_(items_[i], items_[parent])) break;
            swap_items(i, parent);
            i = parent;
        }
    }

    T pop() {
        const std::size_t last = items_.size() - 1;
        swap_items(0, last);  // the smallest waits at the back while the rest is reordered
        std::size_t i = 0;
        for (;;) {
            std::size_t child = 2 * i + 1;
            if (child >= last) break;
            if (child + 1 < last && compare_(items_[child + 1], items_[child])) ++child;
            if (!compare_(items_[child], items_[i])) break;
            swap_items(i, child);
            i = child;
        }
        T item(std::move(items_.back()));
        items_.pop_back();
        return item;
    }

    std::size_t clear() noexcept {
        const std::size_t n = items_.size();
        items_.clear();
        return n;
    }

private:
    void swap_items(std::size_t a, std::size_t b) {
        using std::swap;
        swap(items_[a], items_[b]);
    }

    std::vector<T> items_;
    [[no_unique_address]] Compare compare_;
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
        return queue_put<basic_queue, false>(this, &item);
    }
    // The same, moving the item in once there is room. Co_await the result in the same
    // expression: the operation refers to the argument.
    [[nodiscard]] queue_put<basic_queue, true> put(T&& item) noexcept {
        return queue_put<basic_queue, true>(this, &item);
    }

    // Waits while the queue is empty, then removes and returns an item. Throws
    // queue_shut_down once the queue is shut down and has nothing left for this getter,
    // cancelled_error if the task is cancelled while it waits (no item is taken then).
    [[nodiscard]] queue_get<basic_queue> get() noexcept { return queue_get<basic_queue>(this); }

    // Waits until every item put was task_done'd; returns at once if none is pending.
    [[nodiscard]] queue_join join() noexcept { return queue_join(this); }

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
