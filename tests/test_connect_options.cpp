// connect_options (loop.create_connection, open_connection) on every backend: the options'
// checks (server_hostname without ssl, the TLS time limits), local_addr, the
// errors when no address connects (one, "Multiple exceptions", connect_errors with
// all_errors), interleave, happy eyeballs (a dead address loses to the next one after
// the delay, its attempt closed), and the sock= forms: create_connection over a connected
// socket, connect_accepted_socket, open_connection(sock).
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using ioloop::address_family;
using ioloop::endpoint;
using ioloop::socket_type;
using nettest::probe;
using nettest::record;
using nettest::records;

namespace {

// An address nothing listens on: a connect to it is refused.
std::uint16_t refused_port() {
    ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    s.bind(endpoint::ip("127.0.0.1", 0));
    return s.local_endpoint().port();  // closed on return: nothing listens there
}

std::unique_ptr<ioloop::protocol> make_echo() { return std::make_unique<nettest::echo>(); }

// Whether the call threw std::invalid_argument with `words` in its message.
template <class Call>
bool invalid_argument_saying(Call call, std::string_view words) {
    try {
        (void)call();
    } catch (const std::invalid_argument& e) {
        return std::string_view(e.what()).find(words) != std::string_view::npos;
    }
    return false;
}

}  // namespace

// An ssl context without <ioloop/ssl.hpp> does not compile (tests/compile_fail).
TEST_CASE("the options are checked at the call: server_hostname needs ssl, TLS time limits") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        CHECK(invalid_argument_saying(
            [&] {
                return loop.create_connection(factory, "127.0.0.1", 1,
                                              {.server_hostname = "example.org"});
            },
            "create_connection: server_hostname is only meaningful with ssl"));
        CHECK(invalid_argument_saying(
            [&] {
                return ioloop::open_connection("127.0.0.1", 1,
                                               {.ssl_handshake_timeout = std::chrono::seconds(0)});
            },
            "open_connection: ssl_handshake_timeout must be positive"));
        CHECK(invalid_argument_saying(
            [&] { return ioloop::open_connection("127.0.0.1", 1, {.limit = 0}); },
            "open_connection: the limit"));
        co_return;
    }());
}

TEST_CASE("the defaults are asyncio's") {
    const ioloop::connect_options c;
    CHECK(c.limit == ioloop::stream_default_limit);
    CHECK(c.ssl == nullptr);
    CHECK(c.server_hostname == nullptr);
    CHECK(c.local_addr.family() == address_family::unspecified);
    CHECK(c.happy_eyeballs_delay < std::chrono::steady_clock::duration::zero());  // None
    CHECK(c.interleave < 0);                                                       // None
    CHECK_FALSE(c.all_errors);
    CHECK(c.ssl_handshake_timeout == std::chrono::seconds(60));
    CHECK(c.ssl_shutdown_timeout == std::chrono::seconds(30));
}

TEST_CASE("create_connection with options connects as without, and local_addr binds first") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        // A port of our own to bind the client to: the server sees the connection from it.
        const std::uint16_t local_port = refused_port();
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        auto [t, p] = co_await loop.create_connection(
            factory, "127.0.0.1", port, {.local_addr = endpoint::ip("127.0.0.1", local_port)});
        CHECK(t->get_extra_info("sockname").address().port() == local_port);
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
        CHECK(srv[0].t->get_extra_info("peername").address().port() == local_port);
        t->close();
        AWAIT_UNTIL(c.lost == 1);
    }());
}

TEST_CASE("local_addr of another family than every address: a clear error") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        const std::vector<endpoint> to{endpoint::ip("127.0.0.1", refused_port())};
        const std::system_error e = co_await nettest::failure_of(
            [&] {
                return loop.create_connection(factory, to,
                                              {.local_addr = endpoint::ip("::1", 0)});
            },
            "a connect with no address of local_addr's family");
        CHECK(e.code() == std::errc::address_family_not_supported);
        CHECK(std::string_view(e.what()).find("local_addr") != std::string_view::npos);
    }());
}

TEST_CASE("no address connects: the one error, the same error once, or every one") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        const endpoint a = endpoint::ip("127.0.0.1", refused_port());
        const endpoint b = endpoint::ip("127.0.0.1", refused_port());
        // Named: g++ 12 rejects an initializer list inside a co_await expression.
        const std::vector<endpoint> only_a{a};
        const std::vector<endpoint> a_twice{a, a};
        const std::vector<endpoint> a_b{a, b};
        {
            const std::system_error e = co_await nettest::failure_of(
                [&] { return loop.create_connection(factory, only_a, {}); }, "refused");
            CHECK(e.code() == std::errc::connection_refused);
            CHECK(std::string_view(e.what()).find("Multiple") == std::string_view::npos);
        }
        // The same address twice says the same thing twice: said once.
        {
            const std::system_error e = co_await nettest::failure_of(
                [&] { return loop.create_connection(factory, a_twice, {}); },
                "refused");
            CHECK(e.code() == std::errc::connection_refused);
            CHECK(std::string_view(e.what()).find("Multiple") == std::string_view::npos);
        }
        // Two different errors: asyncio's "Multiple exceptions: ..." naming both.
        for (const auto delay : {std::chrono::steady_clock::duration(-1),
                                 std::chrono::steady_clock::duration(0)}) {
            CAPTURE(delay.count());
            const std::system_error e = co_await nettest::failure_of(
                [&] {
                    return loop.create_connection(factory, a_b,
                                                  {.happy_eyeballs_delay = delay});
                },
                "refused");
            CHECK(e.code() == std::errc::connection_refused);
            const std::string_view what = e.what();
            CHECK(what.substr(0, 20) == "Multiple exceptions:");
            CHECK(what.find(a.to_string()) != std::string_view::npos);
            CHECK(what.find(b.to_string()) != std::string_view::npos);
        }
        // all_errors: every address's error, in the order they were tried.
        for (const auto delay : {std::chrono::steady_clock::duration(-1),
                                 std::chrono::steady_clock::duration(0)}) {
            CAPTURE(delay.count());
            bool caught = false;
            try {
                (void)co_await loop.create_connection(
                    factory, a_b,
                    {.happy_eyeballs_delay = delay, .all_errors = true});
            } catch (const ioloop::connect_errors& e) {
                caught = true;
                REQUIRE(e.errors().size() == 2);
                CHECK(e.errors()[0].address == a);
                CHECK(e.errors()[1].address == b);
                CHECK(e.errors()[0].code == std::errc::connection_refused);
                CHECK(e.errors()[1].code == std::errc::connection_refused);
                CHECK(e.code() == std::errc::connection_refused);
            }
            CHECK(caught);
        }
    }());
}

TEST_CASE("interleave: the first family's count first, then the families in turn") {
    const endpoint a6 = endpoint::ip("::1", 1);
    const endpoint b6 = endpoint::ip("::1", 2);
    const endpoint c6 = endpoint::ip("::1", 3);
    const endpoint a4 = endpoint::ip("127.0.0.1", 1);
    const endpoint b4 = endpoint::ip("127.0.0.1", 2);
    const std::vector<endpoint> resolved{a6, b6, c6, a4, b4};
    using ioloop::detail::interleave_addresses;
    CHECK(interleave_addresses(resolved, 1) == std::vector{a6, a4, b6, b4, c6});
    CHECK(interleave_addresses(resolved, 2) == std::vector{a6, b6, a4, c6, b4});
    // The default: 1 with a happy_eyeballs_delay, the resolver's order without.
    using ioloop::detail::connect_order;
    CHECK(connect_order(resolved, {}, "t") == resolved);
    CHECK(connect_order(resolved, {.happy_eyeballs_delay = 0ms}, "t") ==
          std::vector{a6, a4, b6, b4, c6});
    CHECK(connect_order(resolved, {.happy_eyeballs_delay = 0ms, .interleave = 0}, "t") ==
          resolved);
    CHECK(connect_order(resolved, {.interleave = 2}, "t") == std::vector{a6, b6, a4, c6, b4});
    // local_addr keeps its family's addresses only.
    CHECK(connect_order(resolved, {.local_addr = endpoint::ip("127.0.0.1", 0)}, "t") ==
          std::vector{a4, b4});
}

TEST_CASE("interleave reorders the attempts (seen in all_errors' order)") {
    if (!nettest::have_ipv6_loopback()) return;  // no ::1 here: the order test above stands
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        const endpoint a4 = endpoint::ip("127.0.0.1", refused_port());
        const endpoint b4 = endpoint::ip("127.0.0.1", refused_port());
        const endpoint a6 = endpoint::ip("::1", a4.port());  // refused too, most likely
        const std::vector<endpoint> to{a4, b4, a6};
        try {
            (void)co_await loop.create_connection(factory, to,
                                                  {.interleave = 1, .all_errors = true});
            FAIL("connected to an address nothing listens on");
        } catch (const ioloop::connect_errors& e) {
            REQUIRE(e.errors().size() == 3);
            CHECK(e.errors()[0].address == a4);
            CHECK(e.errors()[1].address == a6);
            CHECK(e.errors()[2].address == b4);
        }
    }());
}

TEST_CASE("happy eyeballs: a failed attempt starts the next at once, not after the delay") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        const endpoint dead = endpoint::ip("127.0.0.1", refused_port());
        const endpoint live = endpoint::ip("127.0.0.1", nettest::port_of(s));
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        const std::vector<endpoint> to{dead, live};
        const auto start = loop.time();
        auto [t, p] = co_await loop.create_connection(factory, to, {.happy_eyeballs_delay = 30s});
        CHECK(loop.time() - start < 10s);  // far less than the delay
        CHECK(t->get_extra_info("peername").address() == live);
        t->close();
        AWAIT_UNTIL(c.lost == 1);
    }());
}

TEST_CASE("happy eyeballs: an address that never answers loses to the next after the delay") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        // A: a listener whose accept queue is full, so that the kernel drops the SYNs sent
        // to it and a connect there neither succeeds nor fails (Linux; and Wine, on it).
        ioloop::socket a = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        a.bind(endpoint::ip("127.0.0.1", 0));
        a.listen(0);
        const endpoint dead = a.local_endpoint();
        std::vector<ioloop::socket> queued;
        bool full = false;
        for (int i = 0; i < 64 && !full; ++i) {
            ioloop::socket q = ioloop::socket::open(address_family::ipv4, socket_type::stream);
            try {
                co_await ioloop::wait_for(loop.sock_connect(q, dead), 1s);
                queued.push_back(std::move(q));
            } catch (const ioloop::timeout_error&) {
                full = true;
            }
        }
        REQUIRE(full);
        // B: a listener that accepts.
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server b = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        const endpoint live = endpoint::ip("127.0.0.1", nettest::port_of(b));
#if defined(IOLOOP_POSIX)
        const int fds_before = nettest::open_fd_count();
#endif
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        const std::vector<endpoint> to{dead, live};
        const auto start = loop.time();
        auto [t, p] = co_await loop.create_connection(factory, to, {.happy_eyeballs_delay = 200ms});
        const auto took = loop.time() - start;
        CHECK(t->get_extra_info("peername").address() == live);
        CHECK(took >= 200ms);  // B started only once A had had its delay
        CHECK(took < 5s);
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
#if defined(IOLOOP_POSIX)
        // A's attempt is closed: our new descriptors are the connection's two ends.
        CHECK(nettest::open_fd_count() == fds_before + 2);
#endif
        t->close();
        AWAIT_UNTIL(c.lost == 1);
    }());
}

TEST_CASE("the sock= form: create_connection over a socket connected already") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        ioloop::socket sock = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        co_await loop.sock_connect(sock, endpoint::ip("127.0.0.1", nettest::port_of(s)));
        const ioloop::native_socket fd = sock.fd();
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        auto [t, p] = co_await loop.create_connection(factory, std::move(sock));
        CHECK(t->get_extra_info("socket").fd() == fd);  // that very socket
        t->write("ping");
        AWAIT_UNTIL(c.data == "ping");
        t->close();
        AWAIT_UNTIL(c.lost == 1);
        // What cannot be used: a closed socket, a datagram one, local_addr.
        CHECK(invalid_argument_saying(
            [&] { return loop.create_connection(factory, ioloop::socket()); },
            "create_connection: the socket is not open"));
        CHECK(invalid_argument_saying(
            [&] {
                return loop.create_connection(
                    factory, ioloop::socket::open(address_family::ipv4, socket_type::datagram));
            },
            "not a stream socket"));
        CHECK(invalid_argument_saying(
            [&] {
                return loop.create_connection(
                    factory, ioloop::socket::open(address_family::ipv4, socket_type::stream),
                    {.local_addr = endpoint::ip("127.0.0.1", 0)});
            },
            "local_addr"));
    }());
}

TEST_CASE("connect_accepted_socket: a transport over a socket accepted elsewhere") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        listener.bind(endpoint::ip("127.0.0.1", 0));
        listener.listen();
        const endpoint at = listener.local_endpoint();
        auto echo_factory = &make_echo;
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        auto connecting = loop.create_task(loop.create_connection(factory, at.host(), at.port()));
        auto [accepted, peer] = co_await loop.sock_accept(listener);
        (void)co_await loop.connect_accepted_socket(echo_factory, std::move(accepted));
        (void)co_await connecting;
        c.t->write("pong");
        AWAIT_UNTIL(c.data == "pong");
        c.t->close();
        AWAIT_UNTIL(c.lost == 1);
    }());
}

TEST_CASE("open_connection with options, and over a connected socket") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        {
            auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port,
                                                            {.limit = 16, .all_errors = true});
            w.write("hello\n");
            CHECK((co_await r.readline()) == "hello\n");
            w.close();
            co_await w.wait_closed();
        }
        {
            ioloop::socket sock = ioloop::socket::open(address_family::ipv4, socket_type::stream);
            co_await loop.sock_connect(sock, endpoint::ip("127.0.0.1", port));
            auto [r, w] = co_await ioloop::open_connection(std::move(sock));
            w.write("again\n");
            CHECK((co_await r.readline()) == "again\n");
            w.close();
            co_await w.wait_closed();
        }
    }());
}
