// ioloop: the node behind every scheduled callback, the chunked pool it comes from, and
// the intrusive FIFO that is the ready queue. Scheduling from the loop thread allocates
// nothing once the pool is warm, and touches no atomic read-modify-write.
#ifndef IOLOOP_DETAIL_CALLBACK_NODE_HPP
#define IOLOOP_DETAIL_CALLBACK_NODE_HPP

#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/source_location.hpp"
#include "ioloop/detail/unique_function.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class node_pool;
struct node_chunk;

// What the ready queue links and runs. Most are callback_nodes; a task's step is an
// embedded_node that lives inside the task.
struct ready_node {
    ready_node* next = nullptr;  // ready queue, or its chunk's idle list
    // An embedded_node: lives inside its owner (a task's step), which keeps it alive while
    // it is queued: the queue counts no reference, and the loop does not touch it once it
    // has run (its owner may be gone by then).
    bool embedded = false;
};

// A node that runs one fixed function of its owner: a task's step. One function pointer
// instead of a callback_node's unique_function: 24 bytes instead of 48 in every task (32
// fewer per task with the recycler's 16-byte rounding, so per idle coroutine connection).
struct embedded_node : ready_node {
    // Runs the owner's step; or, given `describe`, only says what it would run (debug
    // mode's slow-callback report). Must not throw.
    using run_fn = void (*)(embedded_node& self, std::string* describe) noexcept;
    run_fn run = nullptr;

    explicit embedded_node(run_fn f) noexcept : run(f) { embedded = true; }
};

// One scheduled callback: a call_soon, a timer, a reader/writer or a signal handler.
// Shared by the loop's queues and by the user's handles through a reference count.
struct callback_node : ready_node {
    // The small fields first: they fill the end of ready_node.
    atomic<bool> cancelled{false};
    bool threadsafe = false;  // made by call_soon_threadsafe: heap-allocated, atomic refs
    bool in_timer_heap = false;
    // Loop-thread nodes only load and store these (plain moves); threadsafe nodes are
    // shared with other threads and use read-modify-write.
    atomic<std::uint32_t> refs{0};
    unique_function<void()> fn;
    bool persistent = false;      // runs each time it is queued (a reader, a signal handler)
    source_location where;        // where it was scheduled, for debug reports
    node_chunk* chunk = nullptr;  // where it lives; null for threadsafe nodes
    std::chrono::steady_clock::time_point when{};  // timers: the deadline
    std::uint64_t seq = 0;                         // timers: FIFO among equal deadlines

    // The next node in a list of callback_nodes only (idle list, cross-thread queue).
    callback_node* next_node() const noexcept { return static_cast<callback_node*>(next); }

    void add_ref() noexcept {
        if (threadsafe) {
            refs.fetch_add(1, memory_order::relaxed);
        } else {
            refs.store(refs.load(memory_order::relaxed) + 1, memory_order::relaxed);
        }
    }

    // Always inlined: a timer, a task step or a handle pays it on every callback, and a
    // call here cost 14 instructions per callback (callgrind, callbacks benchmark) once
    // the readiness engine's registrations gave g++ a reason to keep it out of line.
    IOLOOP_ALWAYS_INLINE void release() noexcept;
    inline void cancel() noexcept;

    // Out of line: kept out of release(), which is inlined into every handle's destructor.
    IOLOOP_NOINLINE void release_shared() noexcept {
        if (refs.fetch_sub(1, memory_order::acq_rel) == 1) delete this;
    }

    bool is_cancelled() const noexcept { return cancelled.load(memory_order::relaxed); }
};

// Nodes come in chunks, so that a million timers cost a few thousand allocations, and a
// chunk whose nodes are all idle goes back to the allocator: a burst does not pin its
// memory forever.
struct node_chunk {
    static constexpr std::uint32_t size = 64;

    explicit node_chunk(node_pool* owner) noexcept : pool(owner) {
        for (callback_node& n : nodes) {
            n.chunk = this;
            n.next = idle;
            idle = &n;
        }
    }

    node_pool* pool;
    node_chunk* prev = nullptr;  // in the pool's list of partly idle chunks
    node_chunk* next = nullptr;
    callback_node* idle = nullptr;
    std::uint32_t live = 0;  // nodes handed out
    callback_node nodes[size];
};

// Hands out nodes from the chunks that have idle ones. Owned by the loop; if handles
// still hold nodes when the loop goes away, the pool is orphaned and the last node to go
// frees it.
class node_pool {
public:
    node_pool() = default;
    node_pool(const node_pool&) = delete;
    node_pool& operator=(const node_pool&) = delete;

    // A node with no callable, not cancelled; `next` is garbage until it is queued.
    callback_node* acquire() {
        if (hot_count_ != 0) return hot_[--hot_count_];
        node_chunk* c = current_;
        if (!c || !c->idle) c = next_current();
        callback_node* n = c->idle;
        c->idle = n->next_node();
        ++c->live;
        return n;
    }

    void recycle(callback_node* n) noexcept {
        n->fn.reset();  // may run user destructors, which may release other nodes
        n->cancelled.store(false, memory_order::relaxed);
        n->in_timer_heap = false;
        n->persistent = false;
        if (hot_count_ < hot_limit_) {
            hot_[hot_count_++] = n;
            return;
        }
        node_chunk* c = n->chunk;
        if (!c->idle && c != current_) list(c);
        n->next = c->idle;
        c->idle = n;
        if (--c->live == 0) chunk_emptied(c);
    }

    // The loop is going away: free the idle chunks, let outstanding handles free the rest.
    void orphan() noexcept {
        // Hot nodes go back to their chunks first, so that those chunks can be freed.
        hot_limit_ = 0;
        const std::size_t hot = std::exchange(hot_count_, 0);
        for (std::size_t i = 0; i < hot; ++i) recycle(hot_[i]);
        orphaned_ = true;
        if (current_) {
            list(current_);  // so that free_chunk finds every chunk in one place
            current_ = nullptr;
        }
        for (node_chunk* c = partial_; c;) {
            node_chunk* next = c->next;
            if (c->live == 0) free_chunk(c);
            c = next;
        }
        if (chunks_ == 0) delete this;
    }

    // Told when a timer still in the loop's timer queue is cancelled (set by the loop).
    void (*on_timer_cancel)(void* queue, callback_node* n) noexcept = nullptr;
    void* timer_queue = nullptr;

private:
    ~node_pool() = default;  // only orphan() and the last free_chunk() delete a pool

    // Nodes come from the current chunk until it runs out, so that a loop whose nodes
    // cycle through one chunk does no list bookkeeping per callback.
    IOLOOP_NOINLINE node_chunk* next_current() {
        if (partial_) {
            current_ = partial_;
            unlist(current_);
        } else {
            current_ = new node_chunk(this);
            ++chunks_;
        }
        return current_;
    }

    // One empty chunk stays as a spare, so a loop hovering at a chunk boundary does not
    // allocate and free on every callback. (The spare may have been put back to use
    // since; then `c` becomes the spare.)
    IOLOOP_NOINLINE void chunk_emptied(node_chunk* c) noexcept {
        if (!orphaned_ && (!spare_ || spare_ == c || spare_->live != 0)) {
            spare_ = c;
            return;
        }
        if (c == current_) {
            current_ = nullptr;
            list(c);
        }
        free_chunk(c);
        if (orphaned_ && chunks_ == 0) delete this;
    }

    void free_chunk(node_chunk* c) noexcept {
        if (c == spare_) spare_ = nullptr;
        unlist(c);
        delete c;
        --chunks_;
    }

    void list(node_chunk* c) noexcept {
        c->prev = nullptr;
        c->next = partial_;
        if (partial_) partial_->prev = c;
        partial_ = c;
    }

    void unlist(node_chunk* c) noexcept {
        if (c->prev) {
            c->prev->next = c->next;
        } else {
            partial_ = c->next;
        }
        if (c->next) c->next->prev = c->prev;
        c->prev = c->next = nullptr;
    }

    // The nodes released last, reused first: a node that cycles between call_soon and the
    // run loop skips the chunk bookkeeping. Counted as live by their chunks.
    static constexpr std::size_t hot_capacity = 64;
    callback_node* hot_[hot_capacity];
    std::size_t hot_count_ = 0;
    std::size_t hot_limit_ = hot_capacity;  // 0 once orphaned

    node_chunk* current_ = nullptr;  // where nodes come from; never in partial_
    node_chunk* partial_ = nullptr;  // the other chunks that have an idle node
    node_chunk* spare_ = nullptr;    // the last chunk that emptied, kept for reuse
    std::size_t chunks_ = 0;
    bool orphaned_ = false;
};

IOLOOP_ALWAYS_INLINE void callback_node::release() noexcept {
    if (threadsafe) [[unlikely]] {
        release_shared();
        return;
    }
    const std::uint32_t left = refs.load(memory_order::relaxed) - 1;
    refs.store(left, memory_order::relaxed);
    if (left == 0) chunk->pool->recycle(this);
}

inline void callback_node::cancel() noexcept {
    if (threadsafe) {
        cancelled.store(true, memory_order::relaxed);  // another thread may cancel it
        return;
    }
    if (cancelled.load(memory_order::relaxed)) return;
    cancelled.store(true, memory_order::relaxed);
    if (in_timer_heap) {
        // A queued timer is not running, so its callable can go now, with its captures
        // (asyncio drops a cancelled handle's callback at once). Its destructor may
        // schedule timers: the queue copes, it only finds this one less easily.
        fn.reset();
        chunk->pool->on_timer_cancel(chunk->pool->timer_queue, this);
    }
}

// The ready queue: FIFO through ready_node::next, no allocation.
class node_queue {
public:
    bool empty() const noexcept { return head_ == nullptr; }

    void push(ready_node* n) noexcept {
        n->next = nullptr;
        if (tail_) {
            tail_->next = n;
        } else {
            head_ = n;
        }
        tail_ = n;
    }

    ready_node* pop() noexcept {
        ready_node* n = head_;
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

    // Hands the nodes over as a null-terminated list through `next`; the queue is empty.
    ready_node* release_list() noexcept {
        tail_ = nullptr;
        return std::exchange(head_, nullptr);
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

    // Drops every node's queue reference (loop close); embedded nodes have none.
    void clear() noexcept {
        while (!empty()) {
            ready_node* n = pop();
            if (!n->embedded) static_cast<callback_node*>(n)->release();
        }
    }

private:
    ready_node* head_ = nullptr;
    ready_node* tail_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
