// A producer/consumer pipeline: a producer puts jobs into a bounded queue, three workers
// take them, and the whole run has a deadline. The task group keeps the structure: the
// pipeline ends only when every task in it has ended, and a failing worker would cancel
// the others. The queue's bound makes the producer wait for slow workers (back-pressure).
//   g++ -std=c++20 -I single_include examples/pipeline.cpp -o pipeline && ./pipeline
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

struct job {
    int id;
    std::chrono::milliseconds work;
};

ioloop::coro<void> produce(ioloop::queue<job>& jobs, int count) {
    for (int id = 1; id <= count; ++id) {
        co_await jobs.put(job{id, std::chrono::milliseconds(5 + id % 4 * 5)});  // waits while full
    }
    std::printf("producer: %d jobs queued\n", count);
}

ioloop::coro<void> work(std::string name, ioloop::queue<job>& jobs, int& done) {
    for (;;) {
        job j = co_await jobs.get();
        co_await ioloop::sleep(j.work);  // pretend to process it
        ++done;
        std::printf("%s: job %d done after %lld ms\n", name.c_str(), j.id,
                    static_cast<long long>(j.work.count()));
        jobs.task_done();
    }
}

ioloop::coro<int> pipeline(int count) {
    ioloop::queue<job> jobs(4);  // at most 4 jobs waiting: back-pressure on the producer
    int done = 0;
    co_await ioloop::task_group::run([&](ioloop::task_group& group) -> ioloop::coro<void> {
        auto producer = group.create_task(produce(jobs, count), "producer");
        ioloop::task<void> workers[] = {
            group.create_task(work("worker-1", jobs, done)),
            group.create_task(work("worker-2", jobs, done)),
            group.create_task(work("worker-3", jobs, done)),
        };
        co_await producer;
        co_await jobs.join();  // every job taken and finished
        for (auto& w : workers) w.cancel();  // the workers loop forever: stop them
    });
    co_return done;
}

ioloop::coro<int> amain() {
    int done = co_await ioloop::timeout(5s, pipeline(20));
    std::printf("pipeline finished: %d jobs\n", done);

    // The same pipeline with too little time: the deadline cancels everything inside.
    try {
        co_await ioloop::timeout(50ms, pipeline(1000));
        std::puts("unexpected: 1000 jobs in 50 ms");
        co_return 1;
    } catch (const ioloop::timeout_error&) {
        std::puts("second pipeline: timed out after 50 ms, its tasks cancelled");
    }
    co_return 0;
}

int main() { return ioloop::run(amain()); }
