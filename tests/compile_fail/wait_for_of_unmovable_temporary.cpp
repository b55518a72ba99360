// Must not compile: wait_for of a temporary awaiter that cannot be moved. wait_for keeps
// a temporary by moving it into its frame (so `auto w = wait_for(aw(), 1s); co_await
// std::move(w);` refers to nothing dead); one it cannot move it refuses, rather than keep
// a reference past the expression. tests/CMakeLists.txt checks that the compiler says why.
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <coroutine>

struct pinned_awaiter {
    pinned_awaiter() = default;
    pinned_awaiter(const pinned_awaiter&) = delete;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) noexcept {}
    int await_resume() const noexcept { return 1; }
};

ioloop::coro<int> amain() {
    auto w = ioloop::wait_for(pinned_awaiter(), std::chrono::seconds(1));
    co_return co_await std::move(w);
}

int main() { return ioloop::run(amain()); }
