// ioloop: the loop's list of tasks that have not finished (asyncio's all_tasks()). A task
// is linked from its creation to its completion, and the list's link keeps it alive: a
// task runs even if nobody holds it. At close, the loop abandons what is still linked.
#ifndef IOLOOP_DETAIL_TASK_REGISTRY_HPP
#define IOLOOP_DETAIL_TASK_REGISTRY_HPP

#include "ioloop/detail/config.hpp"

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
