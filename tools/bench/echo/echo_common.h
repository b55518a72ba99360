/* Shared by the echo servers (C and C++): argument parsing and the process set-up every
 * server does before it listens. Header-only; every function is static inline. */
#ifndef IOLOOP_BENCH_ECHO_COMMON_H
#define IOLOOP_BENCH_ECHO_COMMON_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Raises the soft RLIMIT_NOFILE to the hard limit, so a server can hold 10,000
 * connections. Failing to raise it is not fatal: the run then fails where it runs out. */
static inline void echo_raise_nofile(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0) perror("setrlimit(RLIMIT_NOFILE)");
    }
}

/* `prog PORT`: returns the port, or exits 2 with a usage message. Also raises the
 * descriptor limit and ignores SIGPIPE (a peer that goes away mid-write is an error
 * return, not a signal), which every server needs before it starts. */
static inline unsigned short echo_setup(int argc, char** argv) {
    char* end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: %s PORT (listens on 127.0.0.1:PORT)\n", argc ? argv[0] : "echo");
        exit(2);
    }
    echo_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    return (unsigned short)port;
}

#endif
