// Workload (b) on libuv: one uv_timer_t per timer; cancelling is uv_timer_stop. libuv
// counts time in whole milliseconds, so each deadline is rounded up to one.
#include "bench.hpp"

#include <memory>

#include <uv.h>

namespace {

struct bench_state {
    explicit bench_state(const bench::options& o) : check(o, tolerance_ns) {}
    // The loop's clock is CLOCK_MONOTONIC truncated to milliseconds (possibly read from
    // the 1 ms-tick coarse clock), so a timer may run up to 2 ms before t0 + deadline.
    static constexpr std::int64_t tolerance_ns = 2'000'000;
    bench::timer_check check;
    uv_timer_t* base = nullptr;
};

void on_timer(uv_timer_t* h) {
    auto& s = *static_cast<bench_state*>(h->data);
    s.check.on_fire(static_cast<std::uint64_t>(h - s.base));
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 1'000'000);
    bench_state s(opt);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) bench::fail("uv_loop_init");

    const std::int64_t cpu = bench::cpu_ns();
    s.check.start();
    uv_update_time(&loop); // after start(): libuv's "now" must not be older than t0
    std::unique_ptr<uv_timer_t[]> timers(new uv_timer_t[opt.n]);
    s.base = timers.get();
    for (std::uint64_t i = 0; i < opt.n; ++i) {
        uv_timer_t* h = &timers[i];
        uv_timer_init(&loop, h);
        h->data = &s;
        uv_timer_start(h, on_timer, (s.check.deadline_us[i] + 999) / 1000, 0);
        if (s.check.is_cancelled(i)) uv_timer_stop(h);
    }
    uv_run(&loop, UV_RUN_DEFAULT); // returns when no timer is left active
    const std::int64_t ns = bench::cpu_ns() - cpu;
    s.check.verify();

    // Closing the handles is teardown, not part of the measured work.
    for (std::uint64_t i = 0; i < opt.n; ++i) uv_close(reinterpret_cast<uv_handle_t*>(&timers[i]), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) bench::fail("uv_loop_close");
    bench::report(bench::timers_name(opt), "libuv", opt.n, ns);
}
