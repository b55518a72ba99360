// ioloop: the untyped part of every future and task (asyncio's Future): its state, the
// exception it ended with, and the list of what waits for it. Futures live on their
// loop's thread, so the reference count and the list need no atomics.
#ifndef IOLOOP_CORO_FUTURE_BASE_HPP
#define IOLOOP_CORO_FUTURE_BASE_HPP

#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/recycler.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/exception_context.hpp"
#include "ioloop/loop_base.hpp"

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
