/* The hand-written raw epoll echo server: the floor the libraries are measured against.
 *
 *   echo_raw_epoll PORT
 *
 * One thread, one epoll set. Every readable connection is read into one 64 KiB buffer
 * shared by all connections, and what was read is written straight back. Only when the
 * socket does not take all of it is the unsent remainder copied aside; the connection
 * then stops reading until the remainder is gone. Per connection that is one 16-byte slot
 * of a table indexed by descriptor, and nothing else while it is idle.
 *
 * Edge-triggered, registered once (EPOLLIN | EPOLLOUT | EPOLLET) and never modified. On
 * this workload it measured the same as level-triggered, within the run-to-run noise, in
 * every cell; it is kept because it needs no epoll_ctl when a connection switches
 * between reading and flushing, and no re-poll of each reported descriptor. Build with
 * -DECHO_LEVEL_TRIGGERED for the level-triggered variant.
 * SIGINT and SIGTERM arrive through a signalfd and end the loop; the exit status is 0. */
#define _GNU_SOURCE
#include "echo_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536

/* The unsent remainder of one connection: data == NULL when everything went out. */
struct pending {
    char* data;
    uint32_t off, len;
};

static struct pending* table; /* indexed by descriptor */
static size_t table_len;
static int ep;
static char buf[BUF_SIZE];

static void die(const char* what) {
    perror(what);
    exit(1);
}

static struct pending* slot(int fd) {
    if ((size_t)fd >= table_len) {
        size_t len = table_len ? table_len : 1024;
        while (len <= (size_t)fd) len *= 2;
        struct pending* t = realloc(table, len * sizeof *t);
        if (!t) die("realloc");
        memset(t + table_len, 0, (len - table_len) * sizeof *t);
        table = t;
        table_len = len;
    }
    return &table[fd];
}

static void drop(int fd) {
    struct pending* p = &table[fd];
    free(p->data);
    p->data = NULL;
    close(fd); /* also leaves the epoll set */
}

#ifdef ECHO_LEVEL_TRIGGERED
static void watch(int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0) die("epoll_ctl");
}
#endif

/* Writes `len` bytes from `data`; keeps what the socket did not take. Returns 0 if all of
 * it went out, 1 if a remainder is pending, -1 if the connection failed (and is closed). */
static int send_or_keep(int fd, const char* data, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pending* p = &table[fd];
            size_t rest = len - done;
            char* copy = malloc(rest);
            if (!copy) die("malloc");
            memcpy(copy, data + done, rest);
            *p = (struct pending){copy, 0, (uint32_t)rest};
#ifdef ECHO_LEVEL_TRIGGERED
            watch(fd, EPOLLOUT);
#endif
            return 1;
        } else {
            drop(fd);
            return -1;
        }
    }
    return 0;
}

/* Flushes a pending remainder. Returns 0 once nothing is pending, 1 if some still is,
 * -1 if the connection failed (and is closed). */
static int flush(int fd) {
    struct pending* p = &table[fd];
    while (p->off < p->len) {
        ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
        if (n > 0) {
            p->off += (uint32_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 1;
        } else {
            drop(fd);
            return -1;
        }
    }
    free(p->data);
    p->data = NULL;
#ifdef ECHO_LEVEL_TRIGGERED
    watch(fd, EPOLLIN);
#endif
    return 0;
}

static void on_conn(int fd, uint32_t events) {
    if (table[fd].data) {
        /* Flushing: nothing is read until the remainder is out. */
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) || flush(fd) != 0) return;
    }
    for (;;) {
        ssize_t n = recv(fd, buf, BUF_SIZE, 0);
        if (n > 0) {
            if (send_or_keep(fd, buf, (size_t)n) != 0) return;
#ifdef ECHO_LEVEL_TRIGGERED
            return; /* level-triggered: if more is there, epoll says so again */
#else
            /* Edge-triggered: a short read means the socket was drained, and anything
             * arriving later raises a new edge. A full buffer may have left more behind. */
            if (n < BUF_SIZE) return;
#endif
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            drop(fd); /* end of stream or an error (a reset peer) */
            return;
        }
    }
}

static void on_listener(int lfd) {
    const int one = 1;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        *slot(fd) = (struct pending){NULL, 0, 0};
#ifdef ECHO_LEVEL_TRIGGERED
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
#else
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = fd};
#endif
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    }
}

int main(int argc, char** argv) {
    unsigned short port = echo_setup(argc, argv);

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
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
    if (listen(lfd, SOMAXCONN) != 0) die("listen");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) die("epoll_ctl");
    ev.data.fd = sfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) die("epoll_ctl");

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            int fd = evs[i].data.fd;
            if (fd == sfd) return 0;
            if (fd == lfd) on_listener(lfd);
            else on_conn(fd, evs[i].events);
        }
    }
}
