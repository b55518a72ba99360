// ioloop: the node behind every scheduled callback, its free-list pool and the intrusive
// FIFO that is the ready queue. Scheduling from the loop thread allocates nothing once the
// pool is warm, and touches no atomic read-modify-write.
#ifndef IOLOOP_DETAIL_CALLBACK_NODE_HPP
#define IOLOOP_DETAIL_CALLBACK_NODE_HPP

#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/source_location.hpp"
#include "ioloop/detail/unique_function.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class node_pool;

// One scheduled callback: a call_soon, a timer, a reader/writer or a signal handler.
// Shared by the loop's queues and by the user's handles through a reference count.
struct callback_node {
    callback_node* next = nullptr;  // ready queue or free list
    unique_function<void()> fn;
    source_location where;       // where it was scheduled, for debug reports
    std::chrono::steady_clock::time_point when{};  // timers: the deadline
    std::uint64_t seq = 0;                          // timers: FIFO among equal deadlines
    node_pool* pool = nullptr;                      // null for threadsafe nodes
    // Loop-thread nodes only load and store these (plain moves); threadsafe nodes are
    // shared with other threads and use read-modify-write.
    std::atomic<std::uint32_t> refs{0};
    std::atomic<bool> cancelled{false};
    bool threadsafe = false;  // made by call_soon_threadsafe: heap-allocated, atomic refs
    bool in_timer_heap = false;

    void add_ref() noexcept {
        if (threadsafe) {
            refs.fetch_add(1, std::memory_order_relaxed);
        } else {
            refs.store(refs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        }
    }

    inline void release() noexcept;
    inline void cancel() noexcept;
    bool is_cancelled() const noexcept { return cancelled.load(std::memory_order_relaxed); }
};

// Keeps released nodes for reuse. Owned by the loop; if handles still hold nodes when the
// loop goes away, the pool is orphaned and the last node to go frees it.
class node_pool {
public:
    // Past this many idle nodes, released ones go back to the allocator: a burst of a
    // million timers must not pin their memory forever.
    static constexpr std::size_t max_idle = 4096;

    node_pool() = default;
    node_pool(const node_pool&) = delete;
    node_pool& operator=(const node_pool&) = delete;

    callback_node* acquire() {
        callback_node* n = idle_;
        if (n) {
            idle_ = n->next;
            --idle_count_;
            n->next = nullptr;
        } else {
            n = new callback_node;
            n->pool = this;
            ++allocated_;
        }
        return n;
    }

    void recycle(callback_node* n) noexcept {
        n->fn.reset();  // may run user destructors, which may release other nodes
        if (orphaned_ || idle_count_ >= max_idle) {
            free_node(n);
            return;
        }
        n->cancelled.store(false, std::memory_order_relaxed);
        n->in_timer_heap = false;
        n->next = idle_;
        idle_ = n;
        ++idle_count_;
    }

    // The loop is going away: free what is idle, let outstanding handles free the rest.
    void orphan() noexcept {
        while (idle_) {
            callback_node* n = idle_;
            idle_ = n->next;
            delete n;
            --allocated_;
        }
        idle_count_ = 0;
        orphaned_ = true;
        if (allocated_ == 0) delete this;
    }

    // Timers cancelled while still in the loop's heap: the loop purges them when they
    // outnumber the live ones.
    std::size_t cancelled_timers = 0;

private:
    ~node_pool() = default;  // only orphan() and the last free_node() delete a pool

    IOLOOP_NOINLINE void free_node(callback_node* n) noexcept {
        delete n;
        if (--allocated_ == 0 && orphaned_) delete this;
    }

    callback_node* idle_ = nullptr;
    std::size_t idle_count_ = 0;
    std::size_t allocated_ = 0;
    bool orphaned_ = false;
};

inline void callback_node::release() noexcept {
    if (threadsafe) [[unlikely]] {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
        return;
    }
    const std::uint32_t left = refs.load(std::memory_order_relaxed) - 1;
    refs.store(left, std::memory_order_relaxed);
    if (left == 0) pool->recycle(this);
}

inline void callback_node::cancel() noexcept {
    if (cancelled.exchange(true, std::memory_order_relaxed)) return;
    if (in_timer_heap) ++pool->cancelled_timers;
}

// The ready queue: FIFO through callback_node::next, no allocation.
class node_queue {
public:
    bool empty() const noexcept { return head_ == nullptr; }

    void push(callback_node* n) noexcept {
        n->next = nullptr;
        if (tail_) {
            tail_->next = n;
        } else {
            head_ = n;
        }
        tail_ = n;
    }

    callback_node* pop() noexcept {
        callback_node* n = head_;
        head_ = n->next;
        if (!head_) tail_ = nullptr;
        n->next = nullptr;
        return n;
    }

    // Moves everything out; what is pushed afterwards lands in a fresh queue.
    node_queue take() noexcept {
        node_queue q;
        q.head_ = std::exchange(head_, nullptr);
        q.tail_ = std::exchange(tail_, nullptr);
        return q;
    }

    void append(node_queue&& other) noexcept {
        if (other.empty()) return;
        if (tail_) {
            tail_->next = other.head_;
        } else {
            head_ = other.head_;
        }
        tail_ = other.tail_;
        other.head_ = other.tail_ = nullptr;
    }

    // Drops every node's queue reference (loop close).
    void clear() noexcept {
        while (!empty()) pop()->release();
    }

private:
    callback_node* head_ = nullptr;
    callback_node* tail_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
