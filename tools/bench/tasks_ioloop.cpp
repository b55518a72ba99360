// Workload (d) on ioloop: N tasks made with create_task, each yielding once with
// `co_await ioloop::sleep(0s)` (one loop iteration, as asyncio.sleep(0)) and returning its
// index, gathered 10,000 at a time with ioloop::gather, which returns the results in
// argument order.
#include "bench.hpp"

#include <chrono>
#include <utility>
#include <vector>

#include <ioloop/ioloop.hpp>

namespace {

ioloop::coro<int> one(int index) {
    co_await ioloop::sleep(std::chrono::seconds(0));
    co_return index;
}

bench::task_check* check = nullptr;
std::int64_t elapsed_ns = 0;

ioloop::coro<void> amain(int n) {
    const std::int64_t t = bench::mono_ns();
    for (int first = 0; first < n; first += int(bench::task_batch)) {
        const int size = int(check->batch_size(std::uint64_t(first)));
        std::vector<ioloop::task<int>> tasks;
        tasks.reserve(std::size_t(size));
        for (int j = 0; j < size; ++j) tasks.push_back(ioloop::create_task(one(first + j)));
        const std::vector<int> results = co_await ioloop::gather(std::move(tasks));
        check->batch(std::uint64_t(first), results);
    }
    elapsed_ns = bench::mono_ns() - t;
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 1'000'000);
    bench::task_check tasks(opt.n); // fails unless N fits in an int
    check = &tasks;
    ioloop::run(amain(int(opt.n)));
    tasks.verify();
    bench::report("tasks", "ioloop", opt.n, elapsed_ns);
}
