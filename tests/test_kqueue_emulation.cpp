// tests/kqueue_emulation/sys/event.h, the kqueue over epoll that the kqueue backend runs on
// here: each case pins one statement of the kqueue(2) man pages (FreeBSD 14, Apple's xnu),
// quoted above it, for exactly the filters and flags the backend uses. Where the emulation
// knowingly does less than a kernel would, its header says so; nothing here relies on that.
#include <sys/event.h>  // the emulation's: tests/kqueue_emulation is first on the path

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

// A queue, closed at the end of the scope.
struct kq {
    int fd = ::kqueue();
    kq() { REQUIRE(fd >= 0); }
    ~kq() { ::close(fd); }
    kq(const kq&) = delete;
    kq& operator=(const kq&) = delete;
};

// Two connected descriptors, closed at the end of the scope unless closed before.
struct fd_pair {
    int fds[2] = {-1, -1};
    fd_pair() = default;
    fd_pair(fd_pair&& other) noexcept : fds{other.fds[0], other.fds[1]} {
        other.fds[0] = other.fds[1] = -1;
    }
    fd_pair& operator=(fd_pair&& other) noexcept {
        std::swap(fds, other.fds);
        return *this;
    }
    int& operator[](int i) { return fds[i]; }
    void close(int i) {
        ::close(fds[i]);
        fds[i] = -1;
    }
    ~fd_pair() {
        for (int fd : fds) {
            if (fd != -1) ::close(fd);
        }
    }
};

fd_pair make_pipe() {
    fd_pair p;
    REQUIRE(::pipe2(p.fds, O_NONBLOCK | O_CLOEXEC) == 0);
    return p;
}

fd_pair make_socketpair() {
    fd_pair p;
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.fds) == 0);
    return p;
}

// A connected TCP pair over the loopback: [0] the client, [1] the accepted side.
fd_pair make_tcp_pair() {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof addr;
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), size) == 0);
    REQUIRE(::listen(listener, 1) == 0);
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &size) == 0);
    fd_pair p;
    p[0] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(::connect(p[0], reinterpret_cast<sockaddr*>(&addr), size) == 0);
    p[1] = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(p[1] >= 0);
    ::close(listener);
    return p;
}

// One change, applied with no room for receipts: 0, or the errno kevent() failed with.
int change(int q, uintptr_t ident, short filter, unsigned short flags, unsigned fflags = 0,
           void* udata = nullptr) {
    struct kevent ev;
    EV_SET(&ev, ident, filter, flags, fflags, 0, udata);
    return ::kevent(q, &ev, 1, nullptr, 0, nullptr) == -1 ? errno : 0;
}

// The events kevent() returns within `wait` (zero: a poll).
std::vector<struct kevent> events(int q, std::chrono::milliseconds wait = 0ms) {
    struct kevent out[8];
    timespec t{};
    t.tv_sec = static_cast<time_t>(wait.count() / 1000);
    t.tv_nsec = static_cast<long>(wait.count() % 1000 * 1'000'000);
    const int n = ::kevent(q, nullptr, 0, out, 8, &t);
    REQUIRE(n >= 0);
    return {out, out + n};
}

void put(int fd, const char* bytes, std::size_t size) {
    REQUIRE(::write(fd, bytes, size) == static_cast<::ssize_t>(size));
}

int tag_a, tag_b;  // distinct udata values

}  // namespace

// "Re-adding an existing event will modify the parameters of the original event, and not
// result in a duplicate entry." (EV_ADD)
TEST_CASE("EV_ADD again modifies the event: one entry, the new udata") {
    kq q;
    fd_pair p = make_pipe();
    REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD, 0, &tag_a) == 0);
    REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD, 0, &tag_b) == 0);
    put(p[1], "x", 1);
    const auto got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].udata == &tag_b);
}

// "A kevent is identified by the (ident, filter) pair; there may only be one unique kevent
// per kqueue." The read and write events of one descriptor are two events, each with its
// own udata (the emulation shares one epoll registration between them).
TEST_CASE("the read and write filters of one descriptor are separate events") {
    kq q;
    fd_pair s = make_socketpair();
    REQUIRE(change(q.fd, s[0], EVFILT_READ, EV_ADD, 0, &tag_a) == 0);
    REQUIRE(change(q.fd, s[0], EVFILT_WRITE, EV_ADD, 0, &tag_b) == 0);
    put(s[1], "hello", 5);
    auto got = events(q.fd);
    REQUIRE(got.size() == 2);
    const struct kevent& r = got[0].filter == EVFILT_READ ? got[0] : got[1];
    const struct kevent& w = got[0].filter == EVFILT_READ ? got[1] : got[0];
    CHECK(r.filter == EVFILT_READ);
    CHECK(r.ident == static_cast<uintptr_t>(s[0]));
    CHECK(r.udata == &tag_a);
    CHECK(w.filter == EVFILT_WRITE);
    CHECK(w.udata == &tag_b);

    // Deleting one leaves the other as it was.
    REQUIRE(change(q.fd, s[0], EVFILT_WRITE, EV_DELETE) == 0);
    got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].filter == EVFILT_READ);
    CHECK(got[0].udata == &tag_a);
}

// EVFILT_READ "returns whenever there is data available to read", and "If the filter
// indicates that the condition that triggered the event no longer holds, the kevent is
// removed from the kqueue and is not returned." Without EV_CLEAR: level.
TEST_CASE("level-triggered by default: returned on every call while data is there") {
    kq q;
    fd_pair s = make_socketpair();
    REQUIRE(change(q.fd, s[0], EVFILT_READ, EV_ADD) == 0);
    CHECK(events(q.fd).empty());
    put(s[1], "abc", 3);
    for (int i = 0; i < 3; ++i) {
        const auto got = events(q.fd);
        REQUIRE(got.size() == 1);
        CHECK(got[0].data == 3);  // "data contains the number of bytes of protocol data"
    }
    char buf[8];
    REQUIRE(::read(s[0], buf, sizeof buf) == 3);
    CHECK(events(q.fd).empty());
}

// EV_CLEAR: "After the event is retrieved by the user, its state is reset. This is useful
// for filters which report state transitions instead of the current state."
TEST_CASE("EV_CLEAR: reported once per change of state, not while it holds") {
    kq q;
    fd_pair s = make_socketpair();
    REQUIRE(change(q.fd, s[0], EVFILT_READ, EV_ADD | EV_CLEAR) == 0);
    put(s[1], "abc", 3);
    auto got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].data == 3);
    CHECK(events(q.fd).empty());  // still readable, but already reported
    put(s[1], "de", 2);           // new data: a new transition
    got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].data == 5);
}

// EV_ONESHOT: "Causes the event to return only the first occurrence of the filter being
// triggered. After the user retrieves the event from the kqueue, it is deleted."
TEST_CASE("EV_ONESHOT: returned once, then deleted") {
    kq q;
    fd_pair p = make_pipe();
    REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, &tag_a) == 0);
    put(p[1], "x", 1);
    const auto got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].udata == &tag_a);
    CHECK(events(q.fd).empty());  // still readable, but the event is gone
    CHECK(change(q.fd, p[0], EVFILT_READ, EV_DELETE) == ENOENT);
}

// EV_DISABLE: "Disable the event so kevent() will not return it. The filter itself is not
// disabled." EV_ENABLE: "Permit kevent() to return the event if it is triggered." EV_ADD:
// "Adding an event automatically enables it, unless overridden by the EV_DISABLE flag."
TEST_CASE("EV_DISABLE keeps the event from being returned; EV_ENABLE returns it again") {
    kq q;
    fd_pair p = make_pipe();
    SUBCASE("disabled after adding") {
        REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD) == 0);
        REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_DISABLE) == 0);
    }
    SUBCASE("added disabled") {
        REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD | EV_DISABLE) == 0);
    }
    put(p[1], "x", 1);
    CHECK(events(q.fd).empty());
    REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ENABLE) == 0);
    const auto got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].data == 1);
    // Neither works on an event that is not there: "ENOENT The event could not be found to
    // be modified or deleted."
    CHECK(change(q.fd, p[1], EVFILT_WRITE, EV_DISABLE) == ENOENT);
}

// "ENOENT The event could not be found to be modified or deleted."
TEST_CASE("EV_DELETE twice: the second fails with ENOENT") {
    kq q;
    fd_pair p = make_pipe();
    REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD) == 0);
    CHECK(change(q.fd, p[0], EVFILT_READ, EV_DELETE) == 0);
    CHECK(change(q.fd, p[0], EVFILT_READ, EV_DELETE) == ENOENT);
    put(p[1], "x", 1);
    CHECK(events(q.fd).empty());
}

// "Calling close() on a file descriptor will remove any kevents that reference the
// descriptor." and "EBADF The specified descriptor is invalid."
TEST_CASE("close() removes the descriptor's events, also under a number handed out again") {
    kq q;
    fd_pair first = make_pipe();
    const int number = first[0];
    REQUIRE(change(q.fd, number, EVFILT_READ, EV_ADD, 0, &tag_a) == 0);
    first.close(0);
    CHECK(change(q.fd, number, EVFILT_READ, EV_DELETE) == EBADF);  // closed
    CHECK(change(q.fd, number, EVFILT_READ, EV_ADD) == EBADF);

    REQUIRE(change(q.fd, first[1], EVFILT_WRITE, EV_ADD, 0, &tag_a) == 0);
    const int write_end = first[1];
    first.close(1);
    fd_pair second = make_pipe();  // the lowest free numbers: the ones just closed
    REQUIRE(second[0] == number);
    REQUIRE(second[1] == write_end);
    put(second[1], "x", 1);
    CHECK(events(q.fd).empty());  // the new files were never added
    CHECK(change(q.fd, second[1], EVFILT_WRITE, EV_DELETE) == ENOENT);
}

// "If an error occurs while processing an element of the changelist and there is enough
// room in the eventlist, then the event will be placed in the eventlist with EV_ERROR set
// in flags and the system error in data. Otherwise, -1 will be returned, and errno will be
// set to indicate the error condition."
TEST_CASE("a failing change: an EV_ERROR receipt where there is room, else -1 and errno") {
    kq q;
    fd_pair p = make_pipe();
    const int closed = ::dup(p[0]);
    ::close(closed);

    SUBCASE("room for the receipts") {
        struct kevent changes[3];
        EV_SET(&changes[0], p[0], EVFILT_READ, EV_DELETE, 0, 0, &tag_a);  // never added
        EV_SET(&changes[1], closed, EVFILT_READ, EV_ADD, 0, 0, &tag_b);   // not open
        EV_SET(&changes[2], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);    // fine
        struct kevent out[4];
        const timespec zero{};
        put(p[1], "x", 1);
        REQUIRE(::kevent(q.fd, changes, 3, out, 4, &zero) == 2);
        CHECK((out[0].flags & EV_ERROR) != 0);
        CHECK(out[0].data == ENOENT);
        CHECK(out[0].ident == static_cast<uintptr_t>(p[0]));
        CHECK(out[0].udata == &tag_a);
        CHECK((out[1].flags & EV_ERROR) != 0);
        CHECK(out[1].data == EBADF);
        CHECK(out[1].ident == static_cast<uintptr_t>(closed));
        // The other changes were applied: the third one's event is there.
        CHECK(events(q.fd).size() == 1);
    }
    SUBCASE("no room: -1 and errno; the changes after it are not applied") {
        // (The man pages leave the rest unsaid for changes without EV_RECEIPT: FreeBSD's
        // and xnu's kevent stop at the first failure, as the emulation does, and
        // backend::kqueue::watch orders its changes so that this is harmless.)
        struct kevent changes[2];
        EV_SET(&changes[0], closed, EVFILT_READ, EV_ADD, 0, 0, nullptr);
        EV_SET(&changes[1], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
        errno = 0;
        CHECK(::kevent(q.fd, changes, 2, nullptr, 0, nullptr) == -1);
        CHECK(errno == EBADF);
        put(p[1], "x", 1);
        CHECK(events(q.fd).empty());
    }
    // "EINVAL The specified time limit or filter is invalid."
    CHECK(change(q.fd, p[0], 99, EV_ADD) == EINVAL);
    timespec bad{};
    bad.tv_nsec = -1;
    struct kevent out[1];
    errno = 0;
    CHECK(::kevent(q.fd, nullptr, 0, out, 1, &bad) == -1);
    CHECK(errno == EINVAL);
}

// Sockets: "If the read direction of the socket has shutdown, then the filter also sets
// EV_EOF in flags, and returns the socket error (if any) in fflags. It is possible for EOF
// to be returned (indicating the connection is gone) while there is still data pending in
// the socket buffer."
TEST_CASE("EV_EOF on a peer's close, with the bytes still readable in data") {
    kq q;
    fd_pair s;
    SUBCASE("TCP") { s = make_tcp_pair(); }
    SUBCASE("a Unix socket pair") { s = make_socketpair(); }
    REQUIRE(change(q.fd, s[0], EVFILT_READ, EV_ADD) == 0);
    put(s[1], "abc", 3);
    s.close(1);
    std::vector<struct kevent> got;
    for (int i = 0; i < 100; ++i) {  // the FIN may come a moment after the bytes
        got = events(q.fd, 10ms);
        if (!got.empty() && (got[0].flags & EV_EOF)) break;
    }
    REQUIRE(got.size() == 1);
    CHECK((got[0].flags & EV_EOF) != 0);
    CHECK(got[0].data == 3);
    CHECK(got[0].fflags == 0);  // a clean close: no socket error
    char buf[8];
    REQUIRE(::read(s[0], buf, sizeof buf) == 3);
    got = events(q.fd);  // level-triggered: the EOF is still there
    REQUIRE(got.size() == 1);
    CHECK((got[0].flags & EV_EOF) != 0);
    CHECK(got[0].data == 0);
}

// Pipes, EVFILT_READ: "When the last writer disconnects, the filter will set EV_EOF in
// flags." EVFILT_WRITE: "The filter will set EV_EOF when the reader disconnects".
TEST_CASE("EV_EOF on a pipe: at the read end when the writer goes, and the other way round") {
    kq q;
    SUBCASE("the writer closes") {
        fd_pair p = make_pipe();
        REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD) == 0);
        p.close(1);
        const auto got = events(q.fd);
        REQUIRE(got.size() == 1);
        CHECK((got[0].flags & EV_EOF) != 0);
    }
    SUBCASE("the reader closes") {
        fd_pair p = make_pipe();
        REQUIRE(change(q.fd, p[1], EVFILT_WRITE, EV_ADD) == 0);
        auto got = events(q.fd);
        REQUIRE(got.size() == 1);
        CHECK((got[0].flags & EV_EOF) == 0);  // writable, the reader is there
        p.close(0);
        got = events(q.fd);
        REQUIRE(got.size() == 1);
        CHECK((got[0].flags & EV_EOF) != 0);
    }
}

#if defined(EVFILT_USER)
// EVFILT_USER: "Establishes a user event identified by ident which is not associated with
// any kernel mechanism but is triggered by user level code." NOTE_TRIGGER: "Cause the event
// to be triggered." With EV_CLEAR its state is reset once retrieved.
TEST_CASE("EVFILT_USER: NOTE_TRIGGER reports it once with EV_CLEAR") {
    kq q;
    REQUIRE(change(q.fd, 7, EVFILT_USER, EV_ADD | EV_CLEAR, 0, &tag_a) == 0);
    CHECK(events(q.fd).empty());  // added, not triggered
    REQUIRE(change(q.fd, 7, EVFILT_USER, 0, NOTE_TRIGGER) == 0);
    REQUIRE(change(q.fd, 7, EVFILT_USER, 0, NOTE_TRIGGER) == 0);  // aggregated
    auto got = events(q.fd);
    REQUIRE(got.size() == 1);
    CHECK(got[0].ident == 7);
    CHECK(got[0].filter == EVFILT_USER);
    CHECK(got[0].udata == &tag_a);
    CHECK(events(q.fd).empty());
    // Its ident is its own: a descriptor with the same number is another event.
    CHECK(change(q.fd, 7, EVFILT_READ, EV_DELETE) != 0);
    CHECK(change(q.fd, 7, EVFILT_USER, EV_DELETE) == 0);
    CHECK(change(q.fd, 7, EVFILT_USER, 0, NOTE_TRIGGER) == ENOENT);
}

// "If timeout is a NULL pointer, kevent() waits indefinitely." A trigger from another
// thread ends the wait.
TEST_CASE("EVFILT_USER: a trigger from another thread ends a wait with no timeout") {
    kq q;
    REQUIRE(change(q.fd, 1, EVFILT_USER, EV_ADD | EV_CLEAR) == 0);
    std::thread trigger([&q] {
        std::this_thread::sleep_for(50ms);
        CHECK(change(q.fd, 1, EVFILT_USER, 0, NOTE_TRIGGER) == 0);
    });
    struct kevent out[2];
    const int n = ::kevent(q.fd, nullptr, 0, out, 2, nullptr);
    trigger.join();
    REQUIRE(n == 1);
    CHECK(out[0].filter == EVFILT_USER);
    CHECK(change(q.fd, 1, EVFILT_USER, EV_DELETE) == 0);
}
#endif

// EVFILT_SIGNAL: "The filter will record all attempts to deliver a signal to a process,
// even if the signal has been marked as SIG_IGN [...]. data returns the number of times the
// signal has occurred since the last call to kevent(). This filter automatically sets the
// EV_CLEAR flag internally."
TEST_CASE("EVFILT_SIGNAL: an ignored signal is recorded, its deliveries counted in data") {
    // A real-time signal: Linux queues each one, where a second standard signal sent while
    // the first is pending is merged with it (the emulation's header says so).
    const int sig = SIGRTMIN + 2;
    struct sigaction ignore {};
    struct sigaction before {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    REQUIRE(::sigaction(sig, &ignore, &before) == 0);
    sigset_t mask_before;
    pthread_sigmask(SIG_SETMASK, nullptr, &mask_before);
    {
        kq q;
        REQUIRE(change(q.fd, static_cast<uintptr_t>(sig), EVFILT_SIGNAL, EV_ADD, 0, &tag_a) == 0);
        CHECK(events(q.fd).empty());
        for (int i = 0; i < 3; ++i) REQUIRE(::kill(::getpid(), sig) == 0);
        auto got = events(q.fd);
        REQUIRE(got.size() == 1);
        CHECK(got[0].ident == static_cast<uintptr_t>(sig));
        CHECK(got[0].data == 3);
        CHECK(got[0].udata == &tag_a);
        CHECK((got[0].flags & EV_CLEAR) != 0);
        CHECK(events(q.fd).empty());  // counted since the last call: none since
        REQUIRE(::kill(::getpid(), sig) == 0);
        got = events(q.fd);
        REQUIRE(got.size() == 1);
        CHECK(got[0].data == 1);
        CHECK(change(q.fd, static_cast<uintptr_t>(sig), EVFILT_SIGNAL, EV_DELETE) == 0);
    }
    // The emulation's own promise: deleting the event gives the thread its mask back.
    sigset_t mask_after;
    pthread_sigmask(SIG_SETMASK, nullptr, &mask_after);
    CHECK(sigismember(&mask_after, sig) == sigismember(&mask_before, sig));
    ::sigaction(sig, &before, nullptr);
}

// "If timeout is a non-NULL pointer, it specifies a maximum interval to wait for an event
// [...]. To effect a poll, the timeout argument should be non-NULL, pointing to a
// zero-valued timespec structure." and "If the time limit expires, then kevent() returns 0."
TEST_CASE("timeouts: zero polls, a time limit returns 0 once it expires") {
    kq q;
    fd_pair p = make_pipe();
    REQUIRE(change(q.fd, p[0], EVFILT_READ, EV_ADD) == 0);
    struct kevent out[1];

    const timespec zero{};
    auto start = std::chrono::steady_clock::now();
    CHECK(::kevent(q.fd, nullptr, 0, out, 1, &zero) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 50ms);

    timespec limit{};
    limit.tv_nsec = 80'000'000;
    start = std::chrono::steady_clock::now();
    CHECK(::kevent(q.fd, nullptr, 0, out, 1, &limit) == 0);
    CHECK(std::chrono::steady_clock::now() - start >= 80ms);

    // "When nevents is zero, kevent() will return immediately even if there is a timeout
    // specified unlike select(2)."
    limit.tv_sec = 5;
    start = std::chrono::steady_clock::now();
    CHECK(::kevent(q.fd, nullptr, 0, out, 0, &limit) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 1s);

    // An event ends the wait before the limit.
    std::thread writer([&p] {
        std::this_thread::sleep_for(30ms);
        (void)!::write(p[1], "x", 1);
    });
    start = std::chrono::steady_clock::now();
    CHECK(::kevent(q.fd, nullptr, 0, out, 1, &limit) == 1);
    CHECK(std::chrono::steady_clock::now() - start < 4s);
    writer.join();
}
