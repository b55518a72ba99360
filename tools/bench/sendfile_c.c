/* Workload (i), the floors: a file to a TCP peer over loopback with plain blocking calls.
 *   sendfile_c PATH          read(2) 256 KiB, write(2) it, until the end of the file
 *   sendfile_c PATH sendfile sendfile(2) until the end of the file (Linux)
 * The receiver is sendfile_receiver.h's forked child. Timed from the accepted connection
 * to the receiver's count; checks that count against the file's size.
 * prints: sendfile c-rw BYTES bytes SECONDS s  (or c-sendfile) */
#define _GNU_SOURCE
#include "sendfile_receiver.h"

#include <fcntl.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "sendfile") != 0)) {
        fprintf(stderr, "usage: %s PATH [sendfile]\n", argv[0]);
        return 2;
    }
    const int use_sendfile = argc == 3;
    const int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd == -1 || fstat(fd, &st) != 0) {
        fprintf(stderr, "FAIL: %s: cannot open\n", argv[1]);
        return 1;
    }
    unsigned short port;
    int report[2];
    const int l = bench_listen(&port);
    if (l == -1 || pipe(report) != 0) {
        perror("FAIL: listen");
        return 1;
    }
    const pid_t child = fork();
    if (child == 0) {
        close(report[0]);
        bench_receive(port, report[1]);
    }
    close(report[1]);
    const int s = accept(l, NULL, NULL);
    if (s == -1) {
        perror("FAIL: accept");
        return 1;
    }
    static char buf[256 * 1024];
    const double t0 = now_s();
    long long sent = 0;
    if (use_sendfile) {
        off_t at = 0;
        while (at < st.st_size) {
            const ssize_t n = sendfile(s, fd, &at, (size_t)(st.st_size - at));
            if (n <= 0) {
                perror("FAIL: sendfile");
                return 1;
            }
        }
        sent = (long long)at;
    } else {
        for (;;) {
            const ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0) {
                perror("FAIL: read");
                return 1;
            }
            if (n == 0) break;
            for (ssize_t off = 0; off < n;) {
                const ssize_t w = write(s, buf + off, (size_t)(n - off));
                if (w < 0) {
                    perror("FAIL: write");
                    return 1;
                }
                off += w;
            }
            sent += n;
        }
    }
    close(s);
    const unsigned long long got = bench_received(report[0]);
    const double elapsed = now_s() - t0;
    waitpid(child, NULL, 0);
    if (sent != (long long)st.st_size || got != (unsigned long long)st.st_size) {
        fprintf(stderr, "FAIL: sent %lld, received %llu of %lld\n", sent, got, (long long)st.st_size);
        return 1;
    }
    printf("sendfile %s %lld bytes %.6f s\n", use_sendfile ? "c-sendfile" : "c-rw", sent, elapsed);
    return 0;
}
