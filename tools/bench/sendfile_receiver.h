/* Workload (i)'s receiving side, the same code under every sender: a forked child that
 * connects to 127.0.0.1:PORT, reads to EOF into a 256 KiB buffer, and writes the byte
 * count (a decimal line) to `report`. The senders time from before their first byte to
 * that line, so the receiver's reads are in every figure alike. */
#ifndef IOLOOP_BENCH_SENDFILE_RECEIVER_H
#define IOLOOP_BENCH_SENDFILE_RECEIVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A listening socket on 127.0.0.1 at a free port; its port in *port. -1 on failure. */
static int bench_listen(unsigned short* port) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    const int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l == -1) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr*)&a, &len) != 0) {
        close(l);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return l;
}

/* The child: never returns. */
static void bench_receive(unsigned short port, int report) {
    static char buf[256 * 1024];
    struct sockaddr_in a;
    unsigned long long total = 0;
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (s == -1 || connect(s, (struct sockaddr*)&a, sizeof a) != 0) _exit(1);
    for (;;) {
        const ssize_t n = recv(s, buf, sizeof buf, 0);
        if (n < 0) _exit(1);
        if (n == 0) break;
        total += (unsigned long long)n;
    }
    dprintf(report, "%llu\n", total);
    _exit(0);
}

/* The parent: the child's count, once it has read to EOF; then it is reaped. */
static unsigned long long bench_received(int report) {
    char line[32];
    ssize_t n, got = 0;
    while (got < (ssize_t)sizeof line - 1 && (n = read(report, line + got, sizeof line - 1 - got)) > 0)
        got += n;
    line[got] = '\0';
    return strtoull(line, NULL, 10);
}

#endif
