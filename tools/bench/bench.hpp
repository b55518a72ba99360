// Shared scaffolding for the ioloop benchmarks: argument parsing, clocks, the one-line
// result format that run.sh parses, the fixed timer deadlines, and the self-checks every
// program runs on its own work. Each implementation's file holds only the workload itself.
#ifndef IOLOOP_BENCH_HPP
#define IOLOOP_BENCH_HPP

#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <time.h>

namespace bench {

// Workload (a): callbacks spread over this many independent call_soon chains.
inline constexpr std::uint64_t chains = 64;

// Deadlines are drawn from a fixed seed so every implementation gets the same ones.
inline constexpr std::uint32_t timer_seed = 20240611;

struct options {
    std::uint64_t n = 0;          // operations (callbacks or timers)
    bool cancel = false;          // timers: cancel every odd timer right after scheduling
    std::uint32_t span_ms = 1000; // timers: deadlines are uniform in [0, span_ms] ms
};

[[noreturn]] inline void fail(const char* fmt, ...) {
    std::va_list args;
    va_start(args, fmt);
    std::fputs("FAIL: ", stderr);
    std::vfprintf(stderr, fmt, args);
    std::fputc('\n', stderr);
    va_end(args);
    std::exit(1);
}

// Usage: prog [N] [--cancel] [--span-ms=M]. N lets CI run each program with a tiny count;
// --span-ms lets it shorten the timers' wall time (1 s by default) without changing N.
inline options parse(int argc, char** argv, std::uint64_t default_n) {
    options o;
    o.n = default_n;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        char* end = nullptr;
        if (std::strcmp(a, "--cancel") == 0) {
            o.cancel = true;
        } else if (std::strncmp(a, "--span-ms=", 10) == 0) {
            o.span_ms = static_cast<std::uint32_t>(std::strtoul(a + 10, &end, 10));
            if (*end != '\0') fail("bad --span-ms: %s", a);
        } else {
            o.n = std::strtoull(a, &end, 10);
            if (*end != '\0' || o.n == 0) fail("usage: %s [N] [--cancel] [--span-ms=M]", argv[0]);
        }
    }
    return o;
}

inline std::int64_t clock_ns(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
// CLOCK_MONOTONIC is what std::chrono::steady_clock, libev and libuv all read on Linux.
inline std::int64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
// Timers are scored per CPU-second: a loop that sleeps until the next deadline costs
// nothing, one that wakes early and spins is charged for it.
inline std::int64_t cpu_ns() { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

// The one output line, e.g. "callbacks ioloop 2000000 ops 0.123 s 16260162 ops/s".
inline void report(const char* workload, const char* impl, std::uint64_t ops, std::int64_t ns) {
    const double s = double(ns) * 1e-9;
    std::printf("%s %s %llu ops %.6f s %.0f ops/s\n", workload, impl,
                static_cast<unsigned long long>(ops), s, s > 0 ? double(ops) / s : 0.0);
    std::fflush(stdout);
}

inline const char* timers_name(const options& o) { return o.cancel ? "timers-cancel" : "timers"; }

// Workload (a) bookkeeping: `started` counts callbacks scheduled, `ran` callbacks run.
struct chain_count {
    std::uint64_t n;
    std::uint64_t started = 0;
    std::uint64_t ran = 0;

    // Called by each callback; true if it should schedule the next one in its chain.
    bool step() {
        ++ran;
        if (started == n) return false;
        ++started;
        return true;
    }
    std::uint64_t initial() { return started = n < chains ? n : chains; }
    bool done() const { return ran == n; }
    void verify() const {
        if (ran != n || started != n)
            fail("callbacks: ran %llu, scheduled %llu, expected %llu",
                 static_cast<unsigned long long>(ran), static_cast<unsigned long long>(started),
                 static_cast<unsigned long long>(n));
    }
};

// Workload (b): deadlines in microseconds, uniform in [0, span] ms. Drawn with a plain
// modulo on mt19937's output rather than a std:: distribution, whose algorithm is
// unspecified, so the sequence is the same with any standard library.
inline std::vector<std::uint32_t> timer_deadlines_us(const options& o) {
    std::mt19937 rng(timer_seed);
    const std::uint32_t range = o.span_ms * 1000u + 1u;
    std::vector<std::uint32_t> d(o.n);
    for (auto& x : d) x = static_cast<std::uint32_t>(rng() % range);
    return d;
}

// Checks every timer callback: each timer fires at most once, a cancelled (odd) one never,
// and none before its deadline by CLOCK_MONOTONIC. `t0` must be read before the
// implementation takes its own "now" for scheduling, so its deadlines are >= t0 + d.
struct timer_check {
    options opt;
    std::vector<std::uint32_t> deadline_us;
    std::vector<std::uint8_t> fired;
    std::int64_t t0 = 0;
    std::int64_t tolerance_ns = 0; // how early an implementation's clock lets it fire
    std::int64_t seen_now = 0;     // last clock reading: the clock is read only when needed
    std::uint64_t fired_count = 0;
    std::uint64_t aborted_count = 0; // asio: handlers run with operation_aborted

    explicit timer_check(const options& o, std::int64_t tolerance = 0)
        : opt(o), deadline_us(timer_deadlines_us(o)), fired(o.n, 0), tolerance_ns(tolerance) {}

    std::uint64_t expected() const { return opt.cancel ? (opt.n + 1) / 2 : opt.n; }
    bool is_cancelled(std::uint64_t i) const { return opt.cancel && (i & 1); }
    void start() { seen_now = t0 = mono_ns(); }

    // Returns true once every expected timer has fired (loops that need stop() use it).
    bool on_fire(std::uint64_t i) {
        if (is_cancelled(i)) fail("timer %llu fired after cancel", static_cast<unsigned long long>(i));
        if (fired[i]++) fail("timer %llu fired twice", static_cast<unsigned long long>(i));
        const std::int64_t due = t0 + std::int64_t(deadline_us[i]) * 1000 - tolerance_ns;
        if (seen_now < due) {
            // Monotonic clock: an older reading past `due` proves the present one is too.
            seen_now = mono_ns();
            if (seen_now < due)
                fail("timer %llu fired %lld ns before its deadline", static_cast<unsigned long long>(i),
                     static_cast<long long>(due - seen_now));
        }
        return ++fired_count == expected();
    }
    void on_abort(std::uint64_t i) {
        if (!is_cancelled(i)) fail("timer %llu aborted but not cancelled", static_cast<unsigned long long>(i));
        ++aborted_count;
    }
    void verify(bool aborts_reported = false) const {
        if (fired_count != expected())
            fail("%s: %llu timers fired, expected %llu", timers_name(opt),
                 static_cast<unsigned long long>(fired_count),
                 static_cast<unsigned long long>(expected()));
        if (aborts_reported && aborted_count != opt.n - expected())
            fail("%s: %llu timers aborted, expected %llu", timers_name(opt),
                 static_cast<unsigned long long>(aborted_count),
                 static_cast<unsigned long long>(opt.n - expected()));
    }
};

// Workload (d): tasks are gathered this many at a time (the last batch may be smaller).
inline constexpr std::uint64_t task_batch = 10'000;

// Workload (d) bookkeeping: each task returns its index, and a gathered batch must hold
// exactly the indices [first, first + size) in the order the tasks were created.
struct task_check {
    std::uint64_t n;
    std::uint64_t returned = 0; // results checked so far, over all batches

    explicit task_check(std::uint64_t count) : n(count) {
        if (n > std::uint64_t(INT_MAX)) fail("tasks: N must fit in an int (a task returns its index)");
    }

    // The size of the batch that starts at `first`.
    std::uint64_t batch_size(std::uint64_t first) const {
        return n - first < task_batch ? n - first : task_batch;
    }
    void batch(std::uint64_t first, const std::vector<int>& results) {
        if (results.size() != batch_size(first))
            fail("tasks: batch at %llu returned %zu results, expected %llu",
                 static_cast<unsigned long long>(first), results.size(),
                 static_cast<unsigned long long>(batch_size(first)));
        for (std::size_t j = 0; j < results.size(); ++j)
            if (results[j] != static_cast<int>(first + j))
                fail("tasks: result %llu is %d, expected %llu",
                     static_cast<unsigned long long>(first + j), results[j],
                     static_cast<unsigned long long>(first + j));
        returned += results.size();
    }
    void verify() const {
        if (returned != n)
            fail("tasks: %llu results returned, expected %llu",
                 static_cast<unsigned long long>(returned), static_cast<unsigned long long>(n));
    }
};

// The FIFO the C peers (libuv, libev) drain once per loop iteration: what a C user would
// write to get call_soon. Swapping in a fresh vector keeps callbacks queued while
// draining for the next iteration, as call_soon does.
struct c_fifo {
    struct task {
        void (*fn)(void*);
        void* arg;
    };
    std::vector<task> ready, running;

    void push(void (*fn)(void*), void* arg) { ready.push_back({fn, arg}); }
    void drain() {
        running.swap(ready);
        for (const task& t : running) t.fn(t.arg);
        running.clear();
    }
};

} // namespace bench

#endif
