// The loop's awaitable socket operations (sock_recv, sock_recv_into, sock_sendall,
// sock_accept, sock_connect, sock_recvfrom, sock_sendto) over loopback TCP, UDP and Unix
// sockets, on every readiness backend: a payload large enough to fill the kernel's
// buffers, EOF, refusals, cancellation and a peer that went away.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "platform.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

using namespace std::chrono_literals;
using ioloop::address_family;
using ioloop::endpoint;
using ioloop::socket_type;

namespace {

std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(gen() & 0xff);
    return s;
}

// A TCP listener on 127.0.0.1 at a port the kernel picked.
ioloop::socket tcp_listener() {
    ioloop::socket l = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    l.bind(endpoint::ip("127.0.0.1", 0));
    l.listen();
    return l;
}

// Reads until EOF.
ioloop::coro<std::string> recv_all(ioloop::socket& s) {
    auto& loop = ioloop::get_running_loop();
    std::string all;
    for (;;) {
        std::string chunk = co_await loop.sock_recv(s, 65536);
        if (chunk.empty()) co_return all;
        all += chunk;
    }
}

// Echoes everything it reads back until EOF, then closes the connection.
ioloop::coro<void> echo_one(ioloop::socket& listener) {
    auto& loop = ioloop::get_running_loop();
    auto [conn, peer] = co_await loop.sock_accept(listener);
    CHECK(peer.family() == address_family::ipv4);
    for (;;) {
        std::string chunk = co_await loop.sock_recv(conn, 65536);
        if (chunk.empty()) break;
        co_await loop.sock_sendall(conn, chunk);
    }
}

ioloop::coro<void> send_then_shutdown(ioloop::socket& s, std::string_view data) {
    co_await ioloop::get_running_loop().sock_sendall(s, data);
    REQUIRE(test::shutdown_send(s.fd()));
}

}  // namespace

TEST_CASE("TCP echo of 1 MiB over loopback: every byte comes back in order") {
    const std::string payload = random_bytes(1 << 20, 42);
    const std::string echoed = ioloop::run([](const std::string& p) -> ioloop::coro<std::string> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = tcp_listener();
        auto server = ioloop::create_task(echo_one(listener));
        ioloop::socket client = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        co_await loop.sock_connect(client, listener.local_endpoint());
        // Sending and reading at once: 1 MiB is more than the socket buffers hold, so a
        // sender that did not read too would deadlock against the echo.
        auto sender = ioloop::create_task(send_then_shutdown(client, p));
        std::string back = co_await recv_all(client);  // ends with EOF: an empty string
        co_await sender;
        co_await server;
        co_return back;
    }(payload));
    CHECK(echoed.size() == payload.size());
    CHECK(echoed == payload);
}

TEST_CASE("sock_recv gives an empty string at EOF; sock_recv_into gives 0") {
    ioloop::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto [a, b] = test::socket_pair();
        co_await loop.sock_sendall(b, "last words");
        b.close();
        std::byte buf[4];
        CHECK(co_await loop.sock_recv_into(a, buf) == 4);
        CHECK(co_await loop.sock_recv(a, 100) == " words");
        CHECK(co_await loop.sock_recv(a, 100) == "");
        CHECK(co_await loop.sock_recv_into(a, buf) == 0);
    }());
}

TEST_CASE("UDP: sock_sendto and sock_recvfrom round trip, with the sender's endpoint") {
    ioloop::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket a = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
        ioloop::socket b = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
        a.bind(endpoint::ip("127.0.0.1", 0));
        b.bind(endpoint::ip("127.0.0.1", 0));
        // b waits first: its recvfrom finds nothing and must wait for readiness.
        auto receiver = ioloop::create_task(loop.sock_recvfrom(b, 2048));
        co_await ioloop::sleep(0s);
        CHECK(co_await loop.sock_sendto(a, "ping", b.local_endpoint()) == 4);
        auto [data, from] = co_await receiver;
        CHECK(data == "ping");
        CHECK(from == a.local_endpoint());
        CHECK(co_await loop.sock_sendto(b, "pong", from) == 4);
        auto [reply, replier] = co_await loop.sock_recvfrom(a, 2048);
        CHECK(reply == "pong");
        CHECK(replier == b.local_endpoint());
    }());
}

TEST_CASE("UDP: sock_recvfrom_into fills the caller's buffer and names the sender") {
    ioloop::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket a = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
        ioloop::socket b = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
        a.bind(endpoint::ip("127.0.0.1", 0));
        b.bind(endpoint::ip("127.0.0.1", 0));
        std::byte buf[64];
        // b waits first: nothing is there, so it waits for readiness.
        auto receiver = ioloop::create_task(loop.sock_recvfrom_into(b, buf));
        co_await ioloop::sleep(0s);
        CHECK(co_await loop.sock_sendto(a, "datagram", b.local_endpoint()) == 8);
        auto [n, from] = co_await receiver;
        CHECK(n == 8);
        CHECK(std::string_view(reinterpret_cast<const char*>(buf), n) == "datagram");
        CHECK(from == a.local_endpoint());
        // Already there: returns at once.
        CHECK(co_await loop.sock_sendto(a, "xy", b.local_endpoint()) == 2);
        std::byte small[4];
        auto [m, from2] = co_await loop.sock_recvfrom_into(b, small);
        CHECK(m == 2);
        CHECK(from2 == a.local_endpoint());
    }());
}

TEST_CASE("sock_connect to a closed port: std::system_error, errc::connection_refused") {
    endpoint closed_port;
    {
        ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        s.bind(endpoint::ip("127.0.0.1", 0));
        closed_port = s.local_endpoint();
    }
    std::error_code code;
    ioloop::run([&]() -> ioloop::coro<void> {
        ioloop::socket c = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        try {
            co_await ioloop::get_running_loop().sock_connect(c, closed_port);
        } catch (const std::system_error& e) {
            code = e.code();
        }
    }());
    CHECK(code == std::errc::connection_refused);
}

TEST_CASE("cancelling a task blocked in sock_recv: cancelled_error there; the socket works on") {
    ioloop::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto [a, b] = test::socket_pair();
        bool saw_cancel = false;
        auto reader = ioloop::create_task([](ioloop::socket& s, bool& saw) -> ioloop::coro<void> {
            try {
                (void)co_await ioloop::get_running_loop().sock_recv(s, 100);
                FAIL_CHECK("sock_recv returned although nothing was sent");
            } catch (const ioloop::cancelled_error&) {
                saw = true;
                throw;
            }
        }(a, saw_cancel));
        co_await ioloop::sleep(10ms);  // the reader is now waiting for readability
        CHECK_FALSE(reader.done());
        reader.cancel();
        CHECK_THROWS_AS(co_await reader, ioloop::cancelled_error);
        CHECK(saw_cancel);
        CHECK(reader.cancelled());
        // The registration went with the cancelled wait: a new wait on the same socket
        // works, and so does data that arrives before it.
        auto again = ioloop::create_task(loop.sock_recv(a, 100));
        co_await ioloop::sleep(1ms);
        co_await loop.sock_sendall(b, "still here");
        CHECK(co_await again == "still here");
        co_await loop.sock_sendall(b, "and more");
        CHECK(co_await loop.sock_recv(a, 100) == "and more");
    }());
}

TEST_CASE(
    "sock_sendall to a peer that closed: std::system_error (EPIPE or ECONNRESET), "
    "no SIGPIPE") {
    std::error_code code;
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = tcp_listener();
        ioloop::socket client = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        co_await loop.sock_connect(client, listener.local_endpoint());
        {
            auto [conn, peer] = co_await loop.sock_accept(listener);
            (void)peer;
        }  // closed: the next data that reaches it is answered with a reset
        const std::string block(1 << 16, 'x');
        try {
            // The first sends may still be buffered; a later one meets the reset.
            for (int i = 0; i < 1000; ++i) {
                co_await loop.sock_sendall(client, block);
                co_await ioloop::sleep(1ms);
            }
            FAIL_CHECK("sock_sendall kept succeeding after the peer closed");
        } catch (const std::system_error& e) {
            code = e.code();
        }
    }());
    CHECK((code == std::errc::broken_pipe || code == std::errc::connection_reset));
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("Unix-domain stream sockets: a socket pair, and accept/connect on an abstract name") {
    ioloop::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto [a, b] = test::socket_pair();
        const std::string payload = random_bytes(300000, 7);
        auto sender = ioloop::create_task(send_then_shutdown(a, payload));
        CHECK(co_await recv_all(b) == payload);
        co_await sender;

#if defined(__linux__)
        const endpoint name =
            endpoint::unix_path(std::string("\0ioloop-sock-ops-", 17) + std::to_string(test::process_id()) +
                                "-" + std::string(ioloop::event_loop::backend_type::name));
        ioloop::socket listener =
            ioloop::socket::open(address_family::unix_domain, socket_type::stream);
        listener.bind(name);
        listener.listen();
        auto accepted = ioloop::create_task(loop.sock_accept(listener));
        ioloop::socket c = ioloop::socket::open(address_family::unix_domain, socket_type::stream);
        co_await loop.sock_connect(c, name);
        auto [conn, peer] = co_await std::move(accepted);  // a socket moves, never copies
        CHECK(peer.family() == address_family::unix_domain);
        co_await loop.sock_sendall(c, "over a name");
        CHECK(co_await loop.sock_recv(conn, 100) == "over a name");
#endif
    }());
}
#endif

TEST_CASE("closing the loop while a task waits in sock_recv: the wait is dropped cleanly") {
    auto [a, b] = test::socket_pair();
    bool finished = false;
    {
        ioloop::event_loop loop;
        auto reader = loop.create_task([](ioloop::socket& s, bool& done) -> ioloop::coro<void> {
            (void)co_await ioloop::get_running_loop().sock_recv(s, 100);
            done = true;
        }(a, finished));
        for (int i = 0; i < 3; ++i) {  // the task starts and waits for readability
            loop.stop();
            loop.run_forever();
        }
        CHECK_FALSE(reader.done());
        loop.close();  // destroys the waiting coroutine, and its registration with it
        CHECK(reader.cancelled());
    }
    CHECK_FALSE(finished);
    if constexpr (!test::readiness_backend) {
        // IOCP ties a socket to the first loop's completion port for its life: another
        // loop's wait on it is refused, clearly, rather than waiting forever.
        ioloop::run([](ioloop::socket& r) -> ioloop::coro<void> {
            CHECK_THROWS_AS(co_await ioloop::get_running_loop().sock_recv(r, 100),
                            ioloop::invalid_state_error);
        }(a));
        return;
    }
    // The descriptor is no longer watched by anyone: a fresh loop can wait on it.
    ioloop::run([](ioloop::socket& r, ioloop::socket& w) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto again = ioloop::create_task(loop.sock_recv(r, 100));
        co_await ioloop::sleep(1ms);
        co_await loop.sock_sendall(w, "after close");
        CHECK(co_await again == "after close");
    }(a, b));
}
