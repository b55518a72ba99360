// An embedded-tool style program: watch a descriptor (stdin by default, or a FIFO given
// on the command line) with add_reader, count lines and bytes as they arrive, print a
// heartbeat while idle, and stop cleanly on EOF, SIGINT or SIGTERM.
//   mkfifo /tmp/in && ./watch_input /tmp/in &   echo hi > /tmp/in
//   some_producer | ./watch_input
#include <ioloop/ioloop.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

int main(int argc, char** argv) {
    int fd = STDIN_FILENO;
    if (argc > 1) {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = ::open(argv[1], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd == -1) {
            std::fprintf(stderr, "watch_input: %s: %s\n", argv[1], std::strerror(errno));
            return 2;
        }
    }

    ioloop::event_loop loop;
    unsigned long long bytes = 0, lines = 0;
    const char* why = "end of input";

    try {
        loop.add_reader(fd, [&] {
            char buf[4096];
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n > 0) {
                bytes += static_cast<unsigned long long>(n);
                for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
                return;
            }
            if (n == -1 && (errno == EAGAIN || errno == EINTR)) return;  // spurious wakeup
            if (n == -1) why = std::strerror(errno);
            loop.stop();  // EOF or a read error
        });
    } catch (const std::system_error& e) {
        // epoll refuses regular files (EPERM): they are always "ready", nothing to watch.
        std::fprintf(stderr, "watch_input: cannot watch fd %d: %s\n", fd, e.what());
        return 2;
    }

    for (int sig : {SIGINT, SIGTERM}) {
        loop.add_signal_handler(sig, [&loop, &why, sig] {
            why = sig == SIGINT ? "SIGINT" : "SIGTERM";
            loop.stop();
        });
    }

    // A heartbeat shows the loop is alive while idle (and that idle costs nothing).
    struct heartbeat {
        ioloop::event_loop& loop;
        const unsigned long long& lines;
        void operator()() const {
            std::fprintf(stderr, "watch_input: %llu lines so far\n", lines);
            loop.call_later(std::chrono::seconds(5), heartbeat{loop, lines});
        }
    };
    loop.call_later(std::chrono::seconds(5), heartbeat{loop, lines});

    loop.run_forever();
    loop.close();  // also restores the default SIGINT/SIGTERM behaviour
    std::printf("%llu lines, %llu bytes (stopped by %s)\n", lines, bytes, why);
    if (fd != STDIN_FILENO) ::close(fd);
}
