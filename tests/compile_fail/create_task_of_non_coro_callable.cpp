// Must not compile: create_task of a callable that does not return a coro (here the
// lambda forgot its `-> ioloop::coro<int>` and returns a plain int). The callable form
// exists so that a lambda's captures live as long as its coroutine (`tg.create_task(
// [x]() -> coro<void> {...})`, not the call `[&]() -> coro<void> {...}()` whose closure
// dies with the expression). tests/CMakeLists.txt checks that the compiler says why.
#include <ioloop/ioloop.hpp>

ioloop::coro<int> amain() {
    int x = 1;
    auto t = ioloop::create_task([x] { return x; });
    co_return co_await t;
}

int main() { return ioloop::run(amain()); }
