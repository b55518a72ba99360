/* Closed-loop ping-pong load generator for the echo servers: plain C11 and epoll.
 *
 *   loadgen HOST PORT --conns C --size S (--seconds T | --requests N) [--label L]
 *
 * Opens C non-blocking TCP_NODELAY connections. Each one sends a message of S bytes,
 * waits until all S bytes have come back, compares every byte, and only then sends its
 * next message. Message k of connection c is the window of a fixed pseudo-random pool
 * that starts at an offset derived from (k, c), so consecutive messages differ and an
 * echo that is stale, misordered, or belongs to another connection fails the check.
 *
 * --seconds T: a 0.2 s warm-up that is not counted, then T seconds of measurement.
 * --requests N: exactly N round trips in all, timed from the first connect.
 * Either way, messages still in flight at the end are completed and checked (not
 * counted) before the connections are closed. Prints one line:
 *   echo L conns C size S requests N seconds T rps R p50_us A p99_us B
 * and exits 1 with "FAIL: ..." on a mismatch, an early close, an error or a stall. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP_NS 200000000LL   /* 0.2 s, seconds mode only */
#define STALL_NS 10000000000LL  /* no completed round trip for 10 s: the server is stuck */
#define POOL_SPAN 65536u        /* messages start at one of this many pool offsets */
#define READ_BUF 65536

enum conn_state { CONNECTING, RUNNING, IDLE };

struct conn {
    int fd;
    int id;
    enum conn_state state;
    int want_out;              /* EPOLLOUT is registered: a send is partly done */
    const unsigned char* msg;  /* the message in flight, inside the pool */
    size_t sent, received;
    uint64_t seq;              /* messages started on this connection */
    int64_t started_ns;
};

static void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Options. */
static const char* label = "-";
static long n_conns = 10;
static size_t msg_size = 64;
static double run_seconds = 2.0;
static uint64_t n_requests = 0; /* 0: run for run_seconds */

/* The pattern pool: POOL_SPAN + msg_size pseudo-random bytes (xorshift64, fixed seed). */
static unsigned char* pool;

static void make_pool(void) {
    size_t len = POOL_SPAN + msg_size;
    pool = malloc(len);
    if (!pool) fail("out of memory for a %zu-byte pattern pool", len);
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < len; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pool[i] = (unsigned char)(x >> 32);
    }
}

/* Where message `seq` of connection `id` starts in the pool. The multiplier is odd, so
 * POOL_SPAN consecutive messages of one connection all start at different offsets. */
static const unsigned char* message_for(int id, uint64_t seq) {
    uint64_t off = (seq * 40503u + (uint64_t)id * 7919u) % POOL_SPAN;
    return pool + off;
}

/* Run state. */
static int ep;
static struct conn* conns;
static int64_t t_begin, t_measure, t_end;
static int measuring;        /* completions are counted */
static int sending = 1;      /* new messages may be started */
static uint64_t started;     /* messages started (--requests mode) */
static uint64_t completed;   /* completions counted */
static int64_t last_progress;
static uint32_t* lat;        /* round-trip latencies in ns, one per counted completion */
static size_t lat_len, lat_cap;

static void record_latency(int64_t ns) {
    if (lat_len == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        lat = realloc(lat, lat_cap * sizeof *lat);
        if (!lat) fail("out of memory for %zu latencies", lat_cap);
    }
    lat[lat_len++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void set_out_interest(struct conn* c, int want) {
    if (c->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
    c->want_out = want;
}

/* Sends as much of the message in flight as the socket takes. */
static void push(struct conn* c) {
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, c->msg + c->sent, msg_size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(c, 1);
            return;
        } else {
            fail("connection %d: send: %s", c->id, n < 0 ? strerror(errno) : "sent nothing");
        }
    }
    set_out_interest(c, 0);
}

/* Starts the connection's next message, or leaves it idle when sending has stopped. */
static void next_message(struct conn* c, int64_t now) {
    if (!sending || (n_requests && started == n_requests)) {
        c->state = IDLE;
        return;
    }
    ++started;
    c->state = RUNNING;
    c->msg = message_for(c->id, c->seq++);
    c->sent = c->received = 0;
    c->started_ns = now;
    push(c);
}

static void on_readable(struct conn* c, unsigned char* buf, int64_t now) {
    ssize_t n = recv(c->fd, buf, READ_BUF, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        fail("connection %d: recv: %s", c->id, strerror(errno));
    }
    if (n == 0) fail("connection %d: the server closed it early", c->id);
    if (c->state != RUNNING)
        fail("connection %d: %zd unexpected bytes while no message was in flight", c->id, n);
    if (c->received + (size_t)n > c->sent)
        fail("connection %d: %zu bytes echoed but only %zu sent", c->id, c->received + (size_t)n,
             c->sent);
    if (memcmp(buf, c->msg + c->received, (size_t)n) != 0) {
        size_t i = 0;
        while (buf[i] == c->msg[c->received + i]) ++i;
        fail("connection %d: message %llu: byte %zu of %zu echoed as 0x%02x, sent 0x%02x", c->id,
             (unsigned long long)(c->seq - 1), c->received + i, msg_size, buf[i],
             c->msg[c->received + i]);
    }
    c->received += (size_t)n;
    if (c->received < msg_size) return;
    if (measuring) {
        ++completed;
        record_latency(now - c->started_ns);
    }
    last_progress = now;
    next_message(c, now);
}

static void on_connected(struct conn* c, int64_t now) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err) fail("connection %d: connect: %s", c->id, strerror(err));
    set_out_interest(c, 0);
    next_message(c, now);
}

static void open_conns(const struct addrinfo* ai) {
    conns = calloc((size_t)n_conns, sizeof *conns);
    if (!conns) fail("out of memory for %ld connections", n_conns);
    int one = 1;
    for (int i = 0; i < n_conns; ++i) {
        struct conn* c = &conns[i];
        c->id = i;
        c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) fail("socket: %s", strerror(errno));
        if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            fail("setsockopt(TCP_NODELAY): %s", strerror(errno));
        int r = connect(c->fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno != EINPROGRESS) fail("connection %d: connect: %s", i, strerror(errno));
        /* Until connected, wait for writability; on_connected then checks SO_ERROR. */
        c->state = CONNECTING;
        c->want_out = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
    }
}

static int cmp_u32(const void* a, const void* b) {
    uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile (pct in 1..100) of the sorted latencies, in µs. */
static double percentile_us(unsigned pct) {
    if (lat_len == 0) return 0.0;
    size_t rank = (lat_len * pct + 99) / 100; /* ceil(lat_len * pct / 100), >= 1 */
    return lat[rank - 1] / 1000.0;
}

static void usage(void) {
    fprintf(stderr, "usage: loadgen HOST PORT --conns C --size S (--seconds T | --requests N) "
                    "[--label L]\n");
    exit(2);
}

static double parse_num(const char* s, double lo, double hi) {
    char* end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || v < lo || v > hi) usage();
    return v;
}

int main(int argc, char** argv) {
    if (argc < 3) usage();
    const char* host = argv[1];
    const char* port = argv[2];
    for (int i = 3; i < argc; ++i) {
        const char* opt = argv[i];
        if (i + 1 >= argc) usage();
        const char* val = argv[++i];
        if (!strcmp(opt, "--conns")) n_conns = (long)parse_num(val, 1, 100000);
        else if (!strcmp(opt, "--size")) msg_size = (size_t)parse_num(val, 1, 1 << 24);
        else if (!strcmp(opt, "--seconds")) run_seconds = parse_num(val, 0.01, 3600);
        else if (!strcmp(opt, "--requests")) n_requests = (uint64_t)parse_num(val, 1, 1e12);
        else if (!strcmp(opt, "--label")) label = val;
        else usage();
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo* ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) fail("%s:%s: %s", host, port, gai_strerror(gai));

    make_pool();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1: %s", strerror(errno));

    t_begin = last_progress = now_ns();
    if (n_requests) {
        measuring = 1;
        t_measure = t_begin;
    } else {
        t_measure = t_begin + WARMUP_NS;
    }
    open_conns(ai);
    freeaddrinfo(ai);

    const int64_t run_ns = (int64_t)(run_seconds * 1e9);
    unsigned char* buf = malloc(READ_BUF);
    struct epoll_event evs[256];
    if (!buf) fail("out of memory");
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
        int64_t now = now_ns();
        for (int i = 0; i < n; ++i) {
            struct conn* c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (c->state == CONNECTING) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, now);
                continue;
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c, buf, now);
            if ((e & EPOLLOUT) && c->state == RUNNING && c->sent < msg_size) push(c);
        }
        if (n_requests) {
            if (completed == n_requests) {
                t_end = now;
                break;
            }
        } else if (!measuring && sending && now >= t_measure) {
            /* Warm-up over: count from here. Messages in flight now count when they finish. */
            measuring = 1;
            t_measure = now;
            last_progress = now;
        } else if (measuring && now - t_measure >= run_ns) {
            measuring = 0;
            sending = 0;
            t_end = now;
        }
        if (!sending) {
            /* Drain: the messages still in flight must come back whole before closing. */
            int busy = 0;
            for (int i = 0; i < n_conns; ++i) busy |= conns[i].state == RUNNING;
            if (!busy) break;
        }
        if (now - last_progress > STALL_NS)
            fail("no round trip completed for %lld s (%llu done)", STALL_NS / 1000000000LL,
                 (unsigned long long)completed);
    }
    for (int i = 0; i < n_conns; ++i) close(conns[i].fd);

    if (completed == 0) fail("no round trip completed");
    qsort(lat, lat_len, sizeof *lat, cmp_u32);
    double secs = (double)(t_end - t_measure) / 1e9;
    printf("echo %s conns %ld size %zu requests %llu seconds %.3f rps %.0f p50_us %.1f p99_us %.1f\n",
           label, n_conns, msg_size, (unsigned long long)completed, secs, (double)completed / secs,
           percentile_us(50), percentile_us(99));
    return 0;
}
