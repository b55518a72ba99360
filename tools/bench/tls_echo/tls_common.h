/* Shared by the TLS echo servers (C++; the Python one does the same in Python): their
 * arguments and the set-up every server does before it listens. Header-only.
 *
 *   tls_echo_X PORT CERT KEY
 *
 * CERT and KEY are PEM files (run_tls_echo.sh makes them with the openssl command at run
 * time; no key material is committed). Every server accepts TLS 1.3 only, with the one
 * suite TLS_BENCH_SUITE, which the clients force too, so every implementation does the
 * same cryptography. */
#ifndef IOLOOP_BENCH_TLS_COMMON_H
#define IOLOOP_BENCH_TLS_COMMON_H

#include "../echo/echo_common.h"

#define TLS_BENCH_SUITE "TLS_AES_128_GCM_SHA256"

struct tls_echo_args {
    unsigned short port;
    const char* cert;
    const char* key;
};

/* `prog PORT CERT KEY`: returns them, or exits 2 with a usage message. Also raises the
 * descriptor limit and ignores SIGPIPE, as echo_setup does for the plain servers. */
static inline struct tls_echo_args tls_echo_setup(int argc, char** argv) {
    char* end = NULL;
    long port = argc == 4 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 4 || end == argv[1] || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: %s PORT CERT KEY (TLS on 127.0.0.1:PORT)\n",
                argc ? argv[0] : "tls_echo");
        exit(2);
    }
    echo_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct tls_echo_args args = {(unsigned short)port, argv[2], argv[3]};
    return args;
}

#endif
