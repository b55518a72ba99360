// ioloop: the poll() backend (any POSIX system). One pollfd per watched descriptor, kept
// dense: removal moves the last entry into the hole, an index by fd finds entries in O(1).
#ifndef IOLOOP_BACKEND_POLL_HPP
#define IOLOOP_BACKEND_POLL_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/pod_vector.hpp"
#include "ioloop/detail/posix.hpp"

#if defined(IOLOOP_HAS_POLL)

#include <cerrno>
#include <cstddef>

#include <poll.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class poll {
public:
    static constexpr std::string_view name = "poll";

    poll() { insert(wakeup_.fd(), POLLIN, nullptr); }
    poll(const poll&) = delete;
    poll& operator=(const poll&) = delete;

    void watch(int fd, unsigned /*old_events*/, unsigned new_events, void* data) {
        if (fd < 0)
            detail::throw_errno(EBADF, detail::concat({"poll backend: fd ", detail::decimal(fd)}));
        const std::size_t ufd = static_cast<std::size_t>(fd);
        const bool present = ufd < slot_of_.size() && slot_of_[ufd] != none;
        if (new_events == 0) {
            if (present) erase(ufd);
            return;
        }
        const short mask = static_cast<short>(((new_events & io_read) ? POLLIN : 0) |
                                              ((new_events & io_write) ? POLLOUT : 0));
        if (present) {
            fds_[slot_of_[ufd]].events = mask;
            data_[slot_of_[ufd]] = data;
        } else {
            insert(fd, mask, data);
        }
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        const int n =
            ::poll(fds_.data(), static_cast<nfds_t>(fds_.size()), detail::timeout_ms(timeout));
        if (n == -1) {
            if (errno == EINTR) return;
            detail::throw_errno(errno, "poll");
        }
        // The sink may watch and unwatch descriptors (a transport reacting to its event):
        // an entry erased moves the last one into its slot, and an entry added has no
        // revents yet. Slot i is looked at again if it changed under the sink.
        for (std::size_t i = 0; i < fds_.size(); ++i) {
            const short re = fds_[i].revents;
            if (re == 0) continue;
            if (data_[i] == nullptr) {
                wakeup_.drain();
                continue;
            }
            void* data = data_[i];
            if (re & POLLNVAL) {
                // Closed while watched: its callbacks run once and see EBADF, then the fd is
                // forgotten, as epoll forgets a closed fd (else this would spin).
                erase(static_cast<std::size_t>(fds_[i].fd));
                --i;  // the last entry moved into slot i
                sink(data, io_read | io_write);
                continue;
            }
            unsigned ready = 0;
            if (re & (POLLIN | POLLPRI)) ready |= io_read;
            if (re & POLLOUT) ready |= io_write;
            if (re & (POLLERR | POLLHUP)) ready |= io_read | io_write;
            const int fd = fds_[i].fd;
            fds_[i].revents = 0;
            sink(data, ready);
            if (i < fds_.size() && fds_[i].fd != fd) --i;
        }
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    static constexpr std::size_t none = static_cast<std::size_t>(-1);

    void insert(int fd, short mask, void* data) {
        const std::size_t ufd = static_cast<std::size_t>(fd);
        if (ufd >= slot_of_.size()) slot_of_.resize(ufd + 1, none);
        slot_of_[ufd] = fds_.size();
        fds_.push_back({fd, mask, 0});
        data_.push_back(data);
    }

    void erase(std::size_t ufd) {
        const std::size_t slot = slot_of_[ufd];
        const std::size_t last = fds_.size() - 1;
        if (slot != last) {
            fds_[slot] = fds_[last];
            data_[slot] = data_[last];
            slot_of_[static_cast<std::size_t>(fds_[slot].fd)] = slot;
        }
        fds_.pop_back();
        data_.pop_back();
        slot_of_[ufd] = none;
    }

    detail::wakeup_fd wakeup_;
    detail::pod_vector<pollfd> fds_;
    detail::pod_vector<void*> data_;           // parallel to fds_
    detail::pod_vector<std::size_t> slot_of_;  // fd -> index in fds_, or none
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_POLL
#endif
