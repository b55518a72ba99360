// Workload (b) on libev: one ev_timer per timer; cancelling is ev_timer_stop.
#include "bench.hpp"

#include <memory>

#include <ev.h>

namespace {

struct bench_state {
    explicit bench_state(const bench::options& o) : check(o, tolerance_ns) {}
    // libev keeps deadlines as double seconds: allow a microsecond for rounding.
    static constexpr std::int64_t tolerance_ns = 1000;
    bench::timer_check check;
    ev_timer* base = nullptr;
};

void on_timer(struct ev_loop*, ev_timer* w, int) {
    auto& s = *static_cast<bench_state*>(w->data);
    s.check.on_fire(static_cast<std::uint64_t>(w - s.base));
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 1'000'000);
    bench_state s(opt);
    struct ev_loop* loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!loop) bench::fail("ev_loop_new");

    const std::int64_t cpu = bench::cpu_ns();
    s.check.start();
    ev_now_update(loop); // after start(): libev's "now" must not be older than t0
    // The caller owns ev_timer storage; allocating it is part of scheduling.
    std::unique_ptr<ev_timer[]> timers(new ev_timer[opt.n]);
    s.base = timers.get();
    for (std::uint64_t i = 0; i < opt.n; ++i) {
        ev_timer* w = &timers[i];
        ev_timer_init(w, on_timer, s.check.deadline_us[i] * 1e-6, 0.);
        w->data = &s;
        ev_timer_start(loop, w);
        if (s.check.is_cancelled(i)) ev_timer_stop(loop, w);
    }
    ev_run(loop, 0); // returns when no timer is left active
    const std::int64_t ns = bench::cpu_ns() - cpu;
    s.check.verify();
    ev_loop_destroy(loop);
    bench::report(bench::timers_name(opt), "libev", opt.n, ns);
}
