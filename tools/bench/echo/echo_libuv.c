/* Echo server on libuv (Debian's libuv 1.44).
 *
 *   echo_libuv PORT
 *
 * Written the way Node.js, libuv's biggest user, serves a stream: a malloc'd uv_tcp_t per
 * connection; the alloc callback hands out one 64 KiB read buffer shared by all
 * connections; the read callback sends what arrived with uv_try_write, and only what the
 * socket did not take is copied into a uv_write request, which its callback frees. An
 * idle connection is its uv_tcp_t alone. (libuv's own echo server instead mallocs the
 * suggested 64 KiB for every read and frees it after uv_write: see the README for why
 * that is not used.)
 * SIGINT and SIGTERM arrive through uv_signal_t handles and stop the loop; the exit
 * status is 0. */
#define _GNU_SOURCE
#include "echo_common.h"

#include <uv.h>

#define BUF_SIZE 65536

/* A queued remainder: what uv_try_write could not send, copied, with its request. */
struct write_req {
    uv_write_t req;
    uv_buf_t buf;
};

static char read_buf[BUF_SIZE];

static void check(int err, const char* what) {
    if (err < 0) {
        fprintf(stderr, "%s: %s\n", what, uv_strerror(err));
        exit(1);
    }
}

/* Every read goes into the one shared buffer: the read callback is done with it (sent,
 * or the rest copied) before libuv asks for a buffer again. */
static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) {
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(read_buf, BUF_SIZE);
}

static void on_closed(uv_handle_t* handle) { free(handle); }

static void on_written(uv_write_t* req, int status) {
    struct write_req* w = (struct write_req*)req;
    uv_handle_t* stream = (uv_handle_t*)req->handle;
    free(w);
    if (status < 0 && !uv_is_closing(stream)) uv_close(stream, on_closed);
}

static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    if (nread < 0) { /* UV_EOF or an error */
        if (!uv_is_closing((uv_handle_t*)stream)) uv_close((uv_handle_t*)stream, on_closed);
        return;
    }
    /* uv_try_write sends at once, or fails with UV_EAGAIN while writes are queued, so
     * the order of the bytes is kept either way. */
    uv_buf_t data = uv_buf_init(buf->base, (unsigned)nread);
    int sent = nread > 0 ? uv_try_write(stream, &data, 1) : 0;
    if (sent == UV_EAGAIN) sent = 0;
    if (sent < 0) {
        uv_close((uv_handle_t*)stream, on_closed);
        return;
    }
    if (sent == nread) return;
    size_t rest = (size_t)nread - (size_t)sent;
    struct write_req* w = malloc(sizeof *w + rest); /* the request and the bytes, in one block */
    if (!w) check(UV_ENOMEM, "malloc");
    memcpy(w + 1, buf->base + sent, rest);
    w->buf = uv_buf_init((char*)(w + 1), (unsigned)rest);
    if (uv_write(&w->req, stream, &w->buf, 1, on_written) < 0) {
        free(w);
        uv_close((uv_handle_t*)stream, on_closed);
    }
}

static void on_connection(uv_stream_t* server, int status) {
    check(status, "listen");
    uv_tcp_t* client = malloc(sizeof *client);
    if (!client) check(UV_ENOMEM, "malloc");
    check(uv_tcp_init(server->loop, client), "uv_tcp_init");
    if (uv_accept(server, (uv_stream_t*)client) != 0) {
        uv_close((uv_handle_t*)client, on_closed);
        return;
    }
    uv_tcp_nodelay(client, 1);
    if (uv_read_start((uv_stream_t*)client, on_alloc, on_read) != 0)
        uv_close((uv_handle_t*)client, on_closed);
}

static void on_signal(uv_signal_t* handle, int signum) {
    (void)signum;
    uv_stop(handle->loop);
}

int main(int argc, char** argv) {
    unsigned short port = echo_setup(argc, argv);
    uv_loop_t* loop = uv_default_loop();

    uv_tcp_t server;
    struct sockaddr_in addr;
    check(uv_ip4_addr("127.0.0.1", port, &addr), "uv_ip4_addr");
    check(uv_tcp_init(loop, &server), "uv_tcp_init");
    /* uv_tcp_bind sets SO_REUSEADDR itself. */
    check(uv_tcp_bind(&server, (const struct sockaddr*)&addr, 0), "bind");
    check(uv_listen((uv_stream_t*)&server, SOMAXCONN, on_connection), "listen");

    uv_signal_t sigint, sigterm;
    check(uv_signal_init(loop, &sigint), "uv_signal_init");
    check(uv_signal_init(loop, &sigterm), "uv_signal_init");
    check(uv_signal_start(&sigint, on_signal, SIGINT), "uv_signal_start");
    check(uv_signal_start(&sigterm, on_signal, SIGTERM), "uv_signal_start");

    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
