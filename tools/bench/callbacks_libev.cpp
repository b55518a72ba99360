// Workload (a) on libev, which has no call_soon: a FIFO drained from an ev_check watcher,
// with an ev_idle watcher active so the loop polls without blocking.
#include "bench.hpp"

#include <ev.h>

namespace {

struct bench_state {
    struct ev_loop* loop;
    ev_idle idle;
    ev_check check;
    bench::c_fifo fifo;
    bench::chain_count count;
};

void step(void* arg) {
    auto& s = *static_cast<bench_state*>(arg);
    if (s.count.step()) s.fifo.push(step, &s);
    else if (s.count.done()) ev_break(s.loop, EVBREAK_ALL);
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 2'000'000);
    bench_state s{};
    s.count.n = opt.n;
    // epoll explicitly, as for every other implementation here.
    s.loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!s.loop) bench::fail("ev_loop_new");
    ev_idle_init(&s.idle, [](struct ev_loop*, ev_idle*, int) {});
    ev_check_init(&s.check, [](struct ev_loop*, ev_check* w, int) {
        static_cast<bench_state*>(w->data)->fifo.drain();
    });
    s.check.data = &s;

    const std::int64_t t = bench::mono_ns();
    for (std::uint64_t i = s.count.initial(); i > 0; --i) s.fifo.push(step, &s);
    ev_idle_start(s.loop, &s.idle);
    ev_check_start(s.loop, &s.check);
    ev_run(s.loop, 0);
    const std::int64_t ns = bench::mono_ns() - t;
    s.count.verify();

    ev_idle_stop(s.loop, &s.idle);
    ev_check_stop(s.loop, &s.check);
    ev_loop_destroy(s.loop);
    bench::report("callbacks", "libev", opt.n, ns);
}
