// ioloop: open_file's mode string, as fopen and Python's open() spell it: one of "r", "w",
// "a", "x", then "+" for reading and writing both; "b" may appear anywhere and means
// nothing (files are bytes: no newline translation, on Windows either). Each letter at
// most once; anything else is std::invalid_argument, thrown at the call.
#ifndef IOLOOP_FS_OPEN_MODE_HPP
#define IOLOOP_FS_OPEN_MODE_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/file_io.hpp"
#include "ioloop/detail/message.hpp"

#include <stdexcept>
#include <string_view>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

inline file_access parse_open_mode(std::string_view mode) {
    file_access a;
    char kind = 0;
    bool plus = false;
    bool binary = false;
    bool valid = true;
    for (const char c : mode) {
        if (c == 'r' || c == 'w' || c == 'a' || c == 'x') {
            valid = valid && kind == 0;
            kind = c;
        } else if (c == '+') {
            valid = valid && !plus;
            plus = true;
        } else if (c == 'b') {
            valid = valid && !binary;
            binary = true;
        } else {
            valid = false;
        }
    }
    if (!valid || kind == 0) {
        throw std::invalid_argument(concat(
            {"open_file: invalid mode \"", mode,
             "\" (one of r, w, a, x, each with an optional + and b, as fopen's)"}));
    }
    a.read = kind == 'r' || plus;
    a.write = kind != 'r' || plus;
    a.append = kind == 'a';
    a.create = kind != 'r';
    a.truncate = kind == 'w';
    a.exclusive = kind == 'x';
    return a;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
