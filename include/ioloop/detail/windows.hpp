// ioloop: small Windows shims shared by the backends and the networking layer: Winsock
// start-up, Winsock and Win32 errors as std::error_code (the common ones as the portable
// std::errc values, so `code == std::errc::connection_refused` holds everywhere), and the
// wakeup socket another thread or the console-control handler uses to interrupt a select.
// The POSIX side of the same names is detail/posix.hpp.
#ifndef IOLOOP_DETAIL_WINDOWS_HPP
#define IOLOOP_DETAIL_WINDOWS_HPP

#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"

#if defined(IOLOOP_WINDOWS)

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

// <windows.h> without its min/max macros and rarely used parts, unless the program
// already included it its own way.
#if !defined(WIN32_LEAN_AND_MEAN)
#define WIN32_LEAN_AND_MEAN
#define IOLOOP_UNDEF_LEAN_AND_MEAN
#endif
#if !defined(NOMINMAX)
#define NOMINMAX
#define IOLOOP_UNDEF_NOMINMAX
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#if defined(IOLOOP_UNDEF_LEAN_AND_MEAN)
#undef WIN32_LEAN_AND_MEAN
#undef IOLOOP_UNDEF_LEAN_AND_MEAN
#endif
#if defined(IOLOOP_UNDEF_NOMINMAX)
#undef NOMINMAX
#undef IOLOOP_UNDEF_NOMINMAX
#endif

IOLOOP_NAMESPACE_BEGIN

// A socket as the system names it: a SOCKET handle here, a descriptor on POSIX.
using native_socket = SOCKET;
inline constexpr native_socket invalid_socket = INVALID_SOCKET;

namespace detail {

// Winsock must be started once per process before any socket call. WSAStartup counts its
// callers, so the one started here stays up until the process exits.
inline void start_winsock() {
    static const int result = [] {
        WSADATA data;
        return ::WSAStartup(MAKEWORD(2, 2), &data);
    }();
    if (result != 0) throw std::system_error(result, std::system_category(), "WSAStartup");
}

// The Winsock and Win32 codes that have a portable meaning, as that meaning: tests and
// users compare with std::errc on every platform. The rest keep the system's own message.
inline std::error_code system_error_code(unsigned long err) noexcept {
    int generic = 0;
    switch (err) {
        case WSAECONNREFUSED:
        case ERROR_CONNECTION_REFUSED: generic = ECONNREFUSED; break;
        case WSAECONNRESET:
        case ERROR_NETNAME_DELETED: generic = ECONNRESET; break;
        case WSAECONNABORTED:
        case ERROR_CONNECTION_ABORTED:
        case ERROR_REQUEST_ABORTED: generic = ECONNABORTED; break;
        case WSAEWOULDBLOCK: generic = EWOULDBLOCK; break;
        case WSAEINPROGRESS: generic = EINPROGRESS; break;
        case WSAEALREADY: generic = EALREADY; break;
        case WSAEADDRINUSE: generic = EADDRINUSE; break;
        case WSAEADDRNOTAVAIL: generic = EADDRNOTAVAIL; break;
        case WSAEAFNOSUPPORT: generic = EAFNOSUPPORT; break;
        case WSAETIMEDOUT:
        case ERROR_SEM_TIMEOUT: generic = ETIMEDOUT; break;
        case WSAENETUNREACH:
        case ERROR_NETWORK_UNREACHABLE: generic = ENETUNREACH; break;
        case WSAEHOSTUNREACH:
        case ERROR_HOST_UNREACHABLE: generic = EHOSTUNREACH; break;
        case WSAENETDOWN: generic = ENETDOWN; break;
        case WSAEMFILE:
        case ERROR_TOO_MANY_OPEN_FILES: generic = EMFILE; break;
        case WSAENOBUFS: generic = ENOBUFS; break;
        case WSAENOTCONN: generic = ENOTCONN; break;
        case WSAEISCONN: generic = EISCONN; break;
        case WSAESHUTDOWN: generic = EPIPE; break;
        case WSAEMSGSIZE:
        case ERROR_MORE_DATA: generic = EMSGSIZE; break;
        case WSAEINVAL:
        case ERROR_INVALID_PARAMETER: generic = EINVAL; break;
        case WSAENOTSOCK:
        case WSAEBADF:
        case ERROR_INVALID_HANDLE: generic = EBADF; break;
        case WSAEACCES:
        case ERROR_ACCESS_DENIED: generic = EACCES; break;
        case WSAEOPNOTSUPP: generic = EOPNOTSUPP; break;
        case WSAEPROTONOSUPPORT: generic = EPROTONOSUPPORT; break;
        case ERROR_OPERATION_ABORTED: generic = ECANCELED; break;
        default: return {static_cast<int>(err), std::system_category()};
    }
    return {generic, std::generic_category()};
}

[[noreturn]] inline void throw_system_error(unsigned long err, const std::string& what) {
    throw std::system_error(system_error_code(err), what);
}

// The C runtime's errno values, as on POSIX.
[[noreturn]] inline void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// A wait timeout in milliseconds: INFINITE for a negative one, rounded up so that a timer
// never fires early because the system woke us sooner.
inline unsigned long timeout_ms(std::chrono::nanoseconds t) noexcept {
    if (t.count() < 0) return INFINITE;
    const long long ms = (t.count() + 999'999) / 1'000'000;
    return ms >= static_cast<long long>(INFINITE) ? INFINITE - 1 : static_cast<unsigned long>(ms);
}

// Whether `s` names an open socket: checked before watching it, so a bad one fails where
// it is added instead of inside a later select.
inline bool is_open_fd(native_socket s) noexcept {
    int type = 0;
    int size = sizeof type;
    return s != invalid_socket &&
           ::getsockopt(s, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &size) == 0;
}

// A socket handle as a small table index. Kernel handles are multiples of four (the low
// two bits are reserved for tags), so dividing keeps per-socket tables dense.
inline std::size_t fd_index(native_socket s) noexcept { return static_cast<std::size_t>(s) >> 2; }

// The select backend's "wake up" flag: a UDP socket connected to itself on loopback, since
// Windows' select takes sockets only. notify() is thread-safe; a full buffer means a
// wakeup is pending already.
class wakeup_fd {
public:
    wakeup_fd() {
        start_winsock();
        s_ = ::WSASocketW(AF_INET, SOCK_DGRAM, IPPROTO_UDP, nullptr, 0, WSA_FLAG_NO_HANDLE_INHERIT);
        if (s_ == INVALID_SOCKET) throw_system_error(::WSAGetLastError(), "wakeup socket");
        sockaddr_in self{};
        self.sin_family = AF_INET;
        self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int size = sizeof self;
        u_long nonblocking = 1;
        auto* address = reinterpret_cast<sockaddr*>(&self);
        if (::bind(s_, address, size) != 0 || ::getsockname(s_, address, &size) != 0 ||
            ::connect(s_, address, size) != 0 || ::ioctlsocket(s_, FIONBIO, &nonblocking) != 0) {
            const int err = ::WSAGetLastError();
            ::closesocket(s_);
            throw_system_error(err, "wakeup socket: binding it to loopback");
        }
    }
    wakeup_fd(const wakeup_fd&) = delete;
    wakeup_fd& operator=(const wakeup_fd&) = delete;
    ~wakeup_fd() { ::closesocket(s_); }

    native_socket fd() const noexcept { return s_; }

    void notify() noexcept {
        const char one = 1;
        ::send(s_, &one, 1, 0);
    }

    void drain() noexcept {
        char buf[64];
        while (::recv(s_, buf, sizeof buf, 0) > 0) {
        }
    }

private:
    native_socket s_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
