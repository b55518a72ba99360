/* Shared by the TLS benchmark clients (tls_loadgen.c, tls_idle_rss.c): plain C11, OpenSSL 3
 * and epoll. The client's side of a connection: its context, a non-blocking TCP socket,
 * and the handshake driven from epoll events. Header-only; the program that includes it
 * defines `static void fail(const char* fmt, ...)` (prints and exits 1) first.
 *
 * OpenSSL reads and writes the socket itself (SSL_set_fd: no memory BIOs, no copies of
 * the records), and reads ahead (a whole socket's worth of records per read(2), instead
 * of a header then a body), so the client spends as little as OpenSSL allows per message. */
#ifndef IOLOOP_BENCH_TLS_CLIENT_H
#define IOLOOP_BENCH_TLS_CLIENT_H

#include "tls_common.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static void fail(const char* fmt, ...);

/* OpenSSL's oldest queued error, as text (the queue is then cleared). */
static const char* tls_error_text(void) {
    static char text[256];
    unsigned long e = ERR_get_error();
    if (e == 0) return errno ? strerror(errno) : "no error queued";
    ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return text;
}

/* A client context: TLS 1.3 only, the suite TLS_BENCH_SUITE only, the server's
 * certificate verified against CAFILE (the self-signed one the run made) for the name
 * "localhost", no session cache (every connection does a full handshake). Also ignores
 * SIGPIPE for the whole program. */
static SSL_CTX* tls_client_context(const char* cafile) {
    /* OpenSSL writes with write(2): a server that resets a connection would otherwise
     * kill the client with SIGPIPE instead of failing with a message. */
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) fail("SSL_CTX_new: %s", tls_error_text());
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS_BENCH_SUITE) != 1)
        fail("restricting the context to TLS 1.3 and %s: %s", TLS_BENCH_SUITE, tls_error_text());
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1)
        fail("%s: %s", cafile, tls_error_text());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* Starts a non-blocking TCP_NODELAY connection to AI; returns the socket. */
static int tls_client_socket(const struct addrinfo* ai, int id) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("connection %d: socket: %s", id, strerror(errno));
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        fail("setsockopt(TCP_NODELAY): %s", strerror(errno));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        fail("connection %d: connect: %s", id, strerror(errno));
    return fd;
}

/* After the socket became writable: checks the TCP connect worked, and returns the SSL
 * object for the handshake over it (SNI and the verified name: "localhost"). */
static SSL* tls_client_attach(SSL_CTX* ctx, int fd, int id) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err) fail("connection %d: connect: %s", id, strerror(err));
    SSL* ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, "localhost") != 1 ||
        SSL_set1_host(ssl, "localhost") != 1)
        fail("connection %d: SSL_new: %s", id, tls_error_text());
    return ssl;
}

/* What OpenSSL waits for after a call on SSL returned RET: EPOLLIN or EPOLLOUT; fails on
 * anything else (WHAT names the call). */
static uint32_t tls_client_wants(SSL* ssl, int ret, const char* what, int id) {
    int e = SSL_get_error(ssl, ret);
    if (e == SSL_ERROR_WANT_READ) return EPOLLIN;
    if (e == SSL_ERROR_WANT_WRITE) return EPOLLOUT;
    if (e == SSL_ERROR_ZERO_RETURN) fail("connection %d: %s: the server closed the TLS session", id, what);
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        fail("connection %d: %s: %s", id, what, errno ? strerror(errno) : "the server closed the connection");
    fail("connection %d: %s: %s", id, what, tls_error_text());
    return 0;
}

/* One step of the handshake: 0 when it is done (TLS 1.3 with TLS_BENCH_SUITE checked),
 * otherwise the epoll event it waits for. */
static uint32_t tls_client_handshake(SSL* ssl, int id) {
    ERR_clear_error();
    int r = SSL_connect(ssl);
    if (r != 1) return tls_client_wants(ssl, r, "handshake", id);
    const char* suite = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
    if (SSL_version(ssl) != TLS1_3_VERSION || strcmp(suite, TLS_BENCH_SUITE) != 0)
        fail("connection %d: negotiated %s with %s, not TLSv1.3 with %s", id, SSL_get_version(ssl),
             suite, TLS_BENCH_SUITE);
    return 0;
}

#endif
