// Workload (g), spawn: start /bin/true and wait for it, N times one after the other, on
// ioloop's coroutine front end (create_subprocess_exec + wait). Children per second of wall
// time; every child must exit 0.
#include "bench.hpp"

#include <ioloop/ioloop.hpp>

namespace {

ioloop::coro<void> spawn_all(std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) {
        ioloop::process p = co_await ioloop::create_subprocess_exec("/bin/true");
        if (co_await p.wait() != 0) bench::fail("spawn ioloop: /bin/true did not exit 0");
    }
}

}  // namespace

int main(int argc, char** argv) {
    const bench::options o = bench::parse(argc, argv, 1000);
    const std::int64_t t0 = bench::mono_ns();
    ioloop::run(spawn_all(o.n));
    bench::report("spawn", "ioloop", o.n, bench::mono_ns() - t0);
}
