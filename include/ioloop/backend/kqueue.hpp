// ioloop: the kqueue backend (macOS, FreeBSD, OpenBSD, NetBSD, DragonFly), written against
// the FreeBSD and Apple kqueue(2) man pages. On Linux the tests run it over an emulation
// (tests/kqueue_emulation); it has yet to run on a real BSD or macOS kernel.
//
// Level-triggered, as asyncio's add_reader expects: a callback runs on every iteration
// while its descriptor stays ready. EV_CLEAR would report a socket again only when more
// data arrives, and a transport reads one buffer per event, not until EAGAIN: what is left
// after that read would wait for the peer's next bytes (the suite's echo tests stall).
#ifndef IOLOOP_BACKEND_KQUEUE_HPP
#define IOLOOP_BACKEND_KQUEUE_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"

#if defined(IOLOOP_HAS_KQUEUE)

#include <cerrno>
#include <cstdint>
#include <ctime>

#include <fcntl.h>
#include <signal.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

class kqueue {
public:
    static constexpr std::string_view name = "kqueue";

    kqueue() : kq_(::kqueue()) {
        if (kq_ == -1) detail::throw_errno(errno, "kqueue");
        try {
            // Not inherited by fork(), but exec() would keep it open in the new program.
            if (::fcntl(kq_, F_SETFD, FD_CLOEXEC) == -1) detail::throw_errno(errno, "fcntl");
#if defined(EVFILT_USER)
            // EV_CLEAR: a trigger is consumed by the wait that reports it.
            change(wakeup_ident, EVFILT_USER, EV_ADD | EV_CLEAR, nullptr,
                   "kevent(EVFILT_USER, ident");
#else
            // The wakeup descriptor's data is null: the loop is never told about it.
            change(static_cast<std::uintptr_t>(wakeup_.fd()), EVFILT_READ, EV_ADD, nullptr,
                   "kevent(EVFILT_READ, wakeup fd");
#endif
        } catch (...) {
            ::close(kq_);
            throw;
        }
    }
    kqueue(const kqueue&) = delete;
    kqueue& operator=(const kqueue&) = delete;
    ~kqueue() {
#if defined(EVFILT_USER)
        // Closing the queue deletes its events anyway; deleting this one first also lets
        // the test emulation, which cannot see close(), release the eventfd behind it.
        struct kevent ev;
        set(ev, wakeup_ident, EVFILT_USER, EV_DELETE, 0, nullptr);
        ::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
#endif
        ::close(kq_);
    }

    void watch(int fd, unsigned old_events, unsigned new_events, void* data) {
        if (fd < 0) {
            detail::throw_errno(EBADF,
                                detail::concat({"kqueue backend: fd ", detail::decimal(fd)}));
        }
        const auto ident = static_cast<std::uintptr_t>(fd);
        // One kevent() call applies the changes, and with no room for receipts it stops
        // at the first that fails. So the adds go first: a bad descriptor fails there,
        // before any delete could hide it. EV_ADD of a filter already there only updates
        // it (its udata), which also re-adds it under a number closed and reused.
        struct kevent changes[4];
        int n = 0;
        for (const auto [bit, filter] : filters) {
            if (new_events & bit) set(changes[n++], ident, filter, EV_ADD, 0, data);
        }
        const int adds = n;
        for (const auto [bit, filter] : filters) {
            if ((old_events & bit) && !(new_events & bit))
                set(changes[n++], ident, filter, EV_DELETE, 0, nullptr);
        }
        if (n == 0 || ::kevent(kq_, changes, n, nullptr, 0, nullptr) != -1) return;
        const int err = errno;
        // ENOENT comes from a delete only: kqueue dropped the events when the descriptor
        // was closed (and it may be open again, as another file). EBADF with no add: it is
        // closed. Either way nothing is watched any more, which is what was asked.
        // EINTR: the man page says every change was applied.
        if (err == ENOENT || (err == EBADF && adds == 0) || err == EINTR) return;
        // The caller keeps the old interest: undo the filters this call may have added.
        for (const auto [bit, filter] : filters) {
            if ((new_events & bit) && !(old_events & bit)) {
                struct kevent undo;
                set(undo, ident, filter, EV_DELETE, 0, nullptr);
                ::kevent(kq_, &undo, 1, nullptr, 0, nullptr);
            }
        }
        detail::throw_errno(err, detail::concat({"kevent(EV_ADD, fd ", detail::decimal(fd), ")"}));
    }

    template <class Sink>
    void wait(std::chrono::nanoseconds timeout, Sink&& sink) {
        timespec ts{};
        timespec* limit = nullptr;  // null: forever
        if (timeout.count() >= 0) {
            // FreeBSD reads more than 24 hours as 24 hours; the loop recomputes on return.
            constexpr long long day = 86'400;
            const long long ns = timeout.count();
            const long long s = ns / 1'000'000'000;
            ts.tv_sec = static_cast<decltype(ts.tv_sec)>(s < day ? s : day);
            ts.tv_nsec = static_cast<decltype(ts.tv_nsec)>(s < day ? ns % 1'000'000'000 : 0);
            limit = &ts;
        }
        const int n = ::kevent(kq_, nullptr, 0, events_, max_events, limit);
        if (n == -1) {
            if (errno == EINTR) return;
            detail::throw_errno(errno, "kevent");
        }
        for (int i = 0; i < n; ++i) {
            const struct kevent& ev = events_[i];
            // NetBSD before 10 declares udata as intptr_t: reinterpret_cast takes either.
            void* const data = reinterpret_cast<void*>(ev.udata);
            unsigned ready;
            switch (ev.filter) {
                case EVFILT_READ:
#if !defined(EVFILT_USER)
                    if (data == nullptr) {
                        wakeup_.drain();
                        continue;
                    }
#endif
                    // EV_EOF here is a shut read side: a peer that only half-closed may
                    // still read what we write, so a writer is not woken for it. A reset
                    // shuts the write side too, and the write filter reports that.
                    ready = io_read;
                    break;
                case EVFILT_WRITE:
                    // EV_EOF: the reader is gone (a reset, a pipe's closed read end). The
                    // reader is told too, as epoll's EPOLLHUP / EPOLLERR tell both.
                    ready = (ev.flags & EV_EOF) ? io_read | io_write : io_write;
                    break;
                case EVFILT_SIGNAL:
                    ready = io_read;  // the count in ev.data: handlers run once per wakeup
                    break;
#if defined(EVFILT_PROC)
                case EVFILT_PROC:
                    ready = io_read;  // NOTE_EXIT: the child has exited (and is not reaped)
                    break;
#endif
                default:
                    continue;  // EVFILT_USER: interrupt() woke the wait, nothing to report
            }
            sink(data, ready);
        }
    }

    // Thread-safe, and signal-safe (one system call, errno kept): the loop's SIGCHLD
    // handler calls it.
    void interrupt() noexcept {
#if defined(EVFILT_USER)
        const int saved = errno;
        struct kevent ev;
        set(ev, wakeup_ident, EVFILT_USER, 0, NOTE_TRIGGER, nullptr);
        ::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
        errno = saved;
#else
        wakeup_.notify();
#endif
    }

    // Signals as events (EVFILT_SIGNAL, backend::signal_backend): the signal's
    // disposition becomes SIG_IGN, so no handler runs in signal context. The filter
    // records "all attempts to deliver a signal to a process, even if the signal has been
    // marked as SIG_IGN, except for the SIGCHLD signal" (FreeBSD), and an ignored SIGCHLD
    // would make the kernel reap the children: SIGCHLD stays with the loop's sigaction
    // handler (false). So does every signal on Apple's kernels, whose filter sees "only
    // signals sent to the process, not to a particular thread": an ignored raise() or
    // pthread_kill() would be lost there.
    bool watch_signal(int sig, void* data, struct sigaction& saved) {
#if defined(__APPLE__)
        (void)sig;
        (void)data;
        (void)saved;
        return false;
#else
        if (sig == SIGCHLD) return false;
        // The event first: an arrival between the two calls is recorded, not lost.
        change(static_cast<std::uintptr_t>(sig), EVFILT_SIGNAL, EV_ADD, data,
               "kevent(EVFILT_SIGNAL, signal");
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        if (::sigaction(sig, &ignore, &saved) == -1) {
            const int err = errno;  // SIGKILL, SIGSTOP
            delete_signal_event(sig);
            const detail::decimal number(sig);
            detail::throw_errno(err,
                                detail::concat({"add_signal_handler: sigaction(", number, ")"}));
        }
        return true;
#endif
    }

    // The disposition first: an arrival from then on is the old disposition's business.
    void unwatch_signal(int sig, const struct sigaction& saved) noexcept {
        ::sigaction(sig, &saved, nullptr);
        delete_signal_event(sig);
    }

    // A child's exit as an event (EVFILT_PROC, backend::process_backend): reported once,
    // then the kernel drops the event. A child that is gone already (ESRCH) or a system
    // without EVFILT_PROC: false, and the caller waits for it another way.
    bool watch_process(int pid, void* data) noexcept {
#if defined(EVFILT_PROC) && defined(NOTE_EXIT)
        struct kevent ev;
        set(ev, static_cast<std::uintptr_t>(pid), EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT,
            data);
        return ::kevent(kq_, &ev, 1, nullptr, 0, nullptr) == 0;
#else
        (void)pid;
        (void)data;
        return false;
#endif
    }

    void unwatch_process(int pid) noexcept {
#if defined(EVFILT_PROC)
        struct kevent ev;
        set(ev, static_cast<std::uintptr_t>(pid), EVFILT_PROC, EV_DELETE, 0, nullptr);
        (void)::kevent(kq_, &ev, 1, nullptr, 0, nullptr);  // ENOENT: reported and dropped
#else
        (void)pid;
#endif
    }

private:
    // The man pages' struct kevent is 32 bytes (64 on FreeBSD 12 and later): 128 of them
    // keep the loop object small, and level-triggered events left over come next time.
    static constexpr int max_events = 128;
    static constexpr std::uintptr_t wakeup_ident = 0;  // EVFILT_USER idents are ours to pick

    // The field types differ between systems (NetBSD: 32-bit filter and flags, and before
    // version 10 an intptr_t udata), and some EV_SETs initialise with braces, where a
    // narrowing conversion does not compile: every value is converted here, once.
    using filter_type = decltype(kevent::filter);
    using flags_type = decltype(kevent::flags);
    using fflags_type = decltype(kevent::fflags);
    using udata_type = decltype(kevent::udata);

    static void set(struct kevent& ev, std::uintptr_t ident, filter_type filter, unsigned flags,
                    unsigned fflags, void* data) noexcept {
        EV_SET(&ev, ident, filter, static_cast<flags_type>(flags), static_cast<fflags_type>(fflags),
               0, reinterpret_cast<udata_type>(data));
    }

    struct filter_bit {
        unsigned bit;
        filter_type filter;
    };
    static constexpr filter_bit filters[2] = {{io_read, EVFILT_READ}, {io_write, EVFILT_WRITE}};

    void delete_signal_event(int sig) noexcept {
        struct kevent ev;
        set(ev, static_cast<std::uintptr_t>(sig), EVFILT_SIGNAL, EV_DELETE, 0, nullptr);
        ::kevent(kq_, &ev, 1, nullptr, 0, nullptr);
    }

    // One change, applied now; `what` names it in the error, completed by the ident.
    void change(std::uintptr_t ident, filter_type filter, unsigned flags, void* data,
                const char* what) {
        struct kevent ev;
        set(ev, ident, filter, flags, 0, data);
        if (::kevent(kq_, &ev, 1, nullptr, 0, nullptr) == -1) {
            const detail::decimal number(static_cast<long long>(ident));
            detail::throw_errno(errno, detail::concat({what, " ", number, ")"}));
        }
    }

#if !defined(EVFILT_USER)
    detail::wakeup_fd wakeup_;  // first: constructed before, destroyed after kq_
#endif
    int kq_;
    struct kevent events_[max_events];
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_HAS_KQUEUE
#endif
