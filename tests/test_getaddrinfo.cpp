// loop.getaddrinfo: numeric hosts are parsed without a thread, names are resolved on the
// executor without blocking the loop, failures are std::system_error in the resolver's
// category.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "platform.hpp"  // EAI_NONAME

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Runs the loop's executor work on a thread pool, counting what it is given.
class counting_executor final : public ioloop::executor {
public:
    void submit(work job) override {
        ++submitted;
        pool_.submit(std::move(job));
    }
    void shutdown() noexcept override { pool_.shutdown(); }

    std::atomic<int> submitted{0};

private:
    ioloop::thread_pool pool_{2};
};

bool contains(const std::vector<ioloop::endpoint>& list, const std::string& text) {
    for (const auto& e : list) {
        if (e.to_string() == text) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("getaddrinfo: a numeric host is parsed at once, without the executor") {
    counting_executor executor;
    auto amain = [&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        loop.set_default_executor(executor);
        std::vector<ioloop::endpoint> v4 = co_await loop.getaddrinfo("127.0.0.1", 8080);
        REQUIRE(v4.size() == 1);
        CHECK(v4[0].to_string() == "127.0.0.1:8080");
        std::vector<ioloop::endpoint> v6 = co_await loop.getaddrinfo("::1", 53);
        REQUIRE(v6.size() == 1);
        CHECK(v6[0].to_string() == "[::1]:53");
    };
    ioloop::run(amain());
    CHECK(executor.submitted == 0);
    executor.shutdown();
}

TEST_CASE("getaddrinfo: a host with an embedded NUL is refused, without the executor") {
    using namespace std::string_literals;
    counting_executor executor;
    auto amain = [&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        loop.set_default_executor(executor);
        // ::getaddrinfo would read "127.0.0.1" and "localhost" and resolve them.
        for (const std::string& host : {"127.0.0.1\0.example"s, "localhost\0.example"s}) {
            std::error_code code;
            std::string what;
            try {
                (void)co_await loop.getaddrinfo(host, 80);
            } catch (const std::system_error& e) {
                code = e.code();
                what = e.what();
            }
            CHECK(code == std::errc::invalid_argument);
            CHECK(what.find("holds a NUL character") != std::string::npos);
        }
    };
    ioloop::run(amain());
    CHECK(executor.submitted == 0);
    executor.shutdown();
}

TEST_CASE("getaddrinfo: a name is resolved on the executor, while the loop goes on") {
    counting_executor executor;
    auto amain = [&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        loop.set_default_executor(executor);
        auto lookup = ioloop::create_task(loop.getaddrinfo("localhost", 8080));
        co_await ioloop::sleep(0ms);  // the loop runs while the lookup is under way
        std::vector<ioloop::endpoint> found = co_await lookup;
        REQUIRE_FALSE(found.empty());
        CHECK((contains(found, "127.0.0.1:8080") || contains(found, "[::1]:8080")));
    };
    ioloop::run(amain());
    CHECK(executor.submitted == 1);
    executor.shutdown();
}

TEST_CASE("getaddrinfo: a name that cannot exist fails in the resolver's category") {
    auto amain = []() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        try {
            co_await loop.getaddrinfo("a..b", 80);  // an empty label: refused without DNS
            FAIL("resolved a name that cannot exist");
        } catch (const std::system_error& e) {
            CHECK(e.code().category() == ioloop::resolver_category());
            CHECK(e.code().value() == EAI_NONAME);
            CHECK(std::string(e.what()).find("getaddrinfo a..b") != std::string::npos);
        }
    };
    ioloop::run(amain());
}
