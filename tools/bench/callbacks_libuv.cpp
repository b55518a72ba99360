// Workload (a) on libuv, which has no call_soon: a FIFO drained from a check handle, with
// an idle handle active so the poll phase does not block while callbacks are pending.
#include "bench.hpp"

#include <uv.h>

namespace {

struct bench_state {
    uv_loop_t loop;
    uv_idle_t idle;
    uv_check_t check;
    bench::c_fifo fifo;
    bench::chain_count count;
};

void step(void* arg) {
    auto& s = *static_cast<bench_state*>(arg);
    if (s.count.step()) s.fifo.push(step, &s);
    else if (s.count.done()) uv_stop(&s.loop);
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 2'000'000);
    bench_state s{};
    s.count.n = opt.n;
    if (uv_loop_init(&s.loop) != 0) bench::fail("uv_loop_init");
    s.check.data = &s;
    uv_idle_init(&s.loop, &s.idle);
    uv_check_init(&s.loop, &s.check);

    const std::int64_t t = bench::mono_ns();
    for (std::uint64_t i = s.count.initial(); i > 0; --i) s.fifo.push(step, &s);
    uv_idle_start(&s.idle, [](uv_idle_t*) {});
    uv_check_start(&s.check, [](uv_check_t* h) { static_cast<bench_state*>(h->data)->fifo.drain(); });
    uv_run(&s.loop, UV_RUN_DEFAULT);
    const std::int64_t ns = bench::mono_ns() - t;
    s.count.verify();

    uv_close(reinterpret_cast<uv_handle_t*>(&s.idle), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s.check), nullptr);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s.loop) != 0) bench::fail("uv_loop_close");
    bench::report("callbacks", "libuv", opt.n, ns);
}
