// ioloop: the queue that call_soon_threadsafe pushes into from any thread. Lock-free:
// producers push onto an atomic stack, the loop takes the whole stack at once and
// reverses it, so callbacks still run in the order they were pushed. Only the push that
// finds the queue empty needs to wake the loop: the others know a wakeup is under way.
#ifndef IOLOOP_DETAIL_REMOTE_QUEUE_HPP
#define IOLOOP_DETAIL_REMOTE_QUEUE_HPP

#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"

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
