// ioloop: what the loop hands its exception handler (asyncio's context dict).
#ifndef IOLOOP_EXCEPTION_CONTEXT_HPP
#define IOLOOP_EXCEPTION_CONTEXT_HPP

#include "ioloop/detail/config.hpp"

#include <exception>
#include <string>

IOLOOP_NAMESPACE_BEGIN

struct exception_context {
    std::string message;           // what happened, always set
    std::exception_ptr exception;  // the exception, when one escaped
    std::string callback;          // the callback involved and where it was scheduled, if any
};

IOLOOP_NAMESPACE_END

#endif
