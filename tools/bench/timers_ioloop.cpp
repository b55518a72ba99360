// Workload (b) on ioloop: one call_later per timer; cancelling is timer_handle::cancel().
#include "bench.hpp"

#include <chrono>

#include <ioloop/ioloop.hpp>

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 1'000'000);
    bench::timer_check check(opt); // call_later reads steady_clock itself: no slack
    ioloop::event_loop loop;

    const std::int64_t cpu = bench::cpu_ns();
    check.start();
    for (std::uint64_t i = 0; i < opt.n; ++i) {
        ioloop::timer_handle t = loop.call_later(std::chrono::microseconds(check.deadline_us[i]),
                                                 [&check, &loop, i] {
                                                     if (check.on_fire(i)) loop.stop();
                                                 });
        if (check.is_cancelled(i)) t.cancel();
    }
    loop.run_forever(); // stopped by the last timer expected to fire
    const std::int64_t ns = bench::cpu_ns() - cpu;
    check.verify();
    loop.close();
    bench::report(bench::timers_name(opt), "ioloop", opt.n, ns);
}
