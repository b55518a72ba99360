/* The hand-written TLS echo server in plain C over OpenSSL 3 and epoll: the floor the
 * libraries are measured against, and the check that tls_loadgen can drive more than they
 * need (a server that costs less per message must get more round trips per second).
 *
 *   tls_echo_raw PORT CERT KEY
 *
 * One thread, one epoll set, level-triggered. OpenSSL reads and writes each socket itself
 * (SSL_set_fd: no memory BIOs, no copies of the records) and reads ahead (a socket's worth
 * of records per read(2)). Every readable connection is read (SSL_read: one record's
 * plaintext) into one 64 KiB buffer shared by all connections, and what was read is written
 * straight back (SSL_write: one record). Only when the socket does not take the record is
 * the plaintext copied aside, to be passed again to SSL_write when the socket is writable
 * (OpenSSL's rule); the connection reads nothing meanwhile. TLS 1.3 only, TLS_BENCH_SUITE
 * only, OpenSSL's defaults otherwise (its buffers stay allocated while a connection is idle).
 * SIGINT and SIGTERM arrive through a signalfd and end the loop; the exit status is 0. */
#define _GNU_SOURCE
#include "tls_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE 65536

struct conn {
    int fd;
    int handshaking;
    uint32_t events;  /* registered now */
    SSL* ssl;
    char* pending;    /* plaintext SSL_write must be given again (NULL: none) */
    int pending_len;
};

static int ep;
static char buf[BUF_SIZE];

static void die(const char* what) {
    fprintf(stderr, "tls_echo_raw: %s: %s\n", what,
            ERR_peek_error() ? ERR_error_string(ERR_get_error(), NULL) : strerror(errno));
    exit(1);
}

static void drop(struct conn* c) {
    SSL_free(c->ssl);
    free(c->pending);
    close(c->fd); /* also leaves the epoll set */
    free(c);
}

static void watch(struct conn* c, uint32_t events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
    c->events = events;
}

/* After a call on the connection returned RET <= 0: waits for what OpenSSL wants and
 * returns 0, or drops the connection (closed, reset, TLS error) and returns -1. */
static int wait_or_drop(struct conn* c, int ret) {
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ: watch(c, EPOLLIN); return 0;
    case SSL_ERROR_WANT_WRITE: watch(c, EPOLLOUT); return 0;
    default: ERR_clear_error(); drop(c); return -1;
    }
}

static void on_conn(struct conn* c) {
    if (c->handshaking) {
        int r = SSL_accept(c->ssl);
        if (r != 1) {
            wait_or_drop(c, r);
            return;
        }
        c->handshaking = 0;
    }
    if (c->pending) {
        int r = SSL_write(c->ssl, c->pending, c->pending_len);
        if (r <= 0) {
            wait_or_drop(c, r);
            return;
        }
        free(c->pending);
        c->pending = NULL;
    }
    for (;;) {
        int n = SSL_read(c->ssl, buf, BUF_SIZE);
        if (n <= 0) {
            wait_or_drop(c, n); /* end of stream (close_notify or not) drops it too */
            return;
        }
        int w = SSL_write(c->ssl, buf, n);
        if (w <= 0) {
            int e = SSL_get_error(c->ssl, w);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                ERR_clear_error();
                drop(c);
                return;
            }
            c->pending = malloc((size_t)n);
            if (!c->pending) die("malloc");
            memcpy(c->pending, buf, (size_t)n);
            c->pending_len = n;
            wait_or_drop(c, w);
            return;
        }
    }
}

static void on_listener(int lfd, SSL_CTX* ctx) {
    const int one = 1;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn* c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->fd = fd;
        c->handshaking = 1;
        c->ssl = SSL_new(ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) die("SSL_new");
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    }
}

int main(int argc, char** argv) {
    struct tls_echo_args args = tls_echo_setup(argc, argv);

    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS_BENCH_SUITE) != 1)
        die("SSL_CTX_new (TLS 1.3, " TLS_BENCH_SUITE ")");
    if (SSL_CTX_use_certificate_chain_file(ctx, args.cert) != 1) die(args.cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, args.key, SSL_FILETYPE_PEM) != 1) die(args.key);
    SSL_CTX_set_read_ahead(ctx, 1);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0) die("sigprocmask");
    int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    const int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("SO_REUSEADDR");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(args.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
    if (listen(lfd, SOMAXCONN) != 0) die("listen");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    /* The listener and the signalfd are told apart from connections by these addresses. */
    static int listener_tag, signal_tag;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) die("epoll_ctl");
    ev.data.ptr = &signal_tag;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) die("epoll_ctl");

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            void* p = evs[i].data.ptr;
            if (p == &signal_tag) {
                SSL_CTX_free(ctx); /* the connections still open keep it until the exit */
                return 0;
            }
            if (p == &listener_tag) on_listener(lfd, ctx);
            else on_conn(p);
        }
    }
}
