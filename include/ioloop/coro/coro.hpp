// ioloop: coro<T>, a coroutine function's result (asyncio's coroutine object). Lazy:
// nothing runs until it is awaited, which runs it inline in the awaiting task, or until
// it becomes a task. A coroutine that finishes without suspending hands control straight
// back to its awaiter (await_suspend returns false), and one that finishes later passes
// control on by symmetric transfer: a million sequential awaits do not grow the stack,
// even where the compiler does not turn symmetric transfer into a tail call (g++ -O0).
#ifndef IOLOOP_CORO_CORO_HPP
#define IOLOOP_CORO_CORO_HPP

#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/result_value.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/recycler.hpp"
#include "ioloop/loop_base.hpp"

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
