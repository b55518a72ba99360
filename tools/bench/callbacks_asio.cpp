// Workload (a) on asio: each handler asio::post()s the next one in its chain.
#include "bench.hpp"

#include <asio/io_context.hpp>
#include <asio/post.hpp>

namespace {

struct bench_state {
    // Concurrency hint 1: run() is called from one thread only, as with every other loop
    // here, which lets asio skip the cross-thread wake-ups.
    asio::io_context ctx{1};
    bench::chain_count count;
};

void step(bench_state& s) {
    if (s.count.step()) asio::post(s.ctx, [&s] { step(s); });
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 2'000'000);
    bench_state s;
    s.count.n = opt.n;
    const std::int64_t t = bench::mono_ns();
    for (std::uint64_t i = s.count.initial(); i > 0; --i) asio::post(s.ctx, [&s] { step(s); });
    s.ctx.run(); // returns once the chains end and no work is left
    const std::int64_t ns = bench::mono_ns() - t;
    s.count.verify();
    bench::report("callbacks", "asio", opt.n, ns);
}
