// ioloop: building error and report messages from pieces. Every message goes through
// concat(), so a program instantiates a handful of std::string operations once instead
// of one chain of operator+ overloads per message (which costs compile time at -O0).
#ifndef IOLOOP_DETAIL_MESSAGE_HPP
#define IOLOOP_DETAIL_MESSAGE_HPP

#include "ioloop/detail/config.hpp"

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

inline std::string concat(std::initializer_list<std::string_view> parts) {
    std::size_t size = 0;
    for (std::string_view part : parts) size += part.size();
    std::string text;
    text.reserve(size);
    for (std::string_view part : parts) text.append(part.data(), part.size());
    return text;
}

// A number spelled in decimal, without <charconv> or std::to_string.
class decimal {
public:
    explicit decimal(long long value) noexcept {
        unsigned long long magnitude = value < 0 ? 0ull - static_cast<unsigned long long>(value)
                                                 : static_cast<unsigned long long>(value);
        char* p = digits_ + sizeof digits_;
        do {
            *--p = static_cast<char>('0' + magnitude % 10);
            magnitude /= 10;
        } while (magnitude != 0);
        if (value < 0) *--p = '-';
        begin_ = p;
    }

    operator std::string_view() const noexcept {  // NOLINT: reads like a string piece
        return {begin_, static_cast<std::size_t>(digits_ + sizeof digits_ - begin_)};
    }

private:
    char digits_[24];
    const char* begin_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
