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
#include <string_view>
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
// sockaddr_un (Windows 10 1803 and later); needs ADDRESS_FAMILY from <winsock2.h> first.
#include <afunix.h>
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

// A descriptor that is not a socket (an overlapped named pipe), as connect_read_pipe and
// connect_write_pipe take it: a HANDLE here, a descriptor on POSIX.
using native_descriptor = HANDLE;

namespace detail {

// No descriptor (an owner that gave its own away), and closing one. (A function, not a
// constant: INVALID_HANDLE_VALUE is a cast, which no constexpr may hold.)
inline native_descriptor no_descriptor() noexcept { return INVALID_HANDLE_VALUE; }
inline void close_descriptor(native_descriptor h) noexcept {
    if (h != nullptr && h != INVALID_HANDLE_VALUE) ::CloseHandle(h);
}

// A transport keeps a pipe's HANDLE where it keeps a socket's SOCKET: both are kernel
// handles of pointer size (IOCP code casts a SOCKET to a HANDLE the same way).
inline native_socket descriptor_as_socket(native_descriptor h) noexcept {
    return reinterpret_cast<native_socket>(h);
}
inline native_descriptor socket_as_descriptor(native_socket s) noexcept {
    return reinterpret_cast<native_descriptor>(s);
}

// Winsock must be started once per process before any socket call. WSAStartup counts its
// callers, so the one started here stays up until the process exits.
inline void start_winsock() {
    static const int result = [] {
        WSADATA data;
        return ::WSAStartup(MAKEWORD(2, 2), &data);
    }();
    if (result != 0) throw std::system_error(result, std::system_category(), "WSAStartup");
}

// The errno value a Winsock or Win32 code means, 0 if none: so that tests and users
// compare with std::errc on every platform.
inline int portable_errno(unsigned long err) noexcept {
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
        case WSAESHUTDOWN:
        // A pipe whose reader went away: a write fails with one of these, as EPIPE does on
        // POSIX (a read of a pipe whose writer went away says ERROR_BROKEN_PIPE too: the
        // pipe transport takes that as EOF before it could become an error).
        case ERROR_BROKEN_PIPE:
        case ERROR_NO_DATA:
        case ERROR_PIPE_NOT_CONNECTED: generic = EPIPE; break;
        case WSAEMSGSIZE:
        case ERROR_MORE_DATA: generic = EMSGSIZE; break;
        case WSAEINVAL:
        case ERROR_NEGATIVE_SEEK:  // a file position before the start, as lseek's EINVAL
        case ERROR_INVALID_PARAMETER: generic = EINVAL; break;
        case WSAENOTSOCK:
        case WSAEBADF:
        case ERROR_INVALID_HANDLE: generic = EBADF; break;
        case WSAEACCES:
        case ERROR_ACCESS_DENIED: generic = EACCES; break;
        case WSAEOPNOTSUPP: generic = EOPNOTSUPP; break;
        case WSAEPROTONOSUPPORT: generic = EPROTONOSUPPORT; break;
        case ERROR_OPERATION_ABORTED: generic = ECANCELED; break;
        // A file or program that is not there (CreateFileW, CreateProcessW), and "x" of an
        // existing file.
        case ERROR_FILE_NOT_FOUND:
        case ERROR_PATH_NOT_FOUND: generic = ENOENT; break;
        case ERROR_FILE_EXISTS:
        case ERROR_ALREADY_EXISTS: generic = EEXIST; break;
        case ERROR_DIRECTORY: generic = ENOTDIR; break;  // a cwd that is not a directory
        case ERROR_BAD_EXE_FORMAT: generic = ENOEXEC; break;
        default: break;
    }
    return generic;
}

// Winsock and Win32 codes with the system's own message, each equivalent to the std::errc
// it means (the C runtime's strerror knows no socket errors, so the generic category's
// message would be "Unknown error").
class windows_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "windows"; }

    std::string message(int code) const override {
        char text[256];
        DWORD n = ::FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                                   nullptr, static_cast<DWORD>(code), 0, text, sizeof text,
                                   nullptr);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == '.')) --n;
        if (n == 0) return std::string("Windows error ") + std::to_string(code);
        return std::string(text, n);
    }

    std::error_condition default_error_condition(int code) const noexcept override {
        const int generic = portable_errno(static_cast<unsigned long>(code));
        if (generic == 0) return {code, *this};
        return {generic, std::generic_category()};
    }
};

inline const std::error_category& windows_category() noexcept {
    static const windows_error_category category;
    return category;
}

inline std::error_code system_error_code(unsigned long err) noexcept {
    return {static_cast<int>(err), windows_category()};
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

// Which IOCP loop a socket's completions go to: Windows ties a socket to one completion
// port for its life (and Wine has no FileReplaceCompletionInformation to move it), so an
// ioloop::socket remembers its port, and a second loop's operation on it fails clearly
// instead of waiting for completions that go to the first one. 0: none yet.
struct port_binding {
    std::uint64_t port = 0;
};

// ---- sockets: the calls net/ makes, under the names detail/posix.hpp gives POSIX's ----

// Winsock must be started before the first socket call. The noexcept form is for numeric
// address parsing (inet_pton is Winsock's), which reports failure by its result.
inline void start_sockets() { start_winsock(); }
inline bool sockets_started() noexcept {
    try {
        start_winsock();
        return true;
    } catch (...) {
        return false;
    }
}

// Why the last socket call failed (a WSAE* code; detail::system_error_code makes it
// portable), and what some of those reasons mean.
inline int last_socket_error() noexcept { return ::WSAGetLastError(); }
inline bool would_block(int err) noexcept { return err == WSAEWOULDBLOCK; }
// Only a blocking call cancelled by WSACancelBlockingCall says this; ours never block.
inline bool interrupted(int err) noexcept { return err == WSAEINTR; }
// A non-blocking connect that goes on says WSAEWOULDBLOCK (not WSAEINPROGRESS). Its
// outcome is in SO_ERROR once select reports the socket writable, or failed (which
// backend/select_winsock.hpp reports as readable and writable).
inline bool connect_pending(int err) noexcept { return err == WSAEWOULDBLOCK; }
// The connection went away before accept took it (Winsock says reset): take the next one.
inline bool accept_again(int err) noexcept {
    return err == WSAECONNRESET || err == WSAECONNABORTED || err == WSAEINTR;
}
// A datagram socket's error as error_received reports it. An ICMP port unreachable that
// answered an earlier send is WSAECONNRESET here (ERROR_PORT_UNREACHABLE from an
// overlapped receive) and ECONNREFUSED on POSIX: the POSIX meaning, as Winsock's
// WSAECONNREFUSED, so protocols see the same code everywhere.
inline std::error_code datagram_error_code(unsigned long err) noexcept {
    if (err == WSAECONNRESET || err == ERROR_PORT_UNREACHABLE) err = WSAECONNREFUSED;
    return system_error_code(err);
}

// Finishes a socket fresh from WSASocketW or accept, or adopted: non-blocking. There is no
// close-on-exec to set: open_socket makes sockets not inheritable, and accepted ones take
// that from their listener. On failure the socket is closed and its error kept:
// INVALID_SOCKET.
inline native_socket prepare_socket(native_socket s, bool /*flags_set*/ = false) noexcept {
    u_long on = 1;
    if (s == INVALID_SOCKET || ::ioctlsocket(s, FIONBIO, &on) == 0) return s;
    const int err = ::WSAGetLastError();
    ::closesocket(s);
    ::WSASetLastError(err);
    return INVALID_SOCKET;
}

// A new socket as prepare_socket leaves it, and overlapped, so the IOCP backend can use it
// (readiness calls work on it all the same); INVALID_SOCKET with last_socket_error()
// saying why. Call start_sockets() first.
inline native_socket open_socket(int domain, int type) noexcept {
    return prepare_socket(::WSASocketW(domain, type, 0, nullptr, 0,
                                       WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT));
}

// The next connection on `listener`, as prepare_socket leaves it, its peer's address in
// `peer` / `size`; INVALID_SOCKET with last_socket_error() saying why (WSAEWOULDBLOCK:
// none pending).
inline native_socket accept_socket(native_socket listener, sockaddr* peer, int* size) noexcept {
    return prepare_socket(::accept(listener, peer, size));
}

// 0 or -1 (last_socket_error() says why), as on POSIX. Winsock's option values are char*.
inline int close_socket(native_socket s) noexcept { return ::closesocket(s); }
inline int shutdown_send(native_socket s) noexcept { return ::shutdown(s, SD_SEND); }
inline int set_socket_option(native_socket s, int level, int name, int value) noexcept {
    return ::setsockopt(s, level, name, reinterpret_cast<const char*>(&value), sizeof value);
}
inline int get_socket_option(native_socket s, int level, int name, int& value) noexcept {
    int size = sizeof value;
    return ::getsockopt(s, level, name, reinterpret_cast<char*>(&value), &size);
}
inline int set_socket_option_bytes(native_socket s, int level, int name, const void* value,
                                   std::size_t size) noexcept {
    return ::setsockopt(s, level, name, static_cast<const char*>(value), static_cast<int>(size));
}

// One send or receive: the bytes moved, or -1 (last_socket_error() says why). Winsock
// counts in int: a larger buffer is taken in part, as a short send or read would be.
// There is no SIGPIPE to keep away.
inline int winsock_length(std::size_t size) noexcept {
    return size > 0x7fffffff ? 0x7fffffff : static_cast<int>(size);
}
inline std::ptrdiff_t socket_send(native_socket s, const char* data, std::size_t size) noexcept {
    return ::send(s, data, winsock_length(size), 0);
}
inline std::ptrdiff_t socket_recv(native_socket s, char* data, std::size_t size) noexcept {
    return ::recv(s, data, winsock_length(size), 0);
}
inline std::ptrdiff_t socket_sendto(native_socket s, const char* data, std::size_t size,
                                    const sockaddr* to, int to_size) noexcept {
    return ::sendto(s, data, winsock_length(size), 0, to, to_size);
}
inline std::ptrdiff_t socket_recvfrom(native_socket s, char* data, std::size_t size,
                                      sockaddr* from, int* from_size) noexcept {
    return ::recvfrom(s, data, winsock_length(size), 0, from, from_size);
}

// One datagram, whole: its size, or -1 (last_socket_error() says why). Winsock's recvfrom
// itself fails a datagram larger than `size` with WSAEMSGSIZE (EMSGSIZE on POSIX), and a
// UDP socket drops the rest of it.
inline std::ptrdiff_t socket_recv_datagram(native_socket s, char* data, std::size_t size,
                                           sockaddr* from, int* from_size) noexcept {
    return socket_recvfrom(s, data, size, from, from_size);
}

// The size of the next datagram waiting on `s`, or more (FIONREAD: Winsock says the bytes
// of every datagram queued). 0 when none waits, or if the call fails. (Windows has no Unix
// datagram sockets, the one kind the readiness transport asks this of.)
inline std::size_t next_datagram_size(native_socket s) noexcept {
    u_long n = 0;
    return ::ioctlsocket(s, FIONREAD, &n) == 0 ? static_cast<std::size_t>(n) : 0;
}

// No SO_REUSEADDR on listening sockets: on Windows it lets a second socket bind a port
// that is in use (SO_EXCLUSIVEADDRUSE's opposite), and a restarted server does not need
// it to bind over connections in TIME_WAIT. libuv and asyncio leave it off too.
inline constexpr bool listen_with_reuse_address = false;

// Winsock's getaddrinfo returns its error itself (WSAHOST_NOT_FOUND as EAI_NONAME...).
inline bool resolver_uses_errno(int) noexcept { return false; }

// if_nametoindex and if_indextoname live in iphlpapi, a library ioloop does not link:
// IPv6 scopes are numeric only on Windows ("fe80::1%3", not "%eth0").
inline std::uint32_t interface_index(std::string_view) noexcept { return 0; }
inline std::string interface_name(std::uint32_t) { return {}; }

// A Unix socket's file: a stale one (left by an earlier run) is removed before binding,
// and only if it is a socket (a reparse point tagged AF_UNIX), never another file; a
// server removes its own on close.
inline void remove_stale_socket_file(const char* path) noexcept {
    WIN32_FIND_DATAA found;
    const HANDLE h = ::FindFirstFileA(path, &found);
    if (h == INVALID_HANDLE_VALUE) return;
    ::FindClose(h);
    if ((found.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0 &&
        found.dwReserved0 == IO_REPARSE_TAG_AF_UNIX) {
        ::DeleteFileA(path);
    }
}
inline void remove_socket_file(const char* path) noexcept { ::DeleteFileA(path); }

// The calling thread's own T, made on first use and destroyed when the thread exits. Not a
// thread_local with a destructor: mingw-w64's GCC keeps thread_locals in emulated TLS,
// whose storage is freed before their destructors run (GCC bug 80816), so a destructor
// would read freed memory. Here T lives on the heap, and a fiber-local slot's callback,
// which the system runs as the thread exits, deletes it; the thread_local is a plain
// pointer, with nothing to destroy.
template <class T>
struct this_thread_slot {
    static void WINAPI destroy(void* p) noexcept { delete static_cast<T*>(p); }
    static unsigned long allocate() {
        const unsigned long slot = ::FlsAlloc(&destroy);
        if (slot == FLS_OUT_OF_INDEXES) throw_system_error(::GetLastError(), "FlsAlloc");
        return slot;
    }
};

template <class T>
T& this_thread_instance() {
    static const unsigned long slot = this_thread_slot<T>::allocate();
    static thread_local T* mine = nullptr;
    if (mine == nullptr) [[unlikely]] {
        T* made = new T();
        if (!::FlsSetValue(slot, made)) {
            const unsigned long err = ::GetLastError();
            delete made;
            throw_system_error(err, "FlsSetValue");
        }
        mine = made;
    }
    return *mine;
}

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
