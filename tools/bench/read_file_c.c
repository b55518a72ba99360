/* Workload (g), the floor: the whole file read with plain blocking calls, as a C program
 * would: open, fstat for the size, one malloc, read(2) until it returns 0, close. Timed
 * from open to close; checks the size.
 *   read_file_c PATH
 * prints: read_file c BYTES bytes SECONDS s */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    const double t0 = now_s();
    const int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd == -1 || fstat(fd, &st) != 0) {
        fprintf(stderr, "FAIL: %s: cannot open\n", argv[1]);
        return 1;
    }
    const size_t cap = (size_t)st.st_size + 1;
    char* buf = malloc(cap);
    size_t len = 0;
    for (;;) {
        const ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            perror("FAIL: read");
            return 1;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len == cap) break; /* grew meanwhile: not this benchmark's case */
    }
    close(fd);
    const double elapsed = now_s() - t0;
    if (len != (size_t)st.st_size) {
        fprintf(stderr, "FAIL: read %zu bytes of %lld\n", len, (long long)st.st_size);
        return 1;
    }
    unsigned long sum = 0;
    for (size_t i = 0; i < len; i += 4096) sum += (unsigned char)buf[i];
    fprintf(stderr, "(sample sum %lu)\n", sum);
    free(buf);
    printf("read_file c %zu bytes %.6f s\n", len, elapsed);
    return 0;
}
