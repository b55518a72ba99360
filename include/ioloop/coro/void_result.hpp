// ioloop: void_result, a void child's place among the results of a combinator: gather's
// tuple or vector (Python's None in gather's list), race's variant.
#ifndef IOLOOP_CORO_VOID_RESULT_HPP
#define IOLOOP_CORO_VOID_RESULT_HPP

#include "ioloop/detail/config.hpp"

#include <type_traits>

IOLOOP_NAMESPACE_BEGIN

struct void_result {
    friend constexpr bool operator==(void_result, void_result) noexcept { return true; }
};

namespace detail {

template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, void_result, T>;

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
