// ioloop: the slot where a coroutine, a task or a future keeps its result until it is
// read. Empty until set; no <optional>, and a void result is only a flag.
#ifndef IOLOOP_CORO_RESULT_VALUE_HPP
#define IOLOOP_CORO_RESULT_VALUE_HPP

#include "ioloop/detail/config.hpp"

#include <new>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class result_value {
    static_assert(!std::is_reference_v<T>, "ioloop: coro<T&> is not supported; return a pointer");

public:
    result_value() noexcept {}
    result_value(const result_value&) = delete;
    result_value& operator=(const result_value&) = delete;
    ~result_value() { reset(); }

    template <class U>
    void set(U&& v) {
        reset();
        ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
        has_ = true;
    }

    bool has_value() const noexcept { return has_; }
    T& get() noexcept { return value_; }

    void reset() noexcept {
        if (has_) {
            value_.~T();
            has_ = false;
        }
    }

private:
    union {
        T value_;
    };
    bool has_ = false;
};

template <>
class result_value<void> {
public:
    void set() noexcept { has_ = true; }
    bool has_value() const noexcept { return has_; }
    void get() noexcept {}
    void reset() noexcept { has_ = false; }

private:
    bool has_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
