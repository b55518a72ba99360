// ioloop: the library's own errors. OS failures are std::system_error with the OS's
// std::error_code; misuse of the library (a closed loop, a running loop) is ioloop::error.
#ifndef IOLOOP_ERRORS_HPP
#define IOLOOP_ERRORS_HPP

#include "ioloop/detail/config.hpp"

#include <stdexcept>

IOLOOP_NAMESPACE_BEGIN

// Base of every error the library itself raises.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The operation is not allowed in the object's current state (asyncio's
// InvalidStateError, and its RuntimeError for closed or already running loops).
class invalid_state_error : public error {
public:
    using error::error;
};

IOLOOP_NAMESPACE_END

#endif
