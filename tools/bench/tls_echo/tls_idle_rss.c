/* Measures a TLS echo server's user-space memory per idle TLS connection: plain C11,
 * OpenSSL 3 and epoll. The TLS counterpart of ../echo/idle_rss.c.
 *
 *   tls_idle_rss PID HOST PORT --ca CERT [--conns N] [--label L]
 *
 * Reads the server's VmRSS (/proc/PID/status), then opens N TLS connections to it in
 * batches of 500 (TLS 1.3, TLS_BENCH_SUITE, the certificate verified against CERT; see
 * tls_client.h). Each connection completes its handshake, sends one 16-byte message naming
 * it and reads the echo back, so the server has accepted, handshaken and served every one,
 * and is then left idle. Once the server's VmRSS has not changed for 200 ms (or after 5 s),
 * reads it again and prints
 *   tls_idle L conns N rss_before_kib X rss_after_kib Y bytes_per_conn Z
 * where Z = (Y - X) * 1024 / N: what the server keeps per idle TLS connection after the
 * handshake (its TLS state and buffers, its connection object, its loop's per-descriptor
 * state; socket buffers are kernel memory, not in VmRSS). The connections are then reset
 * (SO_LINGER 0) rather than closed, so they leave no TIME_WAIT behind. Exits 1 with
 * "FAIL: ..." on any error. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: tls_idle_rss: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#include "tls_client.h"

#define BATCH 500
#define MSG_LEN 16
#define STEP_TIMEOUT_MS 20000   /* a batch must connect, handshake and be echoed within this */
#define STABLE_MS 200
#define STABLE_BOUND_MS 5000
#define SAMPLE_MS 20

enum conn_state { CONNECTING, HANDSHAKING, ECHOING, DONE };

struct conn {
    int fd;
    SSL* ssl;
    enum conn_state state;
    uint32_t events;
    size_t got;
    char msg[MSG_LEN];
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The VmRSS of `pid`, in KiB. */
static long vm_rss_kib(const char* pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE* f = fopen(path, "r");
    if (!f) fail("%s: %s (is the server running?)", path, strerror(errno));
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    if (kib < 0) fail("%s: no VmRSS line", path);
    return kib;
}

static void raise_nofile(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) fail("getrlimit: %s", strerror(errno));
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) fail("setrlimit: %s", strerror(errno));
}

static int ep;
static SSL_CTX* ctx;

static void ctl(int op, struct conn* c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
    c->events = events;
}

static void want(struct conn* c, uint32_t events) {
    if (c->events != events) ctl(EPOLL_CTL_MOD, c, events);
}

/* One step of connection `index`: the handshake, the message, its echo. Returns 1 once
 * the echo is back whole. */
static int step(struct conn* c, int index) {
    if (c->state == CONNECTING) {
        c->ssl = tls_client_attach(ctx, c->fd, index);
        c->state = HANDSHAKING;
    }
    if (c->state == HANDSHAKING) {
        uint32_t w = tls_client_handshake(c->ssl, index);
        if (w) {
            want(c, w);
            return 0;
        }
        snprintf(c->msg, sizeof c->msg, "conn %010d", index); /* 15 characters */
        c->msg[MSG_LEN - 1] = '\n';
        /* A fresh connection's socket takes one small record whole. */
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->msg, MSG_LEN);
        if (n != MSG_LEN) fail("connection %d: SSL_write: %s", index, tls_error_text());
        c->state = ECHOING;
        c->got = 0;
    }
    char buf[MSG_LEN];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, (int)(MSG_LEN - c->got));
        if (n <= 0) {
            want(c, tls_client_wants(c->ssl, n, "SSL_read", index));
            return 0;
        }
        if (memcmp(buf, c->msg + c->got, (size_t)n) != 0)
            fail("connection %d: the echo does not match what was sent", index);
        c->got += (size_t)n;
        if (c->got == MSG_LEN) {
            c->state = DONE;
            ctl(EPOLL_CTL_DEL, c, 0);
            return 1;
        }
    }
}

/* Connects conns[first, first + count), echoes one message on each, leaves them idle. */
static void run_batch(struct conn* conns, int first, int count, const struct addrinfo* ai) {
    for (int i = first; i < first + count; ++i) {
        struct conn* c = &conns[i];
        c->fd = tls_client_socket(ai, i);
        c->state = CONNECTING;
        ctl(EPOLL_CTL_ADD, c, EPOLLOUT);
    }
    int left = count;
    int64_t deadline = now_ms() + STEP_TIMEOUT_MS;
    struct epoll_event evs[256];
    while (left > 0) {
        int64_t wait = deadline - now_ms();
        if (wait <= 0)
            fail("%d of connections %d..%d not connected, handshaken and echoed within %d ms", left,
                 first, first + count - 1, STEP_TIMEOUT_MS);
        int n = epoll_wait(ep, evs, 256, (int)wait);
        if (n < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
        for (int k = 0; k < n; ++k) {
            struct conn* c = evs[k].data.ptr;
            left -= step(c, (int)(c - conns));
        }
    }
}

static void usage(void) {
    fprintf(stderr, "usage: tls_idle_rss PID HOST PORT --ca CERT [--conns N] [--label L]\n");
    exit(2);
}

int main(int argc, char** argv) {
    if (argc < 4) usage();
    const char* pid = argv[1];
    const char* host = argv[2];
    const char* port = argv[3];
    const char* label = "-";
    const char* cafile = NULL;
    long n_conns = 10000;
    for (int i = 4; i < argc; i += 2) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--conns")) {
            char* end;
            n_conns = strtol(argv[i + 1], &end, 10);
            if (*end || n_conns < 1 || n_conns > 1000000) usage();
        } else if (!strcmp(argv[i], "--ca")) {
            cafile = argv[i + 1];
        } else if (!strcmp(argv[i], "--label")) {
            label = argv[i + 1];
        } else {
            usage();
        }
    }
    if (!cafile) usage();

    raise_nofile();
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo* ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) fail("%s:%s: %s", host, port, gai_strerror(gai));
    ctx = tls_client_context(cafile);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1: %s", strerror(errno));
    struct conn* conns = calloc((size_t)n_conns, sizeof *conns);
    if (!conns) fail("out of memory");

    long before = vm_rss_kib(pid);
    for (long first = 0; first < n_conns; first += BATCH) {
        long count = n_conns - first < BATCH ? n_conns - first : BATCH;
        run_batch(conns, (int)first, (int)count, ai);
    }

    /* Let the server settle: its VmRSS unchanged for STABLE_MS, within STABLE_BOUND_MS. */
    long after = vm_rss_kib(pid);
    int64_t stable_since = now_ms(), give_up = stable_since + STABLE_BOUND_MS;
    while (now_ms() - stable_since < STABLE_MS && now_ms() < give_up) {
        sleep_ms(SAMPLE_MS);
        long rss = vm_rss_kib(pid);
        if (rss != after) {
            after = rss;
            stable_since = now_ms();
        }
    }

    long long bytes = ((long long)after - before) * 1024;
    printf("tls_idle %s conns %ld rss_before_kib %ld rss_after_kib %ld bytes_per_conn %.0f\n", label,
           n_conns, before, after, (double)bytes / (double)n_conns);
    /* A reset (SO_LINGER, zero timeout), no close_notify: N sockets in TIME_WAIT would
     * expire together a minute later and disturb whatever is measured then. */
    const struct linger reset = {.l_onoff = 1, .l_linger = 0};
    for (long i = 0; i < n_conns; ++i) {
        setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(conns[i].fd);
        SSL_free(conns[i].ssl);
    }
    SSL_CTX_free(ctx);
    free(conns);
    freeaddrinfo(ai);
    return 0;
}
