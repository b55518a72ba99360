// ioloop: what the networking layer reaches inside a loop_base: its I/O engine (the
// backend family's way to move bytes, net/io_engine.hpp), its checks and its queues.
#ifndef IOLOOP_NET_NET_ACCESS_HPP
#define IOLOOP_NET_NET_ACCESS_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/io_engine.hpp"

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
