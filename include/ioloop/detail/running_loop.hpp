// ioloop: which loop runs on this thread, so a second loop cannot be run inside the first
// (asyncio: "Cannot run the event loop while another loop is running").
#ifndef IOLOOP_DETAIL_RUNNING_LOOP_HPP
#define IOLOOP_DETAIL_RUNNING_LOOP_HPP

#include "ioloop/detail/config.hpp"

IOLOOP_NAMESPACE_BEGIN
namespace detail {

inline thread_local const void* running_loop = nullptr;

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
