/* Closed-loop ping-pong load generator for the TLS echo servers: plain C11, OpenSSL 3 and
 * epoll. The TLS counterpart of ../echo/loadgen.c, with the same messages and checks.
 *
 *   tls_loadgen HOST PORT --ca CERT --conns C --size S (--seconds T | --requests N)
 *               [--server-pid PID] [--label L]
 *
 * Opens C TLS 1.3 connections (TLS_BENCH_SUITE only, the server's certificate verified
 * against CERT for "localhost"; see tls_client.h). Once its handshake is done, each one
 * sends a message of S bytes (one SSL_write: one record up to 16 KiB), waits until all S
 * bytes have come back, compares every byte, and only then sends its next message.
 * Message k of connection c is the window of a fixed pseudo-random pool that starts at an
 * offset derived from (k, c), so a stale, misordered or cross-connection echo fails.
 *
 * --seconds T: a 0.2 s warm-up that is not counted (the handshakes are in it), then T
 * seconds of measurement. --requests N: exactly N round trips in all, timed from the first
 * connect. Messages in flight at the end are completed and checked (not counted), then
 * each connection sends close_notify and is closed.
 *
 * Whether the client was the bottleneck: over the measured time it reports its own CPU
 * time (getrusage) as a share of one core and per round trip, and, given --server-pid,
 * the server's likewise (utime + stime of /proc/PID/stat, all its threads). Both sides
 * work once per round trip, so the one that costs more per round trip bounds the rate.
 * Prints one line:
 *   tls_echo L conns C size S requests N seconds T rps R p50_us A p99_us B
 *     client_cpu_pct W client_cpu_us_per_req X server_cpu_pct Y server_cpu_us_per_req Z
 * (one line; Y and Z are "-" without --server-pid) and exits 1 with "FAIL: ..." on a
 * mismatch, an early close, a TLS error or a stall. */
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
    fputs("FAIL: tls_loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#include "tls_client.h"

#define WARMUP_NS 200000000LL   /* 0.2 s, seconds mode only */
#define STALL_NS 10000000000LL  /* no completed round trip for 10 s: the server is stuck */
#define POOL_SPAN 65536u        /* messages start at one of this many pool offsets */
#define READ_BUF 65536

enum conn_state { CONNECTING, HANDSHAKING, RUNNING, IDLE };

struct conn {
    int fd;
    int id;
    SSL* ssl;
    enum conn_state state;
    uint32_t events;           /* the epoll events registered now */
    uint32_t write_wants;      /* a write is pending and waits for this event (0: none) */
    const unsigned char* msg;  /* the message in flight, inside the pool */
    size_t received;
    uint64_t seq;              /* messages started on this connection */
    int64_t started_ns;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Options. */
static const char* label = "-";
static const char* cafile = NULL;
static long n_conns = 10;
static size_t msg_size = 1024;
static double run_seconds = 2.0;
static uint64_t n_requests = 0; /* 0: run for run_seconds */
static long server_pid = 0;     /* 0: not measured */

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

/* Where message `seq` of connection `id` starts in the pool (an odd multiplier: POOL_SPAN
 * consecutive messages of one connection all start at different offsets). */
static const unsigned char* message_for(int id, uint64_t seq) {
    uint64_t off = (seq * 40503u + (uint64_t)id * 7919u) % POOL_SPAN;
    return pool + off;
}

/* CPU time, in µs, of this process, and of the server (utime + stime of all its threads;
 * clock ticks, so 10 ms steps at 100 Hz: under 1% of a 2 s cell). */
static int64_t self_cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static int64_t server_cpu_us(void) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", server_pid);
    FILE* f = fopen(path, "r");
    if (!f) fail("%s: %s (is the server running?)", path, strerror(errno));
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    /* The command name may hold spaces and parentheses: the fields start after the last ')'. */
    const char* p = strrchr(text, ')');
    unsigned long long utime = 0, stime = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        fail("%s: unexpected format", path);
    return (int64_t)((utime + stime) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Run state. */
static int ep;
static SSL_CTX* ctx;
static struct conn* conns;
static int64_t t_begin, t_measure, t_end;
static int64_t cpu_begin, cpu_end, server_begin, server_end;
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

static void set_events(struct conn* c, uint32_t events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
    c->events = events;
}

/* Writes the message in flight (retried with the same arguments while OpenSSL wants to). */
static void push(struct conn* c) {
    ERR_clear_error();
    int n = SSL_write(c->ssl, c->msg, (int)msg_size);
    c->write_wants = n > 0 ? 0 : tls_client_wants(c->ssl, n, "SSL_write", c->id);
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
    c->received = 0;
    c->started_ns = now;
    push(c);
}

/* Reads what OpenSSL has, one record per SSL_read. It stops when OpenSSL holds nothing
 * more (SSL_has_pending: what it read ahead), rather than on the read(2) that finds the
 * socket empty: epoll is level-triggered and says so if more arrived, and one message is
 * in flight, so that read would almost always be one wasted system call per message. */
static void pull(struct conn* c, unsigned char* buf, int64_t now) {
    for (int first = 1; first || SSL_has_pending(c->ssl); first = 0) {
        ERR_clear_error();
        int got = SSL_read(c->ssl, buf, READ_BUF);
        if (got <= 0) {
            if (tls_client_wants(c->ssl, got, "SSL_read", c->id) == EPOLLOUT && !c->write_wants)
                c->write_wants = EPOLLOUT; /* a read that must write first: retried on EPOLLOUT */
            return;
        }
        size_t n = (size_t)got;
        if (c->state != RUNNING)
            fail("connection %d: %zu unexpected bytes while no message was in flight", c->id, n);
        if (c->received + n > msg_size)
            fail("connection %d: %zu bytes echoed for a %zu-byte message", c->id, c->received + n,
                 msg_size);
        if (memcmp(buf, c->msg + c->received, n) != 0) {
            size_t i = 0;
            while (buf[i] == c->msg[c->received + i]) ++i;
            fail("connection %d: message %llu: byte %zu of %zu echoed as 0x%02x, sent 0x%02x",
                 c->id, (unsigned long long)(c->seq - 1), c->received + i, msg_size, buf[i],
                 c->msg[c->received + i]);
        }
        c->received += n;
        if (c->received < msg_size) continue;
        if (measuring) {
            ++completed;
            record_latency(now - c->started_ns);
        }
        last_progress = now;
        next_message(c, now);
    }
}

static void on_event(struct conn* c, uint32_t events, unsigned char* buf, int64_t now) {
    if (c->state == CONNECTING) {
        c->ssl = tls_client_attach(ctx, c->fd, c->id);
        c->state = HANDSHAKING;
    }
    if (c->state == HANDSHAKING) {
        uint32_t wants = tls_client_handshake(c->ssl, c->id);
        if (wants) {
            set_events(c, wants);
            return;
        }
        next_message(c, now);
    } else if (c->write_wants && (events & (c->write_wants | EPOLLERR | EPOLLHUP))) {
        push(c);
    }
    pull(c, buf, now);
    set_events(c, EPOLLIN | (c->write_wants == EPOLLOUT ? EPOLLOUT : 0));
}

static void open_conns(const struct addrinfo* ai) {
    conns = calloc((size_t)n_conns, sizeof *conns);
    if (!conns) fail("out of memory for %ld connections", n_conns);
    for (int i = 0; i < n_conns; ++i) {
        struct conn* c = &conns[i];
        c->id = i;
        c->fd = tls_client_socket(ai, i);
        c->state = CONNECTING;
        c->events = EPOLLOUT; /* until connected; tls_client_attach then checks SO_ERROR */
        struct epoll_event ev = {.events = c->events, .data.ptr = c};
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
    size_t rank = (lat_len * pct + 99) / 100;
    return lat[rank - 1] / 1000.0;
}

static void usage(void) {
    fprintf(stderr, "usage: tls_loadgen HOST PORT --ca CERT --conns C --size S "
                    "(--seconds T | --requests N) [--server-pid PID] [--label L]\n");
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
        else if (!strcmp(opt, "--size")) msg_size = (size_t)parse_num(val, 1, 16384);
        else if (!strcmp(opt, "--seconds")) run_seconds = parse_num(val, 0.01, 3600);
        else if (!strcmp(opt, "--requests")) n_requests = (uint64_t)parse_num(val, 1, 1e12);
        else if (!strcmp(opt, "--server-pid")) server_pid = (long)parse_num(val, 1, 1e9);
        else if (!strcmp(opt, "--ca")) cafile = val;
        else if (!strcmp(opt, "--label")) label = val;
        else usage();
    }
    if (!cafile) usage();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo* ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) fail("%s:%s: %s", host, port, gai_strerror(gai));

    make_pool();
    ctx = tls_client_context(cafile);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) fail("epoll_create1: %s", strerror(errno));

    t_begin = last_progress = now_ns();
    if (n_requests) {
        measuring = 1;
        t_measure = t_begin;
        cpu_begin = self_cpu_us();
        if (server_pid) server_begin = server_cpu_us();
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
        for (int i = 0; i < n; ++i) on_event(evs[i].data.ptr, evs[i].events, buf, now);
        if (n_requests) {
            if (completed == n_requests) {
                t_end = now;
                cpu_end = self_cpu_us();
                if (server_pid) server_end = server_cpu_us();
                break;
            }
        } else if (!measuring && sending && now >= t_measure) {
            /* Warm-up over: count from here. Messages in flight now count when they finish. */
            measuring = 1;
            t_measure = last_progress = now;
            cpu_begin = self_cpu_us();
            if (server_pid) server_begin = server_cpu_us();
        } else if (measuring && now - t_measure >= run_ns) {
            measuring = 0;
            sending = 0;
            t_end = now;
            cpu_end = self_cpu_us();
            if (server_pid) server_end = server_cpu_us();
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
    for (int i = 0; i < n_conns; ++i) {
        /* close_notify, sent once without waiting for the server's (a clean TLS close). */
        if (conns[i].ssl) {
            SSL_shutdown(conns[i].ssl);
            SSL_free(conns[i].ssl);
        }
        close(conns[i].fd);
    }
    SSL_CTX_free(ctx);
    free(conns);
    free(buf);
    free(pool);

    if (completed == 0) fail("no round trip completed");
    qsort(lat, lat_len, sizeof *lat, cmp_u32);
    double secs = (double)(t_end - t_measure) / 1e9;
    double wall_us = (double)(t_end - t_measure) / 1e3;
    char server_pct[32] = "-", server_per_req[32] = "-";
    if (server_pid) {
        snprintf(server_pct, sizeof server_pct, "%.1f", 100.0 * (double)(server_end - server_begin) / wall_us);
        snprintf(server_per_req, sizeof server_per_req, "%.2f",
                 (double)(server_end - server_begin) / (double)completed);
    }
    printf("tls_echo %s conns %ld size %zu requests %llu seconds %.3f rps %.0f p50_us %.1f p99_us %.1f "
           "client_cpu_pct %.1f client_cpu_us_per_req %.2f server_cpu_pct %s server_cpu_us_per_req %s\n",
           label, n_conns, msg_size, (unsigned long long)completed, secs, (double)completed / secs,
           percentile_us(50), percentile_us(99), 100.0 * (double)(cpu_end - cpu_begin) / wall_us,
           (double)(cpu_end - cpu_begin) / (double)completed, server_pct, server_per_req);
    free(lat);
    return 0;
}
