// Workload (g) on ioloop: co_await ioloop::read_file(PATH) once, timed from the call to the
// result, while a 1 ms periodic timer runs on the same loop and records how late it fires
// at worst: the read goes to the loop's executor, so the loop must keep its timers. The
// timer is rescheduled from its due time (not from when it ran), so a blocked loop shows
// up as lateness, not as fewer ticks. Checks that every byte arrived (size and a sum).
//   read_file_ioloop PATH
// prints: read_file ioloop BYTES bytes SECONDS s WORST_US us_late TICKS ticks
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/stat.h>
#include <time.h>

#include <ioloop/ioloop.hpp>

namespace {

std::int64_t mono_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct periodic {
    ioloop::event_loop* loop;
    ioloop::event_loop::time_point due;
    std::chrono::nanoseconds* worst;
    long* ticks;
    const bool* stop;
    void operator()() {
        const auto late = loop->time() - due;
        if (late > *worst) *worst = late;
        ++*ticks;
        if (*stop) return;
        due += std::chrono::milliseconds(1);
        loop->call_at(due, *this);
    }
};

std::string path;
std::size_t got_bytes = 0;
std::uint64_t got_sum = 0;
std::int64_t elapsed_ns = 0;
std::chrono::nanoseconds worst{0};
long ticks = 0;

ioloop::coro<void> amain() {
    auto& loop = ioloop::get_running_loop();
    bool done = false;
    const auto first = loop.time() + std::chrono::milliseconds(1);
    loop.call_at(first, periodic{&loop, first, &worst, &ticks, &done});
    const std::int64_t t0 = mono_ns();
    const std::string data = co_await ioloop::read_file(path);
    elapsed_ns = mono_ns() - t0;
    done = true;
    got_bytes = data.size();
    for (std::size_t i = 0; i < data.size(); i += 4096) got_sum += static_cast<unsigned char>(data[i]);
    co_await ioloop::sleep(std::chrono::milliseconds(2));  // the timer sees `done` and stops
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    path = argv[1];
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        std::fprintf(stderr, "FAIL: %s: cannot stat\n", argv[1]);
        return 1;
    }
    ioloop::run(amain());
    if (got_bytes != static_cast<std::size_t>(st.st_size)) {
        std::fprintf(stderr, "FAIL: read %zu bytes of %lld\n", got_bytes, (long long)st.st_size);
        return 1;
    }
    std::printf("read_file ioloop %zu bytes %.6f s %lld us_late %ld ticks\n", got_bytes,
                double(elapsed_ns) / 1e9,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(worst).count()),
                ticks);
    // The sum only keeps the compiler from dropping the read; printed to stderr for a human.
    std::fprintf(stderr, "(sample sum %llu)\n", static_cast<unsigned long long>(got_sum));
}
