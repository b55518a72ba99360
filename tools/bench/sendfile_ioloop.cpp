// Workload (i) on ioloop: co_await loop.sock_sendfile(conn, file) of PATH to a TCP peer over
// loopback (sendfile(2) on Linux's epoll), the receiver sendfile_receiver.h's forked child.
// Timed from the accepted connection to the receiver's count (the socket is closed at
// once, as the C programs do); checks the count and the file's position afterwards.
//   sendfile_ioloop PATH
// prints: sendfile ioloop BYTES bytes SECONDS s
#include <chrono>
#include <cstdio>
#include <string>

#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "sendfile_receiver.h"

#include <ioloop/ioloop.hpp>

namespace {

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double t0 = 0;  // once the connection is accepted, as the C programs' clock starts
double t1 = 0;  // once the receiver has counted the last byte
unsigned long long received = 0;

ioloop::coro<long long> send_it(int listener_fd, int report, std::string path) {
    auto& loop = ioloop::get_running_loop();
    ioloop::socket listener(listener_fd);
    // Opened first, as the C programs do: its executor thread is not in the figure.
    ioloop::file f = co_await ioloop::open_file(path, "rb");
    auto [conn, peer] = co_await loop.sock_accept(listener);
    t0 = now_s();
    const std::size_t sent = co_await loop.sock_sendfile(conn, f);
    conn.close();
    received = bench_received(report);  // blocks the loop: nothing else runs on it
    t1 = now_s();
    if (co_await f.tell() != static_cast<long long>(sent)) {
        std::fprintf(stderr, "FAIL: the file's position is not where the sending stopped\n");
        co_return -1;
    }
    co_return static_cast<long long>(sent);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    struct stat st;
    if (::stat(argv[1], &st) != 0) {
        std::fprintf(stderr, "FAIL: %s: cannot stat\n", argv[1]);
        return 1;
    }
    unsigned short port;
    int report[2];
    const int l = bench_listen(&port);
    if (l == -1 || ::pipe(report) != 0) {
        std::perror("FAIL: listen");
        return 1;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(report[0]);
        bench_receive(port, report[1]);
    }
    ::close(report[1]);
    long long sent = -1;
    try {
        sent = ioloop::run(send_it(l, report[0], argv[1]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "FAIL: %s\n", e.what());
        return 1;
    }
    const unsigned long long got = received;
    const double elapsed = t1 - t0;
    ::waitpid(child, nullptr, 0);
    if (sent != static_cast<long long>(st.st_size) || got != static_cast<unsigned long long>(st.st_size)) {
        std::fprintf(stderr, "FAIL: sent %lld, received %llu of %lld\n", sent, got,
                     static_cast<long long>(st.st_size));
        return 1;
    }
    std::printf("sendfile ioloop %lld bytes %.6f s\n", sent, elapsed);
    return 0;
}
