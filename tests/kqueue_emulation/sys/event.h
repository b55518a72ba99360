// Test-only: kqueue(2) and kevent(2) emulated over Linux's epoll, so that the kqueue
// backend's logic runs here under the whole test suite. No BSD or macOS kernel is at hand;
// this is not one. It implements exactly what backend/kqueue.hpp uses, and what
// tests/test_kqueue_emulation.cpp pins to the FreeBSD and Apple man pages:
//
//   filters  EVFILT_READ, EVFILT_WRITE (one epoll registration per descriptor, shared by
//            both filters, each with its own udata), EVFILT_USER (an eventfd per event,
//            NOTE_TRIGGER only), EVFILT_SIGNAL (a signalfd per signal), EVFILT_PROC
//            (NOTE_EXIT only: a pidfd per process, reported once, the child unreaped);
//   flags    EV_ADD, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ONESHOT, EV_CLEAR in; EV_EOF and
//            EV_ERROR out.
//
// Where Linux cannot do what the man page says, this file does less, and says so here:
// - EV_EOF's fflags (the socket's pending error) is always 0: Linux reads a socket error
//   only by clearing it (SO_ERROR), which would change what the program's next recv sees.
// - data is the bytes readable (FIONREAD) for EVFILT_READ, 0 for a listening socket (not
//   its backlog) and 0 for EVFILT_WRITE (not the room left): the backend reads neither.
// - EV_CLEAR on a descriptor is epoll's EPOLLET for the whole descriptor: both filters of
//   one descriptor must agree on it (EINVAL otherwise), and an edge of one may report the
//   other again.
// - EVFILT_SIGNAL blocks the signal in the thread that adds it (a blocked signal stays
//   pending, even while ignored, and signalfd reads it there). Threads started before that
//   must block it too, or a process-directed signal may go to one of them and be dropped;
//   threads started after inherit the mask. Add and delete it from the same thread. A
//   standard signal sent again while pending is not counted twice (Linux keeps one); a
//   real-time signal is.
// - epoll watches open files, not descriptor numbers: a descriptor closed while a dup(2)
//   of it stays open keeps its registration, where kqueue would drop the events.
// - close(2) of the queue cannot be seen here: the EVFILT_USER and EVFILT_SIGNAL events
//   still registered keep their descriptors open until kqueue() hands out the queue's
//   number again. Delete them before closing the queue.
// - Timeouts are rounded up to whole milliseconds.
// - kevent() is safe to call from a signal handler (it blocks signals while it holds its
//   lock), and from any thread.
#ifndef IOLOOP_TESTS_KQUEUE_EMULATION_SYS_EVENT_H
#define IOLOOP_TESTS_KQUEUE_EMULATION_SYS_EVENT_H

#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

struct kevent {
    uintptr_t ident;       // a descriptor, a signal number, or the user's name for the event
    short filter;          // EVFILT_*
    unsigned short flags;  // EV_*
    unsigned int fflags;   // filter flags (NOTE_TRIGGER)
    intptr_t data;         // bytes readable, a signal's count, or an errno with EV_ERROR
    void* udata;           // passed through unchanged
};

// FreeBSD's values.
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_PROC (-5)
#define EVFILT_SIGNAL (-6)
#define NOTE_EXIT 0x80000000u
#if !defined(KQUEUE_EMULATION_NO_EVFILT_USER)  // as on OpenBSD: the backend's pipe path
#define EVFILT_USER (-11)
#define NOTE_TRIGGER 0x01000000u
#endif

#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004
#define EV_DISABLE 0x0008
#define EV_ONESHOT 0x0010
#define EV_CLEAR 0x0020
#define EV_ERROR 0x4000
#define EV_EOF 0x8000

#define EV_SET(kevp, a, b, c, d, e, f)   \
    do {                                 \
        struct kevent* ev_set_ = (kevp); \
        ev_set_->ident = (a);            \
        ev_set_->filter = (b);           \
        ev_set_->flags = (c);            \
        ev_set_->fflags = (d);           \
        ev_set_->data = (e);             \
        ev_set_->udata = (f);            \
    } while (0)

namespace kqueue_emulation {

using key = std::pair<uintptr_t, short>;  // kqueue's identity of an event: (ident, filter)

struct knote {
    struct kevent ev {};  // ident, filter, udata, and the flags that stay (EV_CLEAR, EV_ONESHOT)
    bool enabled = true;
    int aux = -1;              // EVFILT_USER: its eventfd; EVFILT_SIGNAL: its signalfd
    bool aux_watched = false;  // aux is in the epoll set (it is not while disabled)
    bool unblock = false;      // EVFILT_SIGNAL: the signal was not blocked before EV_ADD
};

// What epoll watches for one descriptor of the program, and which file it was: a number
// closed and handed out again is another file, whose events kqueue would have dropped.
struct watched_fd {
    unsigned mask = 0;  // the epoll events registered; 0: not in the epoll set
    dev_t dev = 0;
    ino_t ino = 0;
};

struct queue {
    explicit queue(int fd) : epfd(fd) {}
    queue(const queue&) = delete;
    queue& operator=(const queue&) = delete;
    ~queue() {
        // Only a queue whose descriptor was closed and reused gets here (or the process is
        // exiting): its own epfd is not ours to close any more, its aux descriptors are.
        for (auto& [k, n] : knotes) {
            if (n.aux != -1) ::close(n.aux);
        }
    }

    int epfd;
    std::mutex mutex;  // the tables below: a trigger may come from another thread
    std::map<key, knote> knotes;
    std::map<int, watched_fd> fds;  // the program's descriptors with a read or write event
    std::map<int, key> aux_owner;   // an aux descriptor -> its event
};

inline std::mutex registry_mutex;
inline std::map<int, std::shared_ptr<queue>> registry;  // by the descriptor kqueue() returned

// Blocks every signal for the length of a call, so that a signal handler calling kevent()
// on this thread cannot find the lock held; `caller` is the mask given back at the end
// (and during the epoll wait), which EVFILT_SIGNAL edits.
class signals_blocked {
public:
    signals_blocked() {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &caller);
    }
    ~signals_blocked() { pthread_sigmask(SIG_SETMASK, &caller, nullptr); }
    signals_blocked(const signals_blocked&) = delete;
    signals_blocked& operator=(const signals_blocked&) = delete;

    sigset_t caller;
};

inline bool is_fd_filter(short filter) { return filter == EVFILT_READ || filter == EVFILT_WRITE; }

inline bool is_known_filter(short filter) {
#if defined(EVFILT_USER)
    if (filter == EVFILT_USER) return true;
#endif
    return is_fd_filter(filter) || filter == EVFILT_SIGNAL || filter == EVFILT_PROC;
}

// Drops what is known of a descriptor that was closed (and maybe reused): kqueue deleted
// its events when it was closed, and epoll forgot it then too.
inline void forget_fd(queue& q, int fd) {
    q.knotes.erase({static_cast<uintptr_t>(fd), EVFILT_READ});
    q.knotes.erase({static_cast<uintptr_t>(fd), EVFILT_WRITE});
    q.fds.erase(fd);
}

// Brings epoll's registration of a descriptor in line with its enabled events.
inline int sync_fd(queue& q, int fd) {
    const knote* filters[2] = {nullptr, nullptr};
    unsigned want = 0;
    for (const short f : {EVFILT_READ, EVFILT_WRITE}) {
        auto it = q.knotes.find({static_cast<uintptr_t>(fd), f});
        if (it == q.knotes.end()) continue;
        filters[f == EVFILT_READ ? 0 : 1] = &it->second;
        if (it->second.enabled) want |= f == EVFILT_READ ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
    }
    if (filters[0] && filters[1] &&
        (filters[0]->ev.flags & EV_CLEAR) != (filters[1]->ev.flags & EV_CLEAR)) {
        return EINVAL;  // one epoll registration cannot be level for one, edge for the other
    }
    const knote* any = filters[0] ? filters[0] : filters[1];
    if (want != 0 && (any->ev.flags & EV_CLEAR)) want |= EPOLLET;

    watched_fd& w = q.fds[fd];
    if (want != w.mask) {
        epoll_event e{};
        e.events = want;
        e.data.fd = fd;
        const int op = w.mask == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (::epoll_ctl(q.epfd, op, fd, &e) == -1) return errno;
        w.mask = want;
    }
    if (!any) q.fds.erase(fd);
    return 0;
}

// The same for an EVFILT_USER or EVFILT_SIGNAL event's own descriptor.
inline int sync_aux(queue& q, knote& n) {
    if (n.enabled == n.aux_watched) return 0;
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = n.aux;
    if (::epoll_ctl(q.epfd, n.enabled ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, n.aux, &e) == -1)
        return errno;
    n.aux_watched = n.enabled;
    return 0;
}

// Reads everything a signalfd holds: how many times the signal came.
inline intptr_t drain_signals(int sfd) {
    intptr_t count = 0;
    signalfd_siginfo info[8];
    ::ssize_t n;
    while ((n = ::read(sfd, info, sizeof info)) > 0) {
        count += static_cast<intptr_t>(static_cast<std::size_t>(n) / sizeof info[0]);
    }
    return count;
}

inline void remove(queue& q, std::map<key, knote>::iterator it, sigset_t& caller) {
    knote& n = it->second;
    const key k = it->first;
    if (n.aux != -1) {
        if (k.second == EVFILT_SIGNAL) {
            // What came while it was watched was recorded for it, and goes with it.
            drain_signals(n.aux);
            if (n.unblock) sigdelset(&caller, static_cast<int>(k.first));
        }
        q.aux_owner.erase(n.aux);
        ::close(n.aux);  // leaves the epoll set with it
    }
    q.knotes.erase(it);
    if (is_fd_filter(k.second)) sync_fd(q, static_cast<int>(k.first));
}

// A new EVFILT_USER or EVFILT_SIGNAL event's descriptor.
inline int open_aux(knote& n, sigset_t& caller) {
#if defined(EVFILT_USER)
    if (n.ev.filter == EVFILT_USER) {
        n.aux = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        return n.aux == -1 ? errno : 0;
    }
#endif
    if (n.ev.filter == EVFILT_PROC) {
        // A pidfd: readable once the process has exited. ESRCH for no such process.
        if (n.ev.ident == 0 || n.ev.ident > static_cast<uintptr_t>(INT_MAX)) return ESRCH;
        const long fd = ::syscall(SYS_pidfd_open, static_cast<int>(n.ev.ident), 0);
        if (fd < 0) return errno;
        n.aux = static_cast<int>(fd);
        return 0;
    }
    const int sig = static_cast<int>(n.ev.ident);
    if (n.ev.ident == 0 || n.ev.ident >= static_cast<uintptr_t>(NSIG)) return EINVAL;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    n.aux = ::signalfd(-1, &one, SFD_NONBLOCK | SFD_CLOEXEC);
    if (n.aux == -1) return errno;
    n.unblock = !sigismember(&caller, sig);
    sigaddset(&caller, sig);  // blocked from the end of this call on
    return 0;
}

// One element of a changelist; an errno, or 0.
inline int apply(queue& q, const struct kevent& c, sigset_t& caller) {
    if (!is_known_filter(c.filter)) return EINVAL;
    const key k{c.ident, c.filter};
    if (is_fd_filter(c.filter)) {
        const int fd = static_cast<int>(c.ident);
        struct stat st {};
        if (c.ident > static_cast<uintptr_t>(INT_MAX) || ::fstat(fd, &st) == -1) {
            forget_fd(q, fd);
            return EBADF;
        }
        auto w = q.fds.find(fd);
        if (w != q.fds.end() && (w->second.dev != st.st_dev || w->second.ino != st.st_ino))
            forget_fd(q, fd);
        if (c.flags & EV_ADD) {
            watched_fd& fresh = q.fds[fd];
            fresh.dev = st.st_dev;
            fresh.ino = st.st_ino;
        }
    }

    auto it = q.knotes.find(k);
    if (c.flags & EV_DELETE) {
        if (it == q.knotes.end()) return ENOENT;
        remove(q, it, caller);
        return 0;
    }
    const bool added = it == q.knotes.end();
    if (added) {
        if (!(c.flags & EV_ADD)) return ENOENT;
        it = q.knotes.emplace(k, knote{}).first;
        it->second.ev.ident = c.ident;
        it->second.ev.filter = c.filter;
        if (!is_fd_filter(c.filter)) {
            if (const int err = open_aux(it->second, caller)) {
                q.knotes.erase(it);
                return err;
            }
            q.aux_owner[it->second.aux] = k;
        }
    }
    knote& n = it->second;
    const knote before = n;
    if (c.flags & EV_ADD) {
        n.ev.udata = c.udata;
        n.ev.flags = static_cast<unsigned short>(c.flags & (EV_CLEAR | EV_ONESHOT));
        if (c.filter == EVFILT_SIGNAL) n.ev.flags |= EV_CLEAR;  // "sets EV_CLEAR internally"
    }
    if (c.flags & EV_DISABLE) n.enabled = false;
    if (c.flags & EV_ENABLE) n.enabled = true;

    const int err = is_fd_filter(c.filter) ? sync_fd(q, static_cast<int>(c.ident)) : sync_aux(q, n);
    if (err) {
        if (added) {
            remove(q, it, caller);
        } else {
            n = before;
        }
        return err;
    }
#if defined(EVFILT_USER)
    if (c.filter == EVFILT_USER && (c.fflags & NOTE_TRIGGER)) {
        const std::uint64_t one = 1;
        if (::write(n.aux, &one, sizeof one) == -1 && errno != EAGAIN) return errno;
    }
#endif
    return 0;
}

// Turns one epoll event into kevents in out[0, room); returns how many.
inline int translate(queue& q, const epoll_event& e, struct kevent* out, int room,
                     sigset_t& caller) {
    int placed = 0;
    auto owner = q.aux_owner.find(e.data.fd);
    if (owner != q.aux_owner.end()) {
        auto it = q.knotes.find(owner->second);
        knote& n = it->second;
        struct kevent ev = n.ev;
        if (n.ev.filter == EVFILT_SIGNAL) {
            ev.data = drain_signals(n.aux);
            if (ev.data == 0) return 0;
        } else if (n.ev.filter == EVFILT_PROC) {
            // NOTE_EXIT with the wait status, the process left unreaped (WNOWAIT); then the
            // event is gone, as kqueue drops it once the process has exited.
            siginfo_t info{};
            ev.fflags = NOTE_EXIT;
            ev.flags |= EV_EOF;
            if (::waitid(P_PID, static_cast<id_t>(n.ev.ident), &info,
                         WEXITED | WNOHANG | WNOWAIT) == 0) {
                ev.data = info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8
                                                      : info.si_status & 0x7f;
            }
            out[placed++] = ev;
            remove(q, it, caller);
            return placed;
        } else if (n.ev.flags & EV_CLEAR) {
            std::uint64_t count;
            (void)!::read(n.aux, &count, sizeof count);  // back to untriggered
        }
        out[placed++] = ev;
        if (n.ev.flags & EV_ONESHOT) remove(q, it, caller);
        return placed;
    }

    const int fd = e.data.fd;
    const bool hangup = e.events & (EPOLLHUP | EPOLLERR);
    for (const short f : {EVFILT_READ, EVFILT_WRITE}) {
        auto it = q.knotes.find({static_cast<uintptr_t>(fd), f});
        if (it == q.knotes.end() || !it->second.enabled || placed == room) continue;
        struct kevent ev = it->second.ev;
        if (f == EVFILT_READ) {
            if (!(e.events & (EPOLLIN | EPOLLRDHUP)) && !hangup) continue;
            if (e.events & (EPOLLRDHUP | EPOLLHUP)) ev.flags |= EV_EOF;
            int readable = 0;
            if (::ioctl(fd, FIONREAD, &readable) == 0) ev.data = readable;
        } else {
            if (!(e.events & EPOLLOUT) && !hangup) continue;
            if (hangup) ev.flags |= EV_EOF;
        }
        out[placed++] = ev;
        if (ev.flags & EV_ONESHOT) remove(q, it, caller);
    }
    return placed;
}

inline std::shared_ptr<queue> find(int kq) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.find(kq);
    return it == registry.end() ? nullptr : it->second;
}

inline long long now_ms() {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<long long>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
}

// kevent() without errno: the count, or minus an errno.
inline int run(int kq, const struct kevent* changes, int nchanges, struct kevent* events,
               int nevents, const timespec* timeout) {
    if (nchanges < 0 || nevents < 0) return -EINVAL;
    long long wait_ms = -1;
    if (timeout) {
        if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1'000'000'000)
            return -EINVAL;
        wait_ms = static_cast<long long>(timeout->tv_sec) * 1000 +
                  (timeout->tv_nsec + 999'999) / 1'000'000;
        if (wait_ms > INT_MAX) wait_ms = INT_MAX;
    }
    signals_blocked blocked;  // first: a signal handler may call kevent() too
    const std::shared_ptr<queue> q = find(kq);
    if (!q) return -EBADF;

    int placed = 0;
    {
        std::lock_guard<std::mutex> lock(q->mutex);
        for (int i = 0; i < nchanges; ++i) {
            const struct kevent change = changes[i];  // events may be the same array
            const int err = apply(*q, change, blocked.caller);
            if (err == 0) continue;
            if (placed == nevents) return -err;  // no room: stop at the first failure
            events[placed] = change;
            events[placed].flags = EV_ERROR;
            events[placed].data = err;
            ++placed;
        }
    }
    // A receipt ends the call, as on FreeBSD; so does nowhere to put events.
    if (placed > 0 || nevents == 0) return placed;

    const long long deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms;
    epoll_event ready[64];
    const int most = nevents < 64 ? nevents : 64;
    for (;;) {
        const int n =
            ::epoll_pwait(q->epfd, ready, most, static_cast<int>(wait_ms), &blocked.caller);
        if (n == -1) return -errno;  // EINTR: a handler ran
        std::lock_guard<std::mutex> lock(q->mutex);
        for (int i = 0; i < n && placed < nevents; ++i)
            placed += translate(*q, ready[i], events + placed, nevents - placed, blocked.caller);
        if (placed > 0) return placed;
        // Woken with nothing to report (a stale event, a signal counted elsewhere): wait
        // out the rest of the time.
        if (deadline != -1) {
            wait_ms = deadline - now_ms();
            if (wait_ms <= 0) return 0;
        }
    }
}

}  // namespace kqueue_emulation

inline int kqueue() {
    kqueue_emulation::signals_blocked blocked;
    const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd == -1) return -1;
    std::lock_guard<std::mutex> lock(kqueue_emulation::registry_mutex);
    // A queue still listed under this number belonged to a kqueue closed since.
    kqueue_emulation::registry[epfd] = std::make_shared<kqueue_emulation::queue>(epfd);
    return epfd;
}

inline int kevent(int kq, const struct kevent* changelist, int nchanges, struct kevent* eventlist,
                  int nevents, const struct timespec* timeout) {
    const int result = kqueue_emulation::run(kq, changelist, nchanges, eventlist, nevents, timeout);
    if (result >= 0) return result;
    errno = -result;
    return -1;
}

#endif
