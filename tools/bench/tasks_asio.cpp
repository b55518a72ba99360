// Workload (d) on asio: N coroutines spawned with co_spawn, each yielding once with
// `co_await asio::post(use_awaitable)` (asio's sleep(0): back through the queue) and
// returning its index, gathered 10,000 at a time.
//
// Gathering: asio 1.22 (Debian 12) has make_parallel_group only for a fixed number of
// operations, not for a range, so a batch is gathered the way an asio user would do it by
// hand: co_spawn each task with a completion handler that stores its result in the
// batch's vector and counts down; the last one to finish wakes the gathering coroutine by
// cancelling a steady_timer that never expires, which the gatherer awaits (asio's usual
// stand-in for an event; experimental::channel<void()> in 1.22 cannot be awaited with
// use_awaitable, and channel<void(error_code)> does not compile). The timer costs once per
// batch; what is measured is co_spawn, the yield and the completion handler of each task.
#include "bench.hpp"

#include <chrono>
#include <exception>
#include <vector>

// Asio 1.22 turns its coroutine support on under clang only when <experimental/coroutine>
// exists (libc++ before 14); clang with libstdc++ has C++20 <coroutine>, which asio then
// uses as it does under g++.
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace {

// Awaitables and completion tokens bound to io_context's own executor type rather than
// the default type-erased any_io_executor: the fastest way asio offers to write this.
using executor = asio::io_context::executor_type;
template <typename T>
using awaitable = asio::awaitable<T, executor>;
constexpr asio::use_awaitable_t<executor> use_awaitable;
using done_timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                              asio::wait_traits<std::chrono::steady_clock>, executor>;

awaitable<int> one(int index) {
    co_await asio::post(use_awaitable);
    co_return index;
}

struct batch {
    std::vector<int> results;
    std::size_t remaining;
    done_timer done; // never expires: cancelled by the last task of the batch
};

awaitable<void> amain(bench::task_check& check, std::int64_t& ns) {
    const executor ex = co_await asio::this_coro::executor;
    const std::int64_t t = bench::mono_ns();
    for (std::uint64_t first = 0; first < check.n; first += bench::task_batch) {
        const std::uint64_t size = check.batch_size(first);
        batch b{std::vector<int>(size), size, done_timer(ex, done_timer::time_point::max())};
        for (std::uint64_t j = 0; j < size; ++j) {
            asio::co_spawn(ex, one(static_cast<int>(first + j)),
                           [&b, j](std::exception_ptr e, int result) {
                               if (e) std::rethrow_exception(e);
                               b.results[j] = result;
                               if (--b.remaining == 0) b.done.cancel();
                           });
        }
        asio::error_code ec; // operation_aborted: the batch is complete
        co_await b.done.async_wait(asio::redirect_error(use_awaitable, ec));
        if (b.remaining != 0) bench::fail("tasks: gather woke with %zu tasks left", b.remaining);
        check.batch(first, b.results);
    }
    ns = bench::mono_ns() - t;
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 1'000'000);
    bench::task_check check(opt.n);
    std::int64_t ns = 0;
    asio::io_context ctx{1}; // run() from one thread only, as for every loop here
    asio::co_spawn(ctx, amain(check, ns), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ctx.run();
    check.verify();
    bench::report("tasks", "asio", opt.n, ns);
}
