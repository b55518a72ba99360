// A tee-like line filter over stdin and stdout as streams: each line read from stdin is
// written to stdout and appended to FILE.
//   producer | line_filter copy.txt | slow_consumer
// stdout is written through a stream_writer and drained after each line, so when stdout is
// a pipe that its reader empties slowly, the filter waits (reading no more of stdin)
// instead of buffering without bound. stdin and stdout are pipes, FIFOs or terminals; a
// regular file on stdout (line_filter f > out.txt) is written as a file, blocking, since
// a file is always "ready" and the loop has nothing to wait for. POSIX only.
#include <ioloop/ioloop.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#include <sys/stat.h>
#include <unistd.h>

namespace {

bool is_regular_file(int fd) {
    struct stat st{};
    return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

// Appends all of `data` to `file`; false on a write error (a full disk).
bool append(std::FILE* file, std::string_view data) {
    return std::fwrite(data.data(), 1, data.size(), file) == data.size();
}

ioloop::coro<int> filter(std::FILE* copy, const char* copy_name) {
    // A line may be long: the reader's limit is 1 MiB (readline throws beyond it).
    ioloop::stream_reader in = co_await ioloop::connect_read_pipe(STDIN_FILENO, 1 << 20);
    const bool out_is_file = is_regular_file(STDOUT_FILENO);
    ioloop::stream_writer out;
    if (!out_is_file) out = co_await ioloop::connect_write_pipe(STDOUT_FILENO);
    for (;;) {
        const std::string line = co_await in.readline();  // "" at EOF; the last may lack '\n'
        if (line.empty()) break;
        if (out_is_file) {
            if (!append(stdout, line)) {
                throw std::system_error(errno, std::generic_category(), "stdout");
            }
        } else {
            out.write(line);
            co_await out.drain();  // waits while stdout's reader is behind
        }
        if (!append(copy, line)) {
            throw std::system_error(errno, std::generic_category(), copy_name);
        }
    }
    if (out) {
        out.close();  // sends what is buffered, then closes stdout
        co_await out.wait_closed();
    }
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: line_filter FILE  (stdin to stdout, and a copy to FILE)\n");
        return 2;
    }
    std::FILE* copy = std::fopen(argv[1], "wb");
    if (!copy) {
        std::fprintf(stderr, "line_filter: %s: %s\n", argv[1], std::strerror(errno));
        return 2;
    }
    int rc = 0;
    try {
        rc = ioloop::run(filter(copy, argv[1]));
    } catch (const std::system_error& e) {
        // A reader of stdout that went away is broken_pipe here, not a death by SIGPIPE;
        // a filter whose reader stopped early (| head) has not failed.
        std::fprintf(stderr, "line_filter: %s\n", e.what());
        rc = e.code() == std::errc::broken_pipe ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "line_filter: %s\n", e.what());
        rc = 1;
    }
    if (std::fclose(copy) != 0) rc = 1;
    return rc;
}
