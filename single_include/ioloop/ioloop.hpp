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

// begin file ioloop/coro/awaitable.hpp
// ioloop: any awaitable made a coro, so that what takes a coro also takes what asyncio's
// functions take: `co_await wait_for(q.get(), 1s)`, `co_await timeout(1s, l.acquire())`,
// `tg.create_task(to_thread(f))`.
#ifndef IOLOOP_CORO_AWAITABLE_HPP
#define IOLOOP_CORO_AWAITABLE_HPP

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
#if defined(_WIN32)
#define IOLOOP_WINDOWS 1
#endif

// One ladder per backend: available unless disabled, detected from the platform.
#if !defined(IOLOOP_HAS_EPOLL) && !defined(IOLOOP_DISABLE_EPOLL)
#if defined(__linux__)
#define IOLOOP_HAS_EPOLL 1
#endif
#endif

// kqueue: the BSDs and macOS; a build may predefine IOLOOP_HAS_KQUEUE elsewhere (the
// tests do on Linux, over tests/kqueue_emulation).
#if !defined(IOLOOP_HAS_KQUEUE) && !defined(IOLOOP_DISABLE_KQUEUE)
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__)
#define IOLOOP_HAS_KQUEUE 1
#endif
#endif

#if !defined(IOLOOP_HAS_POLL) && !defined(IOLOOP_DISABLE_POLL)
#if defined(IOLOOP_POSIX)
#define IOLOOP_HAS_POLL 1
#endif
#endif

#if !defined(IOLOOP_HAS_SELECT) && !defined(IOLOOP_DISABLE_SELECT)
#if defined(IOLOOP_POSIX) || defined(IOLOOP_WINDOWS)
#define IOLOOP_HAS_SELECT 1
#endif
#endif

#if !defined(IOLOOP_HAS_IOCP) && !defined(IOLOOP_DISABLE_IOCP)
#if defined(IOLOOP_WINDOWS)
#define IOLOOP_HAS_IOCP 1
#endif
#endif

// The default backend: an explicit IOLOOP_BACKEND_* wins, else the best one detected.
#if defined(IOLOOP_BACKEND_EPOLL)
#if !defined(IOLOOP_HAS_EPOLL)
#error "IOLOOP_BACKEND_EPOLL: epoll is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND epoll
#elif defined(IOLOOP_BACKEND_KQUEUE)
#if !defined(IOLOOP_HAS_KQUEUE)
#error "IOLOOP_BACKEND_KQUEUE: kqueue is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND kqueue
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
#elif defined(IOLOOP_BACKEND_IOCP)
#if !defined(IOLOOP_HAS_IOCP)
#error "IOLOOP_BACKEND_IOCP: IOCP exists on Windows only"
#endif
#define IOLOOP_DEFAULT_BACKEND iocp
#elif defined(IOLOOP_BACKEND_IO_URING)
#error "this ioloop version has no io_uring backend yet"
#elif defined(IOLOOP_HAS_EPOLL)
#define IOLOOP_DEFAULT_BACKEND epoll
#elif defined(IOLOOP_HAS_KQUEUE)  // after epoll: the default only where it is native
#define IOLOOP_DEFAULT_BACKEND kqueue
#elif defined(IOLOOP_HAS_IOCP)
#define IOLOOP_DEFAULT_BACKEND iocp
#elif defined(IOLOOP_HAS_POLL)
#define IOLOOP_DEFAULT_BACKEND poll
#elif defined(IOLOOP_HAS_SELECT)
#define IOLOOP_DEFAULT_BACKEND select
#else
#error "ioloop: no backend is available on this platform"
#endif

// The internal macros (IOLOOP_NAMESPACE_BEGIN, IOLOOP_NOINLINE, ...): undefined again at
// the end of <ioloop/ioloop.hpp>, and defined again by <ioloop/ssl.hpp> for its own part.
// begin file ioloop/detail/macro_scope.hpp
// ioloop: the internal macros, defined (nlohmann/json's macro_scope): included by
// detail/config.hpp, and again by <ioloop/ssl.hpp> after <ioloop/ioloop.hpp>, whose end
// undefines them (detail/macro_unscope.hpp). No include guard: it is meant to be included
// again; defining a macro again with the same text is allowed.
// IWYU pragma: private
// Keeps a cold path (errors, slow-path frees) out of the hot function that calls it.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define IOLOOP_NOINLINE __declspec(noinline)
#else
#define IOLOOP_NOINLINE
#endif

// Keeps a small hot function inlined where the compiler's budget would call it instead.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define IOLOOP_ALWAYS_INLINE __forceinline
#else
#define IOLOOP_ALWAYS_INLINE inline
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

// end file ioloop/detail/macro_scope.hpp

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

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The one rule for a user's delay, whatever its type (hours::max() included): rounded up
// to the loop clock's tick, so nothing runs early, and saturated instead of overflowing.
// The range checks are made in floating point, where neither the conversion nor the sum
// with `now` can overflow.

// The delay as a clock duration: duration::max() (never) past the clock's range,
// duration::min() below it.
template <class Rep, class Period>
constexpr std::chrono::steady_clock::duration saturating_ceil(
    std::chrono::duration<Rep, Period> delay) noexcept {
    using duration = std::chrono::steady_clock::duration;
    using seconds = std::chrono::duration<double>;
    if (seconds(delay) >= seconds(duration::max())) return duration::max();
    if (seconds(delay) <= seconds(duration::min())) return duration::min();
    return std::chrono::ceil<duration>(delay);
}

// now + delay: time_point::max() (never) past the clock's range, time_point::min() below.
// A negative delay gives a deadline in the past, ordered like any other (asyncio's too).
template <class Rep, class Period>
constexpr std::chrono::steady_clock::time_point saturating_deadline(
    std::chrono::steady_clock::time_point now, std::chrono::duration<Rep, Period> delay) noexcept {
    using time_point = std::chrono::steady_clock::time_point;
    using seconds = std::chrono::duration<double>;
    const seconds target = seconds(now.time_since_epoch()) + seconds(delay);
    if (target >= seconds(time_point::duration::max())) return time_point::max();
    if (target <= seconds(time_point::duration::min())) return time_point::min();
    return now + std::chrono::ceil<time_point::duration>(delay);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

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
};

class task_registry {
public:
    // `abandon` destroys a task's coroutine without running it further (the loop is
    // closing); the same for every task, so it is kept once, here.
    void link(registered_task* t, void (*abandon)(registered_task*) noexcept) noexcept {
        abandon_ = abandon;
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
            abandon_(t);
        }
    }

private:
    registered_task* head_ = nullptr;
    std::size_t size_ = 0;
    void (*abandon_)(registered_task*) noexcept = nullptr;
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


#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// The stream ended before a read got what it asked for (asyncio.IncompleteReadError):
// readexactly(n) before n bytes, readuntil(sep) before the separator. partial() holds the
// bytes that were read, which the stream no longer has.
class incomplete_read_error : public error {
public:
    // expected() when the read had no length to reach (readuntil: asyncio's None).
    static constexpr std::size_t unknown = static_cast<std::size_t>(-1);

    incomplete_read_error(std::string partial, std::size_t expected)
        : error(describe(partial.size(), expected)),
          partial_(std::move(partial)),
          expected_(expected) {}

    const std::string& partial() const noexcept { return partial_; }
    std::string& partial() noexcept { return partial_; }
    std::size_t expected() const noexcept { return expected_; }

private:
    // asyncio's "3 bytes read on a total of 5 expected bytes".
    static std::string describe(std::size_t got, std::size_t expected) {
        const detail::decimal n(static_cast<long long>(got));
        if (expected == unknown) {
            return detail::concat({n, " bytes read on a total of an unknown number of expected "
                                      "bytes (the stream ended before the separator)"});
        }
        return detail::concat({n, " bytes read on a total of ",
                               detail::decimal(static_cast<long long>(expected)),
                               " expected bytes"});
    }

    std::string partial_;
    std::size_t expected_;
};

// readuntil or readline found no separator within the reader's limit, or found one
// farther than the limit (asyncio.LimitOverrunError). consumed() is how many bytes
// are to be consumed: the data stays in the stream (readline drops it, as asyncio's does).
class limit_overrun_error : public error {
public:
    limit_overrun_error(const std::string& message, std::size_t consumed)
        : error(message), consumed_(consumed) {}

    std::size_t consumed() const noexcept { return consumed_; }

private:
    std::size_t consumed_;
};

// A barrier was aborted, or reset while a task waited on it (asyncio.BrokenBarrierError).
class broken_barrier_error : public error {
public:
    broken_barrier_error() : error("the barrier is broken") {}
    using error::error;
};

// loop.sendfile / loop.sock_sendfile with fallback = false where the system cannot send
// the file itself (asyncio's SendfileNotAvailableError): not Linux, a completion backend,
// a transport that is not a plain socket's. With fallback = true the bytes go by reads and
// writes instead, and this is never thrown.
class sendfile_not_available_error : public error {
public:
    using error::error;
};

// Several failures at once: those of a task group's children and of its body, in the
// order they happened (asyncio's ExceptionGroup, as TaskGroup raises it). A single
// failure is a group of one too, so a caller handles one type whatever the count.
class exception_group : public error {
public:
    explicit exception_group(std::vector<std::exception_ptr> exceptions)
        : error(describe(exceptions)), exceptions_(std::move(exceptions)) {}

    const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

private:
    // "unhandled errors in a task group (2 sub-exceptions); the first: <its what()>"
    static std::string describe(const std::vector<std::exception_ptr>& list) {
        const std::size_t n = list.size();
        std::string first;
        if (n != 0 && list.front()) {
            try {
                std::rethrow_exception(list.front());
            } catch (const std::exception& e) {
                first = e.what();
            } catch (...) {
                first = "an exception not derived from std::exception";
            }
        }
        return detail::concat({"unhandled errors in a task group (",
                               detail::decimal(static_cast<long long>(n)),
                               n == 1 ? " sub-exception)" : " sub-exceptions)",
                               first.empty() ? "" : "; the first: ", first});
    }

    std::vector<std::exception_ptr> exceptions_;
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

// begin file ioloop/detail/posix.hpp
// ioloop: small POSIX shims shared by the backends: errno to std::system_error, and the
// wakeup descriptor another thread or a signal handler uses to interrupt a poll. The
// Windows side of the same names is detail/windows.hpp.
#ifndef IOLOOP_DETAIL_POSIX_HPP
#define IOLOOP_DETAIL_POSIX_HPP


#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif
// The networking layer's system headers, here so that net/ names none of its own.
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

IOLOOP_NAMESPACE_BEGIN

// A socket as the system names it: a descriptor here, a SOCKET handle on Windows.
using native_socket = int;
inline constexpr native_socket invalid_socket = -1;

// A descriptor that is not a socket (a pipe, a FIFO, a terminal), as connect_read_pipe and
// connect_write_pipe take it: a descriptor here too, a HANDLE on Windows.
using native_descriptor = int;

namespace detail {

// No descriptor (an owner that gave its own away), and closing one.
inline constexpr native_descriptor no_descriptor() noexcept { return -1; }
inline void close_descriptor(native_descriptor fd) noexcept { ::close(fd); }

// A transport keeps its descriptor where it keeps a socket's: here they are the same int.
inline native_socket descriptor_as_socket(native_descriptor fd) noexcept { return fd; }
inline native_descriptor socket_as_descriptor(native_socket fd) noexcept { return fd; }

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// The names detail/windows.hpp gives its Winsock errors: here they are errno values.
inline std::error_code system_error_code(int err) noexcept {
    return {err, std::generic_category()};
}
[[noreturn]] inline void throw_system_error(int err, const std::string& what) {
    throw_errno(err, what);
}

// A descriptor as a table index: itself.
inline std::size_t fd_index(native_socket fd) noexcept { return static_cast<std::size_t>(fd); }

// A socket's completion port (detail/windows.hpp): nothing to remember on POSIX.
struct port_binding {};

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

// ---- sockets: the calls net/ makes, under the names detail/windows.hpp gives Winsock's ----

// Nothing to start here: Winsock's start-up on Windows. The noexcept form is for numeric
// address parsing, which reports failure by its result.
inline void start_sockets() noexcept {}
inline bool sockets_started() noexcept { return true; }

// Why the last socket call failed, and what some of those reasons mean.
inline int last_socket_error() noexcept { return errno; }
// EAGAIN and EWOULDBLOCK may be distinct values (POSIX allows it); both mean "wait".
inline bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
inline bool interrupted(int err) noexcept { return err == EINTR; }
// A non-blocking connect that goes on: EINPROGRESS; EINTR (after a signal it goes on too);
// EAGAIN (Linux: a Unix listener's backlog is full). Its outcome is in SO_ERROR once the
// socket is writable.
inline bool connect_pending(int err) noexcept {
    return err == EINPROGRESS || err == EINTR || would_block(err);
}
// The connection went away before accept took it: take the next one.
inline bool accept_again(int err) noexcept { return err == EINTR || err == ECONNABORTED; }
// A datagram socket's error as error_received reports it (ECONNREFUSED: an ICMP port
// unreachable answered an earlier send).
inline std::error_code datagram_error_code(int err) noexcept { return system_error_code(err); }

// Linux has no SO_NOSIGPIPE: each send says MSG_NOSIGNAL instead, so a write to a closed
// peer is an EPIPE error rather than a signal that kills the process. Elsewhere the socket
// carries SO_NOSIGPIPE (prepare_socket) and the flag is 0.
#if defined(MSG_NOSIGNAL)
inline constexpr int send_flags = MSG_NOSIGNAL;
#else
inline constexpr int send_flags = 0;
#endif

// Finishes a socket fresh from socket() or accept(), or adopted: non-blocking and
// close-on-exec unless `flags_set` (SOCK_NONBLOCK | SOCK_CLOEXEC did it), SIGPIPE off where
// sends cannot say so. On failure the socket is closed and errno kept: invalid_socket.
inline native_socket prepare_socket(native_socket fd, bool flags_set = false) noexcept {
    if (fd == -1) return fd;
    bool ok = flags_set;
    if (!ok) {
        const int fl = ::fcntl(fd, F_GETFL);
        ok = fl != -1 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != -1 &&
             ::fcntl(fd, F_SETFD, FD_CLOEXEC) != -1;
    }
#if defined(SO_NOSIGPIPE)
    // macOS and the BSDs have no MSG_NOSIGNAL: a write to a reset peer would raise SIGPIPE
    // unless the socket itself says no. An accepted socket does not inherit it everywhere.
    const int on = 1;
    ok = ok && ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) != -1;
#endif
    if (ok) return fd;
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
}

// A new socket as prepare_socket leaves it; invalid_socket with errno saying why.
inline native_socket open_socket(int domain, int type) noexcept {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    // Atomic flags: no window in which another thread's fork+exec inherits the socket.
    return prepare_socket(::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), true);
#else
    return prepare_socket(::socket(domain, type, 0), false);
#endif
}

// The next connection on `listener`, as prepare_socket leaves it, its peer's address in
// `peer` / `size`; invalid_socket with errno saying why (EAGAIN: none pending).
inline native_socket accept_socket(native_socket listener, sockaddr* peer,
                                   socklen_t* size) noexcept {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    return prepare_socket(::accept4(listener, peer, size, SOCK_NONBLOCK | SOCK_CLOEXEC), true);
#else
    return prepare_socket(::accept(listener, peer, size), false);
#endif
}

// 0 or -1 (errno says why), as the system calls.
inline int close_socket(native_socket s) noexcept { return ::close(s); }
inline int shutdown_send(native_socket s) noexcept { return ::shutdown(s, SHUT_WR); }
inline int set_socket_option(native_socket s, int level, int name, int value) noexcept {
    return ::setsockopt(s, level, name, &value, sizeof value);
}
inline int get_socket_option(native_socket s, int level, int name, int& value) noexcept {
    socklen_t size = sizeof value;
    return ::getsockopt(s, level, name, &value, &size);
}
// An option whose value is a structure (a multicast membership).
inline int set_socket_option_bytes(native_socket s, int level, int name, const void* value,
                                   std::size_t size) noexcept {
    return ::setsockopt(s, level, name, value, static_cast<socklen_t>(size));
}

// One send or receive: the bytes moved, or -1 (last_socket_error() says why). Sends never
// raise SIGPIPE.
inline std::ptrdiff_t socket_send(native_socket s, const char* data, std::size_t size) noexcept {
    return ::send(s, data, size, send_flags);
}
inline std::ptrdiff_t socket_recv(native_socket s, char* data, std::size_t size) noexcept {
    return ::recv(s, data, size, 0);
}
inline std::ptrdiff_t socket_sendto(native_socket s, const char* data, std::size_t size,
                                    const sockaddr* to, socklen_t to_size) noexcept {
    return ::sendto(s, data, size, send_flags, to, to_size);
}
inline std::ptrdiff_t socket_recvfrom(native_socket s, char* data, std::size_t size,
                                      sockaddr* from, socklen_t* from_size) noexcept {
    return ::recvfrom(s, data, size, 0, from, from_size);
}

// One datagram, whole: its size, or -1 (last_socket_error() says why). A datagram larger
// than `size` is not returned cut short: the call fails with EMSGSIZE (the kernel has
// dropped the rest, and recvmsg said so with MSG_TRUNC), as Winsock's recvfrom fails with
// WSAEMSGSIZE.
inline std::ptrdiff_t socket_recv_datagram(native_socket s, char* data, std::size_t size,
                                           sockaddr* from, socklen_t* from_size) noexcept {
    iovec into{data, size};
    msghdr message{};
    message.msg_name = from;
    message.msg_namelen = *from_size;
    message.msg_iov = &into;
    message.msg_iovlen = 1;
    const std::ptrdiff_t n = ::recvmsg(s, &message, 0);
    if (n == -1) return -1;
    *from_size = message.msg_namelen;
    if ((message.msg_flags & MSG_TRUNC) != 0) {
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

// The size of the next datagram waiting on `s`, or more (FIONREAD): Linux says exactly the
// next one's (udp(7), and unix(7) for Unix datagram sockets), the BSDs and macOS say the
// bytes of every datagram queued. 0 when none waits, when it is empty, or if the call
// fails: the caller's own buffer then takes it.
inline std::size_t next_datagram_size(native_socket s) noexcept {
    int n = 0;
    return ::ioctl(s, FIONREAD, &n) == 0 && n > 0 ? static_cast<std::size_t>(n) : 0;
}

// Listening sockets take SO_REUSEADDR, so a restarted server can bind its port while the
// last run's connections sit in TIME_WAIT.
inline constexpr bool listen_with_reuse_address = true;

// getaddrinfo's EAI_SYSTEM: the reason is in errno.
inline bool resolver_uses_errno(int rc) noexcept { return rc == EAI_SYSTEM; }

// An IPv6 scope's interface: its index by name (0: no such interface), its name by index
// (empty: none).
inline std::uint32_t interface_index(std::string_view name) noexcept {
    char text[IF_NAMESIZE];
    if (name.size() >= sizeof text) return 0;
    name.copy(text, name.size());
    text[name.size()] = '\0';
    return ::if_nametoindex(text);
}
inline std::string interface_name(std::uint32_t index) {
    char text[IF_NAMESIZE];
    return ::if_indextoname(index, text) != nullptr ? std::string(text) : std::string();
}

// A Unix socket's file: a stale one (left by an earlier run) is removed before binding,
// and only if it is a socket, never a regular file; a server removes its own on close.
inline void remove_stale_socket_file(const char* path) noexcept {
    struct stat st{};
    if (::stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path);
}
inline void remove_socket_file(const char* path) noexcept { ::unlink(path); }

// The calling thread's own T, made on first use and destroyed when the thread exits.
// (detail/windows.hpp cannot use a thread_local with a destructor for this.)
template <class T>
T& this_thread_instance() noexcept(noexcept(T())) {
    static thread_local T instance;
    return instance;
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
            callback_node* next = newest->next_node();
            newest->next = oldest;
            oldest = newest;
            newest = next;
        }
        node_queue q;
        while (oldest) {
            callback_node* next = oldest->next_node();
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
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
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
        // Not named `near`: <windows.h> defines near and far as empty macros.
        const bool in_wheel = s < base_ + wheel_slots;
        const std::size_t i = static_cast<std::size_t>((s < base_ ? base_ : s) % wheel_slots);
        if (!(in_wheel ? near_[i] : far_).remove_recent(n)) {
            ++cancelled_;
            return;
        }
        if (in_wheel) {
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
// begin file ioloop/detail/windows.hpp
// ioloop: small Windows shims shared by the backends and the networking layer: Winsock
// start-up, Winsock and Win32 errors as std::error_code (the common ones as the portable
// std::errc values, so `code == std::errc::connection_refused` holds everywhere), and the
// wakeup socket another thread or the console-control handler uses to interrupt a select.
// The POSIX side of the same names is detail/posix.hpp.
#ifndef IOLOOP_DETAIL_WINDOWS_HPP
#define IOLOOP_DETAIL_WINDOWS_HPP


#if defined(IOLOOP_WINDOWS)

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

// <windows.h> without its min/max macros and rarely used parts, unless the program
// already included it its own way.
#if !defined(WIN32_LEAN_AND_MEAN)
#define WIN32_LEAN_AND_MEAN
#define IOLOOP_UNDEF_LEAN_AND_MEAN
#endif
#if !defined(NOMINMAX)
#define NOMINMAX
#define IOLOOP_UNDEF_NOMINMAX
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
// sockaddr_un (Windows 10 1803 and later); needs ADDRESS_FAMILY from <winsock2.h> first.
#include <afunix.h>
#if defined(IOLOOP_UNDEF_LEAN_AND_MEAN)
#undef WIN32_LEAN_AND_MEAN
#undef IOLOOP_UNDEF_LEAN_AND_MEAN
#endif
#if defined(IOLOOP_UNDEF_NOMINMAX)
#undef NOMINMAX
#undef IOLOOP_UNDEF_NOMINMAX
#endif

IOLOOP_NAMESPACE_BEGIN

// A socket as the system names it: a SOCKET handle here, a descriptor on POSIX.
using native_socket = SOCKET;
inline constexpr native_socket invalid_socket = INVALID_SOCKET;

// A descriptor that is not a socket (an overlapped named pipe), as connect_read_pipe and
// connect_write_pipe take it: a HANDLE here, a descriptor on POSIX.
using native_descriptor = HANDLE;

namespace detail {

// No descriptor (an owner that gave its own away), and closing one. (A function, not a
// constant: INVALID_HANDLE_VALUE is a cast, which no constexpr may hold.)
inline native_descriptor no_descriptor() noexcept { return INVALID_HANDLE_VALUE; }
inline void close_descriptor(native_descriptor h) noexcept {
    if (h != nullptr && h != INVALID_HANDLE_VALUE) ::CloseHandle(h);
}

// A transport keeps a pipe's HANDLE where it keeps a socket's SOCKET: both are kernel
// handles of pointer size (IOCP code casts a SOCKET to a HANDLE the same way).
inline native_socket descriptor_as_socket(native_descriptor h) noexcept {
    return reinterpret_cast<native_socket>(h);
}
inline native_descriptor socket_as_descriptor(native_socket s) noexcept {
    return reinterpret_cast<native_descriptor>(s);
}

// Winsock must be started once per process before any socket call. WSAStartup counts its
// callers, so the one started here stays up until the process exits.
inline void start_winsock() {
    static const int result = [] {
        WSADATA data;
        return ::WSAStartup(MAKEWORD(2, 2), &data);
    }();
    if (result != 0) throw std::system_error(result, std::system_category(), "WSAStartup");
}

// The errno value a Winsock or Win32 code means, 0 if none: so that tests and users
// compare with std::errc on every platform.
inline int portable_errno(unsigned long err) noexcept {
    int generic = 0;
    switch (err) {
        case WSAECONNREFUSED:
        case ERROR_CONNECTION_REFUSED: generic = ECONNREFUSED; break;
        case WSAECONNRESET:
        case ERROR_NETNAME_DELETED: generic = ECONNRESET; break;
        case WSAECONNABORTED:
        case ERROR_CONNECTION_ABORTED:
        case ERROR_REQUEST_ABORTED: generic = ECONNABORTED; break;
        case WSAEWOULDBLOCK: generic = EWOULDBLOCK; break;
        case WSAEINPROGRESS: generic = EINPROGRESS; break;
        case WSAEALREADY: generic = EALREADY; break;
        case WSAEADDRINUSE: generic = EADDRINUSE; break;
        case WSAEADDRNOTAVAIL: generic = EADDRNOTAVAIL; break;
        case WSAEAFNOSUPPORT: generic = EAFNOSUPPORT; break;
        case WSAETIMEDOUT:
        case ERROR_SEM_TIMEOUT: generic = ETIMEDOUT; break;
        case WSAENETUNREACH:
        case ERROR_NETWORK_UNREACHABLE: generic = ENETUNREACH; break;
        case WSAEHOSTUNREACH:
        case ERROR_HOST_UNREACHABLE: generic = EHOSTUNREACH; break;
        case WSAENETDOWN: generic = ENETDOWN; break;
        case WSAEMFILE:
        case ERROR_TOO_MANY_OPEN_FILES: generic = EMFILE; break;
        case WSAENOBUFS: generic = ENOBUFS; break;
        case WSAENOTCONN: generic = ENOTCONN; break;
        case WSAEISCONN: generic = EISCONN; break;
        case WSAESHUTDOWN:
        // A pipe whose reader went away: a write fails with one of these, as EPIPE does on
        // POSIX (a read of a pipe whose writer went away says ERROR_BROKEN_PIPE too: the
        // pipe transport takes that as EOF before it could become an error).
        case ERROR_BROKEN_PIPE:
        case ERROR_NO_DATA:
        case ERROR_PIPE_NOT_CONNECTED: generic = EPIPE; break;
        case WSAEMSGSIZE:
        case ERROR_MORE_DATA: generic = EMSGSIZE; break;
        case WSAEINVAL:
        case ERROR_NEGATIVE_SEEK:  // a file position before the start, as lseek's EINVAL
        case ERROR_INVALID_PARAMETER: generic = EINVAL; break;
        case WSAENOTSOCK:
        case WSAEBADF:
        case ERROR_INVALID_HANDLE: generic = EBADF; break;
        case WSAEACCES:
        case ERROR_ACCESS_DENIED: generic = EACCES; break;
        case WSAEOPNOTSUPP: generic = EOPNOTSUPP; break;
        case WSAEPROTONOSUPPORT: generic = EPROTONOSUPPORT; break;
        case ERROR_OPERATION_ABORTED: generic = ECANCELED; break;
        // A file or program that is not there (CreateFileW, CreateProcessW), and "x" of an
        // existing file.
        case ERROR_FILE_NOT_FOUND:
        case ERROR_PATH_NOT_FOUND: generic = ENOENT; break;
        case ERROR_FILE_EXISTS:
        case ERROR_ALREADY_EXISTS: generic = EEXIST; break;
        case ERROR_DIRECTORY: generic = ENOTDIR; break;  // a cwd that is not a directory
        case ERROR_BAD_EXE_FORMAT: generic = ENOEXEC; break;
        default: break;
    }
    return generic;
}

// Winsock and Win32 codes with the system's own message, each equivalent to the std::errc
// it means (the C runtime's strerror knows no socket errors, so the generic category's
// message would be "Unknown error").
class windows_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "windows"; }

    std::string message(int code) const override {
        char text[256];
        DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                                   nullptr, static_cast<DWORD>(code), 0, text, sizeof text,
                                   nullptr);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == '.')) --n;
        if (n == 0) return std::string("Windows error ") + std::to_string(code);
        return std::string(text, n);
    }

    std::error_condition default_error_condition(int code) const noexcept override {
        const int generic = portable_errno(static_cast<unsigned long>(code));
        if (generic == 0) return {code, *this};
        return {generic, std::generic_category()};
    }
};

inline const std::error_category& windows_category() noexcept {
    static const windows_error_category category;
    return category;
}

inline std::error_code system_error_code(unsigned long err) noexcept {
    return {static_cast<int>(err), windows_category()};
}

[[noreturn]] inline void throw_system_error(unsigned long err, const std::string& what) {
    throw std::system_error(system_error_code(err), what);
}

// The C runtime's errno values, as on POSIX.
[[noreturn]] inline void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// A wait timeout in milliseconds: INFINITE for a negative one, rounded up so that a timer
// never fires early because the system woke us sooner.
inline unsigned long timeout_ms(std::chrono::nanoseconds t) noexcept {
    if (t.count() < 0) return INFINITE;
    const long long ms = (t.count() + 999'999) / 1'000'000;
    return ms >= static_cast<long long>(INFINITE) ? INFINITE - 1 : static_cast<unsigned long>(ms);
}

// Whether `s` names an open socket: checked before watching it, so a bad one fails where
// it is added instead of inside a later select.
inline bool is_open_fd(native_socket s) noexcept {
    int type = 0;
    int size = sizeof type;
    return s != invalid_socket &&
           ::getsockopt(s, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &size) == 0;
}

// A socket handle as a small table index. Kernel handles are multiples of four (the low
// two bits are reserved for tags), so dividing keeps per-socket tables dense.
inline std::size_t fd_index(native_socket s) noexcept { return static_cast<std::size_t>(s) >> 2; }

// Which IOCP loop a socket's completions go to: Windows ties a socket to one completion
// port for its life (and Wine has no FileReplaceCompletionInformation to move it), so an
// ioloop::socket remembers its port, and a second loop's operation on it fails clearly
// instead of waiting for completions that go to the first one. 0: none yet.
struct port_binding {
    std::uint64_t port = 0;
};

// ---- sockets: the calls net/ makes, under the names detail/posix.hpp gives POSIX's ----

// Winsock must be started before the first socket call. The noexcept form is for numeric
// address parsing (inet_pton is Winsock's), which reports failure by its result.
inline void start_sockets() { start_winsock(); }
inline bool sockets_started() noexcept {
    try {
        start_winsock();
        return true;
    } catch (...) {
        return false;
    }
}

// Why the last socket call failed (a WSAE* code; detail::system_error_code makes it
// portable), and what some of those reasons mean.
inline int last_socket_error() noexcept { return ::WSAGetLastError(); }
inline bool would_block(int err) noexcept { return err == WSAEWOULDBLOCK; }
// Only a blocking call cancelled by WSACancelBlockingCall says this; ours never block.
inline bool interrupted(int err) noexcept { return err == WSAEINTR; }
// A non-blocking connect that goes on says WSAEWOULDBLOCK (not WSAEINPROGRESS). Its
// outcome is in SO_ERROR once select reports the socket writable, or failed (which
// backend/select_winsock.hpp reports as readable and writable).
inline bool connect_pending(int err) noexcept { return err == WSAEWOULDBLOCK; }
// The connection went away before accept took it (Winsock says reset): take the next one.
inline bool accept_again(int err) noexcept {
    return err == WSAECONNRESET || err == WSAECONNABORTED || err == WSAEINTR;
}
// A datagram socket's error as error_received reports it. An ICMP port unreachable that
// answered an earlier send is WSAECONNRESET here (ERROR_PORT_UNREACHABLE from an
// overlapped receive) and ECONNREFUSED on POSIX: the POSIX meaning, as Winsock's
// WSAECONNREFUSED, so protocols see the same code everywhere.
inline std::error_code datagram_error_code(unsigned long err) noexcept {
    if (err == WSAECONNRESET || err == ERROR_PORT_UNREACHABLE) err = WSAECONNREFUSED;
    return system_error_code(err);
}

// Finishes a socket fresh from WSASocketW or accept, or adopted: non-blocking. There is no
// close-on-exec to set: open_socket makes sockets not inheritable, and accepted ones take
// that from their listener. On failure the socket is closed and its error kept:
// INVALID_SOCKET.
inline native_socket prepare_socket(native_socket s, bool /*flags_set*/ = false) noexcept {
    u_long on = 1;
    if (s == INVALID_SOCKET || ::ioctlsocket(s, FIONBIO, &on) == 0) return s;
    const int err = ::WSAGetLastError();
    ::closesocket(s);
    ::WSASetLastError(err);
    return INVALID_SOCKET;
}

// A new socket as prepare_socket leaves it, and overlapped, so the IOCP backend can use it
// (readiness calls work on it all the same); INVALID_SOCKET with last_socket_error()
// saying why. Call start_sockets() first.
inline native_socket open_socket(int domain, int type) noexcept {
    return prepare_socket(::WSASocketW(domain, type, 0, nullptr, 0,
                                       WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT));
}

// The next connection on `listener`, as prepare_socket leaves it, its peer's address in
// `peer` / `size`; INVALID_SOCKET with last_socket_error() saying why (WSAEWOULDBLOCK:
// none pending).
inline native_socket accept_socket(native_socket listener, sockaddr* peer, int* size) noexcept {
    return prepare_socket(::accept(listener, peer, size));
}

// 0 or -1 (last_socket_error() says why), as on POSIX. Winsock's option values are char*.
inline int close_socket(native_socket s) noexcept { return ::closesocket(s); }
inline int shutdown_send(native_socket s) noexcept { return ::shutdown(s, SD_SEND); }
inline int set_socket_option(native_socket s, int level, int name, int value) noexcept {
    return ::setsockopt(s, level, name, reinterpret_cast<const char*>(&value), sizeof value);
}
inline int get_socket_option(native_socket s, int level, int name, int& value) noexcept {
    int size = sizeof value;
    return ::getsockopt(s, level, name, reinterpret_cast<char*>(&value), &size);
}
inline int set_socket_option_bytes(native_socket s, int level, int name, const void* value,
                                   std::size_t size) noexcept {
    return ::setsockopt(s, level, name, static_cast<const char*>(value), static_cast<int>(size));
}

// One send or receive: the bytes moved, or -1 (last_socket_error() says why). Winsock
// counts in int: a larger buffer is taken in part, as a short send or read would be.
// There is no SIGPIPE to keep away.
inline int winsock_length(std::size_t size) noexcept {
    return size > 0x7fffffff ? 0x7fffffff : static_cast<int>(size);
}
inline std::ptrdiff_t socket_send(native_socket s, const char* data, std::size_t size) noexcept {
    return ::send(s, data, winsock_length(size), 0);
}
inline std::ptrdiff_t socket_recv(native_socket s, char* data, std::size_t size) noexcept {
    return ::recv(s, data, winsock_length(size), 0);
}
inline std::ptrdiff_t socket_sendto(native_socket s, const char* data, std::size_t size,
                                    const sockaddr* to, int to_size) noexcept {
    return ::sendto(s, data, winsock_length(size), 0, to, to_size);
}
inline std::ptrdiff_t socket_recvfrom(native_socket s, char* data, std::size_t size,
                                      sockaddr* from, int* from_size) noexcept {
    return ::recvfrom(s, data, winsock_length(size), 0, from, from_size);
}

// One datagram, whole: its size, or -1 (last_socket_error() says why). Winsock's recvfrom
// itself fails a datagram larger than `size` with WSAEMSGSIZE (EMSGSIZE on POSIX), and a
// UDP socket drops the rest of it.
inline std::ptrdiff_t socket_recv_datagram(native_socket s, char* data, std::size_t size,
                                           sockaddr* from, int* from_size) noexcept {
    return socket_recvfrom(s, data, size, from, from_size);
}

// The size of the next datagram waiting on `s`, or more (FIONREAD: Winsock says the bytes
// of every datagram queued). 0 when none waits, or if the call fails. (Windows has no Unix
// datagram sockets, the one kind the readiness transport asks this of.)
inline std::size_t next_datagram_size(native_socket s) noexcept {
    u_long n = 0;
    return ::ioctlsocket(s, FIONREAD, &n) == 0 ? static_cast<std::size_t>(n) : 0;
}

// No SO_REUSEADDR on listening sockets: on Windows it lets a second socket bind a port
// that is in use (SO_EXCLUSIVEADDRUSE's opposite), and a restarted server does not need
// it to bind over connections in TIME_WAIT. libuv and asyncio leave it off too.
inline constexpr bool listen_with_reuse_address = false;

// Winsock's getaddrinfo returns its error itself (WSAHOST_NOT_FOUND as EAI_NONAME...).
inline bool resolver_uses_errno(int) noexcept { return false; }

// if_nametoindex and if_indextoname live in iphlpapi, a library ioloop does not link:
// IPv6 scopes are numeric only on Windows ("fe80::1%3", not "%eth0").
inline std::uint32_t interface_index(std::string_view) noexcept { return 0; }
inline std::string interface_name(std::uint32_t) { return {}; }

// A Unix socket's file: a stale one (left by an earlier run) is removed before binding,
// and only if it is a socket (a reparse point tagged AF_UNIX), never another file; a
// server removes its own on close.
inline void remove_stale_socket_file(const char* path) noexcept {
    WIN32_FIND_DATAA found;
    const HANDLE h = ::FindFirstFileA(path, &found);
    if (h == INVALID_HANDLE_VALUE) return;
    ::FindClose(h);
    if ((found.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0 &&
        found.dwReserved0 == IO_REPARSE_TAG_AF_UNIX) {
        ::DeleteFileA(path);
    }
}
inline void remove_socket_file(const char* path) noexcept { ::DeleteFileA(path); }

// The calling thread's own T, made on first use and destroyed when the thread exits. Not a
// thread_local with a destructor: mingw-w64's GCC keeps thread_locals in emulated TLS,
// whose storage is freed before their destructors run (GCC bug 80816), so a destructor
// would read freed memory. Here T lives on the heap, and a fiber-local slot's callback,
// which the system runs as the thread exits, deletes it; the thread_local is a plain
// pointer, with nothing to destroy.
template <class T>
struct this_thread_slot {
    static void WINAPI destroy(void* p) noexcept { delete static_cast<T*>(p); }
    static unsigned long allocate() {
        const unsigned long slot = ::FlsAlloc(&destroy);
        if (slot == FLS_OUT_OF_INDEXES) throw_system_error(::GetLastError(), "FlsAlloc");
        return slot;
    }
};

template <class T>
T& this_thread_instance() {
    static const unsigned long slot = this_thread_slot<T>::allocate();
    static thread_local T* mine = nullptr;
    if (mine == nullptr) [[unlikely]] {
        T* made = new T();
        if (!::FlsSetValue(slot, made)) {
            const unsigned long err = ::GetLastError();
            delete made;
            throw_system_error(err, "FlsSetValue");
        }
        mine = made;
    }
    return *mine;
}

// The select backend's "wake up" flag: a UDP socket connected to itself on loopback, since
// Windows' select takes sockets only. notify() is thread-safe; a full buffer means a
// wakeup is pending already.
class wakeup_fd {
public:
    wakeup_fd() {
        start_winsock();
        s_ = ::WSASocketW(AF_INET, SOCK_DGRAM, IPPROTO_UDP, nullptr, 0, WSA_FLAG_NO_HANDLE_INHERIT);
        if (s_ == INVALID_SOCKET) throw_system_error(::WSAGetLastError(), "wakeup socket");
        sockaddr_in self{};
        self.sin_family = AF_INET;
        self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int size = sizeof self;
        u_long nonblocking = 1;
        auto* address = reinterpret_cast<sockaddr*>(&self);
        if (::bind(s_, address, size) != 0 || ::getsockname(s_, address, &size) != 0 ||
            ::connect(s_, address, size) != 0 || ::ioctlsocket(s_, FIONBIO, &nonblocking) != 0) {
            const int err = ::WSAGetLastError();
            ::closesocket(s_);
            throw_system_error(err, "wakeup socket: binding it to loopback");
        }
    }
    wakeup_fd(const wakeup_fd&) = delete;
    wakeup_fd& operator=(const wakeup_fd&) = delete;
    ~wakeup_fd() { ::closesocket(s_); }

    native_socket fd() const noexcept { return s_; }

    void notify() noexcept {
        const char one = 1;
        ::send(s_, &one, 1, 0);
    }

    void drain() noexcept {
        char buf[64];
        while (::recv(s_, buf, sizeof buf, 0) > 0) {
        }
    }

private:
    native_socket s_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/detail/windows.hpp
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
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

template <class T>
class coro;
template <class T>
class task;
template <class T>
class future;
class loop_base;
class endpoint;                // net/endpoint.hpp
enum class address_family;     // net/endpoint.hpp
struct address_info;           // net/getaddrinfo.hpp
struct datagram_options;       // net/create_datagram_endpoint.hpp
class file;                    // fs/file.hpp
enum class socket_type : int;  // net/socket.hpp
class socket;                  // net/socket.hpp
struct connect_options;        // net/connect_options.hpp
struct serve_options;          // net/serve_options.hpp
class server;                  // net/server.hpp
class transport;               // net/transport.hpp
class base_protocol;           // net/protocol.hpp
class ssl_option;              // net/ssl_option.hpp
struct tls_options;            // net/ssl_option.hpp
class datagram_transport;      // net/transport.hpp
class subprocess_transport;    // subprocess/subprocess_transport.hpp
struct subprocess_options;     // subprocess/stdio.hpp

namespace detail {

// Lets what outlives a loop (a future kept after the loop is gone) know that it is gone.
struct loop_access;  // the coroutine front end's way in
struct net_access;   // the networking layer's (net/net_access.hpp)
class io_engine;     // net/io_engine.hpp
class arg_list;      // subprocess/stdio.hpp

// Its address names a backend type at run time, without RTTI.
template <class Backend>
inline constexpr char backend_tag = 0;

// The protocol type a factory makes: factory() returns std::unique_ptr<P>. Spelled out in
// the declarations below (not `auto`), so that naming them does not compile them.
template <class Factory>
using protocol_of = typename std::invoke_result_t<Factory&>::element_type;

struct loop_anchor {
    loop_base* loop;
    std::size_t refs;
};

}  // namespace detail

// What create_task takes besides the coroutine: {.name = "fetch", .eager_start = true}.
// The name points at the caller's string (copied by the call); eager_start runs the
// coroutine at once, inside create_task, until it first suspends (asyncio's eager_start,
// 3.14), when the loop is running on this thread; a coroutine that finishes without
// suspending gives a task that is already done and never scheduled.
struct task_options {
    const char* name = nullptr;
    bool eager_start = false;
};

// How the loop's create_task starts tasks (asyncio's loop.set_task_factory): `standard`
// schedules them, `eager` starts them eagerly as above (asyncio.eager_task_factory). A
// task factory of asyncio's kind, a function of any coroutine, has no C++ counterpart: a
// coro<T> is a different type for every T; these are the two factories asyncio ships.
enum class task_factory : unsigned char { standard, eager };
inline constexpr task_factory eager_task_factory = task_factory::eager;

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
        return schedule_timer(now, detail::saturating_deadline(now, delay), std::forward<F>(fn),
                              where, "call_later");
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
    task<T> create_task(coro<T> body);
    // (A template: a braced {.name = ...} must not be taken for a std::string.)
    template <class T, class Name>
        requires std::is_convertible_v<Name&&, std::string>
    task<T> create_task(coro<T> body, Name&& name);
    template <class T>
    task<T> create_task(coro<T> body, task_options options);
    // The same for a callable returning a coro: fn is moved into the task and lives (with
    // what it captured) as long as the coroutine it made runs, so that
    // `loop.create_task([x]() -> coro<void> { ... })` is safe. Defined in coro/task.hpp.
    template <class F>
        requires std::is_invocable_v<std::decay_t<F>&>
    auto create_task(F&& fn);
    template <class F, class Name>
        requires std::is_invocable_v<std::decay_t<F>&> && std::is_convertible_v<Name&&, std::string>
    auto create_task(F&& fn, Name&& name);
    template <class F>
        requires std::is_invocable_v<std::decay_t<F>&>
    auto create_task(F&& fn, task_options options);

    // set_task_factory(ioloop::eager_task_factory): every create_task starts eagerly;
    // set_task_factory(nullptr), or task_factory::standard, undoes it.
    void set_task_factory(task_factory f) noexcept { eager_tasks_ = f == task_factory::eager; }
    void set_task_factory(std::nullptr_t) noexcept { eager_tasks_ = false; }
    task_factory get_task_factory() const noexcept {
        return eager_tasks_ ? task_factory::eager : task_factory::standard;
    }


    // Runs fn() on the default executor; the task completes on the loop's thread.
    template <class F>
    auto run_in_executor(F fn);

    // co_await loop.getaddrinfo(host, port): host's addresses, resolved on the default
    // executor (::getaddrinfo blocks); a numeric host is parsed without a thread (defined
    // in net/getaddrinfo.hpp). A template only so that the coroutine is compiled where used.
    template <class = void>
    coro<std::vector<endpoint>> getaddrinfo(std::string host, std::uint16_t port,
                                            socket_type type = socket_type{});
    // asyncio's full form: every hint (type and proto as the system's SOCK_* and IPPROTO_*
    // numbers, 0 for any; flags AI_*), and every answer with its family, type, proto and
    // canonical name. An empty host is the system's null host (the wildcard address with
    // AI_PASSIVE, the loopback without).
    template <class = void>
    coro<std::vector<address_info>> getaddrinfo(std::string host, std::uint16_t port,
                                                address_family family, int type = 0,
                                                int proto = 0, int flags = 0);
    // co_await loop.getnameinfo(address, flags) -> (host, service), flags NI_*.
    template <class = void>
    coro<std::pair<std::string, std::string>> getnameinfo(endpoint address, int flags = 0);

    // ---- transports and protocols (defined in net/) -----------------------------------
    // `factory()` makes the connection's protocol: a std::unique_ptr<P>, P derived from
    // ioloop::protocol or ioloop::buffered_protocol (datagram_protocol for datagrams). The
    // transport owns it from then on.

    // co_await loop.create_connection(factory, host, port, options) ->
    // std::pair<transport*, P*>: tries host's addresses in order, or staggered with
    // options.happy_eyeballs_delay (connect_options, net/connect_options.hpp); if none
    // connects, the one error, "Multiple exceptions: ..." or connect_errors (all_errors).
    // The addresses may be given already resolved. The sock= form takes a connected stream
    // socket (asyncio's sock=); connect_accepted_socket takes one a listener accepted.
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, std::string host, std::uint16_t port);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, std::string host, std::uint16_t port, const connect_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, std::vector<endpoint> addresses, const connect_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, socket sock);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, socket sock, const connect_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_accepted_socket(
        Factory factory, socket sock);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_accepted_socket(
        Factory factory, socket sock, const serve_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_unix_connection(
        Factory factory, std::string path);

    // co_await loop.create_server(factory, host, port, options) -> server, listening on
    // every address of host (all interfaces when host is empty) and of options.hosts,
    // serving at once unless options.start_serving is false (serve_options,
    // net/serve_options.hpp). The sock= form serves a socket already bound (systemd's
    // socket activation hands one over as descriptor 3).
    template <class Factory>
    coro<server> create_server(Factory factory, std::string host, std::uint16_t port,
                               int backlog = 100);
    template <class Factory>
    coro<server> create_server(Factory factory, std::string host, std::uint16_t port,
                               const serve_options& options);
    template <class Factory>
    coro<server> create_server(Factory factory, socket sock);
    template <class Factory>
    coro<server> create_server(Factory factory, socket sock, const serve_options& options);
    template <class Factory>
    coro<server> create_unix_server(Factory factory, std::string path, int backlog = 100);
    template <class Factory>
    coro<server> create_unix_server(Factory factory, std::string path,
                                    const serve_options& options);

    // co_await loop.create_datagram_endpoint(factory, local, remote) ->
    // std::pair<datagram_transport*, P*>: bound to `local` if given, connected to `remote`
    // if given (an unspecified endpoint() means "not given"; one of them is needed).
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, endpoint local, endpoint remote);
    // The same with options (reuse_port, allow_broadcast; family makes an unbound socket
    // when neither address is given). Defined in net/create_datagram_endpoint.hpp.
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, endpoint local, endpoint remote, datagram_options options);
    // asyncio's local_addr=(host, port), remote_addr=(host, port): names resolved through
    // getaddrinfo (the options' family, proto and flags as hints); an empty host means that
    // side is not given. The first local/remote pair of one family that works is used.
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, std::string local_host, std::uint16_t local_port, std::string remote_host,
        std::uint16_t remote_port, datagram_options options);
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, std::string local_host, std::uint16_t local_port, std::string remote_host,
        std::uint16_t remote_port);

    // co_await loop.start_tls(transport, ssl, options) -> transport* (asyncio's STARTTLS
    // upgrade): a TLS layer (an ssl_context of <ioloop/ssl.hpp>) goes between the transport
    // and its protocol, which goes on over TLS through the transport returned once the
    // handshake is done; use that one from then on. options.server_side: this end answers
    // the handshake. asyncio's protocol argument may be given too: it must be the
    // transport's own. Defined in net/start_tls.hpp.
    template <class = void>
    coro<transport*> start_tls(transport& t, ssl_option ssl);
    template <class = void>
    coro<transport*> start_tls(transport& t, ssl_option ssl, const tls_options& options);
    template <class = void>
    coro<transport*> start_tls(transport& t, base_protocol& p, ssl_option ssl,
                               const tls_options& options);

    // co_await loop.sendfile(transport, file, offset, count) -> bytes sent (asyncio's):
    // count < 0 sends to the end of the file. sendfile(2) where the transport is a plain
    // socket's on a readiness backend on Linux (its write buffer is flushed first, reading
    // paused, and write() refused until it ends); elsewhere, with fallback, reads through
    // the executor and writes with flow control; without fallback,
    // sendfile_not_available_error. The file's position is offset + sent afterwards.
    // Defined in net/sendfile.hpp.
    template <class = void>
    coro<std::size_t> sendfile(transport& t, file& f, long long offset = 0, long long count = -1,
                               bool fallback = true);

    // co_await loop.connect_read_pipe(factory, fd) -> std::pair<transport*, P*>: a
    // descriptor that is not a socket (POSIX: a pipe, a FIFO, a terminal, a character
    // device; Windows, on IOCP: the HANDLE of a connected named pipe opened with
    // FILE_FLAG_OVERLAPPED) read as a stream. fd is the transport's from the call on:
    // (POSIX) made non-blocking and close-on-exec, closed when the transport is gone or
    // when the call fails. EOF reaches eof_received, then connection_lost. A regular file
    // is refused (the file API reads files). connect_write_pipe writes one: buffering,
    // water marks and close as a socket's; write_eof closes it once the bytes are out; the
    // reader going away is connection_lost(errc::broken_pipe), never SIGPIPE. Defined in
    // net/connect_pipe.hpp.
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_read_pipe(
        Factory factory, native_descriptor fd);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_write_pipe(
        Factory factory, native_descriptor fd);

    // co_await loop.subprocess_exec(factory, program, args, options) ->
    // std::pair<subprocess_transport*, P*>, and subprocess_shell(factory, cmd, options):
    // asyncio's, with a subprocess_protocol. Defined in subprocess/subprocess_transport.hpp.
    template <class Factory>
    coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> subprocess_exec(
        Factory factory, std::string program, detail::arg_list args,
        const subprocess_options& options);
    template <class Factory>
    coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> subprocess_shell(
        Factory factory, std::string cmd, const subprocess_options& options);

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

    // The handler set_exception_handler set; empty for the default (asyncio's
    // get_exception_handler returns None then). It is move-only, so this lends it: call it,
    // or take it over with set_exception_handler(std::move(...)) to wrap it. While it runs,
    // it is lent to that call, and this is empty.
    exception_handler& get_exception_handler() noexcept { return handler_; }

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

    // Closing, the backend-independent part: nothing queued runs any more (the nodes in
    // `dropped`, and the loop's own, are released), unfinished tasks are abandoned (their
    // coroutines destroyed), the default executor is shut down.
    void close_queues(detail::node_queue& dropped) noexcept {
        closed_ = true;
        dropped.append(remote_.close());
        dropped.append(ready_.take());
        timers_.clear(dropped);
        // Released before the tasks are abandoned: a task's queued step is a node that
        // lives inside the task. Releasing runs the callbacks' destructors, which may do
        // anything.
        dropped.clear();
        tasks_.abandon_all();
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
        detail::ready_node* next = ready_.release_list();
        if (debug_) [[unlikely]] {
            run_timed(next);
            return;
        }
        while (next) {
            detail::ready_node* r = next;
            next = r->next;
            if (r->embedded) [[unlikely]] {
                run_embedded(r);  // the node may be gone now
                continue;
            }
            auto* n = static_cast<detail::callback_node*>(r);
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

    // A task's step, kept out of the loop above: inlined there it slows every other
    // callback down (measured: 217M -> 202M callbacks/s).
    static IOLOOP_NOINLINE void run_embedded(detail::ready_node* r) noexcept {
        auto* e = static_cast<detail::embedded_node*>(r);
        e->run(*e, nullptr);
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
    IOLOOP_NOINLINE void run_timed(detail::ready_node* next) noexcept {
        while (next) {
            detail::ready_node* r = next;
            next = r->next;
            if (r->embedded) {
                auto* e = static_cast<detail::embedded_node*>(r);
                std::string what;
                e->run(*e, &what);  // now: the node may be gone after it ran
                const time_point start = time();
                e->run(*e, nullptr);
                const duration took = time() - start;
                if (took >= slow_callback_) report_slow(std::move(what), took);
                continue;
            }
            auto* n = static_cast<detail::callback_node*>(r);
            if (!n->is_cancelled()) {
                const time_point start = time();
                try {
                    n->fn();
                } catch (...) {
                    report_exception(*n);
                }
                const duration took = time() - start;
                if (took >= slow_callback_) report_slow(describe(*n), took);
            }
            finish(n);
        }
    }

    void report_slow(std::string callback, duration took) noexcept {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3f", double(took.count()) * 1e-9);
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

    // How the loop moves bytes: its backend family's engine (net/io_engine.hpp), owned and
    // set by basic_event_loop. The networking layer reaches the backend only through it.
    detail::io_engine* io_ = nullptr;

    exception_handler handler_;
    std::uint64_t handler_version_ = 0;  // counts set_exception_handler calls
    duration slow_callback_ = std::chrono::milliseconds(100);
    std::uint64_t iterations_ = 0;
    bool debug_ = false;
    bool eager_tasks_ = false;  // set_task_factory(eager_task_factory)
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;

    friend struct detail::loop_access;
    friend struct detail::net_access;
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

    // Queues an embedded node (a task's step), which its owner keeps alive; does nothing
    // on a closed loop.
    static void schedule(loop_base& l, ready_node* n) noexcept {
        if (l.closed_) return;
        l.ready_.push(n);
    }

    // A counted reference to the loop's anchor, made on first use.
    static loop_anchor* anchor(loop_base& l) {
        if (!l.anchor_) l.anchor_ = new loop_anchor{&l, 1};
        ++l.anchor_->refs;
        return l.anchor_;
    }
    static void release(loop_anchor* a) noexcept { loop_base::release_anchor(a); }

    // The loop's anchor as it is, null before its first future: what the futures of `l`
    // point to, read without making one.
    static const loop_anchor* anchor_of(const loop_base& l) noexcept { return l.anchor_; }

    // The anchor of the loop running on this thread; null when none runs here, or when it
    // has made no future yet (then no future is its).
    static const loop_anchor* running_anchor() noexcept {
        const loop_base* l = loop_base::running_loop_;
        return l ? l->anchor_ : nullptr;
    }

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

// begin file ioloop/detail/recycler.hpp
// ioloop: where coroutine frames and task states are allocated, and the read blocks of
// stream readers. A busy program makes and frees thousands of them per loop iteration, in
// bursts: more than malloc's per-thread cache holds, and a burst freed at once can make
// glibc give the memory back to the kernel only to fault it in again for the next burst.
// So each thread keeps free lists by size, reused without a lock, up to a budget.
// Sanitizer builds bypass the lists, so that a use after free is still caught.
#ifndef IOLOOP_DETAIL_RECYCLER_HPP
#define IOLOOP_DETAIL_RECYCLER_HPP


#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IOLOOP_RECYCLER_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IOLOOP_RECYCLER_BYPASS 1
#endif
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class recycler {
public:
    // Class c holds blocks of c * 16 - 8 bytes: what glibc's malloc gives in a chunk of
    // c * 16 (its 8-byte header, sizes in steps of 16). Rounding to 16 instead would cost a
    // whole step more for every size of 16k + 1 to 16k + 8 bytes: 16 bytes per idle
    // connection for the transport (104 bytes), 16 for the stream reader (120).
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t header = 8;
    static constexpr std::size_t largest = 1024;     // larger blocks go straight to malloc
    static constexpr std::size_t budget = 8u << 20;  // bytes kept per thread at most

    recycler() = default;
    recycler(const recycler&) = delete;
    recycler& operator=(const recycler&) = delete;
    ~recycler() {
        while (block* b = read_blocks_) {
            read_blocks_ = b->next;
            ::operator delete(b);
        }
        for (block*& head : free_) {
            while (block* b = head) {
                head = b->next;
                ::operator delete(b);
            }
        }
    }

    void* allocate(std::size_t size) {
        const std::size_t c = size_class(size);
        if (c >= classes) return ::operator new(size);
        if (block* b = free_[c]) {
            free_[c] = b->next;
            kept_ -= c * granule;
            return b;
        }
        return ::operator new(c * granule - header);
    }

    void deallocate(void* p, std::size_t size) noexcept {
        const std::size_t c = size_class(size);
        if (c >= classes || kept_ + c * granule > budget) {
            ::operator delete(p);
            return;
        }
        auto* b = static_cast<block*>(p);
        b->next = free_[c];
        free_[c] = b;
        kept_ += c * granule;
    }

    // A stream reader's read block: what one read takes at most (the transports' 64 KiB),
    // held only while the reader holds unread bytes.
    //
    // Why they are kept: every connection that is readable in one poll step receives into
    // a block before any task runs, so a whole poll batch of blocks is in use at once, and
    // all of them come back a moment later. From malloc, that burst freed at once is the
    // top of the heap, which glibc trims and then faults in again (the per-message strings
    // of the former reader did the same: 104,546 page faults and 1,035 brk calls in 3.4 s
    // at 100 connections x 16 KiB, in the issue's measurement). Measured here, echo server
    // with coroutines, 100 connections x 16 KiB for 2 s, page faults of the server: former
    // reader 211,789; blocks from malloc (none kept) 259,653; 16 kept 187,199; 64 kept
    // 86,995; 128 kept 685, as many as the raw epoll server's order (111), and 1.6x the
    // requests/s of the former reader in the same conditions.
    // The cost: 128 blocks are 8 MiB of address space, resident only where reads touched
    // them. After a burst of 10,000 connections sending 16 bytes each (bench (f)), the
    // kept blocks hold one touched page each: 512 KiB for the thread, measured as 52
    // bytes more per idle connection (804 instead of 752), however many connections.
    static constexpr std::size_t read_block_size = 64 * 1024;
    static constexpr std::size_t read_blocks_kept = 128;

    char* allocate_read_block() {
        if (block* b = read_blocks_) {
            read_blocks_ = b->next;
            --read_blocks_count_;
            return reinterpret_cast<char*>(b);
        }
        return static_cast<char*>(::operator new(read_block_size));
    }

    // How many read blocks are kept now, ready to be taken (the tests look).
    std::size_t read_blocks_free() const noexcept { return read_blocks_count_; }

    void deallocate_read_block(char* p) noexcept {
        if (read_blocks_count_ == read_blocks_kept) {
            ::operator delete(p);
            return;
        }
        auto* b = reinterpret_cast<block*>(p);
        b->next = read_blocks_;
        read_blocks_ = b;
        ++read_blocks_count_;
    }

private:
    struct block {
        block* next;
    };

    static constexpr std::size_t size_class(std::size_t size) noexcept {
        return (size + header + granule - 1) / granule;
    }

    static constexpr std::size_t classes = (largest + header + granule - 1) / granule + 1;

    block* free_[classes] = {};
    std::size_t kept_ = 0;
    block* read_blocks_ = nullptr;
    std::size_t read_blocks_count_ = 0;
};

#ifdef IOLOOP_RECYCLER_BYPASS
inline constexpr bool recycling = false;
inline void* allocate_recycled(std::size_t size) { return ::operator new(size); }
inline void deallocate_recycled(void* p, std::size_t) noexcept { ::operator delete(p); }
inline char* allocate_read_block() {
    return static_cast<char*>(::operator new(recycler::read_block_size));
}
inline void deallocate_read_block(char* p) noexcept { ::operator delete(p); }
#else
// Each thread's recycler comes from the platform shim (detail/posix.hpp, detail/windows.hpp),
// not from an `inline thread_local` variable: for one with a destructor, mingw-w64's GCC
// emits the TLS init function in every translation unit as a plain symbol (a program that
// includes the header twice fails to link), and runs the destructor on freed memory.
inline constexpr bool recycling = true;
inline void* allocate_recycled(std::size_t size) {
    return this_thread_instance<recycler>().allocate(size);
}
inline void deallocate_recycled(void* p, std::size_t size) noexcept {
    this_thread_instance<recycler>().deallocate(p, size);
}
inline char* allocate_read_block() {
    return this_thread_instance<recycler>().allocate_read_block();
}
inline void deallocate_read_block(char* p) noexcept {
    this_thread_instance<recycler>().deallocate_read_block(p);
}
#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#undef IOLOOP_RECYCLER_BYPASS

#endif
// end file ioloop/detail/recycler.hpp

#include <cstddef>
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

    // A done callback's number (remove_done_callback); 0 for every other link.
    virtual std::uint64_t callback_number() const noexcept { return 0; }

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

    // Recycled like coroutine frames.
    static void* operator new(std::size_t size) { return allocate_recycled(size); }
    static void operator delete(void* p, std::size_t size) noexcept {
        deallocate_recycled(p, size);
    }

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

    // ---- which loop may wait for it -----------------------------------------------------
    // Only the thread of a future's loop may touch the future: its state, its count, its
    // waiters. A task of another loop awaiting it would wait forever if that loop does not
    // run, and race with it if it runs on another thread (asyncio raises at once: "got
    // Future attached to a different loop"). These checks read nothing of the future but
    // anchor_, set at construction (not what it points to: a loop destroyed on its thread
    // writes there), so they are safe on a future whose loop runs elsewhere; every awaiter
    // and combinator makes one before it touches the future in any other way. One pointer
    // compare on the usual path. `what` names the caller in the error, `kind` the future
    // ("task" or "future").

    bool belongs_to(const loop_base& l) const noexcept {
        return anchor_ == loop_access::anchor_of(l);
    }

    // For what awaits the future, or links to it to await it: throws invalid_state_error
    // unless it belongs to the loop running on this thread. Also when it is already done:
    // whether it is done yet is the other thread's to say, and reading it would race.
    void check_running_loop(const char* what, const char* kind) const {
        if (anchor_ != loop_access::running_anchor()) [[unlikely]]
            refuse_here(what, kind);
    }

    // For what only keeps a handle to await it later, and may be made outside any loop
    // (loop.run_until_complete(wait_for(t, 1s))): refuses the future only if another
    // loop runs on this thread. The await then checks again.
    void check_not_other_loop(const char* what, const char* kind) const {
        if (anchor_ != loop_access::running_anchor() && loop_access::running()) [[unlikely]]
            refuse_here(what, kind);
    }

    // The error for a future that belongs to another loop than `whose`.
    [[noreturn]] IOLOOP_NOINLINE static void throw_other_loop(const char* what, const char* kind,
                                                              const char* whose) {
        throw invalid_state_error(
            concat({what, ": the ", kind, " belongs to another event loop than ", whose,
                    "; await it from a task on its own loop, or pass work and results between "
                    "the loops with run_coroutine_threadsafe and call_soon_threadsafe"}));
    }

    // A plain future is cancelled at once; a task overrides this (it is cancelled where it
    // waits). False if already done.
    virtual bool cancel() noexcept {
        if (done()) return false;
        error_ = std::make_exception_ptr(cancelled_error());
        finish(status::cancelled);
        return true;
    }

    // cancel() whose cancelled_error carries msg (asyncio's cancel(msg)).
    virtual bool cancel_with(std::string msg) {
        if (done()) return false;
        error_ = std::make_exception_ptr(cancelled_error(msg));
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

    // `l` is told when the future finishes. The future must be pending. The links form a
    // ring: the first is head_, the last its prev_ (one pointer in every future and task
    // instead of two: a task 16 bytes smaller, with the recycler's rounding).
    void add_link(done_link* l) noexcept {
        l->linked_ = true;
        if (!head_) {
            l->prev_ = l->next_ = l;
            head_ = l;
            return;
        }
        done_link* last = head_->prev_;
        l->prev_ = last;
        l->next_ = head_;
        last->next_ = l;
        head_->prev_ = l;
    }

    void remove_link(done_link* l) noexcept {
        if (!l->linked_) return;
        l->linked_ = false;
        if (l->next_ == l) {
            head_ = nullptr;
            return;
        }
        l->prev_->next_ = l->next_;
        l->next_->prev_ = l->prev_;
        if (head_ == l) head_ = l->next_;
    }

    // Takes off, and destroys, the done callback `l` numbered `number`, if it is still on
    // the list (not yet scheduled). The number tells it from a link made later at the same
    // address.
    bool remove_callback(const void* l, std::uint64_t number) noexcept {
        done_link* first = head_;
        if (!first || number == 0) return false;
        done_link* at = first;
        do {
            if (at == l && at->callback_number() == number) {
                remove_link(at);
                at->on_future_destroyed();  // a callback link deletes itself
                return true;
            }
            at = at->next_;
        } while (at != first);
        return false;
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
    [[noreturn]] IOLOOP_NOINLINE static void refuse_here(const char* what, const char* kind) {
        if (!loop_access::running()) {
            throw invalid_state_error(concat({what, ": no running event loop (a ", kind,
                                              " is awaited by a task of its own loop)"}));
        }
        throw_other_loop(what, kind, "the awaiting coroutine's (the loop running on this thread)");
    }

    void report_unretrieved() noexcept {
        loop_base* l = loop();
        if (!l) return;
        try {
            l->call_exception_handler({"exception was never retrieved", error_, describe()});
        } catch (...) {  // describing it failed (out of memory): nothing more to do
        }
    }

    loop_anchor* anchor_;
    done_link* head_ = nullptr;  // the first of a ring (see add_link)
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
class coro_promise_base;  // coro/coro.hpp

// The task whose step runs on this thread now, if any.
inline thread_local task_base* current_task = nullptr;

// Where a coroutine was defined, for reports: captured by its promise's constructor.
struct coroutine_origin {
    const char* function = "";
    const char* file = "";
    std::uint32_t line = 0;

    // As a default argument, evaluated where the call is: in a promise's constructor, that
    // is inside the coroutine itself.
    static constexpr coroutine_origin here(const char* function = __builtin_FUNCTION(),
                                           const char* file = __builtin_FILE(),
                                           std::uint32_t line = __builtin_LINE()) noexcept {
        return {function, file, line};
    }
};

// A coroutine_origin as a base class, so that the class's own members fill its last 4 bytes
// (a member of type coroutine_origin keeps them as padding): task_state<void> is 152 bytes
// instead of 160, a size step of the allocator less.
class origin_holder {
public:
    explicit origin_holder(coroutine_origin o) noexcept
        : function_(o.function), file_(o.file), line_(o.line) {}
    coroutine_origin origin() const noexcept { return {function_, file_, line_}; }

private:
    const char* function_;
    const char* file_;
    std::uint32_t line_;
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

class task_base : public future_base,
                  public registered_task,
                  private embedded_node,
                  private origin_holder {
public:
    task_base(loop_base& loop, std::coroutine_handle<> body, coroutine_origin origin)
        : future_base(loop),
          registered_task(),
          embedded_node(&run_step),
          origin_holder(origin),
          body_(body),
          resume_at_(body),
          id_(loop_access::next_task_id(loop)) {}

    // Links the task into its loop and schedules its first step, or (eager) takes it now,
    // up to the coroutine's first suspension. The loop's list keeps a reference until the
    // task is done.
    void start(bool eager = false) {
        loop_base& l = *loop();
        add_ref();
        loop_access::tasks(l).link(
            this, [](registered_task* r) noexcept { static_cast<task_base*>(r)->abandon_now(); });
        if (eager) {
            step();
            return;
        }
        scheduled_ = true;
        loop_access::schedule(l, step_node());
    }

    // ---- the awaiter protocol ---------------------------------------------------------

    // From await_suspend: the task suspends in `at`, waiting in `w` (null if what it
    // waits for cannot be interrupted). A cancel requested while the task ran is
    // delivered here, at the first suspension point after it.
    void suspend(std::coroutine_handle<> at, wait_point* w) noexcept {
        resume_at_ = at;
        wait_ = w;
        if (must_cancel_ && w) interrupt(w);
    }

    // What the task waits for happened (or the wait was cancelled): the next step runs
    // on a later iteration. Waking a task that is already scheduled does nothing.
    void wake() noexcept {
        wait_ = nullptr;
        if (scheduled_) return;
        scheduled_ = true;
        if (loop_base* l = loop()) loop_access::schedule(*l, step_node());
    }

    // From await_resume: true once if a cancel is to be thrown at this suspension point.
    // An awaiter that must undo something first (hand back a lock it was granted) calls
    // this; the others call throw_if_cancelled().
    bool take_cancel() noexcept {
        const bool cancel = must_cancel_ || interrupted_;
        must_cancel_ = interrupted_ = false;
        return cancel;
    }

    void throw_if_cancelled() {
        if (take_cancel()) throw cancellation();
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
        if (wait_point* w = wait_) interrupt(w);
        return true;
    }

    // cancel() with a message, which the cancelled_error thrown where the task waits carries
    // (asyncio's Task.cancel(msg)); the last message given wins.
    bool cancel_with(std::string msg) override {
        if (done()) return false;
        extras().cancel_message = std::move(msg);
        return cancel();
    }

    // The message of the last cancel(msg), or empty.
    const std::string* cancel_message() const noexcept {
        return extras_ && !extras_->cancel_message.empty() ? &extras_->cancel_message : nullptr;
    }

    // The cancelled_error a cancel of this task throws: with cancel(msg)'s message, if any.
    cancelled_error cancellation() const {
        const std::string* msg = cancel_message();
        return msg ? cancelled_error(*msg) : cancelled_error();
    }

    // Pending cancel requests (asyncio's Task.cancelling()).
    std::size_t cancelling() const noexcept { return cancel_requests_; }

    // Withdraws one cancel request (asyncio's Task.uncancel()); returns those left. When
    // none are left, a cancel not yet delivered is dropped too; a wait it already ended
    // still ends in cancelled_error.
    std::size_t uncancel() noexcept {
        if (cancel_requests_ > 0 && --cancel_requests_ == 0) must_cancel_ = false;
        return cancel_requests_;
    }

    std::string get_name() const {
        return extras_ && extras_->named ? extras_->name
                                         : concat({"Task-", decimal(static_cast<long long>(id_))});
    }
    void set_name(std::string name) {
        extras().name = std::move(name);
        extras_->named = true;
    }

    // "task Task-3 (coroutine fetch at app.cpp:12)"
    std::string describe() const override {
        const coroutine_origin o = origin();
        return concat({"task ", get_name(), " (coroutine ", o.function, " at ", o.file, ":",
                       decimal(static_cast<long long>(o.line)), ")"});
    }

    // Called by the task's coroutine when its body has returned or thrown, from its final
    // suspension: takes the result, destroys the coroutine, finishes the task.
    virtual void body_finished() noexcept = 0;

    // The promise of the task's own coroutine, until it finishes (the top of its stack).
    virtual const coro_promise_base* body_promise() const noexcept = 0;

protected:
    ~task_base() override {
        delete extras_;
        if (body_) body_.destroy();
    }

    // The body is over: the task is done and leaves its loop's list (and its reference).
    void complete(status s) noexcept {
        if (body_) std::exchange(body_, nullptr).destroy();
        if (loop_base* l = loop()) loop_access::tasks(*l).unlink(this);
        finish(s);
        release();
    }

private:
    // The first member: it fills the 4 bytes origin_holder leaves (see there).
    std::uint32_t cancel_requests_ = 0;

protected:
    std::coroutine_handle<> body_;  // the task's own coroutine, until it finishes

private:
    // The node the loop queues to run the next step: the task's own (embedded_node is a
    // base), queued by wake(). A pending task is alive (its loop's list holds it), so the
    // queue needs no reference.
    embedded_node* step_node() noexcept { return this; }

    // The step node's function. It describes the task for debug reports.
    static void run_step(embedded_node& node, std::string* describe) noexcept {
        auto& t = static_cast<task_base&>(node);
        if (describe) {
            *describe = t.describe();
        } else {
            t.step();
        }
    }

    void step() noexcept {
        scheduled_ = false;
        add_ref();  // finishing drops the list's reference: stay alive until the step ends
        task_base* outer = std::exchange(current_task, this);
        if (!started_ && must_cancel_) {
            // Cancelled before its first step: nothing of the body runs.
            must_cancel_ = false;
            error_ = std::make_exception_ptr(cancellation());
            complete(status::cancelled);
        } else {
            started_ = true;
            resume_at_.resume();
        }
        current_task = outer;
        release();
    }

    // Delivers a cancel to the wait the task is in. If the wait ended because of it (the
    // task was woken, the cancel not passed on), that wait throws cancelled_error even if
    // the cancel is withdrawn before the task resumes: what it waited for did not happen.
    void interrupt(wait_point* w) noexcept {
        w->on_cancel(*this);
        if (!wait_ && must_cancel_) interrupted_ = true;
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

    // What few tasks have, kept apart so that the others carry one pointer for it.
    struct task_extras {
        std::string name;            // set_name's
        std::string cancel_message;  // cancel(msg)'s
        bool named = false;
    };
    task_extras& extras() {
        if (!extras_) extras_ = new task_extras();
        return *extras_;
    }

    std::coroutine_handle<> resume_at_;  // where the next step resumes
    wait_point* wait_ = nullptr;
    task_extras* extras_ = nullptr;
    std::uint64_t id_;
    bool must_cancel_ = false;  // a cancel to throw at the next suspension point
    bool interrupted_ = false;  // the current wait was ended by a cancel
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
    explicit coro_promise_base(coroutine_origin origin) noexcept
        : function_(origin.function), file_(origin.file), line_(origin.line) {}

    // Frames come from the thread's recycler (tasks' frames come and go in bursts).
    static void* operator new(std::size_t size) { return detail::allocate_recycled(size); }
    static void operator delete(void* p, std::size_t size) noexcept {
        detail::deallocate_recycled(p, size);
    }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            coro_promise_base& p = h.promise();
            if (p.inline_) return std::noop_coroutine();  // back into the awaiter
            if (!p.is_root_) return p.continuation_;
            p.root_->body_finished();  // destroys this coroutine
            return std::noop_coroutine();
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }

    void unhandled_exception() noexcept { error_ = std::current_exception(); }

    coroutine_origin origin() const noexcept { return {function_, file_, line_}; }
    std::exception_ptr& error() noexcept { return error_; }

    // Awaited: the awaiting coroutine resumes when this one is done.
    void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
    // Set while the awaiter runs the coroutine's first stretch from inside await_suspend.
    void set_inline(bool on) noexcept { inline_ = on; }
    // Made a task: the task hears when this coroutine is done.
    void set_root(task_base* t) noexcept {
        root_ = t;
        is_root_ = true;
    }

    // The coroutine this one awaits now, if that is a coro (its task's stack, get_stack()).
    const coro_promise_base* awaited_child() const noexcept { return child_; }
    void set_awaited_child(const coro_promise_base* c) noexcept { child_ = c; }

private:
    // A coroutine is awaited or made a task, never both: one word serves either.
    union {
        std::coroutine_handle<> continuation_ = nullptr;
        task_base* root_;
    };
    std::exception_ptr error_;
    const coro_promise_base* child_ = nullptr;
    // The origin's fields, not a coroutine_origin: so the flags, and coro_promise<void>'s
    // result, fill the 4 bytes after the line and the promise is 48 bytes, not 56 (every
    // coroutine frame holds one).
    const char* function_;
    const char* file_;
    std::uint32_t line_;
    bool inline_ = false;
    bool is_root_ = false;
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
        template <class AwaitingPromise>
        bool await_suspend(std::coroutine_handle<AwaitingPromise> awaiting) noexcept {
            promise_type& p = h_.promise();
            if constexpr (std::is_base_of_v<detail::coro_promise_base, AwaitingPromise>) {
                parent_ = &awaiting.promise();
                parent_->set_awaited_child(&p);
            }
            p.set_continuation(awaiting);
            p.set_inline(true);
            h_.resume();
            p.set_inline(false);
            return !h_.done();
        }
        T await_resume() {
            if (parent_) parent_->set_awaited_child(nullptr);
            promise_type& p = h_.promise();
            if (p.error()) std::rethrow_exception(p.error());
            if constexpr (!std::is_void_v<T>) return std::move(p.value().get());
        }

    private:
        std::coroutine_handle<promise_type> h_;
        detail::coro_promise_base* parent_ = nullptr;  // the awaiting coroutine's, if a coro
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
            const detail::coroutine_origin o = h_.promise().origin();
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

#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The awaiter `co_await aw` uses: aw's operator co_await, or aw itself.
template <class Aw>
decltype(auto) get_awaiter(Aw&& aw) {
    if constexpr (requires { std::forward<Aw>(aw).operator co_await(); }) {
        return std::forward<Aw>(aw).operator co_await();
    } else {
        return std::forward<Aw>(aw);
    }
}

template <class Aw>
concept awaitable = requires(Aw&& aw) {
    get_awaiter(std::forward<Aw>(aw)).await_ready();
    get_awaiter(std::forward<Aw>(aw)).await_resume();
};

template <class Aw>
using await_result_t = decltype(get_awaiter(std::declval<Aw>()).await_resume());

// What a coro that awaits Aw gives: a copy of a result given by reference (an lvalue
// task's, a shield's of a named task), since coro<T&> holds no reference.
template <class Aw>
using awaited_value_t = std::remove_cvref_t<await_result_t<Aw>>;

// Awaits `aw` where it lies: the caller named it (an lvalue), so it outlives the coro as
// long as the caller's scope does.
template <class Aw>
coro<awaited_value_t<Aw&>> await_in_place(Aw& aw) {
    co_return co_await aw;
}

// Awaits an awaitable moved into the coro's frame: the coro may be kept, moved, made a
// task; nothing it refers to was a temporary of the caller's expression.
template <class Aw>
coro<awaited_value_t<Aw>> await_value(Aw aw) {
    co_return co_await std::move(aw);
}

// Awaits a handle the coro owns (a task, a future): safe to keep or to make a task.
template <class H>
coro<await_result_t<H>> await_owned(H handle) {
    co_return co_await std::move(handle);
}

// What a wrapper (wait_for, timeout, race, create_task) makes of an awaitable that is not
// a coro, task or future: a named one (an lvalue) is awaited where it lies; a temporary is
// moved into the wrapper's frame, so that `auto w = wait_for(reader.readline(), 1s);
// co_await std::move(w);` refers to nothing dead. Every awaiter of the library can be
// moved until it is first awaited; one that cannot be moved is refused here, at compile
// time, rather than kept by reference past the end of its expression.
template <class A>
auto hold_awaitable(A&& aw) {
    if constexpr (std::is_lvalue_reference_v<A>) {
        return await_in_place(aw);
    } else if constexpr (!std::is_move_constructible_v<A>) {
        static_assert(dependent_false<A>,
                      "ioloop: this awaitable cannot be moved, so wait_for / timeout / race / "
                      "create_task cannot keep it alive past the expression that made it; name "
                      "it first (auto aw = ...; co_await ioloop::wait_for(aw, 1s);)");
    } else {
        return await_value(std::move(aw));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/awaitable.hpp
// begin file ioloop/coro/barrier.hpp
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

// begin file ioloop/coro/waiter_queue.hpp
// ioloop: the FIFO of tasks suspended on a synchronization primitive (event, lock,
// semaphore, condition, barrier). The links live in the awaiters, that is in the waiting
// coroutines' frames: queueing allocates nothing. A primitive wakes waiters from the
// front, so they are served in the order they arrived, as asyncio's deques of futures.
#ifndef IOLOOP_CORO_WAITER_QUEUE_HPP
#define IOLOOP_CORO_WAITER_QUEUE_HPP


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
// end file ioloop/coro/waiter_queue.hpp

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
// end file ioloop/coro/barrier.hpp
// begin file ioloop/coro/condition.hpp
// ioloop: condition (asyncio.Condition), a lock plus a queue of tasks waiting to be
// notified. wait() releases the lock, waits for notify(), and takes the lock back before
// it returns, also when the task is cancelled: code after a wait always holds the lock.
// wait() and wait_for() are coroutines as in asyncio (one frame each per call), since
// taking the lock back may itself have to wait.
#ifndef IOLOOP_CORO_CONDITION_HPP
#define IOLOOP_CORO_CONDITION_HPP

// begin file ioloop/coro/lock.hpp
// ioloop: lock (asyncio.Lock), mutual exclusion between tasks, served first come, first
// served. As in asyncio 3.12, release() does not hand the lock over: it wakes the first
// waiter, which takes the lock when it runs. Meanwhile locked() is false, yet a task that
// arrives queues behind the woken one instead of slipping in; and if the woken waiter is
// cancelled before it runs, it wakes the next one, so nobody is left waiting on a free
// lock.
#ifndef IOLOOP_CORO_LOCK_HPP
#define IOLOOP_CORO_LOCK_HPP

// begin file ioloop/coro/acquirable.hpp
// ioloop: acquirable<Primitive>, what lock and semaphore share: acquire() (queued first
// come, first served, cancellable) and scoped() (the same, resuming with a release_guard).
// The primitive decides when a task need not wait and what waiting grants.
#ifndef IOLOOP_CORO_ACQUIRABLE_HPP
#define IOLOOP_CORO_ACQUIRABLE_HPP

// begin file ioloop/coro/release_guard.hpp
// ioloop: release_guard, what `async with lock:` / `async with semaphore:` become:
// `auto guard = co_await l.scoped();` acquires, and the guard's destructor releases, also
// when the scope is left by an exception (cancelled_error included).
#ifndef IOLOOP_CORO_RELEASE_GUARD_HPP
#define IOLOOP_CORO_RELEASE_GUARD_HPP


#include <utility>

IOLOOP_NAMESPACE_BEGIN

// Owns one acquisition of a lock or semaphore and releases it once: at destruction, or
// earlier with release(). Movable (a guard can be returned or handed to a task), not
// copyable (two owners would release twice).
template <class Primitive>
class [[nodiscard]] release_guard {
public:
    release_guard() noexcept = default;
    // Adopts an acquisition the caller made.
    explicit release_guard(Primitive& p) noexcept : p_(&p) {}
    release_guard(release_guard&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    // Releases what it owned (as its destructor would), then takes over o's.
    release_guard& operator=(release_guard&& o) noexcept {
        if (this != &o) {
            release_quietly();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    release_guard(const release_guard&) = delete;
    release_guard& operator=(const release_guard&) = delete;
    ~release_guard() { release_quietly(); }

    // Releases now instead of at the end of the scope; then the guard owns nothing.
    // Throws what the primitive's release() throws.
    void release() {
        if (p_) std::exchange(p_, nullptr)->release();
    }

    // True while the guard still owns its acquisition.
    bool owns() const noexcept { return p_ != nullptr; }
    explicit operator bool() const noexcept { return owns(); }

private:
    // A destructor cannot throw: a release the primitive refuses is skipped. That happens
    // when the loop closes while a task waits in condition::wait() holding a guard (wait()
    // had given the lock up), or when the lock was released behind the guard's back.
    void release_quietly() noexcept {
        try {
            release();
        } catch (const invalid_state_error&) {
        }
    }

    Primitive* p_ = nullptr;
};

namespace detail {

// The acquire awaiter of a primitive, resuming with a guard instead of nothing.
template <class Acquire, class Primitive>
class scoped_acquire final : public Acquire {
public:
    explicit scoped_acquire(Primitive& p) noexcept : Acquire(p), p_(p) {}

    release_guard<Primitive> await_resume() {
        Acquire::await_resume();
        return release_guard<Primitive>(p_);
    }

private:
    Primitive& p_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/release_guard.hpp

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
// end file ioloop/coro/acquirable.hpp

IOLOOP_NAMESPACE_BEGIN

// Not owned by a task (asyncio's isn't either): any task may release it. Lives on its
// loop's thread and must outlive the tasks that wait on it.
class lock : public acquirable<lock> {
public:
    lock() noexcept = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

    bool locked() const noexcept { return locked_; }

    // Unlocks and wakes the first waiter. invalid_state_error if the lock is not locked
    // (asyncio raises RuntimeError).
    void release() {
        if (!locked_) throw invalid_state_error("lock::release: the lock is not locked");
        locked_ = false;
        wake_first();
    }

private:
    friend class detail::acquire_wait<lock>;
    static constexpr const char* acquire_name = "lock::acquire";  // in errors

    // Free and nobody queued: taken without suspending.
    bool try_take() noexcept {
        if (locked_ || !waiting_.empty() || !woken_.empty()) return false;
        locked_ = true;
        return true;
    }
    // Woken by release(): nobody took the lock since (arrivals queued behind).
    void taken_after_wait() noexcept { locked_ = true; }
    void leave_queue(detail::waiter& w) noexcept {
        w.unlink();
        if (!locked_) wake_first();
    }

    // Wakes the first waiter unless one is already woken (it is the one to take the lock).
    void wake_first() noexcept {
        if (woken_.empty() && !waiting_.empty()) waiting_.wake_front_into(woken_);
    }

    detail::waiter_queue waiting_;  // suspended, in arrival order
    detail::waiter_queue woken_;    // at most one: woken by release(), not run yet
    bool locked_ = false;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/lock.hpp

#include <cstddef>
#include <exception>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

// Lives on its loop's thread and must outlive the tasks that wait on it (and so must the
// lock it was given).
class condition {
public:
    // Over a lock of its own.
    condition() noexcept : lock_(&own_) {}
    // Over `l`, shared with other conditions or used directly (asyncio's Condition(lock)).
    explicit condition(ioloop::lock& l) noexcept : lock_(&l) {}
    condition(const condition&) = delete;
    condition& operator=(const condition&) = delete;

    using guard = lock::guard;

    // The underlying lock's interface.
    bool locked() const noexcept { return lock_->locked(); }
    [[nodiscard]] lock::acquire_awaiter acquire() noexcept { return lock_->acquire(); }
    [[nodiscard]] detail::scoped_acquire<lock::acquire_awaiter, lock> scoped() noexcept {
        return lock_->scoped();
    }
    void release() { lock_->release(); }

    // co_await c.wait(): the lock must be held (invalid_state_error otherwise). Releases
    // it, waits until notified, takes it back. Cancelled while waiting: the lock is taken
    // back first, then cancelled_error comes out (further cancels meanwhile are folded
    // into that one, as asyncio does).
    // A template only so that the coroutine is compiled where it is used: g++ generates
    // a plain inline coroutine in every translation unit that includes it.
    template <class = void>
    coro<void> wait() {
        if (!lock_->locked())
            throw invalid_state_error("condition::wait: the lock is not acquired");
        lock_->release();
        std::exception_ptr cancelled;
        try {
            co_await notified_awaiter(*this);
        } catch (const cancelled_error&) {
            cancelled = std::current_exception();
        }
        for (;;) {
            try {
                co_await lock_->acquire();
                break;
            } catch (const cancelled_error&) {
                cancelled = std::current_exception();
            }
        }
        if (cancelled) std::rethrow_exception(cancelled);
    }

    // co_await c.wait_for(pred): waits until pred() is true, testing it first and after
    // each notification, with the lock held; returns pred()'s last result.
    template <class Predicate>
    coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate pred) {
        auto result = pred();
        while (!result) {
            co_await wait();
            result = pred();
        }
        co_return result;
    }

    // Wakes up to n waiters, first come first woken. The lock must be held
    // (invalid_state_error otherwise); the woken return from wait() once they get it.
    void notify(std::size_t n = 1) {
        if (!lock_->locked())
            throw invalid_state_error("condition::notify: the lock is not acquired");
        wake(n);
    }

    void notify_all() { notify(waiting_.size()); }

private:
    class notified_awaiter final : public detail::queued_wait {
    public:
        explicit notified_awaiter(condition& c) noexcept
            : queued_wait(c.waiting_, "condition::wait"), c_(c) {}
        ~notified_awaiter() {
            if (linked()) leave();
        }

        void await_resume() {
            if (task->take_cancel()) {
                leave();
                throw cancelled_error();
            }
            unlink();
        }

    private:
        // A notification that reached a waiter which will not return normally goes to
        // the next waiter, so that notify(1) is not lost (asyncio 3.13 does the same).
        void leave() noexcept {
            const bool notified = queue() == &c_.notified_;
            unlink();
            if (notified) c_.wake(1);
        }

        condition& c_;
    };

    void wake(std::size_t n) noexcept {
        for (; n > 0 && !waiting_.empty(); --n) waiting_.wake_front_into(notified_);
    }

    ioloop::lock own_;
    ioloop::lock* lock_;
    detail::waiter_queue waiting_;   // waiting for a notification, in arrival order
    detail::waiter_queue notified_;  // notified, not run yet
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/condition.hpp
// begin file ioloop/coro/event.hpp
// ioloop: event (asyncio.Event), a flag that tasks wait for: set() wakes every waiter,
// in the order they started waiting, and later waits return at once until clear().
#ifndef IOLOOP_CORO_EVENT_HPP
#define IOLOOP_CORO_EVENT_HPP


IOLOOP_NAMESPACE_BEGIN

// Lives on its loop's thread, like everything a task touches; it must outlive the tasks
// that wait on it.
class event {
public:
    class wait_awaiter final : public detail::queued_wait {
    public:
        explicit wait_awaiter(event& e) noexcept : queued_wait(e.waiters_, "event::wait"), e_(e) {}
        bool await_ready() const noexcept { return e_.set_; }

    private:
        event& e_;
    };

    event() noexcept = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;

    bool is_set() const noexcept { return set_; }

    // Sets the flag and wakes every waiter. A waiter woken here returns from wait() even
    // if clear() is called before it runs (asyncio: its future is already done).
    void set() noexcept {
        if (set_) return;
        set_ = true;
        waiters_.wake_all();
    }

    void clear() noexcept { set_ = false; }

    // co_await e.wait(): returns at once if the flag is set, else when set() is called;
    // cancelled_error if the task is cancelled meanwhile.
    [[nodiscard]] wait_awaiter wait() noexcept { return wait_awaiter(*this); }

private:
    detail::waiter_queue waiters_;
    bool set_ = false;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/event.hpp
// begin file ioloop/coro/future.hpp
// ioloop: future<T> (asyncio's Future), a result that someone sets later, and any_future,
// what every future and task offers whatever its result type. Both are counted
// references to a state on the loop's thread; awaiting one suspends the current task
// until it is done. Awaiting an lvalue gives a reference to the result (several tasks
// may await it); awaiting an rvalue moves the result out.
#ifndef IOLOOP_CORO_FUTURE_HPP
#define IOLOOP_CORO_FUTURE_HPP


#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
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
    // A future of another loop is refused before it is counted (its loop may run on
    // another thread), so the awaiter is not made and nothing is released either.
    explicit future_awaiter(State* s) : state_(s) {
        s->check_running_loop("co_await", std::is_base_of_v<task_base, State> ? "task" : "future");
        state_->add_ref();
    }
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
        // The task's cancel(msg) message goes on to what it awaits, as in asyncio.
        // (Out of memory for the message's copy: the cancel goes on without it.)
        const std::string* msg = t.cancel_message();
        bool passed = false;
        try {
            passed = msg ? state_->cancel_with(*msg) : state_->cancel();
        } catch (...) {
            passed = state_->cancel();
        }
        if (passed) t.cancel_passed_on();
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

// Numbers the done callbacks of this thread, from 1 (remove_done_callback tells them apart).
inline thread_local std::uint64_t last_callback_number = 0;

// A done callback: runs on the loop, like a call_soon made when the future finished.
template <class Handle, class F>
class callback_link final : public done_link {
public:
    explicit callback_link(F&& fn) : fn_(std::move(fn)), number_(++last_callback_number) {}

    std::uint64_t callback_number() const noexcept override { return number_; }

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
    std::uint64_t number_;
};

}  // namespace detail

// What add_done_callback returns: names the callback to remove_done_callback.
class done_callback {
public:
    done_callback() noexcept = default;

private:
    friend class any_future;
    done_callback(const void* link, std::uint64_t number) noexcept : link_(link), number_(number) {}
    const void* link_ = nullptr;
    std::uint64_t number_ = 0;
};

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
    // Takes back a callback add_done_callback added, if it has not been scheduled yet
    // (asyncio's remove_done_callback): 1 if it was, else 0. C++ callables have no identity
    // to compare, so the callback is named by what add_done_callback returned.
    std::size_t remove_done_callback(done_callback c) noexcept {
        return state_->remove_callback(c.link_, c.number_) ? 1 : 0;
    }

    bool cancel() noexcept { return state_->cancel(); }
    // The same, and the cancelled_error carries msg (asyncio's cancel(msg)).
    bool cancel(std::string msg) { return state_->cancel_with(std::move(msg)); }

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
    done_callback add_done_callback_as(F&& fn) {
        using link = detail::callback_link<Handle, std::decay_t<F>>;
        auto* l = new link(std::decay_t<F>(std::forward<F>(fn)));
        const done_callback added{l, l->callback_number()};
        if (state_->done()) {
            l->schedule_now(state_);
        } else {
            l->bind(state_);
            state_->add_link(l);
        }
        return added;
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
    done_callback add_done_callback(F&& fn) {
        return add_done_callback_as<future>(std::forward<F>(fn));
    }

    // Throws invalid_state_error if the future belongs to another loop than the running one.
    auto operator co_await() & {
        return detail::future_awaiter<detail::future_state<T>, false>(typed());
    }
    auto operator co_await() && {
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
// begin file ioloop/coro/gather.hpp
// ioloop: gather (asyncio.gather), run awaitables concurrently and collect their results in
// argument order.
//
//   auto [a, b] = co_await ioloop::gather(fetch("x"), fetch("y"));   // std::tuple<A, B>
//   std::vector<int> all = co_await ioloop::gather(std::move(tasks)); // std::vector<int>
//   auto outcomes = co_await ioloop::gather(ioloop::return_exceptions, std::move(tasks));
//
// Each argument is a coro (made a task at once, as asyncio wraps coroutines), a task or a
// future. Awaiting the gather waits for every child; the first child that fails (or is
// cancelled) ends the gather at once with that exception, and the others keep running, as
// in asyncio. With return_exceptions every child finishes and each gives an
// outcome<T>. A void child gives void_result in a tuple or vector of results.
//
// Cancellation, as asyncio's: cancelling the task that awaits the gather cancels every
// child still running, and the gather then ends in cancelled_error (with return_exceptions,
// once every child has finished). A child cancelled on its own ends the gather in
// cancelled_error too, or with return_exceptions gives an outcome holding cancelled_error.
//
// The gather is an awaitable, not a task or future (asyncio's gather returns a future): it
// links itself to each child and counts down, so it costs no task, no allocation per
// child, and, for the vector form, one array of links and the vector of results. Await it
// once. A child's result is moved out when gather owns the handle (a coro, an rvalue task
// or future, an rvalue vector), copied when the caller keeps it (an lvalue). So a task
// listed twice must come in an lvalue vector: moved out once, its result would be gone the
// second time (asyncio removes duplicates instead).
#ifndef IOLOOP_CORO_GATHER_HPP
#define IOLOOP_CORO_GATHER_HPP

// begin file ioloop/coro/children.hpp
// ioloop: what the combinators (gather, wait, as_completed, shield, wait_for) accept and
// how they watch it. Each argument becomes a handle: a coro is made a task, as asyncio's
// ensure_future wraps a coroutine, and a task or future is kept as given. A combinator
// watches its children through links that live in the combinator itself (one per child,
// no allocation per child) and tell it which child finished.
#ifndef IOLOOP_CORO_CHILDREN_HPP
#define IOLOOP_CORO_CHILDREN_HPP

// begin file ioloop/coro/task.hpp
// ioloop: task<T> (asyncio's Task), a coroutine scheduled on the loop, and any_task, what
// every task offers whatever its result type (current_task(), all_tasks()). A task starts
// on the next iteration and runs even if nobody awaits it; its result or exception is
// kept until read, and an exception nobody read is reported when the task goes away.
#ifndef IOLOOP_CORO_TASK_HPP
#define IOLOOP_CORO_TASK_HPP


#include <coroutine>
#include <cstddef>
#include <cstdio>
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

    task_state(loop_base& loop, body_handle body) : task_base(loop, body, body.promise().origin()) {
        body.promise().set_root(this);
    }

    result_value<T>& value() noexcept { return value_; }

    const coro_promise_base* body_promise() const noexcept override {
        return body_ ? &body_handle::from_address(body_.address()).promise() : nullptr;
    }

    void body_finished() noexcept override {
        coro_promise<T>& p = body_handle::from_address(body_.address()).promise();
        if (p.error()) {
            error_ = std::move(p.error());
            complete(is_cancellation(error_) ? status::cancelled : status::failed);
            return;
        }
        if (take_cancel()) {
            // Cancelled while it ran, and it returned without suspending again: asyncio
            // marks such a task cancelled.
            error_ = std::make_exception_ptr(cancellation());
            complete(status::cancelled);
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

// One coroutine of a task's stack: the coroutine function, and where it is defined.
using stack_frame = detail::coroutine_origin;

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
    done_callback add_done_callback(F&& fn) {
        return add_done_callback_as<any_task>(std::forward<F>(fn));
    }

    // The coroutines the task is suspended in, its own first and the innermost last
    // (asyncio's Task.get_stack(), oldest frame first): each coroutine awaited as a coro
    // is one frame. Empty once the task is done, as asyncio's for a finished task.
    std::vector<stack_frame> get_stack() const {
        std::vector<stack_frame> frames;
        for (const detail::coro_promise_base* p = base()->body_promise(); p; p = p->awaited_child())
            frames.push_back(p->origin());
        return frames;
    }

    // Prints get_stack() to `out`, one coroutine a line (asyncio's Task.print_stack()):
    //   Stack for task Task-3 (coroutine fetch at app.cpp:12) (most recent call last):
    //     coroutine fetch at app.cpp:12
    //     coroutine read_reply at app.cpp:30
    void print_stack(std::FILE* out = stderr) const {
        const std::vector<stack_frame> frames = get_stack();
        const std::string who = base()->describe();
        if (frames.empty()) {
            std::fprintf(out, "No stack for %s\n", who.c_str());
            return;
        }
        std::fprintf(out, "Stack for %s (most recent call last):\n", who.c_str());
        for (const stack_frame& f : frames)
            std::fprintf(out, "  coroutine %s at %s:%u\n", f.function, f.file, static_cast<unsigned>(f.line));
    }

    // Waits for the task to be done, without its result (its exception still comes out).
    // Throws invalid_state_error if the task belongs to another loop than the running one.
    auto operator co_await() const {
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
    done_callback add_done_callback(F&& fn) {
        return add_done_callback_as<task>(std::forward<F>(fn));
    }

    auto operator co_await() & {
        return detail::future_awaiter<detail::task_state<T>, false>(typed());
    }
    auto operator co_await() && {
        return detail::future_awaiter<detail::task_state<T>, true>(typed());
    }

private:
    detail::task_state<T>* typed() const noexcept {
        return static_cast<detail::task_state<T>*>(state_);
    }
};

namespace detail {

// The handle forms of future_base's loop checks, for the combinators: a task<T> or an
// any_task is named a task in the error; an any_future, which may hold either, a future.
template <class H>
inline constexpr const char* handle_kind = std::is_base_of_v<any_task, H> ? "task" : "future";

template <class H>
void check_running_loop(const H& h, const char* what) {
    h.state()->check_running_loop(what, handle_kind<H>);
}

template <class H>
void check_not_other_loop(const H& h, const char* what) {
    h.state()->check_not_other_loop(what, handle_kind<H>);
}

// A copy of the caller's handles, each checked before it is copied: a copy counts a
// reference, which is the other loop's thread's to count.
template <class H>
std::vector<H> checked_copy(const std::vector<H>& handles, const char* what) {
    std::vector<H> copy;
    copy.reserve(handles.size());
    for (const H& h : handles) {
        check_running_loop(h, what);
        copy.push_back(h);
    }
    return copy;
}

}  // namespace detail

namespace detail {

// create_task's body; `name` is set before an eager start, which may finish the task.
template <class T, class Name>
task<T> make_task(loop_base& loop, coro<T> body, Name name, bool eager_start) {
    if (!body) throw invalid_state_error("create_task: the coro was already awaited or moved from");
    auto h = body.release();
    task_state<T>* t;
    try {
        t = new task_state<T>(loop, h);
    } catch (...) {
        h.destroy();
        throw;
    }
    task<T> result(t);  // adopts the first reference
    if constexpr (std::is_same_v<Name, std::string>) {
        if (!name.empty()) t->set_name(std::move(name));
    } else if constexpr (!std::is_null_pointer_v<Name>) {
        if (name) t->set_name(name);
    }
    const bool eager = (eager_start || loop.get_task_factory() == task_factory::eager) &&
                       loop_access::running() == &loop;
    t->start(eager);
    return result;
}

}  // namespace detail

template <class T>
task<T> loop_base::create_task(coro<T> body) {
    check_open("create_task");
    return detail::make_task(*this, std::move(body), nullptr, false);
}

template <class T, class Name>
    requires std::is_convertible_v<Name&&, std::string>
task<T> loop_base::create_task(coro<T> body, Name&& name) {
    check_open("create_task");
    return detail::make_task(*this, std::move(body), std::string(std::forward<Name>(name)), false);
}

template <class T>
task<T> loop_base::create_task(coro<T> body, task_options options) {
    check_open("create_task");
    return detail::make_task(*this, std::move(body), options.name, options.eager_start);
}

namespace detail {

template <class R>
inline constexpr bool is_coro_type = false;
template <class T>
inline constexpr bool is_coro_type<coro<T>> = true;

// A callable that makes a coro when called with nothing (a lambda `[&]() -> coro<T> {...}`).
template <class F>
concept coro_callable = std::is_invocable_v<std::decay_t<F>&> &&
                        is_coro_type<std::invoke_result_t<std::decay_t<F>&>>;

// Calls fn, which lives in this frame: a lambda's captures outlive the coroutine it made
// (a coroutine lambda refers to its closure, which a temporary would take away at the
// end of the create_task expression).
template <class F>
std::invoke_result_t<F&> call_kept(F fn) {
    co_return co_await fn();
}

// The callable moved into call_kept's frame; the static_assert names the mistake of a
// callable that makes no coro (a lambda without its `-> ioloop::coro<T>`).
template <class F>
auto kept_call(F&& fn) {
    static_assert(coro_callable<F>,
                  "create_task: the callable must return an ioloop::coro<T> (write the lambda as "
                  "[x]() -> ioloop::coro<void> { ... }, and pass the lambda, not its call)");
    return call_kept(std::decay_t<F>(std::forward<F>(fn)));
}

}  // namespace detail

template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
auto loop_base::create_task(F&& fn) {
    return create_task(detail::kept_call(std::forward<F>(fn)));
}

template <class F, class Name>
    requires std::is_invocable_v<std::decay_t<F>&> && std::is_convertible_v<Name&&, std::string>
auto loop_base::create_task(F&& fn, Name&& name) {
    return create_task(detail::kept_call(std::forward<F>(fn)), std::forward<Name>(name));
}

template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
auto loop_base::create_task(F&& fn, task_options options) {
    return create_task(detail::kept_call(std::forward<F>(fn)), options);
}

// Schedules the coroutine on the running loop (asyncio.create_task).
template <class T>
task<T> create_task(coro<T> body) {
    return detail::loop_access::running_or_throw("create_task").create_task(std::move(body));
}

template <class T, class Name>
    requires std::is_convertible_v<Name&&, std::string>
task<T> create_task(coro<T> body, Name&& name) {
    return detail::loop_access::running_or_throw("create_task")
        .create_task(std::move(body), std::forward<Name>(name));
}

template <class T>
task<T> create_task(coro<T> body, task_options options) {
    return detail::loop_access::running_or_throw("create_task").create_task(std::move(body), options);
}

// Schedules fn() on the running loop, fn kept alive in the task (see loop_base).
template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
auto create_task(F&& fn) {
    return create_task(detail::kept_call(std::forward<F>(fn)));
}

template <class F, class Name>
    requires std::is_invocable_v<std::decay_t<F>&> && std::is_convertible_v<Name&&, std::string>
auto create_task(F&& fn, Name&& name) {
    return create_task(detail::kept_call(std::forward<F>(fn)), std::forward<Name>(name));
}

template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
auto create_task(F&& fn, task_options options) {
    return create_task(detail::kept_call(std::forward<F>(fn)), options);
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

#include <exception>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What a combinator keeps for an argument of type A (cv-ref removed): its handle type, and
// its result type if it has one (any_task and any_future only say when they are done).
template <class A>
struct child_of {
    static constexpr bool valid = false;
};
template <class T>
struct child_of<coro<T>> {
    static constexpr bool valid = true;
    static constexpr bool has_value = true;
    using handle = task<T>;
    using value_type = T;
};
template <class T>
struct child_of<task<T>> {
    static constexpr bool valid = true;
    static constexpr bool has_value = true;
    using handle = task<T>;
    using value_type = T;
};
template <class T>
struct child_of<future<T>> {
    static constexpr bool valid = true;
    static constexpr bool has_value = true;
    using handle = future<T>;
    using value_type = T;
};
template <>
struct child_of<any_task> {
    static constexpr bool valid = true;
    static constexpr bool has_value = false;
    using handle = any_task;
};
template <>
struct child_of<any_future> {
    static constexpr bool valid = true;
    static constexpr bool has_value = false;
    using handle = any_future;
};

template <class A>
concept child_awaitable = child_of<std::remove_cvref_t<A>>::valid;

template <class A>
concept valued_child =
    child_of<std::remove_cvref_t<A>>::valid && child_of<std::remove_cvref_t<A>>::has_value;

template <class A>
using child_handle = typename child_of<std::remove_cvref_t<A>>::handle;

template <class A>
using child_value = typename child_of<std::remove_cvref_t<A>>::value_type;

// The caller gave the argument up (an rvalue; a coro always is), so its result may be
// moved out of the task. An lvalue handle is shared with the caller: its result is copied.
template <class A>
inline constexpr bool moves_result = !std::is_lvalue_reference_v<A>;

template <class A>
inline constexpr bool is_coro_argument = false;
template <class T>
inline constexpr bool is_coro_argument<coro<T>> = true;

// A coro becomes a task on the running loop; a task or future handle is copied or moved.
template <class A>
child_handle<A> make_child(A&& a) {
    if constexpr (is_coro_argument<std::remove_cvref_t<A>>) {
        static_assert(!std::is_lvalue_reference_v<A>,
                      "a coro runs once: pass std::move(c), or the call f() itself");
        return create_task(std::move(a));
    } else {
        return child_handle<A>(std::forward<A>(a));
    }
}

// The handles of a vector of children: a vector of coros becomes a vector of tasks, made
// in order; a vector of handles is taken over as it is.
template <class A>
std::vector<child_handle<A>> handles_of(std::vector<A>&& aws) {
    if constexpr (is_coro_argument<A>) {
        std::vector<child_handle<A>> tasks;
        tasks.reserve(aws.size());
        for (A& c : aws) tasks.push_back(make_child(std::move(c)));
        return tasks;
    } else {
        return std::move(aws);
    }
}

// A child's result for a combinator: moved out if the combinator owns the only claim on
// it, copied otherwise. The child must have finished with a value.
template <bool Move, class H>
decltype(auto) take_result(H& h) {
    if constexpr (std::is_void_v<decltype(h.result())>) {
        h.result();  // only its exception, if any
    } else if constexpr (Move) {
        return std::move(h.result());
    } else {
        return h.result();
    }
}

// The exception a done child ended with (its cancelled_error if it was cancelled), or null
// if it finished with a value. Reading it marks it retrieved, as asyncio's exception() does.
inline std::exception_ptr error_of(future_base& s) noexcept {
    try {
        s.rethrow_if_not_finished("error_of");
    } catch (...) {
        return std::current_exception();
    }
    return nullptr;
}

// Sits on one child's list of waiters and tells the owner when that child is done. The
// owner keeps an array of them: the child is `state`, its position is the link's index.
template <class Owner>
class child_link final : public done_link {
public:
    void on_done() noexcept override { owner->child_done(*this); }

    void unlink() noexcept {
        if (linked()) state->remove_link(this);
    }

    Owner* owner = nullptr;
    future_base* state = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/children.hpp
// begin file ioloop/coro/outcome.hpp
// ioloop: outcome<T>, how a piece of work ended: a value, or the exception it failed with
// (cancelled_error if it was cancelled). gather(return_exceptions, ...) gives one per child,
// where asyncio puts the exception object itself in the list of results. No <variant> or
// <optional>: a union and a flag, like the result slot of a task.
#ifndef IOLOOP_CORO_OUTCOME_HPP
#define IOLOOP_CORO_OUTCOME_HPP


#include <exception>
#include <new>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void rethrow_outcome_error(const std::exception_ptr& e) {
    if (!e) throw invalid_state_error("outcome: a failure without an exception");
    std::rethrow_exception(e);
}

}  // namespace detail

template <class T>
class outcome {
    static_assert(!std::is_reference_v<T>, "ioloop::outcome holds a value, not a reference");

public:
    // A value, built in place from args.
    template <class... Args>
    explicit outcome(std::in_place_t, Args&&... args) : has_value_(true) {
        ::new (static_cast<void*>(&value_)) T(std::forward<Args>(args)...);
    }

    // A failure.
    explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}

    outcome(const outcome& o) : error_(o.error_), has_value_(o.has_value_) {
        if (has_value_) ::new (static_cast<void*>(&value_)) T(o.value_);
    }
    outcome(outcome&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : error_(std::move(o.error_)), has_value_(o.has_value_) {
        if (has_value_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
    }
    outcome& operator=(const outcome& o) {
        if (this != &o) assign(o);
        return *this;
    }
    outcome& operator=(outcome&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
        if (this != &o) assign(std::move(o));
        return *this;
    }
    ~outcome() { destroy(); }

    bool has_value() const noexcept { return has_value_; }
    explicit operator bool() const noexcept { return has_value_; }

    // The value; rethrows the exception if the work failed.
    T& value() & {
        check();
        return value_;
    }
    const T& value() const& {
        check();
        return value_;
    }
    T&& value() && {
        check();
        return std::move(value_);
    }

    // The exception the work failed with; null if it gave a value.
    std::exception_ptr exception() const noexcept { return error_; }

private:
    void check() const {
        if (!has_value_) detail::rethrow_outcome_error(error_);
    }

    void destroy() noexcept {
        if (has_value_) {
            value_.~T();
            has_value_ = false;
        }
    }

    template <class O>
    void assign(O&& o) {
        destroy();
        error_ = o.error_;
        if (o.has_value_) {
            ::new (static_cast<void*>(&value_)) T(std::forward<O>(o).value_);
            has_value_ = true;
        }
    }

    union {
        T value_;
    };
    std::exception_ptr error_;
    bool has_value_ = false;
};

// The outcome of work that gives no value: finished, or the exception it failed with.
template <>
class outcome<void> {
public:
    outcome() noexcept = default;
    explicit outcome(std::in_place_t) noexcept {}
    explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)), has_value_(false) {}

    bool has_value() const noexcept { return has_value_; }
    explicit operator bool() const noexcept { return has_value_; }

    // Returns if the work finished; rethrows its exception if it failed.
    void value() const {
        if (!has_value_) detail::rethrow_outcome_error(error_);
    }

    std::exception_ptr exception() const noexcept { return error_; }

private:
    std::exception_ptr error_;
    bool has_value_ = true;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/outcome.hpp
// begin file ioloop/coro/void_result.hpp
// ioloop: void_result, a void child's place among the results of a combinator: gather's
// tuple or vector (Python's None in gather's list), race's variant.
#ifndef IOLOOP_CORO_VOID_RESULT_HPP
#define IOLOOP_CORO_VOID_RESULT_HPP


#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

struct void_result {
    friend constexpr bool operator==(void_result, void_result) noexcept { return true; }
};

namespace detail {

template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, void_result, T>;

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/void_result.hpp

#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// gather(return_exceptions, ...): every child finishes, each gives an outcome<T>
// (asyncio's return_exceptions=True).
struct return_exceptions_t {
    explicit constexpr return_exceptions_t() = default;
};
inline constexpr return_exceptions_t return_exceptions{};

namespace detail {

// A child's place in the results: its value, or with return_exceptions its outcome.
template <class T, bool Outcomes>
using gather_element = std::conditional_t<Outcomes, outcome<T>, gathered_t<T>>;

// After the gather ended early, reads the exception of a child still running once it
// finishes, so that it is not reported as never retrieved: asyncio's gather does the same
// for the children that finish after it is over. Allocated only on that path.
class retrieve_when_done final : public done_link {
public:
    explicit retrieve_when_done(future_base* s) noexcept : state_(s) {}

    void on_done() noexcept override {
        if (!state_->cancelled()) {
            try {
                (void)state_->exception();
            } catch (...) {  // it is done and not cancelled: exception() does not throw
            }
        }
        delete this;
    }
    void on_future_destroyed() noexcept override { delete this; }

private:
    future_base* state_;
};

// What every form of gather shares: linking to the children, the countdown, ending early,
// passing a cancellation on. The derived class owns the children and the links.
class gather_core : public wait_point {
public:
    using link = child_link<gather_core>;

    gather_core(const gather_core&) = delete;
    gather_core& operator=(const gather_core&) = delete;

    // A child is done (its link is already off its list).
    void child_done(link& l) noexcept {
        --pending_;
        if (!return_exceptions_ && l.state->state() != future_base::status::finished) {
            failed_ = l.state;
            end_early();
            task_->wake();
        } else if (pending_ == 0) {
            task_->wake();
        }
    }

    // The awaiting task was cancelled: every child still running is cancelled (asyncio's
    // _GatheringFuture.cancel) and the gather goes on until the children react.
    void on_cancel(task_base& t) noexcept override {
        bool passed = false;
        for (std::size_t i = 0; i < count_; ++i) {
            future_base* s = links_[i].state;
            if (!s->done() && s->cancel()) passed = true;
        }
        if (passed) {
            cancel_requested_ = true;
            t.cancel_passed_on();
        } else {  // nothing left to cancel: the task throws where it waits
            t.wake();
        }
    }

protected:
    explicit gather_core(bool return_exceptions) noexcept : return_exceptions_(return_exceptions) {}
    // Only before the gather is awaited (into a wait_for, a race): no link is bound yet.
    gather_core(gather_core&& o) noexcept : return_exceptions_(o.return_exceptions_) {}
    ~gather_core() = default;

    // await_suspend's work, once the links name their children: links to those still
    // running. False if the gather is already over (all done, or one failed). `kind`
    // names the children in the error for one of another loop: each is checked as it is
    // first touched, not in a pass of its own (a cache miss per child in a large batch),
    // and a child that already failed ends the gather only once all are checked. Null
    // if the children were checked when the gather was made (the tuple form).
    bool start(std::coroutine_handle<> h, link* links, std::size_t n, const char* kind) {
        task_base& t = current_task_or_throw("gather");
        links_ = links;
        count_ = n;
        for (std::size_t i = 0; i < n; ++i) {
            link& l = links[i];
            // Throwing leaves the links made so far to the destructor's unlink_all.
            if (kind) l.state->check_running_loop("gather", kind);
            if (!l.state->done()) {
                l.state->add_link(&l);
                ++pending_;
            } else if (!failed_ && !return_exceptions_ &&
                       l.state->state() != future_base::status::finished) {
                failed_ = l.state;
            }
        }
        if (failed_) {
            end_early();
            return false;
        }
        if (pending_ == 0) return false;
        task_ = &t;
        t.suspend(h, this);
        return true;
    }

    // await_resume's checks before the results are read: a cancellation of the awaiting
    // task, the child that ended the gather, a cancellation passed on to the children.
    void throw_if_over_by_error() {
        if (task_) task_->throw_if_cancelled();
        if (failed_) failed_->rethrow_if_not_finished("gather");
        if (cancel_requested_) {
            // asyncio reads every child's exception before it raises the cancellation.
            for (std::size_t i = 0; i < count_; ++i) {
                future_base* s = links_[i].state;
                if (s->state() == future_base::status::failed) (void)s->exception();
            }
            throw cancelled_error();
        }
    }

    // Nothing is linked once the count is down (the usual end): no pass over the links.
    void unlink_all() noexcept {
        if (pending_ == 0) return;
        for (std::size_t i = 0; i < count_; ++i) links_[i].unlink();
    }

    // Refuses a second co_await (the results may have been moved out).
    void check_first_await() {
        if (awaited_) throw invalid_state_error("gather: a gather is awaited once");
        awaited_ = true;
    }

private:
    // A child failed: the gather is over and the other children keep running.
    void end_early() noexcept {
        for (std::size_t i = 0; i < count_; ++i) {
            link& l = links_[i];
            l.unlink();
            if (!l.state->done()) {
                if (auto* r = new (std::nothrow) retrieve_when_done(l.state)) l.state->add_link(r);
            }
        }
        pending_ = 0;
    }

    task_base* task_ = nullptr;
    link* links_ = nullptr;
    std::size_t count_ = 0;
    std::size_t pending_ = 0;
    future_base* failed_ = nullptr;  // the child whose exception ends the gather
    bool return_exceptions_;
    bool cancel_requested_ = false;
    bool awaited_ = false;
};

// One child's outcome; h is done.
template <bool Move, class H>
outcome<typename H::value_type> outcome_of(H& h) {
    using T = typename H::value_type;
    future_base& s = *h.state();
    if (s.state() != future_base::status::finished) return outcome<T>(error_of(s));
    if constexpr (std::is_void_v<T>) {
        return outcome<void>();
    } else {
        return outcome<T>(std::in_place, take_result<Move>(h));
    }
}

// One child's entry in the results; h is done.
template <bool Outcomes, bool Move, class H>
gather_element<typename H::value_type, Outcomes> element_of(H& h) {
    if constexpr (Outcomes) {
        return outcome_of<Move>(h);
    } else if constexpr (std::is_void_v<typename H::value_type>) {
        return void_result{};
    } else {
        return take_result<Move>(h);
    }
}

// gather(std::vector<...>): the handles, and one link per child made when awaited.
template <class H, bool Move, bool Outcomes>
class [[nodiscard]] gather_vector final : public gather_core {
public:
    using result_type = std::vector<gather_element<typename H::value_type, Outcomes>>;

    explicit gather_vector(std::vector<H>&& children) noexcept
        : gather_core(Outcomes), children_(std::move(children)) {}
    gather_vector(gather_vector&& o) noexcept  // before it is awaited (see gather_core)
        : gather_core(std::move(o)), children_(std::move(o.children_)) {}
    ~gather_vector() { unlink_all(); }

    bool await_ready() const noexcept { return children_.empty(); }

    bool await_suspend(std::coroutine_handle<> h) {
        check_first_await();
        const std::size_t n = children_.size();
        storage_ = std::vector<link>(n);
        for (std::size_t i = 0; i < n; ++i) {
            storage_[i].owner = this;
            storage_[i].state = children_[i].state();
        }
        return start(h, storage_.data(), n, handle_kind<H>);
    }

    result_type await_resume() {
        throw_if_over_by_error();
        result_type results;
        if constexpr (!Outcomes && std::is_void_v<typename H::value_type>) {
            results.resize(children_.size());
        } else {
            results.reserve(children_.size());
            for (H& c : children_) {
                results.push_back(element_of<Outcomes, Move>(c));
                // A handle the gather owns goes now, while its state is in cache, rather
                // than in a second pass over a batch that may not fit in it.
                if constexpr (Move) c = H();
            }
        }
        return results;
    }

private:
    std::vector<H> children_;
    std::vector<link> storage_;
};

// A child of the tuple form: its handle type, and whether its result may be moved out.
template <class H, bool Move>
struct child_spec {
    using handle = H;
    static constexpr bool move = Move;
};

// gather(a, b, ...): the handles in a tuple, the links in an array inside the awaiter.
template <bool Outcomes, class... Specs>
class [[nodiscard]] gather_tuple final : public gather_core {
    static constexpr std::size_t count = sizeof...(Specs);

public:
    using result_type = std::tuple<gather_element<typename Specs::handle::value_type, Outcomes>...>;

    // Braces: the children are made (coros become tasks) in argument order.
    template <class... A>
    requires(sizeof...(A) == count && (!std::is_same_v<std::remove_cvref_t<A>, gather_tuple> && ...))
    explicit gather_tuple(A&&... aws)
        : gather_core(Outcomes), children_{make_child(std::forward<A>(aws))...} {}
    gather_tuple(gather_tuple&& o)  // before it is awaited (see gather_core)
        : gather_core(std::move(o)), children_(std::move(o.children_)) {}
    ~gather_tuple() { unlink_all(); }

    bool await_ready() const noexcept { return count == 0; }

    bool await_suspend(std::coroutine_handle<> h) {
        check_first_await();
        bind(std::index_sequence_for<Specs...>{});
        return start(h, storage_, count, nullptr);  // checked by gather()
    }

    result_type await_resume() {
        throw_if_over_by_error();
        return results(std::index_sequence_for<Specs...>{});
    }

private:
    template <std::size_t... I>
    void bind(std::index_sequence<I...>) noexcept {
        ((storage_[I].owner = this, storage_[I].state = std::get<I>(children_).state()), ...);
    }

    template <std::size_t... I>
    result_type results(std::index_sequence<I...>) {
        return result_type{element_of<Outcomes, Specs::move>(std::get<I>(children_))...};
    }

    std::tuple<typename Specs::handle...> children_;
    link storage_[count == 0 ? 1 : count];
};

template <class A>
using spec_of = child_spec<child_handle<A>, moves_result<A>>;

// A task or future of another loop is refused before the tuple form copies it (or makes
// a task of a coro given with it); a coro becomes a task of the running loop.
template <class A>
void check_gather_child(const A& a) {
    if constexpr (!is_coro_argument<A>) check_running_loop(a, "gather");
}

}  // namespace detail

// co_await gather(a, b, ...) -> std::tuple<A, B, ...>, void children as void_result.
template <class... A>
requires(detail::valued_child<A>&&...) auto gather(A&&... aws) {
    (detail::check_gather_child(aws), ...);
    return detail::gather_tuple<false, detail::spec_of<A&&>...>(std::forward<A>(aws)...);
}

// co_await gather(return_exceptions, a, b, ...) -> std::tuple<outcome<A>, outcome<B>, ...>.
template <class... A>
requires(detail::valued_child<A>&&...) auto gather(return_exceptions_t, A&&... aws) {
    (detail::check_gather_child(aws), ...);
    return detail::gather_tuple<true, detail::spec_of<A&&>...>(std::forward<A>(aws)...);
}

// co_await gather(std::move(v)) -> std::vector<T> (void_result for void), from a vector of
// tasks, futures or coros; the results are moved out of the children.
template <class A>
requires detail::valued_child<A>
auto gather(std::vector<A>&& aws) {
    return detail::gather_vector<detail::child_handle<A>, true, false>(
        detail::handles_of(std::move(aws)));
}

// co_await gather(v): the caller keeps the handles; the results are copied.
template <class A>
requires detail::valued_child<A>
auto gather(const std::vector<A>& aws) {
    static_assert(!detail::is_coro_argument<A>,
                  "gather: a vector of coros is consumed, pass std::move(v)");
    return detail::gather_vector<detail::child_handle<A>, false, false>(
        detail::checked_copy(aws, "gather"));
}

// co_await gather(return_exceptions, std::move(v)) -> std::vector<outcome<T>>.
template <class A>
requires detail::valued_child<A>
auto gather(return_exceptions_t, std::vector<A>&& aws) {
    return detail::gather_vector<detail::child_handle<A>, true, true>(
        detail::handles_of(std::move(aws)));
}

template <class A>
requires detail::valued_child<A>
auto gather(return_exceptions_t, const std::vector<A>& aws) {
    static_assert(!detail::is_coro_argument<A>,
                  "gather: a vector of coros is consumed, pass std::move(v)");
    return detail::gather_vector<detail::child_handle<A>, false, true>(
        detail::checked_copy(aws, "gather"));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/gather.hpp
// begin file ioloop/coro/queue.hpp
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

// begin file ioloop/detail/queue_storage.hpp
// ioloop: the containers under queue, lifo_queue and priority_queue: a ring buffer (first
// in, first out), a stack, and a binary heap (smallest first, like Python's heapq). Plain
// containers: they know nothing of the loop. Items may be move-only.
#ifndef IOLOOP_DETAIL_QUEUE_STORAGE_HPP
#define IOLOOP_DETAIL_QUEUE_STORAGE_HPP


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
// end file ioloop/detail/queue_storage.hpp

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
// end file ioloop/coro/queue.hpp
// begin file ioloop/coro/race.hpp
// ioloop: race (asio's awaitable `||`, Boost.Cobalt's race): the first of several
// awaitables to finish, the others cancelled and waited for.
//
//   std::variant<std::string, ioloop::void_result> r =
//       co_await ioloop::race(reader.readline(), ioloop::sleep(5s));
//   if (r.index() == 0) use(std::get<0>(r));                  // the line came first
//
// Each argument is a coro (made a task at once, as gather does), a task, a future, or any
// other awaitable (a temporary is moved into a task of its own; a named one is awaited
// where it lies and must outlive the race). The result is a std::variant of the results in
// argument order, void ones as void_result (the same type gather gives them, and unlike
// std::monostate it says what it stands for); index() says which argument won, so two
// arguments of one type stay apart.
//
// The first child to be done wins (children already done when the race is awaited: the
// first in argument order). Every other child still running is then cancelled, and the
// race returns only once all of them are done: nothing it started outlives it. If the
// winner failed (or was cancelled on its own), the race throws what it threw, after the
// same cancel and wait. A loser's result is dropped; a loser that fails with anything but
// the cancellation keeps its exception, which its task reports as never retrieved unless
// the caller reads it through a handle of its own. Cancelling the task that awaits the
// race cancels every child, waits for them, and throws cancelled_error.
//
// A task or future the caller passes is cancelled too if it loses: pass shield(t) to keep
// it running. The race is an awaitable (no task, no allocation of its own), awaited once;
// it can be moved until then (kept in a variable, given to wait_for).
#ifndef IOLOOP_CORO_RACE_HPP
#define IOLOOP_CORO_RACE_HPP


#include <coroutine>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What every race shares: linking to the children, picking the winner, cancelling and
// waiting for the rest. The derived class owns the children and the links.
class race_core : public wait_point {
public:
    using link = child_link<race_core>;

    race_core(const race_core&) = delete;
    race_core& operator=(const race_core&) = delete;

    // A child is done (its link is already off its list): the first one wins and the
    // others are told to stop; the task goes on once the last one is done.
    void child_done(link& l) noexcept {
        --pending_;
        if (winner_ == no_winner) {
            winner_ = static_cast<std::size_t>(&l - links_);
            stop_the_rest();
        }
        // No task_ yet: a future cancelled by start() finished within the cancel.
        if (pending_ == 0 && task_) task_->wake();
    }

    // The awaiting task was cancelled: every child still running is cancelled (unless
    // they already were), and the race ends in cancelled_error once they are all done.
    void on_cancel(task_base& t) noexcept override {
        cancel_requested_ = true;
        stop_the_rest();
        t.cancel_passed_on();  // suspended: some child is still running, and wakes it
    }

protected:
    static constexpr std::size_t no_winner = static_cast<std::size_t>(-1);

    race_core() noexcept = default;
    // Only before the race is awaited: no link is bound yet.
    race_core(race_core&&) noexcept {}
    ~race_core() = default;

    // await_suspend's work, once the links name their children. False if every child is
    // already done.
    bool start(std::coroutine_handle<> h, link* links, std::size_t n) {
        if (links_) throw invalid_state_error("race: a race is awaited once");
        task_base& t = current_task_or_throw("race");
        links_ = links;
        count_ = n;
        for (std::size_t i = 0; i < n; ++i) {
            if (links[i].state->done()) {
                if (winner_ == no_winner) winner_ = i;
            } else {
                links[i].state->add_link(&links[i]);
                ++pending_;
            }
        }
        if (winner_ != no_winner) stop_the_rest();
        if (pending_ == 0) return false;
        task_ = &t;
        t.suspend(h, this);
        return true;
    }

    // await_resume's checks before the winner's result is read; the winner's index.
    std::size_t winner_or_throw() {
        if (task_) task_->throw_if_cancelled();
        if (cancel_requested_) throw cancelled_error();
        future_base* w = links_[winner_].state;
        if (w->state() != future_base::status::finished) w->rethrow_if_not_finished("race");
        return winner_;
    }

    // Destroyed while children still run (the loop is closing with the task unfinished):
    // called by the derived class, whose links go before this base's destructor runs.
    void unlink_all() noexcept {
        if (pending_ == 0) return;
        for (std::size_t i = 0; i < count_; ++i) links_[i].unlink();
    }

private:
    // Cancels every child not done yet, once: a second cancel would reach a loser in its
    // cleanup (a winner found after the race was cancelled, or the other way round).
    void stop_the_rest() noexcept {
        if (stopping_) return;
        stopping_ = true;
        for (std::size_t i = 0; i < count_; ++i) {
            future_base* s = links_[i].state;
            if (!s->done()) s->cancel();
        }
    }

    task_base* task_ = nullptr;
    link* links_ = nullptr;
    std::size_t count_ = 0;
    std::size_t pending_ = 0;
    std::size_t winner_ = no_winner;
    bool cancel_requested_ = false;
    bool stopping_ = false;  // the children still running were cancelled
};

// The handle race keeps for an argument: a coro's task, a task or future as given, and
// for any other awaitable a task that awaits it.
template <class A, bool = valued_child<A>>
struct race_spec {
    using handle = child_handle<A>;
    static constexpr bool move = moves_result<A>;
};
template <class A>
struct race_spec<A, false> {
    using handle = task<awaited_value_t<A>>;
    static constexpr bool move = true;
};

template <class A>
typename race_spec<A&&>::handle make_racer(A&& a) {
    if constexpr (valued_child<A>) {
        return make_child(std::forward<A>(a));
    } else {
        return create_task(hold_awaitable(std::forward<A>(a)));
    }
}

// A task or future of another loop is refused before the race copies it.
template <class A>
void check_racer(const A& a) {
    if constexpr (child_awaitable<A> && !is_coro_argument<std::remove_cvref_t<A>>)
        check_running_loop(a, "race");
}

template <class... Specs>
class [[nodiscard]] race_tuple final : public race_core {
    static constexpr std::size_t count = sizeof...(Specs);

public:
    using result_type = std::variant<gathered_t<typename Specs::handle::value_type>...>;

    // Braces: the children are made (coros become tasks) in argument order.
    template <class... A>
    requires(sizeof...(A) == count)  // count >= 2: never a copy or a move
    explicit race_tuple(A&&... aws) : children_{make_racer(std::forward<A>(aws))...} {}
    // Until it is awaited (links are bound then), a race can be moved.
    race_tuple(race_tuple&& o) noexcept(std::is_nothrow_move_constructible_v<
                                        std::tuple<typename Specs::handle...>>)
        : race_core(std::move(o)), children_(std::move(o.children_)) {}
    ~race_tuple() { unlink_all(); }

    bool await_ready() const noexcept { return false; }

    bool await_suspend(std::coroutine_handle<> h) {
        bind(std::index_sequence_for<Specs...>{});
        return start(h, storage_, count);
    }

    result_type await_resume() { return pick<0>(winner_or_throw()); }

private:
    template <std::size_t... I>
    void bind(std::index_sequence<I...>) noexcept {
        ((storage_[I].owner = this, storage_[I].state = std::get<I>(children_).state()), ...);
    }

    template <std::size_t I>
    result_type pick(std::size_t winner) {
        if constexpr (I + 1 < count) {
            if (winner != I) return pick<I + 1>(winner);
        }
        using spec = std::tuple_element_t<I, std::tuple<Specs...>>;
        auto& h = std::get<I>(children_);
        if constexpr (std::is_void_v<typename spec::handle::value_type>) {
            h.result();
            return result_type(std::in_place_index<I>);
        } else {
            return result_type(std::in_place_index<I>, take_result<spec::move>(h));
        }
    }

    std::tuple<typename Specs::handle...> children_;
    link storage_[count];
};

}  // namespace detail

// co_await race(a, b, ...) -> std::variant<A, B, ...> (void as void_result): the first to
// finish; the others are cancelled and waited for before it returns.
template <class A, class... B>
requires((detail::valued_child<A> || detail::awaitable<A>) &&
         ((detail::valued_child<B> || detail::awaitable<B>)&&...))
auto race(A&& a, B&&... b) {
    static_assert(sizeof...(B) > 0, "race: give it at least two awaitables");
    detail::check_racer(a);
    (detail::check_racer(b), ...);
    return detail::race_tuple<detail::race_spec<A&&>, detail::race_spec<B&&>...>(
        std::forward<A>(a), std::forward<B>(b)...);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/race.hpp
// begin file ioloop/coro/run.hpp
// ioloop: running coroutines to completion: loop.run_until_complete (asyncio's), the
// one-call ioloop::run (asyncio.run), and get_running_loop().
#ifndef IOLOOP_CORO_RUN_HPP
#define IOLOOP_CORO_RUN_HPP

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
// backends (IOCP, io_uring) report finished operations through the same wait().
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
concept readiness_backend = event_backend<B> && requires(B& b, native_socket fd,
                                                         unsigned events, void* data) {
    // Changes the interest in `fd` from `old_events` to `new_events` (0 means not watched),
    // reporting events with `data`. Throws std::system_error for an fd it cannot watch.
    b.watch(fd, events, events, data);
};

template <class B>
concept completion_backend = event_backend<B> && requires(B& b, native_descriptor h) {
    // Sends the completions of h's operations (a socket's or a pipe's handle) to this
    // backend's wait(), which reports each to the detail::overlapped_op (an io_watcher)
    // that started it.
    b.associate(h);
};

// Optional: a backend that reports signals itself (kqueue's EVFILT_SIGNAL). watch_signal
// takes `sig` over: it reports each arrival with `data` (io_read), sets the disposition it
// needs and saves the one before in `saved`; or it returns false, doing nothing, for a
// signal it leaves to the loop's sigaction handler. unwatch_signal gives `saved` back.
template <class B, class Saved>
concept signal_backend = requires(B& b, int sig, void* data, Saved& saved) {
    requires std::is_convertible_v<decltype(b.watch_signal(sig, data, saved)), bool>;
    { b.unwatch_signal(sig, saved) } noexcept;
};

// Optional: a backend that learns of a child process's exit itself (kqueue's EVFILT_PROC).
// watch_process reports the exit of `pid` once, with `data` (io_read), and then forgets it;
// false if it cannot watch that child (the caller then finds another way).
// unwatch_process forgets it before that.
template <class B>
concept process_backend = requires(B& b, int pid, void* data) {
    requires std::is_convertible_v<decltype(b.watch_process(pid, data)), bool>;
    { b.unwatch_process(pid) } noexcept;
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/backend/concept.hpp
// begin file ioloop/detail/io_watcher.hpp
// ioloop: what a readiness backend reports events to (io_watcher), and what a loop closes
// when it closes (loop_resource: transports, servers). A transport or a listener is its
// own io_watcher, so an event reaches it with no lookup and no allocation.
#ifndef IOLOOP_DETAIL_IO_WATCHER_HPP
#define IOLOOP_DETAIL_IO_WATCHER_HPP


#include <string>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Registered with the backend as the event's data; `events` is backend::io_read and/or
// backend::io_write. Called from inside the poll step, so it must not throw.
class io_watcher {
public:
    virtual void on_io(unsigned events) noexcept = 0;

    // Names it in debug mode's report of a slow callback.
    virtual std::string describe() const { return "an I/O callback"; }

protected:
    io_watcher() = default;
    io_watcher(const io_watcher&) = default;
    io_watcher& operator=(const io_watcher&) = default;
    ~io_watcher() = default;
};

// Something a loop owns a registration for and must let go of when it closes: closing a
// loop closes its transports' and servers' descriptors without running callbacks.
class loop_resource {
public:
    // The loop is closing: release the descriptor and free what the loop alone kept
    // alive. No callback may run any more.
    virtual void on_loop_close() noexcept = 0;

protected:
    loop_resource() = default;
    loop_resource(const loop_resource&) = delete;
    loop_resource& operator=(const loop_resource&) = delete;
    virtual ~loop_resource() = default;

private:
    friend class resource_list;
    loop_resource* prev_ = nullptr;
    loop_resource* next_ = nullptr;
};

// An intrusive list of a loop's live resources.
class resource_list {
public:
    void add(loop_resource& r) noexcept {
        r.prev_ = nullptr;
        r.next_ = head_;
        if (head_) head_->prev_ = &r;
        head_ = &r;
    }

    void remove(loop_resource& r) noexcept {
        if (r.prev_) {
            r.prev_->next_ = r.next_;
        } else if (head_ == &r) {
            head_ = r.next_;
        }
        if (r.next_) r.next_->prev_ = r.prev_;
        r.prev_ = r.next_ = nullptr;
    }

    // Each resource is unlinked before it is told, since on_loop_close may free it.
    void close_all() noexcept {
        while (loop_resource* r = head_) {
            remove(*r);
            r->on_loop_close();
        }
    }

private:
    loop_resource* head_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/io_watcher.hpp
// begin file ioloop/detail/signals.hpp
// ioloop: the process-wide side of add_signal_handler. A POSIX signal handler may only
// touch lock-free atomics and async-signal-safe calls, so it marks the signal pending and
// wakes the loop that registered it; the loop runs the user's callback on its own thread.
// Windows has no POSIX signals: there Ctrl+C and Ctrl+Break arrive as console control
// events (SetConsoleCtrlHandler) and count as SIGINT and SIGBREAK, and the C runtime's
// signal() carries the rest of what it supports (raise(SIGTERM), say).
#ifndef IOLOOP_DETAIL_SIGNALS_HPP
#define IOLOOP_DETAIL_SIGNALS_HPP


#include <cerrno>
#include <csignal>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What the signal handler may reach of a loop: a flag and a signal-safe wakeup.
struct signal_target {
    atomic<bool> any_pending{false};
    void (*wake)(void* context) noexcept = nullptr;
    void* context = nullptr;
};

// Signals are numbered below NSIG on every system we know; 65 covers Linux's real-time
// signals too.
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

#if defined(IOLOOP_POSIX)

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

#elif defined(IOLOOP_WINDOWS)

using saved_signal_action = void (*)(int);

// Whether on_console_event is registered; once it is, it stays for the process.
inline atomic<bool> console_handler_on{false};

// The C runtime resets a signal to SIG_DFL before running its handler: take it again.
inline void on_crt_signal(int sig) {
    std::signal(sig, &on_crt_signal);
    on_signal(sig);
}

// Runs on a thread the system starts for the event. TRUE: handled, so the process lives.
inline BOOL WINAPI on_console_event(DWORD event) {
    const int sig = event == CTRL_C_EVENT ? SIGINT : event == CTRL_BREAK_EVENT ? SIGBREAK : 0;
    if (sig == 0 || !signal_slots[sig].target.load(memory_order::acquire)) return FALSE;
    on_signal(sig);
    return TRUE;
}

inline void install_signal_handler(int sig, saved_signal_action& saved) {
    saved = std::signal(sig, &on_crt_signal);
    if (saved == SIG_ERR) {
        throw std::system_error(
            std::make_error_code(std::errc::invalid_argument),
            concat({"add_signal_handler: signal ", decimal(sig),
                    " does not exist on Windows (SIGINT, SIGBREAK, SIGTERM, SIGABRT, SIGFPE, "
                    "SIGILL and SIGSEGV do)"}));
    }
    // Ctrl+C and Ctrl+Break: registering the same handler twice would call it twice.
    if ((sig == SIGINT || sig == SIGBREAK) &&
        !console_handler_on.exchange(true, memory_order::acq_rel) &&
        !::SetConsoleCtrlHandler(&on_console_event, TRUE)) {
        const unsigned long err = ::GetLastError();
        console_handler_on.store(false, memory_order::release);
        std::signal(sig, saved);
        throw_system_error(err, "add_signal_handler: SetConsoleCtrlHandler");
    }
}

inline void restore_signal_handler(int sig, const saved_signal_action& saved) noexcept {
    std::signal(sig, saved);
    // The console handler stays: with no loop on the signal it passes the event on.
}

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/signals.hpp

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class socket;    // net/socket.hpp
class endpoint;  // net/endpoint.hpp

namespace detail {
// The I/O engine of Backend's family: how transports, servers and the sock_* operations
// move bytes on it. Chosen in net/engines.hpp, the one place that knows the families.
template <class Backend>
struct engine_of;
}  // namespace detail

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
        io_ = &engine_;
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
        // Transports and servers first: they unwatch their descriptors from the backend.
        engine_.close_resources();
        detail::node_queue dropped;
        if (signals_) {
            for (int sig = 1; sig < detail::max_signal; ++sig) remove_signal_handler(sig);
        }
        engine_.close_watches(dropped);  // add_reader's and add_writer's
        close_queues(dropped);
        // A completion backend: the kernel owns the memory of each operation in flight
        // until its completion comes, cancelled or not.
        engine_.finish_operations();
    }

    // ---- descriptors (readiness backends only) ----------------------------------------

    // Runs fn on every iteration while fd is readable; replaces an earlier reader of fd.
    template <class F>
    void add_reader(native_socket fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        engine_.add_watch(fd, backend::io_read, make_persistent_node(std::forward<F>(fn), where),
                          "add_reader", true);
    }

    // True if fd had a reader.
    bool remove_reader(native_socket fd) {
        require_readiness_backend();
        return engine_.remove_watch(fd, backend::io_read);
    }

    template <class F>
    void add_writer(native_socket fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        engine_.add_watch(fd, backend::io_write, make_persistent_node(std::forward<F>(fn), where),
                          "add_writer", true);
    }

    bool remove_writer(native_socket fd) {
        require_readiness_backend();
        return engine_.remove_watch(fd, backend::io_write);
    }

    // ---- awaitable socket operations (readiness backends; defined in net/sock_ops.hpp) --
    // Each tries the syscall first and waits for readiness only on EAGAIN. The socket (and
    // the bytes a view names) must outlive the await.

    // Up to max_bytes from s; an empty string at EOF.
    coro<std::string> sock_recv(socket& s, std::size_t max_bytes);
    // Up to buf.size() bytes into buf; how many (0 at EOF).
    coro<std::size_t> sock_recv_into(socket& s, std::span<std::byte> buf);
    // All of data, however many sends it takes; no SIGPIPE, a closed peer is a system_error.
    coro<void> sock_sendall(socket& s, std::string_view data);
    // The next connection on a listening socket (non-blocking, close-on-exec) and its peer.
    coro<std::pair<socket, endpoint>> sock_accept(socket& listener);
    // Connects s to `to`; a refusal is a system_error (errc::connection_refused).
    coro<void> sock_connect(socket& s, endpoint to);
    // One datagram (up to max_bytes of it) and its sender.
    coro<std::pair<std::string, endpoint>> sock_recvfrom(socket& s, std::size_t max_bytes);
    // One datagram into buf (what does not fit is lost, as recvfrom's) and its sender: the
    // byte count and the address (asyncio's sock_recvfrom_into).
    coro<std::pair<std::size_t, endpoint>> sock_recvfrom_into(socket& s, std::span<std::byte> buf);
    // One datagram to `to`; the bytes sent.
    coro<std::size_t> sock_sendto(socket& s, std::string_view data, endpoint to);
    // A file's bytes to a connected stream socket (asyncio's loop.sock_sendfile): sendfile(2)
    // on Linux's readiness backends, else (fallback) reads through the executor and sends;
    // count < 0 to the end of the file. The count sent; the file's position offset + sent
    // after. Defined in net/sendfile.hpp.
    coro<std::size_t> sock_sendfile(socket& s, file& f, long long offset = 0,
                                    long long count = -1, bool fallback = true);

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
                take_signal(sig, reg);
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
        release_signal(sig, signals_[sig]);
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

    void run_once() {
        ++iterations_;
        // 1. Timeout: none if work is ready, else until the nearest timer, else forever.
        const std::chrono::nanoseconds timeout = poll_timeout();
        // 2. Poll. With work ready and nothing to watch the syscall can only return the
        //    wakeup descriptor, and the flags below already tell us that.
        if (timeout.count() != 0 || engine_.waiting()) {
            // Transports run their protocols right here, and a protocol may remove a
            // reader whose event is still to come in this batch: so what is unwatched
            // during the batch is freed only after it (engine_.after_poll).
            backend_.wait(timeout, [this](void* data, unsigned events) noexcept {
                auto* w = static_cast<detail::io_watcher*>(data);
                engine_.event_arrived();  // a completion backend: one operation fewer
                if (debug_) [[unlikely]] {
                    run_timed_io(*w, events);
                } else {
                    w->on_io(events);
                }
            });
        }
        engine_.after_poll();
        take_remote();
        take_signals();
        // 3. Timers.
        fire_due_timers();
        // 4. Exactly what is ready now.
        run_ready();
    }

    // An I/O event in debug mode: timed like a callback, reported if slow.
    IOLOOP_NOINLINE void run_timed_io(detail::io_watcher& w, unsigned events) noexcept {
        const time_point start = time();
        w.on_io(events);
        const duration took = time() - start;
        if (took < slow_callback_) return;
        try {
            report_slow(w.describe(), took);
        } catch (...) {
        }
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

    Backend backend_;
    typename detail::engine_of<Backend>::type engine_{*this, backend_};

    detail::signal_target signal_target_;
    // A signal's handler and its disposition before. A backend that watches signals itself
    // (backend::signal_backend) reports an arrival to the registration: it queues the handler.
    struct signal_registration final : detail::io_watcher {
        void on_io(unsigned) noexcept override {
            if (handler) loop->enqueue(handler);
        }
        basic_event_loop* loop = nullptr;
        detail::callback_node* handler = nullptr;
        detail::saved_signal_action saved{};  // the disposition to restore
        bool by_backend = false;              // the backend reports it: no handler installed
    };

    // Routes sig to this loop: as events of the backend where it has them (it sets the
    // disposition it needs, SIG_IGN for kqueue: no handler runs in signal context), else
    // through a sigaction handler that marks the signal pending and wakes the backend.
    void take_signal(int sig, signal_registration& reg) {
        reg.loop = this;
        if constexpr (backend::signal_backend<Backend, detail::saved_signal_action>) {
            reg.by_backend =
                backend_.watch_signal(sig, static_cast<detail::io_watcher*>(&reg), reg.saved);
            if (reg.by_backend) return;
        }
        detail::install_signal_handler(sig, reg.saved);
    }

    void release_signal(int sig, signal_registration& reg) noexcept {
        if constexpr (backend::signal_backend<Backend, detail::saved_signal_action>) {
            if (std::exchange(reg.by_backend, false)) {
                backend_.unwatch_signal(sig, reg.saved);
                return;
            }
        }
        detail::restore_signal_handler(sig, reg.saved);
    }

    // By signal number; allocated by the first add_signal_handler.
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
// begin file ioloop/backend/iocp.hpp
// ioloop: the I/O completion port backend (Windows). A completion backend: the networking
// layer starts overlapped operations (WSARecv, WSASend, AcceptEx, ConnectEx, ...) on
// sockets associated with the port, and wait() reports each finished one to the
// detail::overlapped_op that started it. Nothing here waits for readiness, so add_reader
// and add_writer do not compile on this backend.
#ifndef IOLOOP_BACKEND_IOCP_HPP
#define IOLOOP_BACKEND_IOCP_HPP

// begin file ioloop/detail/overlapped_op.hpp
// ioloop: one overlapped operation in flight on the IOCP backend. The OVERLAPPED and
// every buffer the operation names belong to the kernel from the call that starts it
// until its completion is dequeued, even after the socket is closed or the operation is
// cancelled: so an operation is freed only by its own completion, never by its starter.
#ifndef IOLOOP_DETAIL_OVERLAPPED_OP_HPP
#define IOLOOP_DETAIL_OVERLAPPED_OP_HPP


#if defined(IOLOOP_WINDOWS)

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class overlapped_op : public io_watcher {
public:
    OVERLAPPED* overlapped() noexcept { return &slot_.overlapped; }

    // The operation a dequeued OVERLAPPED belongs to.
    static overlapped_op* from(OVERLAPPED* o) noexcept {
        return reinterpret_cast<slot*>(o)->owner;  // the OVERLAPPED is the slot's first member
    }

    // Once completed, on socket s: the bytes moved, and the error (0 when none) as Winsock
    // names it (a cancelled operation: WSA_OPERATION_ABORTED).
    unsigned long result(native_socket s, unsigned long& bytes) noexcept {
        DWORD moved = 0;
        DWORD flags = 0;
        const bool ok = ::WSAGetOverlappedResult(s, overlapped(), &moved, FALSE, &flags);
        bytes = moved;
        return ok ? 0 : static_cast<unsigned long>(::WSAGetLastError());
    }

    // The same on a pipe's (or any file's) handle h, the error as Win32 names it (a
    // cancelled operation: ERROR_OPERATION_ABORTED).
    unsigned long file_result(HANDLE h, unsigned long& bytes) noexcept {
        DWORD moved = 0;
        const bool ok = ::GetOverlappedResult(h, overlapped(), &moved, FALSE);
        bytes = moved;
        return ok ? 0 : ::GetLastError();
    }

    // Makes the OVERLAPPED ready for the next operation.
    void reset() noexcept { slot_.overlapped = OVERLAPPED{}; }

protected:
    overlapped_op() noexcept : slot_{OVERLAPPED{}, this} {}
    overlapped_op(const overlapped_op&) = delete;
    overlapped_op& operator=(const overlapped_op&) = delete;
    ~overlapped_op() = default;

private:
    // Standard layout, so a pointer to its first member is a pointer to it.
    struct slot {
        OVERLAPPED overlapped;
        overlapped_op* owner;
    };
    slot slot_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/detail/overlapped_op.hpp

#if defined(IOLOOP_HAS_IOCP)

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class iocp {
public:
    static constexpr std::string_view name = "iocp";

    iocp() {
        detail::start_winsock();
        // One thread (the loop's) dequeues from this port.
        port_ = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
        if (port_ == nullptr)
            detail::throw_system_error(::GetLastError(), "CreateIoCompletionPort");
    }
    iocp(const iocp&) = delete;
    iocp& operator=(const iocp&) = delete;
    ~iocp() { ::CloseHandle(port_); }

    // Makes the completions of h's overlapped operations come to this port. A handle (a
    // socket, a pipe) is associated once, for its whole life.
    void associate(HANDLE h) {
        if (::CreateIoCompletionPort(h, port_, 0, 0) == nullptr) {
            detail::throw_system_error(::GetLastError(),
                                       "CreateIoCompletionPort: associating a handle");
        }
    }

    // Queues a completion for an operation the kernel did not start (wait() reports it as
    // any other): so an operation that ended at its start still ends through the port.
    void post(OVERLAPPED* o) {
        if (!::PostQueuedCompletionStatus(port_, 0, 0, o)) {
            detail::throw_system_error(::GetLastError(), "PostQueuedCompletionStatus");
        }
    }

    // Reports each dequeued completion to its operation (the sink's data is the
    // operation's io_watcher; its events are 0, the result is in the OVERLAPPED).
    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        ULONG n = 0;
        if (!::GetQueuedCompletionStatusEx(port_, entries_, max_entries, &n,
                                           detail::timeout_ms(timeout), FALSE)) {
            const unsigned long err = ::GetLastError();
            if (err == WAIT_TIMEOUT) return;
            detail::throw_system_error(err, "GetQueuedCompletionStatusEx");
        }
        for (ULONG i = 0; i < n; ++i) {
            OVERLAPPED* done = entries_[i].lpOverlapped;
            if (done == nullptr) {
                // The wakeup packet: a later interrupt() must post again. Reset before the
                // loop reads its cross-thread queue, so no wakeup is lost.
                interrupt_posted_.store(false, detail::memory_order::release);
                continue;
            }
            sink(static_cast<detail::io_watcher*>(detail::overlapped_op::from(done)), 0u);
        }
    }

    // Posts one wakeup packet; further calls until it is dequeued post nothing.
    void interrupt() noexcept {
        if (!interrupt_posted_.exchange(true, detail::memory_order::acq_rel))
            ::PostQueuedCompletionStatus(port_, 0, 0, nullptr);
    }

private:
    static constexpr ULONG max_entries = 128;

    HANDLE port_ = nullptr;
    detail::atomic<bool> interrupt_posted_{false};
    OVERLAPPED_ENTRY entries_[max_entries];
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_IOCP
#endif
// end file ioloop/backend/iocp.hpp
// begin file ioloop/backend/kqueue.hpp
// ioloop: the kqueue backend (macOS, FreeBSD, OpenBSD, NetBSD, DragonFly), written against
// the FreeBSD and Apple kqueue(2) man pages. On Linux the tests run it over an emulation
// (tests/kqueue_emulation); it has yet to run on a real BSD or macOS kernel.
//
// Level-triggered, as asyncio's add_reader expects: a callback runs on every iteration
// while its descriptor stays ready. EV_CLEAR would report a socket again only when more
// data arrives, and a transport reads one buffer per event, not until EAGAIN: what is left
// after that read would wait for the peer's next bytes (the suite's echo tests stall).
#ifndef IOLOOP_BACKEND_KQUEUE_HPP
#define IOLOOP_BACKEND_KQUEUE_HPP


#if defined(IOLOOP_HAS_KQUEUE)

#include <cerrno>
#include <cstdint>
#include <ctime>

#include <fcntl.h>
#include <signal.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class kqueue {
public:
    static constexpr std::string_view name = "kqueue";

    kqueue() : kq_(::kqueue()) {
        if (kq_ == -1) detail::throw_errno(errno, "kqueue");
        try {
            // Not inherited by fork(), but exec() would keep it open in the new program.
            if (::fcntl(kq_, F_SETFD, FD_CLOEXEC) == -1) detail::throw_errno(errno, "fcntl");
#if defined(EVFILT_USER)
            // EV_CLEAR: a trigger is consumed by the wait that reports it.
            change(wakeup_ident, EVFILT_USER, EV_ADD | EV_CLEAR, nullptr,
                   "kevent(EVFILT_USER, ident");
#else
            // The wakeup descriptor's data is null: the loop is never told about it.
            change(static_cast<std::uintptr_t>(wakeup_.fd()), EVFILT_READ, EV_ADD, nullptr,
                   "kevent(EVFILT_READ, wakeup fd");
#endif
        } catch (...) {
            ::close(kq_);
            throw;
        }
    }
    kqueue(const kqueue&) = delete;
    kqueue& operator=(const kqueue&) = delete;
    ~kqueue() {
#if defined(EVFILT_USER)
        // Closing the queue deletes its events anyway; deleting this one first also lets
        // the test emulation, which cannot see close(), release the eventfd behind it.
        struct kevent ev;
        set(ev, wakeup_ident, EVFILT_USER, EV_DELETE, 0, nullptr);
        ::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
#endif
        ::close(kq_);
    }

    void watch(int fd, unsigned old_events, unsigned new_events, void* data) {
        if (fd < 0) {
            detail::throw_errno(EBADF,
                                detail::concat({"kqueue backend: fd ", detail::decimal(fd)}));
        }
        const auto ident = static_cast<std::uintptr_t>(fd);
        // One kevent() call applies the changes, and with no room for receipts it stops
        // at the first that fails. So the adds go first: a bad descriptor fails there,
        // before any delete could hide it. EV_ADD of a filter already there only updates
        // it (its udata), which also re-adds it under a number closed and reused.
        struct kevent changes[4];
        int n = 0;
        for (const auto [bit, filter] : filters) {
            if (new_events & bit) set(changes[n++], ident, filter, EV_ADD, 0, data);
        }
        const int adds = n;
        for (const auto [bit, filter] : filters) {
            if ((old_events & bit) && !(new_events & bit))
                set(changes[n++], ident, filter, EV_DELETE, 0, nullptr);
        }
        if (n == 0 || ::kevent(kq_, changes, n, nullptr, 0, nullptr) != -1) return;
        const int err = errno;
        // ENOENT comes from a delete only: kqueue dropped the events when the descriptor
        // was closed (and it may be open again, as another file). EBADF with no add: it is
        // closed. Either way nothing is watched any more, which is what was asked.
        // EINTR: the man page says every change was applied.
        if (err == ENOENT || (err == EBADF && adds == 0) || err == EINTR) return;
        // The caller keeps the old interest: undo the filters this call may have added.
        for (const auto [bit, filter] : filters) {
            if ((new_events & bit) && !(old_events & bit)) {
                struct kevent undo;
                set(undo, ident, filter, EV_DELETE, 0, nullptr);
                ::kevent(kq_, &undo, 1, nullptr, 0, nullptr);
            }
        }
        detail::throw_errno(err, detail::concat({"kevent(EV_ADD, fd ", detail::decimal(fd), ")"}));
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        timespec ts{};
        timespec* limit = nullptr;  // null: forever
        if (timeout.count() >= 0) {
            // FreeBSD reads more than 24 hours as 24 hours; the loop recomputes on return.
            constexpr long long day = 86'400;
            const long long ns = timeout.count();
            const long long s = ns / 1'000'000'000;
            ts.tv_sec = static_cast<decltype(ts.tv_sec)>(s < day ? s : day);
            ts.tv_nsec = static_cast<decltype(ts.tv_nsec)>(s < day ? ns % 1'000'000'000 : 0);
            limit = &ts;
        }
        const int n = ::kevent(kq_, nullptr, 0, events_, max_events, limit);
        if (n == -1) {
            if (errno == EINTR) return;
            detail::throw_errno(errno, "kevent");
        }
        for (int i = 0; i < n; ++i) {
            const struct kevent& ev = events_[i];
            // NetBSD before 10 declares udata as intptr_t: reinterpret_cast takes either.
            void* const data = reinterpret_cast<void*>(ev.udata);
            unsigned ready;
            switch (ev.filter) {
                case EVFILT_READ:
#if !defined(EVFILT_USER)
                    if (data == nullptr) {
                        wakeup_.drain();
                        continue;
                    }
#endif
                    // EV_EOF here is a shut read side: a peer that only half-closed may
                    // still read what we write, so a writer is not woken for it. A reset
                    // shuts the write side too, and the write filter reports that.
                    ready = io_read;
                    break;
                case EVFILT_WRITE:
                    // EV_EOF: the reader is gone (a reset, a pipe's closed read end). The
                    // reader is told too, as epoll's EPOLLHUP / EPOLLERR tell both.
                    ready = (ev.flags & EV_EOF) ? io_read | io_write : io_write;
                    break;
                case EVFILT_SIGNAL:
                    ready = io_read;  // the count in ev.data: handlers run once per wakeup
                    break;
#if defined(EVFILT_PROC)
                case EVFILT_PROC:
                    ready = io_read;  // NOTE_EXIT: the child has exited (and is not reaped)
                    break;
#endif
                default:
                    continue;  // EVFILT_USER: interrupt() woke the wait, nothing to report
            }
            sink(data, ready);
        }
    }

    // Thread-safe, and signal-safe (one system call, errno kept): the loop's SIGCHLD
    // handler calls it.
    void interrupt() noexcept {
#if defined(EVFILT_USER)
        const int saved = errno;
        struct kevent ev;
        set(ev, wakeup_ident, EVFILT_USER, 0, NOTE_TRIGGER, nullptr);
        ::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
        errno = saved;
#else
        wakeup_.notify();
#endif
    }

    // Signals as events (EVFILT_SIGNAL, backend::signal_backend): the signal's
    // disposition becomes SIG_IGN, so no handler runs in signal context. The filter
    // records "all attempts to deliver a signal to a process, even if the signal has been
    // marked as SIG_IGN, except for the SIGCHLD signal" (FreeBSD), and an ignored SIGCHLD
    // would make the kernel reap the children: SIGCHLD stays with the loop's sigaction
    // handler (false). So does every signal on Apple's kernels, whose filter sees "only
    // signals sent to the process, not to a particular thread": an ignored raise() or
    // pthread_kill() would be lost there.
    bool watch_signal(int sig, void* data, struct sigaction& saved) {
#if defined(__APPLE__)
        (void)sig;
        (void)data;
        (void)saved;
        return false;
#else
        if (sig == SIGCHLD) return false;
        // The event first: an arrival between the two calls is recorded, not lost.
        change(static_cast<std::uintptr_t>(sig), EVFILT_SIGNAL, EV_ADD, data,
               "kevent(EVFILT_SIGNAL, signal");
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        if (::sigaction(sig, &ignore, &saved) == -1) {
            const int err = errno;  // SIGKILL, SIGSTOP
            delete_signal_event(sig);
            const detail::decimal number(sig);
            detail::throw_errno(err,
                                detail::concat({"add_signal_handler: sigaction(", number, ")"}));
        }
        return true;
#endif
    }

    // The disposition first: an arrival from then on is the old disposition's business.
    void unwatch_signal(int sig, const struct sigaction& saved) noexcept {
        ::sigaction(sig, &saved, nullptr);
        delete_signal_event(sig);
    }

    // A child's exit as an event (EVFILT_PROC, backend::process_backend): reported once,
    // then the kernel drops the event. A child that is gone already (ESRCH) or a system
    // without EVFILT_PROC: false, and the caller waits for it another way.
    bool watch_process(int pid, void* data) noexcept {
#if defined(EVFILT_PROC) && defined(NOTE_EXIT)
        struct kevent ev;
        set(ev, static_cast<std::uintptr_t>(pid), EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT,
            data);
        return ::kevent(kq_, &ev, 1, nullptr, 0, nullptr) == 0;
#else
        (void)pid;
        (void)data;
        return false;
#endif
    }

    void unwatch_process(int pid) noexcept {
#if defined(EVFILT_PROC)
        struct kevent ev;
        set(ev, static_cast<std::uintptr_t>(pid), EVFILT_PROC, EV_DELETE, 0, nullptr);
        (void)::kevent(kq_, &ev, 1, nullptr, 0, nullptr);  // ENOENT: reported and dropped
#else
        (void)pid;
#endif
    }

private:
    // The man pages' struct kevent is 32 bytes (64 on FreeBSD 12 and later): 128 of them
    // keep the loop object small, and level-triggered events left over come next time.
    static constexpr int max_events = 128;
    static constexpr std::uintptr_t wakeup_ident = 0;  // EVFILT_USER idents are ours to pick

    // The field types differ between systems (NetBSD: 32-bit filter and flags, and before
    // version 10 an intptr_t udata), and some EV_SETs initialise with braces, where a
    // narrowing conversion does not compile: every value is converted here, once.
    using filter_type = decltype(kevent::filter);
    using flags_type = decltype(kevent::flags);
    using fflags_type = decltype(kevent::fflags);
    using udata_type = decltype(kevent::udata);

    static void set(struct kevent& ev, std::uintptr_t ident, filter_type filter, unsigned flags,
                    unsigned fflags, void* data) noexcept {
        EV_SET(&ev, ident, filter, static_cast<flags_type>(flags), static_cast<fflags_type>(fflags),
               0, reinterpret_cast<udata_type>(data));
    }

    struct filter_bit {
        unsigned bit;
        filter_type filter;
    };
    static constexpr filter_bit filters[2] = {{io_read, EVFILT_READ}, {io_write, EVFILT_WRITE}};

    void delete_signal_event(int sig) noexcept {
        struct kevent ev;
        set(ev, static_cast<std::uintptr_t>(sig), EVFILT_SIGNAL, EV_DELETE, 0, nullptr);
        ::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
    }

    // One change, applied now; `what` names it in the error, completed by the ident.
    void change(std::uintptr_t ident, filter_type filter, unsigned flags, void* data,
                const char* what) {
        struct kevent ev;
        set(ev, ident, filter, flags, 0, data);
        if (::kevent(kq_, &ev, 1, nullptr, 0, nullptr) == -1) {
            const detail::decimal number(static_cast<long long>(ident));
            detail::throw_errno(errno, detail::concat({what, " ", number, ")"}));
        }
    }

#if !defined(EVFILT_USER)
    detail::wakeup_fd wakeup_;  // first: constructed before, destroyed after kq_
#endif
    int kq_;
    struct kevent events_[max_events];
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_KQUEUE
#endif
// end file ioloop/backend/kqueue.hpp
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
        // The sink may watch and unwatch descriptors (a transport reacting to its event):
        // an entry erased moves the last one into its slot, and an entry added has no
        // revents yet. Slot i is looked at again if it changed under the sink.
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
            const int fd = fds_[i].fd;
            fds_[i].revents = 0;
            sink(data, ready);
            if (i < fds_.size() && fds_[i].fd != fd) --i;
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
// ioloop: the select() backend on POSIX, the lowest common denominator. An fd_set holds
// only descriptors below FD_SETSIZE: watching a larger one throws instead of writing past
// it. Windows' select, which takes sockets only, is backend/select_winsock.hpp.
#ifndef IOLOOP_BACKEND_SELECT_HPP
#define IOLOOP_BACKEND_SELECT_HPP


#if defined(IOLOOP_HAS_SELECT) && defined(IOLOOP_POSIX)

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
            if (fd == wakeup_.fd()) {
                wakeup_.drain();
            } else if (data_[fd] != nullptr) {  // null: unwatched by an earlier sink call
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

#endif  // IOLOOP_HAS_SELECT && IOLOOP_POSIX
#endif
// end file ioloop/backend/select.hpp
// begin file ioloop/backend/select_winsock.hpp
// ioloop: the select() backend on Windows, where select takes sockets only and an fd_set
// is a counted array of SOCKET handles rather than a bitmap. The sets are built for each
// wait from the watched sockets, in arrays as long as needed: Winsock's select reads
// fd_count entries, and FD_SETSIZE only sizes the struct its macros work on.
#ifndef IOLOOP_BACKEND_SELECT_WINSOCK_HPP
#define IOLOOP_BACKEND_SELECT_WINSOCK_HPP


#if defined(IOLOOP_HAS_SELECT) && defined(IOLOOP_WINDOWS)

#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class select {
public:
    static constexpr std::string_view name = "select";

    select() { watch(wakeup_.fd(), 0, io_read, nullptr); }
    select(const select&) = delete;
    select& operator=(const select&) = delete;

    void watch(native_socket s, unsigned /*old_events*/, unsigned new_events, void* data) {
        const std::size_t index = detail::fd_index(s);
        if (index >= position_.size()) position_.resize(index + 1, 0);
        std::size_t& at = position_[index];  // 1 + its place in watched_, 0 if absent
        if (new_events == 0) {
            if (at == 0) return;
            watched_[at - 1] = watched_.back();
            position_[detail::fd_index(watched_[at - 1].s)] = at;
            watched_.pop_back();
            at = 0;
            return;
        }
        if (at == 0) {
            watched_.push_back(entry{s, 0, nullptr});
            at = watched_.size();
        }
        watched_[at - 1].events = new_events;
        watched_[at - 1].data = data;
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        const std::size_t n = watched_.size();
        readable_.resize(set_words(n));
        writable_.resize(set_words(n));
        failed_.resize(set_words(n));
        set_view read{readable_.data()}, write{writable_.data()}, except{failed_.data()};
        read.clear();
        write.clear();
        except.clear();
        for (const entry& e : watched_) {
            if (e.events & io_read) read.add(e.s);
            // A failed connect shows in the exception set on Windows, not the write set.
            if (e.events & io_write) {
                write.add(e.s);
                except.add(e.s);
            }
        }
        timeval tv{};
        timeval* ptv = nullptr;
        if (timeout.count() >= 0) {
            const long long us = (timeout.count() + 999) / 1000;  // rounded up
            tv.tv_sec = static_cast<long>(us / 1000000);
            tv.tv_usec = static_cast<long>(us % 1000000);
            ptv = &tv;
        }
        // The first argument is ignored by Winsock.
        if (::select(0, read.native(), write.native(), except.native(), ptv) == SOCKET_ERROR) {
            const int err = ::WSAGetLastError();
            if (err == WSAENOTSOCK) {
                forget_closed(sink);
                return;
            }
            detail::throw_system_error(static_cast<unsigned long>(err), "select");
        }
        report(read, io_read, sink);
        report(write, io_write, sink);
        report(except, io_read | io_write, sink);
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    struct entry {
        native_socket s;
        unsigned events;
        void* data;
    };

    // An fd_set of any length: a count, then that many handles. Stored as SOCKET-sized
    // words so that the count's alignment and the handles' match Winsock's own struct.
    class set_view {
    public:
        explicit set_view(SOCKET* words) noexcept : words_(words) {}
        void clear() noexcept { native()->fd_count = 0; }
        void add(SOCKET s) noexcept { words_[1 + native()->fd_count++] = s; }
        u_int size() const noexcept { return reinterpret_cast<const fd_set*>(words_)->fd_count; }
        SOCKET operator[](u_int i) const noexcept { return words_[1 + i]; }
        fd_set* native() noexcept { return reinterpret_cast<fd_set*>(words_); }

    private:
        SOCKET* words_;
    };
    static std::size_t set_words(std::size_t sockets) noexcept { return 1 + sockets; }

    // Looks each ready socket up again: an earlier sink call may have unwatched it.
    template <class Sink>
    void report(const set_view& ready, unsigned events, Sink& sink) {
        for (u_int i = 0; i < ready.size(); ++i) {
            const native_socket s = ready[i];
            if (s == wakeup_.fd()) {
                wakeup_.drain();
                continue;
            }
            const std::size_t index = detail::fd_index(s);
            if (index >= position_.size() || position_[index] == 0) continue;
            const entry& e = watched_[position_[index] - 1];
            if (e.events & events) sink(e.data, events);
        }
    }

    // select() fails with WSAENOTSOCK when a watched socket was closed without being
    // unwatched: report such sockets once (their callbacks see the error), then forget them.
    template <class Sink>
    void forget_closed(Sink& sink) {
        for (std::size_t i = watched_.size(); i-- > 0;) {
            if (i >= watched_.size() || detail::is_open_fd(watched_[i].s)) continue;
            const entry gone = watched_[i];
            watch(gone.s, gone.events, 0, nullptr);
            sink(gone.data, io_read | io_write);
        }
    }

    detail::wakeup_fd wakeup_;
    detail::pod_vector<entry> watched_;
    detail::pod_vector<std::size_t> position_;  // by fd_index
    detail::pod_vector<SOCKET> readable_, writable_, failed_;
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_SELECT && IOLOOP_WINDOWS
#endif
// end file ioloop/backend/select_winsock.hpp

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
        // Another loop's work would not stop this one (asyncio: "The future belongs to a
        // different loop than the one specified as the loop argument"). Decided before the
        // handle is copied or read: that loop may be running on another thread.
        if (!work.state()->belongs_to(*this)) {
            detail::future_base::throw_other_loop("run_until_complete", detail::handle_kind<A>,
                                                  "the one run_until_complete runs");
        }
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

namespace detail {
// `L`, as a type that depends on T.
template <class L, class T>
struct dependent {
    using type = L;
};
}  // namespace detail

// What asyncio.run and asyncio.Runner take besides the coroutine: {.debug = true} turns on
// the loop's debug mode (loop.set_debug) from the start.
struct run_options {
    bool debug = false;
};

// asyncio.Runner: one event loop for several run() calls, made at the first of them (or at
// get_loop()), closed by close() or the destructor as asyncio.run closes its own: the tasks
// still unfinished are cancelled and given the chance to finish, then the loop closes (which
// shuts its default executor down).
//   ioloop::runner r({.debug = true});
//   r.run(setup());
//   int n = r.run(work());   // the same loop: what setup() left running still runs
template <class Loop = event_loop>
class basic_runner {
public:
    explicit basic_runner(run_options options = {}) noexcept : options_(options) {}
    basic_runner(const basic_runner&) = delete;
    basic_runner& operator=(const basic_runner&) = delete;
    ~basic_runner() {
        try {
            close();
        } catch (...) {  // destroyed while its loop runs: nothing can be closed from here
        }
    }

    // Runs main to completion on the runner's loop; its result, or its exception.
    template <class T>
    T run(coro<T> main) {
        if (detail::loop_access::running())
            throw invalid_state_error("runner::run: cannot be called while an event loop is running");
        return get_loop().run_until_complete(std::move(main));
    }

    // The runner's loop, made now if no run() made it yet.
    Loop& get_loop() {
        if (closed_) throw invalid_state_error("runner: the runner is closed");
        if (!loop_) {
            loop_ = new Loop();
            loop_->set_debug(options_.debug);
        }
        return *loop_;
    }

    // Cancels what is left, closes the loop; a closed runner runs nothing more. Closing
    // twice does nothing; closing from inside the runner's own run() is an error.
    void close() {
        if (loop_ && loop_->is_running())
            throw invalid_state_error("runner::close: the runner's loop is running");
        closed_ = true;
        if (!loop_) return;
        try {
            detail::cancel_remaining_tasks(*loop_);
        } catch (...) {  // the loop will abandon what is left
        }
        loop_->close();  // not running: cannot throw
        delete std::exchange(loop_, nullptr);
    }

private:
    Loop* loop_ = nullptr;
    run_options options_;
    bool closed_ = false;
};

// Named through T (below): the loop type is completed where run is used, after the
// networking layer has defined its I/O engine (net/engines.hpp).
using runner = basic_runner<>;

// asyncio.run: a new event loop runs `main` to completion; the tasks still unfinished
// are then cancelled and given the chance to finish, the default executor is shut down,
// and the loop is closed. Returns main's result or throws its exception.
template <class T>
T run(coro<T> main, run_options options = {}) {
    if (detail::loop_access::running())
        throw invalid_state_error("run: cannot be called while an event loop is running");
    using loop_type = typename detail::dependent<event_loop, T>::type;
    basic_runner<loop_type> r(options);
    return r.run(std::move(main));
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
// begin file ioloop/coro/run_coroutine_threadsafe.hpp
// ioloop: run_coroutine_threadsafe(coro, loop) (asyncio's): from any other thread, makes
// the coroutine a task on `loop` and returns a std::future for its result. This is the one
// header that includes <future> (about +0.18 s on every compile of <ioloop/ioloop.hpp>,
// g++ 12 -O0): std::future is what a thread without a loop can wait on.
#ifndef IOLOOP_CORO_RUN_COROUTINE_THREADSAFE_HPP
#define IOLOOP_CORO_RUN_COROUTINE_THREADSAFE_HPP


#include <exception>
#include <future>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The promise a task will fulfil. If it goes away unfulfilled (the loop closed before the
// task started, or abandoned it unfinished), the waiting thread gets cancelled_error
// instead of std::future_error's broken_promise: the task did not run to its end.
template <class T>
class promise_keeper {
public:
    promise_keeper() = default;
    promise_keeper(promise_keeper&& o) noexcept
        : promise_(std::move(o.promise_)), armed_(std::exchange(o.armed_, false)) {}
    promise_keeper(const promise_keeper&) = delete;
    promise_keeper& operator=(const promise_keeper&) = delete;
    promise_keeper& operator=(promise_keeper&&) = delete;
    ~promise_keeper() {
        if (armed_) {
            promise_.set_exception(std::make_exception_ptr(
                cancelled_error("run_coroutine_threadsafe: the event loop closed before the "
                                "coroutine finished")));
        }
    }

    std::future<T> get_future() { return promise_.get_future(); }

    // The task is done: its value, its exception, or cancelled_error.
    void fulfil(task<T>& t) noexcept {
        armed_ = false;
        try {
            if constexpr (std::is_void_v<T>) {
                t.result();
                promise_.set_value();
            } else {
                promise_.set_value(std::move(t.result()));
            }
        } catch (...) {
            promise_.set_exception(std::current_exception());
        }
    }

    void fail(std::exception_ptr e) noexcept {
        armed_ = false;
        promise_.set_exception(std::move(e));
    }

private:
    std::promise<T> promise_;
    bool armed_ = true;
};

}  // namespace detail

// Schedules create_task(main) on `loop` through call_soon_threadsafe, and returns a
// std::future that gets the task's value, its exception, or cancelled_error if it was
// cancelled (or the loop closed first). Throws invalid_state_error if the loop is closed.
// Call it from another thread: on the loop's own thread, blocking on the future would
// block the loop that must complete it.
//
// asyncio's concurrent future can also cancel the task; std::future has no way to ask
// for that, so here cancelling is only possible from the loop's side (task.cancel()).
template <class T>
std::future<T> run_coroutine_threadsafe(coro<T> main, loop_base& loop) {
    if (!main) {
        throw invalid_state_error(
            "run_coroutine_threadsafe: the coro was already awaited or moved from");
    }
    detail::promise_keeper<T> keeper;
    std::future<T> result = keeper.get_future();
    loop.call_soon_threadsafe(
        [&loop, body = std::move(main), keeper = std::move(keeper)]() mutable {
            task<T> t;
            try {
                t = loop.create_task(std::move(body));
            } catch (...) {
                keeper.fail(std::current_exception());
                return;
            }
            t.add_done_callback([k = std::move(keeper)](task<T>& done) mutable { k.fulfil(done); });
        });
    return result;
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/run_coroutine_threadsafe.hpp
// begin file ioloop/coro/run_in_executor.hpp
// ioloop: loop.run_in_executor(fn) and ioloop::to_thread(fn, args...) (asyncio's): fn runs
// on the loop's default executor (a thread_pool made on first use, owned and shut down
// by the loop) while the loop goes on; a task completes with fn's result or exception on
// the loop's thread. Cancelling the task does not stop fn (no thread can be stopped from
// outside): fn does not start if it has not yet, and its result is dropped if it runs.
#ifndef IOLOOP_CORO_RUN_IN_EXECUTOR_HPP
#define IOLOOP_CORO_RUN_IN_EXECUTOR_HPP

// begin file ioloop/coro/thread_pool.hpp
// ioloop: thread_pool (asyncio's default concurrent.futures.ThreadPoolExecutor), the
// executor where run_in_executor and to_thread send blocking work. Threads start on
// demand: a new one only when no started thread is idle and fewer than max_workers run.
// They live until shutdown(), which refuses new work and waits for the queued and the
// running work to finish.
#ifndef IOLOOP_CORO_THREAD_POOL_HPP
#define IOLOOP_CORO_THREAD_POOL_HPP

// begin file ioloop/detail/threads.hpp
// ioloop: the three things the thread pool needs from a thread library (a mutex, a
// condition variable, a thread), and nothing more. On POSIX they are pthreads directly:
// <thread>, <mutex> and <condition_variable> would add about 0.13 s (+45 %) to every
// compile of <ioloop/ioloop.hpp> (g++ 12, -O0, mostly C++20's <stop_token> that <thread>
// and <condition_variable> pull in), while <pthread.h> adds nothing measurable.
// Elsewhere the standard classes do the same job.
#ifndef IOLOOP_DETAIL_THREADS_HPP
#define IOLOOP_DETAIL_THREADS_HPP


#include <cerrno>
#include <cstddef>
#include <system_error>

// A ladder like the backends': pthreads unless disabled, detected from the platform.
#if !defined(IOLOOP_HAS_PTHREADS) && !defined(IOLOOP_DISABLE_PTHREADS)
#if defined(IOLOOP_POSIX)
#define IOLOOP_HAS_PTHREADS 1
#endif
#endif

#if defined(IOLOOP_HAS_PTHREADS)
#include <pthread.h>
#include <unistd.h>
#else
#include <condition_variable>
#include <mutex>
#include <thread>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The three things the pool needs from a thread library, and nothing more.
#if defined(IOLOOP_HAS_PTHREADS)

class pool_mutex {
public:
    pool_mutex() = default;
    pool_mutex(const pool_mutex&) = delete;
    pool_mutex& operator=(const pool_mutex&) = delete;
    ~pool_mutex() { pthread_mutex_destroy(&m_); }
    void lock() noexcept { pthread_mutex_lock(&m_); }
    void unlock() noexcept { pthread_mutex_unlock(&m_); }
    pthread_mutex_t* native() noexcept { return &m_; }

private:
    pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
};

class pool_condition {
public:
    pool_condition() = default;
    pool_condition(const pool_condition&) = delete;
    pool_condition& operator=(const pool_condition&) = delete;
    ~pool_condition() { pthread_cond_destroy(&c_); }
    // `m` is locked by the caller; it is locked again when wait returns.
    void wait(pool_mutex& m) noexcept { pthread_cond_wait(&c_, m.native()); }
    void notify_one() noexcept { pthread_cond_signal(&c_); }
    void notify_all() noexcept { pthread_cond_broadcast(&c_); }

private:
    pthread_cond_t c_ = PTHREAD_COND_INITIALIZER;
};

class pool_thread {
public:
    // Runs main(arg) on a new thread; throws std::system_error if none can be made.
    void start(void (*main)(void*), void* arg) {
        entry_ = main;
        arg_ = arg;
        const int err = pthread_create(&id_, nullptr, &pool_thread::trampoline, this);
        if (err != 0)
            throw std::system_error(err, std::generic_category(), "thread_pool: no new thread");
    }
    void join() noexcept { pthread_join(id_, nullptr); }

    static std::size_t hardware_concurrency() noexcept {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }

private:
    static void* trampoline(void* self) {
        auto* t = static_cast<pool_thread*>(self);
        t->entry_(t->arg_);
        return nullptr;
    }

    pthread_t id_{};
    void (*entry_)(void*) = nullptr;
    void* arg_ = nullptr;
};

// Runs main(arg) on a new thread nobody joins (it frees what it holds itself); the error
// number if none can be made, else 0.
inline int start_detached_thread(void* (*main)(void*), void* arg) noexcept {
    pthread_t id;
    pthread_attr_t attr;
    if (int err = pthread_attr_init(&attr)) return err;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int err = pthread_create(&id, &attr, main, arg);
    pthread_attr_destroy(&attr);
    return err;
}

#else

class pool_mutex {
public:
    void lock() { m_.lock(); }
    void unlock() noexcept { m_.unlock(); }
    std::mutex& native() noexcept { return m_; }

private:
    std::mutex m_;
};

class pool_condition {
public:
    void wait(pool_mutex& m) noexcept {
        std::unique_lock<std::mutex> lock(m.native(), std::adopt_lock);
        c_.wait(lock);
        lock.release();  // the caller keeps holding it
    }
    void notify_one() noexcept { c_.notify_one(); }
    void notify_all() noexcept { c_.notify_all(); }

private:
    std::condition_variable c_;
};

class pool_thread {
public:
    void start(void (*main)(void*), void* arg) { t_ = std::thread(main, arg); }
    void join() noexcept {
        if (t_.joinable()) t_.join();
    }
    static std::size_t hardware_concurrency() noexcept {
        return std::thread::hardware_concurrency();
    }

private:
    std::thread t_;
};

inline int start_detached_thread(void* (*main)(void*), void* arg) noexcept {
    try {
        std::thread(main, arg).detach();
        return 0;
    } catch (const std::system_error& e) {
        return e.code().value();
    } catch (...) {  // no memory for the thread's state
        return ENOMEM;
    }
}

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/threads.hpp

#include <cstddef>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class thread_pool final : public executor {
public:
    // asyncio's rule for the default executor: enough threads for blocking I/O on a small
    // machine, capped on a large one.
    static std::size_t default_max_workers() noexcept {
        const std::size_t n = detail::pool_thread::hardware_concurrency() + 4;
        return n < 32 ? n : 32;
    }

    // No thread starts here: the first ones start with the first work.
    explicit thread_pool(std::size_t max_workers = default_max_workers()) : max_(max_workers) {
        if (max_ == 0) {
            // Bad input, reported like add_signal_handler's bad signal number.
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "thread_pool: max_workers must be at least 1");
        }
    }

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    // Shuts down: waits for the work already submitted. Must not run on one of the pool's
    // own threads (it would wait for itself).
    ~thread_pool() override { shutdown(); }

    std::size_t max_workers() const noexcept { return max_; }

    // Queues `job`; an idle thread takes it, else a new thread if fewer than max_workers
    // run, else the first thread to finish its current work. `job` must not throw: an
    // exception escaping it ends the program, as one escaping a std::thread does.
    void submit(work job) override {
        auto* it = new item{std::move(job), nullptr};
        mutex_.lock();
        if (shutdown_) {
            mutex_.unlock();
            delete it;  // out of the lock: the callable's destructor may do anything
            throw invalid_state_error("thread_pool.submit: the pool is shut down");
        }
        // Each idle thread takes one queued item: this one needs a new thread unless
        // there are more idle threads than items already waiting.
        if (idle_ <= queued_ && threads_ < max_) {
            try {
                start_worker();
            } catch (...) {
                // Without any thread the work would never run; with some, it waits its turn.
                if (threads_ == 0) {
                    mutex_.unlock();
                    delete it;
                    throw;
                }
            }
        }
        if (tail_) {
            tail_->next = it;
        } else {
            head_ = it;
        }
        tail_ = it;
        ++queued_;
        if (idle_ > 0) work_or_exit_.notify_one();
        mutex_.unlock();
    }

    // Accepts no more work and returns once the queued and the running work have
    // finished and the threads have ended. Called from one of the pool's own jobs, it
    // only refuses new work: waiting there would wait for itself.
    void shutdown() noexcept override {
        mutex_.lock();
        shutdown_ = true;
        work_or_exit_.notify_all();
        if (current_pool_ == this) {
            mutex_.unlock();
            return;
        }
        while (alive_ > 0) work_or_exit_.wait(mutex_);
        worker* ended = std::exchange(workers_, nullptr);
        mutex_.unlock();
        while (worker* w = ended) {
            ended = w->next;
            w->thread.join();
            delete w;
        }
    }

private:
    struct item {
        work fn;
        item* next;
    };

    struct worker {
        detail::pool_thread thread;
        worker* next = nullptr;
    };

    // With the lock held.
    void start_worker() {
        auto* w = new worker;
        try {
            w->thread.start(&thread_pool::worker_main, this);
        } catch (...) {
            delete w;
            throw;
        }
        w->next = workers_;
        workers_ = w;
        ++threads_;
        ++alive_;
    }

    static void worker_main(void* self) noexcept { static_cast<thread_pool*>(self)->work_loop(); }

    // Takes work until the pool is shut down and the queue is empty.
    void work_loop() noexcept {
        current_pool_ = this;
        mutex_.lock();
        for (;;) {
            if (item* it = head_) {
                head_ = it->next;
                if (!head_) tail_ = nullptr;
                --queued_;
                mutex_.unlock();
                it->fn();
                delete it;
                mutex_.lock();
                continue;
            }
            if (shutdown_) break;
            ++idle_;
            work_or_exit_.wait(mutex_);
            --idle_;
        }
        --alive_;
        work_or_exit_.notify_all();  // shutdown() waits for the last one
        mutex_.unlock();
    }

    // The pool whose work this thread runs, if any: shutdown() must not wait for itself.
    static inline thread_local const thread_pool* current_pool_ = nullptr;

    const std::size_t max_;
    detail::pool_mutex mutex_;  // guards everything below
    detail::pool_condition work_or_exit_;
    item* head_ = nullptr;  // the queue, oldest first
    item* tail_ = nullptr;
    std::size_t queued_ = 0;
    std::size_t idle_ = 0;     // threads waiting for work
    std::size_t threads_ = 0;  // started so far
    std::size_t alive_ = 0;    // not yet ended
    worker* workers_ = nullptr;
    bool shutdown_ = false;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/thread_pool.hpp

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class R>
class executor_result;

// One call of fn on an executor. Two sides hold it, each with one reference: the loop's
// side (an executor_result, in the frame of the task that awaits the call) and the
// worker's side (the work in the executor's queue, then the completion the worker hands
// to the loop). Whichever side lets go last deletes it, so that neither has to know
// whether the other is still there. The count is the only thing both threads touch at
// the same time; the result is written by the worker before it hands the completion over
// (call_soon_threadsafe publishes it) and read by the loop when the completion runs.
template <class R>
class executor_job {
public:
    executor_job(const executor_job&) = delete;
    executor_job& operator=(const executor_job&) = delete;

    void release() noexcept {
        if (refs_.fetch_sub(1, memory_order::acq_rel) == 1) delete this;
    }

    // Where the result goes: the loop's thread only.
    executor_result<R>* receiver = nullptr;
    // Written by the worker before it hands the completion over, read by the loop after.
    result_value<R> value;
    std::exception_ptr error;

protected:
    explicit executor_job(loop_base& l) noexcept : loop_(&l) {}
    virtual ~executor_job() = default;

    // The worker's side: true once the loop's side has let go (the awaiting task was
    // cancelled or abandoned). Only the worker's reference is left, and nothing can add
    // one back, so the answer cannot change.
    bool abandoned() const noexcept { return refs_.load(memory_order::acquire) == 1; }

    // On the worker, with the result stored: hands the worker's reference to the loop,
    // in a callback that delivers the result. If the loop is closed, the callback is
    // destroyed right here, on the worker, and the loop is not touched further.
    void hand_over() noexcept {
        try {
            loop_->call_soon_threadsafe(completion(this));
        } catch (...) {  // closed loop (or no memory for the callback): already released
        }
    }

private:
    // Owns the worker's reference from the moment the worker hands it over.
    struct completion {
        executor_job* job;
        explicit completion(executor_job* j) noexcept : job(j) {}
        completion(completion&& o) noexcept : job(std::exchange(o.job, nullptr)) {}
        completion(const completion&) = delete;
        completion& operator=(const completion&) = delete;
        completion& operator=(completion&&) = delete;
        ~completion() {
            if (job) job->release();
        }
        void operator()() const noexcept {
            if (executor_result<R>* r = job->receiver) r->arrive();
        }
    };

    loop_base* loop_;
    atomic<unsigned> refs_{2};
};

template <class R, class F>
class executor_job_of final : public executor_job<R> {
public:
    executor_job_of(loop_base& l, F&& fn) : executor_job<R>(l) { fn_.set(std::move(fn)); }

    // The work given to the executor, on the worker's thread. fn (and what it captured)
    // is destroyed here, right after the call.
    void run() noexcept {
        if (this->abandoned()) {  // cancelled before it started: fn never runs
            fn_.reset();
            this->release();
            return;
        }
        try {
            if constexpr (std::is_void_v<R>) {
                fn_.get()();
                this->value.set();
            } else {
                this->value.set(fn_.get()());
            }
        } catch (...) {
            this->error = std::current_exception();
        }
        fn_.reset();
        this->hand_over();
    }

private:
    result_value<F> fn_;
};

// The loop's side of a job: a parameter of the coroutine that awaits it, so it lives in
// the task's frame and lets go of the job whenever that frame goes (the task finished,
// was cancelled before its first step, or was abandoned by a closing loop). It is also
// the awaiter, and the task's wait point while the job runs.
template <class R>
class executor_result final : public wait_point {
public:
    explicit executor_result(executor_job<R>* j) noexcept : job_(j) { job_->receiver = this; }
    // Moved into the coroutine frame: the completion must find the new address.
    executor_result(executor_result&& o) noexcept : job_(std::exchange(o.job_, nullptr)) {
        if (job_) job_->receiver = this;
    }
    executor_result(const executor_result&) = delete;
    executor_result& operator=(const executor_result&) = delete;
    executor_result& operator=(executor_result&&) = delete;
    ~executor_result() { let_go(); }

    bool await_ready() const noexcept { return arrived_; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("run_in_executor");
        task_->suspend(h, this);
    }

    R await_resume() {
        if (task_) task_->throw_if_cancelled();
        // Let go of on a cancel that was then withdrawn (uncancel): the result is lost, so
        // the cancellation stands, as awaiting a cancelled future in asyncio.
        if (!job_) throw cancelled_error();
        if (job_->error) std::rethrow_exception(job_->error);
        if constexpr (!std::is_void_v<R>) return std::move(job_->value.get());
    }

    // asyncio: the awaiting task is cancelled at once; the thread goes on. The job is let
    // go of: it does not start if it has not, and its completion finds no receiver.
    void on_cancel(task_base& t) noexcept override {
        let_go();
        t.wake();
    }

    // From the job's completion, on the loop's thread: the result is in the job.
    void arrive() noexcept {
        job_->receiver = nullptr;
        arrived_ = true;
        if (task_) task_->wake();
    }

private:
    void let_go() noexcept {
        if (executor_job<R>* j = std::exchange(job_, nullptr)) {
            j->receiver = nullptr;
            j->release();  // last touch: the worker may delete the job from here on
        }
    }

    executor_job<R>* job_;
    task_base* task_ = nullptr;
    bool arrived_ = false;
};

// The body of run_in_executor's task: a real task (name, cancel, done callbacks) whose
// only wait is the job.
template <class R>
coro<R> await_executor_job(executor_result<R> result) {
    if constexpr (std::is_void_v<R>) {
        co_await result;
    } else {
        co_return co_await result;
    }
}

// The loop's executor: the one set with set_default_executor, else the loop's own
// thread_pool, made now if it was not yet. The loop shuts it down and deletes it when it
// closes.
inline executor& default_executor(loop_base& l) {
    executor*& slot = loop_access::executor_slot(l);
    if (!slot) {
        auto* pool = new thread_pool(thread_pool::default_max_workers());
        loop_access::owned_executor_slot(l) = pool;
        slot = pool;
    }
    return *slot;
}

}  // namespace detail

// fn is submitted now (asyncio submits at the call too), and runs even if the task is
// never awaited. R is fn's result decayed: a reference fn returns is copied on the worker,
// since the object it refers to may change once the loop goes on.
//
// A custom executor (set_default_executor) and this loop must both outlive the work sent
// to it: the worker hands the result to the loop with call_soon_threadsafe. The loop's own
// pool is shut down, and its work waited for, when the loop closes.
template <class F>
auto loop_base::run_in_executor(F fn) {
    static_assert(std::is_invocable_v<F&>,
                  "run_in_executor: fn must be callable with no arguments");
    using R = std::remove_cvref_t<std::invoke_result_t<F&>>;
    check_open("run_in_executor");
    executor& e = detail::default_executor(*this);
    auto* job = new detail::executor_job_of<R, F>(*this, std::move(fn));
    detail::executor_result<R> result(job);  // the loop's reference; the worker's is next
    try {
        e.submit([job]() noexcept { job->run(); });
    } catch (...) {  // a shut-down executor: nothing will run, drop the worker's reference
        job->release();
        throw;
    }
    return create_task(detail::await_executor_job<R>(std::move(result)));
}

// asyncio.to_thread: fn(args...) runs on the running loop's default executor. fn and args
// are decay-copied (or moved) into the job, and args are moved into the call. Returns the
// task, like run_in_executor (asyncio returns a coroutine: here the work starts at the
// call, not when it is awaited).
template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
    loop_base& l = detail::loop_access::running_or_throw("to_thread");
    return l.run_in_executor(
        [f = std::forward<F>(fn), ... a = std::forward<Args>(args)]() mutable -> decltype(auto) {
            return f(std::move(a)...);
        });
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/run_in_executor.hpp
// begin file ioloop/coro/semaphore.hpp
// ioloop: semaphore and bounded_semaphore (asyncio.Semaphore, BoundedSemaphore), a
// counter of units that tasks acquire and release, served first come, first served. As
// in asyncio 3.12, release() reserves its unit for the first waiter and wakes it; while
// any task waits or is woken and not yet run, locked() is true and a task that arrives
// queues behind them. A woken waiter cancelled before it runs gives its unit back and
// wakes the next one.
#ifndef IOLOOP_CORO_SEMAPHORE_HPP
#define IOLOOP_CORO_SEMAPHORE_HPP


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
// end file ioloop/coro/semaphore.hpp
// begin file ioloop/coro/shield.hpp
// ioloop: shield (asyncio.shield), await work without letting a cancellation reach it.
//
//   int r = co_await ioloop::shield(save(record));  // save goes on if this task is cancelled
//
// If the awaiting task is cancelled, it gets cancelled_error at once and the inner task
// keeps running (keep its handle to await it again later); if the inner task is cancelled
// itself, the awaiter gets cancelled_error too. A coro is made a task first, as asyncio
// does, so that it has somewhere to go on running.
//
// shield(x) is an awaitable for one co_await (asyncio returns a new future): it costs no
// task and no allocation. It can also be given to wait_for or a timeout scope, asyncio's
// `wait_for(shield(t), d)`: on timeout the wait ends and t goes on.
#ifndef IOLOOP_CORO_SHIELD_HPP
#define IOLOOP_CORO_SHIELD_HPP


#include <coroutine>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Suspends the current task until the future h is done. A cancel of the waiting task ends
// only the wait (asyncio's shield, and _cancel_and_wait in wait_for). The result is moved
// out (Move) or referenced; a handle without a result gives only its exception; Discard
// only waits (nothing is thrown but the waiting task's own cancellation).
template <class H, bool Move, bool Discard = false>
class shield_awaiter final : public done_link, public wait_point {
public:
    // Refuses a task or future of another loop before reading it or linking to it.
    explicit shield_awaiter(H h) : inner_(std::move(h)) { check_running_loop(inner_, "shield"); }
    shield_awaiter(const shield_awaiter&) = delete;
    shield_awaiter& operator=(const shield_awaiter&) = delete;
    ~shield_awaiter() { inner_.state()->remove_link(this); }

    bool await_ready() const noexcept { return inner_.done(); }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("shield");
        if (static_cast<future_base*>(task_) == inner_.state())
            throw invalid_state_error("shield: a task cannot await itself");
        inner_.state()->add_link(this);
        task_->suspend(h, this);
    }

    decltype(auto) await_resume() {
        if (task_) task_->throw_if_cancelled();
        if constexpr (Discard) {
            return;
        } else if constexpr (!child_of<H>::has_value) {
            inner_.state()->rethrow_if_not_finished("shield");
        } else {
            return take_result<Move>(inner_);
        }
    }

    void on_done() noexcept override { task_->wake(); }

    void on_cancel(task_base& t) noexcept override {
        inner_.state()->remove_link(this);
        t.wake();
    }

private:
    H inner_;
    task_base* task_ = nullptr;
};

}  // namespace detail

// What shield(x) returns: the handle of the shielded work, awaited once.
template <class H, bool Move>
class [[nodiscard]] shielded {
public:
    explicit shielded(H inner) noexcept : inner_(std::move(inner)) {}

    // The shielded task or future, until the co_await takes it over.
    const H& inner() const noexcept { return inner_; }

    // Throws invalid_state_error if the work belongs to another loop than the running one.
    auto operator co_await() && { return detail::shield_awaiter<H, Move>(std::move(inner_)); }

private:
    H inner_;
};

// co_await shield(x): x's result; cancelling the awaiting task does not cancel x.
template <class A>
requires detail::child_awaitable<A> shielded<detail::child_handle<A>, detail::moves_result<A&&>>
shield(A&& aw) {
    // A handle the shield copies is checked first (a copy counts a reference), yet only
    // against a loop running here: shield(t) may be made outside any loop, for
    // loop.run_until_complete(wait_for(shield(t), 1s)). The co_await checks it again.
    if constexpr (std::is_lvalue_reference_v<A> &&
                  !detail::is_coro_argument<std::remove_cvref_t<A>>)
        detail::check_not_other_loop(aw, "shield");
    return shielded<detail::child_handle<A>, detail::moves_result<A&&>>(
        detail::make_child(std::forward<A>(aw)));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/shield.hpp
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
    // Before it is awaited (into a wait_for, a race): no timer is set yet.
    sleep_awaiter(sleep_awaiter&& o) noexcept : delay_(o.delay_) {}
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
    // Saturates: sleep(hours::max()) is forever, not an overflow.
    return detail::sleep_awaiter(detail::saturating_ceil(d));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/sleep.hpp
// begin file ioloop/coro/task_group.hpp
// ioloop: task_group (asyncio's TaskGroup), structured concurrency. Every task created in
// a group is done before the group's scope ends; the first task to fail cancels the other
// tasks and the group's body, and all the failures come out together as one
// exception_group. A cancel of the task running the group from outside cancels the
// children too and comes out as cancelled_error.
//
//     co_await ioloop::task_group::run([&](ioloop::task_group& tg) -> ioloop::coro<void> {
//         ioloop::task<std::string> a = tg.create_task(fetch("a"));
//         tg.create_task(fetch("b"), "fetch-b");
//         co_return;
//     });  // both tasks are done here
//
// asyncio writes `async with TaskGroup() as tg:`, whose exit waits for the children even
// when an exception leaves the block. C++ has no asynchronous destructor: a scope object
// could only cancel its children when an exception unwinds past it, never wait for them.
// So the scope is a coroutine, run(), which waits for every child however its body ends
// (returns, throws, is cancelled). The task_group handle it passes to the body is a
// counted reference: a copy kept by a child or a callback never dangles, and creating a
// task through it once the group is finished throws invalid_state_error.
#ifndef IOLOOP_CORO_TASK_GROUP_HPP
#define IOLOOP_CORO_TASK_GROUP_HPP


#include <coroutine>
#include <cstddef>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

class task_group;

namespace detail {

// What a group shares between its scope (run's frame), its handles and the callbacks of
// its children: counted, on the loop's thread.
class task_group_state {
public:
    explicit task_group_state(task_base& parent) noexcept
        : loop_(parent.loop()), parent_(&parent) {}
    task_group_state(const task_group_state&) = delete;
    task_group_state& operator=(const task_group_state&) = delete;

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }

    template <class T>
    task<T> create_task(coro<T> body, std::string name) {
        if (exiting_ && count_ == 0) {
            discard(body);
            throw invalid_state_error("task_group::create_task: the task group is finished");
        }
        if (aborting_) {
            discard(body);
            throw invalid_state_error(
                "task_group::create_task: the task group is shutting down (a task failed or it "
                "was cancelled)");
        }
        // Allocated first: a failed allocation must not leave a task running outside it.
        struct pending_member {
            member* m;
            ~pending_member() { delete m; }
        } fresh{new member(*this)};
        task<T> t = loop_->create_task(std::move(body), std::move(name));
        member* m = std::exchange(fresh.m, nullptr);
        m->task = static_cast<task_base*>(t.state());
        m->task->add_ref();
        m->prev = tail_;
        if (tail_) {
            tail_->next = m;
        } else {
            head_ = m;
        }
        tail_ = m;
        ++count_;
        m->task->add_link(m);
        return t;
    }

    // The end of the scope (asyncio's __aexit__): waits for every child, then rethrows
    // what the group's outcome is. body_error is what the body threw, if anything.
    // A template only so that the coroutine is compiled where it is used: g++ generates
    // a plain inline coroutine in every translation unit that includes it.
    template <class = void>
    coro<void> close(std::exception_ptr body_error);

    // The scope is gone: normally with no child left; at the loop's close, the parent's
    // coroutine destroyed where it waited, with children the loop abandons in turn.
    void drop() noexcept {
        exiting_ = true;
        dropped_ = true;
        while (member* m = head_) {
            unlink(m);
            m->task->remove_link(m);
            m->task->release();
            delete m;
        }
        joiner_ = nullptr;
        parent_ = nullptr;
        errors_.clear();
    }

private:
    ~task_group_state() = default;

    // A child: heard from when its task is done (the task's own list of links).
    struct member final : done_link {
        explicit member(task_group_state& g) noexcept : group(&g) {}
        // Handled on a later iteration, as asyncio's done callbacks are: a sibling woken
        // in the same iteration still runs its step first, so children that fail "at the
        // same time" all get to report their own error rather than a cancellation.
        void on_done() noexcept override {
            if (loop_base* l = task->loop()) loop_access::post(*l, done_step(group, this));
        }
        task_group_state* group;
        task_base* task = nullptr;  // counted: read after it is done
        member* prev = nullptr;
        member* next = nullptr;
    };

    // The posted callback. It keeps the state alive; the member may be gone if the scope
    // was dropped meanwhile (the loop closing), which the state says.
    class done_step {
    public:
        done_step(task_group_state* g, member* m) noexcept : group_(g), member_(m) {
            group_->add_ref();
        }
        done_step(done_step&& o) noexcept
            : group_(std::exchange(o.group_, nullptr)), member_(o.member_) {}
        done_step(const done_step&) = delete;
        done_step& operator=(const done_step&) = delete;
        done_step& operator=(done_step&&) = delete;
        ~done_step() {
            if (group_) group_->release();
        }
        void operator()() noexcept {
            if (!group_->dropped_) group_->child_done(member_);
        }

    private:
        task_group_state* group_;
        member* member_;
    };

    // Where the parent waits for the last child (asyncio awaits a future for this).
    class join final : public wait_point {
    public:
        explicit join(task_group_state& g) noexcept : group_(g) {}
        join(const join&) = delete;
        join& operator=(const join&) = delete;
        ~join() {
            if (group_.joiner_ == this) group_.joiner_ = nullptr;
        }

        bool await_ready() const noexcept { return group_.count_ == 0; }
        void await_suspend(std::coroutine_handle<> h) {
            task_ = &current_task_or_throw("task_group");
            group_.joiner_ = this;
            task_->suspend(h, this);
        }
        void await_resume() {
            if (task_) task_->throw_if_cancelled();
        }

        void on_cancel(task_base& t) noexcept override {
            group_.joiner_ = nullptr;
            t.wake();
        }
        void children_done() noexcept {
            group_.joiner_ = nullptr;
            task_->wake();
        }

    private:
        task_group_state& group_;
        task_base* task_ = nullptr;
    };

    // A coroutine the group refuses is destroyed unrun without the "never awaited" report
    // (asyncio closes it): the refusal is already reported by the exception.
    template <class T>
    static void discard(coro<T>& body) noexcept {
        if (auto h = body.release()) h.destroy();
    }

    void unlink(member* m) noexcept {
        if (m->prev) {
            m->prev->next = m->next;
        } else {
            head_ = m->next;
        }
        if (m->next) {
            m->next->prev = m->prev;
        } else {
            tail_ = m->prev;
        }
        --count_;
    }

    // Cancels every child not done yet; from now on the group takes no new task.
    void abort() noexcept {
        aborting_ = true;
        for (member* m = head_; m; m = m->next) {
            if (!m->task->done()) m->task->cancel();
        }
    }

    // A child is done (asyncio's _on_task_done). Its first failure aborts the group and
    // cancels the parent, counted as the group's own request so that close() withdraws it
    // with uncancel() and turns it back into the errors.
    void child_done(member* m) noexcept {
        unlink(m);
        task_base* t = m->task;
        delete m;
        if (count_ == 0 && joiner_) joiner_->children_done();
        if (!t->cancelled()) {
            // Reading it marks it retrieved: the group reports it, the task need not.
            // (Out of memory in push_back ends the program: the error could not be kept.)
            if (std::exception_ptr e = t->exception()) {
                errors_.push_back(std::move(e));
                if (!aborting_ && !parent_cancel_requested_) {
                    abort();
                    parent_cancel_requested_ = true;
                    parent_->cancel();
                }
            }
        }
        t->release();
    }

    loop_base* loop_;
    task_base* parent_;  // the task running the body; null once the scope is gone
    member* head_ = nullptr;
    member* tail_ = nullptr;
    std::size_t count_ = 0;  // children whose done_step has not run yet
    join* joiner_ = nullptr;
    std::vector<std::exception_ptr> errors_;
    std::size_t refs_ = 1;
    bool exiting_ = false;   // the body is over
    bool aborting_ = false;  // children cancelled: a failure, or the scope is cancelled
    bool parent_cancel_requested_ = false;
    bool dropped_ = false;
};

template <class>
coro<void> task_group_state::close(std::exception_ptr body_error) {
    exiting_ = true;
    const bool body_cancelled = future_base::is_cancellation(body_error);
    // A cancellation that reached the body goes on up, unless it was the group's own.
    std::exception_ptr propagate = body_cancelled ? body_error : nullptr;
    if (body_error && !aborting_) abort();
    while (count_ != 0) {
        try {
            co_await join(*this);
        } catch (const cancelled_error&) {
            // Cancelled while waiting: by the group itself (a child failed; the wait goes
            // on), or from outside, which cancels the children and stays a cancellation.
            if (!aborting_) {
                propagate = std::current_exception();
                abort();
            }
        }
    }
    // Withdraw the group's own cancel request; one left over came from outside.
    if (parent_cancel_requested_ && parent_->uncancel() == 0) propagate = nullptr;
    if (propagate && errors_.empty()) std::rethrow_exception(propagate);
    if (body_error && !body_cancelled) errors_.push_back(std::move(body_error));
    if (errors_.empty()) co_return;
    // The errors win over an outside cancel, which must not be lost either: cancelling
    // again (the count unchanged) makes the parent's next suspension point throw.
    if (parent_->cancelling() != 0) {
        parent_->uncancel();
        parent_->cancel();
    }
    throw exception_group(std::move(errors_));
}

// Ends the scope however run's coroutine ends, destroyed at the loop's close included.
struct task_group_scope {
    task_group_state& state;
    ~task_group_scope() { state.drop(); }
};

// T for a body F called as F(task_group&) -> coro<T>; a readable error for anything else.
template <class C>
struct task_group_body_result {
    static_assert(dependent_false<C>,
                  "task_group::run: the body must return an ioloop::coro<T> (write the lambda "
                  "as [&](ioloop::task_group& tg) -> ioloop::coro<void> { ... })");
    using type = void;
};
template <class T>
struct task_group_body_result<coro<T>> {
    using type = T;
};
template <class F, bool = std::is_invocable_v<F&, task_group&>>
struct task_group_run_result {
    static_assert(dependent_false<F>, "task_group::run: the body must take a task_group&");
    using type = void;
};
template <class F>
struct task_group_run_result<F, true>
    : task_group_body_result<std::invoke_result_t<F&, task_group&>> {};

// What task_group::create_task takes besides a coro: a task or a future, which a child awaits.
template <class H>
inline constexpr bool joins_by_await = false;
template <class T>
inline constexpr bool joins_by_await<task<T>> = true;
template <class T>
inline constexpr bool joins_by_await<future<T>> = true;

}  // namespace detail

class task_group {
public:
    // Runs body(group) in the awaiting task, then waits until every task created in the
    // group is done. Returns the body's result; throws exception_group if a child or the
    // body failed (the other children are cancelled at the first failure), or
    // cancelled_error if the awaiting task was cancelled from outside.
    template <class F>
    static coro<typename detail::task_group_run_result<F>::type> run(F body);

    // A task of this group (asyncio's TaskGroup.create_task): scheduled now, awaited by
    // the group's scope. Throws invalid_state_error once the group is finished or shutting
    // down (a child failed, or the group was cancelled); the coroutine is then dropped.
    template <class T>
    task<T> create_task(coro<T> body, std::string name = {}) {
        return state_->create_task(std::move(body), std::move(name));
    }

    // A callable returning a coro (`tg.create_task([x]() -> coro<void> { ... })`): moved
    // into the task, so that it lives, with what it captured, as long as the coroutine it
    // made runs. (`tg.create_task([&]() -> coro<void> { ... }())`, the lambda called in
    // the expression, hands over a coroutine whose closure dies with the expression: pass
    // the lambda itself.)
    template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
    auto create_task(F&& fn, std::string name = {}) {
        static_assert(detail::coro_callable<F>,
                      "task_group::create_task: the callable must return an ioloop::coro<T> "
                      "(write the lambda as [x]() -> ioloop::coro<void> { ... })");
        return create_task(detail::call_kept(std::decay_t<F>(std::forward<F>(fn))),
                           std::move(name));
    }

    // A task or future made elsewhere (to_thread, run_in_executor) joins the group through
    // a child that awaits it: cancelling the child cancels it. One of another loop than the
    // running one throws invalid_state_error here, rather than in the child; and before the
    // handle is copied (taken by reference for that: a copy counts a reference).
    template <class H, class T = typename std::remove_cvref_t<H>::value_type>
    requires detail::joins_by_await<std::remove_cvref_t<H>>
    task<T> create_task(H&& work, std::string name = {}) {
        detail::check_running_loop(work, "task_group::create_task");
        return create_task(detail::await_owned(std::remove_cvref_t<H>(std::forward<H>(work))),
                           std::move(name));
    }

    task_group(const task_group& o) noexcept : state_(o.state_) { state_->add_ref(); }
    task_group& operator=(const task_group& o) noexcept {
        o.state_->add_ref();
        state_->release();
        state_ = o.state_;
        return *this;
    }
    ~task_group() { state_->release(); }

private:
    explicit task_group(detail::task_group_state* adopted) noexcept : state_(adopted) {}

    detail::task_group_state* state_;  // never null
};

template <class F>
coro<typename detail::task_group_run_result<F>::type> task_group::run(F body) {
    using R = typename detail::task_group_run_result<F>::type;
    // The body lives in this frame: a lambda's captures outlive its coroutine.
    task_group group(
        new detail::task_group_state(detail::current_task_or_throw("task_group::run")));
    detail::task_group_scope scope{*group.state_};
    std::exception_ptr body_error;
    detail::result_value<R> value;
    try {
        if constexpr (std::is_void_v<R>) {
            co_await body(group);
        } else {
            value.set(co_await body(group));
        }
    } catch (...) {
        body_error = std::current_exception();
    }
    co_await group.state_->close(std::move(body_error));
    if constexpr (std::is_void_v<R>) {
        co_return;
    } else {
        co_return std::move(value.get());
    }
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/task_group.hpp
// begin file ioloop/coro/timeout.hpp
// ioloop: timeout scopes (asyncio.timeout, timeout_at and their Timeout object): a
// deadline for a stretch of work in the current task.
//
//   co_await ioloop::timeout(2s, fetch(url));          // timeout_error after 2 s
//   co_await ioloop::timeout(2s, [&] { return step(); }); // a callable making the coro
//
//   ioloop::timeout_scope scope(2s);                   // asyncio's `async with ... as cm`
//   try {
//       co_await scope.run([&](ioloop::timeout_scope& s) -> ioloop::coro<void> {
//           co_await read_header();
//           s.reschedule(s.when() + 1s);              // more time for the body
//           co_await read_body();
//       });
//   } catch (const ioloop::timeout_error&) {
//       assert(scope.expired());
//   }
//
// C++ has no asynchronous destructor, so a scope cannot end at a closing brace: the work
// it covers is given to it as a body: a coro, a task or future, shield(x), or a callable
// returning a coro (called with the scope if it takes one; it is kept alive, with what it
// captured, as long as the coro it made runs). The scope is entered when the body is
// awaited, and the body runs inline in the current task, as asyncio's `async with` block.
//
// Semantics are asyncio's: at the deadline the scope cancels its task, and if the body
// then ends in cancelled_error the scope turns it into timeout_error. It counts with the
// task's cancel requests (cancelling() / uncancel()): a cancel from outside during the
// scope stays cancelled_error, and of nested scopes only the one that expired raises
// timeout_error. If the body catches the cancellation and finishes anyway, its result is
// returned and expired() is true.
#ifndef IOLOOP_CORO_TIMEOUT_HPP
#define IOLOOP_CORO_TIMEOUT_HPP


#include <coroutine>
#include <cstddef>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class timeout_scope;

namespace detail {

template <class F, class Aw, bool Move>
class scoped_awaiter;

// now + delay on the loop's clock, saturated: a delay past the clock's range is no
// deadline at all.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> delay) {
    return saturating_deadline(std::chrono::steady_clock::now(), delay);
}

}  // namespace detail

class timeout_scope {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    // The deadline that never comes (asyncio's when=None).
    static constexpr time_point never() noexcept { return time_point::max(); }

    // A deadline at `when` on the loop's clock (asyncio.timeout_at).
    explicit timeout_scope(time_point when) noexcept : when_(when) {}

    // A deadline `delay` from now (asyncio.timeout: counted from when the scope is made).
    template <class Rep, class Period>
    explicit timeout_scope(std::chrono::duration<Rep, Period> delay)
        : when_(detail::deadline_after(delay)) {}

    // The scope's timer refers to it: it stays where it was made.
    timeout_scope(const timeout_scope&) = delete;
    timeout_scope& operator=(const timeout_scope&) = delete;
    ~timeout_scope() { timer_.cancel(); }

    time_point when() const noexcept { return when_; }

    // Moves the deadline (never() removes it); a past deadline expires on the next
    // iteration. Only while the body runs and before the scope expired, as asyncio.
    void reschedule(time_point when) {
        if (state_ != state::entered) {
            throw invalid_state_error(state_ == state::created
                                          ? "reschedule: the timeout scope has not been entered"
                                          : "reschedule: the timeout scope has expired or ended");
        }
        when_ = when;
        timer_.cancel();
        arm();
    }

    // The deadline passed while the body ran (the scope cancelled it).
    bool expired() const noexcept { return state_ == state::expiring || state_ == state::expired; }

    // co_await scope.run(body): runs the body under the deadline; its result, or
    // timeout_error if the deadline cancelled it. A scope runs once.
    template <class Body>
    auto run(Body&& body) &;

private:
    template <class F, class Aw, bool Move>
    friend class detail::scoped_awaiter;

    enum class state : unsigned char { created, entered, expiring, expired, exited };

    // asyncio's __aenter__: the task, its cancel requests so far, the timer.
    void enter() {
        if (state_ != state::created)
            throw invalid_state_error("timeout: a timeout scope is entered once");
        detail::task_base& t = detail::current_task_or_throw("timeout");
        task_ = &t;
        cancelling_ = t.cancelling();
        state_ = state::entered;
        arm();
    }

    // asyncio's __aexit__: true if the scope's own expiry cancelled the body and no other
    // cancel is pending, so a cancelled_error leaving the body becomes timeout_error.
    bool leave() noexcept {
        timer_.cancel();
        if (state_ == state::expiring) {
            state_ = state::expired;
            return task_->uncancel() <= cancelling_;
        }
        if (state_ == state::entered) state_ = state::exited;
        return false;
    }

    void arm() {
        if (when_ == never()) return;
        timer_ = task_->loop()->call_at(when_, [this] { expire(); });
    }

    void expire() noexcept {
        state_ = state::expiring;
        task_->cancel();
    }

    time_point when_;
    detail::task_base* task_ = nullptr;
    std::size_t cancelling_ = 0;
    timer_handle timer_;
    state state_ = state::created;
};

namespace detail {

struct no_callable {};
struct direct_body {};
struct callable_body {};

// A body given to a timeout scope: F is the callable kept alive (or no_callable), Aw the
// awaitable (a coro, a task or future handle, shield(x)), Move whether its result is moved
// out. Entering happens in await_suspend, leaving in await_resume.
// The awaiter of an awaitable, taken from an rvalue (the result may be moved out) or from
// an lvalue (the result is referenced).
template <class Aw, bool Move>
struct awaiter_of {
    using type = decltype(std::declval<Aw&&>().operator co_await());
};
template <class Aw>
struct awaiter_of<Aw, false> {
    using type = decltype(std::declval<Aw&>().operator co_await());
};

template <class F, class Aw, bool Move>
class [[nodiscard]] scoped_awaiter {
    using inner_type = typename awaiter_of<Aw, Move>::type;
    using result = decltype(std::declval<inner_type&>().await_resume());

public:
    template <class B>
    scoped_awaiter(timeout_scope& scope, direct_body, B&& body)
        : scope_(scope), aw_(std::forward<B>(body)), inner_(awaiter()) {}

    template <class B>
    scoped_awaiter(timeout_scope& scope, callable_body, B&& fn)
        : scope_(scope), fn_(std::forward<B>(fn)), aw_(call(fn_, scope)), inner_(awaiter()) {}

    scoped_awaiter(const scoped_awaiter&) = delete;
    scoped_awaiter& operator=(const scoped_awaiter&) = delete;

    bool await_ready() const noexcept { return false; }

    bool await_suspend(std::coroutine_handle<> h) {
        scope_.enter();
        try {
            if (inner_.await_ready()) return false;
            using suspend_result = decltype(inner_.await_suspend(h));
            if constexpr (std::is_void_v<suspend_result>) {
                inner_.await_suspend(h);
                return true;
            } else {
                static_assert(std::is_same_v<suspend_result, bool>);
                return inner_.await_suspend(h);
            }
        } catch (...) {
            scope_.leave();
            throw;
        }
    }

    result await_resume() {
        try {
            if constexpr (std::is_void_v<result>) {
                inner_.await_resume();
                scope_.leave();
            } else {
                result r = inner_.await_resume();
                scope_.leave();
                return std::forward<result>(r);
            }
        } catch (const cancelled_error&) {
            if (scope_.leave()) throw timeout_error();
            throw;
        } catch (...) {
            scope_.leave();
            throw;
        }
    }

private:
    inner_type awaiter() {
        if constexpr (Move) {
            return std::move(aw_).operator co_await();
        } else {
            return aw_.operator co_await();
        }
    }

    static decltype(auto) call(F& fn, timeout_scope& scope) {
        if constexpr (std::is_invocable_v<F&, timeout_scope&>) {
            return fn(scope);
        } else {
            return fn();
        }
    }

    timeout_scope& scope_;
    [[no_unique_address]] F fn_;
    Aw aw_;
    inner_type inner_;
};

// How a body of type B (as forwarded) is held.
template <class B, class D = std::remove_cvref_t<B>>
struct body_traits {
    // A callable returning a coro.
    using fn_result =
        std::conditional_t<std::is_invocable_v<D&, timeout_scope&>,
                           std::invoke_result<D&, timeout_scope&>, std::invoke_result<D&>>;
    using made = typename fn_result::type;
    static_assert(is_coro_argument<made>,
                  "timeout: the body is a coro, a task, a future, shield(x), or a callable "
                  "returning a coro (called with the timeout_scope& if it takes one)");
    using type = scoped_awaiter<D, made, true>;
    using tag = callable_body;
};
template <class B, class T>
struct body_traits<B, coro<T>> {
    using type = scoped_awaiter<no_callable, coro<T>, true>;
    using tag = direct_body;
};
template <class B, class T>
struct body_traits<B, task<T>> {
    using type = scoped_awaiter<no_callable, task<T>, moves_result<B>>;
    using tag = direct_body;
};
template <class B, class T>
struct body_traits<B, future<T>> {
    using type = scoped_awaiter<no_callable, future<T>, moves_result<B>>;
    using tag = direct_body;
};
template <class B>
struct body_traits<B, any_task> {
    using type = scoped_awaiter<no_callable, any_task, false>;
    using tag = direct_body;
};
template <class B, class H, bool M>
struct body_traits<B, shielded<H, M>> {
    using type = scoped_awaiter<no_callable, shielded<H, M>, true>;
    using tag = direct_body;
};

// A body that is none of the above but can be awaited (a lock's acquire(), a queue's
// get()): a temporary is moved into the scope's coro, a named one awaited where it lies.
template <class D>
inline constexpr bool is_handle_body = is_coro_argument<D>;
template <class T>
inline constexpr bool is_handle_body<task<T>> = true;
template <class T>
inline constexpr bool is_handle_body<future<T>> = true;
template <>
inline constexpr bool is_handle_body<any_task> = true;
template <class H, bool M>
inline constexpr bool is_handle_body<shielded<H, M>> = true;

template <class B, class D = std::remove_cvref_t<B>>
concept in_place_body = !is_handle_body<D> && !std::is_invocable_v<D&> &&
                        !std::is_invocable_v<D&, timeout_scope&> && awaitable<B>;

// A task or future body of another loop is refused before the scope copies the handle (a
// copy counts a reference, which is that loop's thread's to count): only against a loop
// running here, like shield(x); the body's co_await checks it fully.
template <class B>
void check_body_loop(const B& body) {
    if constexpr (std::is_base_of_v<any_future, std::remove_cvref_t<B>>)
        check_not_other_loop(body, "timeout");
}

// What ioloop::timeout returns: the scope and its body, awaited once.
template <class Scoped>
class [[nodiscard]] timeout_awaiter {
public:
    template <class Tag, class B>
    timeout_awaiter(timeout_scope::time_point when, Tag tag, B&& body)
        : scope_(when), run_(scope_, tag, std::forward<B>(body)) {}

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) { return run_.await_suspend(h); }
    decltype(auto) await_resume() { return run_.await_resume(); }

private:
    timeout_scope scope_;
    Scoped run_;
};

}  // namespace detail

template <class Body>
auto timeout_scope::run(Body&& body) & {
    if constexpr (detail::in_place_body<Body>) {
        return run(detail::hold_awaitable(std::forward<Body>(body)));
    } else {
        detail::check_body_loop(body);
        using traits = detail::body_traits<Body&&>;
        return typename traits::type(*this, typename traits::tag{}, std::forward<Body>(body));
    }
}

// co_await timeout_at(when, body): body's result, or timeout_error once `when` passed.
template <class Body>
auto timeout_at(timeout_scope::time_point when, Body&& body) {
    if constexpr (detail::in_place_body<Body>) {
        return timeout_at(when, detail::hold_awaitable(std::forward<Body>(body)));
    } else {
        detail::check_body_loop(body);
        using traits = detail::body_traits<Body&&>;
        return detail::timeout_awaiter<typename traits::type>(when, typename traits::tag{},
                                                              std::forward<Body>(body));
    }
}

// co_await timeout(delay, body): body's result, or timeout_error after `delay`.
template <class Rep, class Period, class Body>
auto timeout(std::chrono::duration<Rep, Period> delay, Body&& body) {
    return timeout_at(detail::deadline_after(delay), std::forward<Body>(body));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/timeout.hpp
// begin file ioloop/coro/wait.hpp
// ioloop: wait and as_completed (asyncio.wait, asyncio.as_completed): watch a set of tasks
// or futures without taking their results.
//
//   auto [done, pending] = co_await ioloop::wait(std::move(tasks), ioloop::first_completed);
//   auto [done, pending] = co_await ioloop::wait(tasks, 5s);  // all_completed, at most 5 s
//
//   auto next = ioloop::as_completed(std::move(tasks), 10s);
//   while (!next.empty()) {
//       ioloop::task<int> t = co_await next.next();  // the next one done; timeout_error
//       use(t.result());                              // once the 10 s have passed
//   }
//
// The arguments are a vector of tasks, futures, any_task or any_future handles, or of coros
// (made tasks at once; asyncio 3.12 refuses coroutines in wait because their tasks would be
// lost, but here the result hands back the task handles). Neither cancels anything: on
// timeout wait returns what is done so far, and a cancel of the waiting task ends only the
// wait.
//
// wait returns wait_result{done, pending}, two vectors of the handles, each in argument
// order (asyncio returns two sets). When the condition already holds, wait returns without
// suspending (asyncio yields to the loop once first). An empty vector is an error, as in
// asyncio.
//
// as_completed returns an as_completed_set, a queue of the handles in the order they
// finish: co_await next() gives the next one done (already-done ones first, in argument
// order), size() says how many next() has left to give. It starts watching, and its
// timeout counts, from the call. Once the timeout passed, next() gives the handles that
// finished before it, then throws timeout_error for each one left (asyncio yields a
// TimeoutError for each). The set stays where it was made (its links point to it).
#ifndef IOLOOP_CORO_WAIT_HPP
#define IOLOOP_CORO_WAIT_HPP


#include <coroutine>
#include <cstddef>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// When wait returns (asyncio.FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class return_when : unsigned char {
    first_completed,  // as soon as any is done
    first_exception,  // as soon as any fails (a cancel does not count), or all are done
    all_completed,    // once all are done
};
using enum return_when;  // ioloop::first_completed, ...
// asyncio's own spelling, for code carried over from Python.
inline constexpr return_when FIRST_COMPLETED = return_when::first_completed;
inline constexpr return_when FIRST_EXCEPTION = return_when::first_exception;
inline constexpr return_when ALL_COMPLETED = return_when::all_completed;

template <class H>
struct wait_result {
    std::vector<H> done;
    std::vector<H> pending;
};

namespace detail {

// A timeout that may be absent (no <optional>).
struct maybe_timeout {
    std::chrono::steady_clock::duration delay{};
    bool set = false;

    template <class Rep, class Period>
    static maybe_timeout of(std::chrono::duration<Rep, Period> d) {
        // Saturated, as sleep does: a delay past the clock's range never comes.
        const std::chrono::steady_clock::duration delay = saturating_ceil(d);
        if (delay == std::chrono::steady_clock::duration::max()) return {};
        return {delay, true};
    }
};

template <class H>
class [[nodiscard]] wait_awaiter final : public wait_point {
public:
    using link = child_link<wait_awaiter>;

    wait_awaiter(std::vector<H>&& children, return_when when, maybe_timeout timeout)
        : children_(std::move(children)), timeout_(timeout), when_(when) {
        if (children_.empty()) throw error("wait: the set of tasks and futures is empty");
    }
    // Before it is awaited (into a wait_for, a race): no link is made yet.
    wait_awaiter(wait_awaiter&& o) noexcept
        : children_(std::move(o.children_)), timeout_(o.timeout_), when_(o.when_) {}
    wait_awaiter(const wait_awaiter&) = delete;
    wait_awaiter& operator=(const wait_awaiter&) = delete;
    ~wait_awaiter() { stop_watching(); }

    // The children were checked against the running loop where wait() took them.
    bool await_ready() const noexcept {
        std::size_t done = 0;
        for (const H& c : children_) {
            if (!c.done()) continue;
            if (when_ == first_completed || failed(c.state())) return true;
            ++done;
        }
        return done == children_.size();
    }

    void await_suspend(std::coroutine_handle<> h) {
        if (!links_.empty()) throw invalid_state_error("wait: a wait is awaited once");
        task_base& t = current_task_or_throw("wait");
        const std::size_t n = children_.size();
        links_ = std::vector<link>(n);
        for (std::size_t i = 0; i < n; ++i) {
            link& l = links_[i];
            l.owner = this;
            l.state = children_[i].state();
            if (l.state->done()) continue;
            l.state->add_link(&l);
            ++pending_;
        }
        task_ = &t;
        if (timeout_.set) timer_ = t.loop()->call_later(timeout_.delay, [this] { finish(); });
        t.suspend(h, this);
    }

    wait_result<H> await_resume() {
        stop_watching();
        if (task_) task_->throw_if_cancelled();
        wait_result<H> r;
        for (H& c : children_) (c.done() ? r.done : r.pending).push_back(std::move(c));
        return r;
    }

    // The waiting task was cancelled: only the wait ends.
    void on_cancel(task_base& t) noexcept override {
        stop_watching();
        t.wake();
    }

private:
    friend link;

    static bool failed(const future_base* s) noexcept {
        return s->state() == future_base::status::failed;
    }

    void child_done(link& l) noexcept {
        --pending_;
        if (pending_ == 0 || when_ == first_completed ||
            (when_ == first_exception && failed(l.state))) {
            finish();
        }
    }

    void finish() noexcept {
        stop_watching();
        task_->wake();
    }

    void stop_watching() noexcept {
        timer_.cancel();
        for (link& l : links_) l.unlink();
    }

    std::vector<H> children_;
    std::vector<link> links_;
    task_base* task_ = nullptr;
    timer_handle timer_;
    std::size_t pending_ = 0;
    maybe_timeout timeout_;
    return_when when_;
};

// What wait and as_completed take: a vector of children, taken over if it is an rvalue,
// copied if it is an lvalue. Not a parameter by value: the copy would be made before the
// function runs, and a copy counts a reference to each handle's state, which for a task
// or future of another loop is that loop's thread's to count. So every handle is checked
// here, first, and nowhere else: wait and as_completed are made where they are awaited.
template <class V>
inline constexpr bool is_vector = false;
template <class A>
inline constexpr bool is_vector<std::vector<A>> = true;

template <class V>
using vector_element = typename std::remove_cvref_t<V>::value_type;

template <class V>
concept child_vector = is_vector<std::remove_cvref_t<V>> && child_awaitable<vector_element<V>>;

template <class V>
using vector_child_handle = child_handle<vector_element<V>>;

template <class V>
std::vector<vector_child_handle<V>> take_children(V&& aws, const char* what) {
    using A = vector_element<V>;
    if constexpr (is_coro_argument<A>) {
        static_assert(!std::is_lvalue_reference_v<V>,
                      "a vector of coros is consumed: pass std::move(v)");
        return handles_of(std::move(aws));  // tasks of the running loop
    } else if constexpr (std::is_lvalue_reference_v<V>) {
        return checked_copy(aws, what);
    } else {
        for (const A& h : aws) check_running_loop(h, what);
        return std::move(aws);
    }
}

}  // namespace detail

// co_await wait(aws, when) -> wait_result{done, pending}.
template <class V>
requires detail::child_vector<V>
auto wait(V&& aws, return_when when = all_completed) {
    using H = detail::vector_child_handle<V>;
    return detail::wait_awaiter<H>(detail::take_children(std::forward<V>(aws), "wait"), when, {});
}

// co_await wait(aws, timeout, when): returns when `when` holds or the timeout passed,
// whichever comes first; nothing is cancelled.
template <class V, class Rep, class Period>
requires detail::child_vector<V>
auto wait(V&& aws, std::chrono::duration<Rep, Period> timeout, return_when when = all_completed) {
    using H = detail::vector_child_handle<V>;
    return detail::wait_awaiter<H>(detail::take_children(std::forward<V>(aws), "wait"), when,
                                   detail::maybe_timeout::of(timeout));
}

// What as_completed returns: the handles, handed out in the order they finish.
template <class H>
class [[nodiscard]] as_completed_set {
    using link = detail::child_link<as_completed_set>;

public:
    class next_awaiter;

    as_completed_set(std::vector<H>&& children, detail::maybe_timeout timeout)
        : children_(std::move(children)), left_(children_.size()) {
        const std::size_t n = children_.size();
        links_ = std::vector<link>(n);
        order_.reserve(n);  // child_done appends without allocating
        // The children were checked against the running loop where as_completed took them.
        for (std::size_t i = 0; i < n; ++i) {
            link& l = links_[i];
            l.owner = this;
            l.state = children_[i].state();
            if (l.state->done()) {
                order_.push_back(i);
            } else {
                l.state->add_link(&l);
            }
        }
        if (timeout.set && order_.size() < n) {
            timer_ = detail::loop_access::running_or_throw("as_completed")
                         .call_later(timeout.delay, [this] { expire(); });
        }
    }
    as_completed_set(const as_completed_set&) = delete;
    as_completed_set& operator=(const as_completed_set&) = delete;
    ~as_completed_set() {
        timer_.cancel();
        for (link& l : links_) l.unlink();
    }

    // How many more times next() gives a handle or throws timeout_error.
    std::size_t size() const noexcept { return left_; }
    bool empty() const noexcept { return left_ == 0; }

    // co_await next(): the next handle done. One task at a time may wait in next().
    next_awaiter next() noexcept { return next_awaiter(*this); }

    // A range of size() awaitables, each the next handle done (asyncio's plain `for f in
    // as_completed(fs): await f`):
    //   for (auto next : ioloop::as_completed(std::move(tasks))) {
    //       ioloop::task<int> t = co_await next;
    //   }
    class iterator {
    public:
        next_awaiter operator*() const noexcept { return set_->next(); }
        iterator& operator++() noexcept {
            ++at_;
            return *this;
        }
        bool operator==(const iterator& other) const noexcept { return at_ == other.at_; }

    private:
        friend as_completed_set;
        iterator(as_completed_set* s, std::size_t at) noexcept : set_(s), at_(at) {}
        as_completed_set* set_;
        std::size_t at_;
    };
    iterator begin() noexcept { return iterator(this, 0); }
    iterator end() noexcept { return iterator(this, left_); }  // as many as are left

    class next_awaiter final : public detail::wait_point {
    public:
        explicit next_awaiter(as_completed_set& s) noexcept : set_(s) {}
        // Before it is awaited (into a wait_for, a race): the set does not know it yet.
        next_awaiter(next_awaiter&& o) noexcept : set_(o.set_) {}
        next_awaiter(const next_awaiter&) = delete;
        next_awaiter& operator=(const next_awaiter&) = delete;
        ~next_awaiter() {
            if (set_.waiter_ == this) set_.waiter_ = nullptr;
        }

        bool await_ready() const noexcept { return set_.ready(); }

        void await_suspend(std::coroutine_handle<> h) {
            if (set_.waiter_)
                throw invalid_state_error("as_completed: another task waits in next()");
            task_ = &detail::current_task_or_throw("as_completed");
            set_.waiter_ = this;
            task_->suspend(h, this);
        }

        H await_resume() {
            if (task_) task_->throw_if_cancelled();
            return set_.take();
        }

        // Only the wait ends: the children are not cancelled.
        void on_cancel(detail::task_base& t) noexcept override {
            set_.waiter_ = nullptr;
            t.wake();
        }

    private:
        friend as_completed_set;
        as_completed_set& set_;
        detail::task_base* task_ = nullptr;
    };

private:
    friend link;

    bool ready() const noexcept { return read_ < order_.size() || timed_out_ || left_ == 0; }

    H take() {
        if (left_ == 0)
            throw invalid_state_error("as_completed: every awaitable was given already");
        --left_;
        if (read_ < order_.size()) return std::move(children_[order_[read_++]]);
        throw timeout_error();  // ready() held: the timeout passed
    }

    void child_done(link& l) noexcept {
        order_.push_back(static_cast<std::size_t>(&l - links_.data()));
        if (order_.size() == children_.size()) timer_.cancel();
        wake_waiter();
    }

    // The timeout passed: what finished so far is still handed out, then timeout_error.
    void expire() noexcept {
        timed_out_ = true;
        for (link& l : links_) l.unlink();
        wake_waiter();
    }

    void wake_waiter() noexcept {
        if (next_awaiter* w = std::exchange(waiter_, nullptr)) w->task_->wake();
    }

    std::vector<H> children_;
    std::vector<link> links_;
    std::vector<std::size_t> order_;  // indexes of the children, in the order they finished
    std::size_t read_ = 0;            // order_[read_] is the next to hand out
    std::size_t left_;
    next_awaiter* waiter_ = nullptr;
    timer_handle timer_;
    bool timed_out_ = false;
};

// as_completed(aws) -> as_completed_set: co_await its next() for each handle in the order
// they finish.
template <class V>
requires detail::child_vector<V> as_completed_set<detail::vector_child_handle<V>> as_completed(
    V&& aws) {
    return as_completed_set<detail::vector_child_handle<V>>(
        detail::take_children(std::forward<V>(aws), "as_completed"), {});
}

// as_completed(aws, timeout): next() throws timeout_error once the timeout (counted from
// this call) passed and the handles that finished before it were handed out.
template <class V, class Rep, class Period>
requires detail::child_vector<V> as_completed_set<detail::vector_child_handle<V>> as_completed(
    V&& aws, std::chrono::duration<Rep, Period> timeout) {
    return as_completed_set<detail::vector_child_handle<V>>(
        detail::take_children(std::forward<V>(aws), "as_completed"),
        detail::maybe_timeout::of(timeout));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/wait.hpp
// begin file ioloop/coro/wait_for.hpp
// ioloop: wait_for (asyncio.wait_for, Python 3.12 semantics): await work with a time limit.
//
//   int n = co_await ioloop::wait_for(fetch(url), 5s);  // or a task, a future, shield(t)
//
// On timeout the work is cancelled and waited for, so that its cleanup has run when
// timeout_error comes out; if the awaiting task is cancelled, the work is cancelled too and
// cancelled_error comes out. As in CPython 3.12, wait_for is a timeout scope around one
// await: a coro runs inline in the current task (no task is made for it), a task or future
// is awaited (a cancel of the waiting task is passed on to it), and shield(t) lets the
// timeout end only the wait.
//
// A timeout of zero or less does not let the work start: a task or future already done
// gives its result; otherwise it is cancelled, waited for, and unless it caught the
// cancellation and finished anyway, timeout_error comes out. A coro is then made a task
// and cancelled before its first step: it never runs. shield(t) with t not done times out
// at once.
//
// wait_for returns a coro (one frame per call), like CPython's coroutine function.
#ifndef IOLOOP_CORO_WAIT_FOR_HPP
#define IOLOOP_CORO_WAIT_FOR_HPP


#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What wait_for accepts, held by value in its frame, and the result type it gives.
template <class A>
struct wait_for_arg {
    static constexpr bool valid = false;
};
template <class T>
struct wait_for_arg<coro<T>> {
    static constexpr bool valid = true;
    using value_type = T;
};
template <class T>
struct wait_for_arg<task<T>> {
    static constexpr bool valid = true;
    using value_type = T;
};
template <class T>
struct wait_for_arg<future<T>> {
    static constexpr bool valid = true;
    using value_type = T;
};
template <class H, bool M>
struct wait_for_arg<shielded<H, M>> {
    static constexpr bool valid = true;
    using value_type = typename wait_for_arg<H>::value_type;
};
template <>
struct wait_for_arg<any_task> {
    static constexpr bool valid = true;
    using value_type = void;
};

template <class A>
inline constexpr bool is_shielded = false;
template <class H, bool M>
inline constexpr bool is_shielded<shielded<H, M>> = true;

// A done handle's result (its exception or cancelled_error if it has none).
template <class T, bool Move, class H>
T result_of_done(H& h) {
    if constexpr (std::is_void_v<T>) {
        h.state()->rethrow_if_not_finished("wait_for");
    } else {
        return take_result<Move>(h);
    }
}

// The task or future a wait_for argument that is not a coro holds: itself, or a shield's.
template <class Held>
const auto& handle_of(const Held& held) noexcept {
    if constexpr (is_shielded<Held>) {
        return held.inner();
    } else {
        return held;
    }
}

// Timeout of zero or less (CPython's wait_for before its timeout scope).
template <class T, bool Move, class Held>
coro<T> wait_for_now(Held held) {
    if constexpr (is_coro_argument<Held>) {
        co_return co_await wait_for_now<T, true>(create_task(std::move(held)));
    } else if constexpr (is_shielded<Held>) {
        // Cancelling the shield's outer wait does not touch the work: unless it is done,
        // the wait times out.
        if (!held.inner().done()) throw timeout_error();
        co_return co_await std::move(held);
    } else {
        if (!held.done()) {
            held.cancel();
            // Waits for the cancelled work to finish; our own cancellation ends the wait.
            co_await shield_awaiter<Held, false, true>(held);
            if (held.cancelled()) throw timeout_error();
        }
        co_return result_of_done<T, Move>(held);
    }
}

template <class T, bool Move, class Held, class Rep, class Period>
coro<T> wait_for_impl(Held held, std::chrono::duration<Rep, Period> timeout) {
    // Before either path reads it (the one for a timeout of zero cancels it at once).
    if constexpr (!is_coro_argument<Held>) check_running_loop(handle_of(held), "wait_for");
    if (timeout <= timeout.zero()) co_return co_await wait_for_now<T, Move>(std::move(held));
    timeout_scope scope(timeout);  // counted from the await, as CPython's coroutine does
    if constexpr (Move) {
        co_return co_await scope.run(std::move(held));
    } else {
        co_return co_await scope.run(held);
    }
}

}  // namespace detail

// co_await wait_for(aw, timeout): aw's result, or timeout_error once aw was cancelled
// because the timeout passed. aw: a coro, a task, a future, or shield(x).
template <class A, class Rep, class Period>
requires detail::wait_for_arg<std::remove_cvref_t<A>>::valid auto wait_for(
    A&& aw, std::chrono::duration<Rep, Period> timeout) {
    using held = std::remove_cvref_t<A>;
    using T = typename detail::wait_for_arg<held>::value_type;
    static_assert(!detail::is_coro_argument<held> || !std::is_lvalue_reference_v<A>,
                  "wait_for: a coro runs once: pass std::move(c), or the call f() itself");
    constexpr bool move =
        detail::is_coro_argument<held> || detail::is_shielded<held> || detail::moves_result<A&&>;
    // A handle copied into the frame is checked first (a copy counts a reference), yet only
    // against a loop running here: wait_for returns a coro, which may be made outside any
    // loop (loop.run_until_complete(wait_for(t, 1s))). The await checks it again.
    if constexpr (std::is_lvalue_reference_v<A> && !detail::is_coro_argument<held>)
        detail::check_not_other_loop(detail::handle_of(aw), "wait_for");
    return detail::wait_for_impl<T, move>(held(std::forward<A>(aw)), timeout);
}

// Any other awaitable (a lock's acquire(), a queue's get(), a stream's readline()): a
// temporary is moved into the wait_for, which may then be kept and awaited later; a named
// one is awaited where it lies, and must outlive the wait_for.
template <class A, class Rep, class Period>
requires(!detail::wait_for_arg<std::remove_cvref_t<A>>::valid &&
         detail::awaitable<A>) auto wait_for(A&& aw, std::chrono::duration<Rep, Period> timeout) {
    return wait_for(detail::hold_awaitable(std::forward<A>(aw)), timeout);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/coro/wait_for.hpp
// begin file ioloop/fs/file.hpp
// ioloop: open_file and ioloop::file, what aiofiles gives asyncio: a file whose every
// blocking call (open, read, write, seek, truncate, close) runs on the loop's default
// executor, so the loop never waits for a disk. Bytes in, bytes out: no newline
// translation, no text encoding.
//
// The rules:
// - One operation at a time: operations on one file are served in the order they were
//   awaited (a FIFO lock, as asyncio.Lock), never at once. Two tasks may share a file;
//   each operation sees the file as the previous one left it.
// - Cancelling an operation is run_in_executor's rule: the task sees cancelled_error at
//   once, and the system call already running on the pool finishes. Its effect stays and
//   nothing is lost: a cancelled read's bytes go to the file's read buffer (the next read
//   returns them, and tell() is as if the cancelled read had not been made); a cancelled
//   write, seek or truncate has happened. The next operation waits for that call to end.
//   An operation cancelled while it waits for its turn does nothing.
// - Reads are buffered (buffer_size, 64 KiB a hop): readline finds its line in the buffer
//   and goes to the pool only to refill it; read(n), readline and tell agree on one
//   position. Writes are not buffered: write() returns once the system has the bytes, so
//   flush() has nothing to push (it waits for the operations before it). Neither syncs
//   to the disk (no fsync), as Python's flush does not.
// - A file destroyed while open closes its descriptor where the last reference goes: on
//   the loop's thread if no operation runs (one close(2), which on a local file system does
//   not wait for the disk), else on the pool thread that finishes the operation. co_await
//   close() runs it on the pool and reports its error (NFS reports write errors there).
#ifndef IOLOOP_FS_FILE_HPP
#define IOLOOP_FS_FILE_HPP

// begin file ioloop/detail/file_io.hpp
// ioloop: the blocking calls behind ioloop::file, read_file and write_file, under one set
// of names per platform: open(2) / read(2) / write(2) / lseek(2) / ftruncate(2) on POSIX,
// CreateFileW / ReadFile / WriteFile / SetFilePointerEx / SetEndOfFile on Windows. They
// run on the executor's threads, never on the loop's; each reports failure as the
// std::error_code it returns (empty on success), which fs/ turns into an exception naming
// the operation and the path.
#ifndef IOLOOP_DETAIL_FILE_IO_HPP
#define IOLOOP_DETAIL_FILE_IO_HPP

// begin file ioloop/detail/pipe_io.hpp
// ioloop: how a descriptor that is not a socket moves its bytes (POSIX): read(), and a
// write() that never raises SIGPIPE. A socket's send says MSG_NOSIGNAL; write() has no such
// flag, and a pipe whose reader is gone would kill a process that keeps SIGPIPE at its
// default disposition, as most programs do. So each write blocks SIGPIPE in this thread
// around the call, and takes back the SIGPIPE its own EPIPE generated.
//
// What it costs: two rt_sigprocmask calls per write (strace -c of 2.1 million guarded
// writes counts 4.2 million), measured at 0.44 us the pair on the Linux 6.18 VM this was
// written on, where a 16-byte write plus its read takes 0.74 us: 16-byte writes 0.74 ->
// 1.16 us, 64 KiB writes 11.9 -> 12.2 us (3%). sigpending and sigtimedwait run only where
// they are needed (SIGPIPE blocked already; a write that failed with EPIPE). Sockets do
// not pay it: their sends say MSG_NOSIGNAL.
#ifndef IOLOOP_DETAIL_PIPE_IO_HPP
#define IOLOOP_DETAIL_PIPE_IO_HPP


#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <ctime>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// call() (a system call returning -1 and errno on failure) with no SIGPIPE reaching the
// process, and the thread's signal mask as it was after: a write to a pipe, sendfile(2) to
// a socket (which has no MSG_NOSIGNAL).
template <class Call>
std::ptrdiff_t call_without_sigpipe(Call&& call) noexcept {
    sigset_t pipe_only;
    sigset_t before;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
    const bool was_blocked = sigismember(&before, SIGPIPE) == 1;
    // A SIGPIPE pending before our write is someone else's, and must stay pending. One can
    // be pending only if this thread blocked it already: an unblocked one would have been
    // delivered. So only then is it worth a system call to look.
    bool was_pending = false;
    if (was_blocked) {
        sigset_t pending;
        was_pending = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    }
    const std::ptrdiff_t n = call();
    const int err = errno;
    if (n == -1 && err == EPIPE && !was_pending) {
        // Our write generated it, directed at this thread, where it is blocked: take it.
        const timespec now{0, 0};
        while (::sigtimedwait(&pipe_only, nullptr, &now) == -1 && errno == EINTR) {
        }
    }
    if (!was_blocked) ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    errno = err;
    return n;
}

// One write(): the bytes written, or -1 (errno says why: EPIPE once the reader is gone).
inline std::ptrdiff_t write_without_sigpipe(int fd, const char* data, std::size_t size) noexcept {
    return call_without_sigpipe([&]() noexcept { return ::write(fd, data, size); });
}

// One read(): the bytes read, 0 at EOF, or -1 (errno says why). A pseudo-terminal's master
// reads EIO once its slave side is closed (Linux): that is the device's end of file.
inline std::ptrdiff_t read_descriptor(int fd, char* data, std::size_t size) noexcept {
    const ::ssize_t n = ::read(fd, data, size);
    if (n == -1 && errno == EIO) return 0;
    return n;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
// end file ioloop/detail/pipe_io.hpp

#include <cstddef>
#include <string>
#include <system_error>

#if defined(IOLOOP_POSIX)
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/sendfile.h>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What an open mode asks of the system (fs/open_mode.hpp parses "r", "w+", "ab", ...).
struct file_access {
    bool read = false;
    bool write = false;
    bool append = false;     // every write goes to the end of the file
    bool create = false;     // a missing file is created
    bool truncate = false;   // an existing file is emptied
    bool exclusive = false;  // an existing file is an error (EEXIST)
};

// One system call moves at most this much: ReadFile and WriteFile take a 32-bit size, and
// Linux's read(2) stops at 0x7ffff000 bytes anyway.
inline constexpr std::size_t file_io_chunk = std::size_t{1} << 30;

#if defined(IOLOOP_POSIX)

using native_file = int;
inline constexpr native_file no_file() noexcept { return -1; }

inline std::error_code errno_code() noexcept { return {errno, std::generic_category()}; }

// A directory is refused here, as Python's open() refuses it (IsADirectoryError): open(2)
// of a directory for reading succeeds and only the first read(2) would fail.
inline std::error_code open_native_file(const std::string& path, const file_access& a,
                                        native_file& out) noexcept {
    int flags = O_CLOEXEC;
    if (a.read && a.write) {
        flags |= O_RDWR;
    } else {
        flags |= a.write ? O_WRONLY : O_RDONLY;
    }
    if (a.append) flags |= O_APPEND;
    if (a.create) flags |= O_CREAT;
    if (a.truncate) flags |= O_TRUNC;
    if (a.exclusive) flags |= O_EXCL;
    int fd;
    do {
        fd = ::open(path.c_str(), flags, 0666);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1) return errno_code();
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        ::close(fd);
        return std::make_error_code(std::errc::is_a_directory);
    }
    out = fd;
    return {};
}

// One read(2) of at most `size` bytes; `got` is 0 at the end of the file.
inline std::error_code read_native_file(native_file fd, char* data, std::size_t size,
                                        std::size_t& got) noexcept {
    if (size > file_io_chunk) size = file_io_chunk;
    ::ssize_t n;
    do {
        n = ::read(fd, data, size);
    } while (n == -1 && errno == EINTR);
    if (n == -1) return errno_code();
    got = static_cast<std::size_t>(n);
    return {};
}

// Writes all of it (a regular file takes it in one call; a full disk ends it with ENOSPC).
// `written` counts what the system took, also when it fails part way. O_APPEND already
// sends every write to the end: `append` matters on Windows only.
inline std::error_code write_native_file(native_file fd, const char* data, std::size_t size,
                                         bool /*append*/, std::size_t& written) noexcept {
    written = 0;
    while (written < size) {
        std::size_t part = size - written;
        if (part > file_io_chunk) part = file_io_chunk;
        const ::ssize_t n = ::write(fd, data + written, part);
        if (n == -1) {
            if (errno == EINTR) continue;
            return errno_code();
        }
        written += static_cast<std::size_t>(n);
    }
    return {};
}

// lseek(2); whence is 0, 1 or 2 (SEEK_SET, SEEK_CUR, SEEK_END everywhere).
inline std::error_code seek_native_file(native_file fd, long long offset, int whence,
                                        long long& position) noexcept {
    const int how = whence == 0 ? SEEK_SET : whence == 1 ? SEEK_CUR : SEEK_END;
    const ::off_t at = ::lseek(fd, static_cast<::off_t>(offset), how);
    if (at == static_cast<::off_t>(-1)) return errno_code();
    position = static_cast<long long>(at);
    return {};
}

// The file's size becomes `size`; the position does not move.
inline std::error_code truncate_native_file(native_file fd, long long size) noexcept {
    int r;
    do {
        r = ::ftruncate(fd, static_cast<::off_t>(size));
    } while (r == -1 && errno == EINTR);
    return r == -1 ? errno_code() : std::error_code{};
}

// The file's size, or -1 if the system does not know it (a pipe, /proc): a hint for
// reading to the end in one allocation.
inline long long native_file_size(native_file fd) noexcept {
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    return static_cast<long long>(st.st_size);
}

// close(2) is not retried on EINTR: Linux has released the descriptor by then.
inline std::error_code close_native_file(native_file fd) noexcept {
    return ::close(fd) == -1 && errno != EINTR ? errno_code() : std::error_code{};
}

// sendfile(2): the kernel copies a file to a socket. Linux only here (the BSDs' and macOS's
// sendfile have other signatures and rules: loop.sendfile falls back there).
#if defined(__linux__)
inline constexpr bool native_sendfile_available = true;
// Up to count bytes of `in` from `offset` (advanced by what went) to the socket: the
// count, 0 at the end of the file, or -1 (errno says why: EPIPE, never a SIGPIPE, once the
// socket cannot send). The file's position is not used.
inline std::ptrdiff_t send_file_part(native_socket out, native_file in, long long& offset,
                                     std::size_t count) noexcept {
    off_t at = static_cast<off_t>(offset);
    const std::ptrdiff_t n =
        call_without_sigpipe([&]() noexcept { return ::sendfile(out, in, &at, count); });
    offset = static_cast<long long>(at);
    return n;
}
#else
inline constexpr bool native_sendfile_available = false;
inline std::ptrdiff_t send_file_part(native_socket, native_file, long long&,
                                     std::size_t) noexcept {
    errno = ENOSYS;
    return -1;
}
#endif

#elif defined(IOLOOP_WINDOWS)

using native_file = HANDLE;
inline native_file no_file() noexcept { return INVALID_HANDLE_VALUE; }

inline std::error_code last_error_code() noexcept { return system_error_code(::GetLastError()); }

// A UTF-8 path as the wide string CreateFileW takes; false if it is not UTF-8.
inline bool utf8_to_wide(const std::string& text, std::wstring& out) {
    if (text.empty()) {
        out.clear();
        return true;
    }
    const int size = static_cast<int>(text.size());
    const int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(), size,
                                        nullptr, 0);
    if (n <= 0) return false;
    out.assign(static_cast<std::size_t>(n), L'\0');
    return ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(), size, out.data(),
                                 n) == n;
}

// Shared as fopen's files are (read and write), and for deletion too, so that a file held
// open can be renamed or removed by another program, as on POSIX (a log rotator does).
// A directory fails with ERROR_ACCESS_DENIED; it is reported as EISDIR, as on POSIX.
inline std::error_code open_native_file(const std::string& path, const file_access& a,
                                        native_file& out) noexcept {
    std::wstring wide;
    try {
        if (!utf8_to_wide(path, wide)) return std::make_error_code(std::errc::invalid_argument);
    } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
    DWORD access = 0;
    if (a.read) access |= GENERIC_READ;
    if (a.write) access |= GENERIC_WRITE;
    DWORD disposition = OPEN_EXISTING;
    if (a.exclusive) {
        disposition = CREATE_NEW;
    } else if (a.create && a.truncate) {
        disposition = CREATE_ALWAYS;
    } else if (a.create) {
        disposition = OPEN_ALWAYS;
    } else if (a.truncate) {
        disposition = TRUNCATE_EXISTING;
    }
    const HANDLE h = ::CreateFileW(wide.c_str(), access,
                                   FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                   nullptr, disposition, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) {
        const DWORD err = ::GetLastError();
        const DWORD attributes = ::GetFileAttributesW(wide.c_str());
        if (err == ERROR_ACCESS_DENIED && attributes != INVALID_FILE_ATTRIBUTES &&
            (attributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
            return std::make_error_code(std::errc::is_a_directory);
        }
        return system_error_code(err);
    }
    out = h;
    return {};
}

inline std::error_code read_native_file(native_file h, char* data, std::size_t size,
                                        std::size_t& got) noexcept {
    if (size > file_io_chunk) size = file_io_chunk;
    DWORD n = 0;
    if (!::ReadFile(h, data, static_cast<DWORD>(size), &n, nullptr)) {
        const DWORD err = ::GetLastError();
        if (err != ERROR_HANDLE_EOF && err != ERROR_BROKEN_PIPE) return system_error_code(err);
        n = 0;
    }
    got = n;
    return {};
}

// A handle has no O_APPEND (FILE_APPEND_DATA alone would refuse "a+"'s reads of what
// follows a seek): an appending write moves to the end first.
inline std::error_code write_native_file(native_file h, const char* data, std::size_t size,
                                         bool append, std::size_t& written) noexcept {
    written = 0;
    if (append) {
        LARGE_INTEGER zero;
        zero.QuadPart = 0;
        if (!::SetFilePointerEx(h, zero, nullptr, FILE_END)) return last_error_code();
    }
    while (written < size) {
        std::size_t part = size - written;
        if (part > file_io_chunk) part = file_io_chunk;
        DWORD n = 0;
        if (!::WriteFile(h, data + written, static_cast<DWORD>(part), &n, nullptr)) {
            return last_error_code();
        }
        written += n;
    }
    return {};
}

// FILE_BEGIN, FILE_CURRENT and FILE_END are 0, 1 and 2, as SEEK_SET, SEEK_CUR, SEEK_END.
inline std::error_code seek_native_file(native_file h, long long offset, int whence,
                                        long long& position) noexcept {
    LARGE_INTEGER distance;
    distance.QuadPart = offset;
    LARGE_INTEGER at;
    if (!::SetFilePointerEx(h, distance, &at, static_cast<DWORD>(whence))) {
        return last_error_code();
    }
    position = at.QuadPart;
    return {};
}

// SetEndOfFile cuts (or extends) at the position: moved there and back.
inline std::error_code truncate_native_file(native_file h, long long size) noexcept {
    long long was = 0;
    if (std::error_code ec = seek_native_file(h, 0, 1, was)) return ec;
    long long at = 0;
    if (std::error_code ec = seek_native_file(h, size, 0, at)) return ec;
    std::error_code ec;
    if (!::SetEndOfFile(h)) ec = last_error_code();
    (void)seek_native_file(h, was, 0, at);
    return ec;
}

inline long long native_file_size(native_file h) noexcept {
    LARGE_INTEGER size;
    if (::GetFileType(h) != FILE_TYPE_DISK || !::GetFileSizeEx(h, &size)) return -1;
    return size.QuadPart;
}

inline std::error_code close_native_file(native_file h) noexcept {
    return ::CloseHandle(h) ? std::error_code{} : last_error_code();
}

// No sendfile here (TransmitFile is not used: loop.sendfile falls back to reads and writes).
inline constexpr bool native_sendfile_available = false;
inline std::ptrdiff_t send_file_part(native_socket, native_file, long long&,
                                     std::size_t) noexcept {
    return -1;
}

#endif

// Reads from the position to the end of the file, appended to `out` (what it holds stays
// in front), with one allocation when the size is known.
inline std::error_code read_native_file_to_end(native_file f, std::string& out) {
    long long size = native_file_size(f);
    long long at = 0;
    if (size >= 0 && !seek_native_file(f, 0, 1, at)) {
        size = size > at ? size - at : 0;
    } else {
        size = -1;
    }
    // One byte more than the size: the read that returns 0 proves the end without a
    // second allocation (a file that grew meanwhile grows the string).
    std::size_t length = out.size();
    out.resize(length + (size >= 0 ? static_cast<std::size_t>(size) + 1 : std::size_t{64} << 10));
    for (;;) {
        if (length == out.size()) out.resize(out.size() * 2);
        std::size_t got = 0;
        if (std::error_code ec = read_native_file(f, out.data() + length, out.size() - length, got)) {
            out.resize(length);
            return ec;
        }
        if (got == 0) break;
        length += got;
    }
    out.resize(length);
    return {};
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/file_io.hpp
// begin file ioloop/fs/open_mode.hpp
// ioloop: open_file's mode string, as fopen and Python's open() spell it: one of "r", "w",
// "a", "x", then "+" for reading and writing both; "b" may appear anywhere and means
// nothing (files are bytes: no newline translation, on Windows either). Each letter at
// most once; anything else is std::invalid_argument, thrown at the call.
#ifndef IOLOOP_FS_OPEN_MODE_HPP
#define IOLOOP_FS_OPEN_MODE_HPP


#include <stdexcept>
#include <string_view>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

inline file_access parse_open_mode(std::string_view mode) {
    file_access a;
    char kind = 0;
    bool plus = false;
    bool binary = false;
    bool valid = true;
    for (const char c : mode) {
        if (c == 'r' || c == 'w' || c == 'a' || c == 'x') {
            valid = valid && kind == 0;
            kind = c;
        } else if (c == '+') {
            valid = valid && !plus;
            plus = true;
        } else if (c == 'b') {
            valid = valid && !binary;
            binary = true;
        } else {
            valid = false;
        }
    }
    if (!valid || kind == 0) {
        throw std::invalid_argument(concat(
            {"open_file: invalid mode \"", mode,
             "\" (one of r, w, a, x, each with an optional + and b, as fopen's)"}));
    }
    a.read = kind == 'r' || plus;
    a.write = kind != 'r' || plus;
    a.append = kind == 'a';
    a.create = kind != 'r';
    a.truncate = kind == 'w';
    a.exclusive = kind == 'x';
    return a;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/fs/open_mode.hpp

#include <coroutine>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

// seek's whence, as os.SEEK_SET, SEEK_CUR and SEEK_END.
inline constexpr int seek_set = 0;
inline constexpr int seek_cur = 1;
inline constexpr int seek_end = 2;

class file;

namespace detail {

// `what "path": reason`, e.g. `open_file "/nonexistent/x": No such file or directory`.
[[noreturn]] inline void throw_file_error(std::error_code ec, std::string_view what,
                                          std::string_view path) {
    throw std::system_error(ec, concat({what, " \"", path, "\""}));
}

enum class file_job_kind : unsigned char { read, read_to_end, write, seek, truncate, close };

class file_job_wait;

// What an open file is, shared by the ioloop::file, the operations under way (their
// coroutines) and the job on the pool, each with a reference: whoever lets go last closes
// the descriptor. Everything is the loop thread's, except the job's fields while `pending`:
// set by the loop before the job is submitted, then the worker's until it hands the job
// back (the executor's queue and call_soon_threadsafe order the two sides).
class file_core {
public:
    // One refill of the read buffer. Python's io.DEFAULT_BUFFER_SIZE is 8 KiB (128 KiB
    // since 3.14); a hop to the pool costs some microseconds, so a refill takes enough to
    // make a hop per 64 KiB of lines, the stream reader's limit.
    static constexpr std::size_t buffer_size = std::size_t{64} << 10;

    file_core(loop_base& l, std::string p, native_file h, const file_access& a,
              long long position)
        : loop(&l),
          path(std::move(p)),
          handle(h),
          readable(a.read),
          writable(a.write),
          append(a.append),
          os_position(position) {}
    file_core(const file_core&) = delete;
    file_core& operator=(const file_core&) = delete;
    ~file_core() {
        if (handle != no_file()) (void)close_native_file(handle);
    }

    void add_ref() noexcept { refs_.fetch_add(1, memory_order::relaxed); }
    void release() noexcept {
        if (refs_.fetch_sub(1, memory_order::acq_rel) == 1) delete this;
    }

    // The read buffer: bytes read from the system that no read returned yet.
    std::size_t buffered() const noexcept { return buffer.size() - consumed; }
    // Where the next read starts (tell()): the system's position less what is buffered.
    long long position() const noexcept {
        return os_position - static_cast<long long>(buffered());
    }
    // The first n buffered bytes, taken out (the whole buffer is moved, not copied).
    std::string take(std::size_t n) {
        if (consumed == 0 && n == buffer.size()) return std::exchange(buffer, std::string());
        std::string part = buffer.substr(consumed, n);
        consumed += n;
        if (consumed == buffer.size()) drop_buffer();
        return part;
    }
    void drop_buffer() noexcept {
        buffer.clear();
        consumed = 0;
    }
    // For an operation that moves the position (write, seek, truncate): the buffer is
    // dropped, and its job first moves the system's position back over it (`rewind`), so
    // that the file's position is where the reading stopped.
    void unread_buffer() noexcept {
        rewind = static_cast<long long>(buffered());
        drop_buffer();
    }

    // The checks each operation makes when its turn comes.
    void check_open(const char* what) const {
        if (closed) {
            throw invalid_state_error(
                concat({what, ": I/O operation on closed file \"", path, "\""}));
        }
    }
    void check_readable(const char* what) const {
        check_open(what);
        if (!readable) {
            throw invalid_state_error(concat({what, ": \"", path, "\" is not open for reading"}));
        }
    }
    void check_writable(const char* what) const {
        check_open(what);
        if (!writable) {
            throw invalid_state_error(concat({what, ": \"", path, "\" is not open for writing"}));
        }
    }
    void throw_if_failed(const char* what) const {
        if (error) throw_file_error(error, what, path);
    }

    // Sends the job (its fields set) to the loop's executor.
    void start(file_job_kind k);

    // The job, on a pool thread.
    void run_job() noexcept;
    // The job's end, on the loop's thread: its effect is applied whether or not the
    // operation that started it still waits, then it is woken, or, cancelled, the next
    // operation may go.
    void complete() noexcept;

    loop_base* loop;
    const std::string path;
    native_file handle;
    const bool readable;
    const bool writable;
    const bool append;
    bool closed = false;

    lock turn;  // one operation at a time, first come first served

    std::string buffer;
    std::size_t consumed = 0;  // buffer[0, consumed) is returned already
    long long os_position;     // the system's position, as the last job left it

    // The job in flight (at most one: its operation holds the turn).
    file_job_kind kind = file_job_kind::read;
    bool pending = false;   // submitted, not yet completed on the loop
    bool orphaned = false;  // its operation is gone (cancelled): complete() passes the turn
    file_job_wait* waiter = nullptr;
    std::size_t want = 0;       // read: at most this many bytes
    long long offset = 0;       // seek: the offset; truncate: the size
    int whence = 0;             // seek
    long long rewind = 0;       // bytes to move the system's position back by first
    std::string data;           // read: what was read (read_to_end: after a prefix); write: the bytes
    std::size_t moved = 0;      // read, write: how many bytes the system moved
    long long new_position = 0; // the system's position after the job, -1 if it has none
    std::error_code error;

private:
    atomic<unsigned> refs_{1};
};

// A counted reference to a file_core.
class file_ref {
public:
    file_ref() noexcept = default;
    explicit file_ref(file_core* c) noexcept : core_(c) {}  // adopts a reference
    file_ref(const file_ref& o) noexcept : core_(o.core_) {
        if (core_) core_->add_ref();
    }
    file_ref(file_ref&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
    file_ref& operator=(file_ref o) noexcept {
        std::swap(core_, o.core_);
        return *this;
    }
    ~file_ref() {
        if (core_) core_->release();
    }
    file_core* get() const noexcept { return core_; }
    file_core& operator*() const noexcept { return *core_; }

private:
    file_core* core_ = nullptr;
};

// The executor's work (a reference to the file), then the callback the worker hands to
// the loop (the same reference). Dropped unrun (an executor that discards its queue, a
// closed loop), it lets go of its reference and nothing else.
class file_job_handoff {
public:
    explicit file_job_handoff(file_core* c) noexcept : core_(c) {}
    file_job_handoff(file_job_handoff&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
    file_job_handoff(const file_job_handoff&) = delete;
    file_job_handoff& operator=(const file_job_handoff&) = delete;
    file_job_handoff& operator=(file_job_handoff&&) = delete;
    ~file_job_handoff() {
        if (core_) core_->release();
    }

    // On the loop's thread.
    void operator()() const noexcept { core_->complete(); }

    // On a pool thread: the job, then the completion to the loop. A closed loop refuses
    // it, and the reference goes here (the last one closes the descriptor).
    static void run(file_job_handoff& work) noexcept {
        file_core* c = work.core_;
        c->run_job();
        try {
            c->loop->call_soon_threadsafe(std::move(work));
        } catch (...) {
        }
    }

private:
    file_core* core_;
};

// One job of an operation: started when made, awaited at once. The task is woken by
// complete(), then the job's error is thrown, named `what`; or it is cancelled (then the
// job goes on without it, orphaned when the operation's turn ends).
class file_job_wait final : public wait_point {
public:
    file_job_wait(file_core& c, file_job_kind kind, const char* what) : core_(c), what_(what) {
        core_.start(kind);
    }
    file_job_wait(const file_job_wait&) = delete;
    file_job_wait& operator=(const file_job_wait&) = delete;
    ~file_job_wait() {
        if (core_.waiter == this) core_.waiter = nullptr;
    }

    bool await_ready() const noexcept { return !core_.pending; }
    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("ioloop::file");
        core_.waiter = this;
        task_->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }
    void await_resume() {
        if (task_) task_->throw_if_cancelled();
        core_.throw_if_failed(what_);
    }

    void on_cancel(task_base& t) noexcept override {
        core_.waiter = nullptr;
        t.wake();
    }
    void arrive() noexcept {
        core_.waiter = nullptr;
        task_->wake();
    }

private:
    file_core& core_;
    const char* what_;
    task_base* task_ = nullptr;
};

// Held by an operation from the moment it has its turn: at its end the turn passes on,
// unless its job still runs (it was cancelled): then complete() passes it.
class file_turn {
public:
    explicit file_turn(file_core& c) noexcept : core_(c) {}
    file_turn(const file_turn&) = delete;
    file_turn& operator=(const file_turn&) = delete;
    ~file_turn() {
        if (core_.pending) {
            core_.orphaned = true;
        } else {
            core_.turn.release();
        }
    }

private:
    file_core& core_;
};

inline void file_core::start(file_job_kind k) {
    kind = k;
    error.clear();
    moved = 0;
    new_position = -1;
    executor& e = default_executor(*loop);
    add_ref();
    file_job_handoff work(this);
    pending = true;
    try {
        e.submit([w = std::move(work)]() mutable noexcept { file_job_handoff::run(w); });
    } catch (...) {  // a shut-down executor: the work and its reference are gone
        pending = false;
        throw;
    }
}

inline void file_core::run_job() noexcept {
    long long at = 0;
    if (rewind != 0 && kind != file_job_kind::close) {
        error = seek_native_file(handle, -rewind, seek_cur, at);
    }
    if (!error) {
        switch (kind) {
            case file_job_kind::read:
                try {
                    data.resize(want);
                    error = read_native_file(handle, data.data(), want, moved);
                } catch (...) {
                    error = std::make_error_code(std::errc::not_enough_memory);
                }
                data.resize(error ? 0 : moved);
                break;
            case file_job_kind::read_to_end: {
                const std::size_t before = data.size();
                try {
                    error = read_native_file_to_end(handle, data);
                } catch (...) {
                    error = std::make_error_code(std::errc::not_enough_memory);
                }
                moved = data.size() - before;
                break;
            }
            case file_job_kind::write:
                error = write_native_file(handle, data.data(), data.size(), append, moved);
                break;
            case file_job_kind::seek:
                error = seek_native_file(handle, offset, whence, at);
                break;
            case file_job_kind::truncate:
                error = truncate_native_file(handle, offset);
                break;
            case file_job_kind::close:
                error = close_native_file(handle);
                handle = no_file();  // released even when close reports an error
                break;
        }
    }
    if (handle != no_file() && !seek_native_file(handle, 0, seek_cur, at)) new_position = at;
}

inline void file_core::complete() noexcept {
    pending = false;
    rewind = 0;
    if (new_position >= 0) {
        os_position = new_position;
    } else if (kind == file_job_kind::read || kind == file_job_kind::read_to_end ||
               kind == file_job_kind::write) {
        os_position += static_cast<long long>(moved);  // a pipe or a FIFO: counted
    }
    if (kind == file_job_kind::read || kind == file_job_kind::read_to_end) {
        // Into the buffer even if nobody waits: a cancelled read loses nothing.
        if (buffered() == 0) {
            drop_buffer();
            buffer.swap(data);
        } else {
            if (consumed != 0) {
                buffer.erase(0, consumed);
                consumed = 0;
            }
            try {
                buffer.append(data);
            } catch (...) {
                if (!error) error = std::make_error_code(std::errc::not_enough_memory);
            }
        }
        data.clear();
    } else if (kind == file_job_kind::write) {
        data.clear();
    }
    if (file_job_wait* w = waiter) {
        w->arrive();
    } else if (orphaned) {
        orphaned = false;
        turn.release();
    }
}

// ---- the operations: each a coroutine holding its own reference to the file -------------
// Templates (as net/streams.hpp's), so that a program that uses no file compiles none of
// them.

template <class = void>
coro<std::string> file_read(file_ref ref, long long n) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable("file::read");
    if (n < 0) {
        // What is buffered goes first, in the same string: one allocation for the whole
        // file when its size is known, and nothing lost if the read is cancelled.
        f.data = f.take(f.buffered());
        co_await file_job_wait(f, file_job_kind::read_to_end, "file::read");
        co_return f.take(f.buffered());
    }
    const std::size_t want = static_cast<std::size_t>(n);
    while (f.buffered() < want) {
        const std::size_t missing = want - f.buffered();
        f.want = missing > file_core::buffer_size ? missing : file_core::buffer_size;
        co_await file_job_wait(f, file_job_kind::read, "file::read");
        if (f.moved == 0) break;  // end of file
    }
    co_return f.take(want < f.buffered() ? want : f.buffered());
}

template <class = void>
coro<std::string> file_readline(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable("file::readline");
    std::size_t scanned = 0;  // buffered bytes known to hold no '\n'
    for (;;) {
        const std::size_t at = f.buffer.find('\n', f.consumed + scanned);
        if (at != std::string::npos) co_return f.take(at + 1 - f.consumed);
        scanned = f.buffered();
        f.want = file_core::buffer_size;
        co_await file_job_wait(f, file_job_kind::read, "file::readline");
        if (f.moved == 0) co_return f.take(f.buffered());  // the last line, without '\n'
    }
}

template <class = void>
coro<std::size_t> file_write(file_ref ref, std::string bytes) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_writable("file::write");
    f.unread_buffer();
    f.data = std::move(bytes);
    co_await file_job_wait(f, file_job_kind::write, "file::write");
    co_return f.moved;
}

template <class = void>
coro<long long> file_seek(file_ref ref, long long offset, int whence) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_open("file::seek");
    f.unread_buffer();
    f.offset = offset;
    f.whence = whence;
    co_await file_job_wait(f, file_job_kind::seek, "file::seek");
    co_return f.os_position;
}

// size < 0: at the current position (Python's truncate(None)).
template <class = void>
coro<long long> file_truncate(file_ref ref, long long size) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_writable("file::truncate");
    if (size < 0) size = f.position();
    f.unread_buffer();
    f.offset = size;
    co_await file_job_wait(f, file_job_kind::truncate, "file::truncate");
    co_return size;
}

template <class = void>
coro<long long> file_tell(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_open("file::tell");
    co_return f.position();
}

template <class = void>
coro<void> file_flush(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_open("file::flush");
}

template <class = void>
coro<void> file_close(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    if (f.closed) co_return;  // close is idempotent, as Python's
    f.closed = true;          // from here the operations queued behind fail
    f.drop_buffer();
    co_await file_job_wait(f, file_job_kind::close, "file::close");
}

// What the pool's open gives back: a descriptor that closes itself if nobody takes it (the
// open_file that asked was cancelled meanwhile).
class opened_file {
public:
    opened_file() noexcept = default;
    opened_file(opened_file&& o) noexcept
        : handle(std::exchange(o.handle, no_file())), position(o.position), error(o.error) {}
    opened_file(const opened_file&) = delete;
    opened_file& operator=(const opened_file&) = delete;
    opened_file& operator=(opened_file&&) = delete;
    ~opened_file() {
        if (handle != no_file()) (void)close_native_file(handle);
    }

    native_file handle = no_file();
    long long position = 0;
    std::error_code error;
};

// The pool's open. It owns a copy of the path: a cancelled open_file's frame may go before
// it runs.
struct open_in_pool {
    std::string path;
    file_access access;

    opened_file operator()() const noexcept {
        opened_file o;
        o.error = open_native_file(path, access, o.handle);
        // Python's "a" starts at the end, so that tell() says where writes go.
        if (!o.error && access.append) (void)seek_native_file(o.handle, 0, seek_end, o.position);
        return o;
    }
};

struct file_factory;
struct file_sendfile_access;  // net/sendfile.hpp: loop.sendfile reads the file's core

}  // namespace detail

// An open file (aiofiles' AsyncBufferedIOBase): move-only; every operation is awaited and
// runs as the comment at the top of this file says. A default-constructed or moved-from
// file is no file: its operations throw invalid_state_error at the call.
class file {
public:
    file() noexcept = default;
    file(file&&) noexcept = default;
    file& operator=(file&&) noexcept = default;
    file(const file&) = delete;
    file& operator=(const file&) = delete;
    ~file() = default;  // the last reference closes (see the top of this file)

    // Up to n bytes, fewer only at the end of the file; n < 0: everything to the end.
    template <class = void>
    [[nodiscard]] coro<std::string> read(long long n = -1) {
        return detail::file_read(ref("file::read"), n);
    }
    // One line with its '\n'; the last line may lack it; "" at the end of the file.
    template <class = void>
    [[nodiscard]] coro<std::string> readline() {
        return detail::file_readline(ref("file::readline"));
    }
    // All of data, at the position (at the end in "a" modes); the count written. The bytes
    // are copied at the call: the caller's may go at once.
    template <class = void>
    [[nodiscard]] coro<std::size_t> write(std::string_view data) {
        return detail::file_write(ref("file::write"), std::string(data));
    }
    // Returns once the operations before it are done (writes are not buffered).
    template <class = void>
    [[nodiscard]] coro<void> flush() { return detail::file_flush(ref("file::flush")); }
    // whence: seek_set, seek_cur or seek_end (anything else is std::invalid_argument at the
    // call); the new position.
    template <class = void>
    [[nodiscard]] coro<long long> seek(long long offset, int whence = seek_set) {
        if (whence != seek_set && whence != seek_cur && whence != seek_end) {
            throw std::invalid_argument(
                detail::concat({"file::seek: invalid whence ",
                                detail::decimal(whence), " (seek_set, seek_cur or seek_end)"}));
        }
        return detail::file_seek(ref("file::seek"), offset, whence);
    }
    template <class = void>
    [[nodiscard]] coro<long long> tell() { return detail::file_tell(ref("file::tell")); }
    // The file's size becomes `size` (default: the current position); the position does not
    // move. Returns the new size.
    template <class = void>
    [[nodiscard]] coro<long long> truncate() { return detail::file_truncate(ref("file::truncate"), -1); }
    template <class = void>
    [[nodiscard]] coro<long long> truncate(long long size) {
        if (size < 0) {
            throw std::invalid_argument(detail::concat(
                {"file::truncate: negative size ", detail::decimal(size)}));
        }
        return detail::file_truncate(ref("file::truncate"), size);
    }
    // Closes once the operations before it are done; idempotent.
    template <class = void>
    [[nodiscard]] coro<void> close() { return detail::file_close(ref("file::close")); }

    // Whether close() was called (Python's `closed`).
    bool closed() const noexcept { return !core_.get() || core_.get()->closed; }
    // The path it was opened with (Python's `name`).
    const std::string& name() const {
        if (!core_.get()) throw invalid_state_error("file::name: no file");
        return core_.get()->path;
    }

private:
    friend struct detail::file_factory;
    friend struct detail::file_sendfile_access;
    explicit file(detail::file_core* c) noexcept : core_(c) {}

    // The file, for an operation called on its loop's thread while that loop runs: its
    // jobs go to that loop's executor and come back to it.
    detail::file_ref ref(const char* what) const {
        if (!core_.get()) {
            throw invalid_state_error(
                detail::concat({what, ": no file (default-constructed or moved from)"}));
        }
        if (detail::loop_access::running() != core_.get()->loop) {
            throw invalid_state_error(detail::concat(
                {what, ": \"", core_.get()->path,
                 "\" was opened on another event loop than the one running here (if any)"}));
        }
        return core_;
    }

    detail::file_ref core_;
};

namespace detail {

// How open_file makes a file of a new core.
struct file_factory {
    static file make(file_core* c) noexcept { return file(c); }
};

// A template on its work, so that nothing of run_in_executor is compiled where it is not
// used (a non-dependent call would be, in every program that includes the header).
template <class Work = open_in_pool>
coro<file> open_file_in_pool(std::string path, file_access access) {
    loop_base& loop = loop_access::running_or_throw("open_file");
    // Submitted in a statement of its own: g++ 12 mishandles a temporary of class type
    // (here the work, holding a string) made inside a co_await expression, and frees memory
    // that is not its own when the work is destroyed on the pool.
    auto job = loop.run_in_executor(Work{path, access});
    opened_file opened = co_await std::move(job);
    if (opened.error) throw_file_error(opened.error, "open_file", path);
    auto* core = new file_core(loop, std::move(path), opened.handle, access, opened.position);
    opened.handle = no_file();  // the core's now
    co_return file_factory::make(core);
}

}  // namespace detail

// Opens path (UTF-8) in the pool; a bad mode throws std::invalid_argument here, at the
// call. Errors: std::system_error naming the path, as `open_file "/x/y": No such file or
// directory`; a directory is std::errc::is_a_directory.
template <class = void>  // a template: compiled only where it is used
[[nodiscard]] coro<file> open_file(std::string path, std::string_view mode = "r") {
    const detail::file_access access = detail::parse_open_mode(mode);
    return detail::open_file_in_pool(std::move(path), access);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/fs/file.hpp
// begin file ioloop/fs/read_write_file.hpp
// ioloop: read_file(path) and write_file(path, data), a whole file in one hop to the loop's
// executor (open, read or write, close: one pool job, not three). Cancelled, they are
// run_in_executor: the caller sees cancelled_error at once; the job finishes on the pool
// (a write_file's bytes are written) and its result is dropped.
#ifndef IOLOOP_FS_READ_WRITE_FILE_HPP
#define IOLOOP_FS_READ_WRITE_FILE_HPP


#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct whole_file {
    std::string data;
    std::error_code error;
};

// The pool's work. Each owns its path (and bytes): it may outlive a cancelled caller's
// frame.
struct read_whole_file {
    std::string path;

    whole_file operator()() const {
        whole_file r;
        file_access access;
        access.read = true;
        native_file f = no_file();
        r.error = open_native_file(path, access, f);
        if (r.error) return r;
        try {
            r.error = read_native_file_to_end(f, r.data);
        } catch (...) {
            r.error = std::make_error_code(std::errc::not_enough_memory);
        }
        (void)close_native_file(f);  // read-only: nothing for close to report
        return r;
    }
};

struct write_whole_file {
    std::string path;
    std::string data;

    std::error_code operator()() const noexcept {
        file_access access;
        access.write = true;
        access.create = true;
        access.truncate = true;
        native_file f = no_file();
        std::error_code ec = open_native_file(path, access, f);
        if (ec) return ec;
        std::size_t written = 0;
        ec = write_native_file(f, data.data(), data.size(), false, written);
        const std::error_code closing = close_native_file(f);
        return ec ? ec : closing;
    }
};

// Templates on their work, so that nothing of run_in_executor is compiled where they are
// not used (a non-dependent call would be, in every program that includes the header).
template <class Work = read_whole_file>
coro<std::string> read_file_in_pool(std::string path) {
    loop_base& loop = loop_access::running_or_throw("read_file");
    auto job = loop.run_in_executor(Work{path});  // a statement of its own: see open_file_in_pool
    whole_file got = co_await std::move(job);
    if (got.error) throw_file_error(got.error, "read_file", path);
    co_return std::move(got.data);
}

template <class Work = write_whole_file>
coro<void> write_file_in_pool(Work work) {
    loop_base& loop = loop_access::running_or_throw("write_file");
    const std::string path = work.path;
    auto job = loop.run_in_executor(std::move(work));
    const std::error_code error = co_await std::move(job);
    if (error) throw_file_error(error, "write_file", path);
}

}  // namespace detail

// The whole file at path (UTF-8), read on the executor; std::system_error naming the path,
// as `read_file "/x": No such file or directory`.
template <class = void>  // a template: compiled only where it is used
[[nodiscard]] coro<std::string> read_file(std::string path) {
    return detail::read_file_in_pool(std::move(path));
}

// Replaces the file at path (created if missing, as mode "w") with data, written on the
// executor. data is copied at the call.
template <class = void>  // a template: compiled only where it is used
[[nodiscard]] coro<void> write_file(std::string path, std::string_view data) {
    return detail::write_file_in_pool(detail::write_whole_file{std::move(path), std::string(data)});
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/fs/read_write_file.hpp
// begin file ioloop/net/connect_errors.hpp
// ioloop: connect_errors, what a connect call throws when no address connected and
// connect_options::all_errors is set: every address tried, with its error (asyncio's
// ExceptionGroup of OSErrors). It is a std::system_error too, whose code is the last
// attempt's, so code that catches one failure catches this.
#ifndef IOLOOP_NET_CONNECT_ERRORS_HPP
#define IOLOOP_NET_CONNECT_ERRORS_HPP

// begin file ioloop/net/endpoint.hpp
// ioloop: a socket address (IPv4, IPv6 or Unix domain) held by value, with numeric
// parsing and formatting. Numeric hosts never need a resolver thread: ip() parses them
// with inet_pton, and only a name ("example.com") is left for getaddrinfo.
#ifndef IOLOOP_NET_ENDPOINT_HPP
#define IOLOOP_NET_ENDPOINT_HPP


#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The length of an address that is its family alone (an unnamed Unix socket's): the
// family is an sa_family_t on POSIX, an ADDRESS_FAMILY on Windows.
inline constexpr socklen_t family_size = sizeof(sockaddr{}.sa_family);

// The OS reads host names and paths as C strings, so a NUL inside one would cut it short
// and name another place ("127.0.0.1\0.example" is 127.0.0.1): such text is refused with
// errc::invalid_argument, naming `what` and the text up to the NUL.
inline void refuse_nul(std::string_view text, std::string_view what) {
    const std::size_t nul = text.find('\0');
    if (nul == std::string_view::npos) return;
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        concat({what, " \"", text.substr(0, nul), "...\" holds a NUL character"}));
}

}  // namespace detail

enum class address_family { unspecified, ipv4, ipv6, unix_domain };

class endpoint {
public:
    // An unspecified address: what a default-constructed endpoint holds before a real one
    // is assigned. native_size() is 0, so handing it to the OS fails loudly.
    endpoint() noexcept { std::memset(&addr_, 0, sizeof addr_); }

    // An IPv4 or IPv6 literal: "127.0.0.1", "::1", "[::1]", "fe80::1%eth0", "fe80::1%2".
    // Throws errc::invalid_argument for anything else, names included: resolving a name
    // may block, so it belongs to getaddrinfo on another thread, never here.
    static endpoint ip(std::string_view numeric_host, std::uint16_t port) {
        detail::refuse_nul(numeric_host, "host");
        endpoint ep;
        if (!parse_ip(numeric_host, port, ep)) {
            throw std::system_error(
                std::make_error_code(std::errc::invalid_argument),
                detail::concat({"\"", numeric_host,
                                "\" is not a numeric IPv4 or IPv6 address (a host name needs "
                                "getaddrinfo)"}));
        }
        return ep;
    }

    // As ip(), reporting failure by its result; `out` is left untouched then.
    static bool parse_ip(std::string_view host, std::uint16_t port, endpoint& out) noexcept {
        if (!detail::sockets_started()) return false;  // inet_pton is Winsock's on Windows
        if (host.find('\0') != std::string_view::npos) return false;  // see refuse_nul
        bool bracketed = false;
        if (!host.empty() && host.front() == '[') {
            if (host.size() < 2 || host.back() != ']') return false;
            host = host.substr(1, host.size() - 2);
            bracketed = true;
        }
        std::string_view scope;
        if (const std::size_t pct = host.find('%'); pct != std::string_view::npos) {
            scope = host.substr(pct + 1);
            host = host.substr(0, pct);
            if (scope.empty()) return false;
        }
        // inet_pton wants a terminated string; a literal longer than the longest IPv6
        // spelling is not an address, so a fixed buffer is enough and never allocates.
        char text[INET6_ADDRSTRLEN];
        if (host.empty() || host.size() >= sizeof text) return false;
        std::memcpy(text, host.data(), host.size());
        text[host.size()] = '\0';

        endpoint ep;
        if (host.find(':') == std::string_view::npos) {
            // Brackets and scopes belong to IPv6 only: "[1.2.3.4]" is not an address.
            if (bracketed || !scope.empty()) return false;
            sockaddr_in& in = ep.addr_.in4;
            if (::inet_pton(AF_INET, text, &in.sin_addr) != 1) return false;
            in.sin_family = AF_INET;
            in.sin_port = htons(port);
            ep.size_ = sizeof(sockaddr_in);
        } else {
            sockaddr_in6& in6 = ep.addr_.in6;
            if (::inet_pton(AF_INET6, text, &in6.sin6_addr) != 1) return false;
            in6.sin6_family = AF_INET6;
            in6.sin6_port = htons(port);
            // sin6_scope_id is a 32-bit field, but Winsock spells it u_long.
            std::uint32_t scope_id = 0;
            if (!scope.empty() && !parse_scope(scope, scope_id)) return false;
            in6.sin6_scope_id = scope_id;
            ep.size_ = sizeof(sockaddr_in6);
        }
        out = ep;
        return true;
    }

    // A Unix-domain address. A leading '\0' names a Linux abstract socket (no file);
    // otherwise the path must leave room for its terminator in sun_path.
    static endpoint unix_path(std::string_view path) {
        endpoint ep;
        sockaddr_un& un = ep.addr_.un;
        const bool abstract = !path.empty() && path.front() == '\0';
        if (path.empty()) {
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "a Unix socket path may not be empty");
        }
        if (!abstract) detail::refuse_nul(path, "Unix socket path");
        // An abstract name is counted by the address length and needs no terminator.
        if (path.size() + (abstract ? 0 : 1) > sizeof un.sun_path) {
            throw std::system_error(
                std::make_error_code(std::errc::filename_too_long),
                detail::concat({"Unix socket path \"", abstract ? path.substr(1) : path,
                                "\" is longer than sun_path (",
                                detail::decimal(static_cast<long long>(sizeof un.sun_path) -
                                                (abstract ? 0 : 1)),
                                " bytes)"}));
        }
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, path.data(), path.size());
        ep.size_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                          (abstract ? 0 : 1));
        return ep;
    }

    // Copies an address the OS returned (accept, getsockname, recvfrom). Throws
    // errc::address_family_not_supported for a family other than the three above and
    // errc::invalid_argument for a length that does not fit the family.
    static endpoint from_native(const sockaddr* address, socklen_t size) {
        endpoint ep;
        const auto bad = [](std::errc code, std::string_view why) {
            return std::system_error(std::make_error_code(code),
                                     detail::concat({"endpoint::from_native: ", why}));
        };
        if (address == nullptr || size < detail::family_size ||
            size > static_cast<socklen_t>(sizeof ep.addr_)) {
            throw bad(std::errc::invalid_argument, "the address length is out of range");
        }
        switch (address->sa_family) {
            case AF_INET:
                if (size < static_cast<socklen_t>(sizeof(sockaddr_in)))
                    throw bad(std::errc::invalid_argument, "too short for an IPv4 address");
                size = sizeof(sockaddr_in);
                break;
            case AF_INET6:
                if (size < static_cast<socklen_t>(sizeof(sockaddr_in6)))
                    throw bad(std::errc::invalid_argument, "too short for an IPv6 address");
                size = sizeof(sockaddr_in6);
                break;
            case AF_UNIX:
                // An unnamed Unix socket (a socketpair end, an unbound client) has only
                // its family: that is still an address, with an empty path.
                if (size < static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)))
                    throw bad(std::errc::invalid_argument, "too short for a Unix address");
                break;
            default:
                throw bad(std::errc::address_family_not_supported,
                          "not an IPv4, IPv6 or Unix-domain address");
        }
        std::memcpy(&ep.addr_, address, static_cast<std::size_t>(size));
        ep.size_ = size;
        return ep;
    }

    address_family family() const noexcept {
        if (size_ == 0) return address_family::unspecified;
        switch (addr_.sa.sa_family) {
            case AF_INET:
                return address_family::ipv4;
            case AF_INET6:
                return address_family::ipv6;
            case AF_UNIX:
                return address_family::unix_domain;
            default:
                return address_family::unspecified;
        }
    }

    // The numeric host: "127.0.0.1", "::1" (no brackets), "fe80::1%eth0" (with the
    // scope's interface name, or its number when the interface is gone, and always on
    // Windows). Empty otherwise.
    std::string host() const {
        if (!detail::sockets_started()) return {};  // inet_ntop is Winsock's on Windows
        char text[INET6_ADDRSTRLEN];
        switch (family()) {
            case address_family::ipv4:
                ::inet_ntop(AF_INET, &addr_.in4.sin_addr, text, sizeof text);
                return text;
            case address_family::ipv6: {
                ::inet_ntop(AF_INET6, &addr_.in6.sin6_addr, text, sizeof text);
                std::string result = text;
                if (const std::uint32_t id = addr_.in6.sin6_scope_id; id != 0) {
                    const std::string name = detail::interface_name(id);
                    result += '%';
                    if (!name.empty()) {
                        result += name;
                    } else {
                        result += std::string_view(detail::decimal(static_cast<long long>(id)));
                    }
                }
                return result;
            }
            default:
                return {};
        }
    }

    // The port in host byte order; 0 for Unix and unspecified addresses.
    std::uint16_t port() const noexcept {
        switch (family()) {
            case address_family::ipv4:
                return ntohs(addr_.in4.sin_port);
            case address_family::ipv6:
                return ntohs(addr_.in6.sin6_port);
            default:
                return 0;
        }
    }

    // A Unix address's path: empty when unnamed, with its leading '\0' when abstract.
    std::string path() const {
        if (family() != address_family::unix_domain) return {};
        const std::size_t length =
            static_cast<std::size_t>(size_) - offsetof(sockaddr_un, sun_path);
        const char* p = addr_.un.sun_path;
        if (length != 0 && p[0] == '\0') return std::string(p, length);  // abstract
        // A pathname may or may not carry its terminator inside the length the OS gives.
        std::size_t n = 0;
        while (n < length && p[n] != '\0') ++n;
        return std::string(p, n);
    }

    // "127.0.0.1:8080", "[::1]:8080", "/tmp/x.sock", "@name" for an abstract Unix name,
    // "" for an unnamed Unix socket, "unspecified" for a default-constructed endpoint.
    std::string to_string() const {
        switch (family()) {
            case address_family::ipv4:
                return detail::concat({host(), ":", detail::decimal(port())});
            case address_family::ipv6:
                return detail::concat({"[", host(), "]:", detail::decimal(port())});
            case address_family::unix_domain: {
                std::string p = path();
                if (!p.empty() && p.front() == '\0') p.front() = '@';
                return p;
            }
            default:
                return "unspecified";
        }
    }

    const sockaddr* native() const noexcept { return &addr_.sa; }
    socklen_t native_size() const noexcept { return size_; }

    // Equal when the OS would treat them as the same address: the family's fields are
    // compared, never padding (sin_zero) that an OS may or may not have cleared.
    friend bool operator==(const endpoint& a, const endpoint& b) noexcept {
        if (a.family() != b.family()) return false;
        switch (a.family()) {
            case address_family::ipv4:
                return a.addr_.in4.sin_port == b.addr_.in4.sin_port &&
                       a.addr_.in4.sin_addr.s_addr == b.addr_.in4.sin_addr.s_addr;
            case address_family::ipv6:
                return a.addr_.in6.sin6_port == b.addr_.in6.sin6_port &&
                       a.addr_.in6.sin6_scope_id == b.addr_.in6.sin6_scope_id &&
                       std::memcmp(&a.addr_.in6.sin6_addr, &b.addr_.in6.sin6_addr,
                                   sizeof(in6_addr)) == 0;
            case address_family::unix_domain:
                return a.path() == b.path();
            default:
                return true;
        }
    }

private:
    // A scope is an interface name ("eth0"; not on Windows) or its index ("2").
    static bool parse_scope(std::string_view scope, std::uint32_t& id) noexcept {
        if (scope.find_first_not_of("0123456789") == std::string_view::npos) {
            std::uint64_t value = 0;
            for (char c : scope) {
                value = value * 10 + static_cast<std::uint64_t>(c - '0');
                if (value > 0xffffffffu) return false;
            }
            id = static_cast<std::uint32_t>(value);
            return true;
        }
        id = detail::interface_index(scope);
        return id != 0;
    }

    // A union rather than a bare sockaddr_storage: each family's fields are read through
    // their own type, and sockaddr_un (110 bytes on Linux) is covered whatever its size.
    union storage {
        sockaddr sa;
        sockaddr_in in4;
        sockaddr_in6 in6;
        sockaddr_un un;
        sockaddr_storage any;
    };

    storage addr_;
    socklen_t size_ = 0;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/endpoint.hpp

#include <cstddef>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// One address's failed attempt.
struct connect_failure {
    endpoint address;
    std::error_code code;
    std::string message;  // the attempt's what(), e.g. "connect to 127.0.0.1:80: ..."
};

class connect_errors : public std::system_error {
public:
    // `failures` is not empty.
    connect_errors(std::vector<connect_failure> failures, const char* what)
        : std::system_error(failures.back().code, describe(failures, what)),
          failures_(std::move(failures)) {}

    // In the order the attempts were started.
    const std::vector<connect_failure>& errors() const noexcept { return failures_; }

private:
    static std::string describe(const std::vector<connect_failure>& failures, const char* what) {
        std::string text = detail::concat(
            {what, " failed (", detail::decimal(static_cast<long long>(failures.size())),
             failures.size() == 1 ? " address): " : " addresses): "});
        for (std::size_t i = 0; i < failures.size(); ++i) {
            if (i != 0) text += "; ";
            text += failures[i].message;
        }
        return text;
    }

    std::vector<connect_failure> failures_;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/connect_errors.hpp
// begin file ioloop/net/connect_options.hpp
// ioloop: connect_options, the keyword arguments of asyncio's connect calls
// (loop.create_connection, open_connection) as one struct, written with designated
// initializers (serve_options, net/serve_options.hpp, is the serving side's):
//
//     co_await loop.create_connection(factory, "example.org", 80,
//                                     {.happy_eyeballs_delay = 250ms});
//
// It owns no memory: a braced temporary in a co_await expression is destroyed twice by
// g++ 12, so a string in here would be freed twice. What it points to (server_hostname,
// the ssl context) must outlive the call.
#ifndef IOLOOP_NET_CONNECT_OPTIONS_HPP
#define IOLOOP_NET_CONNECT_OPTIONS_HPP

// begin file ioloop/net/ssl_option.hpp
// ioloop: the `ssl` option of the connect and serve calls, and tls_options (loop.start_tls,
// stream_writer::start_tls). TLS itself is the separate header <ioloop/ssl.hpp>, over
// OpenSSL; this file is how the networking layer reaches it without knowing OpenSSL:
//
//     auto ctx = ioloop::create_default_context();                  // <ioloop/ssl.hpp>
//     co_await ioloop::open_connection("example.org", 443, {.ssl = ctx});
//
// An ssl_option refers to an ssl_context (or to none) and carries, made where the context's
// type is complete, the function that puts a TLS layer between a transport and its
// protocol. A program that never includes <ioloop/ssl.hpp> has no ssl_context to refer
// to, and one that names an incomplete one gets a compile error naming the header.
#ifndef IOLOOP_NET_SSL_OPTION_HPP
#define IOLOOP_NET_SSL_OPTION_HPP

// begin file ioloop/net/protocol.hpp
// ioloop: protocols, asyncio's callback networking interface. A protocol is told what
// happens on its transport; derive from it and override the hooks you need. A transport
// owns its protocol (made by the factory given to create_connection / create_server) and
// destroys it right after connection_lost.
#ifndef IOLOOP_NET_PROTOCOL_HPP
#define IOLOOP_NET_PROTOCOL_HPP


#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class transport;
class datagram_transport;
class endpoint;

// What every protocol hears about its connection and its flow control.
class base_protocol {
public:
    virtual ~base_protocol() = default;

    // The connection is gone; an empty code means it was closed cleanly (asyncio's None).
    // The last call: the transport and this protocol are destroyed right after it.
    virtual void connection_lost(std::error_code) {}

    // The transport's write buffer went above its high-water mark: stop writing until
    // resume_writing(). Writes made meanwhile are still buffered, not lost.
    virtual void pause_writing() {}
    // ... and drained down to its low-water mark.
    virtual void resume_writing() {}
};

// A stream (TCP, Unix stream socket).
class protocol : public base_protocol {
public:
    // The connection is up; `t` stays valid until connection_lost returns.
    virtual void connection_made(transport& t) { (void)t; }

    // Bytes that arrived. The view points into a buffer the loop reuses: copy what you keep.
    virtual void data_received(std::string_view data) { (void)data; }

    // The peer will send no more. Return false (the default) to close the transport, true
    // to keep it open for writing (half-close).
    virtual bool eof_received() { return false; }
};

// A stream whose protocol lends the buffer the bytes are received into (asyncio's
// BufferedProtocol): the transport reads straight into it, with no copy through the loop's
// shared buffer. Accepted wherever a `protocol` factory is.
class buffered_protocol : public base_protocol {
public:
    // The connection is up; `t` stays valid until connection_lost returns.
    virtual void connection_made(transport& t) { (void)t; }

    // Where the next read goes. `size_hint` is what the transport would like (the size of
    // its own reads, 64 KiB); a smaller span is fine. An empty span, or an exception, is a
    // fatal error: the loop's exception handler hears of it and the transport is aborted
    // (connection_lost gets errc::connection_aborted).
    virtual std::span<char> get_buffer(std::size_t size_hint) = 0;

    // The last span get_buffer gave now holds `n` new bytes at its start (0 < n <= its
    // size). An exception is fatal, as from get_buffer.
    virtual void buffer_updated(std::size_t n) = 0;

    // The peer will send no more. Return false (the default) to close the transport, true
    // to keep it open for writing (half-close).
    virtual bool eof_received() { return false; }
};

// Datagrams (UDP, Unix datagram socket).
class datagram_protocol : public base_protocol {
public:
    virtual void connection_made(datagram_transport& t) { (void)t; }

    // One datagram and its sender. The view points into a buffer the loop reuses.
    virtual void datagram_received(std::string_view data, const endpoint& from) {
        (void)data;
        (void)from;
    }

    // A send or receive failed (an ICMP port unreachable seen as ECONNREFUSED, ...); the
    // transport stays open, as in asyncio.
    virtual void error_received(std::error_code) {}
};

namespace detail {

// What a stream transport accepts as its protocol: one derived from protocol or from
// buffered_protocol (not both: the two hear the same events in different ways).
template <class P>
inline constexpr bool is_stream_protocol =
    std::is_base_of_v<protocol, P> != std::is_base_of_v<buffered_protocol, P>;

// A stream's protocol as its transport owns it: which kind it is, known from the factory's
// type, is kept beside it, so no call needs a dynamic_cast.
struct owned_stream_protocol {
    template <class P>
    owned_stream_protocol(std::unique_ptr<P> p) noexcept  // NOLINT: converts, as unique_ptr's
        : ptr(std::move(p)), buffered(std::is_base_of_v<buffered_protocol, P>) {
        static_assert(is_stream_protocol<P>,
                      "the protocol factory must return std::unique_ptr<P>, with P derived from "
                      "ioloop::protocol or from ioloop::buffered_protocol");
    }

    // One whose kind is known already (a protocol taken from a transport: loop.start_tls).
    owned_stream_protocol(std::unique_ptr<base_protocol> p, bool is_buffered) noexcept
        : ptr(std::move(p)), buffered(is_buffered) {}

    std::unique_ptr<base_protocol> ptr;
    bool buffered;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/protocol.hpp

#include <chrono>
#include <cstddef>
#include <memory>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

class loop_base;
class transport;

// A TLS configuration (asyncio's ssl.SSLContext): defined by <ioloop/ssl.hpp>.
class ssl_context;

// What loop.start_tls and stream_writer::start_tls take besides the context (asyncio's
// keyword arguments). Owns nothing, as connect_options: server_hostname must outlive the
// call.
struct tls_options {
    // This end is the server of the handshake (it presents the context's certificate).
    bool server_side = false;
    // The name the server's certificate is checked against, and sent as SNI; null: none
    // (a client whose context checks host names then fails at the call).
    const char* server_hostname = nullptr;
    // The handshake is abandoned after this long: std::system_error(errc::timed_out).
    std::chrono::steady_clock::duration ssl_handshake_timeout = std::chrono::seconds(60);
    // After close(), how long to wait for the peer's close_notify before the connection is
    // closed anyway.
    std::chrono::steady_clock::duration ssl_shutdown_timeout = std::chrono::seconds(30);
};

namespace detail {

struct tls_handshake_link;  // net/start_tls.hpp

// A new TLS layer: the protocol to give the transport below, and the transport the
// wrapped protocol writes to (one object).
struct tls_layer_made {
    owned_stream_protocol layer;
    transport* upper;
};

// Makes the TLS layer of one connection over `app` (moved from only if it succeeds);
// keeps its context alive (a server calls it for each connection it accepts). With a
// link, the caller waits there for the handshake (net/start_tls.hpp); without one, the
// protocol's connection_made follows the handshake, and a failed one just closes the
// connection (a server's).
using tls_layer_factory =
    unique_function<tls_layer_made(loop_base&, owned_stream_protocol&, tls_handshake_link*)>;

// <ioloop/ssl.hpp> specializes this for ssl_context: make(ctx, options) gives its
// tls_layer_factory. Reached here only when ssl_context is not defined where an
// ssl_option is made.
template <class Context>
struct tls_entry {
    static_assert(sizeof(Context*) == 0,
                  "the ssl option takes an ioloop::ssl_context: #include <ioloop/ssl.hpp> "
                  "(TLS over OpenSSL; link -lssl -lcrypto)");
};

}  // namespace detail

// The `ssl` member of connect_options and serve_options: an ssl_context (`.ssl = ctx`),
// a pointer to one (`.ssl = &ctx`), or none (plain TCP). It refers to the context, which
// must outlive the call (the layers the call makes share it from then on).
class ssl_option {
public:
    ssl_option() noexcept = default;
    ssl_option(std::nullptr_t) noexcept {}  // NOLINT: converts, as a null pointer does

    template <class Context>
        requires std::is_same_v<Context, ssl_context>
    ssl_option(const Context& ctx) noexcept  // NOLINT: converts, so that `.ssl = ctx` reads
        : ctx_(&ctx), make_(&detail::tls_entry<Context>::make) {}

    // A temporary context would be gone before the call uses it (the connect calls make
    // their layers after they connect): refused at compile time.
    template <class Context>
        requires std::is_same_v<Context, ssl_context>
    ssl_option(Context&& ctx) noexcept {  // NOLINT: only to refuse a temporary
        static_assert(sizeof(Context*) == 0,
                      "ssl= refers to the ssl_context, which must outlive the call: keep it in "
                      "a variable, not a temporary");
        (void)ctx;
    }

    template <class Context>
        requires std::is_same_v<Context, ssl_context>
    ssl_option(const Context* ctx) noexcept  // NOLINT: converts, as the reference does
        : ctx_(ctx), make_(ctx ? &detail::tls_entry<Context>::make : nullptr) {}

    explicit operator bool() const noexcept { return ctx_ != nullptr; }
    const ssl_context* get() const noexcept { return ctx_; }

    friend bool operator==(const ssl_option& a, std::nullptr_t) noexcept { return !a.ctx_; }

    // The layers' maker for these options (the context is not null).
    detail::tls_layer_factory layer_factory(const tls_options& o) const {
        return make_(*ctx_, o);
    }

private:
    const ssl_context* ctx_ = nullptr;
    detail::tls_layer_factory (*make_)(const ssl_context&, const tls_options&) = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/ssl_option.hpp

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

struct connect_options {
    // The stream_reader's limit (open_connection only; stream_default_limit).
    std::size_t limit = 64 * 1024;
    // TLS over the connection: an ssl_context of <ioloop/ssl.hpp>; none: plain TCP. The
    // call returns once the handshake is done.
    ssl_option ssl{};
    // The name the server's certificate is checked against and sent as SNI (with ssl only);
    // null: the host.
    const char* server_hostname = nullptr;
    // Bind the socket here before connecting (asyncio's local_addr); unspecified: not bound.
    // Only addresses of its family are tried.
    endpoint local_addr{};
    // RFC 8305's connection attempt delay: the next address is tried when the one before
    // has neither connected nor failed within it, while the earlier ones go on; the first to
    // connect wins and the others are closed. Negative (the default): one address at a time,
    // each attempt to its end (asyncio's None).
    std::chrono::steady_clock::duration happy_eyeballs_delay{-1};
    // Reorder the addresses by family: this many of the first family, then one of each
    // family in turn. Negative (the default): 1 with a happy_eyeballs_delay, else 0 (the
    // resolver's order), as asyncio.
    int interleave = -1;
    // When no address connects: false, one std::system_error (the one error, or
    // "Multiple exceptions: ..." naming each); true, an ioloop::connect_errors listing every
    // address's error (asyncio's ExceptionGroup).
    bool all_errors = false;
    // With ssl: the handshake's time limit (std::system_error(errc::timed_out) after it),
    // and how long close() waits for the peer's close_notify (asyncio's defaults).
    std::chrono::steady_clock::duration ssl_handshake_timeout = std::chrono::seconds(60);
    std::chrono::steady_clock::duration ssl_shutdown_timeout = std::chrono::seconds(30);
};
// What keeps it safe as a braced temporary in a co_await expression (see above).
static_assert(std::is_trivially_copyable_v<connect_options> &&
              std::is_trivially_destructible_v<connect_options>);

namespace detail {

// A negative or zero time limit is refused at the call, as asyncio refuses it.
inline void check_tls_timeouts(std::chrono::steady_clock::duration handshake,
                               std::chrono::steady_clock::duration shutdown, const char* what) {
    if (handshake.count() <= 0) {
        throw std::invalid_argument(concat({what, ": ssl_handshake_timeout must be positive"}));
    }
    if (shutdown.count() <= 0) {
        throw std::invalid_argument(concat({what, ": ssl_shutdown_timeout must be positive"}));
    }
}

inline void check_connect_options(const connect_options& o, const char* what) {
    check_tls_timeouts(o.ssl_handshake_timeout, o.ssl_shutdown_timeout, what);
    if (o.server_hostname && !o.ssl) {
        throw std::invalid_argument(
            concat({what, ": server_hostname is only meaningful with ssl"}));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/connect_options.hpp
// begin file ioloop/net/connect_pipe.hpp
// ioloop: loop.connect_read_pipe and loop.connect_write_pipe (asyncio's): a descriptor that
// is not a socket, handed to a stream transport and the factory's protocol.
#ifndef IOLOOP_NET_CONNECT_PIPE_HPP
#define IOLOOP_NET_CONNECT_PIPE_HPP

// begin file ioloop/net/create_connection.hpp
// ioloop: loop.create_connection and loop.create_unix_connection (asyncio's): connect a
// socket without blocking the loop, then hand it to a transport and the factory's
// protocol; and its sock= form and connect_accepted_socket, over a socket already connected.
// The connect part (detail::connect_any, net/happy_eyeballs.hpp) serves the streams too.
#ifndef IOLOOP_NET_CREATE_CONNECTION_HPP
#define IOLOOP_NET_CREATE_CONNECTION_HPP

// begin file ioloop/net/engines.hpp
// ioloop: the one place that knows the backend families. engine_of<Backend> names the
// I/O engine a basic_event_loop<Backend> owns (declared in event_loop.hpp): a readiness
// backend gets the reactive engine, a completion backend (IOCP) the overlapped one. And
// with_family(loop, f) hands f the operations of loop's family (reactive_ops or
// iocp_ops): the networking layer above is compiled once for every backend, so it asks
// here, at run time, and nowhere else. A new family (io_uring) is one more engine, one
// more ops, and one more line in each of the two.
#ifndef IOLOOP_NET_ENGINES_HPP
#define IOLOOP_NET_ENGINES_HPP

// begin file ioloop/net/descriptor_check.hpp
// ioloop: what a descriptor must be before the loop waits on it (wait_readable) or makes
// it a pipe transport (connect_read_pipe, connect_write_pipe). Checked here, before any
// backend sees it, so that every backend refuses the same descriptors with the same
// words: epoll refuses a regular file (EPERM) where poll and select would take it and
// report it always ready, and poll would take a closed descriptor and report POLLNVAL.
// On Windows a pipe is a HANDLE: select, which waits on sockets only, refuses every one
// here; the IOCP backend checks its own (net/iocp/pipe_io.hpp, check_pipe_handle).

#ifndef IOLOOP_NET_DESCRIPTOR_CHECK_HPP
#define IOLOOP_NET_DESCRIPTOR_CHECK_HPP


#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_not_supported(std::string_view what, std::string_view why) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                            concat({what, ": ", why}));
}

// The end of the message that refuses a regular file, on every platform.
inline constexpr std::string_view use_the_file_api =
    "read files with ioloop::open_file (the file API)";

// What a pipe transport needs to know of its descriptor.
struct pipe_descriptor {
    // Readability of the write end can only mean that the reader went away: a pipe or a
    // FIFO opened for writing alone (asyncio watches for it; a terminal opened for reading
    // and writing would be readable when someone types).
    bool reader_gone_is_readable = false;
};

#if defined(IOLOOP_POSIX)

// Throws EBADF unless fd is an open descriptor.
inline void require_open_descriptor(native_socket fd, std::string_view what) {
    if (!is_open_fd(fd)) {
        throw_errno(EBADF, concat({what, ": fd ", decimal(fd), " is not an open descriptor"}));
    }
}

// A descriptor a pipe transport can take: a pipe, a FIFO, a terminal, a character device,
// a socket (asyncio takes one too; it is then read and written as a pipe). A regular file
// or a directory is refused: it is always "ready", and reading it belongs to the file API.
inline pipe_descriptor check_pipe_descriptor(native_descriptor fd, std::string_view what) {
    struct stat st{};
    if (::fstat(fd, &st) == -1) {
        const int err = errno;
        throw_errno(err, concat({what, ": fd ", decimal(fd), err == EBADF
                                                                 ? " is not an open descriptor"
                                                                 : ": fstat failed"}));
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        throw_errno(EPERM, concat({what, ": fd ", decimal(fd),
                                   S_ISREG(st.st_mode) ? " is a regular file" : " is a directory",
                                   ": pipes and terminals only; ", use_the_file_api}));
    }
    const int flags = ::fcntl(fd, F_GETFL);
    const int access = flags == -1 ? O_RDWR : (flags & O_ACCMODE);
    pipe_descriptor d;
#if defined(__linux__)
    // Linux pipes are one-way: the write end is O_WRONLY. A FIFO opened O_RDWR would be
    // readable with its own bytes.
    d.reader_gone_is_readable = S_ISFIFO(st.st_mode) && access == O_WRONLY;
#else
    // The BSDs' and macOS's pipes are two-way, both ends O_RDWR: the write end's read
    // side reports EOF when the other end closes.
    d.reader_gone_is_readable = S_ISFIFO(st.st_mode) && access != O_RDONLY;
#endif
    return d;
}

#elif defined(IOLOOP_WINDOWS)

inline void require_open_descriptor(native_socket, std::string_view) {}

// The readiness family on Windows is select, and Winsock's select takes sockets only.
inline pipe_descriptor check_pipe_descriptor(native_descriptor, std::string_view what) {
    throw_not_supported(what,
                        "Windows' select waits on sockets only: it cannot wait on a pipe or a "
                        "console; use the IOCP backend (Windows' default) for pipes");
}

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/descriptor_check.hpp
// begin file ioloop/net/io_engine.hpp
// ioloop: io_engine, a loop's I/O state, kept by the engine of its backend's family. A
// readiness backend (epoll, kqueue, poll, select) tells when a descriptor is ready, and
// the family's code then makes the call (net/reactive/); a completion backend (IOCP)
// runs overlapped operations whose buffers the kernel owns until they complete
// (net/iocp/). Everything above (transports' protocol-facing rules, servers,
// connections, streams) is written once, and reaches its family's code through
// net/engines.hpp.
//
// Each basic_event_loop<Backend> owns the engine of Backend's family, chosen in one place
// (net/engines.hpp), and loop_base keeps a pointer to it: its one member for I/O. A third
// family (io_uring) is one more engine.
#ifndef IOLOOP_NET_IO_ENGINE_HPP
#define IOLOOP_NET_IO_ENGINE_HPP


#include <cstddef>
#include <memory>
#include <span>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The backend families: readiness (net/reactive/) and completion (net/iocp/).
enum class io_family : unsigned char { readiness, completion };

class io_engine {
public:
    // How much one read takes at most: libuv's 64 KiB.
    static constexpr std::size_t read_buffer_size = 64 * 1024;

    io_engine(const io_engine&) = delete;
    io_engine& operator=(const io_engine&) = delete;

    // Which family's code serves this loop: the networking layer asks in one place
    // (net/engines.hpp, with_family).
    io_family family() const noexcept { return family_; }

    // Readiness, for what waits on a descriptor it does not own (add_reader, wait_readable,
    // the sock_* operations) or watches its own (the readiness transports): runs `n` each
    // time fd is readable (io_read) or writable (io_write). add_reader's kind `replaces`
    // an earlier one; a one-shot wait does not, and is refused (errc::file_exists) like
    // a descriptor a transport or a server watches: a backend keeps one registration per
    // descriptor, and a second would take the first one's events. Takes the node's one
    // reference, also when it throws. A completion engine cannot wait for readiness and
    // says so (errc::operation_not_supported).
    virtual void add_watch(native_socket fd, unsigned which, callback_node* n, const char* what,
                           bool replaces) = 0;
    // True if fd had one for `which`.
    virtual bool remove_watch(native_socket fd, unsigned which) = 0;
    // A descriptor the networking layer owns, registered for w (old -> now; 0 unwatches).
    virtual void watch(native_socket fd, unsigned old_events, unsigned new_events,
                       io_watcher& w) = 0;
    // A child's exit reported to w (io_read, once) by the backend itself, where it can
    // (backend::process_backend: kqueue's EVFILT_PROC); false elsewhere.
    virtual bool watch_process(int pid, io_watcher& w) noexcept {
        (void)pid;
        (void)w;
        return false;
    }
    // After the exit was reported (`reported`: the backend dropped the event then), or to
    // give up watching before.
    virtual void unwatch_process(int pid, bool reported) noexcept {
        (void)pid;
        (void)reported;
    }

    // ---- what every family keeps alike ------------------------------------------------

    // Where every transport of the loop reads into: an idle connection holds no buffer.
    std::span<char> read_buffer() {
        if (!read_buffer_) read_buffer_ = std::make_unique<char[]>(read_buffer_size);
        return {read_buffer_.get(), read_buffer_size};
    }

    // The open transports and servers, closed with the loop.
    void add_resource(loop_resource& r) noexcept { resources_.add(r); }
    void remove_resource(loop_resource& r) noexcept { resources_.remove(r); }
    void close_resources() noexcept { resources_.close_all(); }

protected:
    explicit io_engine(io_family f) noexcept : family_(f) {}
    ~io_engine() = default;

private:
    io_family family_;
    resource_list resources_;
    std::unique_ptr<char[]> read_buffer_;  // made on first use
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/io_engine.hpp
// begin file ioloop/net/iocp/engine.hpp
// ioloop: iocp_engine<Backend>, the I/O engine of the completion backends (IOCP):
// overlapped operations whose buffers the kernel owns until they complete. It counts the
// operations in flight and makes the sock_* operations' calls. Its transports, connect
// and listeners are in net/iocp/ops.hpp.
#ifndef IOLOOP_NET_IOCP_ENGINE_HPP
#define IOLOOP_NET_IOCP_ENGINE_HPP

// begin file ioloop/net/iocp/iocp_io.hpp
// ioloop: iocp_io, the state of the completion family's engine that its transports,
// listeners and operations reach from a loop: the operations in flight (the loop polls
// while there is one, and waits for them all when it closes: the kernel owns their
// memory until then), the loop's completion port, and the event its pipe transports'
// reads of data already there wait on (net/iocp/pipe_io.hpp).
#ifndef IOLOOP_NET_IOCP_IOCP_IO_HPP
#define IOLOOP_NET_IOCP_IOCP_IO_HPP

// begin file ioloop/net/net_access.hpp
// ioloop: what the networking layer reaches inside a loop_base: its I/O engine (the
// backend family's way to move bytes, net/io_engine.hpp), its checks and its queues.
#ifndef IOLOOP_NET_NET_ACCESS_HPP
#define IOLOOP_NET_NET_ACCESS_HPP


#include <cstddef>
#include <span>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct net_access {
    static constexpr std::size_t read_buffer_size = io_engine::read_buffer_size;

    static io_engine& engine(loop_base& l) noexcept { return *l.io_; }

    // Registers w for fd's events, going from `old_events` to `new_events` (0 unwatches).
    static void watch(loop_base& l, native_socket fd, unsigned old_events, unsigned new_events,
                      io_watcher& w) {
        l.io_->watch(fd, old_events, new_events, w);
    }

    static std::span<char> read_buffer(loop_base& l) { return l.io_->read_buffer(); }

    static void add_resource(loop_base& l, loop_resource& r) noexcept { l.io_->add_resource(r); }
    static void remove_resource(loop_base& l, loop_resource& r) noexcept {
        l.io_->remove_resource(r);
    }

    static void check_open(const loop_base& l, const char* what) { l.check_open(what); }

    // A node that runs fn each time it is queued, with no reference counted yet.
    template <class F>
    static callback_node* make_persistent_node(loop_base& l, F&& fn) {
        return l.make_persistent_node(std::forward<F>(fn), source_location::current());
    }
    static void enqueue(loop_base& l, callback_node* n) noexcept { l.enqueue(n); }
    static void unregister(callback_node* n) noexcept { loop_base::unregister(n); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/net_access.hpp
// begin file ioloop/net/socket.hpp
// ioloop: a socket (a descriptor on POSIX, a SOCKET on Windows) owned by value: non-blocking
// and not inherited by child processes from birth, closed by the destructor, and every
// failing call a std::system_error that says what failed on which address, with the
// portable std::errc meaning where there is one.
#ifndef IOLOOP_NET_SOCKET_HPP
#define IOLOOP_NET_SOCKET_HPP


#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN

enum class socket_type : int { stream, datagram };

namespace detail {

[[noreturn]] inline void throw_option_error(native_socket fd, std::string_view option) {
    throw_system_error(last_socket_error(),
                       concat({"setsockopt ", option, " on socket ", decimal(fd)}));
}

// Joins the multicast group `group` (IPv4 or IPv6) on the interface `where`: for IPv4 the
// interface's address (unspecified: the one the routing table picks), for IPv6 its scope
// id ("::%lo"; none: the system's choice). Shared by socket and datagram_transport.
inline void join_multicast(native_socket fd, const endpoint& group, const endpoint& where) {
    const sockaddr* g = group.native();
    if (group.family() == address_family::ipv4) {
        if (where.family() != address_family::unspecified &&
            where.family() != address_family::ipv4) {
            throw std::system_error(
                std::make_error_code(std::errc::address_family_not_supported),
                concat({"join_multicast_group ", group.host(), ": the interface ", where.host(),
                        " is not an IPv4 address"}));
        }
        ip_mreq m{};
        m.imr_multiaddr = reinterpret_cast<const sockaddr_in*>(g)->sin_addr;
        m.imr_interface.s_addr = htonl(INADDR_ANY);
        if (where.family() == address_family::ipv4) {
            m.imr_interface = reinterpret_cast<const sockaddr_in*>(where.native())->sin_addr;
        }
        if (set_socket_option_bytes(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) == -1) {
            throw_option_error(fd, concat({"IP_ADD_MEMBERSHIP ", group.host()}));
        }
        return;
    }
    if (group.family() == address_family::ipv6) {
        ipv6_mreq m{};
        m.ipv6mr_multiaddr = reinterpret_cast<const sockaddr_in6*>(g)->sin6_addr;
        if (where.family() == address_family::ipv6) {
            m.ipv6mr_interface = reinterpret_cast<const sockaddr_in6*>(where.native())->sin6_scope_id;
        }
        if (set_socket_option_bytes(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m) == -1) {
            throw_option_error(fd, concat({"IPV6_JOIN_GROUP ", group.host()}));
        }
        return;
    }
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            concat({"join_multicast_group: ", group.to_string(),
                                    " is not an IPv4 or IPv6 group address"}));
}

// The interface multicast datagrams leave by (IP_MULTICAST_IF): an IPv4 interface address,
// or an IPv6 endpoint whose scope id names the interface.
inline void set_multicast_interface(native_socket fd, const endpoint& where) {
    if (where.family() == address_family::ipv4) {
        const in_addr a = reinterpret_cast<const sockaddr_in*>(where.native())->sin_addr;
        if (set_socket_option_bytes(fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) == -1) {
            throw_option_error(fd, concat({"IP_MULTICAST_IF ", where.host()}));
        }
        return;
    }
    if (where.family() == address_family::ipv6) {
        const int index =
            static_cast<int>(reinterpret_cast<const sockaddr_in6*>(where.native())->sin6_scope_id);
        if (set_socket_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, index) == -1) {
            throw_option_error(fd, concat({"IPV6_MULTICAST_IF ", where.host()}));
        }
        return;
    }
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "set_multicast_interface: give an IPv4 or IPv6 interface address");
}

// SO_REUSEPORT where the system has it; Windows has none (SO_REUSEADDR there means
// something else, which asyncio refuses too).
inline void set_reuse_port(native_socket fd, bool on) {
#if defined(SO_REUSEPORT)
    if (set_socket_option(fd, SOL_SOCKET, SO_REUSEPORT, on ? 1 : 0) == -1) {
        throw_option_error(fd, "SO_REUSEPORT");
    }
#else
    (void)on;
    throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                            concat({"setsockopt SO_REUSEPORT on socket ", decimal(fd),
                                    ": this system has no SO_REUSEPORT"}));
#endif
}

}  // namespace detail

class socket {
public:
    // Owns nothing: is_open() is false.
    socket() noexcept = default;

    // Takes ownership of `adopted_fd` (from accept, a socketpair, a parent process) and
    // makes it non-blocking and close-on-exec (POSIX), which the loop relies on. The socket
    // is owned even if that fails: it is closed before the exception leaves.
    explicit socket(native_socket adopted_fd) : fd_(detail::prepare_socket(adopted_fd)) {
        if (fd_ != invalid_socket) return;
        // An invalid one is passed through with no system call to say why.
        const std::error_code ec = adopted_fd == invalid_socket
                                       ? std::make_error_code(std::errc::bad_file_descriptor)
                                       : detail::system_error_code(detail::last_socket_error());
        throw std::system_error(
            ec, detail::concat({"socket: adopting descriptor ", detail::decimal(adopted_fd),
                                " (making it non-blocking and close-on-exec)"}));
    }

    // Takes ownership of a descriptor known to be non-blocking and close-on-exec already
    // (accept4 made it so): no system call.
    static socket adopt_nonblocking(native_socket fd) noexcept {
        socket s;
        s.fd_ = fd;
        return s;
    }

    socket(socket&& other) noexcept : fd_(other.fd_), port_(other.port_) { other.release(); }
    socket& operator=(socket&& other) noexcept {
        if (this != &other) {
            close_quietly();
            port_ = other.port_;
            fd_ = other.release();
        }
        return *this;
    }
    socket(const socket&) = delete;
    socket& operator=(const socket&) = delete;
    ~socket() { close_quietly(); }

    // A new socket of the family and type, non-blocking and close-on-exec (on Windows: not
    // inheritable, and overlapped for the IOCP backend).
    static socket open(address_family family, socket_type type) {
        int domain = 0;
        switch (family) {
            case address_family::ipv4:
                domain = AF_INET;
                break;
            case address_family::ipv6:
                domain = AF_INET6;
                break;
            case address_family::unix_domain:
                domain = AF_UNIX;
                break;
            default:
                throw std::system_error(
                    std::make_error_code(std::errc::address_family_not_supported),
                    "socket::open: the address family is unspecified");
        }
        const int kind = type == socket_type::stream ? SOCK_STREAM : SOCK_DGRAM;
        detail::start_sockets();
        const native_socket fd = detail::open_socket(domain, kind);
        if (fd == invalid_socket) {
            detail::throw_system_error(detail::last_socket_error(),
                                       detail::concat({"socket ", describe(family, type)}));
        }
        return adopt_nonblocking(fd);
    }

    native_socket fd() const noexcept { return fd_; }
    bool is_open() const noexcept { return fd_ != invalid_socket; }

    // Gives the descriptor up without closing it; the socket is closed (is_open() false).
    native_socket release() noexcept {
        const native_socket fd = fd_;
        fd_ = invalid_socket;
        port_ = {};
        return fd;
    }

    // The IOCP loop this socket's completions go to (detail::port_binding).
    detail::port_binding& port_binding() noexcept { return port_; }

    // Closes now; a closed socket stays closed (a second close does nothing). An error
    // other than EINTR (EBADF: someone closed our fd behind our back) is thrown.
    void close() {
        const native_socket fd = release();
        if (fd == invalid_socket) return;
        // EINTR is not retried: Linux (and POSIX 2024's reading) has released the fd by
        // then, and a retry could close a descriptor another thread just opened.
        if (detail::close_socket(fd) == -1) {
            const int err = detail::last_socket_error();
            if (!detail::interrupted(err)) {
                detail::throw_system_error(err,
                                           detail::concat({"close socket ", detail::decimal(fd)}));
            }
        }
    }

    // Binds to `address`. A Unix path that exists fails with EADDRINUSE: nothing is
    // unlinked here, since removing a file is the caller's decision, not the socket's.
    void bind(const endpoint& address) {
        if (::bind(fd_, address.native(), address.native_size()) == -1)
            detail::throw_system_error(detail::last_socket_error(),
                                       detail::concat({"bind ", address.to_string()}));
    }

    // asyncio's default backlog is 100; the kernel may cap it (somaxconn).
    void listen(int backlog = 100) {
        if (::listen(fd_, backlog) == -1)
            detail::throw_system_error(detail::last_socket_error(),
                                       detail::concat({"listen on socket ", detail::decimal(fd_)}));
    }

    // The next connection on the listening socket `listener_fd`, non-blocking and
    // close-on-exec (and SO_NOSIGPIPE where that exists), with its peer's address in
    // `peer` / `size`. On failure a closed socket, with detail::last_socket_error() saying
    // why (detail::would_block: none pending).
    static socket accept_on(native_socket listener_fd, sockaddr_storage& peer,
                            socklen_t& size) noexcept {
        size = sizeof peer;
        return adopt_nonblocking(
            detail::accept_socket(listener_fd, reinterpret_cast<sockaddr*>(&peer), &size));
    }

    void set_reuse_address(bool on) { set_flag(SOL_SOCKET, SO_REUSEADDR, on, "SO_REUSEADDR"); }
    // SO_REUSEPORT: several sockets bound to one port, the kernel spreading what comes in.
    // Windows has no such option: std::system_error(errc::operation_not_supported).
    void set_reuse_port(bool on) { detail::set_reuse_port(fd_, on); }
    void set_keep_alive(bool on) { set_flag(SOL_SOCKET, SO_KEEPALIVE, on, "SO_KEEPALIVE"); }
    // SO_BROADCAST: datagrams to a broadcast address (refused with EACCES without it).
    void set_broadcast(bool on) { set_flag(SOL_SOCKET, SO_BROADCAST, on, "SO_BROADCAST"); }
    // Joins a multicast group; `where` (the interface) as detail::join_multicast says.
    void join_multicast_group(const endpoint& group, const endpoint& where = endpoint()) {
        detail::join_multicast(fd_, group, where);
    }
    // The interface this socket's multicast datagrams leave by.
    void set_multicast_interface(const endpoint& where) {
        detail::set_multicast_interface(fd_, where);
    }
    void set_no_delay(bool on) { set_flag(IPPROTO_TCP, TCP_NODELAY, on, "TCP_NODELAY"); }
    // An IPv6 socket that takes IPv6 only, so that "::" and "0.0.0.0" can both be bound.
    void set_v6_only(bool on) { set_flag(IPPROTO_IPV6, IPV6_V6ONLY, on, "IPV6_V6ONLY"); }

    // stream or datagram (SO_TYPE); errc::protocol_not_supported for another type.
    socket_type type() const {
        int kind = 0;
        if (detail::get_socket_option(fd_, SOL_SOCKET, SO_TYPE, kind) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getsockopt SO_TYPE on socket ", detail::decimal(fd_)}));
        if (kind == SOCK_STREAM) return socket_type::stream;
        if (kind == SOCK_DGRAM) return socket_type::datagram;
        throw std::system_error(std::make_error_code(std::errc::protocol_not_supported),
                                detail::concat({"socket ", detail::decimal(fd_),
                                                " is neither a stream nor a datagram socket"}));
    }

    endpoint local_endpoint() const {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getsockname on socket ", detail::decimal(fd_)}));
        return endpoint::from_native(reinterpret_cast<const sockaddr*>(&addr), size);
    }

    endpoint remote_endpoint() const {
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &size) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getpeername on socket ", detail::decimal(fd_)}));
        return endpoint::from_native(reinterpret_cast<const sockaddr*>(&addr), size);
    }

    // The socket's pending error (SO_ERROR), cleared by reading it: how a non-blocking
    // connect reports its outcome once the socket turns writable (or, on Windows, failed).
    // Empty when none.
    std::error_code pending_error() const {
        int err = 0;
        if (detail::get_socket_option(fd_, SOL_SOCKET, SO_ERROR, err) == -1)
            detail::throw_system_error(
                detail::last_socket_error(),
                detail::concat({"getsockopt SO_ERROR on socket ", detail::decimal(fd_)}));
        return err == 0 ? std::error_code() : detail::system_error_code(err);
    }

private:
    void set_flag(int level, int name, bool on, std::string_view option) {
        if (detail::set_socket_option(fd_, level, name, on ? 1 : 0) == -1)
            detail::throw_option_error(fd_, option);
    }

    void close_quietly() noexcept {
        // A destructor cannot report; EINTR is not retried for the reason close() gives.
        if (fd_ != invalid_socket) detail::close_socket(fd_);
        fd_ = invalid_socket;
        port_ = {};
    }

    static std::string_view describe(address_family family, socket_type type) noexcept {
        const bool stream = type == socket_type::stream;
        switch (family) {
            case address_family::ipv4:
                return stream ? "(IPv4, stream)" : "(IPv4, datagram)";
            case address_family::ipv6:
                return stream ? "(IPv6, stream)" : "(IPv6, datagram)";
            default:
                return stream ? "(Unix, stream)" : "(Unix, datagram)";
        }
    }

    native_socket fd_ = invalid_socket;
    [[no_unique_address]] detail::port_binding port_;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/socket.hpp

#if defined(IOLOOP_WINDOWS)

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class iocp_io : public io_engine {
public:
    // The engine of a loop known to run a completion backend (only IOCP code asks).
    static iocp_io& of(loop_base& loop) noexcept {
        return static_cast<iocp_io&>(net_access::engine(loop));
    }

    void operation_started() noexcept { ++in_flight_; }
    // An operation that failed to start, so no completion will come.
    void operation_not_started() noexcept { --in_flight_; }

    // Sends s's completions to this loop's port, unless they go there already. A socket
    // tied to another loop's port cannot move (detail::port_binding): that is an error,
    // not a wait for completions that would never come.
    void associate_once(socket& s) {
        std::uint64_t& bound = s.port_binding().port;
        if (bound == port_id_) return;
        if (bound != 0) {
            throw invalid_state_error(
                concat({"socket ", decimal(static_cast<long long>(s.fd())),
                        " belongs to another event loop: IOCP ties a socket to one loop's "
                        "completion port for its life"}));
        }
        associate(socket_as_descriptor(s.fd()));
        bound = port_id_;
    }

    // Sends a pipe's completions to this loop's port. A handle tied to another port (an
    // earlier loop's) cannot move: CreateIoCompletionPort fails, and `what` says so.
    void associate_pipe(HANDLE h, std::string_view what) {
        try {
            associate(h);
        } catch (const std::system_error& e) {
            throw std::system_error(
                e.code(), concat({what, ": the pipe's completions cannot come to this loop (is "
                                        "it tied to another loop's completion port?)"}));
        }
    }

    // Queues op's completion through the port, for an operation that ended at its start
    // with no completion of its own. Counted in flight like any other.
    void post(overlapped_op& op) {
        operation_started();
        try {
            queue_completion(op.overlapped());
        } catch (...) {
            operation_not_started();
            throw;
        }
    }

    // A manual-reset event, made by the first pipe transport: an overlapped call given it
    // (tagged, see pipe_io.hpp) signals it instead of queuing a completion on the port.
    void make_quiet_event() {
        if (quiet_event_ != nullptr) return;
        quiet_event_ = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        if (quiet_event_ == nullptr) throw_system_error(::GetLastError(), "CreateEventW");
    }
    HANDLE quiet_event() const noexcept { return quiet_event_; }

    // Readiness is not what a completion port reports: add_reader does not compile on
    // IOCP, and what reaches these at run time (wait_readable) is told so.
    void add_watch(native_socket, unsigned, callback_node* n, const char* what, bool) override {
        n->refs.store(1, memory_order::relaxed);
        n->release();
        no_readiness(what);
    }
    bool remove_watch(native_socket, unsigned) override { return false; }
    void watch(native_socket, unsigned, unsigned new_events, io_watcher&) override {
        if (new_events != 0) no_readiness("watching a descriptor");
    }

protected:
    iocp_io() noexcept : io_engine(io_family::completion) {
        static atomic<std::uint64_t> ports{0};
        port_id_ = ports.fetch_add(1, memory_order::relaxed) + 1;
    }
    ~iocp_io() {
        if (quiet_event_ != nullptr) ::CloseHandle(quiet_event_);
    }

    virtual void associate(HANDLE h) = 0;
    virtual void queue_completion(OVERLAPPED* o) = 0;

    [[noreturn]] static void no_readiness(const char* what) {
        throw std::system_error(
            std::make_error_code(std::errc::operation_not_supported),
            concat({what, ": a completion backend (IOCP) cannot wait for readiness; use the "
                          "transports, streams or sock_* operations, or a readiness backend "
                          "(select)"}));
    }

    std::size_t in_flight_ = 0;  // operations started and not yet completed
    std::uint64_t port_id_;      // names this loop's port (never 0)
    HANDLE quiet_event_ = nullptr;
};

// Shorthands for IOCP code that holds a loop.
inline void associate_once(loop_base& loop, socket& s) { iocp_io::of(loop).associate_once(s); }
inline void operation_started(loop_base& loop) noexcept { iocp_io::of(loop).operation_started(); }
inline void operation_not_started(loop_base& loop) noexcept {
    iocp_io::of(loop).operation_not_started();
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/iocp_io.hpp
// begin file ioloop/net/iocp/overlapped_sock_ops.hpp
// ioloop: the loop's awaitable socket operations (sock_recv, sock_sendall, sock_accept,
// sock_connect, sock_recvfrom, sock_sendto) on a completion backend. Each tries the
// non-blocking call first, as the readiness side does, so data already there costs no
// overlapped operation; only WSAEWOULDBLOCK starts one (detail::overlapped_call).
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_SOCK_OPS_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_SOCK_OPS_HPP

// begin file ioloop/net/iocp/overlapped_accept.hpp
// ioloop: AcceptEx on a completion backend: the pieces sock_accept and a server's
// listeners share, and accept_op, the one AcceptEx a listener keeps in flight. The
// socket AcceptEx fills and the room for the addresses belong to the kernel until the
// completion, so the operation owns them and frees itself only then.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_ACCEPT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_ACCEPT_HPP


#if defined(IOLOOP_WINDOWS)

#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_overlapped_error(unsigned long err, std::string_view op,
                                                native_socket s) {
    throw_system_error(err, concat({op, " on socket ", decimal(static_cast<long long>(s))}));
}

// AcceptEx wants room for both addresses, each 16 bytes longer than the largest.
struct accept_buffer {
    static constexpr DWORD address_room = sizeof(sockaddr_storage) + 16;
    char bytes[2 * address_room];

    // The peer's address, once AcceptEx completed.
    endpoint peer() noexcept {
        sockaddr* local = nullptr;
        sockaddr* remote = nullptr;
        int local_size = 0;
        int remote_size = 0;
        ::GetAcceptExSockaddrs(bytes, 0, address_room, address_room, &local, &local_size, &remote,
                               &remote_size);
        return remote && remote_size > 0 ? endpoint::from_native(remote, remote_size) : endpoint();
    }
};

// The family of a bound socket, for the socket AcceptEx fills.
inline address_family family_of(native_socket s) {
    sockaddr_storage addr{};
    int size = sizeof addr;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &size) != 0)
        throw_overlapped_error(::WSAGetLastError(), "getsockname", s);
    switch (addr.ss_family) {
        case AF_INET:
            return address_family::ipv4;
        case AF_INET6:
            return address_family::ipv6;
        default:
            return address_family::unix_domain;
    }
}

// Completes an accepted socket: it inherits the listener's options only once told.
inline void update_accept_context(native_socket listener, native_socket conn) {
    if (::setsockopt(conn, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                     reinterpret_cast<const char*>(&listener), sizeof listener) != 0)
        throw_overlapped_error(::WSAGetLastError(), "SO_UPDATE_ACCEPT_CONTEXT", conn);
}

// Starts AcceptEx on `listener` into `conn` with `o`: 0 once started, or the error.
inline unsigned long start_accept(native_socket listener, native_socket conn,
                                  accept_buffer& addresses, OVERLAPPED* o) noexcept {
    DWORD received = 0;
    if (::AcceptEx(listener, conn, addresses.bytes, 0, accept_buffer::address_room,
                   accept_buffer::address_room, &received, o))
        return 0;
    const int err = ::WSAGetLastError();
    return err == ERROR_IO_PENDING ? 0 : static_cast<unsigned long>(err);
}

// A listener's AcceptEx in flight. Owner::accepted(socket, endpoint peer, std::error_code)
// noexcept receives the connection, or the error.
template <class Owner>
class accept_op final : public overlapped_op {
public:
    // Starts accepting on `listener`, a socket of `family` associated with the loop's
    // port; throws if AcceptEx cannot start.
    static accept_op* start(loop_base& loop, native_socket listener, address_family family,
                            Owner& owner) {
        auto* op = new accept_op(owner, listener, socket::open(family, socket_type::stream));
        operation_started(loop);
        if (const unsigned long err =
                start_accept(listener, op->conn_.fd(), op->addresses_, op->overlapped())) {
            operation_not_started(loop);
            delete op;
            throw_overlapped_error(err, "AcceptEx", listener);
        }
        return op;
    }

    // The owner goes away (or stops accepting): the completion, cancelled, frees the op.
    void orphan() noexcept {
        owner_ = nullptr;
        ::CancelIoEx(reinterpret_cast<HANDLE>(listener_), overlapped());
    }

    std::string describe() const override {
        return concat(
            {"the server accepting on socket ", decimal(static_cast<long long>(listener_))});
    }

private:
    accept_op(Owner& owner, native_socket listener, socket conn) noexcept
        : owner_(&owner), listener_(listener), conn_(std::move(conn)) {}

    void on_io(unsigned) noexcept override {
        if (Owner* owner = owner_) {
            unsigned long bytes = 0;
            const unsigned long err = result(listener_, bytes);
            std::error_code ec = err == 0 ? std::error_code() : system_error_code(err);
            endpoint peer;
            if (!ec) {
                try {
                    update_accept_context(listener_, conn_.fd());
                    peer = addresses_.peer();
                } catch (const std::system_error& e) {
                    ec = e.code();
                }
            }
            owner->accepted(std::move(conn_), std::move(peer), ec);
        }
        delete this;
    }

    Owner* owner_;
    native_socket listener_;
    socket conn_;
    accept_buffer addresses_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/overlapped_accept.hpp
// begin file ioloop/net/iocp/overlapped_call.hpp
// ioloop: overlapped_call, the current task starts one overlapped operation (WSARecv,
// WSASend, AcceptEx, ConnectEx, WSARecvFrom, WSASendTo) on a completion backend and waits
// for its completion: the IOCP side of what fd_ready is on the readiness backends.
//
// Buffer ownership: the kernel owns the OVERLAPPED and the buffers until the completion
// is dequeued. So cancelling the task cancels the operation (CancelIoEx) and the task
// wakes only with that completion; and an operation whose task is destroyed mid-flight
// (its loop is closing) waits there for the kernel to let go, then frees itself when the
// loop dequeues its completion.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_CALL_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_CALL_HPP


#if defined(IOLOOP_WINDOWS)

#include <coroutine>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What an overlapped operation ended with: the bytes moved and Winsock's error (0: none).
struct overlapped_result {
    unsigned long bytes = 0;
    unsigned long error = 0;
};

class overlapped_wait : public wait_point {
public:
    overlapped_wait(const overlapped_wait&) = delete;
    overlapped_wait& operator=(const overlapped_wait&) = delete;

    bool await_ready() const noexcept { return false; }

    // A cancelled operation throws cancelled_error. One that completed although the task
    // was cancelled meanwhile returns its result (its bytes are not lost); the cancel
    // stays pending for the task's next suspension point.
    overlapped_result await_resume() {
        if (result_.error == ERROR_OPERATION_ABORTED) task_->throw_if_cancelled();
        return result_;
    }

    void on_cancel(task_base&) noexcept override {
        if (op_) ::CancelIoEx(reinterpret_cast<HANDLE>(s_), op_->overlapped());
    }

protected:
    overlapped_wait(loop_base& loop, native_socket s) noexcept : loop_(loop), s_(s) {}
    ~overlapped_wait() {
        if (op_) op_->orphan(s_);
    }

    // Starts the operation through start(OVERLAPPED*), which returns 0 once it is started
    // (pending or done: either way a completion will come) or Winsock's error.
    template <class Start>
    bool suspend_for(std::coroutine_handle<> h, Start& start) {
        task_ = &current_task_or_throw("waiting for a socket operation");
        auto* op = new call_op(*this);
        operation_started(loop_);
        if (const unsigned long err = start(op->overlapped())) {
            operation_not_started(loop_);
            delete op;
            result_.error = err;
            return false;  // resumes at once with the error
        }
        op_ = op;
        task_->suspend(h, this);
        return true;
    }

private:
    class call_op final : public overlapped_op {
    public:
        explicit call_op(overlapped_wait& owner) noexcept : owner_(&owner) {}

        // The task went away with the operation in flight: cancel it and wait until the
        // kernel is done with its buffers (they live in the task's frame).
        void orphan(native_socket s) noexcept {
            owner_ = nullptr;
            ::CancelIoEx(reinterpret_cast<HANDLE>(s), overlapped());
            while (!HasOverlappedIoCompleted(overlapped())) ::SwitchToThread();
        }

    private:
        void on_io(unsigned) noexcept override {
            if (overlapped_wait* w = owner_) {
                w->op_ = nullptr;
                w->result_.error = result(w->s_, w->result_.bytes);
                w->task_->wake();
            }
            delete this;
        }

        overlapped_wait* owner_;
    };

    loop_base& loop_;
    native_socket s_;
    task_base* task_ = nullptr;
    call_op* op_ = nullptr;  // in flight
    overlapped_result result_;
};

// `co_await overlapped_call(loop, s, start)`: start(OVERLAPPED*) makes the Winsock call.
template <class Start>
class overlapped_call final : public overlapped_wait {
public:
    overlapped_call(loop_base& loop, native_socket s, Start start)
        : overlapped_wait(loop, s), start_(std::move(start)) {}

    bool await_suspend(std::coroutine_handle<> h) { return suspend_for(h, start_); }

private:
    Start start_;
};

// Winsock's answer to an overlapped call: 0 if it started, else the error.
inline unsigned long started(int rc) noexcept {
    if (rc == 0) return 0;
    const int err = ::WSAGetLastError();
    return err == WSA_IO_PENDING ? 0 : static_cast<unsigned long>(err);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/overlapped_call.hpp

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// One WSABUF over bytes the caller owns; Winsock counts in ULONG.
inline WSABUF wsa_buffer(const void* data, std::size_t size) noexcept {
    WSABUF b;
    b.buf = static_cast<char*>(const_cast<void*>(data));
    b.len = size > ULONG_MAX ? ULONG_MAX : static_cast<ULONG>(size);
    return b;
}

template <class = void>
coro<std::size_t> overlapped_recv_into(loop_base& loop, socket& s, std::span<std::byte> buf) {
    const native_socket fd = s.fd();
    const int len = buf.size() > INT_MAX ? INT_MAX : static_cast<int>(buf.size());
    const int n = ::recv(fd, reinterpret_cast<char*>(buf.data()), len, 0);
    if (n >= 0) co_return static_cast<std::size_t>(n);
    const int err = ::WSAGetLastError();
    if (err != WSAEWOULDBLOCK) throw_overlapped_error(err, "sock_recv", fd);
    associate_once(loop, s);
    WSABUF b = wsa_buffer(buf.data(), buf.size());
    auto start = [fd, &b](OVERLAPPED* o) {
        DWORD flags = 0;
        return started(::WSARecv(fd, &b, 1, nullptr, &flags, o, nullptr));
    };
    const overlapped_result r = co_await overlapped_call(loop, fd, start);
    // A graceful close by the peer is a completion of 0 bytes, as recv's 0 is.
    if (r.error != 0 && r.error != WSAEDISCON) throw_overlapped_error(r.error, "sock_recv", fd);
    co_return r.bytes;
}

template <class = void>
coro<void> overlapped_sendall(loop_base& loop, socket& s, std::string_view data) {
    const native_socket fd = s.fd();
    while (!data.empty()) {
        const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
        const int n = ::send(fd, data.data(), len, 0);
        if (n >= 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        const int err = ::WSAGetLastError();
        if (err != WSAEWOULDBLOCK) throw_overlapped_error(err, "sock_sendall", fd);
        // The kernel's buffer is full: one overlapped send of all the rest, which
        // completes once Winsock has taken every byte.
        associate_once(loop, s);
        WSABUF b = wsa_buffer(data.data(), data.size());
        auto start = [fd, &b](OVERLAPPED* o) {
            return started(::WSASend(fd, &b, 1, nullptr, 0, o, nullptr));
        };
        const overlapped_result r = co_await overlapped_call(loop, fd, start);
        if (r.error != 0) throw_overlapped_error(r.error, "sock_sendall", fd);
        data.remove_prefix(r.bytes);
    }
}

template <class = void>
coro<std::pair<socket, endpoint>> overlapped_accept(loop_base& loop, socket& listener) {
    const native_socket lfd = listener.fd();
    associate_once(loop, listener);
    for (;;) {
        socket conn = socket::open(family_of(lfd), socket_type::stream);
        accept_buffer addresses;
        const native_socket cfd = conn.fd();
        auto start = [lfd, cfd, &addresses](OVERLAPPED* o) {
            return start_accept(lfd, cfd, addresses, o);
        };
        const overlapped_result r = co_await overlapped_call(loop, lfd, start);
        // The client gave up before we took its connection: take the next.
        if (r.error == WSAECONNRESET || r.error == ERROR_NETNAME_DELETED) continue;
        if (r.error != 0) throw_overlapped_error(r.error, "sock_accept", lfd);
        update_accept_context(lfd, cfd);
        endpoint peer = addresses.peer();
        co_return std::pair<socket, endpoint>(std::move(conn), std::move(peer));
    }
}

// ConnectEx is an extension: Winsock hands out its address on request, once.
inline LPFN_CONNECTEX connect_ex(native_socket s) {
    static LPFN_CONNECTEX fn = nullptr;
    if (fn) return fn;
    GUID id = WSAID_CONNECTEX;
    DWORD size = 0;
    LPFN_CONNECTEX found = nullptr;
    if (::WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &found, sizeof found,
                   &size, nullptr, nullptr) != 0)
        throw_overlapped_error(::WSAGetLastError(), "WSAIoctl(ConnectEx)", s);
    fn = found;
    return fn;
}

// ConnectEx wants a bound socket: bind to the wildcard address of to's family unless
// the caller bound it already.
inline void bind_for_connect(native_socket s, const endpoint& to) {
    sockaddr_storage mine{};
    int size = sizeof mine;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&mine), &size) == 0) return;
    sockaddr_storage any{};
    any.ss_family = static_cast<ADDRESS_FAMILY>(to.native()->sa_family);
    const int any_size = any.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::bind(s, reinterpret_cast<sockaddr*>(&any), any_size) != 0)
        throw_overlapped_error(::WSAGetLastError(), "bind before ConnectEx", s);
}

template <class = void>
coro<void> overlapped_connect(loop_base& loop, socket& s, endpoint to, const char* what) {
    const native_socket fd = s.fd();
    bind_for_connect(fd, to);
    associate_once(loop, s);
    LPFN_CONNECTEX connect = connect_ex(fd);
    auto start = [fd, connect, &to](OVERLAPPED* o) {
        if (connect(fd, to.native(), static_cast<int>(to.native_size()), nullptr, 0, nullptr, o))
            return 0ul;
        const int err = ::WSAGetLastError();
        return err == ERROR_IO_PENDING ? 0ul : static_cast<unsigned long>(err);
    };
    const overlapped_result r = co_await overlapped_call(loop, fd, start);
    if (r.error != 0) {
        throw std::system_error(system_error_code(r.error),
                                concat({what, " to ", to.to_string()}));
    }
    // Until told, the socket does not know it is connected (getpeername, shutdown).
    if (::setsockopt(fd, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0) != 0)
        throw_overlapped_error(::WSAGetLastError(), "SO_UPDATE_CONNECT_CONTEXT", fd);
}

// One datagram into buf (the caller's: it outlives the operation, as sock_recvfrom_into
// asks), and its sender.
template <class = void>
coro<std::pair<std::size_t, endpoint>> overlapped_recvfrom_into(loop_base& loop, socket& s,
                                                               std::span<std::byte> buf) {
    const native_socket fd = s.fd();
    char* into = reinterpret_cast<char*>(buf.data());
    sockaddr_storage addr{};
    int size = sizeof addr;
    auto* native = reinterpret_cast<sockaddr*>(&addr);
    const int len = buf.size() > INT_MAX ? INT_MAX : static_cast<int>(buf.size());
    int n = ::recvfrom(fd, into, len, 0, native, &size);
    if (n < 0) {
        const int err = ::WSAGetLastError();
        if (err != WSAEWOULDBLOCK) throw_overlapped_error(err, "sock_recvfrom", fd);
        associate_once(loop, s);
        WSABUF b = wsa_buffer(into, buf.size());
        size = sizeof addr;
        auto start = [fd, &b, native, &size](OVERLAPPED* o) {
            DWORD flags = 0;
            return started(::WSARecvFrom(fd, &b, 1, nullptr, &flags, native, &size, o, nullptr));
        };
        const overlapped_result r = co_await overlapped_call(loop, fd, start);
        if (r.error != 0) throw_overlapped_error(r.error, "sock_recvfrom", fd);
        n = static_cast<int>(r.bytes);
    }
    endpoint from = size <= 0 ? endpoint() : endpoint::from_native(native, size);
    co_return std::pair<std::size_t, endpoint>(static_cast<std::size_t>(n), std::move(from));
}

template <class = void>
coro<std::size_t> overlapped_sendto(loop_base& loop, socket& s, std::string_view data,
                                    endpoint to) {
    const native_socket fd = s.fd();
    const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
    const int n =
        ::sendto(fd, data.data(), len, 0, to.native(), static_cast<int>(to.native_size()));
    if (n >= 0) co_return static_cast<std::size_t>(n);
    const int err = ::WSAGetLastError();
    if (err != WSAEWOULDBLOCK) {
        throw_system_error(err, concat({"sock_sendto ", to.to_string(), " on socket ",
                                        decimal(static_cast<long long>(fd))}));
    }
    associate_once(loop, s);
    WSABUF b = wsa_buffer(data.data(), data.size());
    auto start = [fd, &b, &to](OVERLAPPED* o) {
        return started(::WSASendTo(fd, &b, 1, nullptr, 0, to.native(),
                                   static_cast<int>(to.native_size()), o, nullptr));
    };
    const overlapped_result r = co_await overlapped_call(loop, fd, start);
    if (r.error != 0) throw_overlapped_error(r.error, "sock_sendto", fd);
    co_return r.bytes;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/overlapped_sock_ops.hpp

#if defined(IOLOOP_WINDOWS)

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Backend>
class iocp_engine final : public iocp_io {
public:
    iocp_engine(loop_base&, Backend& backend) noexcept : backend_(backend) {}
    ~iocp_engine() = default;

    // ---- the loop's hooks (basic_event_loop calls these directly) ----------------------

    // An operation is in flight: the poll step must wait for its completion.
    bool waiting() const noexcept { return in_flight_ != 0; }
    // Each event is one operation's completion.
    void event_arrived() noexcept { --in_flight_; }
    void after_poll() noexcept {}
    // add_reader does not compile on IOCP: there is no table of watched descriptors.
    void close_watches(node_queue&) noexcept {}
    // Closing: the transports, servers and tasks have closed their sockets or cancelled
    // their operations, but the kernel owns each operation's memory until its completion
    // is dequeued. So the loop waits for them all (cancelled operations complete at
    // once), and each frees itself.
    void finish_operations() noexcept {
        try {
            while (in_flight_ != 0) {
                backend_.wait(std::chrono::nanoseconds(-1), [this](void* data, unsigned) noexcept {
                    --in_flight_;
                    static_cast<io_watcher*>(data)->on_io(0);
                });
            }
        } catch (...) {
            // The port failed: what is left is leaked rather than freed under the kernel.
        }
    }

    // ---- the sock_* operations (net/overlapped_sock_ops.hpp) ---------------------------

    coro<void> sock_connect(loop_base& loop, socket& s, endpoint to) {
        return overlapped_connect(loop, s, std::move(to), "sock_connect");
    }

    coro<std::size_t> sock_recv_into(loop_base& loop, socket& s, std::span<std::byte> buf) {
        return overlapped_recv_into(loop, s, buf);
    }
    coro<void> sock_sendall(loop_base& loop, socket& s, std::string_view data) {
        return overlapped_sendall(loop, s, data);
    }
    coro<std::pair<socket, endpoint>> sock_accept(loop_base& loop, socket& listener) {
        return overlapped_accept(loop, listener);
    }
    // No TransmitFile: loop.sock_sendfile falls back to reads and sends here.
    static constexpr bool native_sendfile = false;

    coro<std::pair<std::size_t, endpoint>> sock_recvfrom_into(loop_base& loop, socket& s,
                                                             std::span<std::byte> buf) {
        return overlapped_recvfrom_into(loop, s, buf);
    }
    coro<std::size_t> sock_sendto(loop_base& loop, socket& s, std::string_view data,
                                  endpoint to) {
        return overlapped_sendto(loop, s, data, std::move(to));
    }

private:
    void associate(HANDLE h) override { backend_.associate(h); }
    void queue_completion(OVERLAPPED* o) override { backend_.post(o); }

    Backend& backend_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/engine.hpp
// begin file ioloop/net/iocp/ops.hpp
// ioloop: iocp_ops, what the networking layer asks of the completion family (IOCP): its
// transports, its connect and its listeners. Plain functions, compiled only where a
// program uses them; net/engines.hpp (with_family) is the one place that picks them.
#ifndef IOLOOP_NET_IOCP_OPS_HPP
#define IOLOOP_NET_IOCP_OPS_HPP

// begin file ioloop/net/iocp/listener.hpp
// ioloop: iocp_listener, a listening socket on a completion backend: one AcceptEx in
// flight while its server serves, the next started as each completes.
#ifndef IOLOOP_NET_IOCP_LISTENER_HPP
#define IOLOOP_NET_IOCP_LISTENER_HPP

// begin file ioloop/net/server_state.hpp
// ioloop: server_state, what a server is while it lives: its listening sockets, each
// served by a listener of the loop's backend family (net/reactive/listener.hpp,
// net/iocp/listener.hpp), the factory of its connections' protocols, and its count of
// connections. `server` (net/server.hpp) is the handle users hold.
//
// Accepting under EMFILE (no descriptor left): the server reports it once through the
// loop's exception handler, stops accepting for 100 ms and tries again, so it neither
// spins nor gives up; the pending clients wait in the kernel's backlog.
#ifndef IOLOOP_NET_SERVER_STATE_HPP
#define IOLOOP_NET_SERVER_STATE_HPP

// begin file ioloop/net/stream_core.hpp
// ioloop: what every stream transport does the same way, whatever moves its bytes: the
// checks of write(), write_eof and the half-close that waits for the buffer, pausing and
// resuming reading, the peer's EOF, what follows when the write buffer empties, and a
// server's count of its connections. Written once for both backend families: Derived
// (socket_transport, overlapped_socket_transport) only moves the bytes.
//
// Derived provides, besides what transport_core asks of it: send_or_buffer(data) (called
// with data to send on an open transport), has_write_buffer(), shutdown_write(). It may
// hide reads() and writes() (both true here): a pipe moves bytes one way only. It reads
// through receive(recv), which decides where the bytes go: a plain protocol's go to the
// loop's shared buffer and on to data_received, a buffered protocol's straight into the
// span its get_buffer lends.
#ifndef IOLOOP_NET_STREAM_CORE_HPP
#define IOLOOP_NET_STREAM_CORE_HPP

// begin file ioloop/net/sendfile_gate.hpp
// ioloop: sendfile_gate, what loop.sendfile (net/sendfile.hpp) and the stream transport it
// sends through share while it runs. The transport refuses the user's write() (asyncio:
// "sendfile is in progress"), and sets `changed` when something the sendfile waits for
// happens: its write buffer emptied, its socket turned writable (while want_writable), or
// it went away (gone: the sendfile must not touch it again).
#ifndef IOLOOP_NET_SENDFILE_GATE_HPP
#define IOLOOP_NET_SENDFILE_GATE_HPP


IOLOOP_NAMESPACE_BEGIN
namespace detail {

class connection_counter;  // net/stream_core.hpp

struct sendfile_gate {
    event changed;
    bool want_writable = false;  // native sendfile: the socket was full, wake when writable
    bool own_write = false;      // the fallback's own write(), which the gate lets through
    bool gone = false;           // the transport is destroyed
    connection_counter* server = nullptr;  // the transport's, kept here while the gate is set

    void wake() noexcept { changed.set(); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/sendfile_gate.hpp
// begin file ioloop/net/transport.hpp
// ioloop: transports, asyncio's callback networking interface: the connection a protocol
// writes to. `transport` is a stream (TCP, Unix stream socket), `datagram_transport` a
// datagram socket. Each backend family has its own implementation behind these
// interfaces (readiness: net/socket_transport.hpp), so the protocols and the streams
// above them are the same code everywhere.
//
// Lifetime: a transport owns itself. It stays valid until its protocol's connection_lost
// has returned, then it is destroyed with the protocol. Closing the loop destroys the
// transports that are still open, without callbacks.
#ifndef IOLOOP_NET_TRANSPORT_HPP
#define IOLOOP_NET_TRANSPORT_HPP


#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

namespace detail {
struct sendfile_gate;    // net/sendfile_gate.hpp
struct sendfile_access;  // net/sendfile.hpp
struct tls_access;       // net/start_tls.hpp
struct owned_stream_protocol;
}  // namespace detail

// What get_extra_info returns: an address ("peername", "sockname"), a descriptor
// ("socket": a SOCKET on Windows; "pipe": read it with pipe(), a HANDLE on Windows), text
// (a TLS transport's "cipher", "ssl_version", "alpn_protocol", "peercert" as PEM), a
// library's object ("ssl_object": OpenSSL's SSL*, as void*), or nothing (an unknown name,
// or a transport already closed).
class extra_info {
public:
    extra_info() noexcept = default;
    explicit extra_info(endpoint address) : kind_(kind::address), address_(std::move(address)) {}
    explicit extra_info(native_socket fd) noexcept : kind_(kind::descriptor), fd_(fd) {}
    explicit extra_info(std::string text) : kind_(kind::text), text_(std::move(text)) {}
    explicit extra_info(void* object) noexcept : kind_(kind::object), object_(object) {}

    bool has_value() const noexcept { return kind_ != kind::none; }
    explicit operator bool() const noexcept { return has_value(); }
    bool is_address() const noexcept { return kind_ == kind::address; }
    bool is_descriptor() const noexcept { return kind_ == kind::descriptor; }
    bool is_text() const noexcept { return kind_ == kind::text; }
    bool is_handle() const noexcept { return kind_ == kind::object; }

    const endpoint& address() const {
        if (kind_ != kind::address) throw invalid_state_error("extra_info: not an address");
        return address_;
    }
    native_socket fd() const {
        if (kind_ != kind::descriptor) throw invalid_state_error("extra_info: not a descriptor");
        return fd_;
    }
    const std::string& text() const {
        if (kind_ != kind::text) throw invalid_state_error("extra_info: not text");
        return text_;
    }
    // A library's object, to be cast back to its type ("ssl_object": SSL*).
    void* handle() const {
        if (kind_ != kind::object) throw invalid_state_error("extra_info: not a handle");
        return object_;
    }
    // A pipe transport's descriptor ("pipe"), as connect_read_pipe / connect_write_pipe
    // took it: fd() on POSIX, the pipe's HANDLE on Windows.
    native_descriptor pipe() const { return detail::socket_as_descriptor(fd()); }

private:
    enum class kind : unsigned char { none, address, descriptor, text, object };
    kind kind_ = kind::none;
    endpoint address_;
    native_socket fd_ = invalid_socket;
    std::string text_;
    void* object_ = nullptr;
};

// asyncio's defaults: pause the protocol above 64 KiB buffered, resume at a quarter.
inline constexpr std::size_t default_write_high_water = 64 * 1024;

// The write-buffer limits, as asyncio's get_write_buffer_limits() gives them.
struct write_buffer_limits {
    std::size_t low;
    std::size_t high;
};

class base_transport : public detail::loop_resource {
public:
    // Stops reading at once; buffered writes are still sent, then the connection is
    // closed and connection_lost(no error) is called on a later iteration. Closing twice
    // does nothing.
    virtual void close() = 0;
    // Closes at once, dropping buffered writes; connection_lost(no error) follows.
    virtual void abort() = 0;
    // True once close() or abort() was called, or the connection was lost.
    virtual bool is_closing() const noexcept = 0;

    // "peername", "sockname" (addresses), "socket" (the descriptor); a pipe transport
    // (connect_read_pipe, connect_write_pipe) has "pipe" (its descriptor) alone; nothing
    // otherwise.
    virtual extra_info get_extra_info(std::string_view name) const = 0;

    // get_extra_info("peername") and ("sockname"), typed. An endpoint rather than an
    // optional: endpoint has its own empty value, the unspecified address
    // (family() == address_family::unspecified), given when there is no address: a pipe,
    // a transport already closed, a datagram socket with no peer.
    endpoint peername() const { return address_of("peername"); }
    endpoint sockname() const { return address_of("sockname"); }

    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    // asyncio's rule: high alone sets low to high / 4; low alone sets high to 4 * low;
    // neither gives the defaults. `low` must not exceed `high` (std::invalid_argument).
    virtual void set_write_buffer_limits(std::size_t high = unset, std::size_t low = unset) = 0;
    virtual write_buffer_limits get_write_buffer_limits() const noexcept = 0;

    static constexpr std::size_t unset = static_cast<std::size_t>(-1);

protected:
    base_transport() = default;
    ~base_transport() override = default;

private:
    endpoint address_of(std::string_view name) const {
        extra_info info = get_extra_info(name);
        return info.is_address() ? info.address() : endpoint();
    }
};

namespace detail {

// Bytes as the transports take them: std::byte and char have the same representation.
inline std::string_view as_chars(std::span<const std::byte> data) noexcept {
    return std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
}

}  // namespace detail

class transport : public base_transport {
public:
    // Sends data, buffering what the socket does not take now; never blocks.
    // After close(), abort() or write_eof(): invalid_state_error (a bug in the caller).
    // After the connection was lost to an error: dropped (connection_lost reports it).
    virtual void write(std::string_view data) = 0;
    // The same for raw bytes (std::as_bytes(std::span(v)) of any trivially copyable v).
    void write(std::span<const std::byte> data) { write(detail::as_chars(data)); }

    // The pieces, in order, as one write.
    template <class Range>
    void writelines(const Range& pieces) {
        std::string joined;
        for (const auto& piece : pieces) joined.append(std::string_view(piece));
        write(joined);
    }
    void writelines(std::initializer_list<std::string_view> pieces) {
        writelines<std::initializer_list<std::string_view>>(pieces);
    }

    // Half-close: the peer reads EOF once the buffered writes are sent; reading goes on.
    virtual void write_eof() = 0;
    virtual bool can_write_eof() const noexcept = 0;

    // Flow control from the reading side: no data_received until resume_reading().
    // Both are idempotent.
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
    virtual bool is_reading() const noexcept = 0;

protected:
    transport() = default;
    ~transport() override = default;

private:
    friend struct detail::sendfile_access;
    friend struct detail::tls_access;
    // loop.start_tls's hook: puts `p` in the place of this transport's protocol and gives
    // the one it had back (which a TLS layer over this transport then owns). False: this
    // transport cannot (a TLS transport already, or one of the program's own).
    virtual bool exchange_protocol(detail::owned_stream_protocol& p) noexcept {
        (void)p;
        return false;
    }
    // loop.sendfile's hooks (net/sendfile.hpp). The socket sendfile(2) may write to: a
    // plain socket's on a readiness backend, none otherwise (the fallback is used then).
    virtual native_socket sendfile_socket() const noexcept { return invalid_socket; }
    // The gate of the sendfile that runs, or nullptr when it ends; set again after a
    // change of its want_writable. False: the transport cannot take one (another runs, or
    // it is a transport of the program's own, which knows no gate: a test's fake).
    virtual bool set_sendfile_gate(detail::sendfile_gate* gate) noexcept {
        (void)gate;
        return false;
    }
};

class datagram_transport : public base_transport {
public:
    // Sends one datagram to `to` (or to the connected peer when `to` is unspecified).
    // Datagrams the socket cannot take now are queued and sent in order.
    virtual void sendto(std::string_view data, const endpoint& to = endpoint()) = 0;
    void sendto(std::span<const std::byte> data, const endpoint& to = endpoint()) {
        sendto(detail::as_chars(data), to);
    }

    // Multicast, which asyncio leaves to setsockopt on get_extra_info("socket"): here on
    // the transport, so that the same call works on every backend and a closed transport
    // says so. Joins `group` on the interface `where` (IPv4: the interface's address,
    // unspecified for the routing table's choice; IPv6: an endpoint whose scope id names
    // it); set_multicast_interface chooses the interface datagrams to a group leave by
    // (loopback: endpoint "127.0.0.1").
    virtual void join_multicast_group(const endpoint& group, const endpoint& where = endpoint()) = 0;
    virtual void set_multicast_interface(const endpoint& where) = 0;

protected:
    datagram_transport() = default;
    ~datagram_transport() override = default;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/transport.hpp
// begin file ioloop/net/transport_core.hpp
// ioloop: what the readiness transports (stream and datagram) share: the socket and its
// protocol, the backend registration, write flow control, and the way to the end, where
// connection_lost runs on a later iteration and the transport frees itself.
//
// A transport is its own io_watcher, so an event reaches it without a lookup, and its
// protocol runs right inside the poll step. It is freed only by a posted callback, so an
// event still to come in the same poll batch never reaches freed memory.
#ifndef IOLOOP_NET_TRANSPORT_CORE_HPP
#define IOLOOP_NET_TRANSPORT_CORE_HPP


#include <cstddef>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Reports an exception a protocol's callback threw; `hook` names the callback.
inline void report_protocol_error(loop_base& loop, std::string_view hook) noexcept {
    try {
        loop.call_exception_handler(
            {concat({"Fatal error: protocol.", hook, "() call failed."}), std::current_exception(),
             {}});
    } catch (...) {
    }
}

// Checks asyncio's rule for set_write_buffer_limits and fills in the missing one.
inline write_buffer_limits resolve_write_limits(std::size_t high, std::size_t low) {
    if (high == base_transport::unset) {
        high = low == base_transport::unset ? default_write_high_water : 4 * low;
    }
    if (low == base_transport::unset) low = high / 4;
    if (low > high) {
        throw std::invalid_argument(concat({"set_write_buffer_limits: high (", decimal(high),
                                            ") must be >= low (", decimal(low), ")"}));
    }
    return {low, high};
}

// Derived provides: wanted_events() (what to watch now), buffered() (bytes not sent
// yet), drop_buffer(), and on_io. Interface is transport or datagram_transport.
template <class Derived, class Interface, class Protocol>
class transport_core : public Interface, protected io_watcher {
public:
    bool is_closing() const noexcept final { return closing_; }

    void close() final {
        user_closed_ = true;
        start_closing();
    }

    void abort() final {
        user_closed_ = true;
        force_close({});
    }

    std::size_t get_write_buffer_size() const noexcept final { return self().buffered(); }

    void set_write_buffer_limits(std::size_t high, std::size_t low) final {
        const write_buffer_limits limits = resolve_write_limits(high, low);
        high_ = limits.high;
        low_ = limits.low;
        maybe_pause_protocol();
    }
    write_buffer_limits get_write_buffer_limits() const noexcept final { return {low_, high_}; }

    // What Derived knows of its descriptor (a socket's addresses, a pipe's number).
    extra_info get_extra_info(std::string_view name) const final { return self().extra(name); }

protected:
    std::string describe() const override {
        return concat({"the transport of socket ", decimal(fd_)});
    }

    transport_core(loop_base& loop, native_socket fd, std::unique_ptr<Protocol> p) noexcept
        : loop_(loop), protocol_(std::move(p)), fd_(fd) {}
    ~transport_core() override = default;

    // Makes a Derived(loop, fd, protocol, extra...) that owns fd, watches it and tells the
    // protocol. If that fails (no memory; the backend cannot take the descriptor), fd is
    // closed and the protocol dropped without a callback, and the error is thrown.
    template <class P, class... Extra>
    static Derived& start(loop_base& loop, native_socket fd, P p, Extra&&... extra) {
        Derived* t;
        try {
            t = new Derived(loop, fd, std::move(p), extra...);
        } catch (...) {
            Derived::close_unmade(fd, extra...);
            throw;
        }
        try {
            t->update_watch_or_throw();
        } catch (...) {
            t->close_and_free();
            throw;
        }
        net_access::add_resource(t->loop_, *t);
        t->opened();
        try {
            t->tell_connection_made();
        } catch (...) {
            t->protocol_failed("connection_made");
        }
        return *t;
    }

    // ---- flow control -------------------------------------------------------------------

    void maybe_pause_protocol() noexcept {
        if (protocol_paused_ || self().buffered() <= high_) return;
        protocol_paused_ = true;
        try {
            protocol_->pause_writing();
        } catch (...) {
            report_protocol_error(loop_, "pause_writing");
        }
    }

    void maybe_resume_protocol() noexcept {
        if (!protocol_paused_ || self().buffered() > low_) return;
        protocol_paused_ = false;
        try {
            protocol_->resume_writing();
        } catch (...) {
            report_protocol_error(loop_, "resume_writing");
        }
    }

    // ---- closing ------------------------------------------------------------------------

    // Stops reading; connection_lost follows once the buffered bytes are sent.
    void start_closing() noexcept {
        if (closing_) return;
        closing_ = true;
        update_watch();
        if (self().buffered() == 0 && !lost_) schedule_connection_lost({});
    }

    // Drops the buffered bytes; connection_lost(ec) follows.
    void force_close(std::error_code ec) noexcept {
        if (lost_) return;
        self().drop_buffer();
        closing_ = true;
        schedule_connection_lost(ec);
    }

    void protocol_failed(std::string_view hook) noexcept {
        report_protocol_error(loop_, hook);
        force_close(std::make_error_code(std::errc::connection_aborted));
    }

    void schedule_connection_lost(std::error_code ec) noexcept {
        lost_ = true;
        update_watch();  // unwatches: nothing more comes in or goes out
        try {
            loop_access::post(loop_, [this, ec] { finish(ec); });
        } catch (...) {
            // No memory for the callback: the transport stays a resource of the loop, and
            // closing the loop frees it.
        }
    }

    // ---- the backend registration -------------------------------------------------------

    void update_watch_or_throw() {
        const unsigned want = lost_ ? 0 : self().wanted_events();
        if (want == watched_) return;
        self().change_watch(watched_, want);
        watched_ = static_cast<unsigned char>(want);
    }

    // What watching means: a readiness backend's registration. A completion transport
    // hides this with its own (posting a zero-byte read, say).
    void change_watch(unsigned old_events, unsigned new_events) {
        net_access::watch(loop_, fd_, old_events, new_events, *this);
    }

    // Failing to change what the backend watches (no memory for epoll's bookkeeping)
    // leaves a connection that would hang: it is closed with the error instead.
    void update_watch() noexcept {
        try {
            update_watch_or_throw();
        } catch (const std::system_error& e) {
            if (!lost_) {
                force_close(e.code());
            } else {
                watched_ = 0;  // unwatching failed: the descriptor is closed right after
            }
        } catch (...) {
            force_close(std::make_error_code(std::errc::not_enough_memory));
        }
    }

    // Closes the descriptor of a transport that could not be made (no memory); `extra` are
    // start's. Derived hides this when its descriptor may be other than a socket.
    template <class... Extra>
    static void close_unmade(native_socket fd, const Extra&...) noexcept {
        close_socket(fd);
    }

    // Hooks for Derived (a server's connection count): the transport started, ended.
    void opened() noexcept {}
    void ended() noexcept {}
    // The protocol hears of its new transport. Derived hides this when its protocol may
    // be of more than one kind (a stream's: plain or buffered).
    void tell_connection_made() { protocol_->connection_made(*this); }

    // get_extra_info for a socket: "socket", "peername", "sockname". Derived hides this
    // when its descriptor is something else.
    extra_info extra(std::string_view name) const {
        if (name == "socket") return extra_info(fd_);
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        auto* native = reinterpret_cast<sockaddr*>(&addr);
        int rc = -1;
        if (name == "peername") rc = ::getpeername(fd_, native, &size);
        if (name == "sockname") rc = ::getsockname(fd_, native, &size);
        // An unnamed Unix socket has an address of just its family: nothing to say.
        if (rc == -1 || size <= family_size) return {};
        return extra_info(endpoint::from_native(native, size));
    }

    loop_base& loop_;
    std::unique_ptr<Protocol> protocol_;
    std::size_t high_ = default_write_high_water;
    std::size_t low_ = default_write_high_water / 4;
    native_socket fd_;
    unsigned char watched_ = 0;  // the events the backend watches for us
    bool closing_ = false;
    bool user_closed_ = false;  // close() or abort() was called: writing is a bug
    bool protocol_paused_ = false;
    bool lost_ = false;  // connection_lost is scheduled; the socket is unwatched

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

    void finish(std::error_code ec) noexcept {
        try {
            protocol_->connection_lost(ec);
        } catch (...) {
            report_protocol_error(loop_, "connection_lost");
        }
        net_access::remove_resource(loop_, *this);
        release();
    }

    void on_loop_close() noexcept final {
        lost_ = true;
        update_watch();
        release();
    }

    void release() noexcept {
        self().ended();
        self().close_and_free();
    }

protected:
    // The end of a readiness transport: nothing refers to it any more. A completion
    // transport hides this: the kernel may still own its buffers.
    void close_and_free() noexcept {
        close_socket(fd_);
        delete this;  // the destructor is virtual (loop_resource's)
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/transport_core.hpp

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A server counts its connections (wait_closed waits for them to end).
class connection_counter {
public:
    virtual void connection_opened() noexcept = 0;
    virtual void connection_closed() noexcept = 0;

protected:
    connection_counter() = default;
    connection_counter(const connection_counter&) = default;
    connection_counter& operator=(const connection_counter&) = default;
    ~connection_counter() = default;
};

template <class Derived>
class stream_core : public transport_core<Derived, transport, base_protocol> {
    using core = transport_core<Derived, transport, base_protocol>;

public:
    using transport::write;  // the std::span<const std::byte> form
    void write(std::string_view data) final {
        if (!self().writes()) throw_read_only("write");
        if (this->user_closed_) {
            throw invalid_state_error("transport::write: the transport is closed");
        }
        if (eof_requested_) throw invalid_state_error("transport::write: write_eof() was called");
        if (sendfile_active_ && !link_.gate->own_write) {
            throw invalid_state_error("transport::write: loop.sendfile is in progress");
        }
        if (data.empty() || this->lost_) return;  // lost to an error: connection_lost reports it
        self().send_or_buffer(data);
    }

    // The socket's sending side shuts down once the buffered bytes are sent (a pipe has no
    // half-close: it closes then).
    void write_eof() final {
        if (!self().writes()) throw_read_only("write_eof");
        if (this->closing_ || eof_requested_) return;
        eof_requested_ = true;
        if (!self().has_write_buffer()) self().shutdown_write();
    }
    bool can_write_eof() const noexcept final { return self().writes(); }

    // A transport that does not read (a write pipe) has nothing to pause.
    void pause_reading() final {
        if (!self().reads() || this->closing_ || reading_paused_) return;
        reading_paused_ = true;
        this->update_watch();
    }
    void resume_reading() final {
        if (!self().reads() || this->closing_ || !reading_paused_) return;
        reading_paused_ = false;
        this->update_watch();
    }
    bool is_reading() const noexcept final {
        return self().reads() && !reading_paused_ && !this->closing_;
    }

protected:
    stream_core(loop_base& loop, native_socket fd, owned_stream_protocol p,
                connection_counter* server) noexcept
        : core(loop, fd, std::move(p.ptr)), link_{server}, buffered_(p.buffered) {}
    ~stream_core() override = default;

    // Reading is wanted: not closing, not paused, and the peer has not ended its side.
    bool wants_to_read() const noexcept {
        return !this->closing_ && !reading_paused_ && !eof_received_;
    }

    // Which ways the bytes move: both for a socket. Derived hides these for a pipe.
    bool reads() const noexcept { return true; }
    bool writes() const noexcept { return true; }

    // transport_core's hooks: a server counts the connection from start to end.
    void opened() noexcept {
        if (connection_counter* s = server()) s->connection_opened();
    }
    void ended() noexcept {
        if (connection_counter* s = server()) s->connection_closed();
        if (sendfile_active_) {
            link_.gate->gone = true;
            link_.gate->wake();
        }
    }

    // loop.sendfile's gate takes the server's place in link_ while it runs, and keeps the
    // server pointer meanwhile: so a transport is no larger for it (the flag lives in the
    // padding beside the other flags).
    bool set_sendfile_gate(sendfile_gate* gate) noexcept final {
        if (gate) {
            if (sendfile_active_ && link_.gate != gate) return false;
            if (!sendfile_active_) {
                gate->server = link_.server;
                link_.gate = gate;
                sendfile_active_ = true;
            }
        } else if (sendfile_active_) {
            link_.server = link_.gate->server;
            sendfile_active_ = false;
        }
        this->update_watch();
        return true;
    }
    // loop.start_tls: the TLS layer takes this transport's protocol and becomes its own.
    // Refused while loop.sendfile runs, and once the connection is closing.
    bool exchange_protocol(owned_stream_protocol& p) noexcept final {
        if (sendfile_active_ || this->closing_) return false;
        std::swap(this->protocol_, p.ptr);
        std::swap(buffered_, p.buffered);
        return true;
    }

    // Derived's socket turned writable while a native sendfile waits for it.
    bool sendfile_wants_writable() const noexcept {
        return sendfile_active_ && link_.gate->want_writable;
    }
    void sendfile_writable() noexcept {
        link_.gate->want_writable = false;
        link_.gate->wake();
        this->update_watch();
    }

    // transport_core's hook: the protocol hears of its transport.
    void tell_connection_made() {
        if (buffered_) {
            as_buffered().connection_made(*this);
        } else {
            as_plain().connection_made(*this);
        }
    }

    // One read and what it brought, to the protocol. `recv(span)` reads once into the span
    // and returns the count, 0 at the peer's EOF, or a negative value when nothing came (it
    // would block, or a fatal error that recv has closed the transport for). A plain
    // protocol's bytes land in the loop's shared buffer (an idle connection holds none of
    // its own); a buffered protocol's land where its get_buffer says, with no copy.
    //
    // The plain path is the former read path plus one predictable branch: callgrind counts
    // the same instructions per read as before in tools/bench/echo's callback server, once
    // the buffered path is out of line (inlined as one function with two `buffered_`
    // tests, it cost 14 instructions per read more).
    template <class Recv>
    void receive(Recv&& recv) noexcept {
        if (buffered_) return receive_buffered(recv);
        const std::span<char> buffer = net_access::read_buffer(this->loop_);
        const std::ptrdiff_t n = recv(buffer);
        if (n > 0) {
            try {
                as_plain().data_received(std::string_view(buffer.data(), std::size_t(n)));
            } catch (...) {
                this->protocol_failed("data_received");
            }
        } else if (n == 0) {
            eof_received();
        }
    }

    // The peer shut down its side: the protocol says whether ours stays open to write.
    void eof_received() noexcept {
        eof_received_ = true;
        this->update_watch();
        bool keep_open = false;
        try {
            keep_open = buffered_ ? as_buffered().eof_received() : as_plain().eof_received();
        } catch (...) {
            this->protocol_failed("eof_received");
            return;
        }
        // A transport that cannot write has nothing to stay open for (asyncio's read
        // pipe closes at EOF whatever eof_received says).
        if (!keep_open || !self().writes()) this->start_closing();
    }

    // Derived has sent its whole write buffer and dropped it: the protocol may resume
    // writing, and a close or a write_eof that waited for the bytes goes on. resume_writing
    // may have written again (a new buffer), closed (connection_lost is then scheduled
    // already) or aborted: only an empty, live transport goes on.
    void writes_done() noexcept {
        if (sendfile_active_) link_.gate->wake();  // it waits for an empty buffer
        this->maybe_resume_protocol();
        if (self().has_write_buffer() || this->lost_) return;
        if (this->closing_) {
            this->schedule_connection_lost({});
        } else if (eof_requested_) {
            self().shutdown_write();
        }
    }

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

    [[noreturn]] static void throw_read_only(std::string_view what) {
        throw invalid_state_error(
            concat({"transport::", what, ": this transport is a read pipe (connect_read_pipe): "
                    "it cannot write"}));
    }

    protocol& as_plain() noexcept { return static_cast<protocol&>(*this->protocol_); }
    buffered_protocol& as_buffered() noexcept {
        return static_cast<buffered_protocol&>(*this->protocol_);
    }

    template <class Recv>
    IOLOOP_NOINLINE void receive_buffered(Recv& recv) noexcept {
        const std::span<char> buffer = lend_buffer();
        if (buffer.empty()) return;  // a fatal protocol error closed the transport
        const std::ptrdiff_t n = recv(buffer);
        if (n > 0) {
            try {
                as_buffered().buffer_updated(static_cast<std::size_t>(n));
            } catch (...) {
                this->protocol_failed("buffer_updated");
            }
        } else if (n == 0) {
            eof_received();
        }
    }

    // The span a buffered protocol lends for the next read. Empty if it failed: it threw,
    // or lent nothing (asyncio's "get_buffer() returned an empty buffer"); either is fatal,
    // and the transport is closed.
    std::span<char> lend_buffer() noexcept {
        try {
            const std::span<char> buffer = as_buffered().get_buffer(net_access::read_buffer_size);
            if (buffer.empty()) throw invalid_state_error("get_buffer() returned an empty buffer");
            return buffer;
        } catch (...) {
            this->protocol_failed("get_buffer");
            return {};
        }
    }

    connection_counter* server() const noexcept {
        return sendfile_active_ ? link_.gate->server : link_.server;
    }

    // The server that accepted it (if any); while loop.sendfile runs, its gate instead,
    // which holds the server's pointer (sendfile_active_ says which).
    union link {
        connection_counter* server;
        sendfile_gate* gate;
    } link_;
    bool buffered_;               // the protocol is a buffered_protocol
    bool sendfile_active_ = false;
    bool reading_paused_ = false;
    bool eof_received_ = false;
    bool eof_requested_ = false;  // write_eof(): shut down once the buffer is sent
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/stream_core.hpp

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A stream protocol factory: a plain protocol's or a buffered one's.
using protocol_factory = unique_function<owned_stream_protocol()>;

// How a backend family starts the transport of an accepted connection.
using start_stream_fn = transport& (*)(loop_base&, socket, owned_stream_protocol,
                                       connection_counter*);

// One listening socket of a server, accepting the way its backend family does; it hands
// each connection, or each failure, to its server.
class server_listener {
public:
    virtual ~server_listener() = default;
    // Starts (true) or stops (false) accepting; failing to start is reported, not thrown.
    virtual void serve(bool on) noexcept = 0;

    std::string unlink_path;  // a Unix socket's file, removed when the server closes

protected:
    server_listener() = default;
    server_listener(const server_listener&) = delete;
    server_listener& operator=(const server_listener&) = delete;
};

class server_state final : public loop_resource, public connection_counter {
public:
    // How long accepting pauses when the process is out of descriptors.
    static constexpr std::chrono::milliseconds accept_retry_delay{100};

    server_state(loop_base& loop, protocol_factory factory, int backlog)
        : loop_(loop), factory_(std::move(factory)), backlog_(backlog > 0 ? backlog : 1) {
        net_access::add_resource(loop_, *this);
    }

    // A listening socket to serve, and its family's listener (make_listener(*this, s));
    // `unlink_path` is a Unix socket's file, removed on close.
    template <class MakeListener>
    void add_listener(socket s, std::string unlink_path, MakeListener make_listener) {
        listeners_.reserve(listeners_.size() + 1);
        sockets_.reserve(sockets_.size() + 1);
        std::unique_ptr<server_listener> l = make_listener(*this, s);
        l->unlink_path = std::move(unlink_path);
        listeners_.push_back(std::move(l));
        sockets_.push_back(std::move(s));
    }

    void start_serving() {
        if (closed_) throw invalid_state_error("server::start_serving: the server is closed");
        if (serving_) return;
        serving_ = true;
        serve(true);
    }

    void close() noexcept {
        if (closed_) return;
        closed_ = true;
        serving_ = false;
        retry_.cancel();
        serve(false);
        for (auto& l : listeners_) {
            if (!l->unlink_path.empty()) remove_socket_file(l->unlink_path.c_str());
        }
        sockets_.clear();  // closes them
        forever_.set();
        check_idle();
    }

    bool is_serving() const noexcept { return serving_; }
    // SO_KEEPALIVE on each accepted TCP connection (serve_options::keep_alive).
    void set_keep_alive(bool on) noexcept { keep_alive_ = on; }
    const std::vector<socket>& sockets() const noexcept { return sockets_; }
    loop_base& loop() const noexcept { return loop_; }
    // Connections a listener takes per readiness report at most: asyncio takes up to
    // `backlog`, enough to empty a burst, bounded so other work is not starved.
    int backlog() const noexcept { return backlog_; }

    // Until closed, with every connection it made gone.
    event& idle() noexcept { return idle_; }
    // Set by close(): serve_forever's wait.
    event& closed_event() noexcept { return forever_; }

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ != 0) return;
        // A listener's event may still be due in this poll batch: freed on the next
        // iteration. A closed loop runs nothing more, so it is freed now.
        if (loop_closed_) {
            delete this;
            return;
        }
        try {
            loop_access::post(loop_, [this] { destroy(); });
        } catch (...) {
            // No memory: left to the loop, which frees it when it closes.
        }
    }

    // ---- what the listeners report -----------------------------------------------------

    // A connection accepted on a socket of `family`: it gets a protocol, and a transport
    // from the listener's family.
    void accepted(socket conn, int family, start_stream_fn start) noexcept {
        out_of_fds_reported_ = false;
        try {
            if (family == AF_INET || family == AF_INET6) {
                conn.set_no_delay(true);
                if (keep_alive_) conn.set_keep_alive(true);
            }
            start(loop_, std::move(conn), factory_(), this);
        } catch (...) {
            report("server: could not set up an accepted connection");
        }
    }

    // Accepting on `fd` failed. Out of descriptors or memory: accepting pauses and
    // retries; anything else is reported and accepting goes on.
    void accept_failed(std::error_code ec, native_socket fd) noexcept {
        const bool out_of_resources = ec == std::errc::too_many_files_open ||
                                      ec == std::errc::too_many_files_open_in_system ||
                                      ec == std::errc::no_buffer_space ||
                                      ec == std::errc::not_enough_memory;
        if (!out_of_resources) {
            report_error(ec, concat({"server: accept on socket ", decimal(fd), " failed"}));
            return;
        }
        if (!out_of_fds_reported_) {
            out_of_fds_reported_ = true;
            report_error(ec, concat({"server: accept on socket ", decimal(fd),
                                     " failed; accepting again in ",
                                     decimal(accept_retry_delay.count()), " ms"}));
        }
        serve(false);
        try {
            retry_ = loop_.call_later(accept_retry_delay, [this] {
                if (serving_) serve(true);
            });
        } catch (...) {
            serve(true);  // no timer: better to retry at once than never
        }
    }

    void report(std::string message) noexcept {
        try {
            loop_.call_exception_handler({std::move(message), std::current_exception(), {}});
        } catch (...) {
        }
    }

private:
    ~server_state() override = default;

    void destroy() noexcept {
        net_access::remove_resource(loop_, *this);
        delete this;
    }

    void on_loop_close() noexcept override {
        close();  // unwatches while the backend is still there
        loop_closed_ = true;
        if (refs_ == 0) delete this;  // its posted destroy() will never run
    }

    void connection_opened() noexcept override {
        ++active_;
        ++refs_;
    }
    void connection_closed() noexcept override {
        --active_;
        check_idle();
        release();
    }

    void check_idle() noexcept {
        if (closed_ && active_ == 0) idle_.set();
    }

    void serve(bool on) noexcept {
        for (auto& l : listeners_) l->serve(on);
    }

    void report_error(std::error_code ec, std::string message) noexcept {
        try {
            const std::system_error e(ec, message);
            loop_.call_exception_handler({std::move(message), std::make_exception_ptr(e), {}});
        } catch (...) {
        }
    }

    loop_base& loop_;
    protocol_factory factory_;
    std::vector<socket> sockets_;
    std::vector<std::unique_ptr<server_listener>> listeners_;
    event idle_;     // closed and no connection left: wait_closed
    event forever_;  // closed: serve_forever
    timer_handle retry_;
    std::size_t active_ = 0;  // connections made and not yet lost
    std::size_t refs_ = 1;    // the handle's, and one per connection
    int backlog_;
    bool serving_ = false;
    bool closed_ = false;
    bool loop_closed_ = false;
    bool out_of_fds_reported_ = false;
    bool keep_alive_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/server_state.hpp

#if defined(IOLOOP_WINDOWS)

#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class iocp_listener final : public server_listener {
public:
    // The socket's completions go to the loop's port from now on. `start` makes the
    // transports of the connections it accepts.
    iocp_listener(server_state& server, socket& s, start_stream_fn start)
        : server_(server), fd_(s.fd()), family_(family_of(s.fd())), start_(start) {
        associate_once(server.loop(), s);
    }
    ~iocp_listener() override { serve(false); }

    void serve(bool on) noexcept override {
        if (on) {
            accept_next();
        } else if (accepting_) {
            std::exchange(accepting_, nullptr)->orphan();
        }
    }

    // accept_op's report: the connection, or why there is none.
    void accepted(socket conn, const endpoint& peer, std::error_code ec) noexcept {
        accepting_ = nullptr;
        if (!server_.is_serving()) return;  // closes conn
        if (ec && ec != std::errc::connection_reset && ec != std::errc::connection_aborted) {
            server_.accept_failed(ec, fd_);
            return;
        }
        if (!ec) server_.accepted(std::move(conn), peer.native()->sa_family, start_);
        accept_next();
    }

private:
    void accept_next() noexcept {
        if (accepting_ || !server_.is_serving()) return;
        try {
            accepting_ = accept_op<iocp_listener>::start(server_.loop(), fd_, family_, *this);
        } catch (const std::system_error& e) {
            server_.accept_failed(e.code(), fd_);
        }
    }

    server_state& server_;
    native_socket fd_;
    address_family family_;  // of what it accepts
    start_stream_fn start_;
    accept_op<iocp_listener>* accepting_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/listener.hpp
// begin file ioloop/net/iocp/overlapped_datagram_transport.hpp
// ioloop: the datagram transport of a completion backend (IOCP): the same protocol-facing
// behaviour as datagram_socket_transport, over overlapped operations.
//
// Reading: a zero-byte WSARecvFrom with MSG_PEEK waits for a datagram without a buffer
// (a plain zero-byte receive would consume the datagram, truncated to nothing); its
// completion means "readable", and one non-blocking recvfrom() then reads the datagram
// into the loop's shared buffer. Sending: sendto() goes straight to the socket while
// nothing waits; a datagram the socket cannot take is queued, and the queue goes out one
// WSASendTo at a time, in order. The datagram of a WSASendTo in flight (its bytes and its
// address) belongs to the kernel until the completion, so it sits in its own member, out
// of the queue's vector, which may reallocate meanwhile; and the transport itself is
// freed only once no operation of it is in flight.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_DATAGRAM_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_DATAGRAM_TRANSPORT_HPP

// begin file ioloop/net/datagram_core.hpp
// ioloop: what every datagram transport does the same way, whatever moves its datagrams:
// sendto()'s checks and the queue of datagrams the socket did not take yet (sent in
// order, counted in bytes for flow control), what follows when datagrams leave it, and
// how a received datagram or an error reaches the protocol. Written once for both backend
// families: Derived (datagram_socket_transport, overlapped_datagram_transport) only moves
// the datagrams.
//
// Derived provides, besides what transport_core asks of it: can_send_now() (nothing would
// go out before a new datagram), send_one(data, to) (false: the socket cannot take it
// now) and queued() (a datagram joined the queue: get it moving).
#ifndef IOLOOP_NET_DATAGRAM_CORE_HPP
#define IOLOOP_NET_DATAGRAM_CORE_HPP


#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct datagram {
    std::string data;
    endpoint to;  // unspecified: the connected peer
};

// Datagrams waiting for the socket, first in, first out. The front is taken by moving an
// index; the vector is compacted once the taken part outweighs what waits, so a queue
// that never quite drains stays small.
class datagram_queue {
public:
    bool empty() const noexcept { return next_ == items_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

    void push(datagram d) {
        const std::size_t size = d.data.size();
        items_.push_back(std::move(d));
        bytes_ += size;
    }

    datagram& front() noexcept { return items_[next_]; }

    datagram pop_front() noexcept {
        datagram d = std::move(items_[next_]);
        items_[next_] = {};
        bytes_ -= d.data.size();
        if (++next_ == items_.size()) {
            clear();
        } else if (next_ >= 64 && next_ * 2 >= items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(next_));
            next_ = 0;
        }
        return d;
    }

    void clear() noexcept {
        items_.clear();
        next_ = 0;
        bytes_ = 0;
    }

private:
    std::vector<datagram> items_;
    std::size_t next_ = 0;  // the first not taken yet
    std::size_t bytes_ = 0;
};

template <class Derived>
class datagram_core : public transport_core<Derived, datagram_transport, datagram_protocol> {
    using core = transport_core<Derived, datagram_transport, datagram_protocol>;

public:
    using datagram_transport::sendto;  // the std::span<const std::byte> form
    void sendto(std::string_view data, const endpoint& to) final {
        if (this->user_closed_) {
            throw invalid_state_error("datagram_transport::sendto: the transport is closed");
        }
        if (this->lost_) return;
        if (self().can_send_now() && self().send_one(data, to)) return;
        queue_.push({std::string(data), to});
        self().queued();
        this->maybe_pause_protocol();
    }

    void join_multicast_group(const endpoint& group, const endpoint& where) final {
        check_usable("join_multicast_group");
        join_multicast(this->fd_, group, where);
    }
    void set_multicast_interface(const endpoint& where) final {
        check_usable("set_multicast_interface");
        detail::set_multicast_interface(this->fd_, where);
    }

protected:
    using core::core;
    ~datagram_core() override = default;

    void check_usable(const char* what) const {
        if (this->closing_) {
            throw invalid_state_error(
                concat({"datagram_transport::", what, ": the transport is closed"}));
        }
    }

    // transport_core's hook. A datagram the kernel owns (in flight on a completion
    // backend) is not the queue's: it stays until its send completes.
    void drop_buffer() noexcept { queue_.clear(); }

    // Datagrams left the queue (sent, or failed and dropped): the protocol may resume
    // writing, and a close that waited for them goes on. resume_writing may have sent
    // more, closed or aborted: only an empty, live transport goes on to close.
    void datagrams_sent() noexcept {
        if (this->lost_) return;
        this->maybe_resume_protocol();
        if (this->closing_ && self().buffered() == 0 && !this->lost_) {
            this->schedule_connection_lost({});
        }
    }

    // A datagram read, from `native` (size bytes of address; none from an unnamed Unix
    // sender or one the system did not fill in: the sender is then unspecified).
    void deliver(std::string_view data, const sockaddr* native, socklen_t size) noexcept {
        try {
            const endpoint sender = size <= family_size || native->sa_family == AF_UNSPEC
                                        ? endpoint()
                                        : endpoint::from_native(native, size);
            this->protocol_->datagram_received(data, sender);
        } catch (...) {
            this->protocol_failed("datagram_received");
        }
    }

    // A send or receive failed, with the socket's error (see datagram_error_code): the
    // protocol hears it and the transport stays open, as in asyncio.
    void report_error(std::error_code ec) noexcept {
        try {
            this->protocol_->error_received(ec);
        } catch (...) {
            this->protocol_failed("error_received");
        }
    }

    datagram_queue queue_;

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/datagram_core.hpp
// begin file ioloop/net/iocp/overlapped_transport.hpp
// ioloop: overlapped_transport, what both IOCP transports (stream and datagram) do alike
// around their two operations: one that waits for data (a zero-byte read or peek, so an
// idle connection holds no read buffer) and one that sends. The kernel owns each one's
// OVERLAPPED and buffers until its completion is dequeued, so the transport is freed only
// once neither is in flight.
//
// Core is the protocol-facing part (stream_core<Derived>, or transport_core for
// datagrams). Derived provides start_waiting_for_data() (throws if it cannot start),
// read_op() and write_op(); it may hide close_now() and close_last() (how a socket
// closes, below) when its handle is something else.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_TRANSPORT_HPP


#if defined(IOLOOP_WINDOWS)

#include <string>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// An overlapped operation whose completion calls a member of its owner.
template <class Owner, void (Owner::*Done)() noexcept>
class member_op final : public overlapped_op {
public:
    explicit member_op(Owner& owner) noexcept : owner_(owner) {}
    std::string describe() const override { return owner_.operations_owner(); }

private:
    void on_io(unsigned) noexcept override { (owner_.*Done)(); }
    Owner& owner_;
};

template <class Derived, class Core>
class overlapped_transport : public Core {
public:
    // What debug mode calls the transport when one of its operations was slow.
    std::string operations_owner() const { return this->describe(); }

protected:
    using Core::Core;

    // The transport itself is never reported to: its operations are.
    void on_io(unsigned) noexcept override {}

    // transport_core's hook. Reading wanted: an operation waits for data. Not wanted any
    // more: one in flight is left to complete and then ignored, unless the connection is
    // lost.
    void change_watch(unsigned, unsigned new_events) {
        if (new_events & backend::io_read) {
            if (!reading_) self().start_waiting_for_data();
        } else if (this->lost_) {
            cancel_all();
        }
    }

    // transport_core's hook: what is in flight is cancelled (close_now); the memory goes
    // when the last completion has come (close_last, then delete).
    void close_and_free() noexcept {
        closed_ = true;
        self().close_now();
        free_if_idle();
    }

    // A socket closes at once, which cancels its operations, and their completions still
    // come to the port.
    void close_now() noexcept { ::closesocket(this->fd_); }
    void close_last() noexcept {}

    void cancel_all() noexcept {
        const auto h = reinterpret_cast<HANDLE>(this->fd_);
        if (reading_) ::CancelIoEx(h, self().read_op().overlapped());
        if (writing_) ::CancelIoEx(h, self().write_op().overlapped());
    }

    // After close, each completion asks whether it was the last.
    void free_if_idle() noexcept {
        if (reading_ || writing_) return;
        self().close_last();
        delete this;  // the destructor is virtual
    }

    bool reading_ = false;  // the operation waiting for data is in flight
    bool writing_ = false;  // a send is in flight
    bool closed_ = false;   // closed: only completions are awaited

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/overlapped_transport.hpp

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class overlapped_datagram_transport final
    : public overlapped_transport<overlapped_datagram_transport,
                                  datagram_core<overlapped_datagram_transport>> {
    using core =
        transport_core<overlapped_datagram_transport, datagram_transport, datagram_protocol>;
    friend core;
    friend datagram_core<overlapped_datagram_transport>;
    friend overlapped_transport;

public:
    // As datagram_socket_transport::start, on a socket whose completions go to the loop's
    // port already (iocp_ops::start_datagram sees to it).
    static overlapped_datagram_transport& start(loop_base& loop, socket sock,
                                                std::unique_ptr<datagram_protocol> p) {
        return core::start(loop, sock.release(), std::move(p));
    }

private:
    overlapped_datagram_transport(loop_base& loop, native_socket fd,
                                  std::unique_ptr<datagram_protocol> p) noexcept
        : overlapped_transport(loop, fd, std::move(p)), peek_op_(*this), send_op_(*this) {}
    ~overlapped_datagram_transport() override = default;

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept { return closing_ ? 0u : unsigned(backend::io_read); }
    // Flow control counts the datagram in flight too: it has not left yet.
    std::size_t buffered() const noexcept {
        return queue_.bytes() + (writing_ ? in_flight_.data.size() : 0);
    }

    auto& read_op() noexcept { return peek_op_; }
    auto& write_op() noexcept { return send_op_; }

    // A zero-byte peek waits for a datagram; while closing, one in flight consumes
    // nothing, so it is left to complete and then ignored.
    void start_waiting_for_data() {
        if (const unsigned long err = start_peek())
            throw_system_error(err, "WSARecvFrom (waiting for a datagram)");
    }

    // ---- reading ------------------------------------------------------------------------

    // Starts the zero-byte peek: 0, or the error of one that failed at once (no
    // completion comes for that one).
    unsigned long start_peek() noexcept {
        peek_op_.reset();
        WSABUF none{0, nullptr};
        // A member, not a local: the kernel may write the flags back at completion.
        peek_flags_ = MSG_PEEK;
        operation_started(loop_);
        unsigned long err = started(::WSARecvFrom(fd_, &none, 1, nullptr, &peek_flags_, nullptr,
                                                  nullptr, peek_op_.overlapped(), nullptr));
        // A datagram there already: the peek "fails" at once with WSAEMSGSIZE (it is larger
        // than zero bytes), but that status is only a warning, so the completion is still
        // queued to the port, as for a pending peek.
        if (err == WSAEMSGSIZE) err = 0;
        if (err != 0) {
            operation_not_started(loop_);
            return err;
        }
        reading_ = true;
        return 0;
    }

    void peek_done() noexcept {
        reading_ = false;
        if (closed_) return free_if_idle();
        // Lost, or closing since: nothing more is read.
        if (lost_ || !(watched_ & backend::io_read)) return;
        unsigned long bytes = 0;
        const unsigned long err = peek_op_.result(fd_, bytes);
        if (err == 0 || err == WSAEMSGSIZE || err == ERROR_MORE_DATA) {
            // A datagram is there (larger than the zero bytes asked for: "message size").
            receive_one();
        } else if (err != ERROR_OPERATION_ABORTED) {
            // An ICMP error for an earlier send, reported by the peek itself.
            report_error(datagram_error_code(err));
        }
        keep_reading();
    }

    // Posts the next peek while reading is wanted. An ICMP error (port or network
    // unreachable) may fail it at once: it is reported, which consumes it, and the peek
    // tried again; any other error there would fail every peek, so it closes the transport.
    void keep_reading() noexcept {
        while (!lost_ && (watched_ & backend::io_read) && !reading_) {
            const unsigned long err = start_peek();
            if (err == 0) return;
            if (err != WSAECONNRESET && err != WSAENETRESET) {
                force_close(system_error_code(err));
                return;
            }
            report_error(datagram_error_code(err));
        }
    }

    void receive_one() noexcept {
        const std::span<char> buffer = net_access::read_buffer(loop_);
        sockaddr_storage from{};
        int size = sizeof from;
        auto* native = reinterpret_cast<sockaddr*>(&from);
        // A datagram larger than the buffer (none over UDP, whose payloads fit) fails with
        // WSAEMSGSIZE: error_received hears std::errc::message_size, and nothing of it is
        // delivered.
        const std::ptrdiff_t n =
            socket_recv_datagram(fd_, buffer.data(), buffer.size(), native, &size);
        if (n < 0) {
            const int err = ::WSAGetLastError();
            if (err != WSAEWOULDBLOCK) {
                report_error(datagram_error_code(static_cast<unsigned long>(err)));
            }
            return;
        }
        deliver(std::string_view(buffer.data(), std::size_t(n)), native, size);
    }

    // ---- sending ------------------------------------------------------------------------

    // ---- what datagram_core asks of us --------------------------------------------------

    bool can_send_now() const noexcept { return !writing_ && queue_.empty(); }
    void queued() noexcept {
        if (!writing_) send_next();
    }

    // One non-blocking send; false if the socket cannot take it now. A failure other than
    // that goes to the protocol's error_received and the datagram is dropped (asyncio).
    bool send_one(std::string_view data, const endpoint& to) noexcept {
        const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
        const int n = to.family() == address_family::unspecified
                          ? ::send(fd_, data.data(), len, 0)
                          : ::sendto(fd_, data.data(), len, 0, to.native(),
                                     static_cast<int>(to.native_size()));
        if (n >= 0) return true;
        const int err = ::WSAGetLastError();
        if (err == WSAEWOULDBLOCK) return false;
        report_error(datagram_error_code(static_cast<unsigned long>(err)));
        return true;  // dropped: it counts as handled
    }

    // Moves the next queued datagram in flight through one WSASendTo (WSASend when
    // connected); one that fails to start is reported and dropped, and the next tried.
    void send_next() noexcept {
        while (!writing_ && !queue_.empty() && !lost_) {
            in_flight_ = queue_.pop_front();
            send_op_.reset();
            WSABUF b{static_cast<ULONG>(in_flight_.data.size()), in_flight_.data.data()};
            const endpoint& to = in_flight_.to;
            operation_started(loop_);
            const unsigned long err =
                to.family() == address_family::unspecified
                    ? started(::WSASend(fd_, &b, 1, nullptr, 0, send_op_.overlapped(), nullptr))
                    : started(::WSASendTo(fd_, &b, 1, nullptr, 0, to.native(),
                                          static_cast<int>(to.native_size()), send_op_.overlapped(),
                                          nullptr));
            if (err == 0) {
                writing_ = true;
                return;
            }
            operation_not_started(loop_);
            in_flight_ = {};
            report_error(datagram_error_code(err));  // may send, close or abort
        }
    }

    void send_done() noexcept {
        writing_ = false;
        if (closed_) return free_if_idle();
        unsigned long bytes = 0;
        const unsigned long err = send_op_.result(fd_, bytes);
        in_flight_ = {};
        if (lost_) return;
        if (err != 0) report_error(datagram_error_code(err));  // that datagram is dropped
        if (lost_) return;
        send_next();
        datagrams_sent();
    }

    datagram in_flight_;  // the WSASendTo's, the kernel's until it completes
    member_op<overlapped_datagram_transport, &overlapped_datagram_transport::peek_done> peek_op_;
    member_op<overlapped_datagram_transport, &overlapped_datagram_transport::send_done> send_op_;
    DWORD peek_flags_ = 0;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/overlapped_datagram_transport.hpp
// begin file ioloop/net/iocp/overlapped_socket_transport.hpp
// ioloop: the stream transport of a completion backend (IOCP): the same protocol-facing
// behaviour as socket_transport, over overlapped operations, on a connected socket or on
// an overlapped named pipe (connect_read_pipe, connect_write_pipe). The two differ only
// in the calls that move the bytes, chosen by the kind given at start; the buffering, the
// flow control and the close path are the same code.
//
// Reading: a zero-byte WSARecv (a pipe: a zero-byte ReadFile) waits for data without a
// buffer, so an idle connection holds no read buffer here either; its completion means
// "readable", and one read that takes what is there then reads where
// stream_core::receive says (the loop's shared buffer, or a buffered protocol's own): a
// non-blocking recv(), or a ReadFile whose completion skips the port (net/iocp/pipe_io.hpp).
// Writing: a socket first tries send(); what it does not take goes out through one WSASend
// at a time. A pipe has no non-blocking write, so its bytes all go through WriteFile, one
// at a time. The bytes of a send in flight belong to the kernel until it completes, so
// writes made meanwhile queue behind them in a second buffer, and the transport itself is
// freed only once no operation of it is in flight. A pipe keeps its two buffers between
// writes (up to 64 KiB each), so writing to it allocates nothing in steady state.
//
// A pipe's write_eof closes it once the bytes are out (asyncio: a pipe has no half-close).
// Closing a pipe's transport cancels its operations and closes the handle once their
// completions have come. Unlike the readiness backends, an idle write pipe does not watch
// for its reader going away (its handle may not even be readable): the next write tells.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_SOCKET_TRANSPORT_HPP

// begin file ioloop/net/iocp/pipe_io.hpp
// ioloop: how the IOCP backend moves a pipe's bytes (Windows): the Win32 calls of the
// overlapped stream transport when its handle is a named pipe, under the names of what
// they do for it. What Windows' pipes say, learnt from the documentation and checked under
// Wine:
// - A zero-byte overlapped ReadFile stays pending until data arrives, then completes and
//   takes nothing: the pipe's form of the zero-byte WSARecv, so an idle pipe holds no read
//   buffer either.
// - The end of the stream is an error, not a zero-byte read: ERROR_BROKEN_PIPE once the
//   writer has gone and the bytes it left are read (ERROR_PIPE_NOT_CONNECTED and
//   ERROR_HANDLE_EOF say the same of a disconnected server end).
// - A reader gone makes writes fail with ERROR_NO_DATA (at once) or ERROR_BROKEN_PIPE (a
//   write in flight); detail/windows.hpp maps both to errc::broken_pipe.
// - A call that fails at its start queues no completion, unless its error is a warning:
//   ERROR_MORE_DATA (a message-mode pipe's message larger than the read) queues one.
#ifndef IOLOOP_NET_IOCP_PIPE_IO_HPP
#define IOLOOP_NET_IOCP_PIPE_IO_HPP


#if defined(IOLOOP_WINDOWS)

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A read's error that means the writer has gone: the stream's EOF.
inline bool pipe_read_ended(unsigned long err) noexcept {
    return err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED || err == ERROR_HANDLE_EOF;
}

// ReadFile's or WriteFile's answer to an overlapped call: 0 if it started (pending, or
// done: either way its completion will come to the port), else its error.
inline unsigned long file_call_started(BOOL ok) noexcept {
    if (ok) return 0;
    const unsigned long err = ::GetLastError();
    return err == ERROR_IO_PENDING || err == ERROR_MORE_DATA ? 0 : err;
}

inline DWORD file_call_size(std::size_t size) noexcept {
    return size > MAXDWORD ? MAXDWORD : static_cast<DWORD>(size);
}

// A zero-byte read on h: its completion says data is there (or the writer went away).
inline unsigned long start_waiting_for_pipe_data(HANDLE h, OVERLAPPED* o) noexcept {
    static char nothing;  // never written: the read takes 0 bytes
    return file_call_started(::ReadFile(h, &nothing, 0, nullptr, o));
}

inline unsigned long start_pipe_write(HANDLE h, const char* data, std::size_t size,
                                      OVERLAPPED* o) noexcept {
    return file_call_started(::WriteFile(h, data, file_call_size(size), nullptr, o));
}

// One read of what h holds now, into `into`, without the port: the OVERLAPPED names the
// loop's quiet event with its lowest bit set, which tells Windows to signal the event and
// queue no completion. Data is there (a zero-byte read said so), so the read completes at
// once; if another reader took it first, the read is cancelled and waited for (it may
// have got bytes meanwhile). Returns 0 and the count in `bytes` (0: nothing after all),
// or the error (pipe_read_ended: EOF).
inline unsigned long read_pipe_now(HANDLE h, std::span<char> into, HANDLE quiet_event,
                                   unsigned long& bytes) noexcept {
    bytes = 0;
    OVERLAPPED o{};
    o.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<std::uintptr_t>(quiet_event) | 1);
    if (!::ReadFile(h, into.data(), file_call_size(into.size()), nullptr, &o)) {
        const unsigned long err = ::GetLastError();
        if (err == ERROR_IO_PENDING) {
            ::CancelIoEx(h, &o);
        } else if (err != ERROR_MORE_DATA) {
            return err;  // failed at its start: nothing is in flight
        }
    }
    if (!HasOverlappedIoCompleted(&o)) ::WaitForSingleObject(quiet_event, INFINITE);
    DWORD moved = 0;
    const bool ok = ::GetOverlappedResult(h, &o, &moved, FALSE);
    bytes = moved;
    if (ok) return 0;
    // ERROR_MORE_DATA: a message-mode pipe's message goes on in the next read.
    const unsigned long err = ::GetLastError();
    return err == ERROR_MORE_DATA || err == ERROR_OPERATION_ABORTED ? 0 : err;
}

// Whether h was opened for synchronous I/O (without FILE_FLAG_OVERLAPPED: CreatePipe's
// pipes, a named pipe opened so). The I/O manager runs such a handle's "overlapped"
// ReadFile to its end before returning, so the IOCP backend would block the loop in it
// until data came. ntdll's NtQueryInformationFile (FileModeInformation) tells, for the
// price of one system call; false if ntdll does not have it (the call is then not made).
inline bool opened_for_synchronous_io(native_descriptor h) noexcept {
    struct io_status {  // IO_STATUS_BLOCK (<winternl.h>): the status shares a pointer's room
        void* status;
        ULONG_PTR information;
    };
    using query_information_file = long(WINAPI*)(HANDLE, io_status*, void*, ULONG, int);
    constexpr int file_mode_information = 16;
    constexpr ULONG synchronous_io = 0x10 | 0x20;  // FILE_SYNCHRONOUS_IO_ALERT | _NONALERT
    static const auto query = [] {
        const HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
        // Through void(*)(): the one function type a cast from FARPROC need not warn about.
        const auto any = reinterpret_cast<void (*)()>(
            ntdll ? ::GetProcAddress(ntdll, "NtQueryInformationFile") : nullptr);
        return reinterpret_cast<query_information_file>(any);
    }();
    if (query == nullptr) return false;
    io_status status{};
    ULONG mode = 0;
    return query(h, &status, &mode, sizeof mode, file_mode_information) >= 0 &&
           (mode & synchronous_io) != 0;
}

// A HANDLE the IOCP backend can make a pipe transport of: an open pipe (GetFileType),
// opened for overlapped I/O. A disk file is refused as POSIX refuses a regular file
// (EPERM, naming the file API); a console or another character device cannot be read
// through a completion port (operation_not_supported), nor can a handle opened for
// synchronous I/O. The pipe must be connected (a server end that ConnectNamedPipe has
// connected, or a client end); that is not checked: its first read or write fails.
inline void check_pipe_handle(native_descriptor h, std::string_view what) {
    const decimal number(static_cast<long long>(reinterpret_cast<std::intptr_t>(h)));
    DWORD flags = 0;
    // INVALID_HANDLE_VALUE is also the current process's pseudo-handle, which
    // GetHandleInformation takes.
    if (h == nullptr || h == INVALID_HANDLE_VALUE || !::GetHandleInformation(h, &flags)) {
        throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor),
                                concat({what, ": handle ", number, " is not an open handle"}));
    }
    switch (::GetFileType(h)) {
        case FILE_TYPE_PIPE: break;
        case FILE_TYPE_DISK:
            throw std::system_error(
                std::make_error_code(std::errc::operation_not_permitted),
                concat({what, ": handle ", number,
                        " is a disk file (a regular file or a directory): pipes only; ",
                        use_the_file_api}));
        case FILE_TYPE_CHAR:
            throw_not_supported(what, concat({"handle ", number,
                                              " is a console or a character device: the IOCP "
                                              "backend cannot wait on one (it has no "
                                              "overlapped reads); pipes only"}));
        default:
            throw_not_supported(what, concat({"handle ", number,
                                              " is not a pipe: the IOCP backend takes "
                                              "overlapped named pipes only"}));
    }
    if (opened_for_synchronous_io(h)) {
        throw_not_supported(
            what, concat({"handle ", number,
                          " was opened for synchronous I/O (as CreatePipe's pipes are): the "
                          "IOCP backend needs a named pipe opened with FILE_FLAG_OVERLAPPED "
                          "(CreateNamedPipeW, CreateFileW), or it would block the loop"}));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/pipe_io.hpp
// begin file ioloop/net/pipe_transport.hpp
// ioloop: what connect_read_pipe and connect_write_pipe hand to the loop's backend family
// (reactive_ops::start_pipe, iocp_ops::start_pipe): a descriptor that is not a socket (a
// pipe, a FIFO, a terminal, a character device on POSIX; an overlapped named pipe's HANDLE
// on Windows), owned from the call on. On the readiness backends the socket transport
// moves its bytes with read() and write() (POSIX); on IOCP the overlapped stream transport
// with ReadFile and WriteFile. Windows' select waits on sockets only, and says so.
#ifndef IOLOOP_NET_PIPE_TRANSPORT_HPP
#define IOLOOP_NET_PIPE_TRANSPORT_HPP


#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Which descriptor a stream transport serves, and so how its bytes move.
enum class descriptor_kind : unsigned char { socket, read_pipe, write_pipe };

// The descriptor given to connect_read_pipe / connect_write_pipe, owned from the call on:
// closed unless a transport takes it, so a refused descriptor, a factory that throws or a
// connect never awaited leaves nothing open (close() on POSIX, CloseHandle on Windows).
class owned_descriptor {
public:
    owned_descriptor() noexcept : fd_(no_descriptor()) {}
    explicit owned_descriptor(native_descriptor fd) noexcept : fd_(fd) {}
    owned_descriptor(owned_descriptor&& other) noexcept : fd_(other.release()) {}
    owned_descriptor& operator=(owned_descriptor&& other) noexcept {
        if (this != &other) {
            if (fd_ != no_descriptor()) close_descriptor(fd_);
            fd_ = other.release();
        }
        return *this;
    }
    ~owned_descriptor() {
        if (fd_ != no_descriptor()) close_descriptor(fd_);
    }

    native_descriptor get() const noexcept { return fd_; }
    native_descriptor release() noexcept { return std::exchange(fd_, no_descriptor()); }

private:
    native_descriptor fd_;
};

inline const char* pipe_call(descriptor_kind kind) noexcept {
    return kind == descriptor_kind::read_pipe ? "connect_read_pipe" : "connect_write_pipe";
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/pipe_transport.hpp

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class overlapped_socket_transport final
    : public overlapped_transport<overlapped_socket_transport,
                                  stream_core<overlapped_socket_transport>> {
    using core = transport_core<overlapped_socket_transport, transport, base_protocol>;
    friend core;
    friend stream_core<overlapped_socket_transport>;
    friend overlapped_transport;

public:
    // As socket_transport::start, on a socket whose completions go to the loop's port
    // already (iocp_ops::start_stream sees to it).
    static overlapped_socket_transport& start(loop_base& loop, socket sock,
                                              owned_stream_protocol p,
                                              connection_counter* server) {
        return core::start(loop, sock.release(), std::move(p), server, descriptor_kind::socket);
    }

    // The same on a pipe's handle h, checked and associated with the loop's port, the
    // loop's quiet event made (iocp_ops::start_pipe sees to both); `kind` is read_pipe or
    // write_pipe. The transport owns h from the call on.
    static overlapped_socket_transport& start_pipe(loop_base& loop, native_descriptor h,
                                                   descriptor_kind kind,
                                                   owned_stream_protocol p) {
        return core::start(loop, descriptor_as_socket(h), std::move(p), nullptr, kind);
    }

private:
    // The bytes of the send in flight (the kernel's until it completes), and what was
    // written since, sent next.
    struct write_buffers {
        std::string in_flight;
        std::string queued;
        std::size_t size() const noexcept { return in_flight.size() + queued.size(); }
    };

    // A pipe keeps write buffers of up to this capacity between writes.
    static constexpr std::size_t kept_write_capacity = 64 * 1024;

    overlapped_socket_transport(loop_base& loop, native_socket fd, owned_stream_protocol p,
                                connection_counter* server, descriptor_kind kind) noexcept
        : overlapped_transport(loop, fd, std::move(p), server),
          kind_(kind),
          read_op_(*this),
          write_op_(*this) {}
    ~overlapped_socket_transport() override = default;

    bool is_pipe() const noexcept { return kind_ != descriptor_kind::socket; }
    HANDLE handle() const noexcept { return socket_as_descriptor(fd_); }

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept {
        return reads() && wants_to_read() ? backend::io_read : 0u;
    }
    // Once lost, the bytes in flight are not the protocol's any more (see drop_buffer).
    std::size_t buffered() const noexcept {
        if (!writes_) return 0;
        return lost_ ? writes_->queued.size() : writes_->size();
    }
    // The bytes in flight stay: the kernel reads them until the cancelled send completes.
    void drop_buffer() noexcept {
        if (writes_) writes_->queued.clear();
    }

    // A socket's addresses; a pipe has only its handle, as asyncio's extra "pipe".
    extra_info extra(std::string_view name) const {
        if (!is_pipe()) return core::extra(name);
        return name == "pipe" ? extra_info(fd_) : extra_info();
    }

    std::string describe() const override {
        if (!is_pipe()) return core::describe();
        return concat({"the transport of pipe handle ",
                       decimal(static_cast<long long>(reinterpret_cast<std::intptr_t>(handle())))});
    }

    static void close_unmade(native_socket fd, connection_counter*, descriptor_kind kind) noexcept {
        if (kind == descriptor_kind::socket) {
            close_socket(fd);
        } else {
            close_descriptor(socket_as_descriptor(fd));
        }
    }

    // ---- what overlapped_transport asks of us -------------------------------------------

    auto& read_op() noexcept { return read_op_; }
    auto& write_op() noexcept { return write_op_; }

    // A pipe's operations are cancelled, and its handle closed once their completions
    // have come: so each surely comes to the port while the handle is open.
    void close_now() noexcept {
        if (is_pipe()) {
            cancel_all();
        } else {
            overlapped_transport::close_now();
        }
    }
    void close_last() noexcept {
        if (is_pipe()) ::CloseHandle(handle());
    }

    // ---- what stream_core asks of us ----------------------------------------------------

    bool reads() const noexcept { return kind_ != descriptor_kind::write_pipe; }
    bool writes() const noexcept { return kind_ != descriptor_kind::read_pipe; }

    // ---- reading ------------------------------------------------------------------------

    // A zero-byte read: its completion means data is there.
    void start_waiting_for_data() {
        read_op_.reset();
        operation_started(loop_);
        unsigned long err;
        if (is_pipe()) {
            err = start_waiting_for_pipe_data(handle(), read_op_.overlapped());
        } else {
            WSABUF none{0, nullptr};
            DWORD flags = 0;
            err = started(
                ::WSARecv(fd_, &none, 1, nullptr, &flags, read_op_.overlapped(), nullptr));
        }
        if (err == 0) {
            reading_ = true;
            return;
        }
        operation_not_started(loop_);
        if (is_pipe() && pipe_read_ended(err)) {
            // The writer has gone, and no completion comes for a call that failed at its
            // start. One is queued, so the EOF reaches the protocol from the loop, as every
            // read's does, never inside the call that asked to read (a transport's start,
            // resume_reading).
            read_op_.reset();
            iocp_io::of(loop_).post(read_op_);
            reading_ = true;
            return;
        }
        throw_system_error(err, is_pipe() ? "ReadFile (waiting for data)"
                                          : "WSARecv (waiting for data)");
    }

    void read_done() noexcept {
        reading_ = false;
        if (closed_) return free_if_idle();
        // Lost, or paused since: resume_reading posts the next zero-byte read.
        if (lost_ || !(watched_ & backend::io_read)) return;
        unsigned long bytes = 0;
        const unsigned long err = result_of(read_op_, bytes);
        // A socket's graceful close, a pipe's writer gone: the read says EOF. A message
        // longer than the read (a message-mode pipe): data is there.
        const bool goes_on = is_pipe() ? pipe_read_ended(err) || err == ERROR_MORE_DATA
                                       : err == WSAEDISCON;
        if (err != 0 && !goes_on) {
            force_close(system_error_code(err));
            return;
        }
        read_some();
        if (!lost_ && (watched_ & backend::io_read) && !reading_) {
            try {
                start_waiting_for_data();
            } catch (const std::system_error& e) {
                force_close(e.code());
            }
        }
    }

    void read_some() noexcept {
        if (is_pipe()) {
            receive([this](std::span<char> buffer) noexcept {
                unsigned long n = 0;
                const unsigned long err =
                    read_pipe_now(handle(), buffer, iocp_io::of(loop_).quiet_event(), n);
                if (err == 0) return n > 0 ? std::ptrdiff_t(n) : std::ptrdiff_t(-1);
                if (pipe_read_ended(err)) return std::ptrdiff_t(0);
                force_close(system_error_code(err));
                return std::ptrdiff_t(-1);
            });
            return;
        }
        receive([this](std::span<char> buffer) noexcept {
            const int len = buffer.size() > INT_MAX ? INT_MAX : static_cast<int>(buffer.size());
            const int n = ::recv(fd_, buffer.data(), len, 0);
            if (n < 0) {
                const int err = ::WSAGetLastError();
                if (err != WSAEWOULDBLOCK) {
                    force_close(system_error_code(static_cast<unsigned long>(err)));
                }
            }
            return std::ptrdiff_t(n);
        });
    }

    // ---- writing ------------------------------------------------------------------------

    bool has_write_buffer() const noexcept { return writes_ && writes_->size() != 0; }

    // Sends what the socket takes now; the rest (a pipe: all) goes out through WSASend or
    // WriteFile, one at a time.
    void send_or_buffer(std::string_view data) {
        if (!has_write_buffer()) {
            if (!is_pipe()) {
                const int n = send_some(data);
                if (n < 0) return;  // a fatal error closed the transport
                data.remove_prefix(static_cast<std::size_t>(n));
                if (data.empty()) return;
            }
            if (!writes_) writes_ = std::make_unique<write_buffers>();
            writes_->queued.assign(data);
            send_queued();
        } else {
            writes_->queued.append(data);
        }
        maybe_pause_protocol();
    }

    // One non-blocking send: the count taken (0 if it would block), or -1 after a fatal
    // error, which has closed the transport.
    int send_some(std::string_view data) noexcept {
        const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
        const int n = ::send(fd_, data.data(), len, 0);
        if (n >= 0) return n;
        const int err = ::WSAGetLastError();
        if (err == WSAEWOULDBLOCK) return 0;
        force_close(system_error_code(static_cast<unsigned long>(err)));
        return -1;
    }

    // Moves the queued bytes in flight: one WSASend or WriteFile, completed once the
    // system took them all.
    void send_queued() noexcept {
        writes_->in_flight.swap(writes_->queued);
        writes_->queued.clear();
        write_op_.reset();
        std::string& bytes = writes_->in_flight;
        operation_started(loop_);
        unsigned long err;
        if (is_pipe()) {
            err = start_pipe_write(handle(), bytes.data(), bytes.size(), write_op_.overlapped());
        } else {
            WSABUF b{static_cast<ULONG>(bytes.size()), bytes.data()};
            err = started(::WSASend(fd_, &b, 1, nullptr, 0, write_op_.overlapped(), nullptr));
        }
        if (err != 0) {
            operation_not_started(loop_);
            bytes.clear();
            force_close(system_error_code(err));
            return;
        }
        writing_ = true;
    }

    void write_done() noexcept {
        writing_ = false;
        if (closed_) return free_if_idle();
        unsigned long bytes = 0;
        const unsigned long err = result_of(write_op_, bytes);
        std::string& sent = writes_->in_flight;
        // Taken in part (a pipe in PIPE_NOWAIT mode can): the rest goes first.
        if (err == 0 && !lost_ && bytes < sent.size()) writes_->queued.insert(0, sent, bytes);
        sent.clear();
        if (lost_) return;
        if (err != 0) {
            force_close(system_error_code(err));
            return;
        }
        if (!writes_->queued.empty()) {
            send_queued();
            maybe_resume_protocol();
            return;
        }
        if (!is_pipe() || sent.capacity() > kept_write_capacity ||
            writes_->queued.capacity() > kept_write_capacity) {
            writes_.reset();
        }
        writes_done();
    }

    void shutdown_write() noexcept {
        // A pipe has no half-close: its write_eof closes it once the bytes are out (asyncio).
        if (is_pipe()) {
            start_closing();
            return;
        }
        if (::shutdown(fd_, SD_SEND) != 0) {
            const int err = ::WSAGetLastError();
            if (err != WSAENOTCONN) force_close(system_error_code(static_cast<unsigned long>(err)));
        }
    }

    // An operation's outcome as its handle's kind reports it.
    template <class Op>
    unsigned long result_of(Op& op, unsigned long& bytes) noexcept {
        return is_pipe() ? op.file_result(handle(), bytes) : op.result(fd_, bytes);
    }

    // First, right after stream_core's flags, whose padding it may fill.
    descriptor_kind kind_;
    std::unique_ptr<write_buffers> writes_;  // only while a write is partly sent (a pipe: kept)
    member_op<overlapped_socket_transport, &overlapped_socket_transport::read_done> read_op_;
    member_op<overlapped_socket_transport, &overlapped_socket_transport::write_done> write_op_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/overlapped_socket_transport.hpp

#if defined(IOLOOP_WINDOWS)

#include <memory>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct iocp_ops {
    // As reactive_ops'. The socket's completions go to this loop's port first, unless a
    // connect or a sock_* operation saw to it already.
    static transport& start_stream(loop_base& loop, socket s, owned_stream_protocol p,
                                   connection_counter* server) {
        associate_once(loop, s);
        return overlapped_socket_transport::start(loop, std::move(s), std::move(p), server);
    }

    static datagram_transport& start_datagram(loop_base& loop, socket s,
                                              std::unique_ptr<datagram_protocol> p) {
        associate_once(loop, s);
        return overlapped_datagram_transport::start(loop, std::move(s), std::move(p));
    }

    // ConnectEx.
    static coro<void> connect(loop_base& loop, socket& s, endpoint to, const char* what) {
        return overlapped_connect(loop, s, std::move(to), what);
    }

    // A pipe transport over an overlapped named pipe's handle (connect_read_pipe,
    // connect_write_pipe): checks the handle (net/iocp/pipe_io.hpp), sends its
    // completions to this loop's port and starts the transport (connection_made). On
    // failure the handle is closed, the protocol dropped without a callback, and the error
    // thrown.
    static transport& start_pipe(loop_base& loop, owned_descriptor h, descriptor_kind kind,
                                 owned_stream_protocol p) {
        check_pipe_handle(h.get(), pipe_call(kind));
        iocp_io& io = iocp_io::of(loop);
        io.make_quiet_event();
        io.associate_pipe(h.get(), pipe_call(kind));
        return overlapped_socket_transport::start_pipe(loop, h.release(), kind, std::move(p));
    }

    static std::unique_ptr<server_listener> listen(server_state& server, socket& s) {
        return std::make_unique<iocp_listener>(server, s, &start_stream);
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
// end file ioloop/net/iocp/ops.hpp
// begin file ioloop/net/reactive/engine.hpp
// ioloop: reactive_engine<Backend>, the I/O engine of the readiness backends (epoll,
// kqueue, poll, select): try the call, and watch the descriptor only when it would block.
// It keeps the loop's table of watched descriptors (add_reader / add_writer and every
// one-shot wait) and the count of what is watched, and makes the sock_* operations'
// calls. Its transports, connect and listeners are in net/reactive/ops.hpp.
#ifndef IOLOOP_NET_REACTIVE_ENGINE_HPP
#define IOLOOP_NET_REACTIVE_ENGINE_HPP

// begin file ioloop/net/fd_ready.hpp
// ioloop: fd_ready, the one way a task waits once for readiness: until a descriptor is
// readable (or writable). The sock_* operations, a non-blocking connect and
// wait_readable / wait_writable use it. It registers through the loop's table of
// descriptors (add_reader / add_writer's), so a reader and a writer of the same socket
// can wait at once. The registration lives only while the task waits, so an idle socket
// costs the loop nothing, and a cancelled wait leaves the descriptor unwatched and usable.
#ifndef IOLOOP_NET_FD_READY_HPP
#define IOLOOP_NET_FD_READY_HPP


#include <coroutine>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class fd_ready final : public wait_point {
public:
    // `which` is backend::io_read or backend::io_write; `what` names the wait in errors.
    fd_ready(loop_base& loop, native_socket fd, unsigned which, const char* what) noexcept
        : loop_(loop), fd_(fd), which_(which), what_(what) {}
    // Before it is awaited (into a wait_for, a race): nothing is watched yet.
    fd_ready(fd_ready&& o) noexcept : loop_(o.loop_), fd_(o.fd_), which_(o.which_), what_(o.what_) {}
    fd_ready(const fd_ready&) = delete;
    fd_ready& operator=(const fd_ready&) = delete;
    // Destroyed while waiting: the loop is closing with the task unfinished. The loop may
    // already have dropped the registration; removing it again is then a no-op.
    ~fd_ready() { unwatch(); }

    // The caller tried the syscall and got EAGAIN: there is always something to wait for.
    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw(what_);
        // Registered before suspend(): suspend() may deliver a pending cancel at once, and
        // on_cancel must then find a registration to remove.
        fd_ready* self = this;
        callback_node* n = net_access::make_persistent_node(loop_, [self] { self->ready(); });
        net_access::engine(loop_).add_watch(fd_, which_, n, what_, false);
        watching_ = true;
        task_->suspend(h, this);
    }

    void await_resume() { task_->throw_if_cancelled(); }

    void on_cancel(task_base& t) noexcept override {
        unwatch();
        t.wake();
    }

private:
    // The loop's callback: one readiness report is all a wait needs. Removing the
    // registration from inside its own callback is allowed (the loop holds a reference).
    void ready() noexcept {
        unwatch();
        task_->wake();
    }

    void unwatch() noexcept {
        if (!watching_) return;
        watching_ = false;
        // A closed loop has already forgotten the descriptor (remove_watch returns false).
        // The backend can still fail if the caller closed the socket while a task waited
        // on it; the registration is dropped either way, and a destructor cannot report.
        try {
            net_access::engine(loop_).remove_watch(fd_, which_);
        } catch (...) {
        }
    }

    loop_base& loop_;
    native_socket fd_;
    unsigned which_;
    const char* what_;
    task_base* task_ = nullptr;
    bool watching_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/fd_ready.hpp
// begin file ioloop/net/reactive/ops.hpp
// ioloop: reactive_ops, what the networking layer asks of the readiness family (epoll,
// kqueue, poll, select): its transports, its connect and its listeners. Plain functions,
// compiled only where a program uses them: a loop that never touches the network pays
// nothing for them. net/engines.hpp (with_family) is the one place that picks them.
#ifndef IOLOOP_NET_REACTIVE_OPS_HPP
#define IOLOOP_NET_REACTIVE_OPS_HPP

// begin file ioloop/net/reactive/datagram_socket_transport.hpp
// ioloop: the datagram transport of the readiness backends: a UDP or Unix datagram
// socket, its protocol, and the datagrams the socket could not take yet (sent in order
// once it can, as asyncio queues them).
//
// Reading: every datagram reaches the protocol whole, or not at all. A UDP payload always
// fits the loop's shared 64 KiB read buffer, so a UDP socket reads straight into it. A Unix
// datagram may be as large as its sender's SO_SNDBUF allows (over 200,000 bytes by default
// on Linux), so a Unix socket first asks the size of the next one (FIONREAD) and reads a
// larger one into a buffer of its own, freed once the protocol has seen it: an idle
// endpoint holds no buffer. A datagram that still does not fit (another process read the
// one measured, or no memory for the buffer) is lost: error_received says so with
// std::errc::message_size, and nothing short is delivered.
#ifndef IOLOOP_NET_REACTIVE_DATAGRAM_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_REACTIVE_DATAGRAM_SOCKET_TRANSPORT_HPP


#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class datagram_socket_transport final : public datagram_core<datagram_socket_transport> {
    using core = transport_core<datagram_socket_transport, datagram_transport, datagram_protocol>;
    friend core;
    friend datagram_core<datagram_socket_transport>;

public:
    static datagram_socket_transport& start(loop_base& loop, socket sock,
                                            std::unique_ptr<datagram_protocol> p) {
        const bool measure = may_outgrow_read_buffer(sock.fd());
        return core::start(loop, sock.release(), std::move(p), measure);
    }

private:
    datagram_socket_transport(loop_base& loop, native_socket fd,
                              std::unique_ptr<datagram_protocol> p, bool measure) noexcept
        : datagram_core(loop, fd, std::move(p)), measure_(measure) {}
    ~datagram_socket_transport() override = default;

    // The largest UDP payload: 65,535 bytes less UDP's 8-byte header and, over IPv4, its
    // 20-byte header (IPv6 does not count its own). The shared buffer must take it.
    static constexpr std::size_t largest_udp_payload = 65'527;
    static_assert(net_access::read_buffer_size >= largest_udp_payload,
                  "a UDP datagram must fit the shared read buffer: UDP reads do not measure");

    // Whether the socket's datagrams may be larger than the shared read buffer: any but a
    // UDP socket's (in practice a Unix one's). If getsockname fails the family is unknown,
    // and the socket is measured: that is only slower.
    static bool may_outgrow_read_buffer(native_socket fd) noexcept {
        sockaddr_storage address{};
        socklen_t size = sizeof address;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return true;
        return address.ss_family != AF_INET && address.ss_family != AF_INET6;
    }

    unsigned wanted_events() const noexcept {
        return (closing_ ? 0u : unsigned(backend::io_read)) |
               (queue_.empty() ? 0u : unsigned(backend::io_write));
    }
    std::size_t buffered() const noexcept { return queue_.bytes(); }

    void on_io(unsigned events) noexcept override {
        if ((events & backend::io_read) && (watched_ & backend::io_read)) read_ready();
        if ((events & backend::io_write) && !queue_.empty() && !lost_) write_ready();
    }

    void read_ready() noexcept {
        std::span<char> buffer = net_access::read_buffer(loop_);
        // A datagram larger than the shared buffer: one of its own, for this read only.
        // (FIONREAD counts every queued datagram on the BSDs and macOS: there a small one
        // with more than 64 KiB queued behind it gets one too, larger than it needs.)
        std::unique_ptr<char[]> own;
        if (measure_) {
            const std::size_t next = next_datagram_size(fd_);
            if (next > buffer.size()) {
                own.reset(new (std::nothrow) char[next]);
                // No memory for it: the shared buffer cannot hold the datagram either, so it
                // is lost and reported as too large (message_size).
                if (own) buffer = {own.get(), next};
            }
        }
        sockaddr_storage from{};
        socklen_t size = sizeof from;
        auto* native = reinterpret_cast<sockaddr*>(&from);
        std::ptrdiff_t n;
        int err = 0;
        do {
            n = socket_recv_datagram(fd_, buffer.data(), buffer.size(), native, &size);
            if (n == -1) err = last_socket_error();
        } while (n == -1 && interrupted(err));
        if (n < 0) {
            // EMSGSIZE (WSAEMSGSIZE): a datagram larger than the buffer, lost; the protocol
            // hears std::errc::message_size, and nothing of it is delivered.
            if (!would_block(err)) report_error(datagram_error_code(err));
            return;
        }
        deliver(std::string_view(buffer.data(), std::size_t(n)), native, size);
    }

    void write_ready() noexcept {
        while (!queue_.empty() && !lost_) {
            const datagram& d = queue_.front();
            if (!send_one(d.data, d.to)) break;
            queue_.pop_front();
        }
        if (lost_) return;
        if (queue_.empty()) update_watch();
        datagrams_sent();
    }

    // ---- what datagram_core asks of us --------------------------------------------------

    bool can_send_now() const noexcept { return queue_.empty(); }
    void queued() noexcept { update_watch(); }

    // Sends one datagram; false if the socket cannot take it now. A failure other than
    // that goes to the protocol's error_received and the datagram is dropped (asyncio).
    bool send_one(std::string_view data, const endpoint& to) noexcept {
        const bool connected = to.family() == address_family::unspecified;
        for (;;) {
            const std::ptrdiff_t n =
                connected ? socket_send(fd_, data.data(), data.size())
                          : socket_sendto(fd_, data.data(), data.size(), to.native(),
                                          to.native_size());
            if (n >= 0) return true;
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (would_block(err)) return false;
            report_error(datagram_error_code(err));
            return true;  // dropped: it counts as handled
        }
    }

    bool measure_;  // ask each datagram's size before reading it (not UDP)
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/reactive/datagram_socket_transport.hpp
// begin file ioloop/net/reactive/listener.hpp
// ioloop: reactive_listener, a listening socket on a readiness backend: watched for
// readability while its server serves; each report accepts what the backlog holds.
#ifndef IOLOOP_NET_REACTIVE_LISTENER_HPP
#define IOLOOP_NET_REACTIVE_LISTENER_HPP


#include <string>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class reactive_listener final : public server_listener, private io_watcher {
public:
    // `start` makes the transports of the connections it accepts.
    reactive_listener(server_state& server, native_socket fd, start_stream_fn start) noexcept
        : server_(server), fd_(fd), start_(start) {}

    void serve(bool on) noexcept override {
        if (watched_ == on) return;
        try {
            net_access::watch(server_.loop(), fd_, on ? 0 : backend::io_read,
                              on ? backend::io_read : 0, *this);
            watched_ = on;
        } catch (...) {
            server_.report(concat({"server: cannot watch listening socket ", decimal(fd_)}));
        }
    }

private:
    // Takes up to `backlog` connections per readiness report, as asyncio does.
    void on_io(unsigned) noexcept override {
        for (int i = 0; i < server_.backlog() && watched_ && server_.is_serving(); ++i) {
            sockaddr_storage peer{};
            socklen_t size = 0;
            socket conn = socket::accept_on(fd_, peer, size);
            if (!conn.is_open()) {
                const int err = last_socket_error();
                if (accept_again(err)) continue;
                if (would_block(err)) return;
                server_.accept_failed(system_error_code(err), fd_);
                return;
            }
            server_.accepted(std::move(conn), peer.ss_family, start_);
        }
    }

    std::string describe() const override {
        return concat({"the server accepting on socket ", decimal(fd_)});
    }

    server_state& server_;
    native_socket fd_;
    start_stream_fn start_;
    bool watched_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/reactive/listener.hpp
// begin file ioloop/net/reactive/socket_transport.hpp
// ioloop: the stream transport of the readiness backends (epoll, poll, select, kqueue): a
// connected socket, or a descriptor that is not one (a pipe, a FIFO, a terminal: POSIX
// only), its protocol, and the bytes the descriptor did not take yet.
//
// The two differ only in how the bytes move, chosen at start: a socket with recv / send
// (MSG_NOSIGNAL), a pipe with read / write (SIGPIPE held off per write, detail/pipe_io.hpp),
// one way only, and a pipe's write_eof closes it. Everything else (buffering, flow control,
// the close path) is the same code.
//
// It holds no read buffer of its own: a plain protocol's bytes land in the loop's shared
// buffer, a buffered protocol's in the protocol's (stream_core::receive). Its write buffer
// exists only while a write is partly sent. So an idle connection costs this object and
// its protocol, nothing more.
#ifndef IOLOOP_NET_REACTIVE_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_REACTIVE_SOCKET_TRANSPORT_HPP


#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class socket_transport final : public stream_core<socket_transport> {
    using core = transport_core<socket_transport, transport, base_protocol>;
    friend core;
    friend stream_core<socket_transport>;

public:
    // Takes the connected socket and the protocol, watches the socket and calls
    // connection_made. If watching fails, the socket is closed, the protocol dropped
    // without a callback, and the error thrown. `server`: the server that accepted it.
    static socket_transport& start(loop_base& loop, socket sock, owned_stream_protocol p,
                                   connection_counter* server) {
        return core::start(loop, sock.release(), std::move(p), server, descriptor_kind::socket,
                           false);
    }

    // Takes `fd`, a descriptor that is not a socket (checked by net/pipe_transport.hpp),
    // already non-blocking and close-on-exec, and the protocol, as start() does; `kind` is
    // read_pipe or write_pipe. `watch_hangup`: a write pipe watches its descriptor for
    // readability, which only the reader going away causes (a pipe or a FIFO opened for
    // writing alone; asyncio's trick), so an idle pipe learns it too.
    static socket_transport& start_pipe(loop_base& loop, native_socket fd, descriptor_kind kind,
                                        bool watch_hangup, owned_stream_protocol p) {
        return core::start(loop, fd, std::move(p), nullptr, kind, watch_hangup);
    }

private:
    // The bytes a partial send left, and how many of them went out since.
    struct pending_writes {
        std::string data;
        std::size_t sent = 0;
        std::size_t size() const noexcept { return data.size() - sent; }
    };

    socket_transport(loop_base& loop, native_socket fd, owned_stream_protocol p,
                     connection_counter* server, descriptor_kind kind, bool watch_hangup) noexcept
        : stream_core(loop, fd, std::move(p), server), kind_(kind), watch_hangup_(watch_hangup) {}
    ~socket_transport() override = default;

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept {
        const bool read = kind_ == descriptor_kind::write_pipe ? watch_hangup_ : wants_to_read();
        const bool write = pending_ || sendfile_wants_writable();
        return (read ? unsigned(backend::io_read) : 0u) |
               (write ? unsigned(backend::io_write) : 0u);
    }
    std::size_t buffered() const noexcept { return pending_ ? pending_->size() : 0; }
    void drop_buffer() noexcept { pending_.reset(); }

    // A socket's addresses; a pipe has only its descriptor, as asyncio's extra "pipe".
    extra_info extra(std::string_view name) const {
        if (kind_ == descriptor_kind::socket) return core::extra(name);
        return name == "pipe" ? extra_info(fd_) : extra_info();
    }

    std::string describe() const override {
        if (kind_ == descriptor_kind::socket) return core::describe();
        return concat({"the transport of pipe ", decimal(fd_)});
    }

    // ---- what stream_core asks of us ----------------------------------------------------

    bool has_write_buffer() const noexcept { return pending_ != nullptr; }
    bool reads() const noexcept { return kind_ != descriptor_kind::write_pipe; }
    bool writes() const noexcept { return kind_ != descriptor_kind::read_pipe; }

    // Sends what the socket takes now; the rest waits for writability in pending_.
    void send_or_buffer(std::string_view data) {
        if (!pending_) {
            const std::ptrdiff_t n = send_some(data);
            if (n < 0) return;  // a fatal error closed the transport
            data.remove_prefix(static_cast<std::size_t>(n));
            if (data.empty()) return;
            pending_ = std::make_unique<pending_writes>();
            update_watch();
            if (lost_) return;  // the backend could not watch for writability
        }
        pending_->data.append(data);
        maybe_pause_protocol();
    }

    // ---- events -------------------------------------------------------------------------

    void on_io(unsigned events) noexcept override {
        if ((events & backend::io_read) && (watched_ & backend::io_read)) {
            // A write pipe readable: its reader went away (see start_pipe).
            if (kind_ == descriptor_kind::write_pipe) {
                force_close(std::make_error_code(std::errc::broken_pipe));
                return;
            }
            read_ready();
        }
        if ((events & backend::io_write) && pending_ && !lost_) write_ready();
        if ((events & backend::io_write) && !pending_ && !lost_ && sendfile_wants_writable()) {
            sendfile_writable();
        }
    }

    // A plain socket's descriptor, for sendfile(2); a pipe's is none.
    native_socket sendfile_socket() const noexcept override {
        return kind_ == descriptor_kind::socket ? fd_ : invalid_socket;
    }

    void read_ready() noexcept {
        receive([this](std::span<char> buffer) noexcept {
            std::ptrdiff_t n;
            int err = 0;
            do {
                n = recv_bytes(buffer.data(), buffer.size());
                if (n == -1) err = last_socket_error();
            } while (n == -1 && interrupted(err));
            if (n == -1 && !would_block(err)) force_close(system_error_code(err));
            return n;
        });
    }

    void write_ready() noexcept {
        const std::string_view rest = std::string_view(pending_->data).substr(pending_->sent);
        const std::ptrdiff_t n = send_some(rest);
        if (n <= 0) return;  // would block, or a fatal error closed the transport
        pending_->sent += static_cast<std::size_t>(n);
        if (pending_->size() == 0) {
            pending_.reset();
            update_watch();
            writes_done();
            return;
        }
        // Sent bytes are dropped once they are half the buffer: each byte moves at most
        // once more, however the sends split.
        if (pending_->sent >= pending_->data.size() / 2) {
            pending_->data.erase(0, pending_->sent);
            pending_->sent = 0;
        }
        maybe_resume_protocol();
    }

    // One send of what it can take: the count (0 if it would block), or -1 after a fatal
    // error, which has closed the transport.
    std::ptrdiff_t send_some(std::string_view data) noexcept {
        for (;;) {
            const std::ptrdiff_t n = send_bytes(data.data(), data.size());
            if (n >= 0) return n;
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (would_block(err)) return 0;
            force_close(system_error_code(err));
            return -1;
        }
    }

    // The bytes' one system call each way: a branch on the kind, no extra call for sockets.
    std::ptrdiff_t recv_bytes(char* into, std::size_t size) noexcept {
#if defined(IOLOOP_POSIX)
        if (kind_ != descriptor_kind::socket) return read_descriptor(fd_, into, size);
#endif
        return socket_recv(fd_, into, size);
    }
    std::ptrdiff_t send_bytes(const char* data, std::size_t size) noexcept {
#if defined(IOLOOP_POSIX)
        if (kind_ != descriptor_kind::socket) return write_without_sigpipe(fd_, data, size);
#endif
        return socket_send(fd_, data, size);
    }

    void shutdown_write() noexcept {
        // A pipe has no half-close: its write_eof closes it once the bytes are out (asyncio).
        if (kind_ != descriptor_kind::socket) {
            start_closing();
            return;
        }
        if (shutdown_send(fd_) == 0) return;
        // ENOTCONN: the peer is gone already; reading will tell the protocol.
        const std::error_code ec = system_error_code(last_socket_error());
        if (ec != std::errc::not_connected) force_close(ec);
    }

    // First: they fit in stream_core's tail padding, so a socket's transport is no larger.
    descriptor_kind kind_;
    bool watch_hangup_;  // a write pipe: readability means its reader went away
    std::unique_ptr<pending_writes> pending_;  // only while a write is partly sent
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/reactive/socket_transport.hpp

#include <memory>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct reactive_ops {
    // A transport for a connected stream socket: takes the socket and the protocol, calls
    // connection_made. If the backend cannot take the socket, the socket is closed, the
    // protocol dropped without a callback, and the error thrown. `server`: the server that
    // accepted the connection, if any.
    static transport& start_stream(loop_base& loop, socket s, owned_stream_protocol p,
                                   connection_counter* server) {
        return socket_transport::start(loop, std::move(s), std::move(p), server);
    }

    // The same for a datagram socket.
    static datagram_transport& start_datagram(loop_base& loop, socket s,
                                              std::unique_ptr<datagram_protocol> p) {
        return datagram_socket_transport::start(loop, std::move(s), std::move(p));
    }

    // Connects s to `to`, asyncio's way: a non-blocking connect, then writability, then
    // SO_ERROR. `what` begins the error's message.
    template <class = void>
    static coro<void> connect(loop_base& loop, socket& s, endpoint to, const char* what) {
        if (::connect(s.fd(), to.native(), to.native_size()) == 0) co_return;
        const int err = last_socket_error();
        // The handshake goes on (see connect_pending). The outcome is in SO_ERROR once the
        // socket is writable, or (Windows) once select reports the connect failed.
        if (!connect_pending(err)) throw_system_error(err, concat({what, " to ", to.to_string()}));
        co_await fd_ready(loop, s.fd(), backend::io_write, what);
        if (const std::error_code ec = s.pending_error()) {
            throw std::system_error(ec, concat({what, " to ", to.to_string()}));
        }
    }

    // A pipe transport (connect_read_pipe, connect_write_pipe): checks the descriptor,
    // makes it non-blocking and close-on-exec, and starts the transport (connection_made).
    // On failure the descriptor is closed, the protocol dropped without a callback, and
    // the error thrown. (Windows' select refuses every pipe in the check.)
    static transport& start_pipe(loop_base& loop, owned_descriptor fd, descriptor_kind kind,
                                 owned_stream_protocol p) {
        const pipe_descriptor d = check_pipe_descriptor(fd.get(), pipe_call(kind));
#if defined(IOLOOP_POSIX)
        try {
            set_nonblocking_cloexec(fd.get());
        } catch (const std::system_error& e) {
            throw std::system_error(
                e.code(), concat({pipe_call(kind), ": fd ", decimal(fd.get()),
                                  " (making it non-blocking and close-on-exec)"}));
        }
#endif
        const bool watch_hangup = kind == descriptor_kind::write_pipe && d.reader_gone_is_readable;
        return socket_transport::start_pipe(loop, descriptor_as_socket(fd.release()), kind,
                                            watch_hangup, std::move(p));
    }

    // Accepts on a listening socket of the server's, once told to serve.
    static std::unique_ptr<server_listener> listen(server_state& server, socket& s) {
        return std::make_unique<reactive_listener>(server, s.fd(), &start_stream);
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/reactive/ops.hpp

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_sock_error(int err, std::string_view op, native_socket fd) {
    throw_system_error(err, concat({op, " on socket ", decimal(fd)}));
}

template <class Backend>
class reactive_engine final : public io_engine {
public:
    reactive_engine(loop_base& loop, Backend& backend) noexcept
        : io_engine(io_family::readiness), loop_(loop), backend_(backend) {}
    ~reactive_engine() { free_unwatched(); }

    // ---- the loop's hooks (basic_event_loop calls these directly) ----------------------

    // Something is watched: the poll step must ask the backend.
    bool waiting() const noexcept { return watched_count_ != 0; }
    void event_arrived() noexcept {}
    // A registration removed during the poll batch is freed only now: until then an event
    // still to come in that batch may name it (it is empty and ignores the event).
    void after_poll() noexcept { free_unwatched(); }
    // Closing: every descriptor of the table is unwatched; its callbacks go to `dropped`.
    void close_watches(node_queue& dropped) noexcept {
        for (fd_watch*& w : watches_) {
            if (!w) continue;
            try {
                backend_.watch(w->fd, w->events, 0, static_cast<io_watcher*>(w));
            } catch (...) {
                // A descriptor closed under its watch: the backend has forgotten it.
            }
            if (w->reader) dropped.push(w->reader);
            if (w->writer) dropped.push(w->writer);
            delete std::exchange(w, nullptr);
        }
        watched_count_ = 0;
        free_unwatched();
    }
    // No operation is ever in flight: a readiness backend's calls are done when they return.
    void finish_operations() noexcept {}

    // ---- io_engine -----------------------------------------------------------------------

    void add_watch(native_socket fd, unsigned which, callback_node* n, const char* what,
                   bool replaces) override {
        n->refs.store(1, memory_order::relaxed);  // the registration's
        try {
            net_access::check_open(loop_, what);
            if (!is_open_fd(fd)) {
                throw_errno(EBADF,
                            concat({what, ": fd ", decimal(fd), " is not an open descriptor"}));
            }
            const std::size_t ufd = fd_index(fd);
            if (watched_by_net(ufd)) refuse_watched(fd, what, "a transport or a server");
            if (!replaces && ufd < watches_.size() && watches_[ufd] &&
                (which == backend::io_read ? watches_[ufd]->reader : watches_[ufd]->writer)) {
                refuse_watched(fd, what, "add_reader/add_writer or another waiting task");
            }
            if (ufd >= watches_.size()) watches_.resize(ufd + 1);
            if (!watches_[ufd]) watches_[ufd] = new fd_watch(loop_, fd);
        } catch (...) {
            n->release();
            throw;
        }
        fd_watch& w = *watches_[fd_index(fd)];
        const unsigned before = w.events;
        try {
            backend_.watch(fd, before, before | which, static_cast<io_watcher*>(&w));
        } catch (...) {
            if (before == 0) delete std::exchange(watches_[fd_index(fd)], nullptr);
            n->release();
            throw;
        }
        if (before == 0) ++watched_count_;
        w.events = before | which;
        callback_node*& slot = which == backend::io_read ? w.reader : w.writer;
        if (slot) net_access::unregister(slot);
        slot = n;
    }

    bool remove_watch(native_socket fd, unsigned which) override {
        if (fd_index(fd) >= watches_.size()) return false;  // a negative fd too
        fd_watch*& w = watches_[fd_index(fd)];
        if (!w) return false;
        callback_node*& slot = which == backend::io_read ? w->reader : w->writer;
        if (!slot) return false;
        const unsigned after = w->events & ~which;
        backend_.watch(fd, w->events, after, static_cast<io_watcher*>(w));
        w->events = after;
        net_access::unregister(std::exchange(slot, nullptr));
        if (after == 0) {
            unwatched_.push_back(std::exchange(w, nullptr));  // freed after the poll step
            --watched_count_;
        }
        return true;
    }

    // A transport or a listener watches its own descriptor, outside the table above; one
    // that something else of this loop watches already is refused (see add_watch).
    void watch(native_socket fd, unsigned old_events, unsigned new_events,
               io_watcher& w) override {
        const std::size_t ufd = fd_index(fd);
        if (old_events != 0 && new_events == 0) {
            // Forgotten even if the backend fails: the caller lets go of the descriptor.
            net_watched_[ufd] = 0;
            --watched_count_;
        } else if (old_events == 0 && new_events != 0) {
            if (ufd < watches_.size() && watches_[ufd]) {
                refuse_watched(fd, "watching", "add_reader/add_writer or a waiting task");
            }
            if (watched_by_net(ufd)) refuse_watched(fd, "watching", "a transport or a server");
            if (ufd >= net_watched_.size()) net_watched_.resize(ufd + 1, 0);
            backend_.watch(fd, old_events, new_events, &w);
            net_watched_[ufd] = 1;
            ++watched_count_;
            return;
        }
        backend_.watch(fd, old_events, new_events, &w);
    }

    bool watch_process(int pid, io_watcher& w) noexcept override {
        if constexpr (backend::process_backend<Backend>) {
            if (!backend_.watch_process(pid, static_cast<io_watcher*>(&w))) return false;
            ++watched_count_;  // the poll step must ask the backend
            return true;
        } else {
            (void)pid;
            (void)w;
            return false;
        }
    }
    void unwatch_process(int pid, bool reported) noexcept override {
        if constexpr (backend::process_backend<Backend>) {
            if (!reported) backend_.unwatch_process(pid);
            --watched_count_;
        } else {
            (void)pid;
            (void)reported;
        }
    }

    // ---- the sock_* operations ---------------------------------------------------------

    // loop.sock_sendfile may use sendfile(2) (Linux): it writes to a non-blocking socket
    // and says EAGAIN like a send.
    static constexpr bool native_sendfile = native_sendfile_available;

    coro<void> sock_connect(loop_base& loop, socket& s, endpoint to) {
        return reactive_ops::connect(loop, s, std::move(to), "sock_connect");
    }

    // Each tries its syscall first, as asyncio does: data that is already there costs no
    // loop iteration. Only EAGAIN (WSAEWOULDBLOCK) makes the task wait, then it retries.

    coro<std::size_t> sock_recv_into(loop_base& loop, socket& s, std::span<std::byte> buf) {
        for (;;) {
            auto* into = reinterpret_cast<char*>(buf.data());
            const std::ptrdiff_t n = socket_recv(s.fd(), into, buf.size());
            if (n >= 0) co_return static_cast<std::size_t>(n);
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_recv", s.fd());
            co_await fd_ready(loop, s.fd(), backend::io_read, "sock_recv");
        }
    }

    coro<void> sock_sendall(loop_base& loop, socket& s, std::string_view data) {
        while (!data.empty()) {
            const std::ptrdiff_t n = socket_send(s.fd(), data.data(), data.size());
            if (n >= 0) {
                // A partial send: the kernel's buffer is full; the rest goes once it drains.
                data.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_sendall", s.fd());
            co_await fd_ready(loop, s.fd(), backend::io_write, "sock_sendall");
        }
    }

    coro<std::pair<socket, endpoint>> sock_accept(loop_base& loop, socket& listener) {
        for (;;) {
            sockaddr_storage addr{};
            socklen_t size = 0;
            socket conn = socket::accept_on(listener.fd(), addr, size);
            if (conn.is_open()) {
                endpoint peer = size == 0 ? endpoint()
                                          : endpoint::from_native(
                                                reinterpret_cast<const sockaddr*>(&addr), size);
                co_return std::pair<socket, endpoint>(std::move(conn), std::move(peer));
            }
            const int err = last_socket_error();
            // The client gave up before we took its connection; take the next.
            if (accept_again(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_accept", listener.fd());
            co_await fd_ready(loop, listener.fd(), backend::io_read, "sock_accept");
        }
    }

    coro<std::pair<std::size_t, endpoint>> sock_recvfrom_into(loop_base& loop, socket& s,
                                                             std::span<std::byte> buf) {
        for (;;) {
            sockaddr_storage addr{};
            socklen_t size = sizeof addr;
            auto* native = reinterpret_cast<sockaddr*>(&addr);
            auto* into = reinterpret_cast<char*>(buf.data());
            const std::ptrdiff_t n = socket_recvfrom(s.fd(), into, buf.size(), native, &size);
            if (n >= 0) {
                // No address (a connected stream socket, an unnamed Unix peer on some
                // systems): the sender is unspecified rather than an error.
                endpoint from = size == 0 ? endpoint() : endpoint::from_native(native, size);
                co_return std::pair<std::size_t, endpoint>(static_cast<std::size_t>(n),
                                                           std::move(from));
            }
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_recvfrom", s.fd());
            co_await fd_ready(loop, s.fd(), backend::io_read, "sock_recvfrom");
        }
    }

    coro<std::size_t> sock_sendto(loop_base& loop, socket& s, std::string_view data,
                                  endpoint to) {
        for (;;) {
            const std::ptrdiff_t n = socket_sendto(s.fd(), data.data(), data.size(),
                                                   to.native(), to.native_size());
            if (n >= 0) co_return static_cast<std::size_t>(n);
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) {
                throw_system_error(err, concat({"sock_sendto ", to.to_string(), " on socket ",
                                                decimal(s.fd())}));
            }
            co_await fd_ready(loop, s.fd(), backend::io_write, "sock_sendto");
        }
    }

private:
    // A descriptor's reader and writer callbacks; the backend reports events with it.
    struct fd_watch final : io_watcher {
        fd_watch(loop_base& l, native_socket f) noexcept : loop(l), fd(f) {}

        void on_io(unsigned ready) noexcept override {
            if ((ready & backend::io_read) && reader) net_access::enqueue(loop, reader);
            if ((ready & backend::io_write) && writer) net_access::enqueue(loop, writer);
        }

        loop_base& loop;
        native_socket fd;
        unsigned events = 0;
        callback_node* reader = nullptr;
        callback_node* writer = nullptr;
    };

    bool watched_by_net(std::size_t ufd) const noexcept {
        return ufd < net_watched_.size() && net_watched_[ufd] != 0;
    }

    [[noreturn]] static void refuse_watched(native_socket fd, const char* what, const char* by) {
        throw_errno(EEXIST, concat({what, ": fd ", decimal(fd), " is watched already by ", by,
                                    " of this loop"}));
    }

    void free_unwatched() noexcept {
        for (fd_watch* w : unwatched_) delete w;
        unwatched_.clear();
    }

    loop_base& loop_;
    Backend& backend_;
    pod_vector<fd_watch*> watches_;  // by fd_index; owned, freed when unwatched or closed
    std::size_t watched_count_ = 0;  // descriptors watched, in the table or not
    pod_vector<fd_watch*> unwatched_;  // removed; freed after the next poll step
    pod_vector<unsigned char> net_watched_;  // by fd_index: 1 while a transport or a server
                                             // watches it (watch)
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/reactive/engine.hpp

#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Backend>
    requires backend::readiness_backend<Backend>
struct engine_of<Backend> {
    using type = reactive_engine<Backend>;
};

#if defined(IOLOOP_WINDOWS)
template <class Backend>
    requires backend::completion_backend<Backend>
struct engine_of<Backend> {
    using type = iocp_engine<Backend>;
};
#endif

// f(reactive_ops{}) or f(iocp_ops{}), as loop's backend is. Not virtual functions of the
// engine: those would compile every transport into each program that makes a loop (a
// timer hello took 40% longer to compile at -O0).
template <class F>
decltype(auto) with_family(loop_base& loop, F&& f) {
#if defined(IOLOOP_WINDOWS)
    if (net_access::engine(loop).family() == io_family::completion) {
        return std::forward<F>(f)(iocp_ops{});
    }
#else
    (void)loop;  // no other family is built here
#endif
    return std::forward<F>(f)(reactive_ops{});
}

// Throws what connect_read_pipe would (errc::operation_not_supported) where loop's backend
// can make no pipe transport (Windows' select: it waits on sockets only): for a call that
// would otherwise make a pipe first (a child's stdio::pipe) and fail only after.
inline void check_pipes_possible(loop_base& loop, std::string_view what) {
#if defined(IOLOOP_WINDOWS)
    if (net_access::engine(loop).family() != io_family::completion) {
        check_pipe_descriptor(no_descriptor(), what);  // which refuses every pipe there
    }
#else
    (void)loop;  // every POSIX backend takes pipes
    (void)what;
#endif
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/engines.hpp
// begin file ioloop/net/getaddrinfo.hpp
// ioloop: loop.getaddrinfo(host, port) and loop.getnameinfo(address) (asyncio's): the
// addresses of a host, and the name of an address, resolved on the loop's default executor
// because the system's calls block; a numeric host is parsed at once, without a thread.
// Resolver failures are std::system_error in resolver_category() (the EAI_* codes, which
// Winsock spells WSA*), or with errno's code for EAI_SYSTEM (POSIX).
#ifndef IOLOOP_NET_GETADDRINFO_HPP
#define IOLOOP_NET_GETADDRINFO_HPP


#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// One answer of getaddrinfo(host, port, family, type, proto, flags): asyncio's tuple
// (family, type, proto, canonname, sockaddr). type and proto are the system's numbers
// (SOCK_STREAM, IPPROTO_UDP, ...), as asyncio gives them; canonname is set on the first
// answer only, and only when AI_CANONNAME was asked for.
struct address_info {
    address_family family;
    int type;
    int proto;
    std::string canonname;
    endpoint address;
};

// The category of getaddrinfo's own error codes (EAI_NONAME, EAI_AGAIN, ...).
inline const std::error_category& resolver_category() noexcept {
    struct category final : std::error_category {
        const char* name() const noexcept override { return "getaddrinfo"; }
        std::string message(int code) const override { return ::gai_strerror(code); }
    };
    static const category instance;
    return instance;
}

namespace detail {

// ::getaddrinfo's list for `name` (null: the system's null host), each entry of an IP
// family handed to `each`; its errors as std::system_error naming `host`. Blocks: on an
// executor thread.
template <class Each>
void for_each_address(const std::string& host, const char* name, std::uint16_t port,
                      const addrinfo& hints, Each each) {
    start_sockets();
    const std::string service{std::string_view(decimal(port))};
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(name, service.c_str(), &hints, &found);
    if (resolver_uses_errno(rc)) throw_errno(errno, concat({"getaddrinfo ", host}));
    if (rc != 0) {
        throw std::system_error(rc, resolver_category(), concat({"getaddrinfo ", host}));
    }
    struct release_list {
        addrinfo* list;
        ~release_list() { ::freeaddrinfo(list); }
    } release{found};
    for (const addrinfo* a = found; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
        const auto size = static_cast<socklen_t>(a->ai_addrlen);  // a size_t on Windows
        each(*a, endpoint::from_native(a->ai_addr, size));
    }
}

// The blocking part, on an executor thread.
inline std::vector<endpoint> resolve(const std::string& host, std::uint16_t port,
                                     socket_type type) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type == socket_type::stream ? SOCK_STREAM : SOCK_DGRAM;
    std::vector<endpoint> result;
    for_each_address(host, host.c_str(), port, hints,
                     [&](const addrinfo&, endpoint e) { result.push_back(std::move(e)); });
    return result;
}

// The work sent to the executor.
struct resolver {
    std::string host;
    std::uint16_t port;
    socket_type type;
    std::vector<endpoint> operator()() const { return resolve(host, port, type); }
};

inline int native_family(address_family family) noexcept {
    switch (family) {
        case address_family::ipv4:
            return AF_INET;
        case address_family::ipv6:
            return AF_INET6;
        case address_family::unix_domain:
            return AF_UNIX;
        default:
            return AF_UNSPEC;
    }
}

// getaddrinfo with every hint, on an executor thread. An empty host is the system's null
// host: the wildcard address with AI_PASSIVE, the loopback without.
inline std::vector<address_info> resolve_all(const std::string& host, std::uint16_t port,
                                             address_family family, int type, int proto,
                                             int flags) {
    addrinfo hints{};
    hints.ai_family = native_family(family);
    hints.ai_socktype = type;
    hints.ai_protocol = proto;
    hints.ai_flags = flags;
    std::vector<address_info> result;
    for_each_address(host, host.empty() ? nullptr : host.c_str(), port, hints,
                     [&](const addrinfo& a, endpoint e) {
                         const address_family f = e.family();
                         result.push_back({f, a.ai_socktype, a.ai_protocol,
                                           a.ai_canonname ? std::string(a.ai_canonname)
                                                          : std::string(),
                                           std::move(e)});
                     });
    return result;
}

struct full_resolver {
    std::string host;
    std::uint16_t port;
    address_family family;
    int type;
    int proto;
    int flags;
    std::vector<address_info> operator()() const {
        return resolve_all(host, port, family, type, proto, flags);
    }
};

// getnameinfo, on an executor thread: (host, service).
struct name_resolver {
    endpoint address;
    int flags;
    std::pair<std::string, std::string> operator()() const {
        start_sockets();
        char host[1025];  // NI_MAXHOST
        char service[32];  // NI_MAXSERV
        const int rc = ::getnameinfo(address.native(), address.native_size(), host, sizeof host,
                                     service, sizeof service, flags);
        if (resolver_uses_errno(rc)) throw_errno(errno, concat({"getnameinfo ", address.to_string()}));
        if (rc != 0) {
            throw std::system_error(rc, resolver_category(),
                                    concat({"getnameinfo ", address.to_string()}));
        }
        return {std::string(host), std::string(service)};
    }
};

// The numeric host's one answer, as asyncio's _ipaddr_info makes it without a thread: only
// for a stream or datagram type, a family that agrees, and no canonical name asked for.
inline bool numeric_address_info(const std::string& host, std::uint16_t port,
                                 address_family family, int type, int proto, int flags,
                                 std::vector<address_info>& out) {
    if (type != SOCK_STREAM && type != SOCK_DGRAM) return false;
    if ((flags & AI_CANONNAME) != 0) return false;
    endpoint numeric;
    if (!endpoint::parse_ip(host, port, numeric)) return false;
    if (family != address_family::unspecified && family != numeric.family()) return false;
    if (proto == 0) proto = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
    out.push_back({numeric.family(), type, proto, std::string(), numeric});
    return true;
}

}  // namespace detail

template <class>
coro<std::vector<endpoint>> loop_base::getaddrinfo(std::string host, std::uint16_t port,
                                                   socket_type type) {
    // Before any resolver sees it: ::getaddrinfo would stop at a NUL and resolve the prefix.
    detail::refuse_nul(host, "host");
    endpoint numeric;
    if (endpoint::parse_ip(host, port, numeric)) co_return std::vector<endpoint>{numeric};
    // Made before the co_await, not inside its operand: g++ 12 then corrupts the job's
    // std::string (ASan caught it); see the note on issue 4's follow-up.
    task<std::vector<endpoint>> resolving =
        run_in_executor(detail::resolver{std::move(host), port, type});
    co_return co_await std::move(resolving);
}

template <class>
coro<std::vector<address_info>> loop_base::getaddrinfo(std::string host, std::uint16_t port,
                                                       address_family family, int type,
                                                       int proto, int flags) {
    detail::refuse_nul(host, "host");
    if (family == address_family::unix_domain) {
        throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                                "getaddrinfo: a Unix socket's address is its path, not a host");
    }
    std::vector<address_info> numeric;
    if (detail::numeric_address_info(host, port, family, type, proto, flags, numeric)) {
        co_return numeric;
    }
    // Made before the co_await, as above.
    task<std::vector<address_info>> resolving =
        run_in_executor(detail::full_resolver{std::move(host), port, family, type, proto, flags});
    co_return co_await std::move(resolving);
}

template <class>
coro<std::pair<std::string, std::string>> loop_base::getnameinfo(endpoint address, int flags) {
    if (address.family() != address_family::ipv4 && address.family() != address_family::ipv6) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            "getnameinfo: the address is not an IPv4 or IPv6 one");
    }
    task<std::pair<std::string, std::string>> resolving =
        run_in_executor(detail::name_resolver{std::move(address), flags});
    co_return co_await std::move(resolving);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/getaddrinfo.hpp
// begin file ioloop/net/happy_eyeballs.hpp
// ioloop: how a connect call goes through a host's addresses (asyncio's
// create_connection): in order, one attempt at a time; or, with a happy_eyeballs_delay,
// staggered as RFC 8305 says (asyncio's staggered_race): the next attempt starts when the
// one before has gone the delay without connecting, or at once when it fails, the earlier
// ones going on meanwhile; the first to connect wins, and every other attempt is cancelled
// and its socket closed before the call returns. The addresses may first be interleaved by
// family, so that a dead IPv6 route delays the IPv4 one by one delay only.
#ifndef IOLOOP_NET_HAPPY_EYEBALLS_HPP
#define IOLOOP_NET_HAPPY_EYEBALLS_HPP


#include <chrono>
#include <cstddef>
#include <exception>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The addresses grouped by family in the order each family first appears, then taken
// `first_family_count` - 1 from the first family, then one from each family in turn, so that
// the first family has `first_family_count` before the second's first (asyncio's
// _interleave_addrinfos). The order within a family is kept.
inline std::vector<endpoint> interleave_addresses(const std::vector<endpoint>& addresses,
                                                  std::size_t first_family_count) {
    std::vector<std::vector<endpoint>> families;
    for (const endpoint& a : addresses) {
        std::size_t i = 0;
        while (i < families.size() && families[i].front().family() != a.family()) ++i;
        if (i == families.size()) families.emplace_back();
        families[i].push_back(a);
    }
    std::vector<endpoint> result;
    result.reserve(addresses.size());
    std::vector<std::size_t> taken(families.size(), 0);
    if (!families.empty()) {
        while (taken[0] < families[0].size() && taken[0] + 1 < first_family_count)
            result.push_back(families[0][taken[0]++]);
    }
    while (result.size() < addresses.size()) {
        for (std::size_t f = 0; f < families.size(); ++f) {
            if (taken[f] < families[f].size()) result.push_back(families[f][taken[f]++]);
        }
    }
    return result;
}

// The addresses a connect tries, in the order it tries them: those of local_addr's family
// only when one is given, interleaved as the options say.
inline std::vector<endpoint> connect_order(std::vector<endpoint> addresses,
                                           const connect_options& o, const char* what) {
    if (o.local_addr.family() != address_family::unspecified) {
        std::vector<endpoint> same;
        for (const endpoint& a : addresses) {
            if (a.family() == o.local_addr.family()) same.push_back(a);
        }
        if (same.empty() && !addresses.empty()) {
            throw std::system_error(
                std::make_error_code(std::errc::address_family_not_supported),
                concat({what, ": no address of local_addr ", o.local_addr.to_string(),
                        "'s family to connect to"}));
        }
        addresses = std::move(same);
    }
    const bool staggered = o.happy_eyeballs_delay.count() >= 0;
    const int interleave = o.interleave >= 0 ? o.interleave : (staggered ? 1 : 0);
    if (interleave > 0 && addresses.size() > 1)
        return interleave_addresses(addresses, static_cast<std::size_t>(interleave));
    return addresses;
}

// A socket of to's family, bound to `local` if it is specified, connected to `to` (TCP_NODELAY
// on for TCP), the way the loop's backend family connects (the same path as
// loop.sock_connect).
template <class = void>
coro<socket> connect_socket(loop_base& loop, endpoint to, endpoint local = {}) {
    socket s = socket::open(to.family(), socket_type::stream);
    if (to.family() != address_family::unix_domain) s.set_no_delay(true);
    if (local.family() != address_family::unspecified) s.bind(local);
    co_await with_family(loop, [&](auto ops) { return ops.connect(loop, s, to, "connect"); });
    co_return s;
}

// What a connect throws when every address failed: with all_errors, connect_errors;
// else the one error, the first if they all say the same, or one std::system_error naming
// each (asyncio's OSError("Multiple exceptions: ...")), whose code is the last one's.
[[noreturn]] inline void throw_connect_failure(std::vector<connect_failure> failures,
                                               std::exception_ptr last, bool all_errors,
                                               const char* what) {
    if (failures.empty()) {
        throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                                concat({what, ": the host has no address"}));
    }
    if (all_errors) throw connect_errors(std::move(failures), what);
    bool same = true;
    for (const connect_failure& f : failures) same = same && f.message == failures[0].message;
    if (same) std::rethrow_exception(last);
    std::string text = "Multiple exceptions: ";
    for (std::size_t i = 0; i < failures.size(); ++i) {
        if (i != 0) text += ", ";
        text += failures[i].message;
    }
    throw std::system_error(failures.back().code, text);
}

// One address at a time, each attempt to its end (asyncio without happy_eyeballs_delay).
template <class = void>
coro<socket> connect_in_turn(loop_base& loop, std::vector<endpoint> addresses,
                             connect_options o, const char* what) {
    std::vector<connect_failure> failures;
    std::exception_ptr last;
    for (const endpoint& to : addresses) {
        try {
            co_return co_await connect_socket(loop, to, o.local_addr);
        } catch (const std::system_error& e) {
            failures.push_back({to, e.code(), e.what()});
            last = std::current_exception();
        }
    }
    throw_connect_failure(std::move(failures), std::move(last), o.all_errors, what);
}

// The attempts in flight of a staggered connect, cancelled if the connect ends before
// they do (it won, failed, or was itself cancelled): each one's socket is closed when its
// task ends.
struct connect_attempts {
    std::vector<task<socket>> tasks;
    std::vector<std::size_t> index;  // of each task's address

    connect_attempts() = default;
    connect_attempts(const connect_attempts&) = delete;
    connect_attempts& operator=(const connect_attempts&) = delete;
    ~connect_attempts() {
        for (task<socket>& t : tasks) {
            if (!t.done()) {
                t.cancel();
            } else if (!t.cancelled()) {
                (void)t.exception();  // read: a failure nobody looked at is not reported
            }
        }
    }
};

// RFC 8305's staggered attempts (asyncio's staggered_race); addresses is not empty. As
// asyncio, the next attempt starts when the latest one has run the delay or has failed
// (an earlier one failing does not hurry it).
template <class = void>
coro<socket> connect_staggered(loop_base& loop, std::vector<endpoint> addresses,
                               connect_options o, const char* what) {
    // Each address's failure, in its slot: the errors come out in the addresses' order.
    std::vector<connect_failure> failed(addresses.size());
    std::vector<bool> did_fail(addresses.size(), false);
    std::exception_ptr last;
    connect_attempts running;
    std::size_t next = 0;
    loop_base::time_point latest_start{};
    const auto start_next = [&] {
        running.tasks.push_back(
            loop.create_task(connect_socket(loop, addresses[next], o.local_addr)));
        running.index.push_back(next);
        ++next;
        latest_start = loop.time();
    };
    start_next();
    socket winner;
    while (!running.tasks.empty() && !winner.is_open()) {
        if (next < addresses.size()) {
            using duration = std::chrono::steady_clock::duration;
            const duration waited = loop.time() - latest_start;
            const duration left =
                waited < o.happy_eyeballs_delay ? o.happy_eyeballs_delay - waited : duration{};
            (void)co_await wait(running.tasks, left, first_completed);
        } else {
            (void)co_await wait(running.tasks, first_completed);
        }
        // The attempts done: a failure is kept, the first success wins (another that
        // connected in the same turn is closed with its task).
        bool latest_failed = false;
        for (std::size_t i = 0; i < running.tasks.size();) {
            task<socket>& t = running.tasks[i];
            if (!t.done()) {
                ++i;
                continue;
            }
            const std::size_t k = running.index[i];
            if (std::exception_ptr e = t.exception()) {
                try {
                    std::rethrow_exception(e);  // anything but a system_error leaves at once
                } catch (const std::system_error& err) {
                    failed[k] = {addresses[k], err.code(), err.what()};
                    did_fail[k] = true;
                    last = e;
                    latest_failed = latest_failed || k + 1 == next;
                }
            } else if (!winner.is_open()) {
                winner = std::move(t.result());
            }
            running.tasks.erase(running.tasks.begin() + static_cast<std::ptrdiff_t>(i));
            running.index.erase(running.index.begin() + static_cast<std::ptrdiff_t>(i));
        }
        if (winner.is_open() || next == addresses.size()) continue;
        if (latest_failed || running.tasks.empty() ||
            loop.time() - latest_start >= o.happy_eyeballs_delay) {
            start_next();
        }
    }
    if (winner.is_open()) {
        // The losers are cancelled and waited for, so that their sockets are closed when
        // the caller gets the winner. One that failed or connected meanwhile is dropped.
        if (!running.tasks.empty()) {
            for (task<socket>& t : running.tasks) t.cancel();
            (void)co_await wait(running.tasks);
            for (task<socket>& t : running.tasks) {
                if (!t.cancelled()) (void)t.exception();  // read, so it is not reported
            }
            running.tasks.clear();
        }
        co_return winner;
    }
    std::vector<connect_failure> failures;
    for (std::size_t k = 0; k < addresses.size(); ++k) {
        if (did_fail[k]) failures.push_back(std::move(failed[k]));
    }
    throw_connect_failure(std::move(failures), std::move(last), o.all_errors, what);
}

// The first of `addresses` to connect, as the options say; what = the call's name.
template <class = void>
coro<socket> connect_any(loop_base& loop, std::vector<endpoint> addresses, connect_options o,
                         const char* what) {
    addresses = connect_order(std::move(addresses), o, what);
    if (o.happy_eyeballs_delay.count() >= 0 && addresses.size() > 1)
        return connect_staggered(loop, std::move(addresses), o, what);
    return connect_in_turn(loop, std::move(addresses), o, what);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/happy_eyeballs.hpp
// begin file ioloop/net/serve_options.hpp
// ioloop: serve_options, the keyword arguments of asyncio's serve calls
// (loop.create_server, start_server) as one struct, written with designated initializers:
//
//     co_await ioloop::start_server(cb, "", 8080, {.backlog = 1000, .reuse_port = true});
//
// It owns no memory, for the reason connect_options gives (g++ 12 destroys a braced
// temporary of a co_await expression twice): `hosts` and `ssl` point to what the caller
// keeps until the call returns.
#ifndef IOLOOP_NET_SERVE_OPTIONS_HPP
#define IOLOOP_NET_SERVE_OPTIONS_HPP


#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

struct serve_options {
    // Each connection's stream_reader limit (start_server only; stream_default_limit).
    std::size_t limit = 64 * 1024;
    // The listen() backlog; the kernel may cap it (somaxconn).
    int backlog = 100;
    // TLS for every connection: an ssl_context of <ioloop/ssl.hpp> (its certificate
    // loaded); none: plain TCP. A connection's protocol hears connection_made once its
    // handshake is done; a failed handshake just closes that connection.
    ssl_option ssl{};
    // SO_REUSEADDR on the listening sockets: bind a port whose old connections linger in
    // TIME_WAIT (POSIX's default; on Windows it would let another process steal the port).
    bool reuse_address = detail::listen_with_reuse_address;
    // SO_REUSEPORT: several sockets (processes) bound to one port, the kernel spreading the
    // connections; std::system_error(errc::operation_not_supported) where there is none
    // (Windows).
    bool reuse_port = false;
    // SO_KEEPALIVE on every accepted connection.
    bool keep_alive = false;
    // false: listening (clients queue in the backlog) but not accepting until
    // server.start_serving() or serve_forever().
    bool start_serving = true;
    // Listen on each of these hosts' addresses too (asyncio's host=[...]); with hosts
    // given, an empty host argument adds nothing (instead of every interface). Null: the
    // host argument alone.
    const std::vector<std::string>* hosts = nullptr;
    // With ssl: each handshake's time limit, and how long a close waits for the peer's
    // close_notify (asyncio's defaults).
    std::chrono::steady_clock::duration ssl_handshake_timeout = std::chrono::seconds(60);
    std::chrono::steady_clock::duration ssl_shutdown_timeout = std::chrono::seconds(30);
};
// What keeps it safe as a braced temporary in a co_await expression (see above).
static_assert(std::is_trivially_copyable_v<serve_options> &&
              std::is_trivially_destructible_v<serve_options>);

namespace detail {

inline void check_serve_options(const serve_options& o, const char* what) {
    check_tls_timeouts(o.ssl_handshake_timeout, o.ssl_shutdown_timeout, what);
    if (o.backlog < 0) {
        throw std::invalid_argument(concat({what, ": the backlog must not be negative"}));
    }
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/serve_options.hpp
// begin file ioloop/net/start_tls.hpp
// ioloop: where the networking layer puts a TLS layer (made by <ioloop/ssl.hpp>, reached
// through an ssl_option) between a transport and its protocol: over a connection just made
// (create_connection, connect_accepted_socket, each connection of create_server with the
// ssl option), and over one that already carries plain bytes (loop.start_tls, asyncio's
// STARTTLS). The layer is the transport's protocol, and the transport the protocol above
// writes to; the transport owns it, and it owns that protocol.
#ifndef IOLOOP_NET_START_TLS_HPP
#define IOLOOP_NET_START_TLS_HPP

// begin file ioloop/net/stream_reader.hpp
// ioloop: the state of a stream connection (stream_reader_protocol, asyncio's
// StreamReaderProtocol) and its reading end (stream_reader, asyncio's StreamReader).
//
// One object per connection holds everything: the protocol the transport calls, the read
// buffer, the task waiting to read, the tasks waiting in drain() or wait_closed(). The
// stream_reader and stream_writer handles point to it and share it with the transport,
// by a count of references: the transport's `delete` (after connection_lost, or when the
// loop closes) only gives up its reference (a C++20 destroying operator delete), so the
// handles stay valid, and the object goes with the last of them.
//
// Reads are awaiters, not coroutines: a read the buffer can serve costs no suspension and
// no frame; one that waits is woken only once the buffer can serve it.
//
// The protocol is a buffered_protocol: the transport receives straight into the read
// buffer, and a read copies its result out of it once, into the string it returns. The
// buffer is a block of 64 KiB, the size of one read, from the thread's recycler
// (detail/recycler.hpp says why blocks are kept, with the numbers), taken when a read is
// about to receive and given back as soon as reads have taken every byte: an idle
// connection holds no read buffer, and a busy one mallocs nothing for its buffer (only
// each read's result). It grows beyond a block only while more than that is unread (a
// long line, or reads slower than the peer: up to twice the limit and one read more).
// A read that brings nothing (a spurious wakeup) leaves the block lent until bytes come;
// EOF and connection_lost give an empty one back.
#ifndef IOLOOP_NET_STREAM_READER_HPP
#define IOLOOP_NET_STREAM_READER_HPP


#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

// asyncio's default limit of a stream reader: readline and readuntil give up on a line
// longer than this, and the reader stops the transport reading above twice this.
inline constexpr std::size_t stream_default_limit = 64 * 1024;

class stream_reader;
class stream_writer;
class stream_reader_protocol;

namespace detail {

class stream_read_awaiter;
class stream_wait_awaiter;
struct stream_access;  // net/streams.hpp

// What a read asks for, and what it found so far in the buffer.
struct stream_read_request {
    enum class op : unsigned char { some, all, exactly, until, line, until_any };

    // Packed: every co_await on a read keeps its awaiter, and so this, in the coroutine's
    // frame (24 bytes instead of 40: an idle coroutine connection 16 bytes smaller).
    union {
        const char* sep_data = nullptr;  // until, line: the separator
        const std::string_view* seps;    // until_any: the separators
    };
    // some, exactly: the byte count. until, line, until_any: until a separator is found,
    // how many unread bytes are known not to start one (asyncio's `offset`), so that new
    // data is scanned once; then where it starts, relative to the unread data.
    std::size_t n = 0;
    std::uint32_t sep_size = 0;  // until, line: the separator's size; until_any: the count
    op kind = op::some;
    bool found = false;       // until, line, until_any: a separator was found
    std::uint8_t match = 0;   // until_any: which one

    std::string_view sep() const noexcept {
        return kind == op::until_any ? seps[match] : std::string_view(sep_data, sep_size);
    }

    // The method's name, for errors.
    const char* name() const noexcept {
        switch (kind) {
            case op::some:
            case op::all:
                return "read";
            case op::exactly:
                return "readexactly";
            case op::until:
            case op::until_any:
                return "readuntil";
            case op::line:
                return "readline";
        }
        return "read";
    }
};

}  // namespace detail

// asyncio's StreamReaderProtocol: the protocol of a stream connection, which feeds a
// stream_reader and serves a stream_writer. open_connection and start_server make it; make
// one yourself to put streams over a transport of your own:
//     auto p = stream_reader_protocol::create();
//     stream_reader r(*p);  stream_writer w(*p);
//     ... hand `p` to the transport (create_connection's factory), which calls
//     connection_made, get_buffer and buffer_updated, eof_received, connection_lost.
// data_received feeds it bytes by hand (asyncio's StreamReader.feed_data).
class stream_reader_protocol final : public buffered_protocol {
public:
    // The largest limit (the state keeps it in 32 bits).
    static constexpr std::size_t max_limit = 0xffffffffu;

    // Always on the heap, through create(): the handles count on it.
    static std::unique_ptr<stream_reader_protocol> create(
        std::size_t limit = stream_default_limit) {
        if (limit == 0 || limit > max_limit) {
            throw std::invalid_argument("stream_reader_protocol: the limit must be in [1, 2^32)");
        }
        return std::unique_ptr<stream_reader_protocol>(new stream_reader_protocol(limit));
    }

    stream_reader_protocol(const stream_reader_protocol&) = delete;
    stream_reader_protocol& operator=(const stream_reader_protocol&) = delete;
    // Runs when the last reference goes; `delete` does not run it (see operator delete).
    ~stream_reader_protocol() override { release_buffer(); }

    // Allocated like coroutine frames (connections come and go in bursts too).
    static void* operator new(std::size_t size) { return detail::allocate_recycled(size); }
    // Only for a constructor that throws (none does): operator new's partner.
    static void operator delete(void* p, std::size_t size) noexcept {
        detail::deallocate_recycled(p, size);
    }
    // `delete p` from the transport (or the unique_ptr create() returns): the transport
    // lets go, and the object lives on while a reader or writer handle needs it.
    static void operator delete(stream_reader_protocol* p, std::destroying_delete_t) noexcept {
        p->detach();
    }

    // ---- protocol ------------------------------------------------------------------

    void connection_made(transport& t) override {
        transport_ = &t;
        if (pending_) start_pending();
    }

    // Where the transport receives: after the unread bytes, in the block (taken now if
    // none is held). It lends all the room there is, at least a quarter block (or the
    // hint, if smaller): less, and the unread bytes move down or to a larger buffer.
    std::span<char> get_buffer(std::size_t size_hint) override {
        const std::size_t quarter = detail::recycler::read_block_size / 4;
        reserve(size_hint == 0 ? 1 : size_hint < quarter ? size_hint : quarter);
        return {buf_ + end_, cap_ - end_};
    }

    void buffer_updated(std::size_t n) override {
        end_ += n;
        received();
    }

    // Bytes received some other way, as if the transport had brought them (asyncio's
    // feed_data).
    void data_received(std::string_view data) {
        if (data.empty()) return;
        reserve(data.size());
        std::memcpy(buf_ + end_, data.data(), data.size());
        end_ += data.size();
        received();
    }

    // The peer sent EOF: reads return what is left, then "". The transport stays open for
    // writing (asyncio's streams keep a half-closed connection).
    bool eof_received() override {
        eof_ = true;
        if (unread() == 0) release_buffer();  // lent for a read that found EOF
        if (reading_ && !reading_woken_) wake_reader();
        return true;
    }

    // The transport is going away. An error fails the pending and later reads, drain()
    // and wait_closed() with it; without one, reads see EOF.
    void connection_lost(std::error_code ec) override {
        transport_ = nullptr;
        lost_ = true;
        if (unread() == 0) release_buffer();
        if (ec) {
            error_ = ec;
        } else {
            eof_ = true;
        }
        if (reading_ && !reading_woken_) wake_reader();
        wake_waiters(true, ec.value() != 0);
    }

    void pause_writing() override { write_paused_ = true; }

    void resume_writing() override {
        write_paused_ = false;
        wake_waiters(false, false);
    }

    // ---- state ---------------------------------------------------------------------

    std::size_t limit() const noexcept { return limit_; }
    // The transport while the connection is up (connected, not yet lost); else null.
    ioloop::transport* get_transport() const noexcept { return transport_; }
    // The error the connection was lost to (empty if none, or not lost).
    std::error_code exception() const noexcept { return error_; }
    // Bytes received and not read yet.
    std::size_t buffered() const noexcept { return unread(); }
    // Bytes of storage the read buffer holds: 0 whenever it is empty (an idle
    // connection holds no read buffer).
    std::size_t buffer_capacity() const noexcept { return cap_; }

private:
    // New bytes are in the buffer: the waiting read may finish now.
    void received() {
        if (reading_ && !reading_woken_ && can_finish(reading_request())) wake_reader();
        // Above twice the limit the transport stops reading until reads take the buffer
        // back to the limit. Not while a read waits for more: it needs the data (asyncio
        // resumes reading whenever a read starts to wait).
        if (!read_paused_ && transport_ && above_twice_limit() && (!reading_ || reading_woken_)) {
            transport_->pause_reading();
            read_paused_ = true;
        }
    }

    friend class stream_reader;
    friend class stream_writer;
    friend class detail::stream_read_awaiter;
    friend class detail::stream_wait_awaiter;
    friend struct detail::stream_access;

    explicit stream_reader_protocol(std::size_t limit) noexcept
        : limit_(static_cast<std::uint32_t>(limit)) {}

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ != 0) return;
        this->~stream_reader_protocol();
        detail::deallocate_recycled(this, sizeof(stream_reader_protocol));
    }

    // The transport's reference goes (or the unique_ptr's, never handed to a transport).
    // When the loop closes, the transport goes without connection_lost: from then on the
    // handles see a lost connection, and no task is woken (the loop is closing them).
    void detach() noexcept {
        transport_ = nullptr;
        lost_ = true;
        // A server connection that never started: its coroutine's frame holds handles
        // to this object, which the reference dropped last keeps alive meanwhile.
        if (pending_) {
            coro<void> never_started = std::move(pending_);
        }
        release();
    }

    void start_pending() noexcept;

    // ---- the buffer ------------------------------------------------------------------

    std::size_t unread() const noexcept { return end_ - start_; }
    const char* data() const noexcept { return buf_ + start_; }

    // Makes room for `want` bytes after the unread ones: in place, by moving the unread
    // bytes down once the consumed ones outnumber them (each byte moves at most once per
    // time the buffer's length doubles), or in a buffer twice as large. Unread bytes are
    // never more than twice the limit and one read (the transport pauses above that),
    // unless a read waits for more than that.
    void reserve(std::size_t want) {
        if (cap_ - end_ >= want) return;
        const std::size_t n = unread();
        if (buf_ && start_ >= n && cap_ - n >= want) {
            std::memmove(buf_, buf_ + start_, n);
        } else {
            const std::size_t block = detail::recycler::read_block_size;
            std::size_t cap = n + want > 2 * cap_ ? n + want : 2 * cap_;
            char* larger;
            if (cap <= block) {
                cap = block;
                larger = detail::allocate_read_block();
            } else {
                larger = static_cast<char*>(::operator new(cap));
            }
            if (n != 0) std::memcpy(larger, buf_ + start_, n);
            release_buffer();
            buf_ = larger;
            cap_ = cap;
        }
        start_ = 0;
        end_ = n;
    }

    // Gives the storage back: a block to the recycler, a larger buffer to malloc.
    void release_buffer() noexcept {
        if (!buf_) return;
        if (cap_ == detail::recycler::read_block_size) {
            detail::deallocate_read_block(buf_);
        } else {
            ::operator delete(buf_);
        }
        buf_ = nullptr;
        cap_ = start_ = end_ = 0;
    }

    // The first k unread bytes are read: an emptied buffer is given back.
    void consume(std::size_t k) noexcept {
        start_ += k;
        if (start_ == end_) release_buffer();
    }

    // Takes the first k unread bytes (all of them if k is larger), in a string of their
    // own: the buffer's block stays with the reader (or goes back to the recycler).
    std::string take(std::size_t k) {
        if (k > unread()) k = unread();
        std::string out(data(), k);
        consume(k);
        maybe_resume_transport();
        return out;
    }

    // Drops the first k unread bytes.
    void discard(std::size_t k) noexcept {
        consume(k < unread() ? k : unread());
        maybe_resume_transport();
    }

    bool above_twice_limit() const noexcept {
        const std::size_t n = unread();
        return n > limit_ && n - limit_ > limit_;  // n > 2 * limit, without overflow
    }

    // asyncio's _maybe_resume_transport: back to reading once at or below the limit.
    void maybe_resume_transport() noexcept {
        if (read_paused_ && unread() <= limit_) resume_transport();
    }

    void resume_transport() noexcept {
        read_paused_ = false;
        if (transport_) {
            try {
                transport_->resume_reading();
            } catch (...) {  // the transport is closing: nothing more to read anyway
            }
        }
    }

    // ---- reads -----------------------------------------------------------------------

    inline detail::stream_read_request& reading_request() noexcept;
    inline void wake_reader() noexcept;

    // asyncio's readuntil loop, without the waiting: true when the separator is found,
    // or the bytes without it exceed the limit.
    bool scan(detail::stream_read_request& r) const noexcept {
        if (r.found) return true;
        if (r.kind == detail::stream_read_request::op::until_any) return scan_any(r);
        const std::size_t len = unread();
        const std::size_t seplen = r.sep_size;
        if (len - r.n >= seplen) {
            const std::size_t at = std::string_view(data(), len).find(r.sep(), r.n);
            if (at != std::string_view::npos) {
                r.n = at;
                r.found = true;
                return true;
            }
            r.n = len + 1 - seplen;
        }
        return r.n > limit_;
    }

    // scan() for several separators (asyncio 3.13's readuntil of a tuple): of the ones
    // found, the one that ends first, so that the result is the shortest that ends in one.
    bool scan_any(detail::stream_read_request& r) const noexcept {
        const std::string_view unread_data(data(), unread());
        std::size_t best_end = std::string_view::npos;
        std::size_t longest = 0;
        for (std::uint32_t i = 0; i < r.sep_size; ++i) {
            const std::string_view sep = r.seps[i];
            longest = sep.size() > longest ? sep.size() : longest;
            const std::size_t at = unread_data.find(sep, r.n);
            if (at != std::string_view::npos && at + sep.size() < best_end) {
                best_end = at + sep.size();
                r.match = static_cast<std::uint8_t>(i);
            }
        }
        if (best_end != std::string_view::npos) {
            r.n = best_end - r.seps[r.match].size();
            r.found = true;
            return true;
        }
        if (unread_data.size() + 1 >= longest) r.n = unread_data.size() + 1 - longest;
        return r.n > limit_;
    }

    // True when the read can finish now, with a result or an error, without more data.
    bool can_finish(detail::stream_read_request& r) const noexcept {
        using op = detail::stream_read_request::op;
        if (error_) return true;
        switch (r.kind) {
            case op::some:
                return r.n == 0 || unread() != 0 || eof_;
            case op::all:
                return eof_;
            case op::exactly:
                return r.n == 0 || unread() >= r.n || eof_;
            case op::until:
            case op::line:
            case op::until_any:
                return scan(r) || eof_;
        }
        return true;
    }

    // The read's result, once can_finish said so; or its error.
    std::string finish(detail::stream_read_request& r) {
        using op = detail::stream_read_request::op;
        if (error_) {
            throw std::system_error(error_,
                                    detail::concat({r.name(), ": the connection was lost"}));
        }
        switch (r.kind) {
            case op::some:
                return take(r.n);
            case op::all:
                return take(unread());
            case op::exactly:
                if (unread() >= r.n) return take(r.n);
                {
                    std::string partial = take(unread());
                    throw incomplete_read_error(std::move(partial), r.n);
                }
            case op::until:
            case op::line:
            case op::until_any:
                break;
        }
        const bool line = r.kind == op::line;
        std::size_t consumed = 0;
        const char* message = nullptr;
        if (scan(r)) {
            const std::size_t seplen = r.sep().size();  // the one found, of several
            if (!r.found) {
                consumed = r.n;
                message = "the separator is not found, and the chunk exceeds the limit";
            } else if (r.n > limit_) {
                consumed = r.n;
                message = "the separator is found, but the chunk is longer than the limit";
            } else {
                return take(r.n + seplen);
            }
        } else {
            // EOF without the separator.
            std::string partial = take(unread());
            if (line) return partial;
            throw incomplete_read_error(std::move(partial), incomplete_read_error::unknown);
        }
        // Past the limit: readuntil leaves the data for the caller; readline drops the
        // chunk, and the separator too if it ends the chunk (asyncio's readline).
        if (line) {
            if (std::string_view(data(), unread()).substr(consumed).starts_with(r.sep())) {
                discard(consumed + r.sep_size);
            } else {
                discard(unread());
            }
        }
        throw limit_overrun_error(detail::concat({r.name(), ": ", message}), consumed);
    }

    // ---- drain() and wait_closed() -----------------------------------------------------

    // Wakes the waiters of drain() (and of wait_closed() too when `lost`).
    inline void wake_waiters(bool lost, bool failed) noexcept;

    // Whether the writer is closing: asyncio's transport.is_closing().
    bool closing() const noexcept { return !transport_ || transport_->is_closing(); }

    // The read buffer: the unread bytes are [start_, end_) of buf_'s cap_ bytes. No
    // storage (null, all 0) while none are unread.
    char* buf_ = nullptr;
    std::size_t cap_ = 0;
    std::size_t start_ = 0;
    std::size_t end_ = 0;
    ioloop::transport* transport_ = nullptr;
    detail::stream_read_awaiter* reading_ = nullptr;  // the read waiting for data
    detail::waiter_queue waiting_;                    // drain() and wait_closed() callers
    coro<void> pending_;          // a server connection's coroutine, until connected
    std::error_code error_;       // what the connection was lost to
    std::uint32_t limit_;         // see stream_reader::readline
    std::uint32_t refs_ = 1;      // the transport's (or create()'s unique_ptr) + handles
    std::uint16_t writers_ : 15 = 0;  // stream_writer handles: the last one closes
    // A start_server connection's (the server side of start_tls); a bit of writers_'s
    // word, so that an idle connection is no larger for it.
    std::uint16_t from_server_ : 1 = 0;
    bool eof_ = false;            // no more data will come
    bool lost_ = false;           // connection_lost ran, or the transport went
    bool read_paused_ = false;    // this reader stopped the transport's reading
    bool write_paused_ = false;   // the transport's buffer is above its high mark
    bool reading_woken_ = false;  // the waiting read was woken, and has not run yet
    bool writer_closed_ = false;  // stream_writer::close() was called
};

namespace detail {

// co_await on a read: finishes at once if the buffer can serve it, else waits in the
// reader until it can (or the connection is lost, or the task is cancelled: then the
// buffer is left as it was, and nothing is lost).
class stream_read_awaiter final : public wait_point {
public:
    stream_read_awaiter(stream_reader_protocol* s, stream_read_request r) noexcept : s_(s), r_(r) {}
    // Before it is awaited (into a wait_for, a race): the reader does not know it yet.
    stream_read_awaiter(stream_read_awaiter&& o) noexcept : s_(o.s_), r_(o.r_) {}
    stream_read_awaiter(const stream_read_awaiter&) = delete;
    stream_read_awaiter& operator=(const stream_read_awaiter&) = delete;
    // Destroyed while waiting: the loop is closing with the task unfinished.
    ~stream_read_awaiter() {
        if (s_->reading_ == this) s_->reading_ = nullptr;
    }

    bool await_ready() {
        if (s_->reading_) {
            // asyncio raises RuntimeError when two tasks wait on one reader; here a read
            // is refused while another one is pending at all (see stream_reader).
            throw invalid_state_error(
                concat({r_.name(), ": another task is already waiting to read from this stream"}));
        }
        return s_->can_finish(r_);
    }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw(r_.name());
        // Waiting while the transport is paused would wait forever (asyncio resumes it).
        if (s_->read_paused_) s_->resume_transport();
        s_->reading_ = this;
        s_->reading_woken_ = false;
        task_->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }

    std::string await_resume() {
        if (task_) {
            if (s_->reading_ == this) s_->reading_ = nullptr;
            task_->throw_if_cancelled();
        }
        return s_->finish(r_);
    }

    void on_cancel(task_base& t) noexcept override {
        s_->reading_ = nullptr;
        t.wake();
    }

private:
    friend class ioloop::stream_reader_protocol;

    stream_reader_protocol* s_;
    task_base* task_ = nullptr;
    stream_read_request r_;
};

// co_await on stream_writer::drain() or wait_closed(). drain() follows asyncio 3.12: the
// connection's error if it was lost to one; on a closing transport one iteration's yield
// (so that connection_lost can run), then ConnectionResetError's errc::connection_reset if
// the connection is gone; otherwise a wait while the transport's buffer is above its high
// mark, ended by resume_writing or connection_lost (its error, if any, is thrown).
// wait_closed() waits for connection_lost and throws the error it brought, if any.
class stream_wait_awaiter final : public waiter, public wait_point {
public:
    enum class kind : unsigned char { drain, closed };

    stream_wait_awaiter(stream_reader_protocol* s, kind k) noexcept : s_(s), kind_(k) {}
    // Before it is awaited (into a wait_for, a race): not in the reader's list yet.
    stream_wait_awaiter(stream_wait_awaiter&& o) noexcept : waiter(std::move(o)), s_(o.s_), kind_(o.kind_) {}
    ~stream_wait_awaiter() { unlink(); }  // destroyed while waiting: the loop is closing

    bool await_ready() const noexcept {
        if (kind_ == kind::closed) return s_->lost_;
        if (s_->error_) return true;
        if (!s_->closing()) return !s_->write_paused_;
        return false;
    }

    void await_suspend(std::coroutine_handle<> h) {
        task = &current_task_or_throw(kind_ == kind::drain ? "drain" : "wait_closed");
        if (kind_ == kind::drain && s_->closing() && (s_->lost_ || !s_->write_paused_)) {
            // asyncio's sleep(0) before it looks again.
            yielded_ = true;
            task->suspend(h, this);
            task->wake();
            return;
        }
        s_->waiting_.push_back(this);
        task->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }

    void await_resume() {
        if (task) {
            unlink();
            task->throw_if_cancelled();
        }
        const std::error_code ec = s_->error_;
        if (kind_ == kind::closed) {
            if (ec) throw std::system_error(ec, "wait_closed: the connection was lost");
            return;
        }
        // Not suspended: the connection's error, or nothing to wait for.
        if ((!task || yielded_ || failed_) && ec) {
            throw std::system_error(ec, "drain: the connection was lost");
        }
        if (yielded_ && s_->lost_) {
            throw std::system_error(std::make_error_code(std::errc::connection_reset),
                                    "drain: the connection was lost");
        }
    }

    void on_cancel(task_base& t) noexcept override {
        unlink();
        t.wake();
    }

private:
    friend class ioloop::stream_reader_protocol;

    stream_reader_protocol* s_;
    kind kind_;
    bool yielded_ = false;  // drain on a closing transport: looked again after one iteration
    bool failed_ = false;   // woken by connection_lost with an error
};

}  // namespace detail

inline void stream_reader_protocol::wake_waiters(bool lost, bool failed) noexcept {
    // resume_writing wakes the drain() callers only: the others go back in, in order.
    detail::waiter_queue keep;
    while (!waiting_.empty()) {
        auto* w = static_cast<detail::stream_wait_awaiter*>(waiting_.pop_front());
        if (!lost && w->kind_ == detail::stream_wait_awaiter::kind::closed) {
            keep.push_back(w);
            continue;
        }
        w->failed_ = failed;
        w->task->wake();
    }
    while (!keep.empty()) waiting_.push_back(keep.pop_front());
}

inline detail::stream_read_request& stream_reader_protocol::reading_request() noexcept {
    return reading_->r_;
}

inline void stream_reader_protocol::wake_reader() noexcept {
    reading_woken_ = true;
    reading_->task_->wake();
}

inline void stream_reader_protocol::start_pending() noexcept {
    loop_base* l = detail::loop_access::running();
    try {
        if (!l) throw invalid_state_error("start_server: a connection was made outside its loop");
        // The task is not kept: it runs on its own, and an exception it ends with reaches
        // the loop's exception handler when it goes (asyncio reports it the same way).
        (void)l->create_task(std::move(pending_));
    } catch (...) {
        pending_ = coro<void>();
        if (transport_) transport_->abort();
    }
}

// The reading end of a stream connection (asyncio's StreamReader). A handle: moving it
// is cheap, and the connection's state lives while a reader or writer handle refers to it
// (or the transport does). One task reads at a time: a read started while another one is
// waiting throws invalid_state_error.
//
// Each read is an awaiter, awaited at once (co_await reader.readline()) or given to
// wait_for / timeout / race, which move it in and may be kept and awaited later. The
// separator given to readuntil must outlive the await. Cancelling a task in a read leaves the stream as it was: the
// data already received stays for the next read.
class stream_reader {
public:
    using read_awaiter = detail::stream_read_awaiter;

    stream_reader() noexcept = default;  // empty: a moved-from or not yet assigned handle
    explicit stream_reader(stream_reader_protocol& p) noexcept : s_(&p) { p.add_ref(); }
    stream_reader(stream_reader&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    stream_reader& operator=(stream_reader other) noexcept {
        std::swap(s_, other.s_);
        return *this;
    }
    // The last handle of a connection that has no writer (a read pipe) closes it, as the
    // last stream_writer closes a connection: nobody could read what comes next. With a
    // live transport, refs_ counts it and the handles: 2 is the transport and this one.
    ~stream_reader() {
        if (!s_) return;
        if (s_->refs_ == 2 && s_->writers_ == 0 && s_->transport_ &&
            !s_->transport_->is_closing()) {
            try {
                s_->transport_->close();
            } catch (...) {  // a transport's close does not throw; a destructor cannot
            }
        }
        s_->release();
    }

    explicit operator bool() const noexcept { return s_ != nullptr; }

    // n < 0: everything until EOF. n == 0: "". n > 0: up to n bytes, at least one unless
    // the stream is at EOF (then ""). Throws the connection's error (std::system_error)
    // if it was lost to one.
    [[nodiscard]] read_awaiter read(std::ptrdiff_t n = -1) {
        using op = detail::stream_read_request::op;
        detail::stream_read_request r;
        r.kind = n < 0 ? op::all : op::some;
        r.n = n < 0 ? 0 : static_cast<std::size_t>(n);
        return read_awaiter(&state("read"), r);
    }

    // A line, its "\n" included; at EOF what is left without one (maybe ""). A line longer
    // than the limit: limit_overrun_error, and the line (or the limit's worth of it, when
    // no "\n" was found) is dropped from the stream. (asyncio raises ValueError there.)
    [[nodiscard]] read_awaiter readline() {
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::line;
        r.sep_data = "\n";
        r.sep_size = 1;
        return read_awaiter(&state("readline"), r);
    }

    // Exactly n bytes. EOF first: incomplete_read_error, carrying what was read.
    [[nodiscard]] read_awaiter readexactly(std::size_t n) {
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::exactly;
        r.n = n;
        return read_awaiter(&state("readexactly"), r);
    }

    // The data up to and including `sep`. EOF first: incomplete_read_error (expected()
    // is incomplete_read_error::unknown), carrying what was read. No separator within the
    // limit: limit_overrun_error, and the data stays in the stream.
    [[nodiscard]] read_awaiter readuntil() { return readuntil_one("\n"); }
    // (A template: a braced list of separators must not be taken for a string_view's
    // iterator pair; it goes to the overload below.)
    template <class Sep>
        requires std::is_convertible_v<const Sep&, std::string_view>
    [[nodiscard]] read_awaiter readuntil(const Sep& sep) {
        return readuntil_one(sep);
    }

    // The data up to and including whichever separator ends first (asyncio 3.13's
    // readuntil of a tuple), from an array that outlives the await:
    //   static constexpr std::string_view ends[] = {"\r\n", "\n"};
    //   std::string line = co_await reader.readuntil(ends);
    // (A braced list in the co_await expression would do, but g++ 12 refuses a braced array
    // there.) Errors as readuntil's; 1 to 255 separators.
    template <std::size_t N>
    [[nodiscard]] read_awaiter readuntil(const std::string_view (&seps)[N]) {
        static_assert(N > 0 && N < 256, "readuntil: give 1 to 255 separators");
        for (const std::string_view sep : seps) {
            if (sep.empty()) throw std::invalid_argument("readuntil: a separator is empty");
            if (static_cast<std::uint64_t>(sep.size()) > 0xffffffffu) {
                throw std::invalid_argument("readuntil: a separator is longer than 4 GiB");
            }
        }
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::until_any;
        r.seps = seps;
        r.sep_size = static_cast<std::uint32_t>(N);
        return read_awaiter(&state("readuntil"), r);
    }

private:
    read_awaiter readuntil_one(std::string_view sep) {
        if (sep.empty()) throw std::invalid_argument("readuntil: the separator is empty");
        if (static_cast<std::uint64_t>(sep.size()) > 0xffffffffu) {
            throw std::invalid_argument("readuntil: the separator is longer than 4 GiB");
        }
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::until;
        r.sep_data = sep.data();
        r.sep_size = static_cast<std::uint32_t>(sep.size());
        return read_awaiter(&state("readuntil"), r);
    }

public:
    // EOF was received and the buffer is empty.
    bool at_eof() const noexcept { return s_ && s_->eof_ && s_->unread() == 0; }

    std::size_t limit() const noexcept { return s_ ? s_->limit_ : 0; }
    // The error the connection was lost to, if any (asyncio's exception()).
    std::error_code exception() const noexcept { return s_ ? s_->error_ : std::error_code(); }

private:
    friend struct detail::stream_access;
    stream_reader_protocol& state(const char* what) const {
        if (!s_) throw invalid_state_error(detail::concat({what, ": the stream_reader is empty"}));
        return *s_;
    }

    stream_reader_protocol* s_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/stream_reader.hpp
// begin file ioloop/net/stream_writer.hpp
// ioloop: stream_writer, the writing end of a stream connection (asyncio's StreamWriter).
// A handle on the connection's state (net/stream_reader.hpp), like stream_reader.
#ifndef IOLOOP_NET_STREAM_WRITER_HPP
#define IOLOOP_NET_STREAM_WRITER_HPP


#include <cstddef>
#include <initializer_list>
#include <span>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

// Writes go straight to the transport, which sends at once what the socket takes and
// buffers the rest; drain() is how a writer waits for that buffer to go down.
//
// RAII: destroying the last stream_writer of a connection without close() closes the
// transport (buffered data is still sent, then the connection is closed), as asyncio
// 3.12's StreamWriter.__del__ does. To keep a connection, keep its writer.
//
// After close() (or write_eof()), write throws invalid_state_error. After the connection
// was lost without close() (the peer went away), writes are dropped as the transport
// drops them, and drain() reports the loss.
class stream_writer {
    using transport_type = ioloop::transport;

public:
    using wait_awaiter = detail::stream_wait_awaiter;

    stream_writer() noexcept = default;  // empty: a moved-from or not yet assigned handle
    explicit stream_writer(stream_reader_protocol& p) noexcept : s_(&p) {
        p.add_ref();
        ++p.writers_;
    }
    stream_writer(stream_writer&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    stream_writer& operator=(stream_writer other) noexcept {
        std::swap(s_, other.s_);
        return *this;
    }
    ~stream_writer() { reset(); }

    explicit operator bool() const noexcept { return s_ != nullptr; }

    // Sends data (or buffers it); never waits.
    void write(std::string_view data) {
        if (transport_type* t = connected("write")) t->write(data);
    }
    void write(std::span<const std::byte> data) { write(detail::as_chars(data)); }

    // The pieces, in order, as one write.
    template <class Range>
    void writelines(const Range& pieces) {
        if (transport_type* t = connected("writelines")) t->writelines(pieces);
    }
    void writelines(std::initializer_list<std::string_view> pieces) {
        writelines<std::initializer_list<std::string_view>>(pieces);
    }

    // co_await drain(): returns at once unless the transport's buffer is above its
    // high-water mark (then it waits until it is back down to the low mark); throws the
    // connection's error (std::system_error) if it was lost to one, and
    // errc::connection_reset if the connection is gone.
    [[nodiscard]] wait_awaiter drain() {
        return wait_awaiter(&state("drain"), wait_awaiter::kind::drain);
    }

    // Half-close: the peer reads EOF once the buffered data is sent. Nothing once the
    // connection is gone.
    void write_eof() {
        if (transport_type* t = state("write_eof").transport_) t->write_eof();
    }
    bool can_write_eof() const noexcept {
        return s_ && s_->transport_ && s_->transport_->can_write_eof();
    }

    // Closes the connection: buffered data is still sent. Closing twice does nothing.
    void close() {
        stream_reader_protocol& s = state("close");
        s.writer_closed_ = true;
        if (s.transport_) s.transport_->close();
    }

    // True once close() was called or the connection is closing or gone.
    bool is_closing() const noexcept { return !s_ || s_->closing(); }

    // co_await wait_closed(): until the connection is lost (connection_lost has run);
    // throws the error it was lost to, if any.
    [[nodiscard]] wait_awaiter wait_closed() {
        return wait_awaiter(&state("wait_closed"), wait_awaiter::kind::closed);
    }

    // "peername", "sockname", "socket" ("pipe" over a pipe); nothing once the connection is
    // gone.
    extra_info get_extra_info(std::string_view name) const {
        if (!s_ || !s_->transport_) return extra_info();
        return s_->transport_->get_extra_info(name);
    }

    // get_extra_info("peername") / ("sockname") typed: the unspecified endpoint once the
    // connection is gone, or over a pipe (see base_transport::peername).
    endpoint peername() const { return s_ && s_->transport_ ? s_->transport_->peername() : endpoint(); }
    endpoint sockname() const { return s_ && s_->transport_ ? s_->transport_->sockname() : endpoint(); }

    // co_await start_tls(ssl[, options]) (asyncio's StreamWriter.start_tls): after the
    // buffered writes drain, the connection goes on over TLS (an ssl_context of
    // <ioloop/ssl.hpp>), for this writer and its reader alike, once the handshake is done.
    // The server side of the handshake is the stream of a start_server callback (as
    // asyncio decides it), or options.server_side. Defined in net/start_tls.hpp.
    template <class = void>
    coro<void> start_tls(ssl_option ssl);
    template <class = void>
    coro<void> start_tls(ssl_option ssl, const tls_options& options);

    // The transport while the connection is up; null before it is made and once it is
    // gone (the transport destroys itself after connection_lost).
    transport_type* transport() const noexcept { return s_ ? s_->transport_ : nullptr; }

private:
    friend struct detail::stream_access;

    // start_tls's coroutine, over its own handle of the stream.
    template <class = void>
    static coro<void> upgrade_to_tls(stream_writer w, loop_base& loop,
                                     detail::tls_layer_factory make);

    stream_reader_protocol& state(const char* what) const {
        if (!s_) throw invalid_state_error(detail::concat({what, ": the stream_writer is empty"}));
        return *s_;
    }

    // The transport to write to, or null to drop the data (the connection was lost).
    transport_type* connected(const char* what) const {
        stream_reader_protocol& s = state(what);
        if (s.transport_) return s.transport_;
        if (s.writer_closed_) {
            throw invalid_state_error(detail::concat({what, ": the stream_writer is closed"}));
        }
        if (!s.lost_) {
            throw invalid_state_error(detail::concat({what, ": the stream is not connected yet"}));
        }
        return nullptr;
    }

    void reset() noexcept {
        stream_reader_protocol* s = std::exchange(s_, nullptr);
        if (!s) return;
        if (--s->writers_ == 0 && s->transport_ && !s->transport_->is_closing()) {
            try {
                s->transport_->close();
            } catch (...) {  // a transport's close does not throw; a destructor cannot
            }
        }
        s->release();
    }

    stream_reader_protocol* s_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/stream_writer.hpp

#include <memory>
#include <stdexcept>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What a connecting coroutine waits on, in its frame, while its layer does the handshake.
// The layer and the link know each other until either goes: the layer finishes `done`
// (with an error if the handshake fails or the connection is lost first) and forgets the
// link when it is destroyed; a link destroyed first (its coroutine cancelled) unhooks
// itself from the layer.
struct tls_handshake_link {
    explicit tls_handshake_link(future<void> f) noexcept : done(std::move(f)) {}
    tls_handshake_link(const tls_handshake_link&) = delete;
    tls_handshake_link& operator=(const tls_handshake_link&) = delete;
    ~tls_handshake_link() {
        if (back) *back = nullptr;
    }

    future<void> done;
    transport* upper = nullptr;               // the layer's transport while the layer lives
    tls_handshake_link** back = nullptr;      // where the layer keeps its pointer to this
    bool call_connection_made = true;         // false for start_tls: the protocol has one
};

struct tls_access {
    static bool exchange_protocol(transport& t, owned_stream_protocol& p) noexcept {
        return t.exchange_protocol(p);
    }
    // Whether p is t's protocol: put in place of it, the same object comes back.
    static bool has_protocol(transport& t, const base_protocol& p) noexcept {
        owned_stream_protocol probe(std::unique_ptr<base_protocol>(), false);
        if (!t.exchange_protocol(probe)) return false;
        const bool same = probe.ptr.get() == &p;
        (void)t.exchange_protocol(probe);
        return same;
    }
};

// Waits for the handshake. A caller that gives up (cancelled, a timeout around the call)
// aborts the connection, whose layer is still alive then if it has not forgotten the link.
template <class = void>
coro<void> wait_handshake(tls_handshake_link& link) {
    try {
        co_await link.done;
    } catch (...) {
        if (link.upper) link.upper->abort();
        throw;
    }
}

// The TLS client (or, for connect_accepted_socket, server) over a connected socket: the
// layer wraps the factory's protocol, which hears connection_made once the handshake is
// done; the call returns then, as asyncio's does.
template <class P, class Factory>
coro<std::pair<transport*, P*>> start_tls_connected(loop_base& loop, Factory& factory, socket s,
                                                    tls_layer_factory make) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    tls_handshake_link link(loop.create_future<void>());
    owned_stream_protocol app(std::move(proto));
    tls_layer_made made = make(loop, app, &link);
    with_family(loop, [&](auto ops) -> transport& {
        return ops.start_stream(loop, std::move(s), std::move(made.layer), nullptr);
    });
    co_await wait_handshake(link);
    co_return std::pair<transport*, P*>(made.upper, p);
}

// What the connect calls give the layer: the host the call was given is the name checked
// unless server_hostname says otherwise.
inline tls_options client_tls_options(const connect_options& o, const char* host) {
    return tls_options{false, o.server_hostname ? o.server_hostname : host,
                       o.ssl_handshake_timeout, o.ssl_shutdown_timeout};
}

inline tls_options server_tls_options(const serve_options& o) {
    return tls_options{true, nullptr, o.ssl_handshake_timeout, o.ssl_shutdown_timeout};
}

// A server's factory with TLS: each connection's protocol under a layer of its own.
inline protocol_factory tls_server_factory(loop_base& loop, protocol_factory app,
                                           const serve_options& o) {
    return [&loop, app = std::move(app), make = o.ssl.layer_factory(server_tls_options(o))]() mutable
           -> owned_stream_protocol {
        owned_stream_protocol p = app();
        return make(loop, p, nullptr).layer;
    };
}

// Puts a new layer between t and its protocol, which the layer then owns, and starts the
// handshake; gives the layer's transport. If it cannot, t is left as it was.
inline transport& put_tls_layer(loop_base& loop, transport& t, tls_layer_factory& make,
                                tls_handshake_link& link) {
    owned_stream_protocol app(std::unique_ptr<base_protocol>(), false);
    if (!tls_access::exchange_protocol(t, app)) {
        throw invalid_state_error(
            "start_tls: the transport cannot take TLS (it is closing, loop.sendfile runs on it, "
            "or it is a TLS transport already)");
    }
    tls_layer_made made{owned_stream_protocol(std::unique_ptr<base_protocol>(), false), nullptr};
    try {
        made = make(loop, app, &link);
    } catch (...) {
        (void)tls_access::exchange_protocol(t, app);  // the protocol goes back
        throw;
    }
    base_protocol* layer = made.layer.ptr.get();
    const bool buffered = made.layer.buffered;
    (void)tls_access::exchange_protocol(t, made.layer);
    // The transport told its protocol of itself long ago: the layer hears it now.
    if (buffered) {
        static_cast<buffered_protocol*>(layer)->connection_made(t);
    } else {
        static_cast<protocol*>(layer)->connection_made(t);
    }
    return *made.upper;
}

// loop.start_tls's coroutine: the layer's transport is the result once the handshake is
// done; the protocol, which has its connection already, hears nothing of it.
template <class = void>
coro<transport*> start_tls_over(loop_base& loop, transport& t, tls_layer_factory make) {
    tls_handshake_link link(loop.create_future<void>());
    link.call_connection_made = false;
    transport& upper = put_tls_layer(loop, t, make, link);
    co_await wait_handshake(link);
    co_return &upper;
}

}  // namespace detail

template <class>
coro<transport*> loop_base::start_tls(transport& t, ssl_option ssl) {
    return start_tls(t, ssl, tls_options{});
}

template <class>
coro<transport*> loop_base::start_tls(transport& t, ssl_option ssl, const tls_options& options) {
    check_open("start_tls");
    if (!ssl) throw std::invalid_argument("start_tls: no ssl context");
    detail::check_tls_timeouts(options.ssl_handshake_timeout, options.ssl_shutdown_timeout,
                               "start_tls");
    return detail::start_tls_over(*this, t, ssl.layer_factory(options));
}

template <class>
coro<transport*> loop_base::start_tls(transport& t, base_protocol& p, ssl_option ssl,
                                      const tls_options& options) {
    if (!detail::tls_access::has_protocol(t, p)) {
        throw std::invalid_argument("start_tls: the protocol is not the transport's own");
    }
    return start_tls(t, ssl, options);
}

template <class>
coro<void> stream_writer::start_tls(ssl_option ssl) {
    return start_tls(ssl, tls_options{});
}

template <class>
coro<void> stream_writer::start_tls(ssl_option ssl, const tls_options& options) {
    stream_reader_protocol& s = state("start_tls");
    if (!ssl) throw std::invalid_argument("stream_writer::start_tls: no ssl context");
    detail::check_tls_timeouts(options.ssl_handshake_timeout, options.ssl_shutdown_timeout,
                               "stream_writer::start_tls");
    transport_type* t = connected("start_tls");
    if (!t || t->is_closing()) {
        throw invalid_state_error("stream_writer::start_tls: the stream is closed");
    }
    loop_base& loop = detail::loop_access::running_or_throw("stream_writer::start_tls");
    tls_options o = options;
    if (s.from_server_) o.server_side = true;
    return upgrade_to_tls(stream_writer(s), loop, ssl.layer_factory(o));
}

template <class>
coro<void> stream_writer::upgrade_to_tls(stream_writer w, loop_base& loop,
                                         detail::tls_layer_factory make) {
    co_await w.drain();  // what was written before goes out in the clear
    stream_reader_protocol& s = *w.s_;
    if (!s.transport_ || s.transport_->is_closing()) {
        throw invalid_state_error("stream_writer::start_tls: the stream is closed");
    }
    detail::tls_handshake_link link(loop.create_future<void>());
    link.call_connection_made = false;
    // The stream reads and writes through the layer from here on; writes made during the
    // handshake wait in the layer until it is done.
    s.transport_ = &detail::put_tls_layer(loop, *s.transport_, make, link);
    co_await detail::wait_handshake(link);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/start_tls.hpp

#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Factory, class Base>
constexpr void check_factory() {
    static_assert(std::is_base_of_v<Base, protocol_of<Factory>>,
                  "the protocol factory must return std::unique_ptr<P>, with P derived from "
                  "ioloop::datagram_protocol");
}

// The transport and protocol over a connected socket.
template <class P, class Factory>
std::pair<transport*, P*> start_connected(loop_base& loop, Factory& factory, socket s) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    transport& t = with_family(loop, [&](auto ops) -> transport& {
        return ops.start_stream(loop, std::move(s), std::move(proto), nullptr);
    });
    return std::pair<transport*, P*>(&t, p);
}

// The transport and protocol over a connected socket, with TLS between them if `tls`
// makes layers (then once its handshake is done).
template <class P, class Factory>
coro<std::pair<transport*, P*>> start_over(loop_base& loop, Factory& factory, socket s,
                                           tls_layer_factory tls) {
    if (tls) co_return co_await start_tls_connected<P>(loop, factory, std::move(s), std::move(tls));
    co_return start_connected<P>(loop, factory, std::move(s));
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> start_connection(loop_base& loop, Factory factory,
                                                 std::vector<endpoint> addresses,
                                                 connect_options o, const char* what,
                                                 tls_layer_factory tls = {}) {
    socket s = co_await connect_any(loop, std::move(addresses), o, what);
    co_return co_await start_over<P>(loop, factory, std::move(s), std::move(tls));
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> create_connection(loop_base& loop, Factory factory,
                                                  std::string host, std::uint16_t port,
                                                  connect_options o, tls_layer_factory tls) {
    std::vector<endpoint> addresses = co_await loop.getaddrinfo(host, port, socket_type::stream);
    co_return co_await start_connection<P>(loop, std::move(factory), std::move(addresses), o,
                                           "create_connection", std::move(tls));
}

// The layers' maker of a client's connection, made at the call so that options TLS cannot
// work with are refused before anything is opened; empty without ssl. `host` is checked
// against the server's certificate unless server_hostname names another.
inline tls_layer_factory client_tls(const connect_options& o, const char* host) {
    if (!o.ssl) return {};
    return o.ssl.layer_factory(client_tls_options(o, host));
}

// An already connected stream socket (asyncio's sock=, connect_accepted_socket), checked
// before the coroutine starts: the caller learns of a wrong socket at the call.
inline void check_connected_stream(const socket& s, const char* what) {
    if (!s.is_open()) throw std::invalid_argument(concat({what, ": the socket is not open"}));
    if (s.type() != socket_type::stream) {
        throw std::invalid_argument(concat({what, ": the socket is not a stream socket"}));
    }
}

template <class P, class Factory>
coro<std::pair<transport*, P*>> adopt_connection(loop_base& loop, Factory factory, socket s,
                                                 tls_layer_factory tls) {
    co_return co_await start_over<P>(loop, factory, std::move(s), std::move(tls));
}

}  // namespace detail

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::string host, std::uint16_t port) {
    return create_connection(std::move(factory), std::move(host), port, connect_options{});
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::string host, std::uint16_t port, const connect_options& options) {
    check_open("create_connection");
    detail::check_connect_options(options, "create_connection");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls = detail::client_tls(options, host.c_str());
    return detail::create_connection<P>(*this, std::move(factory), std::move(host), port,
                                        options, std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, std::vector<endpoint> addresses, const connect_options& options) {
    check_open("create_connection");
    detail::check_connect_options(options, "create_connection");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls = detail::client_tls(options, nullptr);
    return detail::start_connection<P>(*this, std::move(factory), std::move(addresses), options,
                                       "create_connection", std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, socket sock, const connect_options& options) {
    check_open("create_connection");
    detail::check_connect_options(options, "create_connection");
    // What chooses and connects an address has no part with a connected socket (asyncio
    // refuses host and local_addr with sock).
    if (options.local_addr.family() != address_family::unspecified) {
        throw std::invalid_argument("create_connection: local_addr with sock= (already connected)");
    }
    detail::check_connected_stream(sock, "create_connection");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls = detail::client_tls(options, nullptr);
    return detail::adopt_connection<P>(*this, std::move(factory), std::move(sock), std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_connection(
    Factory factory, socket sock) {
    return create_connection(std::move(factory), std::move(sock), connect_options{});
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_accepted_socket(
    Factory factory, socket sock) {
    return connect_accepted_socket(std::move(factory), std::move(sock), serve_options{});
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_accepted_socket(
    Factory factory, socket sock, const serve_options& options) {
    check_open("connect_accepted_socket");
    detail::check_serve_options(options, "connect_accepted_socket");
    detail::check_connected_stream(sock, "connect_accepted_socket");
    using P = detail::protocol_of<Factory>;
    detail::tls_layer_factory tls;
    if (options.ssl) tls = options.ssl.layer_factory(detail::server_tls_options(options));
    return detail::adopt_connection<P>(*this, std::move(factory), std::move(sock), std::move(tls));
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::create_unix_connection(
    Factory factory, std::string path) {
    check_open("create_unix_connection");
    using P = detail::protocol_of<Factory>;
    std::vector<endpoint> addresses{endpoint::unix_path(path)};
    return detail::start_connection<P>(*this, std::move(factory), std::move(addresses),
                                       connect_options{}, "create_unix_connection");
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/create_connection.hpp

#include <memory>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The coroutine owns the descriptor from its creation: destroyed unstarted, it closes it.
template <class P, class Factory>
coro<std::pair<transport*, P*>> connect_pipe(loop_base& loop, Factory factory,
                                             owned_descriptor fd, descriptor_kind kind) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    transport& t = with_family(loop, [&](auto ops) -> transport& {
        return ops.start_pipe(loop, std::move(fd), kind, std::move(proto));
    });
    co_return std::pair<transport*, P*>(&t, p);
}

// The checks made at the call, then the coroutine. The descriptor is owned at once.
template <class Factory>
coro<std::pair<transport*, protocol_of<Factory>*>> connect_pipe_call(loop_base& loop,
                                                                     Factory factory,
                                                                     native_descriptor fd,
                                                                     descriptor_kind kind) {
    owned_descriptor owned(fd);
    net_access::check_open(loop, pipe_call(kind));
    return connect_pipe<protocol_of<Factory>>(loop, std::move(factory), std::move(owned), kind);
}

}  // namespace detail

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_read_pipe(
    Factory factory, native_descriptor fd) {
    return detail::connect_pipe_call(*this, std::move(factory), fd,
                                     detail::descriptor_kind::read_pipe);
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_write_pipe(
    Factory factory, native_descriptor fd) {
    return detail::connect_pipe_call(*this, std::move(factory), fd,
                                     detail::descriptor_kind::write_pipe);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/connect_pipe.hpp
// begin file ioloop/net/create_datagram_endpoint.hpp
// ioloop: loop.create_datagram_endpoint (asyncio's): a UDP or Unix datagram socket,
// bound to a local address, connected to a remote one, or both, with a transport and the
// factory's protocol. Addresses are endpoints, or host names resolved through
// loop.getaddrinfo; datagram_options carries asyncio's other arguments.
#ifndef IOLOOP_NET_CREATE_DATAGRAM_ENDPOINT_HPP
#define IOLOOP_NET_CREATE_DATAGRAM_ENDPOINT_HPP


#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// asyncio's create_datagram_endpoint arguments beyond the addresses, for designated
// initializers: {.reuse_port = true, .allow_broadcast = true}. It owns nothing (so a
// braced temporary in a co_await'ed call is safe with g++ 12, see subprocess_options).
struct datagram_options {
    // The family of the socket: with host names, a hint to the resolver; with neither
    // address given, an unbound socket of this family (asyncio's family=).
    address_family family = address_family::unspecified;
    int proto = 0;  // the resolver's hint (IPPROTO_UDP ...), as asyncio's proto=
    int flags = 0;  // the resolver's AI_* flags, as asyncio's flags=
    // SO_REUSEPORT before bind: several endpoints share the port (not on Windows:
    // std::system_error(errc::operation_not_supported), as asyncio's ValueError).
    bool reuse_port = false;
    // SO_BROADCAST: sendto a broadcast address (127.255.255.255, 255.255.255.255).
    bool allow_broadcast = false;
};

namespace detail {

// A datagram socket bound to `local` and connected to `remote`, where given.
inline socket open_datagram_socket(const endpoint& local, const endpoint& remote,
                                   const datagram_options& options = {}) {
    const bool has_local = local.family() != address_family::unspecified;
    const bool has_remote = remote.family() != address_family::unspecified;
    if (!has_local && !has_remote) {
        if (options.family != address_family::unspecified) {
            socket s = socket::open(options.family, socket_type::datagram);
            if (options.reuse_port) s.set_reuse_port(true);
            if (options.allow_broadcast) s.set_broadcast(true);
            return s;
        }
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "create_datagram_endpoint: give a local or a remote address, "
                                "or a family");
    }
    if (has_local && has_remote && local.family() != remote.family()) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            concat({"create_datagram_endpoint: ", local.to_string(), " and ", remote.to_string(),
                    " are of different families"}));
    }
    const address_family family = has_local ? local.family() : remote.family();
    if (options.family != address_family::unspecified && options.family != family) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            concat({"create_datagram_endpoint: ",
                    has_local ? local.to_string() : remote.to_string(),
                    " is not of the family the options ask for"}));
    }
    socket s = socket::open(family, socket_type::datagram);
    if (options.reuse_port) s.set_reuse_port(true);
    if (options.allow_broadcast) s.set_broadcast(true);
    if (has_local) s.bind(local);
    // A datagram connect only records the peer: it does not wait for anything.
    if (has_remote && ::connect(s.fd(), remote.native(), remote.native_size()) == -1) {
        throw_system_error(last_socket_error(),
                           concat({"create_datagram_endpoint: connect to ", remote.to_string()}));
    }
    return s;
}

// A host's addresses for one side: none when the host is empty (that side not given).
template <class = void>
coro<std::vector<address_info>> resolve_datagram_side(loop_base& loop, std::string host,
                                                      std::uint16_t port,
                                                      datagram_options options) {
    if (host.empty()) co_return std::vector<address_info>{};
    co_return co_await loop.getaddrinfo(std::move(host), port, options.family, SOCK_DGRAM,
                                        options.proto, options.flags);
}

// asyncio's pairing: for each remote address in order (each local one when there is no
// remote), a local address of its family; the first pair whose socket opens, binds and
// connects wins, else the last failure is thrown.
inline socket open_resolved_datagram_socket(const std::vector<address_info>& locals,
                                            const std::vector<address_info>& remotes,
                                            const datagram_options& options) {
    std::exception_ptr last;
    auto attempt = [&](const endpoint& l, const endpoint& r) -> socket {
        try {
            return open_datagram_socket(l, r, options);
        } catch (const std::system_error&) {
            last = std::current_exception();
            return socket();
        }
    };
    if (remotes.empty()) {
        for (const address_info& l : locals) {
            socket s = attempt(l.address, endpoint());
            if (s.is_open()) return s;
        }
    } else {
        for (const address_info& r : remotes) {
            if (locals.empty()) {
                socket s = attempt(endpoint(), r.address);
                if (s.is_open()) return s;
                continue;
            }
            for (const address_info& l : locals) {
                if (l.family != r.family) continue;
                socket s = attempt(l.address, r.address);
                if (s.is_open()) return s;
            }
        }
    }
    if (last) std::rethrow_exception(last);
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "create_datagram_endpoint: no local and remote address of one "
                            "family");
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> start_datagram_endpoint(loop_base& loop,
                                                                 Factory& factory, socket s) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    datagram_transport& t = with_family(loop, [&](auto ops) -> datagram_transport& {
        return ops.start_datagram(loop, std::move(s), std::move(proto));
    });
    co_return std::pair<datagram_transport*, P*>(&t, p);
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> create_datagram_endpoint(loop_base& loop,
                                                                  Factory factory,
                                                                  endpoint local,
                                                                  endpoint remote,
                                                                  datagram_options options) {
    socket s = open_datagram_socket(local, remote, options);
    co_return co_await start_datagram_endpoint<P>(loop, factory, std::move(s));
}

template <class P, class Factory>
coro<std::pair<datagram_transport*, P*>> create_datagram_endpoint_by_name(
    loop_base& loop, Factory factory, std::string local_host, std::uint16_t local_port,
    std::string remote_host, std::uint16_t remote_port, datagram_options options) {
    if (local_host.empty() && remote_host.empty() &&
        options.family == address_family::unspecified) {
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "create_datagram_endpoint: give a local or a remote host, "
                                "or a family");
    }
    std::vector<address_info> locals =
        co_await resolve_datagram_side(loop, std::move(local_host), local_port, options);
    std::vector<address_info> remotes =
        co_await resolve_datagram_side(loop, std::move(remote_host), remote_port, options);
    socket s = locals.empty() && remotes.empty()
                   ? open_datagram_socket(endpoint(), endpoint(), options)
                   : open_resolved_datagram_socket(locals, remotes, options);
    co_return co_await start_datagram_endpoint<P>(loop, factory, std::move(s));
}

}  // namespace detail

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, endpoint local, endpoint remote) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint<P>(*this, std::move(factory), std::move(local),
                                               std::move(remote), datagram_options{});
}

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, endpoint local, endpoint remote,
                                    datagram_options options) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint<P>(*this, std::move(factory), std::move(local),
                                               std::move(remote), options);
}

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, std::string local_host,
                                    std::uint16_t local_port, std::string remote_host,
                                    std::uint16_t remote_port, datagram_options options) {
    detail::check_factory<Factory, datagram_protocol>();
    check_open("create_datagram_endpoint");
    detail::refuse_nul(local_host, "local host");
    detail::refuse_nul(remote_host, "remote host");
    using P = detail::protocol_of<Factory>;
    return detail::create_datagram_endpoint_by_name<P>(*this, std::move(factory),
                                                       std::move(local_host), local_port,
                                                       std::move(remote_host), remote_port,
                                                       options);
}

template <class Factory>
coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>>
loop_base::create_datagram_endpoint(Factory factory, std::string local_host,
                                    std::uint16_t local_port, std::string remote_host,
                                    std::uint16_t remote_port) {
    return create_datagram_endpoint(std::move(factory), std::move(local_host), local_port,
                                    std::move(remote_host), remote_port, datagram_options{});
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/create_datagram_endpoint.hpp
// begin file ioloop/net/create_server.hpp
// ioloop: loop.create_server and loop.create_unix_server (asyncio's): listening sockets
// with the defaults users expect (SO_REUSEADDR on POSIX, a backlog of 100), serving at once,
// or as serve_options say; and the sock= form, serving a socket bound already.
#ifndef IOLOOP_NET_CREATE_SERVER_HPP
#define IOLOOP_NET_CREATE_SERVER_HPP

// begin file ioloop/net/server.hpp
// ioloop: server (asyncio's Server): listening sockets that accept connections and give
// each a transport and a protocol from the server's factory. `server` is a move-only
// handle on a detail::server_state (net/server_state.hpp); destroying it stops the
// listening (the connections already made go on).
#ifndef IOLOOP_NET_SERVER_HPP
#define IOLOOP_NET_SERVER_HPP


#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

class server {
public:
    server() noexcept = default;
    explicit server(detail::server_state* state) noexcept : state_(state) {}
    server(server&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    server& operator=(server&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::exchange(other.state_, nullptr);
        }
        return *this;
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    // Stops listening; the connections it made go on.
    ~server() { reset(); }

    // Stops listening and closes the listening sockets; the connections go on (asyncio).
    void close() noexcept {
        if (state_) state_->close();
    }

    // co_await s.wait_closed(): until close() was called and every connection the server
    // made is gone (asyncio 3.12).
    template <class = void>
    coro<void> wait_closed() {
        if (!state_) co_return;
        detail::server_state* st = state_;
        st->add_ref();  // the handle may go while this waits
        struct release_on_exit {
            detail::server_state* st;
            ~release_on_exit() { st->release(); }
        } release{st};
        co_await st->idle().wait();
    }

    // Serves until close() (then returns) or until the awaiting task is cancelled (then
    // closes the server and lets cancelled_error through).
    template <class = void>
    coro<void> serve_forever() {
        if (!state_) throw invalid_state_error("server::serve_forever: an empty server handle");
        detail::server_state* st = state_;
        st->start_serving();
        st->add_ref();
        struct close_on_exit {
            detail::server_state* st;
            ~close_on_exit() {
                st->close();
                st->release();
            }
        } closer{st};
        co_await st->closed_event().wait();
    }

    void start_serving() {
        if (!state_) throw invalid_state_error("server::start_serving: an empty server handle");
        state_->start_serving();
    }

    bool is_serving() const noexcept { return state_ && state_->is_serving(); }

    // The listening sockets; empty once closed. With port 0 asked for,
    // sockets()[0].local_endpoint().port() is the port the system picked.
    const std::vector<socket>& sockets() const noexcept {
        static const std::vector<socket> none;
        return state_ ? state_->sockets() : none;
    }

private:
    void reset() noexcept {
        if (!state_) return;
        state_->close();
        std::exchange(state_, nullptr)->release();
    }

    detail::server_state* state_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/server.hpp

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A listening socket bound to `address`, with the options' socket options.
inline socket listen_on(const endpoint& address, const serve_options& o) {
    socket s = socket::open(address.family(), socket_type::stream);
    if (address.family() != address_family::unix_domain) {
        if (o.reuse_address) s.set_reuse_address(true);
        if (o.reuse_port) s.set_reuse_port(true);
    }
    // Binding "::" must not take the IPv4 port too: "0.0.0.0" is bound separately.
    if (address.family() == address_family::ipv6) s.set_v6_only(true);
    s.bind(address);
    s.listen(o.backlog);
    return s;
}

// What makes a listener of loop's family.
inline auto make_listener(loop_base& loop) {
    return [&loop](server_state& state, socket& s) {
        return with_family(loop, [&](auto ops) { return ops.listen(state, s); });
    };
}

// Every address of the hosts, each once: an empty host is every interface, IPv4 and
// IPv6 (where the system has IPv6), as asyncio. `any_host` says which are those.
template <class = void>
coro<std::vector<endpoint>> server_addresses(loop_base& loop, std::vector<std::string> hosts,
                                             std::uint16_t port, std::vector<bool>& any_host) {
    std::vector<endpoint> addresses;
    const auto add = [&](const endpoint& a, bool any) {
        for (const endpoint& b : addresses) {
            if (a == b) return;
        }
        addresses.push_back(a);
        any_host.push_back(any);
    };
    for (const std::string& host : hosts) {
        if (host.empty()) {
            add(endpoint::ip("0.0.0.0", port), true);
            add(endpoint::ip("::", port), true);
            continue;
        }
        const std::vector<endpoint> found =
            co_await loop.getaddrinfo(host, port, socket_type::stream);
        for (const endpoint& a : found) add(a, false);
    }
    co_return addresses;
}

// A server's factory: the protocol factory as it is, or each protocol under a TLS layer of
// its own when the options have ssl.
template <class Factory>
protocol_factory serving_factory(loop_base& loop, Factory factory, const serve_options& o) {
    protocol_factory plain(std::move(factory));
    if (!o.ssl) return plain;
    return tls_server_factory(loop, std::move(plain), o);
}

template <class = void>
coro<server> create_tcp_server(loop_base& loop, protocol_factory factory,
                               std::vector<std::string> hosts, std::uint16_t port,
                               serve_options o) {
    std::vector<bool> any_host;
    const std::vector<endpoint> addresses =
        co_await server_addresses(loop, std::move(hosts), port, any_host);
    auto& state = *new server_state(loop, std::move(factory), o.backlog);
    server handle(&state);  // owns it from here: closes it if a bind fails
    state.set_keep_alive(o.keep_alive);
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        const endpoint& address = addresses[i];
        try {
            state.add_listener(listen_on(address, o), {}, make_listener(loop));
        } catch (const std::system_error& e) {
            const bool no_ipv6 = e.code() == std::errc::address_family_not_supported ||
                                 e.code() == std::errc::address_not_available;
            if (!(any_host[i] && address.family() == address_family::ipv6 && no_ipv6)) throw;
        }
    }
    if (o.start_serving) state.start_serving();
    co_return handle;
}

// A socket bound already (asyncio's sock=): listened on with the options' backlog, as
// asyncio does (harmless on a socket listening already, such as systemd's).
template <class = void>
coro<server> serve_socket(loop_base& loop, protocol_factory factory, socket s, serve_options o) {
    s.listen(o.backlog);
    auto& state = *new server_state(loop, std::move(factory), o.backlog);
    server handle(&state);
    state.set_keep_alive(o.keep_alive);
    state.add_listener(std::move(s), {}, make_listener(loop));
    if (o.start_serving) state.start_serving();
    co_return handle;
}

// What create_server(sock) refuses before it starts: a socket it cannot serve, and the
// options that only apply to sockets it binds itself.
inline void check_listening_socket(const socket& s, const serve_options& o, const char* what) {
    if (!s.is_open()) throw std::invalid_argument(concat({what, ": the socket is not open"}));
    if (s.type() != socket_type::stream) {
        throw std::invalid_argument(concat({what, ": the socket is not a stream socket"}));
    }
    if (o.reuse_port || (o.hosts && !o.hosts->empty())) {
        throw std::invalid_argument(
            concat({what, ": reuse_port and hosts do not apply to sock= (bound already)"}));
    }
}

// The hosts a create_server call listens on: host, unless it is empty and options.hosts
// are given, then those. A copy: the options point to the caller's vector.
inline std::vector<std::string> hosts_of(std::string host, const serve_options& o) {
    std::vector<std::string> hosts;
    if (!host.empty() || !o.hosts) hosts.push_back(std::move(host));
    if (o.hosts) hosts.insert(hosts.end(), o.hosts->begin(), o.hosts->end());
    return hosts;
}

template <class = void>
coro<server> create_unix_server(loop_base& loop, protocol_factory factory, std::string path,
                                serve_options o) {
    const endpoint address = endpoint::unix_path(path);
    // A socket file left by an earlier run would make bind fail: asyncio removes it. Only
    // a socket is removed, never a regular file; an abstract name has no file.
    const bool has_file = !path.empty() && path.front() != '\0';
    if (has_file) remove_stale_socket_file(path.c_str());
    auto& state = *new server_state(loop, std::move(factory), o.backlog);
    server handle(&state);  // owns it from here: closes it if a bind fails
    state.add_listener(listen_on(address, o), has_file ? path : std::string(),
                       make_listener(loop));
    if (o.start_serving) state.start_serving();
    co_return handle;
}

}  // namespace detail

template <class Factory>
coro<server> loop_base::create_server(Factory factory, std::string host, std::uint16_t port,
                                      int backlog) {
    serve_options o;
    o.backlog = backlog;
    return create_server(std::move(factory), std::move(host), port, o);
}

template <class Factory>
coro<server> loop_base::create_server(Factory factory, std::string host, std::uint16_t port,
                                      const serve_options& options) {
    check_open("create_server");
    detail::check_serve_options(options, "create_server");
    std::vector<std::string> hosts = detail::hosts_of(std::move(host), options);
    serve_options o = options;
    o.hosts = nullptr;  // copied into hosts
    return detail::create_tcp_server(*this, detail::serving_factory(*this, std::move(factory), o),
                                     std::move(hosts), port, o);
}

template <class Factory>
coro<server> loop_base::create_server(Factory factory, socket sock) {
    return create_server(std::move(factory), std::move(sock), serve_options{});
}

template <class Factory>
coro<server> loop_base::create_server(Factory factory, socket sock, const serve_options& options) {
    check_open("create_server");
    detail::check_serve_options(options, "create_server");
    detail::check_listening_socket(sock, options, "create_server");
    serve_options o = options;
    o.hosts = nullptr;
    return detail::serve_socket(*this, detail::serving_factory(*this, std::move(factory), o),
                                std::move(sock), o);
}

template <class Factory>
coro<server> loop_base::create_unix_server(Factory factory, std::string path, int backlog) {
    serve_options o;
    o.backlog = backlog;
    return create_unix_server(std::move(factory), std::move(path), o);
}

template <class Factory>
coro<server> loop_base::create_unix_server(Factory factory, std::string path,
                                           const serve_options& options) {
    check_open("create_unix_server");
    detail::check_serve_options(options, "create_unix_server");
    if (options.hosts && !options.hosts->empty()) {
        throw std::invalid_argument("create_unix_server: hosts do not apply to a Unix socket");
    }
    serve_options o = options;
    o.hosts = nullptr;
    return detail::create_unix_server(*this, detail::serving_factory(*this, std::move(factory), o),
                                      std::move(path), o);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/create_server.hpp
// begin file ioloop/net/sock_ops.hpp
// ioloop: the loop's awaitable socket operations (asyncio's loop.sock_recv, sock_sendall,
// sock_accept, sock_connect, sock_recvfrom, sock_sendto). Each is its backend family's:
// the loop's engine makes the calls (net/reactive/engine.hpp: try the syscall, wait for
// readiness only on EAGAIN; net/iocp/engine.hpp: overlapped operations).
#ifndef IOLOOP_NET_SOCK_OPS_HPP
#define IOLOOP_NET_SOCK_OPS_HPP


#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_recv_into(socket& s, std::span<std::byte> buf) {
    return engine_.sock_recv_into(*this, s, buf);
}

template <class Backend>
coro<std::string> basic_event_loop<Backend>::sock_recv(socket& s, std::size_t max_bytes) {
    // Like asyncio, a buffer of the full size per call: the caller chose max_bytes.
    std::string data(max_bytes, '\0');
    const std::size_t n = co_await sock_recv_into(s, std::as_writable_bytes(std::span(data)));
    data.resize(n);
    co_return data;
}

template <class Backend>
coro<void> basic_event_loop<Backend>::sock_sendall(socket& s, std::string_view data) {
    return engine_.sock_sendall(*this, s, data);
}

template <class Backend>
coro<std::pair<socket, endpoint>> basic_event_loop<Backend>::sock_accept(socket& listener) {
    return engine_.sock_accept(*this, listener);
}

template <class Backend>
coro<void> basic_event_loop<Backend>::sock_connect(socket& s, endpoint to) {
    return engine_.sock_connect(*this, s, std::move(to));
}

template <class Backend>
coro<std::pair<std::size_t, endpoint>> basic_event_loop<Backend>::sock_recvfrom_into(
    socket& s, std::span<std::byte> buf) {
    return engine_.sock_recvfrom_into(*this, s, buf);
}

template <class Backend>
coro<std::pair<std::string, endpoint>> basic_event_loop<Backend>::sock_recvfrom(
    socket& s, std::size_t max_bytes) {
    std::string data(max_bytes, '\0');
    auto [n, from] = co_await sock_recvfrom_into(s, std::as_writable_bytes(std::span(data)));
    data.resize(n);
    co_return std::pair<std::string, endpoint>(std::move(data), std::move(from));
}

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_sendto(socket& s, std::string_view data,
                                                         endpoint to) {
    return engine_.sock_sendto(*this, s, data, std::move(to));
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/sock_ops.hpp
// begin file ioloop/net/sendfile.hpp
// ioloop: loop.sendfile(transport, file) and loop.sock_sendfile(sock, file) (asyncio's):
// a file's bytes to a stream socket. Where the system can (Linux's sendfile(2), a plain
// socket on a readiness backend) the kernel copies them, without passing through the
// program; elsewhere, with fallback (the default), chunks are read through the executor
// (the file's own operations) and written. Without fallback where sendfile(2) is not
// possible: sendfile_not_available_error, as asyncio's SendfileNotAvailableError.
//
// asyncio's rules: offset >= 0; count > 0, or the whole rest of the file (count < 0 here,
// asyncio's None); the count sent is returned, and the file's position is offset + sent
// afterwards, also when the sending failed part way. On a transport, reading is paused
// and its write buffer flushed first, write() is refused while the file goes (the bytes
// would interleave), and reading resumes after if it was on before.
//
// sendfile(2) reads the file on the loop's thread, as asyncio's does: a file on a slow
// disk stalls the loop meanwhile (the page cache usually has it).
#ifndef IOLOOP_NET_SENDFILE_HPP
#define IOLOOP_NET_SENDFILE_HPP


#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct file_sendfile_access {
    static file_ref ref(const file& f, const char* what) { return f.ref(what); }
};

struct sendfile_access {
    static native_socket socket_of(const transport& t) noexcept { return t.sendfile_socket(); }
    static bool set_gate(transport& t, sendfile_gate* g) noexcept {
        return t.set_sendfile_gate(g);
    }
};

// One fallback read: 256 KiB, so that the hop to the executor is paid rarely.
inline constexpr std::size_t sendfile_chunk = std::size_t{256} << 10;
// One sendfile(2) call moves at most this much (Linux stops at 0x7ffff000 anyway).
inline constexpr std::size_t sendfile_call_max = std::size_t{0x7ffff000};

inline void check_sendfile_args(const char* what, long long offset, long long count) {
    if (offset < 0) {
        throw std::invalid_argument(
            concat({what, ": offset must be a non-negative integer (got ", decimal(offset), ")"}));
    }
    if (count == 0) {
        throw std::invalid_argument(
            concat({what, ": count must be a positive integer, or negative for the whole "
                          "rest of the file (got 0)"}));
    }
}

// What is left to send: count - sent, or a whole chunk for "to the end".
inline std::size_t sendfile_left(long long count, std::size_t sent, std::size_t chunk) noexcept {
    if (count < 0) return chunk;
    const std::size_t left = static_cast<std::size_t>(count) - sent;
    return left < chunk ? left : chunk;
}

// The file's position put at `to`, the read buffer dropped. On the loop's thread, not the
// pool: an lseek(2) (SetFilePointerEx) of an absolute offset does not wait for the disk,
// and holding the turn means no job of the file runs meanwhile. A hop to the pool here
// would cost each sendfile a thread's wake-up at its end.
inline void sendfile_seek(file_core& f, long long to, const char* what) {
    f.drop_buffer();
    long long at = 0;
    if (const std::error_code ec = seek_native_file(f.handle, to, seek_set, at)) {
        throw_file_error(ec, what, f.path);
    }
    f.os_position = at;
}

// The socket cannot take more now: wait for it, through the transport when there is one
// (it watches its own descriptor; a second registration would be refused).
template <class = void>
coro<void> sendfile_wait_writable(loop_base& loop, native_socket out, transport* t,
                                  sendfile_gate* gate, const char* what) {
    if (!t) {
        co_await fd_ready(loop, out, backend::io_write, what);
        co_return;
    }
    gate->changed.clear();
    gate->want_writable = true;
    sendfile_access::set_gate(*t, gate);  // watches for writability now
    co_await gate->changed.wait();
}

[[noreturn]] inline void throw_transport_gone(const char* what) {
    throw std::system_error(std::make_error_code(std::errc::connection_aborted),
                            concat({what, ": the transport was closed while the file was sent"}));
}

// sendfile(2) until count bytes (or the file's end), adding to `sent`. False if the system
// refused the very first call as not possible for these descriptors (EINVAL, ENOSYS, ...):
// the caller falls back then, or throws sendfile_not_available_error.
template <class = void>
coro<bool> sendfile_native(loop_base& loop, native_socket out, file_core& f, long long offset,
                           long long count, std::size_t& sent, transport* t,
                           sendfile_gate* gate, const char* what) {
    for (;;) {
        const std::size_t want = sendfile_left(count, sent, sendfile_call_max);
        if (want == 0) co_return true;
        long long at = offset + static_cast<long long>(sent);
        const std::ptrdiff_t n = send_file_part(out, f.handle, at, want);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0) co_return true;  // the end of the file
        const int err = errno;
        if (interrupted(err)) continue;
        if (would_block(err)) {
            co_await sendfile_wait_writable(loop, out, t, gate, what);
            if (gate && gate->gone) throw_transport_gone(what);
            continue;
        }
        // asyncio's list: the descriptors are of kinds sendfile(2) does not join.
        if (sent == 0 && (err == EINVAL || err == ENOSYS || err == ENOTSOCK || err == EOPNOTSUPP)) {
            co_return false;
        }
        throw_system_error(err, concat({what, " \"", f.path, "\" to socket ", decimal(out)}));
    }
}

// The fallback's next chunk of the file, read on the pool from where the last one ended;
// empty at the end of the file.
template <class = void>
coro<std::string> sendfile_read_chunk(file_core& f, long long count, std::size_t sent,
                                      const char* what) {
    f.want = sendfile_left(count, sent, sendfile_chunk);
    if (f.want == 0) co_return std::string();
    co_await file_job_wait(f, file_job_kind::read, what);
    co_return f.take(f.buffered());
}

// Both forms' end, as asyncio's finally: the file's position is offset + sent, whatever
// happened (unless a cancelled read of the fallback still runs on the pool: its bytes go to
// the file's buffer then, as any cancelled read's); then the failure, if any, goes on.
inline void sendfile_finish(file_core& f, long long offset, std::size_t sent,
                            const std::exception_ptr& failure, const char* what) {
    if (!f.pending) sendfile_seek(f, offset + static_cast<long long>(sent), what);
    if (failure) std::rethrow_exception(failure);
}

// The transport's write buffer empty (or the transport gone).
template <class = void>
coro<void> sendfile_flush(transport& t, sendfile_gate& gate) {
    while (!gate.gone && t.get_write_buffer_size() != 0) {
        gate.changed.clear();
        co_await gate.changed.wait();
    }
}

template <class = void>
coro<void> sendfile_to_transport(loop_base& loop, transport& t, file_core& f, long long offset,
                                 long long count, bool fallback, sendfile_gate& gate,
                                 std::size_t& sent) {
    const char* what = "loop.sendfile";
    co_await sendfile_flush(t, gate);
    if (gate.gone) throw_transport_gone(what);
    const native_socket out = sendfile_access::socket_of(t);
    bool done = false;
    if (native_sendfile_available && out != invalid_socket) {
        done = co_await sendfile_native(loop, out, f, offset, count, sent, &t, &gate, what);
    }
    if (done) co_return;
    if (!fallback) {
        throw sendfile_not_available_error(
            concat({what, ": the system cannot send \"", f.path,
                    "\" itself on this transport (sendfile(2) needs Linux, a readiness "
                    "backend and a plain socket's transport); fallback = true sends it by "
                    "reads and writes"}));
    }
    sendfile_seek(f, offset, what);
    for (;;) {
        std::string chunk = co_await sendfile_read_chunk(f, count, sent, what);
        if (gate.gone) throw_transport_gone(what);
        if (chunk.empty()) co_return;
        gate.own_write = true;
        t.write(chunk);
        gate.own_write = false;
        sent += chunk.size();
        // Flow control: past the high-water mark, wait for the buffer to drain.
        if (t.get_write_buffer_size() > t.get_write_buffer_limits().high) {
            co_await sendfile_flush(t, gate);
            if (gate.gone) throw_transport_gone(what);
        }
    }
}

template <class = void>
coro<std::size_t> loop_sendfile(loop_base& loop, transport& t, file_ref ref, long long offset,
                                long long count, bool fallback) {
    const char* what = "loop.sendfile";
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable(what);
    if (t.is_closing()) throw invalid_state_error("loop.sendfile: the transport is closing");
    sendfile_gate gate;
    if (!sendfile_access::set_gate(t, &gate)) {
        throw invalid_state_error(
            "loop.sendfile: the transport cannot take a sendfile now (another sendfile runs "
            "on it, or it is not one of ioloop's transports)");
    }
    // Takes the gate back from the transport however this frame ends (destroyed unfinished
    // when the loop closes, too), unless the transport went first.
    struct gate_hold {
        transport& t;
        sendfile_gate& gate;
        bool resume_reading;
        ~gate_hold() {
            if (gate.gone) return;
            sendfile_access::set_gate(t, nullptr);
            if (resume_reading && !t.is_closing()) t.resume_reading();
        }
    };
    std::size_t sent = 0;
    std::exception_ptr failure;
    {
        gate_hold hold{t, gate, t.is_reading()};
        if (hold.resume_reading) t.pause_reading();
        try {
            co_await sendfile_to_transport(loop, t, f, offset, count, fallback, gate, sent);
        } catch (...) {
            failure = std::current_exception();
        }
    }
    sendfile_finish(f, offset, sent, failure, what);
    co_return sent;
}

}  // namespace detail

template <class>
coro<std::size_t> loop_base::sendfile(transport& t, file& f, long long offset, long long count,
                                      bool fallback) {
    detail::check_sendfile_args("loop.sendfile", offset, count);
    check_open("loop.sendfile");
    return detail::loop_sendfile(*this, t, detail::file_sendfile_access::ref(f, "loop.sendfile"),
                                 offset, count, fallback);
}

namespace detail {

template <class Loop>
coro<std::size_t> loop_sock_sendfile(Loop& loop, socket& s, file_ref ref, long long offset,
                                     long long count, bool fallback, bool native_possible) {
    const char* what = "loop.sock_sendfile";
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable(what);
    std::size_t sent = 0;
    std::exception_ptr failure;
    try {
        bool done = false;
        if (native_possible) {
            done = co_await sendfile_native(loop, s.fd(), f, offset, count, sent, nullptr,
                                            nullptr, what);
        }
        if (!done) {
            if (!fallback) {
                throw sendfile_not_available_error(
                    concat({what, ": the system cannot send \"", f.path,
                            "\" itself here (sendfile(2) needs Linux and a readiness "
                            "backend); fallback = true sends it by reads and writes"}));
            }
            sendfile_seek(f, offset, what);
            for (;;) {
                std::string chunk = co_await sendfile_read_chunk(f, count, sent, what);
                if (chunk.empty()) break;
                co_await loop.sock_sendall(s, chunk);
                sent += chunk.size();
            }
        }
    } catch (...) {
        failure = std::current_exception();
    }
    sendfile_finish(f, offset, sent, failure, what);
    co_return sent;
}

}  // namespace detail

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_sendfile(socket& s, file& f, long long offset,
                                                           long long count, bool fallback) {
    detail::check_sendfile_args("loop.sock_sendfile", offset, count);
    check_open("loop.sock_sendfile");
    // Whether the family can: sendfile(2) is the readiness engine's (on Linux).
    constexpr bool native = decltype(engine_)::native_sendfile;
    return detail::loop_sock_sendfile(*this, s,
                                      detail::file_sendfile_access::ref(f, "loop.sock_sendfile"),
                                      offset, count, fallback, native);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/sendfile.hpp
// begin file ioloop/net/streams.hpp
// ioloop: asyncio's stream functions: open_connection / open_unix_connection give a
// connected (stream_reader, stream_writer) pair; start_server / start_unix_server run a
// coroutine per accepted connection, as a task of its own; connect_read_pipe /
// connect_write_pipe give a stream_reader or a stream_writer over a pipe or a terminal.
//
// Each is a plain function that checks its arguments and returns the coroutine that does
// the work, so the callback and the strings it was given are moved out of the caller's
// co_await expression at once (g++ 12 mishandles such temporaries across a suspension).
#ifndef IOLOOP_NET_STREAMS_HPP
#define IOLOOP_NET_STREAMS_HPP


#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct stream_access {
    static void set_pending(stream_reader_protocol& p, coro<void> c) noexcept {
        p.pending_ = std::move(c);
        p.from_server_ = 1;
    }
    // The stream a handle is of (the handle is not empty).
    template <class Handle>
    static stream_reader_protocol& protocol_of(const Handle& h) noexcept {
        return *h.s_;
    }
};

inline void check_stream_limit(std::size_t limit, const char* what) {
    if (limit == 0 || limit > stream_reader_protocol::max_limit) {
        throw std::invalid_argument(concat({what, ": the limit must be in [1, 2^32)"}));
    }
}

// A client connection's protocol, and its handles, put where the connecting coroutine
// keeps them. A pipe has one of the two: a null one is not made (a writer made and
// dropped would close the transport).
struct stream_client_factory {
    std::size_t limit;
    stream_reader* reader;
    stream_writer* writer;

    std::unique_ptr<stream_reader_protocol> operator()() const {
        std::unique_ptr<stream_reader_protocol> p = stream_reader_protocol::create(limit);
        if (reader) *reader = stream_reader(*p);
        if (writer) *writer = stream_writer(*p);
        return p;
    }
};

// A server connection's protocol, and the callback's coroutine for it, which becomes a
// task once the transport calls connection_made.
template <class Callback>
struct stream_server_factory {
    Callback cb;
    std::size_t limit;

    std::unique_ptr<stream_reader_protocol> operator()() {
        std::unique_ptr<stream_reader_protocol> p = stream_reader_protocol::create(limit);
        stream_access::set_pending(*p, cb(stream_reader(*p), stream_writer(*p)));
        return p;
    }
};

template <class Callback>
constexpr void check_stream_callback() {
    static_assert(
        std::is_same_v<std::invoke_result_t<Callback&, stream_reader, stream_writer>, coro<void>>,
        "start_server: the callback must be callable as cb(stream_reader, stream_writer) and "
        "return ioloop::coro<void>");
}

// open_connection's coroutine. The factory puts the handles right here, in the frame,
// before the transport exists: nothing can take the connection from under them. The loop
// is the one running the coroutine, as in asyncio: loop.run_until_complete(open_connection(...))
// works.
template <class = void>
coro<std::pair<stream_reader, stream_writer>> open_stream(std::string host, std::uint16_t port,
                                                          bool unix_path, std::size_t limit) {
    loop_base& loop = loop_access::running_or_throw(unix_path ? "open_unix_connection"
                                                              : "open_connection");
    stream_reader reader;
    stream_writer writer;
    const stream_client_factory factory{limit, &reader, &writer};
    if (unix_path) {
        auto connecting = loop.create_unix_connection(factory, std::move(host));
        co_await std::move(connecting);
    } else {
        auto connecting = loop.create_connection(factory, std::move(host), port);
        co_await std::move(connecting);
    }
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

// open_connection's coroutine with options: to host's addresses (`sock` closed), or over
// `sock`, connected already (host empty).
template <class = void>
coro<std::pair<stream_reader, stream_writer>> open_stream_with(std::string host,
                                                               std::uint16_t port, socket sock,
                                                               connect_options o) {
    loop_base& loop = loop_access::running_or_throw("open_connection");
    stream_reader reader;
    stream_writer writer;
    const stream_client_factory factory{o.limit, &reader, &writer};
    if (sock.is_open()) {
        auto connecting = loop.create_connection(factory, std::move(sock), o);
        co_await std::move(connecting);
    } else {
        auto connecting = loop.create_connection(factory, std::move(host), port, o);
        co_await std::move(connecting);
    }
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

// connect_read_pipe's and connect_write_pipe's coroutine: one handle of the pair, over the
// descriptor, owned from the call (closed if the coroutine never runs or fails).
template <class Handle>
coro<Handle> open_pipe_stream(owned_descriptor fd, std::size_t limit) {
    constexpr bool reading = std::is_same_v<Handle, stream_reader>;
    const char* what = reading ? "connect_read_pipe" : "connect_write_pipe";
    loop_base& loop = loop_access::running_or_throw(what);
    Handle handle;
    if constexpr (reading) {
        auto connecting = loop.connect_read_pipe(stream_client_factory{limit, &handle, nullptr},
                                                 fd.release());
        co_await std::move(connecting);
    } else {
        auto connecting = loop.connect_write_pipe(stream_client_factory{limit, nullptr, &handle},
                                                  fd.release());
        co_await std::move(connecting);
    }
    co_return handle;
}

// start_server's coroutine, on the loop that runs it.
template <class Callback>
coro<server> serve_streams(stream_server_factory<Callback> factory, std::string where,
                           std::uint16_t port, bool unix_path, serve_options o) {
    loop_base& loop = loop_access::running_or_throw(unix_path ? "start_unix_server"
                                                              : "start_server");
    if (unix_path) {
        auto starting = loop.create_unix_server(std::move(factory), std::move(where), o);
        co_return co_await std::move(starting);
    }
    auto starting = loop.create_server(std::move(factory), std::move(where), port, o);
    co_return co_await std::move(starting);
}

// start_server's coroutine with options: on the hosts (sock closed), or on `sock`. The
// hosts are this frame's copy of the caller's options.hosts.
template <class Callback>
coro<server> serve_streams_with(stream_server_factory<Callback> factory,
                                std::vector<std::string> hosts, std::uint16_t port, socket sock,
                                serve_options o) {
    loop_base& loop = loop_access::running_or_throw("start_server");
    if (sock.is_open()) {
        auto starting = loop.create_server(std::move(factory), std::move(sock), o);
        co_return co_await std::move(starting);
    }
    o.hosts = &hosts;
    auto starting = loop.create_server(std::move(factory), std::string(), port, o);
    co_return co_await std::move(starting);
}

}  // namespace detail

// co_await open_connection(host, port) -> {stream_reader, stream_writer} (asyncio's
// open_connection): host's addresses are tried in order; the last one's error
// (std::system_error, errc::connection_refused...) if none connects. `limit` is the
// reader's (see stream_reader).
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_connection(
    std::string host, std::uint16_t port, std::size_t limit = stream_default_limit) {
    detail::check_stream_limit(limit, "open_connection");
    return detail::open_stream(std::move(host), port, false, limit);
}

// With options (connect_options: limit, local_addr, happy_eyeballs_delay, interleave,
// all_errors; ssl and server_hostname need <ioloop/ssl.hpp>).
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_connection(std::string host,
                                                              std::uint16_t port,
                                                              const connect_options& options) {
    detail::check_stream_limit(options.limit, "open_connection");
    detail::check_connect_options(options, "open_connection");
    return detail::open_stream_with(std::move(host), port, socket(), options);
}

// Over `sock`, a stream socket connected already (asyncio's sock=): the streams own it.
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_connection(
    socket sock, const connect_options& options = {}) {
    detail::check_stream_limit(options.limit, "open_connection");
    detail::check_connect_options(options, "open_connection");
    detail::check_connected_stream(sock, "open_connection");
    return detail::open_stream_with(std::string(), 0, std::move(sock), options);
}

// The same over a Unix stream socket at `path` (a leading '\0': an abstract name, Linux).
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_unix_connection(
    std::string path, std::size_t limit = stream_default_limit) {
    detail::check_stream_limit(limit, "open_unix_connection");
    return detail::open_stream(std::move(path), 0, true, limit);
}

// co_await connect_read_pipe(fd) -> stream_reader (asyncio's StreamReader over
// loop.connect_read_pipe): fd, a pipe, a FIFO, a terminal or a character device (POSIX),
// or an overlapped named pipe's HANDLE (Windows, IOCP), is the stream's from the call on,
// and closed at EOF, when the last stream_reader of it goes, or when the loop closes.
// `limit` is the reader's (see stream_reader).
template <class = void>  // a template: compiled only where it is used
coro<stream_reader> connect_read_pipe(native_descriptor fd,
                                      std::size_t limit = stream_default_limit) {
    detail::owned_descriptor owned(fd);
    detail::check_stream_limit(limit, "connect_read_pipe");
    return detail::open_pipe_stream<stream_reader>(std::move(owned), limit);
}

// co_await connect_write_pipe(fd) -> stream_writer: every stream_writer method works on it,
// drain included; write_eof and close send what is buffered, then close fd. The reader
// going away is errc::broken_pipe (from drain or wait_closed), never SIGPIPE.
template <class = void>  // a template: compiled only where it is used
coro<stream_writer> connect_write_pipe(native_descriptor fd) {
    return detail::open_pipe_stream<stream_writer>(detail::owned_descriptor(fd),
                                                   stream_default_limit);
}

// co_await start_server(cb, host, port) -> server (asyncio's start_server), serving at
// once: each accepted connection runs cb(stream_reader, stream_writer) as a task. cb
// takes both by value (a coroutine keeps its parameters). An exception the task ends with
// goes to the loop's exception handler; when cb returns, its writer goes, which closes the
// connection unless the writer was moved elsewhere. Port 0: the system picks a free port,
// server.sockets()[0].local_endpoint().port(). An empty host: every interface.
// A lambda coroutine reaches its captures through the server's copy of the lambda, which
// lives while the server handle or one of its connections does: a handler that goes on
// after its connection is gone must not use its captures once the server is destroyed.
template <class Callback>
coro<server> start_server(Callback cb, std::string host, std::uint16_t port,
                          std::size_t limit = stream_default_limit, int backlog = 100) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(limit, "start_server");
    serve_options o;
    o.backlog = backlog;
    return detail::serve_streams(detail::stream_server_factory<Callback>{std::move(cb), limit},
                                 std::move(host), port, false, o);
}

// With options (serve_options: limit, backlog, reuse_address, reuse_port, keep_alive,
// start_serving, hosts; ssl needs <ioloop/ssl.hpp>).
template <class Callback>
coro<server> start_server(Callback cb, std::string host, std::uint16_t port,
                          const serve_options& options) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(options.limit, "start_server");
    detail::check_serve_options(options, "start_server");
    return detail::serve_streams_with(
        detail::stream_server_factory<Callback>{std::move(cb), options.limit},
        detail::hosts_of(std::move(host), options), port, socket(), options);
}

// On `sock`, a stream socket bound already, listening or not (asyncio's sock=; systemd's
// socket activation passes one as descriptor 3: socket(3) adopts it). The server owns it.
template <class Callback>
coro<server> start_server(Callback cb, socket sock, const serve_options& options = {}) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(options.limit, "start_server");
    detail::check_serve_options(options, "start_server");
    detail::check_listening_socket(sock, options, "start_server");
    return detail::serve_streams_with(
        detail::stream_server_factory<Callback>{std::move(cb), options.limit}, {}, 0,
        std::move(sock), options);
}

// The same on a Unix stream socket at `path`; a stale socket file there is replaced.
template <class Callback>
coro<server> start_unix_server(Callback cb, std::string path,
                               std::size_t limit = stream_default_limit, int backlog = 100) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(limit, "start_unix_server");
    serve_options o;
    o.backlog = backlog;
    return detail::serve_streams(detail::stream_server_factory<Callback>{std::move(cb), limit},
                                 std::move(path), 0, true, o);
}

// With options (serve_options: limit, backlog, start_serving; the TCP ones, reuse_port,
// keep_alive and hosts, do not apply to a Unix socket).
template <class Callback>
coro<server> start_unix_server(Callback cb, std::string path, const serve_options& options) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(options.limit, "start_unix_server");
    detail::check_serve_options(options, "start_unix_server");
    if (options.hosts && !options.hosts->empty()) {
        throw std::invalid_argument("start_unix_server: hosts do not apply to a Unix socket");
    }
    return detail::serve_streams(
        detail::stream_server_factory<Callback>{std::move(cb), options.limit}, std::move(path), 0,
        true, options);
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/streams.hpp
// begin file ioloop/net/wait_io.hpp
// ioloop: co_await wait_readable(fd) and co_await wait_writable(fd): the current task waits
// once until fd is readable (or writable), as trio's functions of those names; what
// add_reader / add_writer are for callbacks. Readiness backends only (epoll, kqueue, poll,
// select). The descriptor stays the caller's: nothing watches it before or after the
// wait, so an idle descriptor costs the loop nothing.
//
// Cancelling the task ends the wait and leaves the descriptor unwatched and usable. A
// descriptor that something else of this loop watches (add_reader, another waiting task,
// a transport) is refused with errc::file_exists, rather than taken from it.
#ifndef IOLOOP_NET_WAIT_IO_HPP
#define IOLOOP_NET_WAIT_IO_HPP


IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The running loop, checked for a wait on fd: fd is open. (A completion backend (IOCP)
// refuses the wait when it starts: it cannot wait for readiness.)
inline loop_base& loop_for_wait(native_socket fd, const char* what) {
    loop_base& loop = loop_access::running_or_throw(what);
    require_open_descriptor(fd, what);
    return loop;
}

}  // namespace detail

// co_await wait_readable(fd): returns once fd is readable (data, EOF, an error, a hang-up:
// whatever makes a read return at once). No running loop or a closed descriptor throw at
// the call; a descriptor watched already, or a completion backend (IOCP), at the co_await.
[[nodiscard]] inline detail::fd_ready wait_readable(native_socket fd) {
    return detail::fd_ready(detail::loop_for_wait(fd, "wait_readable"), fd, backend::io_read,
                            "wait_readable");
}

// co_await wait_writable(fd): returns once fd is writable (room in its buffer, or an error
// a write would report).
[[nodiscard]] inline detail::fd_ready wait_writable(native_socket fd) {
    return detail::fd_ready(detail::loop_for_wait(fd, "wait_writable"), fd, backend::io_write,
                            "wait_writable");
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/net/wait_io.hpp
// begin file ioloop/subprocess/process.hpp
// ioloop: asyncio's subprocess API on the coroutine front end.
//
//   ioloop::process p = co_await ioloop::create_subprocess_exec(
//       "grep", {"-c", "x"}, {.in = ioloop::stdio::pipe, .out = ioloop::stdio::pipe});
//   auto [out, err] = co_await p.communicate("x\ny\nx\n");  // out == "2\n"
//   int rc = co_await p.wait();                              // 0
//
// The child's pipes are ordinary pipe streams (connect_read_pipe / connect_write_pipe), so
// in(), out() and err() are the stream_writer and stream_readers every stream has.
#ifndef IOLOOP_SUBPROCESS_PROCESS_HPP
#define IOLOOP_SUBPROCESS_PROCESS_HPP

// begin file ioloop/detail/spawn.hpp
// ioloop: starting a child process and learning how it ended. The one place that chooses
// the system's way: detail/spawn_posix.hpp (posix_spawnp, pidfd, waitpid) or
// detail/spawn_windows.hpp (CreateProcessW, the process handle); each file is whole under
// its platform's macro. Both give the subprocess layer (subprocess/) the same names:
//
//   child_id                          names a child: its pid (and Windows' process handle)
//   spawn_child(spawn_request) -> child_id
//                                     starts it; one that cannot start is a
//                                     std::system_error naming the program
//   shell_program()                   what runs create_subprocess_shell's command
//   make_child_pipe(ours, childs, child_reads, what)
//                                     a pipe for one of the child's descriptors: this
//                                     process's end as connect_read_pipe / write_pipe take
//                                     it, the child's end as spawn_request takes it
//   open_devnull(what)                /dev/null, NUL
//   open_pidfd(id)                    a descriptor the loop can watch for the child's end,
//                                     or no_descriptor() (a thread waits instead)
//   reap_child(id, returncode, block) whether it has ended, and asyncio's returncode
//   copy_child_id(id), close_child_id(id)
//                                     a second handle for a thread that waits; freeing one
//   check_signal(sig, what), signal_child(id, sig), terminate_signal, kill_signal
#ifndef IOLOOP_DETAIL_SPAWN_HPP
#define IOLOOP_DETAIL_SPAWN_HPP

// begin file ioloop/detail/spawn_posix.hpp
// ioloop: starting a child process and learning how it ended (POSIX): the names
// detail/spawn.hpp lists, for the subprocess layer (subprocess/).
//
// Why posix_spawnp and not fork or vfork + exec: glibc's posix_spawn is clone(CLONE_VM |
// CLONE_VFORK) + exec, so it copies no page tables however large the parent is (what makes
// fork slow), it runs no code of ours between clone and exec (where vfork's rules forbid
// almost everything), and it returns exec's error to the caller: a program that cannot start
// is an error of this call, never a child that exits 127 (glibc >= 2.24, macOS, the BSDs).
//
// Descriptors: every descriptor ioloop opens is close-on-exec; posix_spawn_file_actions_
// addclosefrom_np (glibc >= 2.34) also closes, in the child, those the program opened
// without it, so that nothing but 0, 1 and 2 reaches the child, as Python's close_fds.
//
// The end of a child: a pidfd (Linux >= 5.3) becomes readable when the child exits, and the
// loop watches it like any descriptor; waitpid on the child's own pid then reaps it. Without
// pidfds, a thread per child waits for that pid alone (see subprocess/child_watch.hpp). Never
// waitpid(-1): children the program made some other way are its own to reap.
#ifndef IOLOOP_DETAIL_SPAWN_POSIX_HPP
#define IOLOOP_DETAIL_SPAWN_POSIX_HPP

// begin file ioloop/detail/spawn_request.hpp
// ioloop: what the subprocess layer asks of the system when it starts a child: the program,
// its arguments, environment and directory, and the child's three standard descriptors.
// detail/spawn_posix.hpp and detail/spawn_windows.hpp turn it into a running child (see
// detail/spawn.hpp for the whole contract).
#ifndef IOLOOP_DETAIL_SPAWN_REQUEST_HPP
#define IOLOOP_DETAIL_SPAWN_REQUEST_HPP


#include <string>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct spawn_request {
    // POSIX: looked up on PATH when it has no '/', as execvp. Windows: as CreateProcessW
    // looks up a command line's first word (detail/spawn_windows.hpp).
    const std::string* program = nullptr;
    const std::vector<std::string>* args = nullptr;  // after the program's own name
    // args holds one shell command, which program (shell_program()) runs: "/bin/sh -c cmd"
    // on POSIX, `cmd.exe /c "cmd"` on Windows, the command given as it is, unquoted.
    bool shell = false;
    const std::vector<std::string>* env = nullptr;  // "NAME=value" each; null: inherited
    const char* cwd = nullptr;                      // UTF-8; null: this process's
    // child_fds[i] becomes the child's descriptor i (the child gets its own copy); none
    // (no_descriptor()): this process's own i, inherited. err_to_out makes the child's 2 a
    // copy of its 1.
    native_descriptor child_fds[3] = {no_descriptor(), no_descriptor(), no_descriptor()};
    bool err_to_out = false;
    // POSIX: setsid() in the child, its own session and process group (Popen's
    // start_new_session). Windows has no such thing and ignores it, as Popen does.
    bool new_session = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/detail/spawn_request.hpp

#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <csignal>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

extern char** environ;

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A child, as the calls below name it.
struct child_id {
    int pid = -1;
};

// What create_subprocess_shell's command runs in: `/bin/sh -c cmd`.
inline std::string shell_program() { return "/bin/sh"; }

// A spawn's resources, freed on every path.
class spawn_actions {
public:
    spawn_actions() {
        if (int e = ::posix_spawn_file_actions_init(&actions_)) throw_errno(e, "posix_spawn");
        if (int e = ::posix_spawnattr_init(&attr_)) {
            ::posix_spawn_file_actions_destroy(&actions_);
            throw_errno(e, "posix_spawn");
        }
    }
    spawn_actions(const spawn_actions&) = delete;
    spawn_actions& operator=(const spawn_actions&) = delete;
    ~spawn_actions() {
        ::posix_spawnattr_destroy(&attr_);
        ::posix_spawn_file_actions_destroy(&actions_);
    }

    posix_spawn_file_actions_t actions_;
    posix_spawnattr_t attr_;
};

// Starts the child. A program that cannot start (not found, not executable, a cwd that
// does not exist) is a std::system_error naming it.
inline child_id spawn_child(const spawn_request& r) {
    const char* program = r.program->c_str();
    std::vector<char*> argv;
    argv.reserve(r.args->size() + 3);
    argv.push_back(const_cast<char*>(program));
    if (r.shell) argv.push_back(const_cast<char*>("-c"));
    for (const std::string& a : *r.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (r.env) {
        envp.reserve(r.env->size() + 1);
        for (const std::string& e : *r.env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
    }

    spawn_actions sa;
    auto check = [&](int e) {
        if (e != 0) throw_errno(e, concat({"spawning \"", program, "\""}));
    };
    for (int i = 0; i < 3; ++i) {
        if (r.child_fds[i] >= 0) check(::posix_spawn_file_actions_adddup2(&sa.actions_, r.child_fds[i], i));
    }
    if (r.err_to_out) check(::posix_spawn_file_actions_adddup2(&sa.actions_, 1, 2));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    check(::posix_spawn_file_actions_addclosefrom_np(&sa.actions_, 3));
#endif
    if (r.cwd) {
#if (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))) || \
    defined(__APPLE__) || defined(__FreeBSD__)
        check(::posix_spawn_file_actions_addchdir_np(&sa.actions_, r.cwd));
#else
        throw_errno(ENOTSUP, concat({"spawning \"", program, "\": cwd needs "
                                     "posix_spawn_file_actions_addchdir_np"}));
#endif
    }
    // A child starts with SIGPIPE at its default, whatever the parent does with it (as
    // Python's subprocess): a program at the end of a pipe expects to die of it.
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    check(::posix_spawnattr_setsigdefault(&sa.attr_, &defaults));
    short flags = POSIX_SPAWN_SETSIGDEF;
    if (r.new_session) {
#if defined(POSIX_SPAWN_SETSID)
        flags |= POSIX_SPAWN_SETSID;
#else
        throw_errno(ENOTSUP, concat({"spawning \"", program, "\": start_new_session needs "
                                     "POSIX_SPAWN_SETSID"}));
#endif
    }
    check(::posix_spawnattr_setflags(&sa.attr_, flags));
    pid_t pid = -1;
    check(::posix_spawnp(&pid, program, &sa.actions_, &sa.attr_, argv.data(),
                         r.env ? envp.data() : environ));
    return child_id{static_cast<int>(pid)};
}

// A pipe whose two ends are close-on-exec from the start where the system can (pipe2): a
// spawn on another thread in between would leak them into its child otherwise.
inline bool make_cloexec_pipe(int (&fds)[2]) noexcept {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    return ::pipe2(fds, O_CLOEXEC) == 0;
#else
    if (::pipe(fds) == -1) return false;
    ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return true;
#endif
}

// A pipe for one of the child's descriptors, both ends close-on-exec (the child gets its
// end through spawn_child's dup2): `ours` reads if the child writes, and writes if it
// reads (child_reads: its stdin).
inline void make_child_pipe(native_descriptor& ours, native_descriptor& childs, bool child_reads,
                            const char* what) {
    int fds[2];
    if (!make_cloexec_pipe(fds)) throw_errno(errno, concat({what, ": pipe"}));
    ours = fds[child_reads ? 1 : 0];
    childs = fds[child_reads ? 0 : 1];
}

inline native_descriptor open_devnull(const char* what) {
    const int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd == -1) throw_errno(errno, concat({what, ": opening /dev/null"}));
    return fd;
}

// A descriptor that becomes readable when the child exits, or none where the kernel has
// none (Linux < 5.3, a seccomp filter, not Linux).
inline native_descriptor open_pidfd(const child_id& id) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
    const long fd = ::syscall(SYS_pidfd_open, id.pid, 0);
    if (fd < 0) return -1;
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // pidfds are close-on-exec already
    return static_cast<int>(fd);
#else
    (void)id;
    return -1;
#endif
}

// asyncio's returncode from a wait status: the exit code, or -N for signal N.
inline int returncode_of(int status) noexcept {
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

// Reaps the child if it has exited: true, and its returncode. `block` waits for it.
inline bool reap_child(const child_id& id, int& returncode, bool block) noexcept {
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(id.pid, &status, block ? 0 : WNOHANG);
        if (r == id.pid) {
            returncode = returncode_of(status);
            return true;
        }
        if (r == -1 && errno == EINTR) continue;
        if (r == -1) {
            // ECHILD: someone else reaped it (a waitpid(-1) elsewhere, SIGCHLD ignored):
            // its status is lost. asyncio reports 255 then.
            returncode = 255;
            return true;
        }
        return false;  // 0: still running
    }
}

// A pid needs no second handle: a thread that waits uses the same one.
inline child_id copy_child_id(const child_id& id) noexcept { return id; }
inline void close_child_id(child_id&) noexcept {}

// The signals of terminate() and kill(); every signal may be sent.
inline constexpr int terminate_signal = SIGTERM;
inline constexpr int kill_signal = SIGKILL;
inline void check_signal(int, const char*) noexcept {}

// Sends sig to the child; false if it is gone already.
inline bool signal_child(const child_id& id, int sig) noexcept { return ::kill(id.pid, sig) == 0; }

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX

#endif
// end file ioloop/detail/spawn_posix.hpp
// begin file ioloop/detail/spawn_windows.hpp
// ioloop: starting a child process and learning how it ended (Windows): the names
// detail/spawn.hpp lists, for the subprocess layer (subprocess/).
//
// The command line: Windows hands a child one string, which the child's C runtime splits
// into arguments. It is built from the program and its arguments with the rules the
// Microsoft C runtime splits by (those of Python's subprocess.list2cmdline): an argument
// with a space or a tab, or an empty one, is put in double quotes; a double quote is
// escaped with a backslash; backslashes are doubled where they come before a double quote
// (one of the argument's, or the closing one), and left alone elsewhere. A program that
// splits its command line its own way (cmd.exe) may read it otherwise: that is why
// create_subprocess_shell passes its command as it is, `cmd.exe /c "<cmd>"` (Python's
// shell=True, with %ComSpec% when set).
//
// The program: CreateProcessW is given no application name, so it takes the command
// line's first word and looks it up as it documents: a name with no extension gets
// ".exe"; a name without a path is searched in the directory of this program's .exe, the
// current directory, the 32-bit system directory (System32), the 16-bit one, the Windows
// directory, then the directories of this process's PATH (not of `env`'s).
//
// Handles: the child's standard handles are inheritable copies made for it alone, and only
// those are inherited: STARTUPINFOEXW with PROC_THREAD_ATTRIBUTE_HANDLE_LIST (Windows
// Vista and later; Wine 8 takes it too), so that a handle some other part of the program
// made inheritable does not leak into the child (Python's close_fds). A pipe is a named
// pipe: this process's end overlapped (FILE_FLAG_OVERLAPPED: the IOCP backend's pipe
// transport needs it), the child's synchronous (what a child's C runtime expects).
//
// The end of a child: its process handle is signalled when it exits; a thread waits on it
// (subprocess/child_watch.hpp) and GetExitCodeProcess gives the returncode. An exit status
// above INT_MAX (an NTSTATUS such as 0xC0000005, an access violation) reads as the negative
// int of the same 32 bits.
//
// Signals, as asyncio on Windows: SIGTERM is TerminateProcess with exit code 1 (so that
// terminate() and kill(), which do the same, leave returncode 1, as Python's Popen);
// CTRL_C_EVENT and CTRL_BREAK_EVENT go to the child's console process group through
// GenerateConsoleCtrlEvent (Windows delivers them only to a child that is a process group's
// leader and shares this console); any other number is an error (asyncio's ValueError).
#ifndef IOLOOP_DETAIL_SPAWN_WINDOWS_HPP
#define IOLOOP_DETAIL_SPAWN_WINDOWS_HPP


#if defined(IOLOOP_WINDOWS)

#include <algorithm>
#include <climits>
#include <csignal>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A child, as the calls below name it: its id, and a handle of its process.
struct child_id {
    int pid = -1;
    HANDLE process = nullptr;
};

// UTF-8 to UTF-16; a string that is not UTF-8 is an error of `what`.
inline std::wstring to_utf16(std::string_view s, std::string_view what) {
    if (s.empty()) return {};
    if (s.size() > static_cast<std::size_t>(INT_MAX)) {
        throw std::length_error(concat({what, ": a string longer than INT_MAX bytes"}));
    }
    const int size = static_cast<int>(s.size());
    const int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), size, nullptr, 0);
    if (n == 0) throw_system_error(::GetLastError(), concat({what, ": a string that is not UTF-8"}));
    std::wstring w(static_cast<std::size_t>(n), L'\0');
    ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), size, w.data(), n);
    return w;
}

// UTF-16 (the system's) to UTF-8; unpaired surrogates become U+FFFD.
inline std::string to_utf8(std::wstring_view w) {
    if (w.empty()) return {};
    const int size = static_cast<int>(w.size());
    const int n = ::WideCharToMultiByte(CP_UTF8, 0, w.data(), size, nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<std::size_t>(n), '\0');
    ::WideCharToMultiByte(CP_UTF8, 0, w.data(), size, s.data(), n, nullptr, nullptr);
    return s;
}

// Appends one argument to a command line, quoted as the C runtime splits (see the top).
// UTF-8 as it is: no byte of a multibyte sequence is a space, a tab, '"' or '\\'.
inline void append_argument(std::string& line, std::string_view arg) {
    const bool quoted = arg.empty() || arg.find_first_of(" \t") != std::string_view::npos;
    if (quoted) line += '"';
    std::size_t backslashes = 0;  // seen and not written yet
    for (const char c : arg) {
        if (c == '\\') {
            ++backslashes;
            continue;
        }
        // Before a double quote, each backslash is doubled and one more escapes the quote.
        line.append(c == '"' ? backslashes * 2 + 1 : backslashes, '\\');
        backslashes = 0;
        line += c;
    }
    // Before the closing quote, doubled too.
    line.append(quoted ? backslashes * 2 : backslashes, '\\');
    if (quoted) line += '"';
}

// The command line of program and args, as list2cmdline builds it.
inline std::string command_line(const std::string& program, const std::vector<std::string>& args) {
    std::string line;
    append_argument(line, program);
    for (const std::string& a : args) {
        line += ' ';
        append_argument(line, a);
    }
    return line;
}

// What create_subprocess_shell's command runs in: %ComSpec% (Windows sets it to cmd.exe's
// full path), else "cmd.exe", found in the system directory.
inline std::string shell_program() {
    wchar_t buffer[MAX_PATH];
    const DWORD n = ::GetEnvironmentVariableW(L"ComSpec", buffer, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) return "cmd.exe";
    return to_utf8(std::wstring_view(buffer, n));
}

// The environment block CreateProcessW takes with CREATE_UNICODE_ENVIRONMENT: each
// "NAME=value" and a NUL, then one more NUL; sorted by name, case-insensitively and in
// Unicode order with no locale, as Windows documents that it wants it. A name may begin
// with '=' (cmd.exe's "=C:=C:\dir"): its end is the first '=' after that.
inline std::wstring environment_block(const std::vector<std::string>& env, std::string_view what) {
    std::vector<std::wstring> vars;
    vars.reserve(env.size());
    for (const std::string& e : env) vars.push_back(to_utf16(e, what));
    const auto name = [](const std::wstring& v) {
        const std::size_t end = v.find(L'=', 1);
        return std::wstring_view(v).substr(0, end == std::wstring::npos ? v.size() : end);
    };
    std::stable_sort(vars.begin(), vars.end(), [&](const std::wstring& a, const std::wstring& b) {
        const std::wstring_view x = name(a);
        const std::wstring_view y = name(b);
        return ::CompareStringOrdinal(x.data(), static_cast<int>(x.size()), y.data(),
                                      static_cast<int>(y.size()), TRUE) == CSTR_LESS_THAN;
    });
    std::wstring block;
    for (const std::wstring& v : vars) {
        block += v;
        block += L'\0';
    }
    if (vars.empty()) block += L'\0';  // an empty block is two NULs
    block += L'\0';
    return block;
}

// A pipe for one of the child's descriptors: a named pipe whose server end is ours,
// overlapped, and whose client end is the child's, synchronous; neither inheritable
// (spawn_child makes the child's copy). `ours` reads if the child writes, and writes if
// it reads (child_reads: its stdin).
inline void make_child_pipe(native_descriptor& ours, native_descriptor& childs, bool child_reads,
                            const char* what) {
    static volatile LONG serial = 0;
    const std::wstring name = L"\\\\.\\pipe\\ioloop-child-" + std::to_wstring(::GetCurrentProcessId()) +
                              L"-" + std::to_wstring(::InterlockedIncrement(&serial));
    // FIRST_PIPE_INSTANCE and one instance: a name someone else made first is an error,
    // not a pipe shared with them.
    const HANDLE server = ::CreateNamedPipeW(
        name.c_str(),
        (child_reads ? PIPE_ACCESS_OUTBOUND : PIPE_ACCESS_INBOUND) | FILE_FLAG_OVERLAPPED |
            FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, 65536,
        65536, 0, nullptr);
    if (server == INVALID_HANDLE_VALUE) {
        throw_system_error(::GetLastError(), concat({what, ": CreateNamedPipeW"}));
    }
    const HANDLE client = ::CreateFileW(name.c_str(), child_reads ? GENERIC_READ : GENERIC_WRITE,
                                        0, nullptr, OPEN_EXISTING, 0, nullptr);
    if (client == INVALID_HANDLE_VALUE) {
        const unsigned long err = ::GetLastError();
        ::CloseHandle(server);
        throw_system_error(err, concat({what, ": opening a named pipe's client end"}));
    }
    // The client's open connected the server end: ConnectNamedPipe says so at once.
    OVERLAPPED o{};
    if (!::ConnectNamedPipe(server, &o)) {
        unsigned long err = ::GetLastError();
        DWORD unused = 0;
        if (err == ERROR_IO_PENDING) err = ::GetOverlappedResult(server, &o, &unused, TRUE) ? 0 : ::GetLastError();
        if (err != 0 && err != ERROR_PIPE_CONNECTED) {
            ::CloseHandle(client);
            ::CloseHandle(server);
            throw_system_error(err, concat({what, ": ConnectNamedPipe"}));
        }
    }
    ours = server;
    childs = client;
}

inline native_descriptor open_devnull(const char* what) {
    const HANDLE h = ::CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE,
                                   FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0,
                                   nullptr);
    if (h == INVALID_HANDLE_VALUE) throw_system_error(::GetLastError(), concat({what, ": opening NUL"}));
    return h;
}

// The inheritable copies of the child's three handles, closed once it has its own.
class child_handles {
public:
    child_handles() = default;
    child_handles(const child_handles&) = delete;
    child_handles& operator=(const child_handles&) = delete;
    ~child_handles() {
        for (std::size_t i = 0; i < count_; ++i) ::CloseHandle(copies_[i]);
    }

    // An inheritable copy of h (a handle of this process); null if `optional` and h cannot
    // be copied (this process has no such standard handle: a GUI program's).
    HANDLE add(HANDLE h, bool optional, std::string_view what) {
        HANDLE copy = nullptr;
        const HANDLE self = ::GetCurrentProcess();
        if (h == nullptr || h == INVALID_HANDLE_VALUE ||
            !::DuplicateHandle(self, h, self, &copy, 0, TRUE, DUPLICATE_SAME_ACCESS)) {
            if (optional) return nullptr;
            throw_system_error(h == nullptr || h == INVALID_HANDLE_VALUE ? ERROR_INVALID_HANDLE
                                                                         : ::GetLastError(),
                               concat({what, ": a handle for the child"}));
        }
        copies_[count_++] = copy;
        return copy;
    }

    HANDLE* data() noexcept { return copies_; }
    std::size_t size() const noexcept { return count_; }

private:
    HANDLE copies_[3] = {};
    std::size_t count_ = 0;
};

// PROC_THREAD_ATTRIBUTE_HANDLE_LIST over the given handles: the only ones the child
// inherits.
class inherit_only {
public:
    inherit_only(HANDLE* handles, std::size_t count, std::string_view what) {
        SIZE_T size = 0;
        ::InitializeProcThreadAttributeList(nullptr, 1, 0, &size);  // says the size it needs
        storage_.resize(size);
        list_ = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage_.data());
        if (!::InitializeProcThreadAttributeList(list_, 1, 0, &size)) {
            list_ = nullptr;
            throw_system_error(::GetLastError(), concat({what, ": InitializeProcThreadAttributeList"}));
        }
        if (!::UpdateProcThreadAttribute(list_, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles,
                                         count * sizeof(HANDLE), nullptr, nullptr)) {
            const unsigned long err = ::GetLastError();
            ::DeleteProcThreadAttributeList(std::exchange(list_, nullptr));  // no destructor runs
            throw_system_error(err, concat({what, ": UpdateProcThreadAttribute"}));
        }
    }
    inherit_only(const inherit_only&) = delete;
    inherit_only& operator=(const inherit_only&) = delete;
    ~inherit_only() {
        if (list_) ::DeleteProcThreadAttributeList(list_);
    }

    LPPROC_THREAD_ATTRIBUTE_LIST get() const noexcept { return list_; }

private:
    std::vector<unsigned char> storage_;  // new's alignment, which the list needs
    LPPROC_THREAD_ATTRIBUTE_LIST list_ = nullptr;
};

// Starts the child. A program that cannot start (not found: errc::no_such_file_or_directory;
// a cwd that is not a directory: errc::not_a_directory, as Python's NotADirectoryError) is
// a std::system_error naming it.
inline child_id spawn_child(const spawn_request& r) {
    const std::string what = concat({"spawning \"", *r.program, "\""});
    std::string line;
    if (r.shell) {
        append_argument(line, *r.program);
        line += " /c \"";
        line += r.args->front();
        line += '"';
    } else {
        line = command_line(*r.program, *r.args);
    }
    std::wstring wide_line = to_utf16(line, what);  // CreateProcessW may write into it
    const std::wstring cwd = r.cwd ? to_utf16(r.cwd, what) : std::wstring();
    std::wstring env = r.env ? environment_block(*r.env, what) : std::wstring();

    child_handles handles;
    HANDLE std_handles[3] = {};
    const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    for (int i = 0; i < 3; ++i) {
        if (i == 2 && r.err_to_out) {
            std_handles[2] = std_handles[1];
        } else if (r.child_fds[i] != no_descriptor()) {
            std_handles[i] = handles.add(r.child_fds[i], false, what);
        } else {
            std_handles[i] = handles.add(::GetStdHandle(std_ids[i]), true, what);
        }
    }

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = std_handles[0];
    si.StartupInfo.hStdOutput = std_handles[1];
    si.StartupInfo.hStdError = std_handles[2];
    DWORD flags = CREATE_UNICODE_ENVIRONMENT;
    BOOL inherit = FALSE;
    std::optional<inherit_only> only;
    if (handles.size() > 0) {  // an empty handle list is an error: then inherit nothing
        only.emplace(handles.data(), handles.size(), what);
        si.lpAttributeList = only->get();
        flags |= EXTENDED_STARTUPINFO_PRESENT;
        inherit = TRUE;
    }
    PROCESS_INFORMATION pi{};
    if (!::CreateProcessW(nullptr, wide_line.data(), nullptr, nullptr, inherit, flags,
                          r.env ? env.data() : nullptr, r.cwd ? cwd.c_str() : nullptr,
                          &si.StartupInfo, &pi)) {
        throw_system_error(::GetLastError(), what);
    }
    ::CloseHandle(pi.hThread);
    return child_id{static_cast<int>(pi.dwProcessId), pi.hProcess};
}

// Windows has no descriptor the loop could watch for a process's end: a thread waits.
inline native_descriptor open_pidfd(const child_id&) noexcept { return no_descriptor(); }

// Whether the child has exited: true, and its exit code. `block` waits for it.
inline bool reap_child(const child_id& id, int& returncode, bool block) noexcept {
    const DWORD waited = ::WaitForSingleObject(id.process, block ? INFINITE : 0);
    if (waited == WAIT_TIMEOUT) return false;
    DWORD code = 0;
    if (waited != WAIT_OBJECT_0 || !::GetExitCodeProcess(id.process, &code)) {
        returncode = 255;  // the handle is unusable: the status is lost (POSIX's ECHILD)
        return true;
    }
    returncode = static_cast<int>(code);
    return true;
}

// A second handle of the child's process, for a thread that waits on it while the first
// may be closed.
inline child_id copy_child_id(const child_id& id) {
    child_id copy{id.pid, nullptr};
    const HANDLE self = ::GetCurrentProcess();
    if (!::DuplicateHandle(self, id.process, self, &copy.process, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
        throw_system_error(::GetLastError(), concat({"child process ", decimal(id.pid), ": DuplicateHandle"}));
    }
    return copy;
}

inline void close_child_id(child_id& id) noexcept {
    if (id.process) ::CloseHandle(std::exchange(id.process, nullptr));
}

// terminate() and kill() both end the child with TerminateProcess (see the top).
inline constexpr int terminate_signal = SIGTERM;
inline constexpr int kill_signal = SIGTERM;

// The numbers send_signal takes here, as asyncio on Windows; any other is an error.
inline void check_signal(int sig, const char* what) {
    if (sig == SIGTERM || sig == CTRL_C_EVENT || sig == CTRL_BREAK_EVENT) return;
    throw std::invalid_argument(
        concat({what, ": signal ", decimal(sig),
                " cannot be sent on Windows: SIGTERM (TerminateProcess), CTRL_C_EVENT and "
                "CTRL_BREAK_EVENT only"}));
}

// Sends sig (check_signal's) to the child; false if it did not go (the child has exited).
inline bool signal_child(const child_id& id, int sig) noexcept {
    if (sig == SIGTERM) return ::TerminateProcess(id.process, 1) != 0;
    return ::GenerateConsoleCtrlEvent(static_cast<DWORD>(sig), static_cast<DWORD>(id.pid)) != 0;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS

#endif
// end file ioloop/detail/spawn_windows.hpp

#endif
// end file ioloop/detail/spawn.hpp
// begin file ioloop/subprocess/child_watch.hpp
// ioloop: a child process as its loop knows it, from its start until it is reaped: the
// returncode once it has exited, and the tasks waiting for that.
//
// How the end is learned: from the backend where it watches processes (kqueue's
// EVFILT_PROC); else the loop watches the child's pidfd like any descriptor (Linux >= 5.3);
// without either, a thread waits for that child alone (its pid; on Windows its process
// handle) and tells the loop (asyncio's ThreadedChildWatcher). No thread and no signal
// handler in the first two. None takes a SIGCHLD disposition, which a program's own
// handler (or SIG_IGN) would fight over, and none reaps a child it did not start.
//
// The loop closing with the child still running: the child is not killed (it may be meant
// to outlive the program, as a daemon's helper); the loop's exception handler hears of it,
// as asyncio warns, and a thread waits for the child's end so that no zombie is left (on
// Windows, so that its process handle is closed then).
#ifndef IOLOOP_SUBPROCESS_CHILD_WATCH_HPP
#define IOLOOP_SUBPROCESS_CHILD_WATCH_HPP


#include <optional>
#include <string>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// For the tests: take the thread's way even where pidfds exist.
inline bool force_thread_child_watch = false;

// A thread that waits for one child (reap_child, blocking) and, unless its owner let go
// meanwhile, tells the owner's loop. Shared by the two; the last to let go frees it.
class reaper_thread {
public:
    using done_fn = void (*)(void* owner, int returncode) noexcept;

    // Starts the thread, which waits on its own copy of the child's id; the owner holds one
    // reference. `owner` null: nobody is told (the loop is gone), the child is only reaped.
    static reaper_thread* start(const child_id& id, loop_base* loop, void* owner, done_fn done) {
        auto* r = new reaper_thread(loop, owner, done);
        try {
            r->id_ = copy_child_id(id);
        } catch (...) {
            delete r;
            throw;
        }
        if (const int err = start_detached_thread(&reaper_thread::main, r)) {
            close_child_id(r->id_);
            delete r;
            throw_errno(err, concat({"waiting for child process ", decimal(id.pid), ": no thread"}));
        }
        return r;
    }

    // The owner no longer wants to hear (reaped, or its loop is closing).
    void let_go() noexcept {
        m_.lock();
        owner_ = nullptr;
        const bool last = --refs_ == 0;
        m_.unlock();
        if (last) delete this;
    }

private:
    reaper_thread(loop_base* loop, void* owner, done_fn done) noexcept
        : loop_(loop), owner_(owner), done_(done), refs_(owner ? 2 : 1) {}

    static void* main(void* self) {
        auto* r = static_cast<reaper_thread*>(self);
        int rc = 0;
        reap_child(r->id_, rc, true);
        close_child_id(r->id_);
        r->m_.lock();
        // Under the lock: the owner's loop cannot finish closing while the call is queued.
        if (void* owner = r->owner_) {
            done_fn done = r->done_;
            try {
                r->loop_->call_soon_threadsafe([owner, done, rc] { done(owner, rc); });
            } catch (...) {  // the loop closed: it no longer runs callbacks
            }
        }
        const bool last = --r->refs_ == 0;
        r->m_.unlock();
        if (last) delete r;
        return nullptr;
    }

    pool_mutex m_;
    child_id id_;
    loop_base* loop_;
    void* owner_;
    done_fn done_;
    int refs_;
};

// One child: alive while a process handle holds it or it is still watched.
class child final : public io_watcher, public loop_resource {
public:
    child(loop_base& loop, child_id id, std::string program) noexcept
        : loop_(&loop), id_(id), program_(std::move(program)) {}

    // Starts watching for the child's end (one reference for the watch): the backend's own
    // way (kqueue's EVFILT_PROC), else a pidfd, else a thread.
    void watch() {
        if (!force_thread_child_watch &&
            net_access::engine(*loop_).watch_process(id_.pid, *this)) {
            by_backend_ = true;
        } else {
            pidfd_ = force_thread_child_watch ? no_descriptor() : open_pidfd(id_);
        }
        if (pidfd_ != no_descriptor()) {
            try {
                net_access::watch(*loop_, descriptor_as_socket(pidfd_), 0, backend::io_read, *this);
            } catch (...) {
                close_descriptor(std::exchange(pidfd_, no_descriptor()));
            }
        }
        if (!by_backend_ && pidfd_ == no_descriptor()) {
            thread_ = reaper_thread::start(id_, loop_, this, &child::thread_done);
        }
        net_access::add_resource(*loop_, *this);
        watched_ = true;
        ++refs_;
    }

    // Told (on the loop's thread) when the child has exited, after the waiters are woken.
    using exit_hook = void (*)(void* arg) noexcept;
    void set_exit_hook(exit_hook h, void* arg) noexcept {
        hook_ = h;
        hook_arg_ = arg;
    }

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }

    int pid() const noexcept { return id_.pid; }
    const child_id& id() const noexcept { return id_; }
    const std::optional<int>& returncode() const noexcept { return returncode_; }
    event& exited() noexcept { return exited_; }
    loop_base& loop() const noexcept { return *loop_; }

    // The pidfd is readable, or the backend says so: the child has exited.
    void on_io(unsigned) noexcept override {
        if (by_backend_) {
            // Reported once: the backend has dropped its event.
            by_backend_ = false;
            net_access::engine(*loop_).unwatch_process(id_.pid, true);
            int rc = 0;
            reap_child(id_, rc, true);  // it has exited: waitpid returns at once
            finish(rc);
            return;
        }
        int rc = 0;
        if (reap_child(id_, rc, false)) finish(rc);
    }

    std::string describe() const override {
        return concat({"child process ", decimal(id_.pid), " (", program_, ")"});
    }

    void on_loop_close() noexcept override {
        if (!watched_) return;
        stop_watching();
        if (!returncode_) {
            loop_->call_exception_handler(
                {concat({"the event loop closed while ", describe(),
                         " was still running; it is left running, and reaped when it exits"}),
                 nullptr,
                 {}});
            try {
                reaper_thread::start(id_, nullptr, nullptr, nullptr);
            } catch (...) {  // no thread: the child stays a zombie until this process ends
            }
        }
        watched_ = false;
        release();
    }

private:
    ~child() override { close_child_id(id_); }

    static void thread_done(void* self, int rc) noexcept {
        auto* c = static_cast<child*>(self);
        if (c->watched_) c->finish(rc);
    }

    void finish(int rc) noexcept {
        returncode_ = rc;
        stop_watching();
        net_access::remove_resource(*loop_, *this);
        watched_ = false;
        exited_.set();
        if (hook_) hook_(hook_arg_);
        release();  // the watch's reference; a handle may keep the child
    }

    void stop_watching() noexcept {
        if (by_backend_) {
            by_backend_ = false;
            net_access::engine(*loop_).unwatch_process(id_.pid, false);
        }
        if (pidfd_ != no_descriptor()) {
            try {
                net_access::watch(*loop_, descriptor_as_socket(pidfd_), backend::io_read, 0, *this);
            } catch (...) {
            }
            close_descriptor(std::exchange(pidfd_, no_descriptor()));
        }
        if (thread_) std::exchange(thread_, nullptr)->let_go();
    }

    loop_base* loop_;
    child_id id_;
    native_descriptor pidfd_ = no_descriptor();
    reaper_thread* thread_ = nullptr;
    exit_hook hook_ = nullptr;
    void* hook_arg_ = nullptr;
    std::string program_;
    std::optional<int> returncode_;
    event exited_;
    int refs_ = 0;
    bool watched_ = false;
    bool by_backend_ = false;  // the backend reports the exit (watch_process)
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
// end file ioloop/subprocess/child_watch.hpp
// begin file ioloop/subprocess/stdio.hpp
// ioloop: what a child's standard descriptors are (asyncio's stdin=, stdout=, stderr=
// values), and the options of create_subprocess_exec / create_subprocess_shell.
//
//   auto p = co_await ioloop::create_subprocess_exec(
//       "grep", {"-c", "x"}, {.in = ioloop::stdio::pipe, .out = ioloop::stdio::pipe});
#ifndef IOLOOP_SUBPROCESS_STDIO_HPP
#define IOLOOP_SUBPROCESS_STDIO_HPP


#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// One of a child's descriptors 0, 1, 2: inherited from this process (asyncio's None, the
// default), a pipe to this process (asyncio's PIPE: process::in(), out(), err()), /dev/null,
// the child's stdout (for err only: asyncio's STDOUT), or a descriptor of this process
// (stdio(fd): it stays this process's; the child gets a copy).
class stdio {
public:
    enum class kind : unsigned char { inherit, pipe, devnull, to_stdout, descriptor };

    static const stdio inherit;
    static const stdio pipe;
    static const stdio devnull;
    static const stdio to_stdout;

    constexpr stdio() noexcept = default;
    explicit constexpr stdio(native_descriptor fd) noexcept : kind_(kind::descriptor), fd_(fd) {}

    constexpr kind what() const noexcept { return kind_; }
    // The descriptor of stdio(fd); meaningless for the other kinds.
    constexpr native_descriptor descriptor() const noexcept { return fd_; }

private:
    explicit constexpr stdio(kind k) noexcept : kind_(k) {}

    kind kind_ = kind::inherit;
    native_descriptor fd_{};
};

inline const stdio stdio::inherit{stdio::kind::inherit};
inline const stdio stdio::pipe{stdio::kind::pipe};
inline const stdio stdio::devnull{stdio::kind::devnull};
inline const stdio stdio::to_stdout{stdio::kind::to_stdout};

namespace detail {

// A child's arguments, as create_subprocess_exec takes them: a braced list of strings
// ({"-c", "x"}) or a std::vector<std::string>. Not a std::vector parameter: g++ 12 cannot
// compile a co_await expression that holds a std::initializer_list ("array used as
// initializer"), and `co_await create_subprocess_exec("grep", {"-c", "x"})` is how it is
// written. A braced list reaches the variadic constructor instead, which makes no array.
class arg_list {
public:
    arg_list() = default;
    arg_list(std::vector<std::string> v) : v_(std::move(v)) {}  // NOLINT: implicit by design
    template <class... S>
    requires(sizeof...(S) > 0 && (std::is_convertible_v<const S&, std::string_view> && ...))
    arg_list(const S&... s) {  // NOLINT: implicit by design
        v_.reserve(sizeof...(S));
        (v_.emplace_back(std::string_view(s)), ...);
    }

    std::vector<std::string>& get() noexcept { return v_; }

private:
    std::vector<std::string> v_;
};

}  // namespace detail

// The options of create_subprocess_exec and create_subprocess_shell, in the order a
// designated initializer names them: {.in = ..., .out = ..., .cwd = ...}.
//
// cwd and env point at the caller's strings, which must live until the call's co_await
// ends (a braced temporary in the co_await expression, as above, always does). They do
// not own them because g++ 12 destroys an aggregate temporary of a co_await expression
// twice when it holds memory of its own: `{.cwd = std::string(...)}` would be freed twice.
struct subprocess_options {
    stdio in{};
    stdio out{};
    stdio err{};
    const char* cwd = nullptr;  // null: this process's working directory
    // Set: the child's whole environment ("NAME=value" each), replacing this process's;
    // null: the child inherits it. The program is looked up on this process's PATH either
    // way.
    const std::vector<std::string>* env = nullptr;
    std::size_t limit = stream_default_limit;  // of the out() and err() readers
    // The child starts a session of its own (setsid): its own process group, whose
    // id is its pid, so that killpg(pid, sig) reaches what it starts too (Popen's
    // start_new_session, which asyncio passes on).
    bool start_new_session = false;
};

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/subprocess/stdio.hpp

#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

class process;

namespace detail {
struct spawned;
class subprocess_pipes;
// Templates only so that a program that starts no child does not compile them (a
// coroutine's body is transformed where it is defined: 0.17 s of every -O0 compile).
template <class = void>
coro<process> start_process(std::string program, std::vector<std::string> args, bool shell,
                            subprocess_options options, const char* what);
template <class = void>
void spawn_process(spawned& out, loop_base& loop, std::string& program,
                   std::vector<std::string>& args, bool shell, subprocess_options& options,
                   const char* what);
}  // namespace detail

// A child process (asyncio's asyncio.subprocess.Process). Move-only; dropping it leaves the
// child running, still reaped by its loop when it exits.
class process {
public:
    process() noexcept = default;
    process(process&& other) noexcept
        : child_(std::exchange(other.child_, nullptr)),
          in_(std::move(other.in_)),
          out_(std::move(other.out_)),
          err_(std::move(other.err_)) {}
    process& operator=(process&& other) noexcept {
        if (this != &other) {
            drop();
            child_ = std::exchange(other.child_, nullptr);
            in_ = std::move(other.in_);
            out_ = std::move(other.out_);
            err_ = std::move(other.err_);
        }
        return *this;
    }
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    ~process() { drop(); }

    int pid() const { return child("pid").pid(); }

    // The exit code once the child has exited (and the loop has seen it), -N if signal N
    // ended it; empty while it runs.
    std::optional<int> returncode() const { return child("returncode").returncode(); }

    // co_await p.wait() -> the returncode, once the child has exited. Any number of tasks
    // may wait; cancelling one (cancelled_error) does not touch the child.
    template <class = void>  // a template: compiled only where it is used (see above)
    [[nodiscard]] coro<int> wait() {
        detail::child& c = child("wait");
        c.add_ref();
        return wait_on(&c);
    }

    // co_await p.communicate(input) -> {stdout, stderr}: writes input to in() and closes
    // it, reads out() and err() to EOF meanwhile (no deadlock however much the child
    // writes first), then waits for the child. A stream that is not a pipe gives "" (input
    // to a child whose in is not a pipe is an invalid_state_error). A child that exits
    // without reading all of its input is not an error (asyncio ignores the broken pipe).
    template <class = void>
    [[nodiscard]] coro<std::pair<std::string, std::string>> communicate(std::string input = {}) {
        detail::child& c = child("communicate");
        if (!input.empty() && !in_) {
            throw invalid_state_error("communicate: input given, but the child's in is not a pipe");
        }
        c.add_ref();
        return communicate_on(&c, std::move(input), in_ ? clone(in_) : stream_writer(),
                              out_ ? clone(out_) : stream_reader(),
                              err_ ? clone(err_) : stream_reader());
    }

    // Sends the signal; on a child that has exited, nothing happens (asyncio 3.12). On
    // Windows, as asyncio there: SIGTERM is TerminateProcess (returncode 1), CTRL_C_EVENT
    // and CTRL_BREAK_EVENT go to the child's process group, and any other number is a
    // std::invalid_argument (asyncio's ValueError), whether the child runs or not.
    void send_signal(int sig) {
        detail::child& c = child("send_signal");
        detail::check_signal(sig, "send_signal");
        if (!c.returncode()) detail::signal_child(c.id(), sig);
    }
    // SIGTERM on POSIX (returncode -SIGTERM); on Windows TerminateProcess (returncode 1).
    void terminate() { send_signal(detail::terminate_signal); }
    // SIGKILL on POSIX (returncode -SIGKILL); on Windows the same as terminate().
    void kill() { send_signal(detail::kill_signal); }

    // The child's descriptors that are pipes (stdio::pipe); any other is an
    // invalid_state_error (asyncio's proc.stdin is None then).
    stream_writer& in() { return pipe_end(in_, "in"); }
    stream_reader& out() { return pipe_end(out_, "out"); }
    stream_reader& err() { return pipe_end(err_, "err"); }

private:
    friend class detail::subprocess_pipes;
    template <class>
    friend coro<process> detail::start_process(std::string, std::vector<std::string>, bool,
                                               subprocess_options, const char*);
    template <class>
    friend void detail::spawn_process(detail::spawned&, loop_base&, std::string&,
                                      std::vector<std::string>&, bool, subprocess_options&,
                                      const char*);

    detail::child& child(const char* what) const {
        if (!child_) {
            throw invalid_state_error(detail::concat({what, ": the process handle is empty"}));
        }
        return *child_;
    }

    template <class Handle>
    static Handle& pipe_end(Handle& h, const char* name) {
        if (!h) {
            throw invalid_state_error(
                detail::concat({"process::", name, "(): the child's ", name, " is not a pipe"}));
        }
        return h;
    }

    // A second handle to the same stream: communicate's coroutine keeps its own, so that it
    // does not depend on the process object staying where it is.
    static stream_writer clone(stream_writer& w) {
        return stream_writer(detail::stream_access::protocol_of(w));
    }
    static stream_reader clone(stream_reader& r) {
        return stream_reader(detail::stream_access::protocol_of(r));
    }

    // The reference wait() and communicate() took, given back when their coroutine ends.
    struct child_hold {
        detail::child* c;
        ~child_hold() { c->release(); }
    };

    template <class = void>
    static coro<int> wait_on(detail::child* c) {
        const child_hold hold{c};
        co_await c->exited().wait();
        co_return *c->returncode();
    }

    template <class = void>
    static coro<void> feed(stream_writer in, std::string input) {
        if (!in) co_return;
        try {
            if (!input.empty()) {
                in.write(input);
                co_await in.drain();
            }
        } catch (const std::system_error&) {
            // The child closed its stdin first (EPIPE, reset): what it did not read is not
            // an error, as in asyncio.
        }
        in.close();
    }

    template <class = void>
    static coro<std::string> drain_all(stream_reader r) {
        if (!r) co_return std::string();
        co_return co_await r.read();
    }

    template <class = void>
    static coro<std::pair<std::string, std::string>> communicate_on(detail::child* c,
                                                                    std::string input,
                                                                    stream_writer in,
                                                                    stream_reader out,
                                                                    stream_reader err) {
        const child_hold hold{c};
        auto [fed, o, e] = co_await gather(feed(std::move(in), std::move(input)),
                                           drain_all(std::move(out)), drain_all(std::move(err)));
        (void)fed;
        co_await c->exited().wait();
        co_return std::pair<std::string, std::string>(std::move(o), std::move(e));
    }

    void drop() noexcept {
        if (child_) std::exchange(child_, nullptr)->release();
    }

    detail::child* child_ = nullptr;
    stream_writer in_;
    stream_reader out_;
    stream_reader err_;
};

namespace detail {

// What start_process has once the child runs: the process, and this process's ends of
// the child's pipes, still to be made streams.
struct spawned {
    process p;
    owned_descriptor ours[3];
};

// The synchronous part of start_process (a plain function: g++ 12 cannot keep arrays in a
// coroutine's frame).
template <class>
void spawn_process(spawned& out, loop_base& loop, std::string& program,
                   std::vector<std::string>& args, bool shell, subprocess_options& options,
                   const char* what) {
    if (options.in.what() == stdio::kind::pipe || options.out.what() == stdio::kind::pipe ||
        options.err.what() == stdio::kind::pipe) {
        check_pipes_possible(loop, what);  // before a child starts with pipes nobody can use
    }
    // The child's ends: closed here once the child has its copies.
    owned_descriptor child_end[3];
    spawn_request req;
    const stdio* choice[3] = {&options.in, &options.out, &options.err};
    for (int i = 0; i < 3; ++i) {
        switch (choice[i]->what()) {
            case stdio::kind::inherit:
                break;
            case stdio::kind::pipe: {
                native_descriptor ours = no_descriptor();
                native_descriptor childs = no_descriptor();
                make_child_pipe(ours, childs, i == 0, what);
                out.ours[i] = owned_descriptor(ours);
                child_end[i] = owned_descriptor(childs);
                req.child_fds[i] = childs;
                break;
            }
            case stdio::kind::devnull:
                child_end[i] = owned_descriptor(open_devnull(what));
                req.child_fds[i] = child_end[i].get();
                break;
            case stdio::kind::to_stdout:  // err only (check_options)
                req.err_to_out = true;
                break;
            case stdio::kind::descriptor:
                req.child_fds[i] = choice[i]->descriptor();
                break;
        }
    }
    req.program = &program;
    req.args = &args;
    req.shell = shell;
    req.env = options.env;
    req.cwd = options.cwd;
    req.new_session = options.start_new_session;

    const child_id id = spawn_child(req);
    // From here the child runs: it is watched (and so reaped) whatever happens next.
    auto* c = new child(loop, id, program);
    c->add_ref();  // the handle's
    out.p.child_ = c;
    try {
        c->watch();
    } catch (...) {
        // No way to learn of its end: better no child than a zombie nobody waits for.
        signal_child(id, kill_signal);
        int rc = 0;
        reap_child(id, rc, true);
        throw;
    }
}

template <class>
coro<process> start_process(std::string program, std::vector<std::string> args, bool shell,
                            subprocess_options options, const char* what) {
    loop_base& loop = loop_access::running_or_throw(what);
    spawned s;
    spawn_process(s, loop, program, args, shell, options, what);
    if (s.ours[0].get() != no_descriptor()) s.p.in_ = co_await connect_write_pipe(s.ours[0].release());
    if (s.ours[1].get() != no_descriptor()) {
        s.p.out_ = co_await connect_read_pipe(s.ours[1].release(), options.limit);
    }
    if (s.ours[2].get() != no_descriptor()) {
        s.p.err_ = co_await connect_read_pipe(s.ours[2].release(), options.limit);
    }
    co_return std::move(s.p);
}

// What is wrong with the options is an error of the call, before any child starts.
inline void check_options(const subprocess_options& o, const char* what) {
    check_stream_limit(o.limit, what);
    if (o.in.what() == stdio::kind::to_stdout || o.out.what() == stdio::kind::to_stdout) {
        throw std::invalid_argument(concat({what, ": stdio::to_stdout is for err only"}));
    }
}

}  // namespace detail

// co_await create_subprocess_exec(program, args, options) -> process (asyncio's
// create_subprocess_exec): program is looked up on PATH as execvp does (on Windows as
// CreateProcessW does, and the arguments quoted as the C runtime splits them: see
// detail/spawn_windows.hpp); one that cannot start is a std::system_error from this call
// (errc::no_such_file_or_directory, permission_denied...), never a child that exits 127.
template <class = void>  // a template: compiled only where it is used
coro<process> create_subprocess_exec(std::string program, detail::arg_list args = {},
                                     const subprocess_options& options = {}) {
    detail::check_options(options, "create_subprocess_exec");
    return detail::start_process(std::move(program), std::move(args.get()), false, options,
                                 "create_subprocess_exec");
}

// co_await create_subprocess_shell(cmd, options) -> process: cmd run by `/bin/sh -c` (POSIX)
// or `cmd.exe /c` (Windows: %ComSpec% when set; the command passed as it is, in quotes).
template <class = void>
coro<process> create_subprocess_shell(std::string cmd, const subprocess_options& options = {}) {
    detail::check_options(options, "create_subprocess_shell");
    std::vector<std::string> args;
    args.push_back(std::move(cmd));
    return detail::start_process(detail::shell_program(), std::move(args), true, options,
                                 "create_subprocess_shell");
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/subprocess/process.hpp
// begin file ioloop/subprocess/subprocess_transport.hpp
// ioloop: asyncio's subprocess API on the callback front end: loop.subprocess_exec /
// subprocess_shell, subprocess_protocol and subprocess_transport.
//
//   auto [t, p] = co_await loop.subprocess_exec(factory, "ls", {"-l"}, {.out = stdio::pipe});
//
// The order of the protocol's calls is asyncio's: connection_made first; then, as they
// happen, pipe_data_received(fd, data), pipe_connection_lost(fd, error) and
// process_exited(); connection_lost last, once the child has exited and every pipe is
// closed. Each pipe is an ordinary pipe transport (get_pipe_transport(fd)) whose protocol
// forwards to this one; pause_writing / resume_writing come from the stdin pipe.
#ifndef IOLOOP_SUBPROCESS_SUBPROCESS_TRANSPORT_HPP
#define IOLOOP_SUBPROCESS_SUBPROCESS_TRANSPORT_HPP


#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// asyncio's SubprocessTransport. Valid from connection_made until connection_lost returns.
class subprocess_transport {
public:
    virtual int get_pid() const = 0;
    // The exit code once the child has exited, -N if signal N ended it; empty before.
    virtual std::optional<int> get_returncode() const = 0;
    // The pipe transport of the child's fd (0, 1 or 2), or null: not a pipe, or closed.
    virtual transport* get_pipe_transport(int fd) const = 0;
    // On an exited child, nothing happens.
    virtual void send_signal(int sig) = 0;
    void terminate() { send_signal(detail::terminate_signal); }
    void kill() { send_signal(detail::kill_signal); }
    // Closes the pipes, and kills the child if it still runs (as asyncio).
    virtual void close() = 0;
    virtual bool is_closing() const = 0;

protected:
    subprocess_transport() = default;
    subprocess_transport(const subprocess_transport&) = delete;
    subprocess_transport& operator=(const subprocess_transport&) = delete;
    ~subprocess_transport() = default;
};

// asyncio's SubprocessProtocol (pause_writing / resume_writing and connection_lost are
// base_protocol's).
class subprocess_protocol : public base_protocol {
public:
    virtual void connection_made(subprocess_transport& t) { (void)t; }
    // Bytes the child wrote on fd 1 or 2. The view points into a buffer the loop reuses.
    virtual void pipe_data_received(int fd, std::string_view data) {
        (void)fd;
        (void)data;
    }
    // The pipe of fd (0, 1 or 2) is closed; an error says why, if there was one.
    virtual void pipe_connection_lost(int fd, std::error_code ec) {
        (void)fd;
        (void)ec;
    }
    virtual void process_exited() {}
};

namespace detail {

// The subprocess transport: the child, its pipes, the user's protocol. Freed after
// connection_lost, or without a callback when the loop closes.
class subprocess_pipes final : public subprocess_transport, public loop_resource {
public:
    // The protocol of one pipe: forwards to the subprocess protocol.
    class pipe_end final : public protocol {
    public:
        pipe_end(subprocess_pipes& owner, int fd) noexcept : owner_(owner), fd_(fd) {}
        void connection_made(transport& t) override { owner_.pipes_[fd_] = &t; }
        void data_received(std::string_view data) override {
            owner_.call("pipe_data_received", [&] { owner_.proto_->pipe_data_received(fd_, data); });
        }
        void connection_lost(std::error_code ec) override { owner_.pipe_lost(fd_, ec); }
        void pause_writing() override {
            owner_.call("pause_writing", [&] { owner_.proto_->pause_writing(); });
        }
        void resume_writing() override {
            owner_.call("resume_writing", [&] { owner_.proto_->resume_writing(); });
        }

    private:
        subprocess_pipes& owner_;
        int fd_;
    };

    subprocess_pipes(loop_base& loop, process p, std::unique_ptr<subprocess_protocol> proto)
        : loop_(loop), process_(std::move(p)), proto_(std::move(proto)) {
        net_access::add_resource(loop_, *this);
        child_().set_exit_hook(&subprocess_pipes::exited, this);
    }

    // The pipes are connected: the protocol hears of the transport, then of what happened
    // meanwhile (nothing can: no iteration ran since the child started).
    void made() {
        made_ = true;
        call("connection_made", [&] { proto_->connection_made(*this); });
        try_finish();
    }

    int get_pid() const override { return child_().pid(); }
    std::optional<int> get_returncode() const override { return child_().returncode(); }
    transport* get_pipe_transport(int fd) const override {
        return fd >= 0 && fd < 3 ? pipes_[fd] : nullptr;
    }
    void send_signal(int sig) override {
        check_signal(sig, "send_signal");
        if (!child_().returncode()) signal_child(child_().id(), sig);
    }
    void close() override {
        if (closing_) return;
        closing_ = true;
        for (transport* t : pipes_) {
            if (t) t->close();
        }
        if (!child_().returncode()) signal_child(child_().id(), kill_signal);
    }
    bool is_closing() const override { return closing_; }

    // The pipes could not all be connected (the call throws): the protocol, which never
    // heard of the transport, hears nothing more; the child is killed, and the transport
    // goes once it has been reaped and its pipes are closed.
    void abandon() noexcept {
        silent_ = true;
        made_ = true;
        close();
    }

    void on_loop_close() noexcept override {
        child_().set_exit_hook(nullptr, nullptr);
        delete this;  // the pipes' transports are closed by the loop too, with no callback
    }

    ~subprocess_pipes() override = default;

private:
    child& child_() const { return *process_.child_; }

    template <class F>
    void call(const char* hook, F&& f) noexcept {
        if (silent_) return;
        try {
            f();
        } catch (...) {
            report_protocol_error(loop_, hook);
        }
    }

    static void exited(void* self) noexcept {
        auto* s = static_cast<subprocess_pipes*>(self);
        s->child_().set_exit_hook(nullptr, nullptr);
        // From the poll step (or a posted callback): the protocol hears of it on its own.
        try {
            loop_access::post(s->loop_, [s] {
                s->exit_told_ = true;
                s->call("process_exited", [s] { s->proto_->process_exited(); });
                s->try_finish();
            });
        } catch (...) {  // the loop is closing: on_loop_close frees it
        }
    }

    void pipe_lost(int fd, std::error_code ec) noexcept {
        pipes_[fd] = nullptr;
        call("pipe_connection_lost", [&] { proto_->pipe_connection_lost(fd, ec); });
        try_finish();
    }

    // connection_lost once the child has exited and every pipe is closed.
    void try_finish() noexcept {
        if (!made_ || !exit_told_ || finished_) return;
        for (transport* t : pipes_) {
            if (t) return;
        }
        finished_ = true;
        net_access::remove_resource(loop_, *this);
        call("connection_lost", [&] { proto_->connection_lost({}); });
        delete this;
    }

    loop_base& loop_;
    process process_;
    std::unique_ptr<subprocess_protocol> proto_;
    transport* pipes_[3] = {};
    bool made_ = false;
    bool exit_told_ = false;
    bool closing_ = false;
    bool finished_ = false;
    bool silent_ = false;  // abandon()ed

    friend class pipe_end;
};

// Factories for the pipes' transports.
struct pipe_end_factory {
    subprocess_pipes* owner;
    int fd;
    std::unique_ptr<subprocess_pipes::pipe_end> operator()() const {
        return std::make_unique<subprocess_pipes::pipe_end>(*owner, fd);
    }
};

template <class P, class Factory>
coro<std::pair<subprocess_transport*, P*>> subprocess_call(loop_base& loop, Factory factory,
                                                          std::string program,
                                                          std::vector<std::string> args,
                                                          bool shell, subprocess_options options,
                                                          const char* what) {
    // The child's pipes as plain descriptors: this layer makes its own transports.
    spawned s;
    spawn_process(s, loop, program, args, shell, options, what);
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    auto* t = new subprocess_pipes(loop, std::move(s.p), std::move(proto));
    // From here the transport owns the pipes: a failure closes what is connected.
    try {
        if (s.ours[0].get() != no_descriptor()) {
            co_await loop.connect_write_pipe(pipe_end_factory{t, 0}, s.ours[0].release());
        }
        for (int fd = 1; fd < 3; ++fd) {
            if (s.ours[fd].get() != no_descriptor()) {
                co_await loop.connect_read_pipe(pipe_end_factory{t, fd}, s.ours[fd].release());
            }
        }
    } catch (...) {
        t->abandon();
        throw;
    }
    t->made();
    co_return std::pair<subprocess_transport*, P*>(t, p);
}

}  // namespace detail

// co_await loop.subprocess_exec(factory, program, args, options) ->
// std::pair<subprocess_transport*, P*> (asyncio's loop.subprocess_exec); P derives from
// subprocess_protocol. Errors as create_subprocess_exec's.
template <class Factory>
coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> loop_base::subprocess_exec(
    Factory factory, std::string program, detail::arg_list args,
    const subprocess_options& options) {
    static_assert(std::is_base_of_v<subprocess_protocol, detail::protocol_of<Factory>>,
                  "subprocess_exec: the factory must make a subprocess_protocol");
    detail::check_options(options, "subprocess_exec");
    detail::net_access::check_open(*this, "subprocess_exec");
    return detail::subprocess_call<detail::protocol_of<Factory>>(
        *this, std::move(factory), std::move(program), std::move(args.get()), false, options,
        "subprocess_exec");
}

// co_await loop.subprocess_shell(factory, cmd, options): cmd run as create_subprocess_shell
// runs it (/bin/sh -c; cmd.exe /c on Windows).
template <class Factory>
coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> loop_base::subprocess_shell(
    Factory factory, std::string cmd, const subprocess_options& options) {
    static_assert(std::is_base_of_v<subprocess_protocol, detail::protocol_of<Factory>>,
                  "subprocess_shell: the factory must make a subprocess_protocol");
    detail::check_options(options, "subprocess_shell");
    detail::net_access::check_open(*this, "subprocess_shell");
    std::vector<std::string> args;
    args.push_back(std::move(cmd));
    return detail::subprocess_call<detail::protocol_of<Factory>>(
        *this, std::move(factory), detail::shell_program(), std::move(args), true, options,
        "subprocess_shell");
}

IOLOOP_NAMESPACE_END

#endif
// end file ioloop/subprocess/subprocess_transport.hpp

// begin file ioloop/detail/macro_unscope.hpp
// ioloop: the internal macros end here (nlohmann/json's macro_unscope), at the end of
// <ioloop/ioloop.hpp> and of <ioloop/ssl.hpp>; IOLOOP_HAS_*, IOLOOP_DEFAULT_BACKEND and the
// version stay. No include guard: it is meant to be included again.
// IWYU pragma: private
#undef IOLOOP_NOINLINE
#undef IOLOOP_ALWAYS_INLINE
#undef IOLOOP_PREFETCH
#undef IOLOOP_NAMESPACE_BEGIN
#undef IOLOOP_NAMESPACE_END
#undef IOLOOP_ABI_TAG
#undef IOLOOP_ABI_CONCAT
#undef IOLOOP_ABI_CONCAT_

// end file ioloop/detail/macro_unscope.hpp

#endif
// end file ioloop/ioloop.hpp
