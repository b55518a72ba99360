// ioloop: the one place that knows the backend families: engine_of<Backend> names the
// I/O engine a basic_event_loop<Backend> owns (declared in event_loop.hpp). A readiness
// backend gets the reactive engine; a completion backend (IOCP) the overlapped one. A new
// family (io_uring) is one more engine and one more line here.
#ifndef IOLOOP_NET_ENGINES_HPP
#define IOLOOP_NET_ENGINES_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/net/iocp/engine.hpp"
#include "ioloop/net/reactive/engine.hpp"

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

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
