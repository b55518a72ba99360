// Servers (loop.create_server, create_unix_server) on every readiness backend: the bound
// port, every interface, close and wait_closed, serve_forever, the Unix socket file,
// SO_REUSEADDR, TCP_NODELAY, the backlog, 10,000 concurrent connections, and closing the
// loop with transports and a server still open.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(IOLOOP_POSIX)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace std::chrono_literals;
using ioloop::address_family;
using ioloop::endpoint;
using ioloop::socket_type;
using nettest::probe;
using nettest::record;
using nettest::records;

namespace {

std::unique_ptr<ioloop::protocol> make_echo() { return std::make_unique<nettest::echo>(); }

// Connects to host:port, sends `text`, and returns what came back once `text.size()`
// bytes did; then closes.
ioloop::coro<std::string> echo_once(std::string host, std::uint16_t port, std::string text) {
    auto& loop = ioloop::get_running_loop();
    record c;
    auto factory = [&c] { return std::make_unique<probe>(c); };
    (void)co_await loop.create_connection(factory, host, port);
    c.t->write(text);
    AWAIT_UNTIL(c.data.size() >= text.size() || c.lost != 0);
    if (c.t) c.t->close();
    AWAIT_UNTIL(c.lost == 1);
    co_return c.data;
}

// Whether a TCP connect to 127.0.0.1:port is refused.
ioloop::coro<bool> refused(std::uint16_t port) {
    auto& loop = ioloop::get_running_loop();
    record c;
    auto factory = [&c] { return std::make_unique<probe>(c); };
    try {
        (void)co_await loop.create_connection(factory, "127.0.0.1", port);
    } catch (const std::system_error& e) {
        co_return e.code() == std::errc::connection_refused;
    }
    c.t->abort();
    AWAIT_UNTIL(c.lost == 1);
    co_return false;
}

int int_option(ioloop::native_socket fd, int level, int name) {
    const int value = test::socket_option(fd, level, name);
    REQUIRE(value != -1);
    return value;
}

#if defined(TEST_UNIX_SOCKETS)
bool is_socket_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}
#endif

}  // namespace

TEST_CASE("a server on port 0 reports the port it got, and serves on it") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        CHECK(s.is_serving());  // serving at once, as asyncio's start_serving=True
        REQUIRE(s.sockets().size() == 1);
        const endpoint bound = s.sockets()[0].local_endpoint();
        CHECK(bound.family() == address_family::ipv4);
        CHECK(bound.host() == "127.0.0.1");
        CHECK(bound.port() != 0);
        CHECK((co_await echo_once("127.0.0.1", bound.port(), "ping")) == "ping");
        s.close();
        CHECK_FALSE(s.is_serving());
        CHECK(s.sockets().empty());
    }());
}

TEST_CASE("host \"\" listens on every interface: 0.0.0.0 and :: (where there is IPv6)") {
    const bool ipv6 = nettest::have_ipv6_loopback();
    nettest::run([](bool ipv6) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "", 0);
        REQUIRE(s.sockets().size() == (ipv6 ? 2u : 1u));
        bool saw_v4 = false;
        bool saw_v6 = false;
        for (const ioloop::socket& sock : s.sockets()) {
            const endpoint e = sock.local_endpoint();
            CHECK(e.port() != 0);
            if (e.family() == address_family::ipv4) {
                saw_v4 = true;
                CHECK(e.host() == "0.0.0.0");
                CHECK((co_await echo_once("127.0.0.1", e.port(), "over v4")) == "over v4");
            } else {
                saw_v6 = true;
                CHECK(e.family() == address_family::ipv6);
                CHECK(e.host() == "::");
                CHECK(int_option(sock.fd(), IPPROTO_IPV6, IPV6_V6ONLY) == 1);
                CHECK((co_await echo_once("::1", e.port(), "over v6")) == "over v6");
            }
        }
        CHECK(saw_v4);
        CHECK(saw_v6 == ipv6);
    }(ipv6));
}

TEST_CASE("close() stops accepting, existing connections go on; wait_closed waits for them") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", port);
        c.t->write("one");
        AWAIT_UNTIL(c.data == "one");

        // asyncio 3.12: wait_closed waits for close() and for the last connection.
        ioloop::task<void> waiter = ioloop::create_task(s.wait_closed());
        for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0s);
        CHECK_FALSE(waiter.done());

        s.close();
        s.close();  // twice: nothing more
        CHECK_FALSE(s.is_serving());
        CHECK(s.sockets().empty());
        CHECK(co_await refused(port));  // nobody accepts any more

        c.t->write("two");  // the connection made before goes on
        AWAIT_UNTIL(c.data == "onetwo");
        for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0s);
        CHECK_FALSE(waiter.done());

        c.t->close();
        AWAIT_UNTIL(waiter.done());
        co_await waiter;
        CHECK(c.lost == 1);
        co_await s.wait_closed();  // closed and idle: at once
    }());
}

TEST_CASE("serve_forever returns after close(); cancelling it closes the server") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        ioloop::task<void> forever = ioloop::create_task(s.serve_forever());
        co_await ioloop::sleep(0s);
        CHECK(s.is_serving());
        CHECK((co_await echo_once("127.0.0.1", nettest::port_of(s), "hi")) == "hi");
        CHECK_FALSE(forever.done());
        s.close();
        AWAIT_UNTIL(forever.done());
        co_await forever;  // returned, no exception
        CHECK_THROWS_AS(s.start_serving(), ioloop::invalid_state_error);

        ioloop::server s2 = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        const std::uint16_t port2 = nettest::port_of(s2);
        ioloop::task<void> forever2 = ioloop::create_task(s2.serve_forever());
        co_await ioloop::sleep(0s);
        CHECK_FALSE(forever2.done());
        forever2.cancel();
        CHECK_THROWS_AS(co_await forever2, ioloop::cancelled_error);
        CHECK(forever2.cancelled());
        CHECK_FALSE(s2.is_serving());
        CHECK(s2.sockets().empty());
        CHECK(co_await refused(port2));

        ioloop::server empty;
        CHECK_FALSE(empty.is_serving());
        CHECK(empty.sockets().empty());
        CHECK_THROWS_AS(co_await empty.serve_forever(), ioloop::invalid_state_error);
    }());
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("a Unix server: its socket file exists while it listens and goes on close") {
    const std::string path = nettest::unix_path("server-file");
    nettest::run([](std::string path) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_unix_server(echo_factory, path);
        CHECK(is_socket_file(path));
        REQUIRE(s.sockets().size() == 1);
        CHECK(s.sockets()[0].local_endpoint().path() == path);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_unix_connection(factory, path);
        c.t->write("unix");
        AWAIT_UNTIL(c.data == "unix");

        s.close();
        CHECK_FALSE(exists(path));
        c.t->write(" still");  // the connection outlives the listening socket
        AWAIT_UNTIL(c.data == "unix still");
        c.t->close();
        co_await s.wait_closed();
        CHECK(c.lost == 1);
    }(path));
    CHECK_FALSE(exists(path));
}

TEST_CASE("a Unix server replaces a stale socket file, but never a regular file") {
    const std::string path = nettest::unix_path("stale");
    {  // what a crashed server leaves: a socket file nobody listens on
        ioloop::socket old = ioloop::socket::open(address_family::unix_domain, socket_type::stream);
        old.bind(endpoint::unix_path(path));
        old.listen();
    }
    REQUIRE(is_socket_file(path));
    nettest::run([](std::string path) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_unix_server(echo_factory, path);
        CHECK(is_socket_file(path));
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_unix_connection(factory, path);
        c.t->write("fresh");
        AWAIT_UNTIL(c.data == "fresh");
        c.t->close();
        s.close();
        co_await s.wait_closed();
    }(path));
    CHECK_FALSE(exists(path));

    // A regular file at the path is somebody's data: left alone, and bind fails.
    {
        const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        REQUIRE(fd != -1);
        REQUIRE(::write(fd, "data", 4) == 4);
        ::close(fd);
    }
    std::error_code code;
    nettest::run([](std::string path, std::error_code& code) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        try {
            ioloop::server s = co_await loop.create_unix_server(echo_factory, path);
            FAIL_CHECK("create_unix_server replaced a regular file");
        } catch (const std::system_error& e) {
            code = e.code();
        }
    }(path, code));
    CHECK(code == std::errc::address_in_use);
    struct stat st {};
    CHECK(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_size == 4);
    ::unlink(path.c_str());
}
#endif

// POSIX only. On Windows listeners do not take SO_REUSEADDR (there it lets another socket
// take a port in use), as the system binds over TIME_WAIT without it; Wine, which runs on
// Linux's TCP, does not, so neither side of this can be checked under Wine.
#if defined(IOLOOP_POSIX)
TEST_CASE("SO_REUSEADDR: a server binds its port again while a connection is in TIME_WAIT") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        CHECK(int_option(s.sockets()[0].fd(), SOL_SOCKET, SO_REUSEADDR) != 0);
        record c;
        c.keep_open_on_eof = true;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", port);
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
        srv[0].t->close();  // the server closes first: its side ends in TIME_WAIT
        AWAIT_UNTIL(c.eofs == 1);
        c.t->close();
        AWAIT_UNTIL(c.lost == 1 && srv[0].lost == 1);
        s.close();
        co_await s.wait_closed();

        // The port is held by TIME_WAIT: a socket without SO_REUSEADDR cannot bind it ...
        std::error_code plain_bind;
        try {
            ioloop::socket plain = ioloop::socket::open(address_family::ipv4, socket_type::stream);
            plain.bind(endpoint::ip("127.0.0.1", port));
        } catch (const std::system_error& e) {
            plain_bind = e.code();
        }
        CHECK(plain_bind == std::errc::address_in_use);
        // ... a server can, right away.
        auto echo_factory = &make_echo;
        ioloop::server again = co_await loop.create_server(echo_factory, "127.0.0.1", port);
        CHECK(nettest::port_of(again) == port);
        CHECK((co_await echo_once("127.0.0.1", port, "again")) == "again");
    }());
}
#endif

TEST_CASE("TCP_NODELAY is on at both ends of a TCP connection") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
        const ioloop::native_socket client_fd = c.t->get_extra_info("socket").fd();
        const ioloop::native_socket server_fd = srv[0].t->get_extra_info("socket").fd();
        CHECK(int_option(client_fd, IPPROTO_TCP, TCP_NODELAY) != 0);
        CHECK(int_option(server_fd, IPPROTO_TCP, TCP_NODELAY) != 0);
        c.t->close();
        AWAIT_UNTIL(srv[0].lost == 1 && c.lost == 1);
    }());
}

#if defined(__linux__)
namespace {

// How many of `clients` finished their handshake (writable), waiting until at least
// `at_least` did (2 s at most) and then 50 ms more for stragglers. Blocks the loop: the
// server must not accept meanwhile.
std::size_t established(std::vector<ioloop::socket>& clients, std::size_t at_least) {
    std::vector<pollfd> fds;
    for (auto& c : clients) fds.push_back(pollfd{c.fd(), POLLOUT, 0});
    const auto count = [&fds] {
        REQUIRE(::poll(fds.data(), fds.size(), 0) >= 0);
        return static_cast<std::size_t>(std::count_if(fds.begin(), fds.end(), [](const pollfd& p) {
            return (p.revents & POLLOUT) != 0 && (p.revents & (POLLERR | POLLHUP)) == 0;
        }));
    };
    for (int i = 0; i < 200 && count() < at_least; ++i) ::usleep(10000);
    ::usleep(50000);
    return count();
}

// Starts `n` non-blocking connects to 127.0.0.1:port.
std::vector<ioloop::socket> start_connects(std::uint16_t port, int n) {
    std::vector<ioloop::socket> clients;
    const endpoint to = endpoint::ip("127.0.0.1", port);
    for (int i = 0; i < n; ++i) {
        ioloop::socket c = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        const int rc = ::connect(c.fd(), to.native(), to.native_size());
        REQUIRE((rc == 0 || errno == EINPROGRESS));
        clients.push_back(std::move(c));
    }
    return clients;
}

}  // namespace

TEST_CASE("the backlog: 100 by default, and as asked (Linux queues backlog + 1)") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        // The loop does not run between the connects and the count: nothing is accepted,
        // so the kernel completes as many handshakes as the backlog lets it queue.
        {
            ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0, 5);
            std::vector<ioloop::socket> clients = start_connects(nettest::port_of(s), 20);
            const std::size_t n = established(clients, 6);
            CHECK(n >= 5);
            CHECK(n <= 7);
        }
        {
            ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
            std::vector<ioloop::socket> clients = start_connects(nettest::port_of(s), 150);
            const std::size_t n = established(clients, 101);
            CHECK(n >= 100);  // the default backlog is at least asyncio's 100
            CHECK(n < 150);   // ... and it is a limit
            // Once the loop runs, the server takes the queued connections.
            co_await ioloop::sleep(10ms);
        }
    }());
}
#endif

// POSIX only: the clients run in a child process (fork) and the descriptors need a raised
// RLIMIT_NOFILE; select's part checks FD_SETSIZE, a limit on descriptor numbers there.
// (Windows has none of these: its select backend sizes its sets to what it watches.)
#if defined(IOLOOP_POSIX)
namespace {

// ---- 10,000 connections ----------------------------------------------------------------

constexpr int many_connections = 10000;

// The protocols and the counts: tests/net_helpers.hpp (both many-connection tests).
using nettest::greet_echo;
using nettest::many_client;
using nettest::many_client_protocol;
using nettest::many_client_totals;
using nettest::many_server_state;

std::string payload_of(int i) {
    return nettest::random_bytes(1 + static_cast<std::size_t>(i * 7919 % 2048),
                                 static_cast<std::uint32_t>(i + 1));
}

ioloop::coro<void> connect_client(std::uint16_t port, many_client& c, many_client_totals& totals) {
    auto factory = [&c, &totals] { return std::make_unique<many_client_protocol>(c, totals); };
    (void)co_await ioloop::get_running_loop().create_connection(factory, "127.0.0.1", port);
}

// The child's work: opens every connection (at most 500 connects in flight), waits until
// the server greeted all of them (all open at once), then sends each its payload and
// checks the echo. Returns how many came back right.
ioloop::coro<int> many_clients(std::uint16_t port) {
    std::vector<many_client> clients(many_connections);
    many_client_totals totals;
    for (int first = 0; first < many_connections; first += 500) {
        std::vector<ioloop::task<void>> connecting;
        for (int i = first; i < std::min(first + 500, many_connections); ++i) {
            connecting.push_back(ioloop::create_task(connect_client(port, clients[i], totals)));
        }
        for (auto& t : connecting) co_await t;
    }
    AWAIT_UNTIL(totals.greeted == many_connections);
    for (int i = 0; i < many_connections; ++i) {
        const std::string payload = payload_of(i);
        clients[i].expected = "+" + payload;
        clients[i].t->write(payload);
    }
    AWAIT_UNTIL(totals.done == many_connections);
    AWAIT_UNTIL(totals.lost == many_connections);  // no protocol outlives `clients`
    co_return totals.ok;
}

// Runs in the forked child: reads the port, runs the clients, reports "<ok>\n".
[[noreturn]] void child_main(int channel) {
    std::uint16_t port = 0;
    if (::read(channel, &port, sizeof port) != sizeof port) ::_exit(3);
    int ok = -1;
    try {
        ok = nettest::run(many_clients(port), 100s);
    } catch (...) {
        ok = -2;
    }
    const std::string report = std::to_string(ok) + "\n";
    if (::write(channel, report.data(), report.size()) != static_cast<ssize_t>(report.size()))
        ::_exit(4);
    ::_exit(0);
}

}  // namespace

TEST_CASE("10,000 concurrent connections to one server each echo a random payload") {
    if (nettest::backend_name() == "select") {
        // select cannot go past FD_SETSIZE: the test checks the clear error instead.
        records srv;
        std::vector<std::string> reports;
        nettest::run([](records& srv, std::vector<std::string>& reports) -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            loop.set_exception_handler([&reports](const ioloop::exception_context& ctx) {
                std::string text = ctx.message;
                try {
                    if (ctx.exception) std::rethrow_exception(ctx.exception);
                } catch (const std::exception& e) {
                    text += std::string(" / ") + e.what();
                }
                reports.push_back(text);
            });
            auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
            ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
            const std::uint16_t port = nettest::port_of(s);
            nettest::fd_filler filler(FD_SETSIZE - 1);  // the next descriptor is FD_SETSIZE

            // A client of this loop past FD_SETSIZE: create_connection says why it fails.
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            std::string what;
            try {
                (void)co_await loop.create_connection(factory, "127.0.0.1", port);
                FAIL_CHECK("create_connection watched a descriptor past FD_SETSIZE");
            } catch (const std::system_error& e) {
                CHECK(e.code() == std::errc::invalid_argument);
                what = e.what();
            }
            CHECK(what.find("FD_SETSIZE") != std::string::npos);
            CHECK(c.made == 0);

            // A connection the server accepts past FD_SETSIZE: reported, and closed.
            ioloop::socket raw = ioloop::socket::open(address_family::ipv4, socket_type::stream);
            const endpoint to = endpoint::ip("127.0.0.1", port);
            const int rc = ::connect(raw.fd(), to.native(), to.native_size());
            REQUIRE((rc == 0 || errno == EINPROGRESS));
            char byte = 0;
            AWAIT_UNTIL(::recv(raw.fd(), &byte, 1, 0) == 0);  // closed by the server
            // Reported (the failed client above may have reached the queue too).
            CHECK(!reports.empty());
            for (const std::string& r : reports) {
                CHECK(r.find("accepted connection") != std::string::npos);
                CHECK(r.find("FD_SETSIZE") != std::string::npos);
            }
            for (const record& r : srv.all) CHECK(r.made == 0);  // no protocol started

            // Below FD_SETSIZE again, all is well.
            filler.release();
            raw.close();
            const std::size_t before = srv.size();
            record c2;
            auto factory2 = [&c2] { return std::make_unique<probe>(c2); };
            (void)co_await loop.create_connection(factory2, "127.0.0.1", port);
            c2.t->write("fits");
            AWAIT_UNTIL(srv.size() == before + 1 && srv.all.back().data == "fits");
            c2.t->close();
            AWAIT_UNTIL(c2.lost == 1 && srv.all.back().lost == 1);
        }(srv, reports));
        return;
    }

    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < rlim_t(many_connections + 100)) {
        FAIL("RLIMIT_NOFILE's hard limit (" << limit.rlim_max << ") is below "
                                            << many_connections + 100);
    }
    // Each process holds one end of every connection: the server here, the clients in a
    // child (one process with both ends would need 20,000 descriptors and more).
    const rlim_t wanted = limit.rlim_max == RLIM_INFINITY ? rlim_t(65536) : limit.rlim_max;
    nettest::nofile_limit raised(wanted);
    int channel[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) == 0);
    const pid_t child = ::fork();
    REQUIRE(child != -1);
    if (child == 0) {
        ::close(channel[0]);
        child_main(channel[1]);
    }
    ::close(channel[1]);

    many_server_state state;
    std::string report;
    const auto started = std::chrono::steady_clock::now();
    nettest::run(
        [](int channel, many_server_state& state, std::string& report) -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            auto factory = [&state] { return std::make_unique<greet_echo>(state); };
            ioloop::server s = co_await loop.create_server(factory, "127.0.0.1", 0, 4096);
            const std::uint16_t port = nettest::port_of(s);
            ioloop::socket child_end(channel);
            co_await loop.sock_sendall(
                child_end, std::string_view(reinterpret_cast<const char*>(&port), sizeof port));
            for (;;) {
                std::string chunk = co_await loop.sock_recv(child_end, 64);
                if (chunk.empty()) break;
                report += chunk;
            }
            AWAIT_UNTIL(state.active == 0);
        }(channel[0], state, report),
        110s);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(report == std::to_string(many_connections) + "\n");  // every echo was right
    CHECK(state.total == many_connections);
    CHECK(state.max_active == many_connections);  // all open at the same time
    MESSAGE(many_connections << " connections on " << nettest::backend_name() << " in "
                             << seconds << " s");
}
#endif

TEST_CASE("closing the loop with open transports and a server: no callback after, no leak") {
#if defined(IOLOOP_POSIX)  // descriptor counts: see net_helpers.hpp
    const int fds_before = nettest::open_fd_count();
#endif
    records srv;
    record c1;
    record c2;
    std::uint16_t port = 0;
    int handler_calls = 0;
    ioloop::server s;  // outlives the loop
    {
        ioloop::event_loop loop;
        loop.set_exception_handler([&handler_calls](const ioloop::exception_context&) {
            ++handler_calls;
        });
        ioloop::task<void> waiter;
        ioloop::task<void> forever;
        loop.run_until_complete([&]() -> ioloop::coro<void> {
            auto server_factory = [&srv] {
                record& r = srv.all.emplace_back();
                r.pause_reading_at_start = true;  // so that client 2's writes stay buffered
                return std::make_unique<probe>(r);
            };
            s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
            port = nettest::port_of(s);
            auto f1 = [&c1] { return std::make_unique<probe>(c1); };
            auto f2 = [&c2] { return std::make_unique<probe>(c2); };
            (void)co_await loop.create_connection(f1, "127.0.0.1", port);
            (void)co_await loop.create_connection(f2, "127.0.0.1", port);
            AWAIT_UNTIL(srv.size() == 2 && srv[1].made == 1);
            srv[0].t->resume_reading();
            c1.t->write("hello");
            AWAIT_UNTIL(srv[0].data == "hello");
            srv[0].t->write(std::string(1 << 20, 'r'));  // a reply nobody reads yet
            c2.t->write(std::string(16 << 20, 'w'));     // stays in the transport's buffer
            REQUIRE(c2.t->get_write_buffer_size() > 0);
            c1.t->pause_reading();
            waiter = ioloop::create_task(s.wait_closed());
            forever = ioloop::create_task(s.serve_forever());
            co_await ioloop::sleep(0s);
        }());
        CHECK_FALSE(waiter.done());
        CHECK_FALSE(forever.done());
        loop.close();
        CHECK(waiter.cancelled());
        CHECK(forever.cancelled());
        CHECK(c1.lost == 0);  // no connection_lost: closing the loop runs no callback
        CHECK(c2.lost == 0);
        for (auto& r : srv.all) CHECK(r.lost == 0);
        CHECK(c1.destroyed == 1);  // ... but the protocols are gone with their transports
        CHECK(c2.destroyed == 1);
        for (auto& r : srv.all) CHECK(r.destroyed == 1);
        CHECK_FALSE(s.is_serving());
        s.close();  // the handle still works, and does nothing
    }
    CHECK(handler_calls == 0);
    CHECK(s.sockets().empty());
    s = ioloop::server();  // released after its loop is gone
    // The listening socket is closed: its port refuses.
    ioloop::socket probe_socket = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    const endpoint to = endpoint::ip("127.0.0.1", port);
    std::error_code outcome;
    if (::connect(probe_socket.fd(), to.native(), to.native_size()) != 0) {
        if (test::connect_in_progress()) {
            REQUIRE(test::wait_connect_done(probe_socket.fd(), 5));
            outcome = probe_socket.pending_error();
        } else {
            outcome = test::last_socket_error();
        }
    }
    CHECK(outcome == std::errc::connection_refused);
    probe_socket.close();
#if defined(IOLOOP_POSIX)
    CHECK(nettest::open_fd_count() == fds_before);  // every descriptor closed
#endif
}
