// ioloop: default_backend, from the one selection ladder in detail/config.hpp.
#ifndef IOLOOP_BACKEND_DEFAULT_HPP
#define IOLOOP_BACKEND_DEFAULT_HPP

#include "ioloop/backend/epoll.hpp"
#include "ioloop/backend/iocp.hpp"
#include "ioloop/backend/kqueue.hpp"
#include "ioloop/backend/poll.hpp"
#include "ioloop/backend/select.hpp"
#include "ioloop/backend/select_winsock.hpp"
#include "ioloop/detail/config.hpp"

IOLOOP_NAMESPACE_BEGIN

using default_backend = backend::IOLOOP_DEFAULT_BACKEND;

IOLOOP_NAMESPACE_END

#endif
