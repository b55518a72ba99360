/* Echo server on libev (Debian's libev 4.33, epoll backend).
 *
 *   echo_libev PORT
 *
 * libev only reports readiness, so this is written the way a C user of libev writes a
 * server: one ev_io watcher per connection, read into one 64 KiB buffer shared by all
 * connections, write straight back, and only if the socket does not take everything,
 * keep the remainder and switch the watcher from EV_READ to EV_WRITE until it is out.
 * An idle connection is its malloc'd watcher struct. SIGINT and SIGTERM arrive through
 * ev_signal watchers and break the loop; the exit status is 0. */
#define _GNU_SOURCE
#include "echo_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536

struct conn {
    ev_io io;      /* first, so the watcher pointer is the connection */
    char* pending; /* unsent remainder, NULL when there is none */
    size_t off, len;
};

static char buf[BUF_SIZE];

static void die(const char* what) {
    perror(what);
    exit(1);
}

static void drop(struct ev_loop* loop, struct conn* c) {
    ev_io_stop(loop, &c->io);
    close(c->io.fd);
    free(c->pending);
    free(c);
}

static void switch_to(struct ev_loop* loop, struct conn* c, int events) {
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(loop, &c->io);
}

static void on_conn(struct ev_loop* loop, ev_io* w, int revents) {
    struct conn* c = (struct conn*)w;
    int fd = w->fd;
    if (revents & EV_WRITE) {
        while (c->off < c->len) {
            ssize_t n = send(fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
            if (n > 0) c->off += (size_t)n;
            else if (n < 0 && errno == EINTR) continue;
            else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            else {
                drop(loop, c);
                return;
            }
        }
        free(c->pending);
        c->pending = NULL;
        switch_to(loop, c, EV_READ);
        return;
    }
    ssize_t n;
    do n = recv(fd, buf, BUF_SIZE, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) { /* end of stream or an error */
        drop(loop, c);
        return;
    }
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t m = send(fd, buf + done, (size_t)n - done, MSG_NOSIGNAL);
        if (m > 0) {
            done += (size_t)m;
        } else if (m < 0 && errno == EINTR) {
            continue;
        } else if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->len = (size_t)n - done;
            c->off = 0;
            c->pending = malloc(c->len);
            if (!c->pending) die("malloc");
            memcpy(c->pending, buf + done, c->len);
            switch_to(loop, c, EV_WRITE);
            return;
        } else {
            drop(loop, c);
            return;
        }
    }
}

static void on_listener(struct ev_loop* loop, ev_io* w, int revents) {
    (void)revents;
    const int one = 1;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn* c = malloc(sizeof *c);
        if (!c) die("malloc");
        c->pending = NULL;
        c->off = c->len = 0;
        ev_io_init(&c->io, on_conn, fd, EV_READ);
        ev_io_start(loop, &c->io);
    }
}

static void on_signal(struct ev_loop* loop, ev_signal* w, int revents) {
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char** argv) {
    unsigned short port = echo_setup(argc, argv);
    struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) die("ev_default_loop");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    const int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("SO_REUSEADDR");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
    if (listen(lfd, SOMAXCONN) != 0) die("listen");

    ev_io listener;
    ev_io_init(&listener, on_listener, lfd, EV_READ);
    ev_io_start(loop, &listener);
    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, on_signal, SIGINT);
    ev_signal_init(&sigterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);

    ev_run(loop, 0);
    return 0;
}
