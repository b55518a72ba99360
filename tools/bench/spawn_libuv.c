#define _GNU_SOURCE
/* Workload (g), spawn, on libuv: uv_spawn /bin/true and wait for its exit callback, N
 * times one after the other. Children per second of wall time; every child must exit 0.
 *   spawn_libuv [N] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

static uint64_t n, done;
static uv_process_t child;
static char* args[] = {"/bin/true", NULL};
static uv_process_options_t options;

static void start_one(void);

static void closed(uv_handle_t* h) {
    (void)h;
    if (++done < n) start_one();
}

static void exited(uv_process_t* p, int64_t status, int sig) {
    if (status != 0 || sig != 0) {
        fprintf(stderr, "FAIL: spawn libuv: /bin/true exited %lld (signal %d)\n", (long long)status, sig);
        exit(1);
    }
    uv_close((uv_handle_t*)p, closed);
}

static void start_one(void) {
    int r = uv_spawn(uv_default_loop(), &child, &options);
    if (r != 0) {
        fprintf(stderr, "FAIL: spawn libuv: %s\n", uv_strerror(r));
        exit(1);
    }
}

int main(int argc, char** argv) {
    n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
    if (n == 0) { fprintf(stderr, "usage: spawn_libuv [N]\n"); return 1; }
    options.file = args[0];
    options.args = args;
    options.exit_cb = exited;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    start_one();
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (done != n) { fprintf(stderr, "FAIL: spawn libuv: %llu of %llu\n", (unsigned long long)done, (unsigned long long)n); return 1; }
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("spawn libuv %llu ops %.6f s %.0f ops/s\n", (unsigned long long)n, s, (double)n / s);
    return 0;
}
