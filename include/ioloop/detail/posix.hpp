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
#include <system_error>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

IOLOOP_NAMESPACE_BEGIN

// A socket as the system names it: a descriptor here, a SOCKET handle on Windows.
using native_socket = int;
inline constexpr native_socket invalid_socket = -1;

namespace detail {

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
