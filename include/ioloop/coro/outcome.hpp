// ioloop: outcome<T>, how a piece of work ended: a value, or the exception it failed with
// (cancelled_error if it was cancelled). gather(return_exceptions, ...) gives one per child,
// where asyncio puts the exception object itself in the list of results. No <variant> or
// <optional>: a union and a flag, like the result slot of a task.
#ifndef IOLOOP_CORO_OUTCOME_HPP
#define IOLOOP_CORO_OUTCOME_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <exception>
#include <new>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void rethrow_outcome_error(const std::exception_ptr& e) {
    if (!e) throw invalid_state_error("outcome: a failure without an exception");
    std::rethrow_exception(e);
}

}  // namespace detail

template <class T>
class outcome {
    static_assert(!std::is_reference_v<T>, "ioloop::outcome holds a value, not a reference");

public:
    // A value, built in place from args.
    template <class... Args>
    explicit outcome(std::in_place_t, Args&&... args) : has_value_(true) {
        ::new (static_cast<void*>(&value_)) T(std::forward<Args>(args)...);
    }

    // A failure.
    explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)) {}

    outcome(const outcome& o) : error_(o.error_), has_value_(o.has_value_) {
        if (has_value_) ::new (static_cast<void*>(&value_)) T(o.value_);
    }
    outcome(outcome&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : error_(std::move(o.error_)), has_value_(o.has_value_) {
        if (has_value_) ::new (static_cast<void*>(&value_)) T(std::move(o.value_));
    }
    outcome& operator=(const outcome& o) {
        if (this != &o) assign(o);
        return *this;
    }
    outcome& operator=(outcome&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
        if (this != &o) assign(std::move(o));
        return *this;
    }
    ~outcome() { destroy(); }

    bool has_value() const noexcept { return has_value_; }
    explicit operator bool() const noexcept { return has_value_; }

    // The value; rethrows the exception if the work failed.
    T& value() & {
        check();
        return value_;
    }
    const T& value() const& {
        check();
        return value_;
    }
    T&& value() && {
        check();
        return std::move(value_);
    }

    // The exception the work failed with; null if it gave a value.
    std::exception_ptr exception() const noexcept { return error_; }

private:
    void check() const {
        if (!has_value_) detail::rethrow_outcome_error(error_);
    }

    void destroy() noexcept {
        if (has_value_) {
            value_.~T();
            has_value_ = false;
        }
    }

    template <class O>
    void assign(O&& o) {
        destroy();
        error_ = o.error_;
        if (o.has_value_) {
            ::new (static_cast<void*>(&value_)) T(std::forward<O>(o).value_);
            has_value_ = true;
        }
    }

    union {
        T value_;
    };
    std::exception_ptr error_;
    bool has_value_ = false;
};

// The outcome of work that gives no value: finished, or the exception it failed with.
template <>
class outcome<void> {
public:
    outcome() noexcept = default;
    explicit outcome(std::in_place_t) noexcept {}
    explicit outcome(std::exception_ptr e) noexcept : error_(std::move(e)), has_value_(false) {}

    bool has_value() const noexcept { return has_value_; }
    explicit operator bool() const noexcept { return has_value_; }

    // Returns if the work finished; rethrows its exception if it failed.
    void value() const {
        if (!has_value_) detail::rethrow_outcome_error(error_);
    }

    std::exception_ptr exception() const noexcept { return error_; }

private:
    std::exception_ptr error_;
    bool has_value_ = true;
};

IOLOOP_NAMESPACE_END

#endif
