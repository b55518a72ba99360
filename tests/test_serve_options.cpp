// serve_options (loop.create_server, start_server) on every backend: the defaults, the
// checks (a negative backlog, TLS time limits), reuse_port (two servers on one
// port; a clear error where there is no SO_REUSEPORT), keep_alive on the accepted
// connections, start_serving=false, several hosts, and the sock= form (a socket bound
// already, as systemd's socket activation passes one).
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
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

std::unique_ptr<ioloop::protocol> make_echo() { return std::make_unique<nettest::echo>(); }

template <class Call>
bool invalid_argument_saying(Call call, std::string_view words) {
    try {
        (void)call();
    } catch (const std::invalid_argument& e) {
        return std::string_view(e.what()).find(words) != std::string_view::npos;
    }
    return false;
}

// Connects to `to`, sends a line and returns the line that comes back.
ioloop::coro<std::string> echo_line(endpoint to, std::string line) {
    auto [r, w] = co_await ioloop::open_connection(to.host(), to.port());
    w.write(line);
    std::string back = co_await r.readline();
    w.close();
    co_await w.wait_closed();
    co_return back;
}

ioloop::coro<void> echo_handler(ioloop::stream_reader r, ioloop::stream_writer w) {
    for (;;) {
        std::string line = co_await r.readline();
        if (line.empty()) break;
        w.write(line);
        co_await w.drain();
    }
    w.close();
}

}  // namespace

TEST_CASE("the defaults are asyncio's") {
    const ioloop::serve_options o;
    CHECK(o.limit == ioloop::stream_default_limit);
    CHECK(o.backlog == 100);
    CHECK(o.ssl == nullptr);
#if defined(IOLOOP_POSIX)
    CHECK(o.reuse_address);
#else
    CHECK_FALSE(o.reuse_address);
#endif
    CHECK_FALSE(o.reuse_port);
    CHECK_FALSE(o.keep_alive);
    CHECK(o.start_serving);
    CHECK(o.hosts == nullptr);
}

TEST_CASE("the options are checked at the call") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        CHECK(invalid_argument_saying(
            [&] {
                return loop.create_server(factory, "127.0.0.1", 0,
                                          {.ssl_shutdown_timeout = std::chrono::seconds(-1)});
            },
            "create_server: ssl_shutdown_timeout must be positive"));
        CHECK(invalid_argument_saying(
            [&] {
                ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
                return loop.connect_accepted_socket(factory, std::move(s),
                                                    {.ssl_handshake_timeout = {}});
            },
            "connect_accepted_socket: ssl_handshake_timeout must be positive"));
        CHECK(invalid_argument_saying(
            [&] { return loop.create_server(factory, "127.0.0.1", 0, {.backlog = -1}); },
            "create_server: the backlog"));
        co_return;
    }());
}

TEST_CASE("reuse_port: two servers bind one port (a clear error where the system cannot)") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
#if defined(SO_REUSEPORT)
        ioloop::server a = co_await loop.create_server(factory, "127.0.0.1", 0, {.reuse_port = true});
        const std::uint16_t port = nettest::port_of(a);
        ioloop::server b =
            co_await loop.create_server(factory, "127.0.0.1", port, {.reuse_port = true});
        CHECK(nettest::port_of(b) == port);
        CHECK(test::socket_option(b.sockets()[0].fd(), SOL_SOCKET, SO_REUSEPORT) != 0);
        CHECK((co_await echo_line(endpoint::ip("127.0.0.1", port), "one\n")) == "one\n");
        // Without it, the port is taken.
        const std::system_error e = co_await nettest::failure_of(
            [&] { return loop.create_server(factory, "127.0.0.1", port); }, "bound a taken port");
        CHECK(e.code() == std::errc::address_in_use);
#else
        const std::system_error e = co_await nettest::failure_of(
            [&] { return loop.create_server(factory, "127.0.0.1", 0, {.reuse_port = true}); },
            "reuse_port where there is no SO_REUSEPORT");
        CHECK(e.code() == std::errc::operation_not_supported);
        CHECK(std::string_view(e.what()).find("SO_REUSEPORT") != std::string_view::npos);
#endif
    }());
}

TEST_CASE("keep_alive: SO_KEEPALIVE on every accepted connection, off without it") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        for (const bool keep_alive : {false, true}) {
            CAPTURE(keep_alive);
            records srv;
            auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
            ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0,
                                                           {.keep_alive = keep_alive});
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            auto [t, p] = co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
            AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
            const ioloop::native_socket fd = srv[0].t->get_extra_info("socket").fd();
            CHECK((test::socket_option(fd, SOL_SOCKET, SO_KEEPALIVE) != 0) == keep_alive);
            t->close();
            AWAIT_UNTIL(c.lost == 1 && srv[0].lost == 1);
        }
    }());
}

TEST_CASE("start_serving=false: listening, accepting only once start_serving is called") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s =
            co_await loop.create_server(server_factory, "127.0.0.1", 0, {.start_serving = false});
        CHECK_FALSE(s.is_serving());
        REQUIRE(s.sockets().size() == 1);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        // The kernel completes the handshake into the backlog; nobody accepts it yet.
        auto [t, p] = co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        co_await ioloop::sleep(50ms);
        CHECK(srv.size() == 0);
        s.start_serving();
        CHECK(s.is_serving());
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
        t->close();
        AWAIT_UNTIL(c.lost == 1);
    }());
}

TEST_CASE("several hosts: a listening socket for each address, each serving") {
    const bool ipv6 = nettest::have_ipv6_loopback();
    nettest::run([](bool ipv6) -> ioloop::coro<void> {
        const std::vector<std::string> hosts =
            ipv6 ? std::vector<std::string>{"127.0.0.1", "::1", "127.0.0.1"}
                 : std::vector<std::string>{"127.0.0.1", "127.0.0.1"};
        // hosts alone (the host argument empty), each address once.
        ioloop::server s = co_await ioloop::start_server(echo_handler, "", 0, {.hosts = &hosts});
        REQUIRE(s.sockets().size() == (ipv6 ? 2u : 1u));
        for (const ioloop::socket& l : s.sockets()) {
            const endpoint at = l.local_endpoint();
            CAPTURE(at.to_string());
            CHECK((co_await echo_line(at, "hi\n")) == "hi\n");
        }
        // The host argument and hosts together.
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        const std::vector<std::string> more{"127.0.0.1"};
        ioloop::server both = co_await loop.create_server(factory, ipv6 ? "::1" : "127.0.0.1", 0,
                                                          {.hosts = &more});
        CHECK(both.sockets().size() == (ipv6 ? 2u : 1u));
    }(ipv6));
}

TEST_CASE("the sock= form: a server on a socket bound already, listening or not") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        for (const bool listening : {false, true}) {
            CAPTURE(listening);
            ioloop::socket sock = ioloop::socket::open(address_family::ipv4, socket_type::stream);
            sock.bind(endpoint::ip("127.0.0.1", 0));
            if (listening) sock.listen(5);
            const endpoint at = sock.local_endpoint();
            const ioloop::native_socket fd = sock.fd();
            ioloop::server s = co_await loop.create_server(factory, std::move(sock));
            REQUIRE(s.sockets().size() == 1);
            CHECK(s.sockets()[0].fd() == fd);
            CHECK(s.is_serving());
            CHECK((co_await echo_line(at, "sock\n")) == "sock\n");
        }
        {  // start_server, with options
            ioloop::socket sock = ioloop::socket::open(address_family::ipv4, socket_type::stream);
            sock.bind(endpoint::ip("127.0.0.1", 0));
            const endpoint at = sock.local_endpoint();
            ioloop::server s = co_await ioloop::start_server(echo_handler, std::move(sock),
                                                             {.start_serving = false});
            CHECK_FALSE(s.is_serving());
            s.start_serving();
            CHECK((co_await echo_line(at, "stream\n")) == "stream\n");
        }
        // What it refuses: a closed socket, a datagram socket, options for sockets it binds.
        CHECK(invalid_argument_saying([&] { return loop.create_server(factory, ioloop::socket()); },
                                      "create_server: the socket is not open"));
        CHECK(invalid_argument_saying(
            [&] {
                return loop.create_server(
                    factory, ioloop::socket::open(address_family::ipv4, socket_type::datagram));
            },
            "not a stream socket"));
        CHECK(invalid_argument_saying(
            [&] {
                return loop.create_server(
                    factory, ioloop::socket::open(address_family::ipv4, socket_type::stream),
                    {.reuse_port = true});
            },
            "reuse_port and hosts do not apply to sock="));
    }());
}

#if defined(TEST_UNIX_SOCKETS)
TEST_CASE("Unix servers with options (loop and streams), and one on a Unix socket as sock=") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto factory = &make_echo;
        const std::string path = nettest::unix_path("serve-options");
        ioloop::server s =
            co_await loop.create_unix_server(factory, path, {.backlog = 3, .start_serving = false});
        CHECK_FALSE(s.is_serving());
        s.close();
        ioloop::socket sock = ioloop::socket::open(address_family::unix_domain, socket_type::stream);
        sock.bind(endpoint::unix_path(path));
        ioloop::server u = co_await loop.create_server(factory, std::move(sock));
        auto [r, w] = co_await ioloop::open_unix_connection(path);
        w.write("unix\n");
        CHECK((co_await r.readline()) == "unix\n");
        w.close();
        co_await w.wait_closed();
        u.close();
        std::remove(path.c_str());
        // start_unix_server with options.
        ioloop::server v = co_await ioloop::start_unix_server(echo_handler, path,
                                                              {.limit = 32, .start_serving = false});
        CHECK_FALSE(v.is_serving());
        v.start_serving();
        auto [r2, w2] = co_await ioloop::open_unix_connection(path);
        w2.write("streams\n");
        CHECK((co_await r2.readline()) == "streams\n");
        w2.close();
        co_await w2.wait_closed();
    }());
}
#endif
