// The seed's program: two fetches scheduled as tasks overlap their waits, so both finish
// in about one second, not two. Then a hundred at once, still about one wait's time.
//   g++ -std=c++20 -I single_include examples/concurrent_fetches.cpp -o fetches && ./fetches
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// async def fetch(url): await asyncio.sleep(1); return f"data from {url}"
ioloop::coro<std::string> fetch(std::string url, std::chrono::milliseconds delay) {
    co_await ioloop::sleep(delay);  // pretend network I/O here
    co_return "data from " + url;
}

double seconds_since(ioloop::event_loop::time_point start) {
    return std::chrono::duration<double>(ioloop::get_running_loop().time() - start).count();
}

ioloop::coro<int> amain() {
    const auto start = ioloop::get_running_loop().time();
    ioloop::task<std::string> task1 = ioloop::create_task(fetch("url-a", 1s));
    ioloop::task<std::string> task2 = ioloop::create_task(fetch("url-b", 1s));
    std::string result1 = co_await task1;
    std::string result2 = co_await task2;
    std::printf("%s, %s: %.2f s\n", result1.c_str(), result2.c_str(), seconds_since(start));

    // "100 network requests that each take 200ms of waiting": ~200 ms, not 20 s.
    const auto again = ioloop::get_running_loop().time();
    std::vector<ioloop::task<std::string>> requests;
    for (int i = 0; i < 100; ++i) {
        requests.push_back(ioloop::create_task(fetch("url-" + std::to_string(i), 200ms)));
    }
    std::size_t bytes = 0;
    for (auto& r : requests) bytes += (co_await r).size();
    std::printf("100 requests, %zu bytes: %.2f s\n", bytes, seconds_since(again));
    co_return 0;
}

int main() { return ioloop::run(amain()); }  // asyncio.run(main())
