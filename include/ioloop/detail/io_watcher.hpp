// ioloop: what a readiness backend reports events to (io_watcher), and what a loop closes
// when it closes (loop_resource: transports, servers). A transport or a listener is its
// own io_watcher, so an event reaches it with no lookup and no allocation.
#ifndef IOLOOP_DETAIL_IO_WATCHER_HPP
#define IOLOOP_DETAIL_IO_WATCHER_HPP

#include "ioloop/detail/config.hpp"

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
