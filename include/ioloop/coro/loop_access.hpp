// ioloop: what the coroutine front end reaches inside a loop_base (its running loop, its
// task list, its executor), kept out of the loop's public interface.
#ifndef IOLOOP_CORO_LOOP_ACCESS_HPP
#define IOLOOP_CORO_LOOP_ACCESS_HPP

#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/source_location.hpp"
#include "ioloop/detail/task_registry.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/executor.hpp"
#include "ioloop/loop_base.hpp"

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
