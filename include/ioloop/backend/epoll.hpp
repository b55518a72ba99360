// ioloop: the epoll backend (Linux). Level-triggered, as asyncio's add_reader expects:
// a callback runs on every iteration while its descriptor stays ready.
#ifndef IOLOOP_BACKEND_EPOLL_HPP
#define IOLOOP_BACKEND_EPOLL_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"

#if defined(IOLOOP_HAS_EPOLL)

#include <cerrno>

#include <sys/epoll.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class epoll {
public:
    static constexpr std::string_view name = "epoll";

    epoll() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ == -1) detail::throw_errno(errno, "epoll_create1");
        try {
            // The wakeup descriptor's data is null: the loop is never told about it.
            add(wakeup_.fd(), EPOLLIN, nullptr);
        } catch (...) {
            ::close(epfd_);
            throw;
        }
    }
    epoll(const epoll&) = delete;
    epoll& operator=(const epoll&) = delete;
    ~epoll() { ::close(epfd_); }

    void watch(int fd, unsigned old_events, unsigned new_events, void* data) {
        const unsigned mask = to_epoll(new_events);
        if (new_events == 0) {
            // ENOENT / EBADF: the fd was closed before it was unwatched; it is gone anyway.
            if (::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr) == -1 && errno != ENOENT &&
                errno != EBADF) {
                detail::throw_errno(
                    errno, detail::concat({"epoll_ctl(DEL, fd ", detail::decimal(fd), ")"}));
            }
        } else if (old_events == 0) {
            add(fd, mask, data);
        } else {
            epoll_event ev{};
            ev.events = mask;
            ev.data.ptr = data;
            if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == -1) {
                // The fd was closed and reopened under the same number: epoll forgot it.
                if (errno != ENOENT) {
                    detail::throw_errno(
                        errno, detail::concat({"epoll_ctl(MOD, fd ", detail::decimal(fd), ")"}));
                }
                add(fd, mask, data);
            }
        }
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        const int n = ::epoll_wait(epfd_, events_, max_events, detail::timeout_ms(timeout));
        if (n == -1) {
            if (errno == EINTR) return;
            detail::throw_errno(errno, "epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            const epoll_event& ev = events_[i];
            if (ev.data.ptr == nullptr) {
                wakeup_.drain();
                continue;
            }
            unsigned ready = 0;
            if (ev.events & (EPOLLIN | EPOLLPRI)) ready |= io_read;
            if (ev.events & EPOLLOUT) ready |= io_write;
            if (ev.events & (EPOLLERR | EPOLLHUP)) ready |= io_read | io_write;
            sink(ev.data.ptr, ready);
        }
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    static constexpr int max_events = 256;

    static unsigned to_epoll(unsigned events) noexcept {
        return ((events & io_read) ? unsigned(EPOLLIN) : 0u) |
               ((events & io_write) ? unsigned(EPOLLOUT) : 0u);
    }

    void add(int fd, unsigned mask, void* data) {
        epoll_event ev{};
        ev.events = mask;
        ev.data.ptr = data;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == -1) {
            if (errno == EEXIST && ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) return;
            detail::throw_errno(errno,
                                detail::concat({"epoll_ctl(ADD, fd ", detail::decimal(fd), ")"}));
        }
    }

    detail::wakeup_fd wakeup_;  // first: constructed before, destroyed after epfd_
    int epfd_;
    epoll_event events_[max_events];
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_EPOLL
#endif
