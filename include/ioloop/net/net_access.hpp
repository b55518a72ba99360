// ioloop: what the networking layer reaches inside a loop_base: the backend's readiness
// registration, the shared read buffer and the list of resources closed with the loop.
#ifndef IOLOOP_NET_NET_ACCESS_HPP
#define IOLOOP_NET_NET_ACCESS_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <cstddef>
#include <span>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct net_access {
    // How much one read takes at most: libuv's 64 KiB.
    static constexpr std::size_t read_buffer_size = 64 * 1024;

    static bool has_readiness(const loop_base& l) noexcept { return l.watch_io_ != nullptr; }

    // Registers w for fd's events, going from `old_events` to `new_events` (0 unwatches).
    static void watch(loop_base& l, native_socket fd, unsigned old_events, unsigned new_events,
                      io_watcher& w) {
        l.watch_io_(&l, fd, old_events, new_events, &w);
    }

    // Where every transport of the loop reads into: an idle connection holds no buffer.
    static std::span<char> read_buffer(loop_base& l) {
        if (!l.read_buffer_) l.read_buffer_ = new char[read_buffer_size];
        return {l.read_buffer_, read_buffer_size};
    }

    // A completion backend: sends s's completions to the loop, and counts the operations
    // in flight (the loop polls while there is one, and drains them when it closes).
    static void associate(loop_base& l, native_socket s) { l.associate_io_(&l, s); }
    static std::uint64_t port_id(const loop_base& l) noexcept { return l.port_id_; }
    static void operation_started(loop_base& l) noexcept { ++l.pending_ops_; }
    // An operation that failed to start, so no completion will come.
    static void operation_not_started(loop_base& l) noexcept { --l.pending_ops_; }

    static void add_resource(loop_base& l, loop_resource& r) noexcept { l.resources_.add(r); }
    static void remove_resource(loop_base& l, loop_resource& r) noexcept { l.resources_.remove(r); }

    static void check_open(const loop_base& l, const char* what) { l.check_open(what); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
