// ioloop: Python asyncio's event loop for C++20, in one header.
// SPDX-License-Identifier: MIT
//
// GENERATED FILE, DO NOT EDIT. Made by tools/amalgamate.py from include/ioloop/;
// change the sources there and run the script again.

// begin file ioloop/ioloop.hpp
// ioloop: Python asyncio's event loop for C++20, in one header.
// https://docs.python.org/3/library/asyncio-eventloop.html is the model; shared names
// mean the same thing. Include this file; everything else is an implementation detail.
#ifndef IOLOOP_IOLOOP_HPP
#define IOLOOP_IOLOOP_HPP

// begin file ioloop/coro/coro.hpp
// ioloop: coro<T>, a coroutine function's result (asyncio's coroutine object). Lazy:
// nothing runs until it is awaited, which runs it inline in the awaiting task, or until
// it becomes a task. A coroutine that finishes without suspending hands control straight
// back to its awaiter (await_suspend returns false), and one that finishes later passes
// control on by symmetric transfer: a million sequential awaits do not grow the stack,
// even where the compiler does not turn symmetric transfer into a tail call (g++ -O0).
#ifndef IOLOOP_CORO_CORO_HPP
#define IOLOOP_CORO_CORO_HPP

// begin file ioloop/coro/loop_access.hpp
// ioloop: what the coroutine front end reaches inside a loop_base (its running loop, its
// task list, its executor), kept out of the loop's public interface.
#ifndef IOLOOP_CORO_LOOP_ACCESS_HPP
#define IOLOOP_CORO_LOOP_ACCESS_HPP

// begin file ioloop/detail/callback_node.hpp
// ioloop: the node behind every scheduled callback, the chunked pool it comes from, and
// the intrusive FIFO that is the ready queue. Scheduling from the loop thread allocates
// nothing once the pool is warm, and touches no atomic read-modify-write.
#ifndef IOLOOP_DETAIL_CALLBACK_NODE_HPP
#define IOLOOP_DETAIL_CALLBACK_NODE_HPP

// begin file ioloop/detail/atomic.hpp
// ioloop: the few atomic operations the loop needs. With GCC and Clang they are the
// compiler's __atomic builtins, which std::atomic is made of: <atomic> would cost every
// user of the header about 0.03 s per compile and a dozen more functions at -O0. Other
// compilers get std::atomic under the same names.
#ifndef IOLOOP_DETAIL_ATOMIC_HPP
#define IOLOOP_DETAIL_ATOMIC_HPP

// begin file ioloop/detail/config.hpp
// ioloop: platform detection, the one backend selection ladder, and the ABI namespace.
#ifndef IOLOOP_DETAIL_CONFIG_HPP
#define IOLOOP_DETAIL_CONFIG_HPP

#define IOLOOP_VERSION_MAJOR 0
#define IOLOOP_VERSION_MINOR 1
#define IOLOOP_VERSION_PATCH 0

#if defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#define IOLOOP_POSIX 1
#endif

// One ladder per backend: available unless disabled, detected from the platform.
#if !defined(IOLOOP_HAS_EPOLL) && !defined(IOLOOP_DISABLE_EPOLL)
#if defined(__linux__)
#define IOLOOP_HAS_EPOLL 1
#endif
#endif

#if !defined(IOLOOP_HAS_POLL) && !defined(IOLOOP_DISABLE_POLL)
#if defined(IOLOOP_POSIX)
#define IOLOOP_HAS_POLL 1
#endif
#endif

#if !defined(IOLOOP_HAS_SELECT) && !defined(IOLOOP_DISABLE_SELECT)
#if defined(IOLOOP_POSIX)
#define IOLOOP_HAS_SELECT 1
#endif
#endif

// The default backend: an explicit IOLOOP_BACKEND_* wins, else the best one detected.
#if defined(IOLOOP_BACKEND_EPOLL)
#if !defined(IOLOOP_HAS_EPOLL)
#error "IOLOOP_BACKEND_EPOLL: epoll is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND epoll
#elif defined(IOLOOP_BACKEND_POLL)
#if !defined(IOLOOP_HAS_POLL)
#error "IOLOOP_BACKEND_POLL: poll is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND poll
#elif defined(IOLOOP_BACKEND_SELECT)
#if !defined(IOLOOP_HAS_SELECT)
#error "IOLOOP_BACKEND_SELECT: select is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND select
#elif defined(IOLOOP_BACKEND_KQUEUE) || defined(IOLOOP_BACKEND_IOCP) || \
    defined(IOLOOP_BACKEND_IO_URING)
#error "this ioloop version has no kqueue, iocp or io_uring backend yet"
#elif defined(IOLOOP_HAS_EPOLL)
#define IOLOOP_DEFAULT_BACKEND epoll
#elif defined(IOLOOP_HAS_POLL)
#define IOLOOP_DEFAULT_BACKEND poll
#elif defined(IOLOOP_HAS_SELECT)
#define IOLOOP_DEFAULT_BACKEND select
#else
#error "ioloop: no backend is available on this platform"
#endif

// Keeps a cold path (errors, slow-path frees) out of the hot function that calls it.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define IOLOOP_NOINLINE __declspec(noinline)
#else
#define IOLOOP_NOINLINE
#endif

// Asks for a cache line ahead of use: timers fire in deadline order, not memory order.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_PREFETCH(address) __builtin_prefetch(address)
#else
#define IOLOOP_PREFETCH(address) ((void)(address))
#endif

// The version and the default backend name the inline ABI namespace, so translation units
// built with different backend macros fail to link instead of silently breaking the ODR.
#define IOLOOP_ABI_CONCAT_(a, b, c, d) v##a##_##b##_##c##_##d
#define IOLOOP_ABI_CONCAT(a, b, c, d) IOLOOP_ABI_CONCAT_(a, b, c, d)
#define IOLOOP_ABI_TAG                                                                  \
    IOLOOP_ABI_CONCAT(IOLOOP_VERSION_MAJOR, IOLOOP_VERSION_MINOR, IOLOOP_VERSION_PATCH, \
                      IOLOOP_DEFAULT_BACKEND)
#define IOLOOP_NAMESPACE_BEGIN \
    namespace ioloop {         \
    inline namespace IOLOOP_ABI_TAG {
#define IOLOOP_NAMESPACE_END \
    }                        \
    }

#endif
// end file ioloop/detail/config.hpp

#if !defined(__GNUC__) && !defined(__clang__)
#include <atomic>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

#if defined(__GNUC__) || defined(__clang__)

enum class memory_order : int {
    relaxed = __ATOMIC_RELAXED,
    acquire = __ATOMIC_ACQUIRE,
    release = __ATOMIC_RELEASE,
    acq_rel = __ATOMIC_ACQ_REL,
};

// Lock-free only: signal handlers use these too.
template <class T>
class atomic {
    static_assert(__atomic_always_lock_free(sizeof(T), 0), "ioloop needs lock-free atomics");

public:
    constexpr atomic(T value = T{}) noexcept : value_(value) {}  // NOLINT: like std::atomic
    atomic(const atomic&) = delete;
    atomic& operator=(const atomic&) = delete;

    T load(memory_order order) const noexcept {
        return __atomic_load_n(&value_, static_cast<int>(order));
    }
    void store(T value, memory_order order) noexcept {
        __atomic_store_n(&value_, value, static_cast<int>(order));
    }
    T exchange(T value, memory_order order) noexcept {
        return __atomic_exchange_n(&value_, value, static_cast<int>(order));
    }
    T fetch_add(T delta, memory_order order) noexcept {
        return __atomic_fetch_add(&value_, delta, static_cast<int>(order));
    }
    T fetch_sub(T delta, memory_order order) noexcept {
        return __atomic_fetch_sub(&value_, delta, static_cast<int>(order));
    }
    bool compare_exchange_weak(T& expected, T desired, memory_order success,
                               memory_order failure) noexcept {
        return __atomic_compare_exchange_n(&value_, &expected, desired, true,
                                           static_cast<int>(success), static_cast<int>(failure));
    }

private:
    T value_;
};

#else

using memory_order = std::memory_order;
template <class T>
using atomic = std::atomic<T>;

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/atomic.hpp
// begin file ioloop/detail/chrono.hpp
// ioloop: the clocks and durations. With libstdc++, C++20's <chrono> also brings calendars,
// time zones and their stream output: about 0.1 s of every compile (g++ 12, -O0) that we
// would charge to every user. The part we use, also what <thread> and <mutex> include, is
// <bits/chrono.h>; any other library gets the standard header.
#ifndef IOLOOP_DETAIL_CHRONO_HPP
#define IOLOOP_DETAIL_CHRONO_HPP

#include <version>  // tiny; tells which standard library this is

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif

#endif
// end file ioloop/detail/chrono.hpp
// begin file ioloop/detail/source_location.hpp
// ioloop: where a callback was scheduled. std::source_location needs a compiler builtin
// that Clang 14 lacks with libstdc++; __builtin_FILE/__builtin_LINE work on GCC, Clang
// and MSVC, evaluated at the caller when used as default arguments.
#ifndef IOLOOP_DETAIL_SOURCE_LOCATION_HPP
#define IOLOOP_DETAIL_SOURCE_LOCATION_HPP


#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct source_location {
    const char* file = "";
    std::size_t line = 0;  // as wide as a pointer: no padding, so it travels in registers

    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             std::size_t line = __builtin_LINE()) noexcept {
        return {file, line};
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/source_location.hpp
// begin file ioloop/detail/unique_function.hpp
// ioloop: a move-only callable with a small inline buffer (std::function copies and
// <functional> costs compile time; std::move_only_function is C++23).
#ifndef IOLOOP_DETAIL_UNIQUE_FUNCTION_HPP
#define IOLOOP_DETAIL_UNIQUE_FUNCTION_HPP

// begin file ioloop/detail/type_name.hpp
// ioloop: the name of a type as the compiler spells it, without RTTI, for debug reports.
#ifndef IOLOOP_DETAIL_TYPE_NAME_HPP
#define IOLOOP_DETAIL_TYPE_NAME_HPP


#include <string_view>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The compiler writes T into the signature of this function; cut it out of there.
template <class T>
constexpr std::string_view type_name() noexcept {
#if defined(__clang__) || defined(__GNUC__)
    std::string_view s = __PRETTY_FUNCTION__;
    const std::string_view key = "T = ";
    const auto start = s.find(key);
    if (start == std::string_view::npos) return s;
    s.remove_prefix(start + key.size());
    const auto end = s.find_first_of(";]");
    return s.substr(0, end);
#elif defined(_MSC_VER)
    std::string_view s = __FUNCSIG__;
    const auto start = s.find("type_name<");
    if (start == std::string_view::npos) return s;
    s.remove_prefix(start + 10);
    return s.substr(0, s.rfind(">(void)"));
#else
    return "callable";
#endif
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/type_name.hpp

#include <cstddef>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
public:
    // Three pointers inline: a lambda capturing `this` and two references fits, and the
    // whole object stays at four pointers.
    static constexpr std::size_t inline_size = 3 * sizeof(void*);

    unique_function() noexcept = default;
    unique_function(std::nullptr_t) noexcept {}  // NOLINT: implicit, like std::function

    template <class F, class D = std::decay_t<F>,
              class = std::enable_if_t<!std::is_same_v<D, unique_function> &&
                                       std::is_invocable_r_v<R, D&, Args...>>>
    unique_function(F&& f) {  // NOLINT: implicit, like std::function
        emplace(std::forward<F>(f));
    }

    unique_function(unique_function&& other) noexcept { take(other); }

    unique_function& operator=(unique_function&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }

    unique_function(const unique_function&) = delete;
    unique_function& operator=(const unique_function&) = delete;

    ~unique_function() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    R operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

    // What the callable is, for the debug reports ("which callback blocked the loop").
    std::string_view name() const noexcept { return ops_ ? ops_->name : std::string_view{}; }

    // A callable may describe itself better than its type does (a task step names its
    // task): its `std::string describe() const`, if it has one. Empty otherwise.
    std::string describe() const {
        return ops_ && ops_->describe ? ops_->describe(storage_) : std::string();
    }

    // Constructs the callable in place (the object must be empty): no temporary, no move.
    template <class F, class D = std::decay_t<F>>
    void emplace(F&& f) {
        static_assert(std::is_invocable_r_v<R, D&, Args...>, "wrong signature for this callable");
        if constexpr (fits_inline<D>) {
            ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
        } else {
            *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
        }
        ops_ = &ops_for<D>;
    }

    void reset() noexcept {
        if (ops_) {
            if (ops_->destroy) ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    struct ops {
        R (*invoke)(void*, Args&&...);
        void (*move)(void* from, void* to) noexcept;  // leaves `from` destroyed
        void (*destroy)(void*) noexcept;              // null when there is nothing to destroy
        std::string_view name;
        std::string (*describe)(const void*);  // null unless the callable describes itself
    };

    template <class D>
    static constexpr bool fits_inline =
        sizeof(D) <= inline_size &&
        alignof(D) <= alignof(void*) && std::is_nothrow_move_constructible_v<D>;

    template <class D>
    static D& target(void* p) noexcept {
        if constexpr (fits_inline<D>) {
            return *std::launder(reinterpret_cast<D*>(p));
        } else {
            return **reinterpret_cast<D**>(p);
        }
    }

    // Most callbacks capture a few pointers: nothing to destroy, no call to make.
    template <class D>
    static constexpr void (*destroyer())(void*) noexcept {
        if constexpr (fits_inline<D> && std::is_trivially_destructible_v<D>) {
            return nullptr;
        } else {
            return [](void* p) noexcept {
                if constexpr (fits_inline<D>) {
                    target<D>(p).~D();
                } else {
                    delete &target<D>(p);
                }
            };
        }
    }

    template <class D>
    static constexpr std::string (*describer())(const void*) {
        if constexpr (requires(const D& f) { f.describe(); }) {
            return [](const void* p) { return target<D>(const_cast<void*>(p)).describe(); };
        } else {
            return nullptr;
        }
    }

    template <class D>
    static constexpr ops ops_for = {
        [](void* p, Args&&... args) -> R { return target<D>(p)(std::forward<Args>(args)...); },
        [](void* from, void* to) noexcept {
            if constexpr (fits_inline<D>) {
                D& f = target<D>(from);
                ::new (to) D(std::move(f));
                f.~D();
            } else {
                *reinterpret_cast<D**>(to) = *reinterpret_cast<D**>(from);
            }
        },
        destroyer<D>(),
        type_name<D>(),
        describer<D>(),
    };

    void take(unique_function& other) noexcept {
        if (other.ops_) {
            other.ops_->move(other.storage_, storage_);
            ops_ = std::exchange(other.ops_, nullptr);
        }
    }

    alignas(void*) unsigned char storage_[inline_size];
    const ops* ops_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/unique_function.hpp

#include <cstddef>
#include <cstdint>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class node_pool;
struct node_chunk;

// One scheduled callback: a call_soon, a timer, a reader/writer or a signal handler.
// Shared by the loop's queues and by the user's handles through a reference count.
struct callback_node {
    callback_node* next = nullptr;  // ready queue, or its chunk's idle list
    unique_function<void()> fn;
    source_location where;        // where it was scheduled, for debug reports
    node_chunk* chunk = nullptr;  // where it lives; null for threadsafe nodes
    // Loop-thread nodes only load and store these (plain moves); threadsafe nodes are
    // shared with other threads and use read-modify-write.
    atomic<std::uint32_t> refs{0};
    atomic<bool> cancelled{false};
    bool threadsafe = false;  // made by call_soon_threadsafe: heap-allocated, atomic refs
    bool in_timer_heap = false;
    bool persistent = false;  // runs each time it is queued (a reader, a signal handler)
    std::chrono::steady_clock::time_point when{};  // timers: the deadline
    std::uint64_t seq = 0;                         // timers: FIFO among equal deadlines

    void add_ref() noexcept {
        if (threadsafe) {
            refs.fetch_add(1, memory_order::relaxed);
        } else {
            refs.store(refs.load(memory_order::relaxed) + 1, memory_order::relaxed);
        }
    }

    inline void release() noexcept;
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
        c->idle = n->next;
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

inline void callback_node::release() noexcept {
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

    // Hands the nodes over as a null-terminated list through `next`; the queue is empty.
    callback_node* release_list() noexcept {
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
// end file ioloop/detail/callback_node.hpp
// begin file ioloop/detail/message.hpp
// ioloop: building error and report messages from pieces. Every message goes through
// concat(), so a program instantiates a handful of std::string operations once instead
// of one chain of operator+ overloads per message (which costs compile time at -O0).
#ifndef IOLOOP_DETAIL_MESSAGE_HPP
#define IOLOOP_DETAIL_MESSAGE_HPP


#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

inline std::string concat(std::initializer_list<std::string_view> parts) {
    std::size_t size = 0;
    for (std::string_view part : parts) size += part.size();
    std::string text;
    text.reserve(size);
    for (std::string_view part : parts) text.append(part.data(), part.size());
    return text;
}

// A number spelled in decimal, without <charconv> or std::to_string.
class decimal {
public:
    explicit decimal(long long value) noexcept {
        unsigned long long magnitude = value < 0 ? 0ull - static_cast<unsigned long long>(value)
                                                 : static_cast<unsigned long long>(value);
        char* p = digits_ + sizeof digits_;
        do {
            *--p = static_cast<char>('0' + magnitude % 10);
            magnitude /= 10;
        } while (magnitude != 0);
        if (value < 0) *--p = '-';
        begin_ = p;
    }

    operator std::string_view() const noexcept {  // NOLINT: reads like a string piece
        return {begin_, static_cast<std::size_t>(digits_ + sizeof digits_ - begin_)};
    }

private:
    char digits_[24];
    const char* begin_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/message.hpp
// begin file ioloop/detail/task_registry.hpp
// ioloop: the loop's list of tasks that have not finished (asyncio's all_tasks()). A task
// is linked from its creation to its completion, and the list's link keeps it alive: a
// task runs even if nobody holds it. At close, the loop abandons what is still linked.
#ifndef IOLOOP_DETAIL_TASK_REGISTRY_HPP
#define IOLOOP_DETAIL_TASK_REGISTRY_HPP


#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct registered_task {
    registered_task* prev = nullptr;
    registered_task* next = nullptr;
    // Destroys the task's coroutine without running it further (the loop is closing).
    void (*abandon)(registered_task*) noexcept = nullptr;
};

class task_registry {
public:
    void link(registered_task* t) noexcept {
        t->prev = nullptr;
        t->next = head_;
        if (head_) head_->prev = t;
        head_ = t;
        ++size_;
    }

    void unlink(registered_task* t) noexcept {
        if (t->prev) {
            t->prev->next = t->next;
        } else {
            head_ = t->next;
        }
        if (t->next) t->next->prev = t->prev;
        t->prev = t->next = nullptr;
        --size_;
    }

    registered_task* first() const noexcept { return head_; }
    std::size_t size() const noexcept { return size_; }

    // Abandons every linked task; abandoning one may finish or abandon others.
    void abandon_all() noexcept {
        while (registered_task* t = head_) {
            unlink(t);
            t->abandon(t);
        }
    }

private:
    registered_task* head_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/task_registry.hpp
// begin file ioloop/errors.hpp
// ioloop: the library's own errors. OS failures are std::system_error with the OS's
// std::error_code; misuse of the library (a closed loop, a running loop) is ioloop::error.
#ifndef IOLOOP_ERRORS_HPP
#define IOLOOP_ERRORS_HPP


#include <stdexcept>

IOLOOP_NAMESPACE_BEGIN

// Base of every error the library itself raises.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The operation is not allowed in the object's current state (asyncio's
// InvalidStateError, and its RuntimeError for closed or already running loops).
class invalid_state_error : public error {
public:
    using error::error;
};

// Thrown at a task's suspension point when the task is cancelled, and by awaiting or
// reading the result of a cancelled task or future (asyncio's CancelledError). A task may
// catch it to clean up; letting it escape marks the task cancelled.
class cancelled_error : public error {
public:
    cancelled_error() : error("the task or future was cancelled") {}
    using error::error;
};

// A deadline passed: wait_for, a timeout scope (asyncio's TimeoutError).
class timeout_error : public error {
public:
    timeout_error() : error("the operation timed out") {}
    using error::error;
};

// get_nowait on an empty queue (asyncio.QueueEmpty).
class queue_empty : public error {
public:
    queue_empty() : error("get_nowait: the queue is empty") {}
    using error::error;
};

// put_nowait on a full queue (asyncio.QueueFull).
class queue_full : public error {
public:
    queue_full() : error("put_nowait: the queue is full") {}
    using error::error;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/errors.hpp
// begin file ioloop/executor.hpp
// ioloop: where run_in_executor and to_thread send blocking work (asyncio's
// concurrent.futures.Executor). The default is ioloop::thread_pool; any class that
// implements these two calls can replace it through loop.set_default_executor.
#ifndef IOLOOP_EXECUTOR_HPP
#define IOLOOP_EXECUTOR_HPP


IOLOOP_NAMESPACE_BEGIN

class executor {
public:
    using work = detail::unique_function<void()>;

    executor() = default;
    executor(const executor&) = delete;
    executor& operator=(const executor&) = delete;
    virtual ~executor() = default;

    // Runs `job` on another thread, eventually. Throws invalid_state_error after shutdown.
    virtual void submit(work job) = 0;

    // Accepts no more work, and returns once the work already submitted has finished.
    virtual void shutdown() noexcept = 0;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/executor.hpp
// begin file ioloop/loop_base.hpp
// ioloop: loop_base, everything of an event loop that does not depend on its backend:
// the ready queue, the timers, the cross-thread queue, the exception handler, debug mode,
// the tasks and the executor. basic_event_loop<Backend> adds the backend. The coroutine
// front end sees a loop only through this class, so it is the same code for every backend.
#ifndef IOLOOP_LOOP_BASE_HPP
#define IOLOOP_LOOP_BASE_HPP

// begin file ioloop/detail/remote_queue.hpp
// ioloop: the queue that call_soon_threadsafe pushes into from any thread. Lock-free:
// producers push onto an atomic stack, the loop takes the whole stack at once and
// reverses it, so callbacks still run in the order they were pushed. Only the push that
// finds the queue empty needs to wake the loop: the others know a wakeup is under way.
#ifndef IOLOOP_DETAIL_REMOTE_QUEUE_HPP
#define IOLOOP_DETAIL_REMOTE_QUEUE_HPP


#include <cstdint>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class remote_queue {
public:
    enum class push_result { queued, queued_into_empty, closed };

    push_result push(callback_node* n) noexcept {
        callback_node* head = head_.load(memory_order::relaxed);
        do {
            if (head == closed_marker()) return push_result::closed;
            n->next = head;
        } while (
            !head_.compare_exchange_weak(head, n, memory_order::release, memory_order::relaxed));
        return head == nullptr ? push_result::queued_into_empty : push_result::queued;
    }

    // A cheap check for the loop's every iteration.
    bool has_work() const noexcept {
        callback_node* head = head_.load(memory_order::relaxed);
        return head != nullptr && head != closed_marker();
    }

    // Everything pushed so far, oldest first.
    node_queue take() noexcept {
        return oldest_first(head_.exchange(nullptr, memory_order::acquire));
    }

    // Refuses every later push; returns what was still queued.
    node_queue close() noexcept {
        return oldest_first(head_.exchange(closed_marker(), memory_order::acquire));
    }

private:
    // Never dereferenced: a value no allocation can have.
    static callback_node* closed_marker() noexcept {
        return reinterpret_cast<callback_node*>(std::uintptr_t{1});
    }

    static node_queue oldest_first(callback_node* newest) noexcept {
        if (newest == closed_marker()) newest = nullptr;
        callback_node* oldest = nullptr;
        while (newest) {
            callback_node* next = newest->next;
            newest->next = oldest;
            oldest = newest;
            newest = next;
        }
        node_queue q;
        while (oldest) {
            callback_node* next = oldest->next;
            q.push(oldest);
            oldest = next;
        }
        return q;
    }

    atomic<callback_node*> head_{nullptr};
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/remote_queue.hpp
// begin file ioloop/detail/timer_queue.hpp
// ioloop: the loop's timers, ordered by (deadline, sequence): a wheel of small heaps for
// the next second or so, and one heap for deadlines beyond it.
//
// Why not one heap: a million pending timers make a 16 MB heap, and every pop walks it
// from top to bottom through cache misses. Here a timer goes into the heap of its ~4 ms
// slot, so the heap being popped is small and stays in cache. Within a slot the heap
// keeps exact (deadline, sequence) order, and slots are visited in time order, so the
// order is exactly that of one big heap. Timers past the wheel's horizon wait in the far
// heap and move into the wheel as time reaches them.
#ifndef IOLOOP_DETAIL_TIMER_QUEUE_HPP
#define IOLOOP_DETAIL_TIMER_QUEUE_HPP

// begin file ioloop/detail/timer_heap.hpp
// ioloop: the timer queue, a 4-ary min-heap ordered by (deadline, sequence).
// Entries carry the deadline beside the node pointer, so sifting reads one contiguous
// array and never the nodes; a node does not know its position, so cancelling is O(1):
// the node is marked and dropped when it reaches the top, or purged in bulk (as asyncio
// does) when cancelled nodes outnumber live ones.
#ifndef IOLOOP_DETAIL_TIMER_HEAP_HPP
#define IOLOOP_DETAIL_TIMER_HEAP_HPP

// begin file ioloop/detail/pod_vector.hpp
// ioloop: a growable array of trivially copyable values (timer heap entries, pointers,
// pollfds). std::vector would do, but at -O0 each std::vector<T> a program instantiates
// costs it dozens of functions to compile (measured: four of them add 0.16 s, g++ 12),
// and every user of the header pays that on every compile. Trivially copyable values
// need no constructors or destructors run, so realloc() moves them.
#ifndef IOLOOP_DETAIL_POD_VECTOR_HPP
#define IOLOOP_DETAIL_POD_VECTOR_HPP


#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class pod_vector {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "pod_vector holds trivially copyable values only");

public:
    pod_vector() noexcept = default;
    pod_vector(const pod_vector&) = delete;
    pod_vector& operator=(const pod_vector&) = delete;
    ~pod_vector() { std::free(data_); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T* data() noexcept { return data_; }
    T* begin() noexcept { return data_; }
    T* end() noexcept { return data_ + size_; }

    T& operator[](std::size_t i) noexcept { return data_[i]; }
    T& front() noexcept { return data_[0]; }
    const T& front() const noexcept { return data_[0]; }
    T& back() noexcept { return data_[size_ - 1]; }

    void push_back(const T& value) {
        if (size_ == capacity_) reserve(capacity_ ? 2 * capacity_ : 8);
        data_[size_++] = value;
    }

    void pop_back() noexcept { --size_; }
    void clear() noexcept { size_ = 0; }

    // Grows with copies of `fill`, or shrinks.
    void resize(std::size_t n, const T& fill = T{}) {
        if (n > capacity_) reserve(n > 2 * capacity_ ? n : 2 * capacity_);
        for (std::size_t i = size_; i < n; ++i) data_[i] = fill;
        size_ = n;
    }

private:
    void reserve(std::size_t n) {
        void* grown = std::realloc(static_cast<void*>(data_), n * sizeof(T));
        if (!grown) throw std::bad_alloc();
        data_ = static_cast<T*>(grown);
        capacity_ = n;
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/pod_vector.hpp

#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class timer_heap {
public:
    using rep = std::chrono::steady_clock::rep;

    bool empty() const noexcept { return entries_.empty(); }
    std::size_t size() const noexcept { return entries_.size(); }

    // Takes over the caller's reference to `n`.
    void push(callback_node* n) {
        n->in_timer_heap = true;
        entries_.push_back({n->when.time_since_epoch().count(), n});
        sift_up(entries_.size() - 1);
    }

    callback_node* top() const noexcept { return entries_.front().node; }
    rep top_deadline() const noexcept { return entries_.front().when; }

    // Removes the earliest timer; the caller now owns the heap's reference and must clear
    // n->in_timer_heap. Not touching the node here lets the caller batch those cache misses.
    callback_node* pop() noexcept {
        callback_node* n = entries_.front().node;
        entries_.front() = entries_.back();
        entries_.pop_back();
        if (!entries_.empty()) sift_down(0);
        return n;
    }

    // Removes `n` if it is where a push just put it: on the path from the last entry up
    // to the root (a timer cancelled soon after it was scheduled usually is). Returns
    // false, without looking further, when it is not; the caller then owns no reference.
    bool remove_recent(const callback_node* n) noexcept {
        if (entries_.empty()) return false;
        std::size_t i = entries_.size() - 1;
        while (entries_[i].node != n) {
            if (i == 0) return false;
            i = parent(i);
        }
        entries_[i] = entries_.back();
        entries_.pop_back();
        // The moved entry came from below i, so it cannot belong above it.
        if (i < entries_.size()) sift_down(i);
        return true;
    }

    // Moves every cancelled timer to `dropped` and restores the heap in O(n); returns how
    // many. The caller releases them afterwards: a released callback's destructor may
    // schedule a timer.
    std::size_t purge_cancelled(node_queue& dropped) noexcept {
        const std::size_t before = entries_.size();
        std::size_t kept = 0;
        for (entry& e : entries_) {
            if (e.node->is_cancelled()) {
                e.node->in_timer_heap = false;
                dropped.push(e.node);
            } else {
                entries_[kept++] = e;
            }
        }
        entries_.resize(kept);
        if (kept > 1) {
            for (std::size_t i = parent(kept - 1) + 1; i-- > 0;) sift_down(i);
        }
        return before - kept;
    }

    // Moves every timer to `dropped` (loop close).
    void clear(node_queue& dropped) noexcept {
        for (entry& e : entries_) {
            e.node->in_timer_heap = false;
            dropped.push(e.node);
        }
        entries_.clear();
    }

private:
    struct entry {
        rep when;
        callback_node* node;
    };

    static constexpr std::size_t arity = 4;
    static std::size_t parent(std::size_t i) noexcept { return (i - 1) / arity; }

    static bool before(const entry& a, const entry& b) noexcept {
        return a.when < b.when || (a.when == b.when && a.node->seq < b.node->seq);
    }

    void sift_up(std::size_t i) noexcept {
        const entry e = entries_[i];
        while (i > 0) {
            const std::size_t p = parent(i);
            if (!before(e, entries_[p])) break;
            entries_[i] = entries_[p];
            i = p;
        }
        entries_[i] = e;
    }

    void sift_down(std::size_t i) noexcept {
        const std::size_t n = entries_.size();
        const entry e = entries_[i];
        for (;;) {
            const std::size_t first = i * arity + 1;
            if (first >= n) break;
            const std::size_t last = first + arity < n ? first + arity : n;
            std::size_t best = first;
            for (std::size_t c = first + 1; c < last; ++c) {
                if (before(entries_[c], entries_[best])) best = c;
            }
            if (!before(entries_[best], e)) break;
            entries_[i] = entries_[best];
            i = best;
        }
        entries_[i] = e;
    }

    pod_vector<entry> entries_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/timer_heap.hpp

#include <bit>
#include <cstddef>
#include <cstdint>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class timer_queue {
public:
    using clock = std::chrono::steady_clock;
    using rep = clock::rep;

    timer_queue() noexcept = default;
    timer_queue(const timer_queue&) = delete;
    timer_queue& operator=(const timer_queue&) = delete;

    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    // Takes over the caller's reference to `n`. `now` is the current time: an empty
    // wheel restarts there, so that the next second of deadlines lands in it.
    void push(callback_node* n, clock::time_point now) {
        if (near_count_ == 0) advance(now);
        const std::uint64_t s = slot_of(n->when.time_since_epoch().count());
        if (s < base_ + wheel_slots) {
            put_near(n, s);
        } else {
            far_.push(n);
        }
        ++size_;
    }

    // The earliest timer; the queue must not be empty.
    callback_node* top() noexcept { return earliest().top(); }
    rep top_deadline() noexcept { return earliest().top_deadline(); }

    // Removes the earliest timer; the caller now owns the queue's reference, and clears
    // n->in_timer_heap (see timer_heap::pop).
    callback_node* pop() noexcept {
        timer_heap& h = earliest();
        callback_node* n = h.pop();
        if (&h != &far_) {
            --near_count_;
            if (h.empty()) unmark(static_cast<std::size_t>(&h - near_));
        }
        --size_;
        return n;
    }

    // `n`, still queued, was cancelled. It leaves at once if that is cheap; otherwise it
    // stays until it reaches the top or a purge (cancelled_count() tells when to purge).
    void cancel(callback_node* n) noexcept {
        const std::uint64_t s = slot_of(n->when.time_since_epoch().count());
        const bool near = s < base_ + wheel_slots;
        const std::size_t i = static_cast<std::size_t>((s < base_ ? base_ : s) % wheel_slots);
        if (!(near ? near_[i] : far_).remove_recent(n)) {
            ++cancelled_;
            return;
        }
        if (near) {
            --near_count_;
            if (near_[i].empty()) unmark(i);
        }
        --size_;
        n->in_timer_heap = false;
        n->release();
    }

    // Cancelled timers still queued; a popped one is the caller's to count off.
    std::size_t cancelled_count() const noexcept { return cancelled_; }
    void forget_cancelled() noexcept { --cancelled_; }

    // Turns the wheel to `now`, once everything due before it has been popped: the empty
    // slots behind it are reused for the far future, whose timers move in.
    void advance(clock::time_point now) {
        const std::uint64_t now_slot = slot_of(now.time_since_epoch().count());
        if (near_count_ == 0) {
            if (now_slot > base_) rebase(now_slot);
            return;
        }
        // Only empty slots may be left behind (a slot's heap becomes the one 256 ahead).
        while (base_ < now_slot && !is_marked(base_ % wheel_slots)) ++base_;
        pull_from_far();
    }

    // Moves every cancelled timer to `dropped` (the caller releases them afterwards).
    void purge_cancelled(node_queue& dropped) noexcept {
        for (std::size_t i = 0; i < wheel_slots; ++i) {
            if (!is_marked(i)) continue;
            const std::size_t n = near_[i].purge_cancelled(dropped);
            near_count_ -= n;
            size_ -= n;
            if (near_[i].empty()) unmark(i);
        }
        size_ -= far_.purge_cancelled(dropped);
        cancelled_ = 0;
    }

    // Moves every timer to `dropped` (loop close).
    void clear(node_queue& dropped) noexcept {
        for (timer_heap& h : near_) h.clear(dropped);
        far_.clear(dropped);
        for (std::uint64_t& word : marks_) word = 0;
        size_ = near_count_ = cancelled_ = 0;
    }

private:
    static constexpr std::size_t wheel_slots = 256;
    // About 4.2 ms per slot (2^22 ns): a 256-slot wheel covers about 1.07 s ahead. A
    // clock coarser than that gets one tick per slot.
    static constexpr rep slot_ticks_exact =
        std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(1 << 22)).count();
    static constexpr rep slot_ticks = slot_ticks_exact > 0 ? slot_ticks_exact : 1;

    static std::uint64_t slot_of(rep when) noexcept {
        return when <= 0 ? 0 : static_cast<std::uint64_t>(when / slot_ticks);
    }

    // The heap holding the earliest timer: the first occupied slot from the wheel's
    // base, else the far heap.
    timer_heap& earliest() noexcept {
        const std::size_t start = static_cast<std::size_t>(base_ % wheel_slots);
        for (std::size_t k = 0; k < wheel_slots;) {
            const std::size_t i = (start + k) % wheel_slots;
            const std::uint64_t word = marks_[i / 64] >> (i % 64);
            if (word == 0) {
                k += 64 - i % 64;  // skip the rest of this word
                continue;
            }
            k += static_cast<std::size_t>(std::countr_zero(word));
            if (k < wheel_slots) return near_[(start + k) % wheel_slots];
        }
        return far_;
    }

    // A timer lands in its own slot, or in the wheel's first slot when its own is already
    // behind the wheel: it is still earlier than every timer in a later slot, and the
    // first slot's heap puts it in order among the others there.
    void put_near(callback_node* n, std::uint64_t s) {
        const std::size_t i = static_cast<std::size_t>((s < base_ ? base_ : s) % wheel_slots);
        near_[i].push(n);
        mark(i);
        ++near_count_;
    }

    void rebase(std::uint64_t s) {
        base_ = s;
        pull_from_far();
    }

    void pull_from_far() {
        while (!far_.empty() && slot_of(far_.top_deadline()) < base_ + wheel_slots) {
            callback_node* n = far_.pop();
            put_near(n, slot_of(n->when.time_since_epoch().count()));
        }
    }

    void mark(std::size_t i) noexcept { marks_[i / 64] |= std::uint64_t{1} << (i % 64); }
    void unmark(std::size_t i) noexcept { marks_[i / 64] &= ~(std::uint64_t{1} << (i % 64)); }
    bool is_marked(std::size_t i) const noexcept { return (marks_[i / 64] >> (i % 64)) & 1u; }

    timer_heap near_[wheel_slots];
    timer_heap far_;
    std::uint64_t marks_[wheel_slots / 64] = {};  // which slots hold timers
    std::uint64_t base_ = 0;      // the wheel holds slots [base_, base_ + wheel_slots)
    std::size_t size_ = 0;        // all timers
    std::size_t near_count_ = 0;  // timers in the wheel
    std::size_t cancelled_ = 0;   // cancelled timers still queued
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/timer_queue.hpp
// begin file ioloop/exception_context.hpp
// ioloop: what the loop hands its exception handler (asyncio's context dict).
#ifndef IOLOOP_EXCEPTION_CONTEXT_HPP
#define IOLOOP_EXCEPTION_CONTEXT_HPP


#include <exception>
#include <string>

IOLOOP_NAMESPACE_BEGIN

struct exception_context {
    std::string message;           // what happened, always set
    std::exception_ptr exception;  // the exception, when one escaped
    std::string callback;          // the callback involved and where it was scheduled, if any
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/exception_context.hpp
// begin file ioloop/handle.hpp
// ioloop: handle and timer_handle, what call_soon / call_later return (asyncio's Handle
// and TimerHandle). A handle shares its callback's node; cancel() is idempotent and safe
// after the callback ran. A handle may outlive its loop (it then only reports state).
#ifndef IOLOOP_HANDLE_HPP
#define IOLOOP_HANDLE_HPP


#include <utility>

IOLOOP_NAMESPACE_BEGIN

class loop_base;

class handle {
public:
    handle() noexcept = default;

    handle(const handle& other) noexcept : node_(other.node_) {
        if (node_) node_->add_ref();
    }
    handle(handle&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    handle& operator=(handle other) noexcept {
        std::swap(node_, other.node_);
        return *this;
    }
    ~handle() {
        if (node_) node_->release();
    }

    // The callback will not run. Calling it again, or after the callback ran, does nothing.
    void cancel() noexcept {
        if (node_) node_->cancel();
    }

    bool cancelled() const noexcept { return node_ && node_->is_cancelled(); }

    // False for a default-constructed (or moved-from) handle.
    explicit operator bool() const noexcept { return node_ != nullptr; }

protected:
    friend class loop_base;

    // Adopts one reference that the caller already counted.
    explicit handle(detail::callback_node* adopted) noexcept : node_(adopted) {}

    detail::callback_node* node_ = nullptr;
};

class timer_handle : public handle {
public:
    timer_handle() noexcept = default;

    // The deadline, on loop.time()'s clock.
    std::chrono::steady_clock::time_point when() const noexcept {
        return node_ ? node_->when : std::chrono::steady_clock::time_point{};
    }

private:
    friend class loop_base;

    using handle::handle;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/handle.hpp

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

template <class T>
class coro;
template <class T>
class task;
template <class T>
class future;
class loop_base;

namespace detail {

// Lets what outlives a loop (a future kept after the loop is gone) know that it is gone.
struct loop_access;  // the coroutine front end's way in

// Its address names a backend type at run time, without RTTI.
template <class Backend>
inline constexpr char backend_tag = 0;

struct loop_anchor {
    loop_base* loop;
    std::size_t refs;
};

}  // namespace detail

class loop_base {
    static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>,
                  "ioloop counts time in steady_clock's nanoseconds");

public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    using duration = clock::duration;
    using exception_handler = detail::unique_function<void(const exception_context&)>;

    loop_base(const loop_base&) = delete;
    loop_base& operator=(const loop_base&) = delete;

    // ---- scheduling -------------------------------------------------------------------

    // Runs fn on a later iteration, after everything scheduled before it (FIFO).
    template <class F>
    handle call_soon(F&& fn, detail::source_location where = detail::source_location::current()) {
        check_open("call_soon");
        detail::callback_node* n = make_node(std::forward<F>(fn), where);
        n->refs.store(2, detail::memory_order::relaxed);  // the ready queue's and the handle's
        ready_.push(n);
        return handle(n);
    }

    // Like call_soon, from any thread; wakes the loop if it sleeps in its poll.
    template <class F>
    handle call_soon_threadsafe(
        F&& fn, detail::source_location where = detail::source_location::current()) {
        static_assert(std::is_invocable_v<std::decay_t<F>&>,
                      "call_soon_threadsafe: the callback must be callable with no arguments");
        auto* n = new detail::callback_node;
        n->threadsafe = true;
        n->where = where;
        n->refs.store(2, detail::memory_order::relaxed);
        try {
            n->fn.emplace(std::forward<F>(fn));
        } catch (...) {
            delete n;
            throw;
        }
        const auto pushed = remote_.push(n);
        if (pushed == detail::remote_queue::push_result::closed) {
            delete n;
            throw invalid_state_error("call_soon_threadsafe: the event loop is closed");
        }
        // Only the push into an empty queue wakes the loop: later ones ride on that wakeup.
        const bool wake = pushed == detail::remote_queue::push_result::queued_into_empty;
        if (wake) interrupt_(this);
        return handle(n);
    }

    // Runs fn once `delay` has passed on loop.time()'s clock, never earlier.
    template <class Rep, class Period, class F>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn,
                            detail::source_location where = detail::source_location::current()) {
        const time_point now = time();
        return schedule_timer(now, deadline_after(now, delay), std::forward<F>(fn), where,
                              "call_later");
    }

    // Runs fn once loop.time() reaches `when`, never earlier.
    template <class Duration, class F>
    timer_handle call_at(std::chrono::time_point<clock, Duration> when, F&& fn,
                         detail::source_location where = detail::source_location::current()) {
        return schedule_timer(time(), std::chrono::ceil<duration>(when), std::forward<F>(fn), where,
                              "call_at");
    }

    // The loop's clock: monotonic.
    time_point time() const noexcept { return clock::now(); }

    // ---- running ----------------------------------------------------------------------

    // The current iteration finishes, then run_forever returns.
    void stop() noexcept { stopping_ = true; }

    bool is_running() const noexcept { return running_; }
    bool is_closed() const noexcept { return closed_; }

    // Iterations run so far: lets a program (or a test) see that an idle loop sleeps.
    std::uint64_t iteration_count() const noexcept { return iterations_; }

    // ---- coroutines (defined with the coroutine front end) -----------------------------

    // A pending future bound to this loop (asyncio's loop.create_future()).
    template <class T = void>
    future<T> create_future();

    // Schedules the coroutine to start on the next iteration; the task runs even if
    // nobody awaits it. An empty name becomes "Task-<n>".
    template <class T>
    task<T> create_task(coro<T> body, std::string name = {});

    // Runs fn() on the default executor; the task completes on the loop's thread.
    template <class F>
    auto run_in_executor(F fn);

    // run_in_executor sends work here from now on; the loop does not own it. It must
    // outlive the work sent to it.
    void set_default_executor(executor& e) noexcept { executor_ = &e; }

    // ---- errors and debugging ---------------------------------------------------------

    // Receives every exception that escapes a callback, and the debug-mode reports.
    // An empty handler restores default_exception_handler.
    void set_exception_handler(exception_handler h) noexcept {
        handler_ = std::move(h);
        ++handler_version_;
    }

    void call_exception_handler(const exception_context& ctx) noexcept {
        if (!handler_) {
            default_exception_handler(ctx);
            return;
        }
        // The handler may replace itself while it runs: keep it alive until it returns, and
        // put it back only if nobody set another. Meanwhile, reports it causes itself go to
        // the default handler instead of recursing.
        exception_handler running = std::move(handler_);
        const std::uint64_t version = handler_version_;
        try {
            running(ctx);
        } catch (...) {
            default_exception_handler(
                {"exception in the exception handler", std::current_exception(), ctx.callback});
            default_exception_handler(ctx);
        }
        if (handler_version_ == version) handler_ = std::move(running);
    }

    // Prints the context to stderr.
    static void default_exception_handler(const exception_context& ctx) noexcept {
        std::fprintf(stderr, "ioloop: %s\n", ctx.message.c_str());
        if (!ctx.callback.empty()) std::fprintf(stderr, "  callback: %s\n", ctx.callback.c_str());
        if (ctx.exception) {
            try {
                std::rethrow_exception(ctx.exception);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "  exception: %s\n", e.what());
            } catch (...) {
                std::fprintf(stderr, "  exception: (not derived from std::exception)\n");
            }
        }
    }

    // Debug mode times every callback and reports those slower than
    // slow_callback_duration() (default 100 ms) through the exception handler.
    void set_debug(bool on) noexcept { debug_ = on; }
    bool get_debug() const noexcept { return debug_; }

    template <class Rep, class Period>
    void set_slow_callback_duration(std::chrono::duration<Rep, Period> d) noexcept {
        slow_callback_ = std::chrono::duration_cast<duration>(d);
    }
    duration slow_callback_duration() const noexcept { return slow_callback_; }

protected:
    // `interrupt` wakes the loop's backend from its wait, from any thread.
    // `backend` identifies the backend type (get_running_loop<Backend>() checks it).
    loop_base(void (*interrupt)(loop_base*) noexcept, const void* backend)
        : backend_tag_(backend), interrupt_(interrupt), pool_(new detail::node_pool) {
        pool_->on_timer_cancel = [](void* q, detail::callback_node* n) noexcept {
            static_cast<detail::timer_queue*>(q)->cancel(n);
        };
        pool_->timer_queue = &timers_;
        // Like PYTHONASYNCIODEBUG: debug mode without touching the code.
        if (const char* env = std::getenv("IOLOOP_DEBUG")) debug_ = env[0] != '\0' && env[0] != '0';
    }

    ~loop_base() {
        if (anchor_) {
            anchor_->loop = nullptr;
            release_anchor(anchor_);
        }
        pool_->orphan();
    }

    // Closing, the backend-independent part: nothing queued runs any more, unfinished
    // tasks are abandoned (their coroutines destroyed), the default executor is shut
    // down. The nodes to drop are added to `dropped`; the caller releases them last.
    void close_queues(detail::node_queue& dropped) noexcept {
        closed_ = true;
        dropped.append(remote_.close());
        tasks_.abandon_all();
        dropped.append(ready_.take());
        timers_.clear(dropped);
        if (owned_executor_) {
            owned_executor_->shutdown();
            delete std::exchange(owned_executor_, nullptr);
            executor_ = nullptr;
        }
    }

    // Marks the loop as running on this thread for as long as run_forever runs.
    struct running_scope {
        explicit running_scope(loop_base& l) : loop(l) {
            loop.running_ = true;
            running_loop_ = &loop;
        }
        ~running_scope() {
            loop.running_ = false;
            loop.stopping_ = false;
            running_loop_ = nullptr;
        }
        running_scope(const running_scope&) = delete;
        running_scope& operator=(const running_scope&) = delete;
        loop_base& loop;
    };

    // Throws unless run_forever may start now.
    void check_can_run() const {
        if (closed_) throw invalid_state_error("run_forever: the event loop is closed");
        if (running_) throw invalid_state_error("run_forever: this event loop is already running");
        if (running_loop_) {
            throw invalid_state_error(
                "run_forever: another event loop is already running in this thread");
        }
    }

    // Step 4: exactly the callbacks that are ready now; what they schedule runs on the
    // next iteration.
    void run_ready() {
        detail::callback_node* next = ready_.release_list();
        if (debug_) [[unlikely]] {
            run_timed(next);
            return;
        }
        while (next) {
            detail::callback_node* n = next;
            next = n->next;
            if (!n->is_cancelled()) {
                try {
                    n->fn();
                } catch (...) {
                    report_exception(*n);
                }
            }
            finish(n);
        }
    }

    std::chrono::nanoseconds poll_timeout() noexcept {
        if (!ready_.empty() || stopping_) return std::chrono::nanoseconds(0);
        drop_cancelled_head_timers();
        if (timers_.empty()) return std::chrono::nanoseconds(-1);
        // Compared before subtracting: a deadline of time_point::min() must not overflow.
        const auto deadline = timers_.top_deadline();
        const auto now = time().time_since_epoch().count();
        if (deadline <= now) return std::chrono::nanoseconds(0);
        return std::chrono::nanoseconds(deadline - now);  // the clock counts nanoseconds
    }

    // Queues a registered (reader, writer, signal) callback; the registration keeps its
    // own reference.
    void enqueue(detail::callback_node* n) noexcept {
        n->add_ref();
        ready_.push(n);
    }

    void take_remote() noexcept {
        if (remote_.has_work()) ready_.append(remote_.take());
    }

    void fire_due_timers() {
        if (timers_.empty()) return;
        // Cancelled timers left in the queue cost a pop each; a purge costs a visit to
        // every queued node. Purge only when they are most of the queue.
        if (timers_.cancelled_count() > purge_threshold &&
            timers_.cancelled_count() * 4 > timers_.size() * 3) {
            detail::node_queue dropped;
            timers_.purge_cancelled(dropped);
            dropped.clear();
        }
        const time_point now = time();
        const auto now_ticks = now.time_since_epoch().count();
        // Due timers are taken a batch at a time and their nodes prefetched, so the cache
        // misses of nodes scattered in memory overlap instead of queueing up.
        detail::callback_node* due[16];
        std::size_t count;
        do {
            count = 0;
            while (count < std::size(due) && !timers_.empty() &&
                   timers_.top_deadline() <= now_ticks) {
                due[count] = timers_.pop();
                IOLOOP_PREFETCH(due[count]);
                ++count;
            }
            for (std::size_t i = 0; i < count; ++i) {
                detail::callback_node* n = due[i];
                if (n->is_cancelled()) {
                    drop_cancelled_timer(n);
                } else {
                    n->in_timer_heap = false;
                    ready_.push(n);  // the timer queue's reference moves to the ready queue
                }
            }
        } while (count == std::size(due));
        timers_.advance(now);
    }

    void drop_cancelled_head_timers() noexcept {
        while (!timers_.empty() && timers_.top()->is_cancelled()) {
            drop_cancelled_timer(timers_.pop());
        }
    }

    // A cancelled timer popped from the timer queue: it leaves the queue's count and its
    // reference goes.
    void drop_cancelled_timer(detail::callback_node* n) noexcept {
        n->in_timer_heap = false;
        timers_.forget_cancelled();
        n->release();
    }

    // Ends a registration (reader, writer, signal handler): if it is queued in this
    // iteration it must not run, and the registration's reference goes.
    static void unregister(detail::callback_node* n) noexcept {
        n->cancel();
        n->release();
    }

    // A one-shot callback that ran (or was skipped) drops its callable now, with what it
    // captured, even if a handle keeps the node: as asyncio drops a handle's callback.
    static void finish(detail::callback_node* n) noexcept {
        if (!n->persistent) n->fn.reset();
        n->release();
    }

    // Step 4 in debug mode: each callback is timed, the slow ones reported.
    IOLOOP_NOINLINE void run_timed(detail::callback_node* next) noexcept {
        while (next) {
            detail::callback_node* n = next;
            next = n->next;
            if (!n->is_cancelled()) {
                const time_point start = time();
                try {
                    n->fn();
                } catch (...) {
                    report_exception(*n);
                }
                const duration took = time() - start;
                if (took >= slow_callback_) report_slow(*n, took);
            }
            finish(n);
        }
    }

    void report_slow(const detail::callback_node& n, duration took) noexcept {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3f", double(took.count()) * 1e-9);
        std::string callback = describe(n);
        std::string message =
            detail::concat({"executing ", callback, " took ", seconds, " seconds"});
        call_exception_handler({std::move(message), nullptr, std::move(callback)});
    }

    IOLOOP_NOINLINE void report_exception(detail::callback_node& n) noexcept {
        call_exception_handler({"exception in callback", std::current_exception(), describe(n)});
    }

    // "main()::<lambda()> scheduled at hello.cpp:12"
    static std::string describe(const detail::callback_node& n) {
        std::string own = n.fn.describe();
        if (!own.empty()) return own;
        return detail::concat({n.fn.name(), " scheduled at ", n.where.file, ":",
                               detail::decimal(static_cast<long long>(n.where.line))});
    }

    void check_open(const char* what) const {
        if (closed_)
            throw invalid_state_error(detail::concat({what, ": the event loop is closed"}));
    }

    // A fresh node holding fn, with no references counted yet.
    template <class F>
    detail::callback_node* make_node(F&& fn, detail::source_location where) {
        static_assert(std::is_invocable_v<std::decay_t<F>&>,
                      "ioloop: the callback must be callable with no arguments");
        detail::callback_node* n = pool_->acquire();
        try {
            n->fn.emplace(std::forward<F>(fn));
        } catch (...) {
            pool_->recycle(n);
            throw;
        }
        n->where = where;
        return n;
    }

    // A node that runs each time it is queued (readers, writers, signal handlers).
    template <class F>
    detail::callback_node* make_persistent_node(F&& fn, detail::source_location where) {
        detail::callback_node* n = make_node(std::forward<F>(fn), where);
        n->persistent = true;
        return n;
    }

    template <class F>
    timer_handle schedule_timer(time_point now, time_point when, F&& fn,
                                const detail::source_location& where, const char* what) {
        check_open(what);
        detail::callback_node* n = make_node(std::forward<F>(fn), where);
        n->when = when;
        n->seq = ++timer_seq_;
        n->refs.store(2, detail::memory_order::relaxed);  // the heap's and the handle's
        try {
            timers_.push(n, now);
        } catch (...) {
            n->refs.store(0, detail::memory_order::relaxed);
            pool_->recycle(n);
            throw;
        }
        return timer_handle(n);
    }

    // now + delay, rounded up to the clock's tick, saturating instead of overflowing. A
    // negative delay gives a deadline in the past, ordered like any other (asyncio does
    // the same): call_later(-5s) runs before an earlier call_later(0s).
    template <class Rep, class Period>
    static time_point deadline_after(time_point now, std::chrono::duration<Rep, Period> delay) {
        // Checked first in floating point, in clock ticks: computing the room left on
        // either side must not overflow either.
        constexpr double ticks_per_unit = double(Period::num) * duration::period::den /
                                          (double(Period::den) * duration::period::num);
        const double ticks = double(delay.count()) * ticks_per_unit;
        const double at = double(now.time_since_epoch().count());
        if (ticks >= double(std::numeric_limits<duration::rep>::max()) - at)
            return time_point::max();
        if (ticks <= double(std::numeric_limits<duration::rep>::min()) - at)
            return time_point::min();
        return now + std::chrono::ceil<duration>(delay);
    }

    static void release_anchor(detail::loop_anchor* a) noexcept {
        if (--a->refs == 0) delete a;
    }

    // Cancelled timers are purged in bulk past this many (and past 3/4 of the queue).
    static constexpr std::size_t purge_threshold = 64;

    // The loop running on this thread, if any (asyncio: "Cannot run the event loop while
    // another loop is running"; get_running_loop()).
    static inline thread_local loop_base* running_loop_ = nullptr;

    const void* backend_tag_;
    void (*interrupt_)(loop_base*) noexcept;
    detail::node_pool* pool_;  // owned; orphaned in the destructor
    detail::node_queue ready_;
    detail::timer_queue timers_;
    std::uint64_t timer_seq_ = 0;
    detail::remote_queue remote_;  // from call_soon_threadsafe

    detail::task_registry tasks_;            // the tasks that have not finished
    std::uint64_t task_counter_ = 0;         // names "Task-<n>"
    detail::loop_anchor* anchor_ = nullptr;  // made for the first future
    executor* executor_ = nullptr;           // run_in_executor's; made on first use
    executor* owned_executor_ = nullptr;     // the default thread pool, once made

    exception_handler handler_;
    std::uint64_t handler_version_ = 0;  // counts set_exception_handler calls
    duration slow_callback_ = std::chrono::milliseconds(100);
    std::uint64_t iterations_ = 0;
    bool debug_ = false;
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;

    friend struct detail::loop_access;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/loop_base.hpp

#include <cstdint>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct loop_access {
    // The loop running on this thread, or null.
    static loop_base* running() noexcept { return loop_base::running_loop_; }

    // The running loop; `what` names the caller in the error when there is none.
    static loop_base& running_or_throw(const char* what) {
        loop_base* l = loop_base::running_loop_;
        if (!l) throw invalid_state_error(concat({what, ": no running event loop"}));
        return *l;
    }

    static const void* backend_tag(const loop_base& l) noexcept { return l.backend_tag_; }

    static task_registry& tasks(loop_base& l) noexcept { return l.tasks_; }
    static std::uint64_t next_task_id(loop_base& l) noexcept { return ++l.task_counter_; }

    // Schedules fn like call_soon, without making a handle; does nothing on a closed loop
    // (what it would have woken is being abandoned).
    template <class F>
    static void post(loop_base& l, F&& fn) {
        if (l.closed_) return;
        callback_node* n = l.make_node(std::forward<F>(fn), source_location{});
        n->refs.store(1, memory_order::relaxed);
        l.ready_.push(n);
    }

    // A counted reference to the loop's anchor, made on first use.
    static loop_anchor* anchor(loop_base& l) {
        if (!l.anchor_) l.anchor_ = new loop_anchor{&l, 1};
        ++l.anchor_->refs;
        return l.anchor_;
    }
    static void release(loop_anchor* a) noexcept { loop_base::release_anchor(a); }

    static executor*& executor_slot(loop_base& l) noexcept { return l.executor_; }
    static executor*& owned_executor_slot(loop_base& l) noexcept { return l.owned_executor_; }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/loop_access.hpp
// begin file ioloop/coro/result_value.hpp
// ioloop: the slot where a coroutine, a task or a future keeps its result until it is
// read. Empty until set; no <optional>, and a void result is only a flag.
#ifndef IOLOOP_CORO_RESULT_VALUE_HPP
#define IOLOOP_CORO_RESULT_VALUE_HPP


#include <new>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class result_value {
    static_assert(!std::is_reference_v<T>, "ioloop: coro<T&> is not supported; return a pointer");

public:
    result_value() noexcept {}
    result_value(const result_value&) = delete;
    result_value& operator=(const result_value&) = delete;
    ~result_value() { reset(); }

    template <class U>
    void set(U&& v) {
        reset();
        ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
        has_ = true;
    }

    bool has_value() const noexcept { return has_; }
    T& get() noexcept { return value_; }

    void reset() noexcept {
        if (has_) {
            value_.~T();
            has_ = false;
        }
    }

private:
    union {
        T value_;
    };
    bool has_ = false;
};

template <>
class result_value<void> {
public:
    void set() noexcept { has_ = true; }
    bool has_value() const noexcept { return has_; }
    void get() noexcept {}
    void reset() noexcept { has_ = false; }

private:
    bool has_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/result_value.hpp
// begin file ioloop/coro/task_base.hpp
// ioloop: the untyped part of a task (asyncio's Task): a future whose result comes from a
// coroutine, stepped by the loop. A step resumes the coroutine where it last suspended;
// an awaiter that suspends a task says so with suspend(), and wake() schedules the next
// step. cancel() reaches the awaiter the task waits in (its wait_point), so that
// cancelled_error is thrown right there.
#ifndef IOLOOP_CORO_TASK_BASE_HPP
#define IOLOOP_CORO_TASK_BASE_HPP

// begin file ioloop/coro/future_base.hpp
// ioloop: the untyped part of every future and task (asyncio's Future): its state, the
// exception it ended with, and the list of what waits for it. Futures live on their
// loop's thread, so the reference count and the list need no atomics.
#ifndef IOLOOP_CORO_FUTURE_BASE_HPP
#define IOLOOP_CORO_FUTURE_BASE_HPP


#include <cstdint>
#include <exception>
#include <string>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Something that waits for a future to finish: a suspended awaiter, a done callback.
class done_link {
public:
    // The future finished. The link is already off the future's list.
    virtual void on_done() noexcept = 0;

    // The future is destroyed unfinished with the link still on its list (a done callback
    // on a future nobody completes; awaiters keep their future alive).
    virtual void on_future_destroyed() noexcept {}

    bool linked() const noexcept { return linked_; }

protected:
    ~done_link() = default;

private:
    friend class future_base;
    done_link* prev_ = nullptr;
    done_link* next_ = nullptr;
    bool linked_ = false;
};

class future_base {
public:
    enum class status : unsigned char { pending, finished, failed, cancelled };

    explicit future_base(loop_base& loop) : anchor_(loop_access::anchor(loop)) {}
    future_base(const future_base&) = delete;
    future_base& operator=(const future_base&) = delete;

    void add_ref() noexcept { ++refs_; }

    // The last reference reports an exception nobody retrieved, then frees the future.
    void release() noexcept {
        if (--refs_ != 0) return;
        if (status_ == status::failed && !retrieved_) report_unretrieved();
        delete this;
    }

    status state() const noexcept { return status_; }
    bool done() const noexcept { return status_ != status::pending; }
    bool cancelled() const noexcept { return status_ == status::cancelled; }

    // The loop this future belongs to; null once that loop is destroyed.
    loop_base* loop() const noexcept { return anchor_->loop; }

    // A plain future is cancelled at once; a task overrides this (it is cancelled where it
    // waits). False if already done.
    virtual bool cancel() noexcept {
        if (done()) return false;
        error_ = std::make_exception_ptr(cancelled_error());
        finish(status::cancelled);
        return true;
    }

    // Throws unless the future finished with a value: cancelled_error if cancelled, the
    // exception it failed with, invalid_state_error if it is still pending.
    void rethrow_if_not_finished(const char* what) {
        switch (status_) {
            case status::finished:
                return;
            case status::pending:
                throw invalid_state_error(concat({what, ": the result is not ready yet"}));
            case status::failed:
                retrieved_ = true;
                std::rethrow_exception(error_);
            case status::cancelled:
                std::rethrow_exception(error_);
        }
    }

    // The exception it failed with (null if it finished with a value); asyncio's
    // Future.exception(): throws cancelled_error if cancelled, invalid_state_error if pending.
    std::exception_ptr exception() {
        if (status_ == status::pending)
            throw invalid_state_error("exception: the future is not done yet");
        if (status_ == status::cancelled) std::rethrow_exception(error_);
        retrieved_ = true;
        return status_ == status::failed ? error_ : nullptr;
    }

    // Marks the future finished with the value its owner stored.
    void set_finished() noexcept { finish(status::finished); }

    // Fails the future with `e`, marking it cancelled if `e` is a cancelled_error.
    void set_exception(std::exception_ptr e) {
        if (done()) throw invalid_state_error("set_exception: the future is already done");
        error_ = std::move(e);
        finish(is_cancellation(error_) ? status::cancelled : status::failed);
    }

    // `l` is told when the future finishes. The future must be pending.
    void add_link(done_link* l) noexcept {
        l->linked_ = true;
        l->next_ = nullptr;
        l->prev_ = tail_;
        if (tail_) {
            tail_->next_ = l;
        } else {
            head_ = l;
        }
        tail_ = l;
    }

    void remove_link(done_link* l) noexcept {
        if (!l->linked_) return;
        if (l->prev_) {
            l->prev_->next_ = l->next_;
        } else {
            head_ = l->next_;
        }
        if (l->next_) {
            l->next_->prev_ = l->prev_;
        } else {
            tail_ = l->prev_;
        }
        l->linked_ = false;
    }

    // How the exception handler names this future ("future", "task Task-3 (...)").
    virtual std::string describe() const { return "future"; }

    static bool is_cancellation(const std::exception_ptr& e) noexcept {
        if (!e) return false;
        try {
            std::rethrow_exception(e);
        } catch (const cancelled_error&) {
            return true;
        } catch (...) {
            return false;
        }
    }

protected:
    virtual ~future_base() {
        while (done_link* l = head_) {
            remove_link(l);
            l->on_future_destroyed();
        }
        loop_access::release(anchor_);
    }

    // Marks the future done and tells everything that waits, in the order it started
    // waiting (asyncio runs done callbacks in registration order).
    void finish(status s) noexcept {
        status_ = s;
        while (done_link* l = head_) {
            remove_link(l);
            l->on_done();
        }
    }

    std::exception_ptr error_;

private:
    void report_unretrieved() noexcept {
        loop_base* l = loop();
        if (!l) return;
        try {
            l->call_exception_handler({"exception was never retrieved", error_, describe()});
        } catch (...) {  // describing it failed (out of memory): nothing more to do
        }
    }

    loop_anchor* anchor_;
    done_link* head_ = nullptr;
    done_link* tail_ = nullptr;
    std::uint32_t refs_ = 1;
    status status_ = status::pending;
    bool retrieved_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/future_base.hpp

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class task_base;

// The task whose step runs on this thread now, if any.
inline thread_local task_base* current_task = nullptr;

// Where a coroutine was defined, for reports: captured by its promise's constructor.
struct coroutine_origin {
    const char* function = "";
    const char* file = "";
    std::size_t line = 0;

    // As a default argument, evaluated where the call is: in a promise's constructor, that
    // is inside the coroutine itself.
    static constexpr coroutine_origin here(const char* function = __builtin_FUNCTION(),
                                           const char* file = __builtin_FILE(),
                                           std::size_t line = __builtin_LINE()) noexcept {
        return {function, file, line};
    }
};

// Where a suspended task waits: the awaiter that suspended it.
class wait_point {
public:
    // The task was cancelled while it waits here. Either stop waiting and wake the task
    // (it then throws cancelled_error where it waits), or pass the cancellation on to
    // what it awaits and call t.cancel_passed_on() (an awaited task or future, which
    // wakes the task once it is done).
    virtual void on_cancel(task_base& t) noexcept = 0;

protected:
    ~wait_point() = default;
};

class task_base : public future_base, public registered_task {
public:
    task_base(loop_base& loop, std::coroutine_handle<> body, std::string name,
              coroutine_origin origin)
        : future_base(loop),
          body_(body),
          resume_at_(body),
          name_(std::move(name)),
          id_(loop_access::next_task_id(loop)),
          origin_(origin) {
        abandon = [](registered_task* r) noexcept { static_cast<task_base*>(r)->abandon_now(); };
    }

    // Links the task into its loop and schedules its first step. The loop's list keeps a
    // reference until the task is done.
    void start() {
        loop_base& l = *loop();
        add_ref();
        loop_access::tasks(l).link(this);
        scheduled_ = true;
        loop_access::post(l, step_callback{this});
    }

    // ---- the awaiter protocol ---------------------------------------------------------

    // From await_suspend: the task suspends in `at`, waiting in `w` (null if what it
    // waits for cannot be interrupted). A cancel requested while the task ran is
    // delivered here, at the first suspension point after it.
    void suspend(std::coroutine_handle<> at, wait_point* w) noexcept {
        resume_at_ = at;
        wait_ = w;
        if (must_cancel_ && w) w->on_cancel(*this);
    }

    // What the task waits for happened (or the wait was cancelled): the next step runs
    // on a later iteration. Waking a task that is already scheduled does nothing.
    void wake() noexcept {
        wait_ = nullptr;
        if (scheduled_) return;
        scheduled_ = true;
        if (loop_base* l = loop()) loop_access::post(*l, step_callback{this});
    }

    // From await_resume: true once if a cancel is to be thrown at this suspension point.
    // An awaiter that must undo something first (hand back a lock it was granted) calls
    // this; the others call throw_if_cancelled().
    bool take_cancel() noexcept { return std::exchange(must_cancel_, false); }

    void throw_if_cancelled() {
        if (take_cancel()) throw cancelled_error();
    }

    // For a wait_point that passed the cancellation on (see wait_point::on_cancel).
    void cancel_passed_on() noexcept { must_cancel_ = false; }

    // ---- asyncio's Task interface -----------------------------------------------------

    // Requests cancellation: cancelled_error is thrown where the task waits, or at its next
    // suspension point if it is running. False if the task is already done.
    bool cancel() noexcept override {
        if (done()) return false;
        ++cancel_requests_;
        must_cancel_ = true;
        if (wait_point* w = wait_) w->on_cancel(*this);
        return true;
    }

    // Pending cancel requests (asyncio's Task.cancelling()).
    std::size_t cancelling() const noexcept { return cancel_requests_; }

    // Withdraws one cancel request (asyncio's Task.uncancel()); returns those left. When
    // none are left, a cancel not yet delivered is dropped too.
    std::size_t uncancel() noexcept {
        if (cancel_requests_ > 0 && --cancel_requests_ == 0) must_cancel_ = false;
        return cancel_requests_;
    }

    std::string get_name() const {
        return name_.empty() ? concat({"Task-", decimal(static_cast<long long>(id_))}) : name_;
    }
    void set_name(std::string name) { name_ = std::move(name); }

    // "task Task-3 (coroutine fetch at app.cpp:12)"
    std::string describe() const override {
        return concat({"task ", get_name(), " (coroutine ", origin_.function, " at ", origin_.file,
                       ":", decimal(static_cast<long long>(origin_.line)), ")"});
    }

    // Called by the task's coroutine when its body has returned or thrown, from its final
    // suspension: takes the result, destroys the coroutine, finishes the task.
    virtual void body_finished() noexcept = 0;

protected:
    ~task_base() override {
        if (body_) body_.destroy();
    }

    // The body is over: the task is done and leaves its loop's list (and its reference).
    void complete(status s) noexcept {
        if (body_) std::exchange(body_, nullptr).destroy();
        if (loop_base* l = loop()) loop_access::tasks(*l).unlink(this);
        finish(s);
        release();
    }

    std::coroutine_handle<> body_;  // the task's own coroutine, until it finishes

private:
    // The loop callback that runs one step. It describes itself for debug reports.
    struct step_callback {
        task_base* task;
        void operator()() const noexcept { task->step(); }
        std::string describe() const { return task->describe(); }
    };

    void step() noexcept {
        scheduled_ = false;
        add_ref();  // finishing drops the list's reference: stay alive until the step ends
        task_base* outer = std::exchange(current_task, this);
        if (!started_ && must_cancel_) {
            // Cancelled before its first step: nothing of the body runs.
            must_cancel_ = false;
            error_ = std::make_exception_ptr(cancelled_error());
            complete(status::cancelled);
        } else {
            started_ = true;
            resume_at_.resume();
        }
        current_task = outer;
        release();
    }

    // The loop is closing with the task unfinished (the list already dropped it): its
    // coroutine is destroyed where it waits, and it counts as cancelled.
    void abandon_now() noexcept {
        wait_ = nullptr;
        if (body_) std::exchange(body_, nullptr).destroy();
        error_ = std::make_exception_ptr(
            cancelled_error("the event loop closed before the task finished"));
        finish(status::cancelled);
        release();
    }

    std::coroutine_handle<> resume_at_;  // where the next step resumes
    wait_point* wait_ = nullptr;
    std::string name_;
    std::uint64_t id_;
    coroutine_origin origin_;
    std::size_t cancel_requests_ = 0;
    bool must_cancel_ = false;
    bool scheduled_ = false;
    bool started_ = false;
};

// The task that runs the caller; `what` names the caller in the error outside a task.
inline task_base& current_task_or_throw(const char* what) {
    if (!current_task) throw invalid_state_error(concat({what, ": not inside a task"}));
    return *current_task;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/task_base.hpp

#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

template <class T>
class coro;

namespace detail {

template <class T>
class task_state;

class coro_promise_base {
public:
    explicit coro_promise_base(coroutine_origin origin) noexcept : origin_(origin) {}

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            coro_promise_base& p = h.promise();
            if (p.inline_) return std::noop_coroutine();  // back into the awaiter
            if (p.continuation_) return p.continuation_;
            p.root_->body_finished();  // destroys this coroutine
            return std::noop_coroutine();
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }

    void unhandled_exception() noexcept { error_ = std::current_exception(); }

    const coroutine_origin& origin() const noexcept { return origin_; }
    std::exception_ptr& error() noexcept { return error_; }

    // Awaited: the awaiting coroutine resumes when this one is done.
    void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
    // Set while the awaiter runs the coroutine's first stretch from inside await_suspend.
    void set_inline(bool on) noexcept { inline_ = on; }
    // Made a task: the task hears when this coroutine is done.
    void set_root(task_base* t) noexcept { root_ = t; }

private:
    std::coroutine_handle<> continuation_;
    task_base* root_ = nullptr;
    std::exception_ptr error_;
    coroutine_origin origin_;
    bool inline_ = false;
};

template <class T>
class coro_promise : public coro_promise_base {
public:
    // The default argument is evaluated in the coroutine itself: it names it. (Its type
    // is one no coroutine takes, so the coroutine's own arguments never match it.)
    explicit coro_promise(coroutine_origin origin = coroutine_origin::here()) noexcept
        : coro_promise_base(origin) {}

    coro<T> get_return_object() noexcept;

    template <class U = T>
    void return_value(U&& v) {
        value_.set(std::forward<U>(v));
    }

    result_value<T>& value() noexcept { return value_; }

private:
    result_value<T> value_;
};

template <>
class coro_promise<void> : public coro_promise_base {
public:
    explicit coro_promise(coroutine_origin origin = coroutine_origin::here()) noexcept
        : coro_promise_base(origin) {}

    coro<void> get_return_object() noexcept;
    void return_void() noexcept { value_.set(); }
    result_value<void>& value() noexcept { return value_; }

private:
    result_value<void> value_;
};

template <class>
inline constexpr bool dependent_false = false;

}  // namespace detail

template <class T = void>
class [[nodiscard]] coro {
public:
    using promise_type = detail::coro_promise<T>;
    using value_type = T;

    coro() noexcept = default;
    coro(coro&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    coro& operator=(coro other) noexcept {
        std::swap(h_, other.h_);
        return *this;
    }
    ~coro() {
        if (h_) drop();
    }

    // False once awaited or made a task (or moved from).
    explicit operator bool() const noexcept { return h_ != nullptr; }

    class awaiter {
    public:
        explicit awaiter(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
        awaiter(const awaiter&) = delete;
        awaiter& operator=(const awaiter&) = delete;
        ~awaiter() {
            if (h_) h_.destroy();
        }

        bool await_ready() const noexcept { return false; }
        // Runs the coroutine until it first suspends or finishes. Finished: the awaiting
        // coroutine goes on without suspending. Suspended: it resumes the awaiting one
        // when it finishes.
        bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
            promise_type& p = h_.promise();
            p.set_continuation(awaiting);
            p.set_inline(true);
            h_.resume();
            p.set_inline(false);
            return !h_.done();
        }
        T await_resume() {
            promise_type& p = h_.promise();
            if (p.error()) std::rethrow_exception(p.error());
            if constexpr (!std::is_void_v<T>) return std::move(p.value().get());
        }

    private:
        std::coroutine_handle<promise_type> h_;
    };

    // Runs the coroutine inline, in the awaiting task; its result or exception comes out.
    awaiter operator co_await() && noexcept { return awaiter(std::exchange(h_, nullptr)); }

    template <class Self = coro>
    void operator co_await() & {
        static_assert(detail::dependent_false<Self>,
                      "a coro runs once: write co_await std::move(c), or co_await f() directly");
    }

    // Gives up the coroutine (to a task, which then owns it).
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, nullptr); }

private:
    friend promise_type;
    explicit coro(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}

    // Destroyed without having run: in debug mode that is reported, as asyncio reports a
    // coroutine that was never awaited.
    void drop() noexcept {
        loop_base* l = detail::loop_access::running();
        if (l && l->get_debug()) {
            const detail::coroutine_origin& o = h_.promise().origin();
            try {
                l->call_exception_handler(
                    {detail::concat({"coroutine ", o.function, " (", o.file, ":",
                                     detail::decimal(static_cast<long long>(o.line)),
                                     ") was never awaited"}),
                     nullptr,
                     {}});
            } catch (...) {  // out of memory while reporting: the report is lost
            }
        }
        std::exchange(h_, nullptr).destroy();
    }

    std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <class T>
coro<T> coro_promise<T>::get_return_object() noexcept {
    return coro<T>(std::coroutine_handle<coro_promise>::from_promise(*this));
}

inline coro<void> coro_promise<void>::get_return_object() noexcept {
    return coro<void>(std::coroutine_handle<coro_promise>::from_promise(*this));
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/coro.hpp
// begin file ioloop/coro/future.hpp
// ioloop: future<T> (asyncio's Future), a result that someone sets later, and any_future,
// what every future and task offers whatever its result type. Both are counted
// references to a state on the loop's thread; awaiting one suspends the current task
// until it is done. Awaiting an lvalue gives a reference to the result (several tasks
// may await it); awaiting an rvalue moves the result out.
#ifndef IOLOOP_CORO_FUTURE_HPP
#define IOLOOP_CORO_FUTURE_HPP


#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class future_state final : public future_base {
public:
    using future_base::future_base;
    result_value<T>& value() noexcept { return value_; }

private:
    result_value<T> value_;
};

// Suspends the current task until the future (or task) is done; a cancel of the waiting
// task is passed on to what it awaits, as asyncio does. The result is moved out (Move),
// referenced, or not taken at all (Discard: only the exception comes out).
template <class State, bool Move, bool Discard = false>
class future_awaiter final : public done_link, public wait_point {
public:
    explicit future_awaiter(State* s) noexcept : state_(s) { state_->add_ref(); }
    future_awaiter(const future_awaiter&) = delete;
    future_awaiter& operator=(const future_awaiter&) = delete;
    ~future_awaiter() {
        state_->remove_link(this);
        state_->release();
    }

    bool await_ready() const noexcept { return state_->done(); }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("co_await");
        if (static_cast<future_base*>(task_) == static_cast<future_base*>(state_))
            throw invalid_state_error("co_await: a task cannot await itself");
        state_->add_link(this);
        task_->suspend(h, this);
    }

    decltype(auto) await_resume() {
        if (task_) task_->throw_if_cancelled();
        state_->rethrow_if_not_finished("co_await");
        if constexpr (!Discard) return take_value();
    }

    void on_done() noexcept override { task_->wake(); }

    void on_cancel(task_base& t) noexcept override {
        if (state_->cancel()) t.cancel_passed_on();
    }

private:
    // By value when moved out: the awaiter, and maybe the state, die with the expression.
    decltype(auto) take_value() {
        using T = std::remove_reference_t<decltype(state_->value().get())>;
        if constexpr (Move && !std::is_void_v<T>) {
            return T(std::move(state_->value().get()));
        } else {
            return state_->value().get();
        }
    }

    State* state_;
    task_base* task_ = nullptr;
};

// A done callback: runs on the loop, like a call_soon made when the future finished.
template <class Handle, class F>
class callback_link final : public done_link {
public:
    explicit callback_link(F&& fn) : fn_(std::move(fn)) {}

    void on_done() noexcept override { post_or_delete(); }
    void on_future_destroyed() noexcept override { delete this; }

    // The future is already done: the callback is scheduled at once.
    void schedule_now(future_base* state) noexcept {
        state_ = state;
        post_or_delete();
    }

    void bind(future_base* state) noexcept { state_ = state; }

private:
    // Owns the link, and a reference to the future, until it has run.
    struct run {
        callback_link* link;
        Handle handle;
        run(run&& o) noexcept : link(std::exchange(o.link, nullptr)), handle(std::move(o.handle)) {}
        run(callback_link* l, Handle h) noexcept : link(l), handle(std::move(h)) {}
        run(const run&) = delete;
        run& operator=(const run&) = delete;
        run& operator=(run&&) = delete;
        ~run() { delete link; }
        void operator()() {
            if constexpr (std::is_invocable_v<F&, Handle&>) {
                link->fn_(handle);
            } else {
                link->fn_();
            }
        }
    };

    void post_or_delete() noexcept {
        loop_base* l = state_->loop();
        if (!l || l->is_closed()) {
            delete this;
            return;
        }
        state_->add_ref();
        loop_access::post(*l, run(this, Handle(state_)));
    }

    F fn_;
    future_base* state_ = nullptr;
};

}  // namespace detail

class any_future {
public:
    any_future() noexcept = default;
    any_future(const any_future& o) noexcept : state_(o.state_) {
        if (state_) state_->add_ref();
    }
    any_future(any_future&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
    any_future& operator=(any_future o) noexcept {
        std::swap(state_, o.state_);
        return *this;
    }
    ~any_future() {
        if (state_) state_->release();
    }

    // False for a default-constructed or moved-from handle.
    explicit operator bool() const noexcept { return state_ != nullptr; }

    bool done() const noexcept { return state_->done(); }
    bool cancelled() const noexcept { return state_->cancelled(); }

    // A future is cancelled at once; a task gets cancelled_error where it waits. False if
    // already done.
    bool cancel() noexcept { return state_->cancel(); }

    // The exception it failed with, or null; throws cancelled_error if it was cancelled
    // and invalid_state_error if it is not done.
    std::exception_ptr exception() const { return state_->exception(); }

    // Same state: the same future or task.
    friend bool operator==(const any_future& a, const any_future& b) noexcept {
        return a.state_ == b.state_;
    }

    // Adopts one reference the caller counted.
    explicit any_future(detail::future_base* adopted) noexcept : state_(adopted) {}

    detail::future_base* state() const noexcept { return state_; }

protected:
    // fn() or fn(self) runs on the loop once the future is done (at once if it is).
    template <class Handle, class F>
    void add_done_callback_as(F&& fn) {
        using link = detail::callback_link<Handle, std::decay_t<F>>;
        auto* l = new link(std::decay_t<F>(std::forward<F>(fn)));
        if (state_->done()) {
            l->schedule_now(state_);
        } else {
            l->bind(state_);
            state_->add_link(l);
        }
    }

    detail::future_base* state_ = nullptr;
};

template <class T = void>
class future : public any_future {
public:
    using value_type = T;
    using any_future::any_future;

    // The value; throws what the future failed with, cancelled_error if it was cancelled,
    // invalid_state_error if it is not done yet.
    std::add_lvalue_reference_t<T> result() {
        typed()->rethrow_if_not_finished("result");
        return typed()->value().get();
    }

    template <class U = T>
    void set_result(U&& v) {
        check_pending("set_result");
        typed()->value().set(std::forward<U>(v));
        finish();
    }

    void set_result() requires std::is_void_v<T> {
        check_pending("set_result");
        typed()->value().set();
        finish();
    }

    void set_exception(std::exception_ptr e) { typed()->set_exception(std::move(e)); }

    // fn() or fn(future<T>&) runs on the loop once the future is done.
    template <class F>
    void add_done_callback(F&& fn) {
        add_done_callback_as<future>(std::forward<F>(fn));
    }

    auto operator co_await() & noexcept {
        return detail::future_awaiter<detail::future_state<T>, false>(typed());
    }
    auto operator co_await() && noexcept {
        return detail::future_awaiter<detail::future_state<T>, true>(typed());
    }

private:
    detail::future_state<T>* typed() const noexcept {
        return static_cast<detail::future_state<T>*>(state_);
    }
    void check_pending(const char* what) const {
        if (state_->done())
            throw invalid_state_error(detail::concat({what, ": the future is already done"}));
    }
    void finish() noexcept { state_->set_finished(); }
};

template <class T>
future<T> loop_base::create_future() {
    check_open("create_future");
    return future<T>(new detail::future_state<T>(*this));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/future.hpp
// begin file ioloop/coro/run.hpp
// ioloop: running coroutines to completion: loop.run_until_complete (asyncio's), the
// one-call ioloop::run (asyncio.run), and get_running_loop().
#ifndef IOLOOP_CORO_RUN_HPP
#define IOLOOP_CORO_RUN_HPP

// begin file ioloop/coro/task.hpp
// ioloop: task<T> (asyncio's Task), a coroutine scheduled on the loop, and any_task, what
// every task offers whatever its result type (current_task(), all_tasks()). A task starts
// on the next iteration and runs even if nobody awaits it; its result or exception is
// kept until read, and an exception nobody read is reported when the task goes away.
#ifndef IOLOOP_CORO_TASK_HPP
#define IOLOOP_CORO_TASK_HPP


#include <coroutine>
#include <cstddef>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class task_state final : public task_base {
public:
    using body_handle = std::coroutine_handle<coro_promise<T>>;

    task_state(loop_base& loop, body_handle body, std::string name)
        : task_base(loop, body, std::move(name), body.promise().origin()) {
        body.promise().set_root(this);
    }

    result_value<T>& value() noexcept { return value_; }

    void body_finished() noexcept override {
        coro_promise<T>& p = body_handle::from_address(body_.address()).promise();
        if (p.error()) {
            error_ = std::move(p.error());
            complete(is_cancellation(error_) ? status::cancelled : status::failed);
            return;
        }
        try {
            if constexpr (std::is_void_v<T>) {
                value_.set();
            } else {
                value_.set(std::move(p.value().get()));
            }
        } catch (...) {  // T's move constructor threw
            error_ = std::current_exception();
            complete(status::failed);
            return;
        }
        complete(status::finished);
    }

private:
    result_value<T> value_;
};

}  // namespace detail

class any_task : public any_future {
public:
    using any_future::any_future;

    // The name given to create_task, or "Task-<n>".
    std::string get_name() const { return base()->get_name(); }
    void set_name(std::string name) { base()->set_name(std::move(name)); }

    // Cancel requests not withdrawn (asyncio's Task.cancelling() / uncancel()).
    std::size_t cancelling() const noexcept { return base()->cancelling(); }
    std::size_t uncancel() noexcept { return base()->uncancel(); }

    // fn() or fn(any_task&) runs on the loop once the task is done.
    template <class F>
    void add_done_callback(F&& fn) {
        add_done_callback_as<any_task>(std::forward<F>(fn));
    }

    // Waits for the task to be done, without its result (its exception still comes out).
    auto operator co_await() const noexcept {
        return detail::future_awaiter<detail::task_base, false, true>(base());
    }

protected:
    detail::task_base* base() const noexcept { return static_cast<detail::task_base*>(state_); }
};

template <class T = void>
class task : public any_task {
public:
    using value_type = T;
    using any_task::any_task;

    // The value; throws what the task failed with, cancelled_error if it was cancelled,
    // invalid_state_error if it is not done yet.
    std::add_lvalue_reference_t<T> result() {
        typed()->rethrow_if_not_finished("result");
        return typed()->value().get();
    }

    // fn() or fn(task<T>&) runs on the loop once the task is done.
    template <class F>
    void add_done_callback(F&& fn) {
        add_done_callback_as<task>(std::forward<F>(fn));
    }

    auto operator co_await() & noexcept {
        return detail::future_awaiter<detail::task_state<T>, false>(typed());
    }
    auto operator co_await() && noexcept {
        return detail::future_awaiter<detail::task_state<T>, true>(typed());
    }

private:
    detail::task_state<T>* typed() const noexcept {
        return static_cast<detail::task_state<T>*>(state_);
    }
};

template <class T>
task<T> loop_base::create_task(coro<T> body, std::string name) {
    check_open("create_task");
    if (!body) throw invalid_state_error("create_task: the coro was already awaited or moved from");
    auto h = body.release();
    detail::task_state<T>* t;
    try {
        t = new detail::task_state<T>(*this, h, std::move(name));
    } catch (...) {
        h.destroy();
        throw;
    }
    task<T> result(t);  // adopts the first reference
    t->start();
    return result;
}

// Schedules the coroutine on the running loop (asyncio.create_task).
template <class T>
task<T> create_task(coro<T> body, std::string name = {}) {
    return detail::loop_access::running_or_throw("create_task")
        .create_task(std::move(body), std::move(name));
}

// The task running the caller; an empty any_task outside a task.
inline any_task current_task() noexcept {
    detail::task_base* t = detail::current_task;
    if (!t) return any_task();
    t->add_ref();
    return any_task(t);
}

// The running loop's unfinished tasks (asyncio.all_tasks()).
inline std::vector<any_task> all_tasks() {
    detail::task_registry& tasks =
        detail::loop_access::tasks(detail::loop_access::running_or_throw("all_tasks"));
    std::vector<any_task> result;
    result.reserve(tasks.size());
    for (detail::registered_task* r = tasks.first(); r; r = r->next) {
        auto* t = static_cast<detail::task_base*>(r);
        t->add_ref();
        result.emplace_back(t);
    }
    return result;
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/task.hpp
// begin file ioloop/event_loop.hpp
// ioloop: basic_event_loop<Backend>, asyncio's event loop: loop_base (the queues, the
// timers, the tasks) plus a backend. One iteration (run_once) is the four steps of
// DESIGN.md: compute the poll timeout, poll, move due timers to the ready queue, run
// exactly the callbacks that were ready when the step began.
#ifndef IOLOOP_EVENT_LOOP_HPP
#define IOLOOP_EVENT_LOOP_HPP

// begin file ioloop/backend/concept.hpp
// ioloop: what a backend must provide, stated once as a concept so a wrong backend fails
// with one clear line. A readiness backend watches descriptors and reports, for each
// ready one, the pointer it was given and which of io_read / io_write happened. Completion
// backends (IOCP, io_uring) will report finished operations through the same wait().
#ifndef IOLOOP_BACKEND_CONCEPT_HPP
#define IOLOOP_BACKEND_CONCEPT_HPP


#include <string_view>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

// Interest and readiness bits. An error or hang-up on a descriptor reports both, so
// whichever callback is registered runs and sees the error from its own read or write.
inline constexpr unsigned io_read = 1;
inline constexpr unsigned io_write = 2;

// Stands for the loop's event callback in the concept: void(void* data, unsigned events).
struct event_sink_archetype {
    void operator()(void*, unsigned) const noexcept {}
};

template <class B>
concept event_backend = requires(B& b, std::chrono::nanoseconds timeout,
                                 event_sink_archetype sink) {
    requires std::is_convertible_v<decltype(B::name), std::string_view>;
    // Blocks up to `timeout` (negative: forever, zero: just look), then calls sink for
    // every event. Returns early, with no event, after interrupt().
    b.wait(timeout, sink);
    // Makes a wait() in progress, or the next one, return. Thread- and signal-safe.
    { b.interrupt() } noexcept;
};

template <class B>
concept readiness_backend = event_backend<B> && requires(B& b, int fd, unsigned events,
                                                         void* data) {
    // Changes the interest in `fd` from `old_events` to `new_events` (0 means not watched),
    // reporting events with `data`. Throws std::system_error for an fd it cannot watch.
    b.watch(fd, events, events, data);
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/backend/concept.hpp
// begin file ioloop/detail/posix.hpp
// ioloop: small POSIX shims shared by the backends: errno to std::system_error, and the
// wakeup descriptor another thread or a signal handler uses to interrupt a poll.
#ifndef IOLOOP_DETAIL_POSIX_HPP
#define IOLOOP_DETAIL_POSIX_HPP


#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// A poll timeout in milliseconds for epoll_wait() and poll(): -1 (forever) for a negative
// one, rounded up so that a timer never fires early because the kernel woke us sooner.
inline int timeout_ms(std::chrono::nanoseconds t) noexcept {
    if (t.count() < 0) return -1;
    const long long ms = (t.count() + 999'999) / 1'000'000;
    return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}

// Whether `fd` names an open descriptor: checked before watching it, so a bad fd fails
// where it is added instead of inside a later poll.
inline bool is_open_fd(int fd) noexcept { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

inline void set_nonblocking_cloexec(int fd) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl == -1 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
        throw_errno(errno, "fcntl");
    }
}

// Level-triggered "wake up" flag as a descriptor: an eventfd on Linux, a pipe elsewhere.
// notify() is async-signal-safe and thread-safe.
class wakeup_fd {
public:
    wakeup_fd() {
#if defined(__linux__)
        read_fd_ = write_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (read_fd_ == -1) throw_errno(errno, "eventfd");
#else
        int fds[2];
        if (::pipe(fds) == -1) throw_errno(errno, "pipe");
        read_fd_ = fds[0];
        write_fd_ = fds[1];
        try {
            set_nonblocking_cloexec(read_fd_);
            set_nonblocking_cloexec(write_fd_);
        } catch (...) {
            close_fds();
            throw;
        }
#endif
    }
    wakeup_fd(const wakeup_fd&) = delete;
    wakeup_fd& operator=(const wakeup_fd&) = delete;
    ~wakeup_fd() { close_fds(); }

    int fd() const noexcept { return read_fd_; }

    void notify() noexcept {
        const int saved = errno;  // may run inside a signal handler
        const std::uint64_t one = 1;
        // EAGAIN means the counter or pipe is already full: the wakeup is pending anyway.
        while (::write(write_fd_, &one, write_fd_ == read_fd_ ? sizeof one : 1) == -1 &&
               errno == EINTR) {
        }
        errno = saved;
    }

    void drain() noexcept {
        std::uint64_t buf[8];
        while (true) {
            const ::ssize_t n = ::read(read_fd_, buf, sizeof buf);
            if (read_fd_ != write_fd_ && n == static_cast<::ssize_t>(sizeof buf))
                continue;  // a pipe may hold more
            if (n == -1 && errno == EINTR) continue;
            return;
        }
    }

private:
    void close_fds() noexcept {
        if (write_fd_ != read_fd_ && write_fd_ != -1) ::close(write_fd_);
        if (read_fd_ != -1) ::close(read_fd_);
    }

    int read_fd_ = -1;
    int write_fd_ = -1;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
// end file ioloop/detail/posix.hpp
// begin file ioloop/detail/signals.hpp
// ioloop: the process-wide side of add_signal_handler. A POSIX signal handler may only
// touch lock-free atomics and async-signal-safe calls, so it marks the signal pending and
// wakes the loop that registered it; the loop runs the user's callback on its own thread.
#ifndef IOLOOP_DETAIL_SIGNALS_HPP
#define IOLOOP_DETAIL_SIGNALS_HPP


#if defined(IOLOOP_POSIX)

#include <cerrno>

#include <signal.h>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What the signal handler may reach of a loop: a flag and a signal-safe wakeup.
struct signal_target {
    atomic<bool> any_pending{false};
    void (*wake)(void* context) noexcept = nullptr;
    void* context = nullptr;
};

// Signals are numbered below NSIG on every POSIX system we know; 65 covers Linux's
// real-time signals too.
#if defined(NSIG)
inline constexpr int max_signal = NSIG;
#else
inline constexpr int max_signal = 65;
#endif

struct signal_slot {
    atomic<bool> pending{false};
    atomic<signal_target*> target{nullptr};
};

inline signal_slot signal_slots[max_signal];

// Installed with sigaction for every signal a loop handles.
inline void on_signal(int sig) {
    if (sig <= 0 || sig >= max_signal) return;
    signal_slot& slot = signal_slots[sig];
    slot.pending.store(true, memory_order::release);
    if (signal_target* t = slot.target.load(memory_order::acquire)) {
        t->any_pending.store(true, memory_order::release);
        t->wake(t->context);
    }
}

// The disposition a signal had before a loop took it, restored when the loop lets go.
using saved_signal_action = struct sigaction;

// Routes `sig` to on_signal; SA_RESTART so that other threads' blocking calls are not
// interrupted by a signal only the loop cares about.
inline void install_signal_handler(int sig, saved_signal_action& saved) {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (::sigaction(sig, &sa, &saved) == -1) {
        throw_errno(errno, concat({"add_signal_handler: sigaction(", decimal(sig), ")"}));
    }
}

inline void restore_signal_handler(int sig, const saved_signal_action& saved) noexcept {
    ::sigaction(sig, &saved, nullptr);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
// end file ioloop/detail/signals.hpp

#include <cstddef>
#include <system_error>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

template <class Backend>
class basic_event_loop : public loop_base {
    static_assert(
        backend::event_backend<Backend>,
        "basic_event_loop<Backend>: Backend does not model ioloop::backend::event_backend");

public:
    using backend_type = Backend;

    basic_event_loop()
        : loop_base(
              [](loop_base* self) noexcept {
                  static_cast<basic_event_loop*>(self)->backend_.interrupt();
              },
              &detail::backend_tag<Backend>) {
        signal_target_.wake = [](void* b) noexcept { static_cast<Backend*>(b)->interrupt(); };
        signal_target_.context = &backend_;
    }

    ~basic_event_loop() {
        if (!closed_) close();
        delete[] signals_;
    }

    // ---- running ----------------------------------------------------------------------

    // Runs iterations until stop(). A stop() made before the call makes it run one.
    void run_forever() {
        check_can_run();
        running_scope scope(*this);
        do {
            run_once();
        } while (!stopping_);
    }

    // Runs the loop until the task (or the coroutine, made a task) is done; returns its
    // result or throws its exception (defined with the coroutine front end).
    template <class Awaitable>
    decltype(auto) run_until_complete(Awaitable&& work);

    // Drops every pending callback, timer, watched descriptor and signal handler, and
    // destroys the coroutines of unfinished tasks. A closed loop cannot schedule or run
    // anything. Closing twice does nothing.
    void close() {
        if (running_) throw invalid_state_error("close: the event loop is running");
        if (closed_) return;
        detail::node_queue dropped;
        if (signals_) {
            for (int sig = 1; sig < detail::max_signal; ++sig) remove_signal_handler(sig);
        }
        for (fd_watch*& w : watches_) {
            if (!w) continue;
            backend_.watch(w->fd, w->events, 0, w);
            if (w->reader) dropped.push(w->reader);
            if (w->writer) dropped.push(w->writer);
            delete std::exchange(w, nullptr);
        }
        watched_count_ = 0;
        close_queues(dropped);
        // Last: releasing runs the callbacks' destructors, which may do anything.
        dropped.clear();
    }

    // ---- descriptors (readiness backends only) ----------------------------------------

    // Runs fn on every iteration while fd is readable; replaces an earlier reader of fd.
    template <class F>
    void add_reader(int fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        add_watch(fd, backend::io_read, make_persistent_node(std::forward<F>(fn), where),
                  "add_reader");
    }

    // True if fd had a reader.
    bool remove_reader(int fd) {
        require_readiness_backend();
        return remove_watch(fd, backend::io_read);
    }

    template <class F>
    void add_writer(int fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        add_watch(fd, backend::io_write, make_persistent_node(std::forward<F>(fn), where),
                  "add_writer");
    }

    bool remove_writer(int fd) {
        require_readiness_backend();
        return remove_watch(fd, backend::io_write);
    }

    // ---- signals ----------------------------------------------------------------------

    // Runs fn on the loop's thread each time `sig` arrives; replaces an earlier handler.
    // One loop at a time may handle a given signal.
    template <class F>
    void add_signal_handler(int sig, F&& fn,
                            detail::source_location where = detail::source_location::current()) {
        check_open("add_signal_handler");
        if (sig <= 0 || sig >= detail::max_signal) {
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    detail::concat({"add_signal_handler: ", detail::decimal(sig),
                                                    " is not a signal number"}));
        }
        detail::signal_slot& slot = detail::signal_slots[sig];
        detail::signal_target* owner = slot.target.load(detail::memory_order::acquire);
        if (owner && owner != &signal_target_) {
            throw invalid_state_error(
                detail::concat({"add_signal_handler: signal ", detail::decimal(sig),
                                " is already handled by another event loop"}));
        }
        detail::callback_node* n = make_persistent_node(std::forward<F>(fn), where);
        n->refs.store(1, detail::memory_order::relaxed);  // the loop's registration
        if (!signals_) signals_ = new signal_registration[detail::max_signal]();
        signal_registration& reg = signals_[sig];
        if (detail::callback_node* old = reg.handler) {
            unregister(old);
        } else {
            try {
                slot.pending.store(false, detail::memory_order::relaxed);
                slot.target.store(&signal_target_, detail::memory_order::release);
                detail::install_signal_handler(sig, reg.saved);
            } catch (...) {
                slot.target.store(nullptr, detail::memory_order::release);
                n->release();
                throw;
            }
        }
        reg.handler = n;
    }

    // True if sig had a handler; the signal's earlier disposition is restored.
    bool remove_signal_handler(int sig) {
        if (!signals_ || sig <= 0 || sig >= detail::max_signal) return false;
        detail::callback_node* n = std::exchange(signals_[sig].handler, nullptr);
        if (!n) return false;
        detail::restore_signal_handler(sig, signals_[sig].saved);
        detail::signal_slots[sig].target.store(nullptr, detail::memory_order::release);
        unregister(n);
        return true;
    }

private:
    static constexpr void require_readiness_backend() noexcept {
        static_assert(backend::readiness_backend<Backend>,
                      "add_reader/add_writer need a readiness backend (epoll, kqueue, poll, "
                      "select); a completion backend such as IOCP cannot wait for readiness: "
                      "use the sock_* operations or transports instead");
    }

    // A descriptor's reader and writer callbacks; the backend reports events with it.
    struct fd_watch {
        int fd;
        unsigned events = 0;
        detail::callback_node* reader = nullptr;
        detail::callback_node* writer = nullptr;
    };

    void run_once() {
        ++iterations_;
        // 1. Timeout: none if work is ready, else until the nearest timer, else forever.
        const std::chrono::nanoseconds timeout = poll_timeout();
        // 2. Poll. With work ready and nothing to watch the syscall can only return the
        //    wakeup descriptor, and the flags below already tell us that.
        if (timeout.count() != 0 || watched_count_ != 0) {
            backend_.wait(timeout, [this](void* data, unsigned events) { on_io(data, events); });
        }
        take_remote();
        take_signals();
        // 3. Timers.
        fire_due_timers();
        // 4. Exactly what is ready now.
        run_ready();
    }

    void on_io(void* data, unsigned events) noexcept {
        auto* w = static_cast<fd_watch*>(data);
        if ((events & backend::io_read) && w->reader) enqueue(w->reader);
        if ((events & backend::io_write) && w->writer) enqueue(w->writer);
    }

    void take_signals() noexcept {
        // A plain load first: the exchange is a locked instruction, and this runs every time.
        if (!signals_ || !signal_target_.any_pending.load(detail::memory_order::relaxed) ||
            !signal_target_.any_pending.exchange(false, detail::memory_order::acq_rel)) {
            return;
        }
        for (int sig = 1; sig < detail::max_signal; ++sig) {
            if (signals_[sig].handler &&
                detail::signal_slots[sig].pending.exchange(false, detail::memory_order::acq_rel)) {
                enqueue(signals_[sig].handler);
            }
        }
    }

    void add_watch(int fd, unsigned which, detail::callback_node* n, const char* what) {
        n->refs.store(1, detail::memory_order::relaxed);  // the registration's
        try {
            check_open(what);
            if (!detail::is_open_fd(fd)) {
                detail::throw_errno(EBADF, detail::concat({what, ": fd ", detail::decimal(fd),
                                                           " is not an open descriptor"}));
            }
            const auto ufd = static_cast<std::size_t>(fd);
            if (ufd >= watches_.size()) watches_.resize(ufd + 1);
            if (!watches_[ufd]) watches_[ufd] = new fd_watch{fd};
        } catch (...) {
            n->release();
            throw;
        }
        fd_watch& w = *watches_[static_cast<std::size_t>(fd)];
        const unsigned before = w.events;
        try {
            backend_.watch(fd, before, before | which, &w);
        } catch (...) {
            if (before == 0) delete std::exchange(watches_[static_cast<std::size_t>(fd)], nullptr);
            n->release();
            throw;
        }
        if (before == 0) ++watched_count_;
        w.events = before | which;
        detail::callback_node*& slot = which == backend::io_read ? w.reader : w.writer;
        if (slot) unregister(slot);
        slot = n;
    }

    bool remove_watch(int fd, unsigned which) {
        if (fd < 0 || static_cast<std::size_t>(fd) >= watches_.size()) return false;
        fd_watch*& w = watches_[static_cast<std::size_t>(fd)];
        if (!w) return false;
        detail::callback_node*& slot = which == backend::io_read ? w->reader : w->writer;
        if (!slot) return false;
        const unsigned after = w->events & ~which;
        backend_.watch(fd, w->events, after, w);
        w->events = after;
        unregister(std::exchange(slot, nullptr));
        if (after == 0) {
            delete std::exchange(w, nullptr);
            --watched_count_;
        }
        return true;
    }

    Backend backend_;
    detail::pod_vector<fd_watch*> watches_;  // by fd; owned, freed when unwatched or closed
    std::size_t watched_count_ = 0;

    detail::signal_target signal_target_;
    // By signal number; allocated by the first add_signal_handler.
    struct signal_registration {
        detail::callback_node* handler;
        detail::saved_signal_action saved;  // the disposition to restore
    };
    signal_registration* signals_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/event_loop.hpp
// begin file ioloop/fwd.hpp
// ioloop: the loop template and its default alias (like nlohmann's basic_json / json).
#ifndef IOLOOP_FWD_HPP
#define IOLOOP_FWD_HPP

// begin file ioloop/backend/default.hpp
// ioloop: default_backend, from the one selection ladder in detail/config.hpp.
#ifndef IOLOOP_BACKEND_DEFAULT_HPP
#define IOLOOP_BACKEND_DEFAULT_HPP

// begin file ioloop/backend/epoll.hpp
// ioloop: the epoll backend (Linux). Level-triggered, as asyncio's add_reader expects:
// a callback runs on every iteration while its descriptor stays ready.
#ifndef IOLOOP_BACKEND_EPOLL_HPP
#define IOLOOP_BACKEND_EPOLL_HPP


#if defined(IOLOOP_HAS_EPOLL)

#include <cerrno>

#include <sys/epoll.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class epoll {
public:
    static constexpr std::string_view name = "epoll";

    epoll() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ == -1) detail::throw_errno(errno, "epoll_create1");
        try {
            // The wakeup descriptor's data is null: the loop is never told about it.
            add(wakeup_.fd(), EPOLLIN, nullptr);
        } catch (...) {
            ::close(epfd_);
            throw;
        }
    }
    epoll(const epoll&) = delete;
    epoll& operator=(const epoll&) = delete;
    ~epoll() { ::close(epfd_); }

    void watch(int fd, unsigned old_events, unsigned new_events, void* data) {
        const unsigned mask = to_epoll(new_events);
        if (new_events == 0) {
            // ENOENT / EBADF: the fd was closed before it was unwatched; it is gone anyway.
            if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr) == -1 && errno != ENOENT &&
                errno != EBADF) {
                detail::throw_errno(
                    errno, detail::concat({"epoll_ctl(DEL, fd ", detail::decimal(fd), ")"}));
            }
        } else if (old_events == 0) {
            add(fd, mask, data);
        } else {
            epoll_event ev{};
            ev.events = mask;
            ev.data.ptr = data;
            if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == -1) {
                // The fd was closed and reopened under the same number: epoll forgot it.
                if (errno != ENOENT) {
                    detail::throw_errno(
                        errno, detail::concat({"epoll_ctl(MOD, fd ", detail::decimal(fd), ")"}));
                }
                add(fd, mask, data);
            }
        }
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        const int n = ::epoll_wait(epfd_, events_, max_events, detail::timeout_ms(timeout));
        if (n == -1) {
            if (errno == EINTR) return;
            detail::throw_errno(errno, "epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = events_[i];
            if (ev.data.ptr == nullptr) {
                wakeup_.drain();
                continue;
            }
            unsigned ready = 0;
            if (ev.events & (EPOLLIN | EPOLLPRI)) ready |= io_read;
            if (ev.events & EPOLLOUT) ready |= io_write;
            if (ev.events & (EPOLLERR | EPOLLHUP)) ready |= io_read | io_write;
            sink(ev.data.ptr, ready);
        }
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    static constexpr int max_events = 256;

    static unsigned to_epoll(unsigned events) noexcept {
        return ((events & io_read) ? unsigned(EPOLLIN) : 0u) |
               ((events & io_write) ? unsigned(EPOLLOUT) : 0u);
    }

    void add(int fd, unsigned mask, void* data) {
        epoll_event ev{};
        ev.events = mask;
        ev.data.ptr = data;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == -1) {
            if (errno == EEXIST && ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) return;
            detail::throw_errno(errno,
                                detail::concat({"epoll_ctl(ADD, fd ", detail::decimal(fd), ")"}));
        }
    }

    detail::wakeup_fd wakeup_;  // first: constructed before, destroyed after epfd_
    int epfd_;
    epoll_event events_[max_events];
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_EPOLL
#endif
// end file ioloop/backend/epoll.hpp
// begin file ioloop/backend/poll.hpp
// ioloop: the poll() backend (any POSIX system). One pollfd per watched descriptor, kept
// dense: removal moves the last entry into the hole, an index by fd finds entries in O(1).
#ifndef IOLOOP_BACKEND_POLL_HPP
#define IOLOOP_BACKEND_POLL_HPP


#if defined(IOLOOP_HAS_POLL)

#include <cerrno>
#include <cstddef>

#include <poll.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class poll {
public:
    static constexpr std::string_view name = "poll";

    poll() { insert(wakeup_.fd(), POLLIN, nullptr); }
    poll(const poll&) = delete;
    poll& operator=(const poll&) = delete;

    void watch(int fd, unsigned /*old_events*/, unsigned new_events, void* data) {
        if (fd < 0)
            detail::throw_errno(EBADF, detail::concat({"poll backend: fd ", detail::decimal(fd)}));
        const std::size_t ufd = static_cast<std::size_t>(fd);
        const bool present = ufd < slot_of_.size() && slot_of_[ufd] != none;
        if (new_events == 0) {
            if (present) erase(ufd);
            return;
        }
        const short mask = static_cast<short>(((new_events & io_read) ? POLLIN : 0) |
                                              ((new_events & io_write) ? POLLOUT : 0));
        if (present) {
            fds_[slot_of_[ufd]].events = mask;
            data_[slot_of_[ufd]] = data;
        } else {
            insert(fd, mask, data);
        }
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        const int n =
            ::poll(fds_.data(), static_cast<nfds_t>(fds_.size()), detail::timeout_ms(timeout));
        if (n == -1) {
            if (errno == EINTR) return;
            detail::throw_errno(errno, "poll");
        }
        // The sink only queues callbacks (user code runs later), so entries move only here.
        for (std::size_t i = 0; i < fds_.size(); ++i) {
            const short re = fds_[i].revents;
            if (re == 0) continue;
            if (data_[i] == nullptr) {
                wakeup_.drain();
                continue;
            }
            void* data = data_[i];
            if (re & POLLNVAL) {
                // Closed while watched: its callbacks run once and see EBADF, then the fd is
                // forgotten, as epoll forgets a closed fd (else this would spin).
                erase(static_cast<std::size_t>(fds_[i].fd));
                --i;  // the last entry moved into slot i
                sink(data, io_read | io_write);
                continue;
            }
            unsigned ready = 0;
            if (re & (POLLIN | POLLPRI)) ready |= io_read;
            if (re & POLLOUT) ready |= io_write;
            if (re & (POLLERR | POLLHUP)) ready |= io_read | io_write;
            sink(data, ready);
        }
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    void insert(int fd, short mask, void* data) {
        const std::size_t ufd = static_cast<std::size_t>(fd);
        if (ufd >= slot_of_.size()) slot_of_.resize(ufd + 1, none);
        slot_of_[ufd] = fds_.size();
        fds_.push_back({fd, mask, 0});
        data_.push_back(data);
    }

    void erase(std::size_t ufd) {
        const std::size_t slot = slot_of_[ufd];
        const std::size_t last = fds_.size() - 1;
        if (slot != last) {
            fds_[slot] = fds_[last];
            data_[slot] = data_[last];
            slot_of_[static_cast<std::size_t>(fds_[slot].fd)] = slot;
        }
        fds_.pop_back();
        data_.pop_back();
        slot_of_[ufd] = none;
    }

    detail::wakeup_fd wakeup_;
    detail::pod_vector<pollfd> fds_;
    detail::pod_vector<void*> data_;           // parallel to fds_
    detail::pod_vector<std::size_t> slot_of_;  // fd -> index in fds_, or none
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_POLL
#endif
// end file ioloop/backend/poll.hpp
// begin file ioloop/backend/select.hpp
// ioloop: the select() backend, the lowest common denominator. An fd_set holds only
// descriptors below FD_SETSIZE: watching a larger one throws instead of writing past it.
#ifndef IOLOOP_BACKEND_SELECT_HPP
#define IOLOOP_BACKEND_SELECT_HPP


#if defined(IOLOOP_HAS_SELECT)

#include <cerrno>
#include <system_error>

#include <sys/select.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class select {
public:
    static constexpr std::string_view name = "select";

    select() {
        FD_ZERO(&read_set_);
        FD_ZERO(&write_set_);
        watch(wakeup_.fd(), 0, io_read, nullptr);
    }
    select(const select&) = delete;
    select& operator=(const select&) = delete;

    void watch(int fd, unsigned /*old_events*/, unsigned new_events, void* data) {
        if (fd < 0 || fd >= FD_SETSIZE) {
            throw std::system_error(
                std::make_error_code(std::errc::invalid_argument),
                detail::concat({"select backend: fd ", detail::decimal(fd),
                                " is outside [0, FD_SETSIZE = ", detail::decimal(FD_SETSIZE),
                                "); use the epoll or poll backend"}));
        }
        if (new_events & io_read) {
            FD_SET(fd, &read_set_);
        } else {
            FD_CLR(fd, &read_set_);
        }
        if (new_events & io_write) {
            FD_SET(fd, &write_set_);
        } else {
            FD_CLR(fd, &write_set_);
        }
        data_[fd] = data;
        if (new_events != 0 && fd >= max_fd_) max_fd_ = fd;
        while (max_fd_ >= 0 && !FD_ISSET(max_fd_, &read_set_) && !FD_ISSET(max_fd_, &write_set_))
            --max_fd_;
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        fd_set readable = read_set_;
        fd_set writable = write_set_;
        timeval tv{};
        timeval* ptv = nullptr;
        if (timeout.count() >= 0) {
            const long long us = (timeout.count() + 999) / 1000;  // rounded up, like epoll's
            tv.tv_sec = static_cast<decltype(tv.tv_sec)>(us / 1000000);
            tv.tv_usec = static_cast<decltype(tv.tv_usec)>(us % 1000000);
            ptv = &tv;
        }
        const int n = ::select(max_fd_ + 1, &readable, &writable, nullptr, ptv);
        if (n == -1) {
            if (errno == EINTR) return;
            if (errno == EBADF) {
                forget_closed(sink);
                return;
            }
            detail::throw_errno(errno, "select");
        }
        for (int fd = 0; n > 0 && fd <= max_fd_; ++fd) {
            unsigned ready = 0;
            if (FD_ISSET(fd, &readable)) ready |= io_read;
            if (FD_ISSET(fd, &writable)) ready |= io_write;
            if (ready == 0) continue;
            if (data_[fd] == nullptr) {
                wakeup_.drain();
            } else {
                sink(data_[fd], ready);
            }
        }
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    // select() fails with EBADF when a watched fd was closed without being unwatched. Like
    // the poll backend, report such fds once (their callbacks see EBADF), then forget them.
    template <class Sink>
    void forget_closed(Sink& sink) {
        for (int fd = 0; fd <= max_fd_; ++fd) {
            if ((FD_ISSET(fd, &read_set_) || FD_ISSET(fd, &write_set_)) &&
                !detail::is_open_fd(fd)) {
                void* data = data_[fd];
                watch(fd, 0, 0, nullptr);
                sink(data, io_read | io_write);
            }
        }
    }

    detail::wakeup_fd wakeup_;
    fd_set read_set_;
    fd_set write_set_;
    int max_fd_ = -1;
    void* data_[FD_SETSIZE] = {};
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_SELECT
#endif
// end file ioloop/backend/select.hpp

IOLOOP_NAMESPACE_BEGIN

using default_backend = backend::IOLOOP_DEFAULT_BACKEND;

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/backend/default.hpp

IOLOOP_NAMESPACE_BEGIN

template <class Backend>
class basic_event_loop;

// The loop on this platform's best backend, or the one an IOLOOP_BACKEND_* macro named.
using event_loop = basic_event_loop<default_backend>;

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/fwd.hpp

#include <cstddef>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
inline constexpr bool is_coro = false;
template <class T>
inline constexpr bool is_coro<coro<T>> = true;

// Stops the loop when a future is done.
class stop_when_done final : public done_link {
public:
    stop_when_done(loop_base& loop, future_base* f) noexcept : loop_(loop), future_(f) {
        future_->add_ref();
        future_->add_link(this);
    }
    stop_when_done(const stop_when_done&) = delete;
    stop_when_done& operator=(const stop_when_done&) = delete;
    ~stop_when_done() {
        future_->remove_link(this);
        future_->release();
    }
    void on_done() noexcept override { loop_.stop(); }

private:
    loop_base& loop_;
    future_base* future_;
};

// ioloop::run's last act before closing (asyncio.run's _cancel_all_tasks): cancels the
// tasks still unfinished and runs the loop until each has reacted, since a task may
// catch the cancellation to clean up.
template <class Loop>
void cancel_remaining_tasks(Loop& loop) {
    task_registry& tasks = loop_access::tasks(loop);
    const std::size_t count = tasks.size();
    if (count == 0) return;
    struct countdown final : done_link {
        Loop* loop = nullptr;
        std::size_t* left = nullptr;
        task_base* task = nullptr;
        void on_done() noexcept override {
            if (--*left == 0) loop->stop();
        }
        ~countdown() {
            if (task) {
                task->remove_link(this);
                task->release();
            }
        }
    };
    std::size_t left = count;
    auto* waits = new countdown[count];
    std::size_t i = 0;
    for (registered_task* r = tasks.first(); r; r = r->next, ++i) {
        auto* t = static_cast<task_base*>(r);
        t->add_ref();
        waits[i].loop = &loop;
        waits[i].left = &left;
        waits[i].task = t;
        t->add_link(&waits[i]);
    }
    for (i = 0; i < count; ++i) waits[i].task->cancel();
    try {
        loop.run_forever();
    } catch (...) {
        delete[] waits;
        throw;
    }
    delete[] waits;
}

}  // namespace detail

template <class Backend>
template <class Awaitable>
decltype(auto) basic_event_loop<Backend>::run_until_complete(Awaitable&& work) {
    using A = std::remove_cvref_t<Awaitable>;
    if constexpr (detail::is_coro<A>) {
        return run_until_complete(create_task(std::move(work)));
    } else {
        static_assert(std::is_base_of_v<any_future, A>,
                      "run_until_complete takes a coro, a task or a future");
        A f = work;
        if (!f.done()) {
            detail::stop_when_done stopper(*this, f.state());
            run_forever();
            if (!f.done()) {
                throw invalid_state_error(
                    "run_until_complete: the event loop stopped before the work was done");
            }
        }
        using T = typename A::value_type;
        if constexpr (std::is_void_v<T>) {
            f.result();
        } else if constexpr (std::is_lvalue_reference_v<Awaitable>) {
            return T(f.result());  // others may read the result too
        } else {
            return T(std::move(f.result()));
        }
    }
}

// asyncio.run: a new event loop runs `main` to completion; the tasks still unfinished
// are then cancelled and given the chance to finish, the default executor is shut down,
// and the loop is closed. Returns main's result or throws its exception.
template <class T>
T run(coro<T> main) {
    if (detail::loop_access::running())
        throw invalid_state_error("run: cannot be called while an event loop is running");
    event_loop loop;
    struct shutdown {
        event_loop& loop;
        ~shutdown() {
            try {
                detail::cancel_remaining_tasks(loop);
            } catch (...) {  // the loop will abandon what is left
            }
            loop.close();
        }
    } at_exit{loop};
    return loop.run_until_complete(std::move(main));
}

// The loop running the caller (asyncio.get_running_loop()). Throws invalid_state_error
// outside a running loop, or if the running loop has another backend than Backend.
template <class Backend = default_backend>
basic_event_loop<Backend>& get_running_loop() {
    loop_base& l = detail::loop_access::running_or_throw("get_running_loop");
    if (detail::loop_access::backend_tag(l) != &detail::backend_tag<Backend>) {
        throw invalid_state_error(
            "get_running_loop: the running loop is a basic_event_loop of another backend; "
            "name it: get_running_loop<ioloop::backend::...>()");
    }
    return static_cast<basic_event_loop<Backend>&>(l);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/run.hpp
// begin file ioloop/coro/sleep.hpp
// ioloop: sleep(d) (asyncio.sleep): suspends the current task for at least d; sleep(0)
// yields to the loop for one iteration. Cancelling the task wakes it at once with
// cancelled_error.
#ifndef IOLOOP_CORO_SLEEP_HPP
#define IOLOOP_CORO_SLEEP_HPP


#include <coroutine>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class sleep_awaiter final : public wait_point {
public:
    explicit sleep_awaiter(std::chrono::steady_clock::duration d) noexcept : delay_(d) {}
    sleep_awaiter(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
    ~sleep_awaiter() { timer_.cancel(); }  // destroyed while asleep: the loop is closing

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("sleep");
        if (delay_.count() <= 0) {
            task_->suspend(h, this);
            task_->wake();
            return;
        }
        task_base* t = task_;
        timer_ = t->loop()->call_later(delay_, [t] { t->wake(); });
        task_->suspend(h, this);
    }

    void await_resume() { task_->throw_if_cancelled(); }

    void on_cancel(task_base& t) noexcept override {
        timer_.cancel();
        t.wake();
    }

private:
    std::chrono::steady_clock::duration delay_;
    task_base* task_ = nullptr;
    timer_handle timer_;
};

}  // namespace detail

// co_await sleep(d): the current task resumes once d has passed, never earlier.
template <class Rep, class Period>
detail::sleep_awaiter sleep(std::chrono::duration<Rep, Period> d) {
    using duration = std::chrono::steady_clock::duration;
    // Saturates: sleep(hours::max()) is forever, not an overflow.
    if (std::chrono::duration<double>(d) >= std::chrono::duration<double>(duration::max()))
        return detail::sleep_awaiter(duration::max());
    return detail::sleep_awaiter(std::chrono::ceil<duration>(d));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/sleep.hpp

// Internal macros end here (nlohmann's macro_unscope); IOLOOP_HAS_* and the version stay.
#undef IOLOOP_NOINLINE
#undef IOLOOP_PREFETCH
#undef IOLOOP_NAMESPACE_BEGIN
#undef IOLOOP_NAMESPACE_END
#undef IOLOOP_ABI_TAG
#undef IOLOOP_ABI_CONCAT
#undef IOLOOP_ABI_CONCAT_

#endif
// end file ioloop/ioloop.hpp
