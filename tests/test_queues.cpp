// queue, lifo_queue and priority_queue: asyncio's Queue, LifoQueue and PriorityQueue.
// Ordering, waiting while full or empty, FIFO service of waiting getters and putters,
// task_done/join, cancellation at each wait (nothing lost or duplicated), shutdown, and
// move-only items.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Lets the other tasks run: each sleep(0) is one loop iteration.
ioloop::coro<void> yield_iterations(int n) {
    for (int i = 0; i < n; ++i) co_await ioloop::sleep(0ms);
}

// Enough iterations for every task created so far to reach its wait.
constexpr int settle = 5;

// Awaits a task that must finish within `limit` loop iterations: a lost wakeup shows as
// a failed check instead of a test that hangs.
template <class T>
ioloop::coro<T> finish(ioloop::task<T>& t, int limit = 100) {
    for (int i = 0; i < limit && !t.done(); ++i) co_await ioloop::sleep(0ms);
    REQUIRE_MESSAGE(t.done(), "the task did not finish: a wakeup was lost");
    if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
    } else {
        co_return co_await std::move(t);
    }
}

// The body runs as a task; the test fails, instead of hanging, if it is still not done
// after `limit` loop iterations.
ioloop::coro<void> bounded(ioloop::coro<void> body, int limit) {
    auto t = ioloop::create_task(std::move(body));
    co_await finish(t, limit);
}

void run_test(ioloop::coro<void> body, int limit = 100000) {
    ioloop::run(bounded(std::move(body), limit));
}

template <class Q>
ioloop::coro<void> join_one(Q& q) {
    co_await q.join();
}

template <class Q>
ioloop::coro<typename Q::value_type> get_one(Q& q) {
    co_return co_await q.get();
}

template <class Q>
ioloop::coro<void> put_one(Q& q, typename Q::value_type item) {
    co_await q.put(std::move(item));
}

// Waits `delay` iterations, then gets one item and logs (tag, item): the delay sets the
// order in which the getters start waiting, unrelated to the order of their creation.
ioloop::coro<void> tagged_get(ioloop::queue<int>& q, int tag, int delay,
                              std::vector<std::pair<int, int>>& log) {
    co_await yield_iterations(delay);
    const int item = co_await q.get();
    log.emplace_back(tag, item);
}

ioloop::coro<void> delayed_put(ioloop::queue<int>& q, int item, int delay) {
    co_await yield_iterations(delay);
    co_await q.put(item);
}

// Pseudo-random but reproducible values.
std::vector<int> scrambled(int n) {
    std::vector<int> v;
    unsigned x = 12345;
    for (int i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        v.push_back(static_cast<int>((x >> 8) % 1000));
    }
    return v;
}

}  // namespace

TEST_CASE("queue: first in, first out; qsize, empty, full and maxsize follow the contents") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q(3);
        CHECK(q.maxsize() == 3);
        CHECK(q.empty());
        CHECK_FALSE(q.full());
        CHECK(q.qsize() == 0);
        co_await q.put(1);
        q.put_nowait(2);
        co_await q.put(3);
        CHECK(q.qsize() == 3);
        CHECK(q.full());
        CHECK_FALSE(q.empty());
        CHECK(co_await q.get() == 1);
        CHECK(q.qsize() == 2);
        CHECK_FALSE(q.full());
        CHECK(q.get_nowait() == 2);
        CHECK(co_await q.get() == 3);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("queue keeps FIFO order while its buffer grows and wraps around") {
    ioloop::queue<int> q;  // put_nowait and get_nowait need no loop
    int next_in = 0;
    int next_out = 0;
    bool in_order = true;
    for (int round = 1; round <= 40; ++round) {
        for (int i = 0; i < round * 3; ++i) q.put_nowait(next_in++);
        for (int i = 0; i < round * 2; ++i) in_order = in_order && q.get_nowait() == next_out++;
    }
    CHECK(q.qsize() == static_cast<std::size_t>(next_in - next_out));
    while (!q.empty()) in_order = in_order && q.get_nowait() == next_out++;
    CHECK(in_order);
    CHECK(next_out == next_in);
    CHECK_FALSE(q.full());  // unbounded: never full
}

TEST_CASE("lifo_queue: last in, first out") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::lifo_queue<std::string> q;
        for (const char* s : {"a", "b", "c"}) co_await q.put(s);
        q.put_nowait("d");
        std::string out;
        while (!q.empty()) out += co_await q.get();
        CHECK(out == "dcba");
    };
    run_test(amain());
}

TEST_CASE("priority_queue: the smallest item first, as Python's heapq") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::priority_queue<int> q;
        const std::vector<int> in = scrambled(300);
        for (int v : in) co_await q.put(v);
        CHECK(q.qsize() == in.size());
        std::vector<int> out;
        while (!q.empty()) out.push_back(co_await q.get());
        REQUIRE(out.size() == in.size());
        bool ascending = true;
        for (std::size_t i = 1; i < out.size(); ++i) ascending = ascending && out[i - 1] <= out[i];
        CHECK(ascending);
        CHECK(out.front() == *std::min_element(in.begin(), in.end()));
    };
    run_test(amain());
}

TEST_CASE("priority_queue with a comparator; (priority, sequence) keeps arrival order") {
    struct greater {
        bool operator()(int a, int b) const { return a > b; }
    };
    ioloop::priority_queue<int, greater> largest_first;
    for (int v : {3, 9, 1, 7}) largest_first.put_nowait(v);
    std::vector<int> out;
    while (!largest_first.empty()) out.push_back(largest_first.get_nowait());
    CHECK(out == std::vector<int>{9, 7, 3, 1});

    ioloop::priority_queue<std::pair<int, int>> jobs;  // (priority, sequence number)
    int seq = 0;
    for (int priority : {2, 1, 2, 1, 2}) jobs.put_nowait({priority, seq++});
    std::vector<int> order;
    while (!jobs.empty()) order.push_back(jobs.get_nowait().second);
    CHECK(order == std::vector<int>{1, 3, 0, 2, 4});
}

TEST_CASE("put_nowait on a full queue throws queue_full and the caller keeps the item") {
    ioloop::queue<std::unique_ptr<int>> q(1);
    q.put_nowait(std::make_unique<int>(1));
    auto item = std::make_unique<int>(2);
    CHECK_THROWS_AS(q.put_nowait(std::move(item)), ioloop::queue_full);
    REQUIRE(item);
    CHECK(*item == 2);
    CHECK(q.qsize() == 1);
    CHECK(*q.get_nowait() == 1);
}

TEST_CASE("get_nowait on an empty queue throws queue_empty") {
    ioloop::queue<int> q;
    CHECK_THROWS_AS(q.get_nowait(), ioloop::queue_empty);
    q.put_nowait(5);
    CHECK(q.get_nowait() == 5);
    CHECK_THROWS_AS(q.get_nowait(), ioloop::queue_empty);
    ioloop::lifo_queue<int> l;
    CHECK_THROWS_AS(l.get_nowait(), ioloop::queue_empty);
    ioloop::priority_queue<int> p;
    CHECK_THROWS_AS(p.get_nowait(), ioloop::queue_empty);
}

TEST_CASE("put waits while the queue is full and resumes when a get frees a slot") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q(1);
        q.put_nowait(1);
        auto putter = ioloop::create_task(put_one(q, 2));
        co_await yield_iterations(settle);
        CHECK_FALSE(putter.done());
        CHECK(q.qsize() == 1);
        CHECK(q.get_nowait() == 1);
        // The freed slot is reserved for the waiting putter: nobody else can fill it.
        CHECK(q.full());
        CHECK_THROWS_AS(q.put_nowait(3), ioloop::queue_full);
        co_await finish(putter);
        CHECK(q.qsize() == 1);
        CHECK(q.get_nowait() == 2);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("get waits while the queue is empty and resumes when an item is put") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<std::string> q;
        auto getter = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        CHECK_FALSE(getter.done());
        q.put_nowait("hello");
        // The item is promised to the waiting getter: get_nowait cannot take it first.
        CHECK(q.empty());
        CHECK_THROWS_AS(q.get_nowait(), ioloop::queue_empty);
        CHECK(co_await finish(getter) == "hello");
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("waiting getters are served in the order they started waiting") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        std::vector<std::pair<int, int>> log;  // (getter, item)
        // Getter 3 starts waiting first, getter 0 last.
        std::vector<ioloop::task<void>> getters;
        for (int tag = 0; tag < 4; ++tag)
            getters.push_back(ioloop::create_task(tagged_get(q, tag, 4 - tag, log)));
        co_await yield_iterations(settle + 4);
        CHECK(log.empty());
        q.put_nowait(10);  // two at once...
        q.put_nowait(11);
        co_await yield_iterations(1);
        co_await q.put(12);  // ...then one at a time
        co_await yield_iterations(1);
        co_await q.put(13);
        for (auto& g : getters) co_await finish(g);
        CHECK(log == std::vector<std::pair<int, int>>{{3, 10}, {2, 11}, {1, 12}, {0, 13}});
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("a get that arrives after waiting getters waits behind them") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        std::vector<std::pair<int, int>> log;
        auto first = ioloop::create_task(tagged_get(q, 1, 0, log));
        co_await yield_iterations(settle);
        q.put_nowait(100);  // promised to the first getter, which has not resumed yet
        auto second = ioloop::create_task(tagged_get(q, 2, 0, log));
        co_await yield_iterations(settle);
        q.put_nowait(200);
        co_await finish(first);
        co_await finish(second);
        CHECK(log == std::vector<std::pair<int, int>>{{1, 100}, {2, 200}});
    };
    run_test(amain());
}

TEST_CASE("waiting putters are served in the order they started waiting") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q(1);
        q.put_nowait(0);
        // Putter of 103 starts waiting first, putter of 101 last.
        std::vector<ioloop::task<void>> putters;
        for (int i = 1; i <= 3; ++i)
            putters.push_back(ioloop::create_task(delayed_put(q, 100 + i, 4 - i)));
        co_await yield_iterations(settle + 4);
        std::vector<int> out;
        for (int i = 0; i < 4; ++i) out.push_back(co_await q.get());
        for (auto& p : putters) co_await finish(p);
        CHECK(out == std::vector<int>{0, 103, 102, 101});
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("join waits until every item put was task_done'd") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        co_await q.join();  // nothing put: returns at once
        q.put_nowait(1);
        q.put_nowait(2);
        auto j1 = ioloop::create_task(join_one(q));
        auto j2 = ioloop::create_task(join_one(q));
        co_await yield_iterations(settle);
        CHECK_FALSE(j1.done());
        q.get_nowait();
        q.task_done();
        co_await yield_iterations(settle);
        CHECK_FALSE(j1.done());  // one item is still unfinished
        q.get_nowait();          // gotten, not yet done
        co_await yield_iterations(settle);
        CHECK_FALSE(j1.done());
        CHECK_FALSE(j2.done());
        q.task_done();
        co_await finish(j1);
        co_await finish(j2);
        CHECK_THROWS_AS(q.task_done(), ioloop::invalid_state_error);
    };
    run_test(amain());
}

TEST_CASE("task_done called more times than items were put throws invalid_state_error") {
    ioloop::queue<int> q;
    CHECK_THROWS_AS(q.task_done(), ioloop::invalid_state_error);
    q.put_nowait(1);
    q.put_nowait(2);
    q.task_done();  // may come before the get, as in asyncio
    q.task_done();
    CHECK_THROWS_AS(q.task_done(), ioloop::invalid_state_error);
    CHECK(q.qsize() == 2);
}

TEST_CASE("cancel a waiting get: cancelled_error at the get, and no item is taken") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        bool saw_cancel = false;
        auto cancelled_getter = [](ioloop::queue<int>& qu, bool& saw) -> ioloop::coro<int> {
            try {
                co_return co_await qu.get();
            } catch (const ioloop::cancelled_error&) {
                saw = true;
                throw;
            }
        };
        auto a = ioloop::create_task(cancelled_getter(q, saw_cancel));
        co_await yield_iterations(settle);
        auto b = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        CHECK(a.cancel());
        CHECK_THROWS_AS(co_await finish(a), ioloop::cancelled_error);
        CHECK(saw_cancel);
        q.put_nowait(7);
        q.put_nowait(8);
        CHECK(co_await finish(b) == 7);  // b is now first in line
        CHECK(q.qsize() == 1);
        CHECK(q.get_nowait() == 8);
    };
    run_test(amain());
}

TEST_CASE("cancel a getter promised an item before it resumed: the next getter gets the item") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        auto a = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        auto b = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        q.put_nowait(1);  // promised to a, which has not resumed yet
        CHECK(a.cancel());
        CHECK_THROWS_AS(co_await finish(a), ioloop::cancelled_error);
        CHECK(co_await finish(b) == 1);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("cancel the only getter promised an item: the item stays in the queue") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        auto a = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        q.put_nowait(1);
        CHECK(q.qsize() == 0);  // promised
        a.cancel();
        CHECK_THROWS_AS(co_await finish(a), ioloop::cancelled_error);
        CHECK(q.qsize() == 1);
        CHECK(q.get_nowait() == 1);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("a cancel withdrawn by uncancel before the getter resumes still ends its get") {
    // As in asyncio, where cancel() cancels the future the task awaits: the task has left
    // the line, so it gets cancelled_error, and the item put later goes to the next getter.
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        auto a = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        auto b = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        CHECK(a.cancel());
        CHECK(a.uncancel() == 0);
        CHECK_THROWS_AS(co_await finish(a), ioloop::cancelled_error);
        q.put_nowait(4);
        CHECK(co_await finish(b) == 4);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("a task cancelled before it reaches an empty get gets cancelled_error there") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        auto self_cancelling = [](ioloop::queue<int>& qu) -> ioloop::coro<int> {
            ioloop::current_task().cancel();  // delivered at the next suspension point
            co_return co_await qu.get();
        };
        auto t = ioloop::create_task(self_cancelling(q));
        CHECK_THROWS_AS(co_await finish(t), ioloop::cancelled_error);
        q.put_nowait(3);  // not promised to the cancelled task
        CHECK(q.qsize() == 1);
        CHECK(q.get_nowait() == 3);
    };
    run_test(amain());
}

TEST_CASE("cancel a waiting put: cancelled_error at the put, nothing stored, the item kept") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<std::unique_ptr<int>> q(1);
        q.put_nowait(std::make_unique<int>(1));
        auto item = std::make_unique<int>(2);
        bool saw_cancel = false;
        auto putter = [](ioloop::queue<std::unique_ptr<int>>& qu, std::unique_ptr<int>& it,
                         bool& saw) -> ioloop::coro<void> {
            try {
                co_await qu.put(std::move(it));
            } catch (const ioloop::cancelled_error&) {
                saw = true;
                throw;
            }
        };
        auto p = ioloop::create_task(putter(q, item, saw_cancel));
        co_await yield_iterations(settle);
        CHECK(p.cancel());
        CHECK_THROWS_AS(co_await finish(p), ioloop::cancelled_error);
        CHECK(saw_cancel);
        REQUIRE(item);  // still the caller's
        CHECK(*item == 2);
        CHECK(q.qsize() == 1);
        CHECK(*q.get_nowait() == 1);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("cancel a putter woken with a slot before it resumed: the slot goes to the next") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q(1);
        q.put_nowait(0);
        auto p1 = ioloop::create_task(put_one(q, 1));
        co_await yield_iterations(settle);
        auto p2 = ioloop::create_task(put_one(q, 2));
        co_await yield_iterations(settle);
        CHECK(q.get_nowait() == 0);  // the slot is reserved for p1
        CHECK(p1.cancel());
        CHECK_THROWS_AS(co_await finish(p1), ioloop::cancelled_error);
        co_await finish(p2);
        CHECK(q.get_nowait() == 2);
        CHECK(q.empty());
    };
    run_test(amain());
}

TEST_CASE("cancel a waiting join: cancelled_error there, the queue is unaffected") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        q.put_nowait(1);
        auto j = ioloop::create_task(join_one(q));
        co_await yield_iterations(settle);
        CHECK(j.cancel());
        CHECK_THROWS_AS(co_await finish(j), ioloop::cancelled_error);
        CHECK(q.get_nowait() == 1);
        q.task_done();
        co_await q.join();
    };
    run_test(amain());
}

TEST_CASE("producers and consumers on a bounded queue process every item exactly once") {
    constexpr int producers = 3;
    constexpr int per_producer = 400;
    constexpr int consumers = 4;
    struct state {
        ioloop::queue<int> q{5};
        std::vector<int> seen = std::vector<int>(producers * per_producer, 0);
        std::vector<int> handled_by = std::vector<int>(consumers, 0);
    };
    auto producer = [](state& s, int first) -> ioloop::coro<void> {
        for (int i = 0; i < per_producer; ++i) co_await s.q.put(first + i);
    };
    auto consumer = [](state& s, int me) -> ioloop::coro<void> {
        for (;;) {
            const int item = co_await s.q.get();
            ++s.seen.at(static_cast<std::size_t>(item));
            ++s.handled_by[static_cast<std::size_t>(me)];
            if (item % 5 == 0) co_await ioloop::sleep(0ms);  // some work takes longer
            s.q.task_done();
        }
    };
    auto amain = [&]() -> ioloop::coro<void> {
        state s;
        std::vector<ioloop::task<void>> workers;
        for (int c = 0; c < consumers; ++c) workers.push_back(ioloop::create_task(consumer(s, c)));
        std::vector<ioloop::task<void>> makers;
        for (int p = 0; p < producers; ++p)
            makers.push_back(ioloop::create_task(producer(s, p * per_producer)));
        for (auto& m : makers) co_await finish(m, 100000);
        auto joined = ioloop::create_task(join_one(s.q));
        co_await finish(joined, 100000);
        CHECK(s.q.empty());
        int once = 0;
        for (int n : s.seen) once += n == 1 ? 1 : 0;
        CHECK(once == producers * per_producer);
        int handled = 0;
        for (int n : s.handled_by) {
            CHECK(n > 0);  // FIFO service spreads the items over every consumer
            handled += n;
        }
        CHECK(handled == producers * per_producer);
        for (auto& w : workers) w.cancel();
        for (auto& w : workers) CHECK_THROWS_AS(co_await finish(w), ioloop::cancelled_error);
    };
    run_test(amain());
}

TEST_CASE("move-only items through queue, lifo_queue and priority_queue, waiting or not") {
    using item = std::unique_ptr<int>;
    struct by_value {
        bool operator()(const item& a, const item& b) const { return *a < *b; }
    };
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<item> fifo(1);
        ioloop::lifo_queue<item> lifo;
        ioloop::priority_queue<item, by_value> prio;

        auto getter = ioloop::create_task(get_one(fifo));  // waits: the promised path
        co_await yield_iterations(settle);
        co_await fifo.put(std::make_unique<int>(1));
        item got = co_await finish(getter);
        REQUIRE(got);
        CHECK(*got == 1);
        co_await fifo.put(std::make_unique<int>(2));
        auto putter = ioloop::create_task(put_one(fifo, std::make_unique<int>(3)));  // waits
        co_await yield_iterations(settle);
        CHECK(*co_await fifo.get() == 2);
        co_await finish(putter);
        CHECK(*fifo.get_nowait() == 3);

        for (int v : {1, 2, 3}) lifo.put_nowait(std::make_unique<int>(v));
        CHECK(*co_await lifo.get() == 3);
        CHECK(*lifo.get_nowait() == 2);

        for (int v : {5, 2, 8, 1}) co_await prio.put(std::make_unique<int>(v));
        std::vector<int> out;
        while (!prio.empty()) out.push_back(*co_await prio.get());
        CHECK(out == std::vector<int>{1, 2, 5, 8});
    };
    run_test(amain());
}

TEST_CASE("shutdown: puts fail at once, gets drain what is left and then fail") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q(2);
        q.put_nowait(1);
        q.put_nowait(2);
        auto putter = ioloop::create_task(put_one(q, 3));
        co_await yield_iterations(settle);
        q.shutdown();
        CHECK_THROWS_AS(co_await finish(putter), ioloop::queue_shut_down);
        CHECK_THROWS_AS(q.put_nowait(4), ioloop::queue_shut_down);
        CHECK_THROWS_AS(co_await q.put(4), ioloop::queue_shut_down);
        CHECK(q.qsize() == 2);
        CHECK(co_await q.get() == 1);
        CHECK(q.get_nowait() == 2);
        CHECK_THROWS_AS(q.get_nowait(), ioloop::queue_shut_down);
        CHECK_THROWS_AS(co_await q.get(), ioloop::queue_shut_down);
    };
    run_test(amain());
}

TEST_CASE("shutdown wakes waiting getters with queue_shut_down; a promised item is kept") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        auto promised = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        auto waiting = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        q.put_nowait(1);  // promised to the first getter
        q.shutdown();
        CHECK(co_await finish(promised) == 1);
        CHECK_THROWS_AS(co_await finish(waiting), ioloop::queue_shut_down);
    };
    run_test(amain());
}

TEST_CASE("shutdown(immediate): items dropped and counted done, every getter fails") {
    auto amain = []() -> ioloop::coro<void> {
        ioloop::queue<int> q;
        q.put_nowait(0);
        CHECK(q.get_nowait() == 0);  // gotten, not task_done'd: join must wait for it
        auto joiner = ioloop::create_task(join_one(q));
        auto promised = ioloop::create_task(get_one(q));
        co_await yield_iterations(settle);
        q.put_nowait(1);  // promised to the getter, which has not resumed yet
        q.put_nowait(2);
        q.put_nowait(3);
        q.shutdown(true);
        CHECK(q.empty());
        CHECK_FALSE(q.full());
        CHECK_THROWS_AS(co_await finish(promised), ioloop::queue_shut_down);
        CHECK_FALSE(joiner.done());  // the dropped items count as done, item 0 does not
        q.task_done();
        co_await finish(joiner);
        CHECK_THROWS_AS(q.get_nowait(), ioloop::queue_shut_down);
        CHECK_THROWS_AS(q.task_done(), ioloop::invalid_state_error);
    };
    run_test(amain());
}

TEST_CASE("a queue destroyed while tasks wait on it: they can still be cancelled") {
    auto amain = []() -> ioloop::coro<void> {
        auto q = std::make_unique<ioloop::queue<int>>();
        auto first = ioloop::create_task(get_one(*q));
        co_await yield_iterations(settle);
        auto second = ioloop::create_task(get_one(*q));
        co_await yield_iterations(settle);
        q->put_nowait(1);  // promised to `first`, which has not resumed yet
        q.reset();         // `second` still waits in line
        CHECK_THROWS_AS(co_await finish(first), ioloop::invalid_state_error);
        CHECK(second.cancel());
        CHECK_THROWS_AS(co_await finish(second), ioloop::cancelled_error);
    };
    run_test(amain());
}

TEST_CASE("workers left waiting in get when main returns are cancelled by ioloop::run") {
    int cancelled_workers = 0;
    auto worker = [](ioloop::queue<int>& q, int& cancelled) -> ioloop::coro<void> {
        try {
            for (;;) {
                co_await q.get();
                q.task_done();
            }
        } catch (const ioloop::cancelled_error&) {
            ++cancelled;
            throw;
        }
    };
    auto amain = [&]() -> ioloop::coro<void> {
        ioloop::queue<int> q;  // dies with main's frame, before run cancels the workers
        ioloop::create_task(worker(q, cancelled_workers));
        ioloop::create_task(worker(q, cancelled_workers));
        for (int i = 0; i < 10; ++i) co_await q.put(i);
        co_await q.join();
    };
    run_test(amain());
    CHECK(cancelled_workers == 2);
}
