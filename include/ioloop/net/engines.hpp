// ioloop: the one place that knows the backend families. engine_of<Backend> names the
// I/O engine a basic_event_loop<Backend> owns (declared in event_loop.hpp): a readiness
// backend gets the reactive engine, a completion backend (IOCP) the overlapped one. And
// with_family(loop, f) hands f the operations of loop's family (reactive_ops or
// iocp_ops): the networking layer above is compiled once for every backend, so it asks
// here, at run time, and nowhere else. A new family (io_uring) is one more engine, one
// more ops, and one more line in each of the two.
#ifndef IOLOOP_NET_ENGINES_HPP
#define IOLOOP_NET_ENGINES_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/descriptor_check.hpp"
#include "ioloop/net/io_engine.hpp"
#include "ioloop/net/iocp/engine.hpp"
#include "ioloop/net/iocp/ops.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/reactive/engine.hpp"
#include "ioloop/net/reactive/ops.hpp"

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
