// ioloop: where a callback was scheduled. std::source_location needs a compiler builtin
// that Clang 14 lacks with libstdc++; __builtin_FILE/__builtin_LINE work on GCC, Clang
// and MSVC, evaluated at the caller when used as default arguments.
#ifndef IOLOOP_DETAIL_SOURCE_LOCATION_HPP
#define IOLOOP_DETAIL_SOURCE_LOCATION_HPP

#include "ioloop/detail/config.hpp"

#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct source_location {
    const char* file = "";
    std::size_t line = 0;  // as wide as a pointer: no padding, so it travels in registers

    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             std::size_t line = __builtin_LINE()) noexcept {
        return {file, line};
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
