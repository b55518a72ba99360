// ioloop: the select() backend on POSIX, the lowest common denominator. An fd_set holds
// only descriptors below FD_SETSIZE: watching a larger one throws instead of writing past
// it. Windows' select, which takes sockets only, is backend/select_winsock.hpp.
#ifndef IOLOOP_BACKEND_SELECT_HPP
#define IOLOOP_BACKEND_SELECT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"

#if defined(IOLOOP_HAS_SELECT) && defined(IOLOOP_POSIX)

#include <cerrno>
#include <system_error>

#include <sys/select.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class select {
public:
    static constexpr std::string_view name = "select";

    select() {
        FD_ZERO(&read_set_);
        FD_ZERO(&write_set_);
        watch(wakeup_.fd(), 0, io_read, nullptr);
    }
    select(const select&) = delete;
    select& operator=(const select&) = delete;

    void watch(int fd, unsigned /*old_events*/, unsigned new_events, void* data) {
        if (fd < 0 || fd >= FD_SETSIZE) {
            throw std::system_error(
                std::make_error_code(std::errc::invalid_argument),
                detail::concat({"select backend: fd ", detail::decimal(fd),
                                " is outside [0, FD_SETSIZE = ", detail::decimal(FD_SETSIZE),
                                "); use the epoll or poll backend"}));
        }
        if (new_events & io_read) {
            FD_SET(fd, &read_set_);
        } else {
            FD_CLR(fd, &read_set_);
        }
        if (new_events & io_write) {
            FD_SET(fd, &write_set_);
        } else {
            FD_CLR(fd, &write_set_);
        }
        data_[fd] = data;
        if (new_events != 0 && fd >= max_fd_) max_fd_ = fd;
        while (max_fd_ >= 0 && !FD_ISSET(max_fd_, &read_set_) && !FD_ISSET(max_fd_, &write_set_))
            --max_fd_;
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        fd_set readable = read_set_;
        fd_set writable = write_set_;
        timeval tv{};
        timeval* ptv = nullptr;
        if (timeout.count() >= 0) {
            const long long us = (timeout.count() + 999) / 1000;  // rounded up, like epoll's
            tv.tv_sec = static_cast<decltype(tv.tv_sec)>(us / 1000000);
            tv.tv_usec = static_cast<decltype(tv.tv_usec)>(us % 1000000);
            ptv = &tv;
        }
        const int n = ::select(max_fd_ + 1, &readable, &writable, nullptr, ptv);
        if (n == -1) {
            if (errno == EINTR) return;
            if (errno == EBADF) {
                forget_closed(sink);
                return;
            }
            detail::throw_errno(errno, "select");
        }
        for (int fd = 0; n > 0 && fd <= max_fd_; ++fd) {
            unsigned ready = 0;
            if (FD_ISSET(fd, &readable)) ready |= io_read;
            if (FD_ISSET(fd, &writable)) ready |= io_write;
            if (ready == 0) continue;
            if (fd == wakeup_.fd()) {
                wakeup_.drain();
            } else if (data_[fd] != nullptr) {  // null: unwatched by an earlier sink call
                sink(data_[fd], ready);
            }
        }
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    // select() fails with EBADF when a watched fd was closed without being unwatched. Like
    // the poll backend, report such fds once (their callbacks see EBADF), then forget them.
    template <class Sink>
    void forget_closed(Sink& sink) {
        for (int fd = 0; fd <= max_fd_; ++fd) {
            if ((FD_ISSET(fd, &read_set_) || FD_ISSET(fd, &write_set_)) &&
                !detail::is_open_fd(fd)) {
                void* data = data_[fd];
                watch(fd, 0, 0, nullptr);
                sink(data, io_read | io_write);
            }
        }
    }

    detail::wakeup_fd wakeup_;
    fd_set read_set_;
    fd_set write_set_;
    int max_fd_ = -1;
    void* data_[FD_SETSIZE] = {};
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_SELECT && IOLOOP_POSIX
#endif
