// ioloop: loop.getaddrinfo(host, port) and loop.getnameinfo(address) (asyncio's): the
// addresses of a host, and the name of an address, resolved on the loop's default executor
// because the system's calls block; a numeric host is parsed at once, without a thread.
// Resolver failures are std::system_error in resolver_category() (the EAI_* codes, which
// Winsock spells WSA*), or with errno's code for EAI_SYSTEM (POSIX).
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

// One answer of getaddrinfo(host, port, family, type, proto, flags): asyncio's tuple
// (family, type, proto, canonname, sockaddr). type and proto are the system's numbers
// (SOCK_STREAM, IPPROTO_UDP, ...), as asyncio gives them; canonname is set on the first
// answer only, and only when AI_CANONNAME was asked for.
struct address_info {
    address_family family;
    int type;
    int proto;
    std::string canonname;
    endpoint address;
};

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

// ::getaddrinfo's list for `name` (null: the system's null host), each entry of an IP
// family handed to `each`; its errors as std::system_error naming `host`. Blocks: on an
// executor thread.
template <class Each>
void for_each_address(const std::string& host, const char* name, std::uint16_t port,
                      const addrinfo& hints, Each each) {
    start_sockets();
    const std::string service{std::string_view(decimal(port))};
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(name, service.c_str(), &hints, &found);
    if (resolver_uses_errno(rc)) throw_errno(errno, concat({"getaddrinfo ", host}));
    if (rc != 0) {
        throw std::system_error(rc, resolver_category(), concat({"getaddrinfo ", host}));
    }
    struct release_list {
        addrinfo* list;
        ~release_list() { ::freeaddrinfo(list); }
    } release{found};
    for (const addrinfo* a = found; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
        const auto size = static_cast<socklen_t>(a->ai_addrlen);  // a size_t on Windows
        each(*a, endpoint::from_native(a->ai_addr, size));
    }
}

// The blocking part, on an executor thread.
inline std::vector<endpoint> resolve(const std::string& host, std::uint16_t port,
                                     socket_type type) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type == socket_type::stream ? SOCK_STREAM : SOCK_DGRAM;
    std::vector<endpoint> result;
    for_each_address(host, host.c_str(), port, hints,
                     [&](const addrinfo&, endpoint e) { result.push_back(std::move(e)); });
    return result;
}

// The work sent to the executor.
struct resolver {
    std::string host;
    std::uint16_t port;
    socket_type type;
    std::vector<endpoint> operator()() const { return resolve(host, port, type); }
};

inline int native_family(address_family family) noexcept {
    switch (family) {
        case address_family::ipv4:
            return AF_INET;
        case address_family::ipv6:
            return AF_INET6;
        case address_family::unix_domain:
            return AF_UNIX;
        default:
            return AF_UNSPEC;
    }
}

// getaddrinfo with every hint, on an executor thread. An empty host is the system's null
// host: the wildcard address with AI_PASSIVE, the loopback without.
inline std::vector<address_info> resolve_all(const std::string& host, std::uint16_t port,
                                             address_family family, int type, int proto,
                                             int flags) {
    addrinfo hints{};
    hints.ai_family = native_family(family);
    hints.ai_socktype = type;
    hints.ai_protocol = proto;
    hints.ai_flags = flags;
    std::vector<address_info> result;
    for_each_address(host, host.empty() ? nullptr : host.c_str(), port, hints,
                     [&](const addrinfo& a, endpoint e) {
                         const address_family f = e.family();
                         result.push_back({f, a.ai_socktype, a.ai_protocol,
                                           a.ai_canonname ? std::string(a.ai_canonname)
                                                          : std::string(),
                                           std::move(e)});
                     });
    return result;
}

struct full_resolver {
    std::string host;
    std::uint16_t port;
    address_family family;
    int type;
    int proto;
    int flags;
    std::vector<address_info> operator()() const {
        return resolve_all(host, port, family, type, proto, flags);
    }
};

// getnameinfo, on an executor thread: (host, service).
struct name_resolver {
    endpoint address;
    int flags;
    std::pair<std::string, std::string> operator()() const {
        start_sockets();
        char host[1025];  // NI_MAXHOST
        char service[32];  // NI_MAXSERV
        const int rc = ::getnameinfo(address.native(), address.native_size(), host, sizeof host,
                                     service, sizeof service, flags);
        if (resolver_uses_errno(rc)) throw_errno(errno, concat({"getnameinfo ", address.to_string()}));
        if (rc != 0) {
            throw std::system_error(rc, resolver_category(),
                                    concat({"getnameinfo ", address.to_string()}));
        }
        return {std::string(host), std::string(service)};
    }
};

// The numeric host's one answer, as asyncio's _ipaddr_info makes it without a thread: only
// for a stream or datagram type, a family that agrees, and no canonical name asked for.
inline bool numeric_address_info(const std::string& host, std::uint16_t port,
                                 address_family family, int type, int proto, int flags,
                                 std::vector<address_info>& out) {
    if (type != SOCK_STREAM && type != SOCK_DGRAM) return false;
    if ((flags & AI_CANONNAME) != 0) return false;
    endpoint numeric;
    if (!endpoint::parse_ip(host, port, numeric)) return false;
    if (family != address_family::unspecified && family != numeric.family()) return false;
    if (proto == 0) proto = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
    out.push_back({numeric.family(), type, proto, std::string(), numeric});
    return true;
}

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

template <class>
coro<std::vector<address_info>> loop_base::getaddrinfo(std::string host, std::uint16_t port,
                                                       address_family family, int type,
                                                       int proto, int flags) {
    detail::refuse_nul(host, "host");
    if (family == address_family::unix_domain) {
        throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                                "getaddrinfo: a Unix socket's address is its path, not a host");
    }
    std::vector<address_info> numeric;
    if (detail::numeric_address_info(host, port, family, type, proto, flags, numeric)) {
        co_return numeric;
    }
    // Made before the co_await, as above.
    task<std::vector<address_info>> resolving =
        run_in_executor(detail::full_resolver{std::move(host), port, family, type, proto, flags});
    co_return co_await std::move(resolving);
}

template <class>
coro<std::pair<std::string, std::string>> loop_base::getnameinfo(endpoint address, int flags) {
    if (address.family() != address_family::ipv4 && address.family() != address_family::ipv6) {
        throw std::system_error(
            std::make_error_code(std::errc::address_family_not_supported),
            "getnameinfo: the address is not an IPv4 or IPv6 one");
    }
    task<std::pair<std::string, std::string>> resolving =
        run_in_executor(detail::name_resolver{std::move(address), flags});
    co_return co_await std::move(resolving);
}

IOLOOP_NAMESPACE_END

#endif
