// ioloop: small POSIX shims shared by the backends: errno to std::system_error, and the
// wakeup descriptor another thread or a signal handler uses to interrupt a poll. The
// Windows side of the same names is detail/windows.hpp.
#ifndef IOLOOP_DETAIL_POSIX_HPP
#define IOLOOP_DETAIL_POSIX_HPP

#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"

#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif
// The networking layer's system headers, here so that net/ names none of its own.
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

IOLOOP_NAMESPACE_BEGIN

// A socket as the system names it: a descriptor here, a SOCKET handle on Windows.
using native_socket = int;
inline constexpr native_socket invalid_socket = -1;

// A descriptor that is not a socket (a pipe, a FIFO, a terminal), as connect_read_pipe and
// connect_write_pipe take it: a descriptor here too, a HANDLE on Windows.
using native_descriptor = int;

namespace detail {

// No descriptor (an owner that gave its own away), and closing one.
inline constexpr native_descriptor no_descriptor() noexcept { return -1; }
inline void close_descriptor(native_descriptor fd) noexcept { ::close(fd); }

// A transport keeps its descriptor where it keeps a socket's: here they are the same int.
inline native_socket descriptor_as_socket(native_descriptor fd) noexcept { return fd; }
inline native_descriptor socket_as_descriptor(native_socket fd) noexcept { return fd; }

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// The names detail/windows.hpp gives its Winsock errors: here they are errno values.
inline std::error_code system_error_code(int err) noexcept {
    return {err, std::generic_category()};
}
[[noreturn]] inline void throw_system_error(int err, const std::string& what) {
    throw_errno(err, what);
}

// A descriptor as a table index: itself.
inline std::size_t fd_index(native_socket fd) noexcept { return static_cast<std::size_t>(fd); }

// A socket's completion port (detail/windows.hpp): nothing to remember on POSIX.
struct port_binding {};

// A poll timeout in milliseconds for epoll_wait() and poll(): -1 (forever) for a negative
// one, rounded up so that a timer never fires early because the kernel woke us sooner.
inline int timeout_ms(std::chrono::nanoseconds t) noexcept {
    if (t.count() < 0) return -1;
    const long long ms = (t.count() + 999'999) / 1'000'000;
    return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}

// Whether `fd` names an open descriptor: checked before watching it, so a bad fd fails
// where it is added instead of inside a later poll.
inline bool is_open_fd(int fd) noexcept { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

inline void set_nonblocking_cloexec(int fd) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl == -1 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
        throw_errno(errno, "fcntl");
    }
}

// ---- sockets: the calls net/ makes, under the names detail/windows.hpp gives Winsock's ----

// Nothing to start here: Winsock's start-up on Windows. The noexcept form is for numeric
// address parsing, which reports failure by its result.
inline void start_sockets() noexcept {}
inline bool sockets_started() noexcept { return true; }

// Why the last socket call failed, and what some of those reasons mean.
inline int last_socket_error() noexcept { return errno; }
// EAGAIN and EWOULDBLOCK may be distinct values (POSIX allows it); both mean "wait".
inline bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
inline bool interrupted(int err) noexcept { return err == EINTR; }
// A non-blocking connect that goes on: EINPROGRESS; EINTR (after a signal it goes on too);
// EAGAIN (Linux: a Unix listener's backlog is full). Its outcome is in SO_ERROR once the
// socket is writable.
inline bool connect_pending(int err) noexcept {
    return err == EINPROGRESS || err == EINTR || would_block(err);
}
// The connection went away before accept took it: take the next one.
inline bool accept_again(int err) noexcept { return err == EINTR || err == ECONNABORTED; }
// A datagram socket's error as error_received reports it (ECONNREFUSED: an ICMP port
// unreachable answered an earlier send).
inline std::error_code datagram_error_code(int err) noexcept { return system_error_code(err); }

// Linux has no SO_NOSIGPIPE: each send says MSG_NOSIGNAL instead, so a write to a closed
// peer is an EPIPE error rather than a signal that kills the process. Elsewhere the socket
// carries SO_NOSIGPIPE (prepare_socket) and the flag is 0.
#if defined(MSG_NOSIGNAL)
inline constexpr int send_flags = MSG_NOSIGNAL;
#else
inline constexpr int send_flags = 0;
#endif

// Finishes a socket fresh from socket() or accept(), or adopted: non-blocking and
// close-on-exec unless `flags_set` (SOCK_NONBLOCK | SOCK_CLOEXEC did it), SIGPIPE off where
// sends cannot say so. On failure the socket is closed and errno kept: invalid_socket.
inline native_socket prepare_socket(native_socket fd, bool flags_set = false) noexcept {
    if (fd == -1) return fd;
    bool ok = flags_set;
    if (!ok) {
        const int fl = ::fcntl(fd, F_GETFL);
        ok = fl != -1 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != -1 &&
             ::fcntl(fd, F_SETFD, FD_CLOEXEC) != -1;
    }
#if defined(SO_NOSIGPIPE)
    // macOS and the BSDs have no MSG_NOSIGNAL: a write to a reset peer would raise SIGPIPE
    // unless the socket itself says no. An accepted socket does not inherit it everywhere.
    const int on = 1;
    ok = ok && ::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on) != -1;
#endif
    if (ok) return fd;
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
}

// A new socket as prepare_socket leaves it; invalid_socket with errno saying why.
inline native_socket open_socket(int domain, int type) noexcept {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    // Atomic flags: no window in which another thread's fork+exec inherits the socket.
    return prepare_socket(::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), true);
#else
    return prepare_socket(::socket(domain, type, 0), false);
#endif
}

// The next connection on `listener`, as prepare_socket leaves it, its peer's address in
// `peer` / `size`; invalid_socket with errno saying why (EAGAIN: none pending).
inline native_socket accept_socket(native_socket listener, sockaddr* peer,
                                   socklen_t* size) noexcept {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    return prepare_socket(::accept4(listener, peer, size, SOCK_NONBLOCK | SOCK_CLOEXEC), true);
#else
    return prepare_socket(::accept(listener, peer, size), false);
#endif
}

// 0 or -1 (errno says why), as the system calls.
inline int close_socket(native_socket s) noexcept { return ::close(s); }
inline int shutdown_send(native_socket s) noexcept { return ::shutdown(s, SHUT_WR); }
inline int set_socket_option(native_socket s, int level, int name, int value) noexcept {
    return ::setsockopt(s, level, name, &value, sizeof value);
}
inline int get_socket_option(native_socket s, int level, int name, int& value) noexcept {
    socklen_t size = sizeof value;
    return ::getsockopt(s, level, name, &value, &size);
}
// An option whose value is a structure (a multicast membership).
inline int set_socket_option_bytes(native_socket s, int level, int name, const void* value,
                                   std::size_t size) noexcept {
    return ::setsockopt(s, level, name, value, static_cast<socklen_t>(size));
}

// One send or receive: the bytes moved, or -1 (last_socket_error() says why). Sends never
// raise SIGPIPE.
inline std::ptrdiff_t socket_send(native_socket s, const char* data, std::size_t size) noexcept {
    return ::send(s, data, size, send_flags);
}
inline std::ptrdiff_t socket_recv(native_socket s, char* data, std::size_t size) noexcept {
    return ::recv(s, data, size, 0);
}
inline std::ptrdiff_t socket_sendto(native_socket s, const char* data, std::size_t size,
                                    const sockaddr* to, socklen_t to_size) noexcept {
    return ::sendto(s, data, size, send_flags, to, to_size);
}
inline std::ptrdiff_t socket_recvfrom(native_socket s, char* data, std::size_t size,
                                      sockaddr* from, socklen_t* from_size) noexcept {
    return ::recvfrom(s, data, size, 0, from, from_size);
}

// One datagram, whole: its size, or -1 (last_socket_error() says why). A datagram larger
// than `size` is not returned cut short: the call fails with EMSGSIZE (the kernel has
// dropped the rest, and recvmsg said so with MSG_TRUNC), as Winsock's recvfrom fails with
// WSAEMSGSIZE.
inline std::ptrdiff_t socket_recv_datagram(native_socket s, char* data, std::size_t size,
                                           sockaddr* from, socklen_t* from_size) noexcept {
    iovec into{data, size};
    msghdr message{};
    message.msg_name = from;
    message.msg_namelen = *from_size;
    message.msg_iov = &into;
    message.msg_iovlen = 1;
    const std::ptrdiff_t n = ::recvmsg(s, &message, 0);
    if (n == -1) return -1;
    *from_size = message.msg_namelen;
    if ((message.msg_flags & MSG_TRUNC) != 0) {
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

// The size of the next datagram waiting on `s`, or more (FIONREAD): Linux says exactly the
// next one's (udp(7), and unix(7) for Unix datagram sockets), the BSDs and macOS say the
// bytes of every datagram queued. 0 when none waits, when it is empty, or if the call
// fails: the caller's own buffer then takes it.
inline std::size_t next_datagram_size(native_socket s) noexcept {
    int n = 0;
    return ::ioctl(s, FIONREAD, &n) == 0 && n > 0 ? static_cast<std::size_t>(n) : 0;
}

// Listening sockets take SO_REUSEADDR, so a restarted server can bind its port while the
// last run's connections sit in TIME_WAIT.
inline constexpr bool listen_with_reuse_address = true;

// getaddrinfo's EAI_SYSTEM: the reason is in errno.
inline bool resolver_uses_errno(int rc) noexcept { return rc == EAI_SYSTEM; }

// An IPv6 scope's interface: its index by name (0: no such interface), its name by index
// (empty: none).
inline std::uint32_t interface_index(std::string_view name) noexcept {
    char text[IF_NAMESIZE];
    if (name.size() >= sizeof text) return 0;
    name.copy(text, name.size());
    text[name.size()] = '\0';
    return ::if_nametoindex(text);
}
inline std::string interface_name(std::uint32_t index) {
    char text[IF_NAMESIZE];
    return ::if_indextoname(index, text) != nullptr ? std::string(text) : std::string();
}

// A Unix socket's file: a stale one (left by an earlier run) is removed before binding,
// and only if it is a socket, never a regular file; a server removes its own on close.
inline void remove_stale_socket_file(const char* path) noexcept {
    struct stat st{};
    if (::stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path);
}
inline void remove_socket_file(const char* path) noexcept { ::unlink(path); }

// The calling thread's own T, made on first use and destroyed when the thread exits.
// (detail/windows.hpp cannot use a thread_local with a destructor for this.)
template <class T>
T& this_thread_instance() noexcept(noexcept(T())) {
    static thread_local T instance;
    return instance;
}

// Level-triggered "wake up" flag as a descriptor: an eventfd on Linux, a pipe elsewhere.
// notify() is async-signal-safe and thread-safe.
class wakeup_fd {
public:
    wakeup_fd() {
#if defined(__linux__)
        read_fd_ = write_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (read_fd_ == -1) throw_errno(errno, "eventfd");
#else
        int fds[2];
        if (::pipe(fds) == -1) throw_errno(errno, "pipe");
        read_fd_ = fds[0];
        write_fd_ = fds[1];
        try {
            set_nonblocking_cloexec(read_fd_);
            set_nonblocking_cloexec(write_fd_);
        } catch (...) {
            close_fds();
            throw;
        }
#endif
    }
    wakeup_fd(const wakeup_fd&) = delete;
    wakeup_fd& operator=(const wakeup_fd&) = delete;
    ~wakeup_fd() { close_fds(); }

    int fd() const noexcept { return read_fd_; }

    void notify() noexcept {
        const int saved = errno;  // may run inside a signal handler
        const std::uint64_t one = 1;
        // EAGAIN means the counter or pipe is already full: the wakeup is pending anyway.
        while (::write(write_fd_, &one, write_fd_ == read_fd_ ? sizeof one : 1) == -1 &&
               errno == EINTR) {
        }
        errno = saved;
    }

    void drain() noexcept {
        std::uint64_t buf[8];
        while (true) {
            const ::ssize_t n = ::read(read_fd_, buf, sizeof buf);
            if (read_fd_ != write_fd_ && n == static_cast<::ssize_t>(sizeof buf))
                continue;  // a pipe may hold more
            if (n == -1 && errno == EINTR) continue;
            return;
        }
    }

private:
    void close_fds() noexcept {
        if (write_fd_ != read_fd_ && write_fd_ != -1) ::close(write_fd_);
        if (read_fd_ != -1) ::close(read_fd_);
    }

    int read_fd_ = -1;
    int write_fd_ = -1;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
