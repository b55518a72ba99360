// ioloop: a socket address (IPv4, IPv6 or Unix domain) held by value, with numeric
// parsing and formatting. Numeric hosts never need a resolver thread: ip() parses them
// with inet_pton, and only a name ("example.com") is left for getaddrinfo.
#ifndef IOLOOP_NET_ENDPOINT_HPP
#define IOLOOP_NET_ENDPOINT_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The length of an address that is its family alone (an unnamed Unix socket's): the
// family is an sa_family_t on POSIX, an ADDRESS_FAMILY on Windows.
inline constexpr socklen_t family_size = sizeof(sockaddr{}.sa_family);

// The OS reads host names and paths as C strings, so a NUL inside one would cut it short
// and name another place ("127.0.0.1\0.example" is 127.0.0.1): such text is refused with
// errc::invalid_argument, naming `what` and the text up to the NUL.
inline void refuse_nul(std::string_view text, std::string_view what) {
    const std::size_t nul = text.find('\0');
    if (nul == std::string_view::npos) return;
    throw std::system_error(
        std::make_error_code(std::errc::invalid_argument),
        concat({what, " \"", text.substr(0, nul), "...\" holds a NUL character"}));
}

}  // namespace detail

enum class address_family { unspecified, ipv4, ipv6, unix_domain };

class endpoint {
public:
    // An unspecified address: what a default-constructed endpoint holds before a real one
    // is assigned. native_size() is 0, so handing it to the OS fails loudly.
    endpoint() noexcept { std::memset(&addr_, 0, sizeof addr_); }

    // An IPv4 or IPv6 literal: "127.0.0.1", "::1", "[::1]", "fe80::1%eth0", "fe80::1%2".
    // Throws errc::invalid_argument for anything else, names included: resolving a name
    // may block, so it belongs to getaddrinfo on another thread, never here.
    static endpoint ip(std::string_view numeric_host, std::uint16_t port) {
        detail::refuse_nul(numeric_host, "host");
        endpoint ep;
        if (!parse_ip(numeric_host, port, ep)) {
            throw std::system_error(
                std::make_error_code(std::errc::invalid_argument),
                detail::concat({"\"", numeric_host,
                                "\" is not a numeric IPv4 or IPv6 address (a host name needs "
                                "getaddrinfo)"}));
        }
        return ep;
    }

    // As ip(), reporting failure by its result; `out` is left untouched then.
    static bool parse_ip(std::string_view host, std::uint16_t port, endpoint& out) noexcept {
        if (!detail::sockets_started()) return false;  // inet_pton is Winsock's on Windows
        if (host.find('\0') != std::string_view::npos) return false;  // see refuse_nul
        bool bracketed = false;
        if (!host.empty() && host.front() == '[') {
            if (host.size() < 2 || host.back() != ']') return false;
            host = host.substr(1, host.size() - 2);
            bracketed = true;
        }
        std::string_view scope;
        if (const std::size_t pct = host.find('%'); pct != std::string_view::npos) {
            scope = host.substr(pct + 1);
            host = host.substr(0, pct);
            if (scope.empty()) return false;
        }
        // inet_pton wants a terminated string; a literal longer than the longest IPv6
        // spelling is not an address, so a fixed buffer is enough and never allocates.
        char text[INET6_ADDRSTRLEN];
        if (host.empty() || host.size() >= sizeof text) return false;
        std::memcpy(text, host.data(), host.size());
        text[host.size()] = '\0';

        endpoint ep;
        if (host.find(':') == std::string_view::npos) {
            // Brackets and scopes belong to IPv6 only: "[1.2.3.4]" is not an address.
            if (bracketed || !scope.empty()) return false;
            sockaddr_in& in = ep.addr_.in4;
            if (::inet_pton(AF_INET, text, &in.sin_addr) != 1) return false;
            in.sin_family = AF_INET;
            in.sin_port = htons(port);
            ep.size_ = sizeof(sockaddr_in);
        } else {
            sockaddr_in6& in6 = ep.addr_.in6;
            if (::inet_pton(AF_INET6, text, &in6.sin6_addr) != 1) return false;
            in6.sin6_family = AF_INET6;
            in6.sin6_port = htons(port);
            // sin6_scope_id is a 32-bit field, but Winsock spells it u_long.
            std::uint32_t scope_id = 0;
            if (!scope.empty() && !parse_scope(scope, scope_id)) return false;
            in6.sin6_scope_id = scope_id;
            ep.size_ = sizeof(sockaddr_in6);
        }
        out = ep;
        return true;
    }

    // A Unix-domain address. A leading '\0' names a Linux abstract socket (no file);
    // otherwise the path must leave room for its terminator in sun_path.
    static endpoint unix_path(std::string_view path) {
        endpoint ep;
        sockaddr_un& un = ep.addr_.un;
        const bool abstract = !path.empty() && path.front() == '\0';
        if (path.empty()) {
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "a Unix socket path may not be empty");
        }
        if (!abstract) detail::refuse_nul(path, "Unix socket path");
        // An abstract name is counted by the address length and needs no terminator.
        if (path.size() + (abstract ? 0 : 1) > sizeof un.sun_path) {
            throw std::system_error(
                std::make_error_code(std::errc::filename_too_long),
                detail::concat({"Unix socket path \"", abstract ? path.substr(1) : path,
                                "\" is longer than sun_path (",
                                detail::decimal(static_cast<long long>(sizeof un.sun_path) -
                                                (abstract ? 0 : 1)),
                                " bytes)"}));
        }
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, path.data(), path.size());
        ep.size_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                          (abstract ? 0 : 1));
        return ep;
    }

    // Copies an address the OS returned (accept, getsockname, recvfrom). Throws
    // errc::address_family_not_supported for a family other than the three above and
    // errc::invalid_argument for a length that does not fit the family.
    static endpoint from_native(const sockaddr* address, socklen_t size) {
        endpoint ep;
        const auto bad = [](std::errc code, std::string_view why) {
            return std::system_error(std::make_error_code(code),
                                     detail::concat({"endpoint::from_native: ", why}));
        };
        if (address == nullptr || size < detail::family_size ||
            size > static_cast<socklen_t>(sizeof ep.addr_)) {
            throw bad(std::errc::invalid_argument, "the address length is out of range");
        }
        switch (address->sa_family) {
            case AF_INET:
                if (size < static_cast<socklen_t>(sizeof(sockaddr_in)))
                    throw bad(std::errc::invalid_argument, "too short for an IPv4 address");
                size = sizeof(sockaddr_in);
                break;
            case AF_INET6:
                if (size < static_cast<socklen_t>(sizeof(sockaddr_in6)))
                    throw bad(std::errc::invalid_argument, "too short for an IPv6 address");
                size = sizeof(sockaddr_in6);
                break;
            case AF_UNIX:
                // An unnamed Unix socket (a socketpair end, an unbound client) has only
                // its family: that is still an address, with an empty path.
                if (size < static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)))
                    throw bad(std::errc::invalid_argument, "too short for a Unix address");
                break;
            default:
                throw bad(std::errc::address_family_not_supported,
                          "not an IPv4, IPv6 or Unix-domain address");
        }
        std::memcpy(&ep.addr_, address, static_cast<std::size_t>(size));
        ep.size_ = size;
        return ep;
    }

    address_family family() const noexcept {
        if (size_ == 0) return address_family::unspecified;
        switch (addr_.sa.sa_family) {
            case AF_INET:
                return address_family::ipv4;
            case AF_INET6:
                return address_family::ipv6;
            case AF_UNIX:
                return address_family::unix_domain;
            default:
                return address_family::unspecified;
        }
    }

    // The numeric host: "127.0.0.1", "::1" (no brackets), "fe80::1%eth0" (with the
    // scope's interface name, or its number when the interface is gone, and always on
    // Windows). Empty otherwise.
    std::string host() const {
        if (!detail::sockets_started()) return {};  // inet_ntop is Winsock's on Windows
        char text[INET6_ADDRSTRLEN];
        switch (family()) {
            case address_family::ipv4:
                ::inet_ntop(AF_INET, &addr_.in4.sin_addr, text, sizeof text);
                return text;
            case address_family::ipv6: {
                ::inet_ntop(AF_INET6, &addr_.in6.sin6_addr, text, sizeof text);
                std::string result = text;
                if (const std::uint32_t id = addr_.in6.sin6_scope_id; id != 0) {
                    const std::string name = detail::interface_name(id);
                    result += '%';
                    if (!name.empty()) {
                        result += name;
                    } else {
                        result += std::string_view(detail::decimal(static_cast<long long>(id)));
                    }
                }
                return result;
            }
            default:
                return {};
        }
    }

    // The port in host byte order; 0 for Unix and unspecified addresses.
    std::uint16_t port() const noexcept {
        switch (family()) {
            case address_family::ipv4:
                return ntohs(addr_.in4.sin_port);
            case address_family::ipv6:
                return ntohs(addr_.in6.sin6_port);
            default:
                return 0;
        }
    }

    // A Unix address's path: empty when unnamed, with its leading '\0' when abstract.
    std::string path() const {
        if (family() != address_family::unix_domain) return {};
        const std::size_t length =
            static_cast<std::size_t>(size_) - offsetof(sockaddr_un, sun_path);
        const char* p = addr_.un.sun_path;
        if (length != 0 && p[0] == '\0') return std::string(p, length);  // abstract
        // A pathname may or may not carry its terminator inside the length the OS gives.
        std::size_t n = 0;
        while (n < length && p[n] != '\0') ++n;
        return std::string(p, n);
    }

    // "127.0.0.1:8080", "[::1]:8080", "/tmp/x.sock", "@name" for an abstract Unix name,
    // "" for an unnamed Unix socket, "unspecified" for a default-constructed endpoint.
    std::string to_string() const {
        switch (family()) {
            case address_family::ipv4:
                return detail::concat({host(), ":", detail::decimal(port())});
            case address_family::ipv6:
                return detail::concat({"[", host(), "]:", detail::decimal(port())});
            case address_family::unix_domain: {
                std::string p = path();
                if (!p.empty() && p.front() == '\0') p.front() = '@';
                return p;
            }
            default:
                return "unspecified";
        }
    }

    const sockaddr* native() const noexcept { return &addr_.sa; }
    socklen_t native_size() const noexcept { return size_; }

    // Equal when the OS would treat them as the same address: the family's fields are
    // compared, never padding (sin_zero) that an OS may or may not have cleared.
    friend bool operator==(const endpoint& a, const endpoint& b) noexcept {
        if (a.family() != b.family()) return false;
        switch (a.family()) {
            case address_family::ipv4:
                return a.addr_.in4.sin_port == b.addr_.in4.sin_port &&
                       a.addr_.in4.sin_addr.s_addr == b.addr_.in4.sin_addr.s_addr;
            case address_family::ipv6:
                return a.addr_.in6.sin6_port == b.addr_.in6.sin6_port &&
                       a.addr_.in6.sin6_scope_id == b.addr_.in6.sin6_scope_id &&
                       std::memcmp(&a.addr_.in6.sin6_addr, &b.addr_.in6.sin6_addr,
                                   sizeof(in6_addr)) == 0;
            case address_family::unix_domain:
                return a.path() == b.path();
            default:
                return true;
        }
    }

private:
    // A scope is an interface name ("eth0"; not on Windows) or its index ("2").
    static bool parse_scope(std::string_view scope, std::uint32_t& id) noexcept {
        if (scope.find_first_not_of("0123456789") == std::string_view::npos) {
            std::uint64_t value = 0;
            for (char c : scope) {
                value = value * 10 + static_cast<std::uint64_t>(c - '0');
                if (value > 0xffffffffu) return false;
            }
            id = static_cast<std::uint32_t>(value);
            return true;
        }
        id = detail::interface_index(scope);
        return id != 0;
    }

    // A union rather than a bare sockaddr_storage: each family's fields are read through
    // their own type, and sockaddr_un (110 bytes on Linux) is covered whatever its size.
    union storage {
        sockaddr sa;
        sockaddr_in in4;
        sockaddr_in6 in6;
        sockaddr_un un;
        sockaddr_storage any;
    };

    storage addr_;
    socklen_t size_ = 0;
};

IOLOOP_NAMESPACE_END

#endif
