// Workload (a) on ioloop: each callback call_soon()s the next one in its chain.
#include "bench.hpp"

#include <ioloop/ioloop.hpp>

namespace {

struct bench_state {
    ioloop::event_loop loop;
    bench::chain_count count;
};

void step(bench_state& s) {
    if (s.count.step()) s.loop.call_soon([&s] { step(s); });
    else if (s.count.done()) s.loop.stop();
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 2'000'000);
    bench_state s{{}, {opt.n}};
    const std::int64_t t = bench::mono_ns();
    for (std::uint64_t i = s.count.initial(); i > 0; --i) s.loop.call_soon([&s] { step(s); });
    s.loop.run_forever();
    const std::int64_t ns = bench::mono_ns() - t;
    s.count.verify();
    s.loop.close();
    bench::report("callbacks", "ioloop", opt.n, ns);
}
