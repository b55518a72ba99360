// Pipes, FIFOs and terminals (asyncio's connect_read_pipe / connect_write_pipe) and
// wait_readable / wait_writable: 1 MiB through a pipe by protocols and by streams, a slow
// reader pausing the writer, EOF, write_eof and close flushing first, a reader that goes
// away (broken_pipe, with SIGPIPE at its default disposition: the process would die if it
// were raised), a pseudo-terminal in raw mode read as lines, a FIFO, the descriptor closed
// with its transport, regular files refused, and the waits: cancelled, on a full pipe,
// on a descriptor watched already.
// The tests over test::pipe_pair run on POSIX and on Windows' IOCP backend (overlapped
// named pipes, each orientation of the named pipe); the terminal, FIFO and wait tests are
// POSIX's. Windows' IOCP build also checks the handles it refuses and a loop closed with
// pipe operations in flight; Windows' select build checks its clear error.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#if defined(IOLOOP_POSIX)
#include <cstdlib>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#endif

using namespace std::chrono_literals;
using ioloop::coro;
using nettest::failure_of;
using nettest::probe;
using nettest::record;

namespace {

auto probe_of(record& r) {
    return [&r] { return std::make_unique<probe>(r); };
}

}  // namespace

#if defined(TEST_PIPES)  // POSIX, and Windows' IOCP backend: see platform.hpp

namespace {

#if defined(IOLOOP_POSIX)

// The test needs SIGPIPE at its default disposition: raised, it would end the process.
void require_default_sigpipe() {
    struct sigaction current{};
    REQUIRE(::sigaction(SIGPIPE, nullptr, &current) == 0);
    const bool is_default = current.sa_handler == SIG_DFL;
    REQUIRE(is_default);
}

// Whether SIGPIPE is blocked or pending in this thread: a write must leave neither.
bool sigpipe_left_behind() {
    sigset_t mask;
    sigset_t pending;
    ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    ::sigpending(&pending);
    return sigismember(&mask, SIGPIPE) == 1 || sigismember(&pending, SIGPIPE) == 1;
}

#else

// Windows has no SIGPIPE: nothing to require, nothing left behind.
void require_default_sigpipe() {}
bool sigpipe_left_behind() { return false; }

#endif

// Runs body(pipe) on a fresh loop once per orientation of the pipe (see pipe_pair).
template <class Body>
void for_each_pipe(Body body) {
    for (const bool reader_is_server : test::pipe_orientations) {
        CAPTURE(reader_is_server);
        nettest::run(body(test::pipe_pair::make(reader_is_server)));
    }
}

}  // namespace

TEST_CASE("1 MiB through a pipe, protocol to protocol, byte for byte; EOF, then connection_lost") {
    require_default_sigpipe();
    for (const bool reader_is_server : test::pipe_orientations) {
        CAPTURE(reader_is_server);
        record in;
        record out;
        nettest::run([&]() -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            test::pipe_pair p = test::pipe_pair::make(reader_is_server);
            const std::string payload = nettest::random_bytes(1 << 20, 13);
            auto [rt, rp] = co_await loop.connect_read_pipe(probe_of(in), p.release_reader());
            auto [wt, wp] = co_await loop.connect_write_pipe(probe_of(out), p.release_writer());
            CHECK(in.made == 1);
            CHECK(out.made == 1);
            CHECK(rp != nullptr);
            CHECK(wp != nullptr);
            wt->write(payload);  // more than the pipe holds: the transport buffers the rest
            CHECK(wt->get_write_buffer_size() > 0);
            wt->close();  // flushes first
            AWAIT_UNTIL(in.lost == 1 && out.lost == 1);
            (void)rt;
        }());
        CHECK(in.data.size() == std::size_t{1} << 20);
        CHECK(in.data == nettest::random_bytes(1 << 20, 13));
        CHECK(in.eofs == 1);
        CHECK_FALSE(in.lost_code);
        CHECK_FALSE(out.lost_code);
        CHECK(out.pauses == 1);
        CHECK(out.resumes == 1);
        CHECK(in.destroyed == 1);
        CHECK(out.destroyed == 1);
        CHECK_FALSE(sigpipe_left_behind());
    }
}

TEST_CASE("1 MiB through a pipe by streams: drain on the writer, read() to EOF on the reader") {
    for_each_pipe([](test::pipe_pair p) -> coro<void> {
        const std::string payload = nettest::random_bytes(1 << 20, 21);
        ioloop::stream_reader r = co_await ioloop::connect_read_pipe(p.release_reader());
        ioloop::stream_writer w = co_await ioloop::connect_write_pipe(p.release_writer());
        CHECK(w.can_write_eof());
        auto sender = ioloop::create_task(
            [](ioloop::stream_writer& to, const std::string& data) -> coro<void> {
                for (std::size_t at = 0; at < data.size(); at += 100000) {
                    to.write(std::string_view(data).substr(at, 100000));
                    co_await to.drain();
                }
                to.write_eof();  // a pipe's write_eof: closed once the bytes are out
                co_await to.wait_closed();
            }(w, payload));
        const std::string back = co_await r.read();
        CHECK(back.size() == payload.size());
        CHECK(back == payload);
        CHECK(r.at_eof());
        co_await sender;
    });
}

TEST_CASE("a slow stream reader at a pipe's end pauses its writer; drain waits for the reader") {
    for_each_pipe([](test::pipe_pair p) -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        record out;
        ioloop::stream_reader r = co_await ioloop::connect_read_pipe(p.release_reader());
        auto [t, proto] = co_await loop.connect_write_pipe(probe_of(out), p.release_writer());
        (void)proto;
        const std::string payload = nettest::random_bytes(1 << 20, 34);
        t->write(payload);
        CHECK(out.pauses == 1);
        CHECK(out.paused);
        t->close();  // sends the rest first
        std::string got;
        for (;;) {  // 4 KiB at a time, a loop iteration between reads
            const std::string piece = co_await r.read(4096);
            if (piece.empty()) break;
            got += piece;
            co_await ioloop::sleep(0ms);
        }
        CHECK(got == payload);
        AWAIT_UNTIL(out.lost == 1);
        CHECK(out.resumes == 1);
        CHECK_FALSE(out.paused);
        CHECK_FALSE(out.lost_code);
    });

    nettest::run([]() -> coro<void> {
        test::pipe_pair p = test::pipe_pair::make();
        ioloop::stream_writer w = co_await ioloop::connect_write_pipe(p.release_writer());
        const std::string payload = nettest::random_bytes(1 << 20, 55);
        w.write(payload);
        auto draining = ioloop::create_task(
            [](ioloop::stream_writer& to) -> coro<void> { co_await to.drain(); }(w));
        // Nobody reads: the pipe is full and the transport holds the rest, above its mark.
        for (int i = 0; i < 20; ++i) co_await ioloop::sleep(0ms);
        CHECK_FALSE(draining.done());
        CHECK(w.transport()->get_write_buffer_size() >
              w.transport()->get_write_buffer_limits().high);
        // A reader comes, and reads slowly: drain returns once the buffer is down to the
        // low mark.
        ioloop::stream_reader r = co_await ioloop::connect_read_pipe(p.release_reader());
        std::string got;
        while (!draining.done()) {
            got += co_await r.read(4096);
            co_await ioloop::sleep(0ms);
        }
        co_await draining;
        CHECK(w.transport()->get_write_buffer_size() <=
              w.transport()->get_write_buffer_limits().low);
        w.close();
        got += co_await r.read();
        CHECK(got == payload);
    }());
}

TEST_CASE("a read pipe: EOF reaches eof_received, then connection_lost; it cannot write") {
    for_each_pipe([](test::pipe_pair p) -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        record in;
        in.keep_open_on_eof = true;  // a read pipe closes at EOF whatever eof_received says
        const ioloop::native_descriptor fd = p.reader();
        auto [t, proto] = co_await loop.connect_read_pipe(probe_of(in), p.release_reader());
        (void)proto;
        CHECK(t->is_reading());
        CHECK_FALSE(t->can_write_eof());
        CHECK(t->get_extra_info("pipe").pipe() == fd);
        CHECK_FALSE(t->get_extra_info("socket"));
        CHECK_FALSE(t->get_extra_info("peername"));
        CHECK_FALSE(t->get_extra_info("sockname"));
        try {
            t->write("x");
            FAIL("write on a read pipe");
        } catch (const ioloop::invalid_state_error& e) {
            CHECK(std::string_view(e.what()).find("read pipe") != std::string_view::npos);
        }
        CHECK_THROWS_AS(t->write_eof(), ioloop::invalid_state_error);
        test::write_to_pipe(p.writer(), "last words");
        p.close_writer();
        AWAIT_UNTIL(in.lost == 1);
        CHECK_FALSE(test::descriptor_open(fd));  // closed with its transport
        CHECK(in.data == "last words");
        CHECK(in.eofs == 1);
        CHECK_FALSE(in.lost_code);
    });
}

TEST_CASE("the reader going away while the writer writes: connection_lost(broken_pipe)") {
    require_default_sigpipe();
    SUBCASE("a write to a reader gone: EPIPE, taken without a signal") {
        for_each_pipe([](test::pipe_pair p) -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            record out;
            auto [t, proto] = co_await loop.connect_write_pipe(probe_of(out), p.release_writer());
            (void)proto;
            p.close_reader();
            t->write("into nothing");  // at once, before the loop sees the hang-up
            CHECK(t->is_closing());
            AWAIT_UNTIL(out.lost == 1);
            CHECK(out.lost_code == std::errc::broken_pipe);
            CHECK_FALSE(sigpipe_left_behind());
        });
    }
    SUBCASE("with bytes buffered: they are dropped; drain reports broken_pipe") {
        for_each_pipe([](test::pipe_pair p) -> coro<void> {
            ioloop::stream_writer w = co_await ioloop::connect_write_pipe(p.release_writer());
            w.write(std::string(1 << 20, 'z'));
            p.close_reader();
            const std::system_error e =
                co_await failure_of([&w] { return w.drain(); }, "drain, its reader gone");
            CHECK(e.code() == std::errc::broken_pipe);
        });
    }
}

TEST_CASE("the descriptor is closed when its transport is gone: the other end sees it") {
    for (const bool writing : {true, false}) {
        CAPTURE(writing);
        for_each_pipe([writing](test::pipe_pair p) -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            record r;
            auto [t, proto] =
                writing ? co_await loop.connect_write_pipe(probe_of(r), p.release_writer())
                        : co_await loop.connect_read_pipe(probe_of(r), p.release_reader());
            (void)proto;
            if (writing) {
                t->abort();
            } else {
                t->close();
            }
            AWAIT_UNTIL(r.lost == 1);
            // The other end sees it: EOF (no writer left), or no reader left.
            AWAIT_UNTIL(test::pipe_peer_gone(writing ? p.reader() : p.writer()));
        });
    }
    // A stream_reader alone (a read pipe has no writer): dropping it closes it.
    for_each_pipe([](test::pipe_pair p) -> coro<void> {
        {
            ioloop::stream_reader r = co_await ioloop::connect_read_pipe(p.release_reader());
            test::write_to_pipe(p.writer(), "unread");
        }
        AWAIT_UNTIL(test::pipe_peer_gone(p.writer()));
    });
}

#endif  // TEST_PIPES


#if defined(IOLOOP_POSIX)

namespace {

// Reads fd (non-blocking) until EOF, waiting with wait_readable; `slowly`: a yield between
// reads of 4 KiB, as a slow consumer.
coro<std::string> read_to_eof(int fd, bool slowly = false) {
    std::string all;
    char buf[65536];
    for (;;) {
        const long n = test::read_some_into(fd, buf, slowly ? 4096 : sizeof buf);
        if (n > 0) {
            all.append(buf, static_cast<std::size_t>(n));
            if (slowly) co_await ioloop::sleep(0ms);
            continue;
        }
        if (n == 0) co_return all;
        REQUIRE(test::last_would_block());
        co_await ioloop::wait_readable(fd);
    }
}

// A pipe's write end filled until the kernel takes no more.
std::size_t fill(int fd) {
    const std::string block(65536, 'f');
    std::size_t total = 0;
    for (;;) {
        const long n = test::write_some(fd, block);
        if (n <= 0) break;
        total += static_cast<std::size_t>(n);
    }
    REQUIRE(test::last_would_block());
    return total;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// A pseudo-terminal: the master (the side a program such as a terminal emulator, or here a
// fake device, holds) and the slave (the side that looks like /dev/ttyUSB0), in raw mode.
struct pseudo_terminal {
    int master = -1;
    int slave = -1;
    pseudo_terminal() {
        master = ::posix_openpt(O_RDWR | O_NOCTTY);
        REQUIRE(master != -1);
        REQUIRE(::grantpt(master) == 0);
        REQUIRE(::unlockpt(master) == 0);
        const char* name = ::ptsname(master);
        REQUIRE(name != nullptr);
        slave = ::open(name, O_RDWR | O_NOCTTY);
        REQUIRE(slave != -1);
        termios raw{};
        REQUIRE(::tcgetattr(slave, &raw) == 0);
        ::cfmakeraw(&raw);
        REQUIRE(::tcsetattr(slave, TCSANOW, &raw) == 0);
    }
    pseudo_terminal(const pseudo_terminal&) = delete;
    pseudo_terminal& operator=(const pseudo_terminal&) = delete;
    ~pseudo_terminal() {
        if (master != -1) ::close(master);
        if (slave != -1) ::close(slave);
    }
};

// A temporary directory, removed with what the test put in it.
struct temp_dir {
    std::string path;
    temp_dir() {
        std::string pattern = test::temp_dir() + "/ioloop-pipes-XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        const std::string command = "rm -rf '" + path + "'";
        CHECK(std::system(command.c_str()) == 0);
    }
};

}  // namespace

TEST_CASE("a pipe's reader that is slow pauses the writer; drain waits until it reads") {
    record out;
    nettest::run([&]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        test::fd_pair p = test::fd_pair::pipe();
        auto [wt, wp] = co_await loop.connect_write_pipe(probe_of(out), p.release_second());
        (void)wp;
        wt->write(std::string(1 << 20, 'x'));
        CHECK(out.pauses == 1);
        CHECK(out.paused);
        wt->close();  // sends the rest first
        const std::string drained = co_await read_to_eof(p.first(), true);
        CHECK(drained.size() == std::size_t{1} << 20);
        CHECK(out.resumes == 1);
        CHECK_FALSE(out.paused);
    }());
    CHECK(out.lost == 1);
    CHECK_FALSE(out.lost_code);
    // drain on a full pipe: in "a slow stream reader at a pipe's end ...", above.
}

TEST_CASE("a write pipe: write_eof and close send everything first; reading calls do nothing") {
    for (const bool by_close : {false, true}) {
        CAPTURE(by_close);
        record out;
        nettest::run([&]() -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            test::fd_pair p = test::fd_pair::pipe();
            const int fd = p.second();
            auto [t, proto] = co_await loop.connect_write_pipe(probe_of(out), p.release_second());
            (void)proto;
            CHECK_FALSE(t->is_reading());
            t->pause_reading();  // nothing to pause
            t->resume_reading();
            CHECK_FALSE(t->is_reading());
            CHECK(t->can_write_eof());
            CHECK(t->get_extra_info("pipe").fd() == fd);
            CHECK_FALSE(t->get_extra_info("socket"));
            const std::string payload = nettest::random_bytes(300000, 5);
            t->write(payload);
            if (by_close) {
                t->close();
            } else {
                t->write_eof();
                CHECK_THROWS_AS(t->write("more"), ioloop::invalid_state_error);
            }
            CHECK(out.lost == 0);  // not before the bytes are out
            const std::string got = co_await read_to_eof(p.first());
            CHECK(got == payload);
            AWAIT_UNTIL(out.lost == 1);
            CHECK_FALSE(is_open(fd));
        }());
        CHECK_FALSE(out.lost_code);
        CHECK(out.buffer_at_lost == 0);
    }
}

TEST_CASE("the reader going away, the pipe idle or SIGPIPE blocked: broken_pipe, no signal") {
    require_default_sigpipe();
    SUBCASE("idle: seen by watching the write end, no write needed") {
        record out;
        nettest::run([&]() -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            test::fd_pair p = test::fd_pair::pipe();
            auto started = co_await loop.connect_write_pipe(probe_of(out), p.release_second());
            (void)started;
            p.close_first();
            AWAIT_UNTIL(out.lost == 1);
        }());
        CHECK(out.lost_code == std::errc::broken_pipe);
    }
    SUBCASE("a SIGPIPE this thread had blocked and pending stays pending") {
        record out;
        sigset_t pipe_only;
        sigset_t before;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        REQUIRE(::pthread_sigmask(SIG_BLOCK, &pipe_only, &before) == 0);
        REQUIRE(::pthread_kill(::pthread_self(), SIGPIPE) == 0);
        nettest::run([&]() -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            test::fd_pair p = test::fd_pair::pipe();
            auto [t, proto] = co_await loop.connect_write_pipe(probe_of(out), p.release_second());
            (void)proto;
            p.close_first();
            t->write("x");
            AWAIT_UNTIL(out.lost == 1);
        }());
        sigset_t pending;
        ::sigpending(&pending);
        CHECK(sigismember(&pending, SIGPIPE) == 1);  // the one that was there, not eaten
        const timespec now{0, 0};
        CHECK(::sigtimedwait(&pipe_only, nullptr, &now) == SIGPIPE);
        ::sigpending(&pending);
        CHECK(sigismember(&pending, SIGPIPE) == 0);  // and ours was taken: only one was left
        ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
        CHECK(out.lost_code == std::errc::broken_pipe);
    }
}

TEST_CASE("a pseudo-terminal in raw mode, read as lines with readline, written by streams") {
    pseudo_terminal pty;
    nettest::run([&pty]() -> coro<void> {
        // The program's side: the slave, as a serial device would be opened.
        const int device = ::dup(pty.slave);
        REQUIRE(device != -1);
        ioloop::stream_reader lines = co_await ioloop::connect_read_pipe(device);
        ioloop::stream_writer commands = co_await ioloop::connect_write_pipe(::dup(pty.slave));
        // The fake device on the master: answers what it is sent, in pieces.
        ioloop::stream_writer device_out = co_await ioloop::connect_write_pipe(::dup(pty.master));
        ioloop::stream_reader device_in = co_await ioloop::connect_read_pipe(::dup(pty.master));
        commands.write("AT\r\n");
        co_await commands.drain();
        CHECK(co_await device_in.readline() == "AT\r\n");  // raw: no echo, no translation
        device_out.write("O");
        device_out.write("K\r\n$GPGGA,1");
        device_out.write("23519,4807.038,N\r\n");
        CHECK(co_await lines.readline() == "OK\r\n");
        CHECK(co_await lines.readline() == "$GPGGA,123519,4807.038,N\r\n");
        commands.close();
        device_out.close();
        co_await device_out.wait_closed();
    }());
}

namespace {
// Both ends of the FIFO at `path`, non-blocking. The reader first: opening a FIFO's write
// end without one fails (ENXIO).
std::pair<int, int> open_fifo(const std::string& path) {
    const int r = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(r != -1);
    const int w = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(w != -1);
    return {r, w};
}
}  // namespace

TEST_CASE("a FIFO (mkfifo) works both ways, and its reader going away is broken_pipe") {
    require_default_sigpipe();
    temp_dir dir;
    const std::string path = dir.path + "/fifo";
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    record out;
    nettest::run([&]() -> coro<void> {
        const auto [r, w] = open_fifo(path);
        auto& loop = ioloop::get_running_loop();
        ioloop::stream_reader reader = co_await ioloop::connect_read_pipe(r);
        auto [t, proto] = co_await loop.connect_write_pipe(probe_of(out), w);
        (void)proto;
        t->write("through the FIFO\n");
        CHECK(co_await reader.readline() == "through the FIFO\n");
        // The writer closes: the reader reads EOF, and its transport closes there.
        t->close();
        CHECK(co_await reader.read() == "");
        AWAIT_UNTIL(out.lost == 1);
    }());
    CHECK_FALSE(out.lost_code);

    record gone;
    nettest::run([&]() -> coro<void> {
        const auto [r, w] = open_fifo(path);
        auto& loop = ioloop::get_running_loop();
        auto started = co_await loop.connect_write_pipe(probe_of(gone), w);
        (void)started;
        ::close(r);
        AWAIT_UNTIL(gone.lost == 1);
    }());
    CHECK(gone.lost_code == std::errc::broken_pipe);
}

TEST_CASE("a regular file or a directory is refused, naming the file API; a bad fd is EBADF") {
    temp_dir dir;
    const std::string path = dir.path + "/file";
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fclose(f);
    nettest::run([&]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        record r;
        const int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(file != -1);
        try {
            (void)co_await loop.connect_read_pipe(probe_of(r), file);
            FAIL("a regular file was taken");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::operation_not_permitted);
            const std::string_view what = e.what();
            CHECK(what.find("is a regular file") != std::string_view::npos);
            CHECK(what.find("ioloop::open_file") != std::string_view::npos);
        }
        CHECK_FALSE(is_open(file));  // the call owned it, and closed it
        CHECK(r.made == 0);
        const int directory = ::open(dir.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        REQUIRE(directory != -1);
        try {
            (void)co_await ioloop::connect_write_pipe(directory);
            FAIL("a directory was taken");
        } catch (const std::system_error& e) {
            CHECK(std::string_view(e.what()).find("is a directory") != std::string_view::npos);
        }
        CHECK_FALSE(is_open(directory));
        try {
            (void)co_await loop.connect_read_pipe(probe_of(r), 1 << 20);
            FAIL("a descriptor that is not open was taken");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::bad_file_descriptor);
        }
    }());
}

TEST_CASE("a socket is taken as a pipe (asyncio takes one too); a connect never awaited closes fd") {
    nettest::run([]() -> coro<void> {
        test::fd_pair p = test::fd_pair::sockets();
        ioloop::stream_reader r = co_await ioloop::connect_read_pipe(p.release_first());
        test::write_all(p.second(), "over a socket\n");
        CHECK(co_await r.readline() == "over a socket\n");
        p.close_second();
        CHECK(co_await r.read() == "");

        // The call owns the descriptor at once: a coroutine dropped unawaited closes it.
        test::fd_pair q = test::fd_pair::pipe();
        const int fd = q.first();
        {
            auto never = ioloop::connect_read_pipe(q.release_first());
        }
        CHECK_FALSE(is_open(fd));
    }());
}

TEST_CASE("wait_readable: returns when data comes; cancelled, it leaves the descriptor usable") {
    nettest::run([]() -> coro<void> {
        test::fd_pair p = test::fd_pair::pipe();
        const int fd = p.first();
        auto waiting = ioloop::create_task([](int d) -> coro<void> {
            co_await ioloop::wait_readable(d);
        }(fd));
        for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0ms);
        CHECK_FALSE(waiting.done());
        waiting.cancel();
        CHECK_THROWS_AS(co_await waiting, ioloop::cancelled_error);
        // Unwatched: a later wait works, and so does add_reader.
        auto again = ioloop::create_task([](int d) -> coro<void> {
            co_await ioloop::wait_readable(d);
        }(fd));
        co_await ioloop::sleep(0ms);
        test::write_all(p.second(), "a");
        co_await again;
        CHECK(test::read_some(fd) == "a");
        if constexpr (test::readiness_backend) {
            auto& loop = ioloop::get_running_loop();
            record reader;  // counts the callback's runs in `made`
            loop.add_reader(fd, [&reader] { ++reader.made; });
            test::write_all(p.second(), "b");
            AWAIT_UNTIL(reader.made > 0);
            // Watched by add_reader: a wait is refused, not silently stolen from it.
            try {
                co_await ioloop::wait_readable(fd);
                FAIL("a descriptor add_reader watches was waited on");
            } catch (const std::system_error& e) {
                CHECK(e.code() == std::errc::file_exists);
            }
            CHECK(loop.remove_reader(fd));
            co_await ioloop::wait_readable(fd);  // still "b" to read
            CHECK(test::read_some(fd) == "b");
        }
        // A second task waiting on the same descriptor is refused too.
        auto first = ioloop::create_task([](int d) -> coro<void> {
            co_await ioloop::wait_readable(d);
        }(fd));
        co_await ioloop::sleep(0ms);
        CHECK_THROWS_AS(co_await ioloop::wait_readable(fd), std::system_error);
        test::write_all(p.second(), "c");
        co_await first;
    }());
}

TEST_CASE("wait_writable: a full pipe waits until the reader makes room") {
    nettest::run([]() -> coro<void> {
        test::fd_pair p = test::fd_pair::pipe();
        const std::size_t held = fill(p.second());
        CHECK(held > 0);
        auto waiting = ioloop::create_task([](int d) -> coro<void> {
            co_await ioloop::wait_writable(d);
        }(p.second()));
        for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0ms);
        CHECK_FALSE(waiting.done());
        char buf[65536];
        CHECK(test::read_some_into(p.first(), buf, sizeof buf) > 0);
        co_await waiting;
        CHECK(test::write_some(p.second(), "more") > 0);
    }());
}

TEST_CASE("wait_readable outside a running loop, or on a closed descriptor: clear errors") {
    CHECK_THROWS_AS((void)ioloop::wait_readable(0), ioloop::invalid_state_error);
    nettest::run([]() -> coro<void> {
        try {
            co_await ioloop::wait_writable(1 << 20);
            FAIL("a wait on a descriptor that is not open");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::bad_file_descriptor);
        }
    }());
}

#endif  // POSIX

#if defined(IOLOOP_WINDOWS) && defined(TEST_PIPES)  // IOCP

namespace {

// A file of its own in the temporary directory, removed with it.
struct temp_file {
    std::string path = test::temp_dir() + "\\ioloop-pipes-" + std::to_string(test::process_id());
    temp_file() {
        std::FILE* f = std::fopen(path.c_str(), "w");
        REQUIRE(f != nullptr);
        std::fclose(f);
    }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file() { ::DeleteFileA(path.c_str()); }
};

// The error connect_read_pipe refuses h with (the test fails if it takes h); h is closed.
coro<std::system_error> refusal_of(ioloop::native_descriptor h) {
    auto& loop = ioloop::get_running_loop();
    record r;
    const std::system_error e =
        co_await failure_of([&] { return loop.connect_read_pipe(probe_of(r), h); },
                            "connect_read_pipe took a handle to refuse");
    CHECK(r.made == 0);
    CHECK_FALSE(test::descriptor_open(h));  // the call owned it, and closed it
    co_return e;
}

bool says(const std::system_error& e, std::string_view words) {
    return std::string_view(e.what()).find(words) != std::string_view::npos;
}

}  // namespace

TEST_CASE("IOCP refuses a disk file (the file API), a device, a synchronous pipe, a bad handle") {
    temp_file file;
    nettest::run([&file]() -> coro<void> {
        const HANDLE disk = ::CreateFileA(file.path.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr,
                                          OPEN_EXISTING, FILE_FLAG_OVERLAPPED, nullptr);
        REQUIRE(disk != INVALID_HANDLE_VALUE);
        const std::system_error on_disk = co_await refusal_of(disk);
        CHECK(on_disk.code() == std::errc::operation_not_permitted);
        CHECK(says(on_disk, "is a disk file"));
        CHECK(says(on_disk, "ioloop::open_file"));

        // A directory is a disk file too.
        const HANDLE directory =
            ::CreateFileA(test::temp_dir().c_str(), GENERIC_READ,
                          FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING,
                          FILE_FLAG_BACKUP_SEMANTICS, nullptr);
        REQUIRE(directory != INVALID_HANDLE_VALUE);
        CHECK((co_await refusal_of(directory)).code() == std::errc::operation_not_permitted);

        // NUL is a character device, as a console is: no overlapped reads to wait on.
        const HANDLE device = ::CreateFileA("NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                                            nullptr, OPEN_EXISTING, 0, nullptr);
        REQUIRE(device != INVALID_HANDLE_VALUE);
        const std::system_error on_device = co_await refusal_of(device);
        CHECK(on_device.code() == std::errc::operation_not_supported);
        CHECK(says(on_device, "console or a character device"));

        // CreatePipe's pipes are synchronous: an overlapped read of one would block the loop.
        HANDLE read_end = nullptr;
        HANDLE write_end = nullptr;
        REQUIRE(::CreatePipe(&read_end, &write_end, nullptr, 0));
        const std::system_error on_anonymous = co_await refusal_of(read_end);
        CHECK(on_anonymous.code() == std::errc::operation_not_supported);
        CHECK(says(on_anonymous, "FILE_FLAG_OVERLAPPED"));
        const std::system_error on_write_end =
            co_await failure_of([=] { return ioloop::connect_write_pipe(write_end); },
                                "a synchronous pipe's write end was taken");
        CHECK(on_write_end.code() == std::errc::operation_not_supported);
        CHECK_FALSE(test::descriptor_open(write_end));

        // A handle closed already, and no handle at all.
        const HANDLE gone = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        REQUIRE(gone != nullptr);
        ::CloseHandle(gone);
        for (const HANDLE bad : {gone, INVALID_HANDLE_VALUE}) {
            const std::system_error e =
                co_await failure_of([=] { return ioloop::connect_read_pipe(bad); },
                                    "a handle that is not open was taken");
            CHECK(e.code() == std::errc::bad_file_descriptor);
        }
    }());
}

TEST_CASE("IOCP: a loop closed with a pipe's read and write in flight waits for them, then frees") {
    for (const bool reader_is_server : test::pipe_orientations) {
        CAPTURE(reader_is_server);
        record in;
        record out;
        test::pipe_pair idle = test::pipe_pair::make(reader_is_server);
        test::pipe_pair full = test::pipe_pair::make(reader_is_server);
        nettest::run([&]() -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            // A read waiting for data that never comes, and a write the reader never takes.
            (void)co_await loop.connect_read_pipe(probe_of(in), idle.release_reader());
            auto [t, proto] =
                co_await loop.connect_write_pipe(probe_of(out), full.release_writer());
            (void)proto;
            t->write(std::string(1 << 20, 'w'));
            CHECK(t->get_write_buffer_size() > 0);
            co_await ioloop::sleep(0ms);
        }());  // the loop closes here, its transports open
        // Closed without callbacks; each protocol freed, each handle closed.
        CHECK(in.lost == 0);
        CHECK(out.lost == 0);
        CHECK(in.destroyed == 1);
        CHECK(out.destroyed == 1);
        CHECK(test::pipe_peer_gone(idle.writer()));
    }
}

TEST_CASE("IOCP cannot wait for readiness: wait_readable says so") {
    nettest::run([]() -> coro<void> {
        test::fd_pair p = test::fd_pair::sockets();
        try {
            co_await ioloop::wait_readable(p.first());
            FAIL("wait_readable on IOCP");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::operation_not_supported);
        }
    }());
}

#endif

#if defined(IOLOOP_WINDOWS) && !defined(TEST_PIPES)  // select

TEST_CASE("Windows' select refuses pipes clearly (it waits on sockets only) and closes them") {
    nettest::run([]() -> coro<void> {
        for (const bool reading : {true, false}) {
            CAPTURE(reading);
            test::pipe_pair p = test::pipe_pair::make();
            const ioloop::native_descriptor mine =
                reading ? p.release_reader() : p.release_writer();
            auto& loop = ioloop::get_running_loop();
            record r;
            const std::system_error e =
                reading
                    ? co_await failure_of([=] { return ioloop::connect_read_pipe(mine); },
                                          "a read pipe")
                    : co_await failure_of(
                          [&] { return loop.connect_write_pipe(probe_of(r), mine); },
                          "a write pipe");
            CHECK(e.code() == std::errc::operation_not_supported);
            const std::string_view what = e.what();
            CHECK(what.find("sockets only") != std::string_view::npos);
            CHECK(what.find("IOCP backend") != std::string_view::npos);
            CHECK(r.made == 0);
            CHECK_FALSE(test::descriptor_open(mine));  // owned from the call, and closed
            CHECK(test::pipe_peer_gone(reading ? p.writer() : p.reader()));
        }
    }());
}

#endif
