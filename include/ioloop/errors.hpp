// ioloop: the library's own errors. OS failures are std::system_error with the OS's
// std::error_code; misuse of the library (a closed loop, a running loop) is ioloop::error.
#ifndef IOLOOP_ERRORS_HPP
#define IOLOOP_ERRORS_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// The stream ended before a read got what it asked for (asyncio.IncompleteReadError):
// readexactly(n) before n bytes, readuntil(sep) before the separator. partial() holds the
// bytes that were read, which the stream no longer has.
class incomplete_read_error : public error {
public:
    // expected() when the read had no length to reach (readuntil: asyncio's None).
    static constexpr std::size_t unknown = static_cast<std::size_t>(-1);

    incomplete_read_error(std::string partial, std::size_t expected)
        : error(describe(partial.size(), expected)),
          partial_(std::move(partial)),
          expected_(expected) {}

    const std::string& partial() const noexcept { return partial_; }
    std::string& partial() noexcept { return partial_; }
    std::size_t expected() const noexcept { return expected_; }

private:
    // asyncio's "3 bytes read on a total of 5 expected bytes".
    static std::string describe(std::size_t got, std::size_t expected) {
        const detail::decimal n(static_cast<long long>(got));
        if (expected == unknown) {
            return detail::concat({n, " bytes read on a total of an unknown number of expected "
                                      "bytes (the stream ended before the separator)"});
        }
        return detail::concat({n, " bytes read on a total of ",
                               detail::decimal(static_cast<long long>(expected)),
                               " expected bytes"});
    }

    std::string partial_;
    std::size_t expected_;
};

// readuntil or readline found no separator within the reader's limit, or found one
// farther than the limit (asyncio.LimitOverrunError). consumed() is how many bytes
// are to be consumed: the data stays in the stream (readline drops it, as asyncio's does).
class limit_overrun_error : public error {
public:
    limit_overrun_error(const std::string& message, std::size_t consumed)
        : error(message), consumed_(consumed) {}

    std::size_t consumed() const noexcept { return consumed_; }

private:
    std::size_t consumed_;
};

// A barrier was aborted, or reset while a task waited on it (asyncio.BrokenBarrierError).
class broken_barrier_error : public error {
public:
    broken_barrier_error() : error("the barrier is broken") {}
    using error::error;
};

// loop.sendfile / loop.sock_sendfile with fallback = false where the system cannot send
// the file itself (asyncio's SendfileNotAvailableError): not Linux, a completion backend,
// a transport that is not a plain socket's. With fallback = true the bytes go by reads and
// writes instead, and this is never thrown.
class sendfile_not_available_error : public error {
public:
    using error::error;
};

// Several failures at once: those of a task group's children and of its body, in the
// order they happened (asyncio's ExceptionGroup, as TaskGroup raises it). A single
// failure is a group of one too, so a caller handles one type whatever the count.
class exception_group : public error {
public:
    explicit exception_group(std::vector<std::exception_ptr> exceptions)
        : error(describe(exceptions)), exceptions_(std::move(exceptions)) {}

    const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

private:
    // "unhandled errors in a task group (2 sub-exceptions); the first: <its what()>"
    static std::string describe(const std::vector<std::exception_ptr>& list) {
        const std::size_t n = list.size();
        std::string first;
        if (n != 0 && list.front()) {
            try {
                std::rethrow_exception(list.front());
            } catch (const std::exception& e) {
                first = e.what();
            } catch (...) {
                first = "an exception not derived from std::exception";
            }
        }
        return detail::concat({"unhandled errors in a task group (",
                               detail::decimal(static_cast<long long>(n)),
                               n == 1 ? " sub-exception)" : " sub-exceptions)",
                               first.empty() ? "" : "; the first: ", first});
    }

    std::vector<std::exception_ptr> exceptions_;
};

IOLOOP_NAMESPACE_END

#endif
