// ioloop: what a child's standard descriptors are (asyncio's stdin=, stdout=, stderr=
// values), and the options of create_subprocess_exec / create_subprocess_shell.
//
//   auto p = co_await ioloop::create_subprocess_exec(
//       "grep", {"-c", "x"}, {.in = ioloop::stdio::pipe, .out = ioloop::stdio::pipe});
#ifndef IOLOOP_SUBPROCESS_STDIO_HPP
#define IOLOOP_SUBPROCESS_STDIO_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/stream_reader.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// One of a child's descriptors 0, 1, 2: inherited from this process (asyncio's None, the
// default), a pipe to this process (asyncio's PIPE: process::in(), out(), err()), /dev/null,
// the child's stdout (for err only: asyncio's STDOUT), or a descriptor of this process
// (stdio(fd): it stays this process's; the child gets a copy).
class stdio {
public:
    enum class kind : unsigned char { inherit, pipe, devnull, to_stdout, descriptor };

    static const stdio inherit;
    static const stdio pipe;
    static const stdio devnull;
    static const stdio to_stdout;

    constexpr stdio() noexcept = default;
    explicit constexpr stdio(native_descriptor fd) noexcept : kind_(kind::descriptor), fd_(fd) {}

    constexpr kind what() const noexcept { return kind_; }
    // The descriptor of stdio(fd); meaningless for the other kinds.
    constexpr native_descriptor descriptor() const noexcept { return fd_; }

private:
    explicit constexpr stdio(kind k) noexcept : kind_(k) {}

    kind kind_ = kind::inherit;
    native_descriptor fd_{};
};

inline const stdio stdio::inherit{stdio::kind::inherit};
inline const stdio stdio::pipe{stdio::kind::pipe};
inline const stdio stdio::devnull{stdio::kind::devnull};
inline const stdio stdio::to_stdout{stdio::kind::to_stdout};

namespace detail {

// A child's arguments, as create_subprocess_exec takes them: a braced list of strings
// ({"-c", "x"}) or a std::vector<std::string>. Not a std::vector parameter: g++ 12 cannot
// compile a co_await expression that holds a std::initializer_list ("array used as
// initializer"), and `co_await create_subprocess_exec("grep", {"-c", "x"})` is how it is
// written. A braced list reaches the variadic constructor instead, which makes no array.
class arg_list {
public:
    arg_list() = default;
    arg_list(std::vector<std::string> v) : v_(std::move(v)) {}  // NOLINT: implicit by design
    template <class... S>
    requires(sizeof...(S) > 0 && (std::is_convertible_v<const S&, std::string_view> && ...))
    arg_list(const S&... s) {  // NOLINT: implicit by design
        v_.reserve(sizeof...(S));
        (v_.emplace_back(std::string_view(s)), ...);
    }

    std::vector<std::string>& get() noexcept { return v_; }

private:
    std::vector<std::string> v_;
};

}  // namespace detail

// The options of create_subprocess_exec and create_subprocess_shell, in the order a
// designated initializer names them: {.in = ..., .out = ..., .cwd = ...}.
//
// cwd and env point at the caller's strings, which must live until the call's co_await
// ends (a braced temporary in the co_await expression, as above, always does). They do
// not own them because g++ 12 destroys an aggregate temporary of a co_await expression
// twice when it holds memory of its own: `{.cwd = std::string(...)}` would be freed twice.
struct subprocess_options {
    stdio in{};
    stdio out{};
    stdio err{};
    const char* cwd = nullptr;  // null: this process's working directory
    // Set: the child's whole environment ("NAME=value" each), replacing this process's;
    // null: the child inherits it. The program is looked up on this process's PATH either
    // way.
    const std::vector<std::string>* env = nullptr;
    std::size_t limit = stream_default_limit;  // of the out() and err() readers
    // The child starts a session of its own (setsid): its own process group, whose
    // id is its pid, so that killpg(pid, sig) reaches what it starts too (Popen's
    // start_new_session, which asyncio passes on).
    bool start_new_session = false;
};

IOLOOP_NAMESPACE_END

#endif
