// ioloop: the select() backend on Windows, where select takes sockets only and an fd_set
// is a counted array of SOCKET handles rather than a bitmap. The sets are built for each
// wait from the watched sockets, in arrays as long as needed: Winsock's select reads
// fd_count entries, and FD_SETSIZE only sizes the struct its macros work on.
#ifndef IOLOOP_BACKEND_SELECT_WINSOCK_HPP
#define IOLOOP_BACKEND_SELECT_WINSOCK_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/pod_vector.hpp"
#include "ioloop/detail/windows.hpp"

#if defined(IOLOOP_HAS_SELECT) && defined(IOLOOP_WINDOWS)

#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class select {
public:
    static constexpr std::string_view name = "select";

    select() { watch(wakeup_.fd(), 0, io_read, nullptr); }
    select(const select&) = delete;
    select& operator=(const select&) = delete;

    void watch(native_socket s, unsigned /*old_events*/, unsigned new_events, void* data) {
        const std::size_t index = detail::fd_index(s);
        if (index >= position_.size()) position_.resize(index + 1, 0);
        std::size_t& at = position_[index];  // 1 + its place in watched_, 0 if absent
        if (new_events == 0) {
            if (at == 0) return;
            watched_[at - 1] = watched_.back();
            position_[detail::fd_index(watched_[at - 1].s)] = at;
            watched_.pop_back();
            at = 0;
            return;
        }
        if (at == 0) {
            watched_.push_back(entry{s, 0, nullptr});
            at = watched_.size();
        }
        watched_[at - 1].events = new_events;
        watched_[at - 1].data = data;
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        const std::size_t n = watched_.size();
        readable_.resize(set_words(n));
        writable_.resize(set_words(n));
        failed_.resize(set_words(n));
        set_view read{readable_.data()}, write{writable_.data()}, except{failed_.data()};
        read.clear();
        write.clear();
        except.clear();
        for (const entry& e : watched_) {
            if (e.events & io_read) read.add(e.s);
            // A failed connect shows in the exception set on Windows, not the write set.
            if (e.events & io_write) {
                write.add(e.s);
                except.add(e.s);
            }
        }
        timeval tv{};
        timeval* ptv = nullptr;
        if (timeout.count() >= 0) {
            const long long us = (timeout.count() + 999) / 1000;  // rounded up
            tv.tv_sec = static_cast<long>(us / 1000000);
            tv.tv_usec = static_cast<long>(us % 1000000);
            ptv = &tv;
        }
        // The first argument is ignored by Winsock.
        if (::select(0, read.native(), write.native(), except.native(), ptv) == SOCKET_ERROR) {
            const int err = ::WSAGetLastError();
            if (err == WSAENOTSOCK) {
                forget_closed(sink);
                return;
            }
            detail::throw_system_error(static_cast<unsigned long>(err), "select");
        }
        report(read, io_read, sink);
        report(write, io_write, sink);
        report(except, io_read | io_write, sink);
    }

    void interrupt() noexcept { wakeup_.notify(); }

private:
    struct entry {
        native_socket s;
        unsigned events;
        void* data;
    };

    // An fd_set of any length: a count, then that many handles. Stored as SOCKET-sized
    // words so that the count's alignment and the handles' match Winsock's own struct.
    class set_view {
    public:
        explicit set_view(SOCKET* words) noexcept : words_(words) {}
        void clear() noexcept { native()->fd_count = 0; }
        void add(SOCKET s) noexcept { words_[1 + native()->fd_count++] = s; }
        u_int size() const noexcept { return reinterpret_cast<const fd_set*>(words_)->fd_count; }
        SOCKET operator[](u_int i) const noexcept { return words_[1 + i]; }
        fd_set* native() noexcept { return reinterpret_cast<fd_set*>(words_); }

    private:
        SOCKET* words_;
    };
    static std::size_t set_words(std::size_t sockets) noexcept { return 1 + sockets; }

    // Looks each ready socket up again: an earlier sink call may have unwatched it.
    template <class Sink>
    void report(const set_view& ready, unsigned events, Sink& sink) {
        for (u_int i = 0; i < ready.size(); ++i) {
            const native_socket s = ready[i];
            if (s == wakeup_.fd()) {
                wakeup_.drain();
                continue;
            }
            const std::size_t index = detail::fd_index(s);
            if (index >= position_.size() || position_[index] == 0) continue;
            const entry& e = watched_[position_[index] - 1];
            if (e.events & events) sink(e.data, events);
        }
    }

    // select() fails with WSAENOTSOCK when a watched socket was closed without being
    // unwatched: report such sockets once (their callbacks see the error), then forget them.
    template <class Sink>
    void forget_closed(Sink& sink) {
        for (std::size_t i = watched_.size(); i-- > 0;) {
            if (i >= watched_.size() || detail::is_open_fd(watched_[i].s)) continue;
            const entry gone = watched_[i];
            watch(gone.s, gone.events, 0, nullptr);
            sink(gone.data, io_read | io_write);
        }
    }

    detail::wakeup_fd wakeup_;
    detail::pod_vector<entry> watched_;
    detail::pod_vector<std::size_t> position_;  // by fd_index
    detail::pod_vector<SOCKET> readable_, writable_, failed_;
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_SELECT && IOLOOP_WINDOWS
#endif
