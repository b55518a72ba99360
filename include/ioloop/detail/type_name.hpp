// ioloop: the name of a type as the compiler spells it, without RTTI, for debug reports.
#ifndef IOLOOP_DETAIL_TYPE_NAME_HPP
#define IOLOOP_DETAIL_TYPE_NAME_HPP

#include "ioloop/detail/config.hpp"

#include <string_view>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The compiler writes T into the signature of this function; cut it out of there.
template <class T>
constexpr std::string_view type_name() noexcept {
#if defined(__clang__) || defined(__GNUC__)
    std::string_view s = __PRETTY_FUNCTION__;
    const std::string_view key = "T = ";
    const auto start = s.find(key);
    if (start == std::string_view::npos) return s;
    s.remove_prefix(start + key.size());
    const auto end = s.find_first_of(";]");
    return s.substr(0, end);
#elif defined(_MSC_VER)
    std::string_view s = __FUNCSIG__;
    const auto start = s.find("type_name<");
    if (start == std::string_view::npos) return s;
    s.remove_prefix(start + 10);
    return s.substr(0, s.rfind(">(void)"));
#else
    return "callable";
#endif
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
