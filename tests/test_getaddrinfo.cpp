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

TEST_CASE("getaddrinfo with hints: family, type, proto and flags, as asyncio's tuples") {
    counting_executor executor;
    auto amain = [&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        loop.set_default_executor(executor);
        // A numeric host of a known type: answered at once, proto filled in as asyncio's.
        std::vector<ioloop::address_info> udp = co_await loop.getaddrinfo(
            "127.0.0.1", 53, ioloop::address_family::unspecified, SOCK_DGRAM);
        REQUIRE(udp.size() == 1);
        CHECK(udp[0].family == ioloop::address_family::ipv4);
        CHECK(udp[0].type == SOCK_DGRAM);
        CHECK(udp[0].proto == IPPROTO_UDP);
        CHECK(udp[0].address.to_string() == "127.0.0.1:53");
        CHECK(executor.submitted == 0);
        // A name, one family, one type, with its canonical name asked for.
        std::vector<ioloop::address_info> named = co_await loop.getaddrinfo(
            "localhost", 80, ioloop::address_family::ipv4, SOCK_STREAM, 0, AI_CANONNAME);
        REQUIRE_FALSE(named.empty());
        CHECK(executor.submitted == 1);
        for (const auto& a : named) {
            CHECK(a.family == ioloop::address_family::ipv4);
            CHECK(a.type == SOCK_STREAM);
            CHECK(a.address.port() == 80);
        }
        CHECK_FALSE(named[0].canonname.empty());
        // No host, AI_PASSIVE: the wildcard address, to bind a server to.
        std::vector<ioloop::address_info> any = co_await loop.getaddrinfo(
            "", 8080, ioloop::address_family::ipv4, SOCK_STREAM, 0, AI_PASSIVE);
        REQUIRE_FALSE(any.empty());
        CHECK(any[0].address.to_string() == "0.0.0.0:8080");
        // Type 0 asks for every type: a numeric host goes to the resolver then, as asyncio
        // (glibc answers one per type; Wine's resolver one in all).
        const int before = executor.submitted;
        std::vector<ioloop::address_info> every = co_await loop.getaddrinfo(
            "127.0.0.1", 7, ioloop::address_family::ipv4);
        CHECK(executor.submitted == before + 1);
        REQUIRE_FALSE(every.empty());
        for (const auto& a : every) CHECK(a.address.to_string() == "127.0.0.1:7");
        // A family the host is not of: the resolver says so, in its category.
        try {
            co_await loop.getaddrinfo("127.0.0.1", 7, ioloop::address_family::ipv6, SOCK_STREAM,
                                      0, AI_NUMERICHOST);
            FAIL("an IPv4 address resolved as IPv6");
        } catch (const std::system_error& e) {
            CHECK(e.code().category() == ioloop::resolver_category());
        }
        // A Unix family has no hosts: refused at the call.
        try {
            co_await loop.getaddrinfo("x", 1, ioloop::address_family::unix_domain);
            FAIL("a Unix family resolved");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::address_family_not_supported);
        }
    };
    ioloop::run(amain());
    executor.shutdown();
}

TEST_CASE("getnameinfo: an address's host and service, numeric or by name") {
    ioloop::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto [host, service] = co_await loop.getnameinfo(ioloop::endpoint::ip("127.0.0.1", 8080),
                                                         NI_NUMERICHOST | NI_NUMERICSERV);
        CHECK(host == "127.0.0.1");
        CHECK(service == "8080");
        auto [v6, v6_service] = co_await loop.getnameinfo(ioloop::endpoint::ip("::1", 443),
                                                          NI_NUMERICHOST | NI_NUMERICSERV);
        CHECK(v6 == "::1");
        CHECK(v6_service == "443");
        // By name: the loopback has one (localhost here; whatever the hosts file says).
        auto [name, name_service] =
            co_await loop.getnameinfo(ioloop::endpoint::ip("127.0.0.1", 9), NI_NUMERICSERV);
        CHECK_FALSE(name.empty());
        CHECK(name_service == "9");
        // NI_NAMEREQD for an address nobody names: the resolver's error.
        try {
            co_await loop.getnameinfo(ioloop::endpoint::ip("192.0.2.254", 1), NI_NAMEREQD);
        } catch (const std::system_error& e) {
            CHECK(e.code().category() == ioloop::resolver_category());
        }
        // A Unix address has no host.
        CHECK_THROWS_AS(co_await loop.getnameinfo(ioloop::endpoint()), std::system_error);
    }());
}
