// Workload (a) on the reference loop: the least a loop that also serves I/O must do per
// iteration -- run a std::vector of small callables and make one non-blocking
// epoll_wait. ioloop's call_soon path is measured against this floor.
#include "bench.hpp"

#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include <sys/epoll.h>
#include <unistd.h>

namespace {

// A move-only callable stored inline (no allocation). Trivially copyable callables -- the
// common lambda capturing a pointer or two -- are moved by memcpy and need no destructor,
// so the queue pays one indirect call per callback and nothing else.
class small_fn {
public:
    template <class F>
    explicit small_fn(F f) : call_(&call<F>), manage_(manager<F>()) {
        static_assert(sizeof(F) <= sizeof(buf_) && alignof(F) <= alignof(void*));
        ::new (static_cast<void*>(buf_)) F(std::move(f));
    }
    small_fn(small_fn&& o) noexcept : call_(o.call_), manage_(o.manage_) {
        if (manage_) manage_(o.buf_, buf_);
        else std::memcpy(buf_, o.buf_, sizeof(buf_));
    }
    small_fn& operator=(small_fn&&) = delete;
    ~small_fn() {
        if (manage_) manage_(buf_, nullptr);
    }
    void operator()() { call_(buf_); }

private:
    template <class F>
    static void call(void* self) { (*static_cast<F*>(self))(); }
    // Moves from `from` into `to` and destroys `from`; with `to` null, only destroys.
    template <class F>
    static void manage(void* from, void* to) {
        F& f = *static_cast<F*>(from);
        if (to) ::new (to) F(std::move(f));
        f.~F();
    }
    template <class F>
    static constexpr void (*manager())(void*, void*) {
        return std::is_trivially_copyable_v<F> ? nullptr : &manage<F>;
    }

    void (*call_)(void*);
    void (*manage_)(void*, void*);
    alignas(void*) unsigned char buf_[24];
};

class reference_loop {
public:
    reference_loop() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ < 0) bench::fail("epoll_create1");
    }
    ~reference_loop() { ::close(epfd_); }

    template <class F>
    void call_soon(F f) { ready_.emplace_back(std::move(f)); }
    void stop() { stopping_ = true; }

    void run_forever() {
        stopping_ = false;
        epoll_event events[64];
        while (!stopping_) {
            // One non-blocking poll per iteration, the cost any I/O-serving loop pays; this
            // loop serves no fds, so it never needs to block.
            const int n = epoll_wait(epfd_, events, 64, 0);
            if (n < 0) bench::fail("epoll_wait");
            running_.swap(ready_);
            for (small_fn& f : running_) f();
            running_.clear();
        }
    }

private:
    int epfd_;
    bool stopping_ = false;
    std::vector<small_fn> ready_, running_;
};

struct bench_state {
    reference_loop loop;
    bench::chain_count count;
};

void step(bench_state& s) {
    if (s.count.step()) s.loop.call_soon([&s] { step(s); });
    else if (s.count.done()) s.loop.stop();
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opt = bench::parse(argc, argv, 2'000'000);
    bench_state s{{}, {opt.n}};
    const std::int64_t t = bench::mono_ns();
    for (std::uint64_t i = s.count.initial(); i > 0; --i) s.loop.call_soon([&s] { step(s); });
    s.loop.run_forever();
    const std::int64_t ns = bench::mono_ns() - t;
    s.count.verify();
    bench::report("callbacks", "reference", opt.n, ns);
}
