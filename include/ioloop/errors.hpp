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

// Thrown at a task's suspension point when the task is cancelled, and by awaiting or
// reading the result of a cancelled task or future (asyncio's CancelledError). A task may
// catch it to clean up; letting it escape marks the task cancelled.
class cancelled_error : public error {
public:
    cancelled_error() : error("the task or future was cancelled") {}
    using error::error;
};

// A deadline passed: wait_for, a timeout scope (asyncio's TimeoutError).
class timeout_error : public error {
public:
    timeout_error() : error("the operation timed out") {}
    using error::error;
};

// get_nowait on an empty queue (asyncio.QueueEmpty).
class queue_empty : public error {
public:
    queue_empty() : error("get_nowait: the queue is empty") {}
    using error::error;
};

// put_nowait on a full queue (asyncio.QueueFull).
class queue_full : public error {
public:
    queue_full() : error("put_nowait: the queue is full") {}
    using error::error;
};

IOLOOP_NAMESPACE_END

#endif
