// ioloop: the loop template and its default alias (like nlohmann's basic_json / json).
#ifndef IOLOOP_FWD_HPP
#define IOLOOP_FWD_HPP

#include "ioloop/backend/default.hpp"
#include "ioloop/detail/config.hpp"

IOLOOP_NAMESPACE_BEGIN

template <class Backend>
class basic_event_loop;

// The loop on this platform's best backend, or the one an IOLOOP_BACKEND_* macro named.
using event_loop = basic_event_loop<default_backend>;

IOLOOP_NAMESPACE_END

#endif
