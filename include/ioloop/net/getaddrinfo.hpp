// ioloop: loop.getaddrinfo(host, port) (asyncio's): the addresses of a host, resolved on the
// loop's default executor because ::getaddrinfo blocks; a numeric host is parsed at once,
// without a thread. Resolver failures are std::system_error in resolver_category() (the
// EAI_* codes, which Winsock spells WSA*), or with errno's code for EAI_SYSTEM (POSIX).
#ifndef IOLOOP_NET_GETADDRINFO_HPP
#define IOLOOP_NET_GETADDRINFO_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/run_in_executor.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/socket.hpp"

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// The category of getaddrinfo's own error codes (EAI_NONAME, EAI_AGAIN, ...).
inline const std::error_category& resolver_category() noexcept {
    struct category final : std::error_category {
        const char* name() const noexcept override { return "getaddrinfo"; }
        std::string message(int code) const override { return ::gai_strerror(code); }
    };
    static const category instance;
    return instance;
}

namespace detail {

// The blocking part, on an executor thread.
inline std::vector<endpoint> resolve(const std::string& host, std::uint16_t port,
                                     socket_type type) {
    start_sockets();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type == socket_type::stream ? SOCK_STREAM : SOCK_DGRAM;
    const std::string service{std::string_view(decimal(port))};
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
    if (resolver_uses_errno(rc)) throw_errno(errno, concat({"getaddrinfo ", host}));
    if (rc != 0) {
        throw std::system_error(rc, resolver_category(), concat({"getaddrinfo ", host}));
    }
    struct release_list {
        addrinfo* list;
        ~release_list() { ::freeaddrinfo(list); }
    } release{found};
    std::vector<endpoint> result;
    for (const addrinfo* a = found; a; a = a->ai_next) {
        if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
            const auto size = static_cast<socklen_t>(a->ai_addrlen);  // a size_t on Windows
            result.push_back(endpoint::from_native(a->ai_addr, size));
        }
    }
    return result;
}

// The work sent to the executor.
struct resolver {
    std::string host;
    std::uint16_t port;
    socket_type type;
    std::vector<endpoint> operator()() const { return resolve(host, port, type); }
};

}  // namespace detail

template <class>
coro<std::vector<endpoint>> loop_base::getaddrinfo(std::string host, std::uint16_t port,
                                                   socket_type type) {
    // Before any resolver sees it: ::getaddrinfo would stop at a NUL and resolve the prefix.
    detail::refuse_nul(host, "host");
    endpoint numeric;
    if (endpoint::parse_ip(host, port, numeric)) co_return std::vector<endpoint>{numeric};
    // Made before the co_await, not inside its operand: g++ 12 then corrupts the job's
    // std::string (ASan caught it); see the note on issue 4's follow-up.
    task<std::vector<endpoint>> resolving =
        run_in_executor(detail::resolver{std::move(host), port, type});
    co_return co_await std::move(resolving);
}

IOLOOP_NAMESPACE_END

#endif
