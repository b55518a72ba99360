// Workload (b) on asio: one steady_timer with async_wait per timer; cancelling is
// timer.cancel(), after which the handler runs with operation_aborted.
#include "bench.hpp"

#include <chrono>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 1'000'000);
    bench::timer_check check(opt); // expires_after() reads steady_clock itself: no slack
    asio::io_context ctx{1};       // run() from one thread only, as for every loop here

    const std::int64_t cpu = bench::cpu_ns();
    check.start();
    std::vector<asio::steady_timer> timers;
    timers.reserve(opt.n);
    for (std::uint64_t i = 0; i < opt.n; ++i) {
        asio::steady_timer& t = timers.emplace_back(ctx, std::chrono::microseconds(check.deadline_us[i]));
        t.async_wait([&check, i](const asio::error_code& ec) {
            if (ec == asio::error::operation_aborted) check.on_abort(i);
            else if (ec) bench::fail("async_wait: %s", ec.message().c_str());
            else check.on_fire(i);
        });
        if (check.is_cancelled(i)) t.cancel();
    }
    ctx.run(); // returns when every handler, fired or aborted, has run
    const std::int64_t ns = bench::cpu_ns() - cpu;
    check.verify(true);
    bench::report(bench::timers_name(opt), "asio", opt.n, ns);
}
