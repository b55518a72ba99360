// ioloop: the containers under queue, lifo_queue and priority_queue: a ring buffer (first
// in, first out), a stack, and a binary heap (smallest first, like Python's heapq). Plain
// containers: they know nothing of the loop. Items may be move-only.
#ifndef IOLOOP_DETAIL_QUEUE_STORAGE_HPP
#define IOLOOP_DETAIL_QUEUE_STORAGE_HPP

#include "ioloop/detail/config.hpp"

#include <cstddef>
#include <new>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

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

// What the vector-backed storages share: the items, taking the last one, and clearing.
template <class T>
class vector_storage {
public:
    std::size_t clear() noexcept {
        const std::size_t n = items_.size();
        items_.clear();
        return n;
    }

protected:
    T take_back() {
        T item(std::move(items_.back()));
        items_.pop_back();
        return item;
    }

    std::vector<T> items_;
};

// The storage of a lifo_queue<T>: a stack.
template <class T>
class lifo_storage : public vector_storage<T> {
public:
    template <class U>
    void push(U&& item) {
        this->items_.push_back(std::forward<U>(item));
    }

    T pop() { return this->take_back(); }
};

// The storage of a priority_queue<T, Compare>: a binary heap whose top is the smallest
// item under Compare, like Python's heapq. The heap is kept by swaps, so that a Compare
// that throws leaves every item in the storage (and the heap possibly out of order).
template <class T, class Compare>
class heap_storage : public vector_storage<T> {
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
        return this->take_back();
    }

private:
    using vector_storage<T>::items_;

    void swap_items(std::size_t a, std::size_t b) {
        using std::swap;
        swap(items_[a], items_[b]);
    }

    [[no_unique_address]] Compare compare_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
