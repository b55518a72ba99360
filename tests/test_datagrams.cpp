// loop.create_datagram_endpoint: UDP and Unix datagram transports and their protocols.
#include "loop_helpers.hpp"
#include "net_helpers.hpp"
#include "platform.hpp"

#include <ioloop/ioloop.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace {

using ioloop::endpoint;

// Sends back every datagram to its sender.
struct echo_protocol : ioloop::datagram_protocol {
    ioloop::datagram_transport* transport = nullptr;
    void connection_made(ioloop::datagram_transport& t) override { transport = &t; }
    void datagram_received(std::string_view data, const endpoint& from) override {
        transport->sendto(data, from);
    }
};

// How a transport ended; shared, since the protocol is destroyed after connection_lost.
struct ending {
    bool lost = false;
    std::error_code code;
};

// Records what happens to it; stops the loop once `expected` datagrams came back.
struct recorder : ioloop::datagram_protocol {
    ioloop::event_loop* loop = nullptr;
    ioloop::datagram_transport* transport = nullptr;
    std::vector<std::string> received;
    std::vector<std::error_code> errors;
    std::size_t expected = 0;
    int pauses = 0;
    int resumes = 0;
    std::shared_ptr<ending> end = std::make_shared<ending>();

    void connection_made(ioloop::datagram_transport& t) override { transport = &t; }
    void datagram_received(std::string_view data, const endpoint&) override {
        received.emplace_back(data);
        if (received.size() == expected) loop->stop();
    }
    void error_received(std::error_code ec) override {
        errors.push_back(ec);
        loop->stop();
    }
    void pause_writing() override { ++pauses; }
    void resume_writing() override { ++resumes; }
    void connection_lost(std::error_code ec) override {
        end->lost = true;
        end->code = ec;
        loop->stop();
    }
};

template <class P>
std::pair<ioloop::datagram_transport*, P*> open(ioloop::event_loop& loop, endpoint local,
                                                 endpoint remote) {
    return loop.run_until_complete(loop.create_datagram_endpoint(
        [] { return std::make_unique<P>(); }, std::move(local), std::move(remote)));
}

#if defined(TEST_UNIX_SOCKETS)
std::string unique_path(const char* tag) {
    return test::temp_dir() + "/ioloop-test-" + std::string(tag) + "-" +
           std::to_string(test::process_id());
}
#endif

// The sizes of the datagrams, "200000 1 ...": what a failure prints (the datagrams
// themselves are up to 200 KB of random bytes).
std::string sizes_of(const std::vector<std::string>& datagrams) {
    std::string out;
    for (const std::string& d : datagrams) out += std::to_string(d.size()) + " ";
    return out;
}

// Sends three random datagrams of `size` bytes from a connected UDP endpoint to one bound
// on `host`, each once the last has arrived (so no receive buffer overflows), and checks
// that each arrives whole.
void check_udp_payloads(const char* host, std::size_t size) {
    ioloop::event_loop loop;
    auto [server, receiver] = open<recorder>(loop, endpoint::ip(host, 0), {});
    auto [client, sender] = open<recorder>(loop, {}, server->get_extra_info("sockname").address());
    receiver->loop = &loop;
    sender->loop = &loop;
    // Room for one such datagram at either end whatever the system's defaults (Windows'
    // have been 8 KiB); the kernel may cap or round the values, which is fine.
    test::set_socket_option(client->get_extra_info("socket").fd(), SOL_SOCKET, SO_SNDBUF,
                            256 * 1024);
    test::set_socket_option(server->get_extra_info("socket").fd(), SOL_SOCKET, SO_RCVBUF,
                            256 * 1024);
    std::vector<std::string> sent;
    for (std::uint32_t seed = 1; seed <= 3; ++seed) {
        sent.push_back(nettest::random_bytes(size, seed));
        receiver->expected = sent.size();
        client->sendto(sent.back());
        test::run_with_watchdog(loop);
        if (!sender->errors.empty() || !receiver->errors.empty()) break;
    }
    CHECK(sender->errors.empty());
    CHECK(receiver->errors.empty());
    CHECK(sizes_of(receiver->received) == sizes_of(sent));
    CHECK_MESSAGE((receiver->received == sent), "the bytes differ");
}

}  // namespace

TEST_CASE("a UDP echo: every datagram comes back whole, to the sender") {
    ioloop::event_loop loop;
    auto [server, server_protocol] = open<echo_protocol>(loop, endpoint::ip("127.0.0.1", 0), {});
    const endpoint server_address = server->get_extra_info("sockname").address();
    CHECK(server_address.port() != 0);

    auto [client, p] = open<recorder>(loop, {}, server_address);
    p->loop = &loop;
    p->expected = 50;
    std::vector<std::string> sent;
    for (int i = 0; i < 50; ++i) {
        sent.push_back("datagram " + std::to_string(i) + std::string(std::size_t(i) * 20, 'x'));
        client->sendto(sent.back());
    }
    test::run_with_watchdog(loop);
    // Loopback keeps order and loses nothing at this rate.
    CHECK(p->received == sent);
    CHECK(client->get_extra_info("peername").address().to_string() ==
          server_address.to_string());
    CHECK(client->get_extra_info("socket").fd() != ioloop::invalid_socket);
    CHECK_FALSE(client->get_extra_info("no such thing"));
    CHECK(server_protocol->transport == server);
}

TEST_CASE("an unconnected UDP endpoint sends to the address given with each datagram") {
    ioloop::event_loop loop;
    auto server = open<echo_protocol>(loop, endpoint::ip("127.0.0.1", 0), {}).first;
    const endpoint to = server->get_extra_info("sockname").address();
    CHECK(server->sockname() == to);
    auto [client, p] = open<recorder>(loop, endpoint::ip("127.0.0.1", 0), {});
    p->loop = &loop;
    p->expected = 2;
    CHECK_FALSE(client->get_extra_info("peername"));
    CHECK(client->peername().family() == ioloop::address_family::unspecified);
    client->sendto("hello", to);
    const std::byte raw[] = {std::byte{'r'}, std::byte{0}, std::byte{'w'}};
    client->sendto(std::span<const std::byte>(raw), to);  // raw bytes, in order after it
    test::run_with_watchdog(loop);
    REQUIRE(p->received.size() == 2);
    CHECK(p->received[0] == "hello");
    CHECK(p->received[1] == std::string("r\0w", 3));
}

#if !defined(TEST_WINE_SELECT)  // see platform.hpp
TEST_CASE("a refused datagram reaches error_received and the transport stays open") {
    ioloop::event_loop loop;
    // A port nobody listens on: bind one, note it, close it.
    endpoint closed_port;
    {
        ioloop::socket s = ioloop::socket::open(ioloop::address_family::ipv4,
                                                ioloop::socket_type::datagram);
        s.bind(endpoint::ip("127.0.0.1", 0));
        closed_port = s.local_endpoint();
    }
    auto [client, p] = open<recorder>(loop, {}, closed_port);
    p->loop = &loop;
    client->sendto("anyone?");
    test::run_with_watchdog(loop);
    REQUIRE(p->errors.size() >= 1);
    CHECK(p->errors[0] == std::errc::connection_refused);
    CHECK_FALSE(client->is_closing());
    CHECK_FALSE(p->end->lost);
}
#endif

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("a Unix datagram echo, with the client bound to a path of its own") {
    ioloop::event_loop loop;
    const std::string server_path = unique_path("dgram-server");
    const std::string client_path = unique_path("dgram-client");
    ::unlink(server_path.c_str());
    ::unlink(client_path.c_str());
    auto server = open<echo_protocol>(loop, endpoint::unix_path(server_path), {});
    CHECK(server.first->get_extra_info("sockname").address().to_string().find(server_path) !=
          std::string::npos);
    auto [client, p] = open<recorder>(loop, endpoint::unix_path(client_path),
                                      endpoint::unix_path(server_path));
    p->loop = &loop;
    p->expected = 3;
    client->sendto("one");
    client->sendto("two");
    client->sendto("three");
    test::run_with_watchdog(loop);
    CHECK(p->received == std::vector<std::string>{"one", "two", "three"});
    ::unlink(server_path.c_str());
    ::unlink(client_path.c_str());
}
#endif

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("a Unix datagram endpoint receives datagrams of up to 200,000 bytes whole, in order") {
    // Larger than the loop's 64 KiB read buffer, and mixed with small ones (an empty one
    // too), back to back: each arrives as it was sent, byte for byte.
    ioloop::event_loop loop;
    const std::string path = unique_path("dgram-large");
    ::unlink(path.c_str());
    auto [server, receiver] = open<recorder>(loop, endpoint::unix_path(path), {});
    auto [client, sender] = open<recorder>(loop, {}, endpoint::unix_path(path));
    receiver->loop = &loop;
    sender->loop = &loop;
    // Linux refuses a Unix datagram larger than the sender's SO_SNDBUF less 32 bytes
    // (EMSGSIZE). 200,000 bytes fit the usual default (net.core.wmem_default, 212,992);
    // raised here so the test does not depend on it (the kernel caps the value at
    // net.core.wmem_max, then doubles it).
    REQUIRE(test::set_socket_option(client->get_extra_info("socket").fd(), SOL_SOCKET, SO_SNDBUF,
                                    1024 * 1024));
    const std::size_t sizes[] = {200'000, 65'537, 1,       200'000, 0,
                                 65'536,  65'535, 131'072, 1,       200'000};
    std::vector<std::string> sent;
    std::uint32_t seed = 1;
    for (const std::size_t size : sizes) {
        sent.push_back(nettest::random_bytes(size, seed++));
        client->sendto(sent.back());  // queued by the transport when the socket is full
    }
    receiver->expected = sent.size();
    test::run_with_watchdog(loop);
    CHECK(sender->errors.empty());
    CHECK(receiver->errors.empty());
    CHECK(sizes_of(receiver->received) == sizes_of(sent));
    CHECK_MESSAGE((receiver->received == sent), "the bytes differ");
    ::unlink(path.c_str());
}
#endif

TEST_CASE("UDP: the largest payload (65,507 bytes over IPv4, 65,527 over IPv6) arrives whole") {
    // 65,535 bytes of IP packet less the headers: IPv4's 20 and UDP's 8; IPv6 does not count
    // its own header, so less UDP's 8 only.
    SUBCASE("IPv4") { check_udp_payloads("127.0.0.1", 65'507); }
    SUBCASE("IPv6") {
        if (nettest::have_ipv6_loopback(ioloop::socket_type::datagram))
            check_udp_payloads("::1", 65'527);
    }
}

TEST_CASE("the transports' receive call fails a datagram larger than its buffer, and drops it") {
    // No test can hand a transport such a datagram on purpose: a UDP socket reads into a
    // buffer larger than any UDP payload, and a Unix one measures each datagram first
    // (exactly, on Linux). A transport meets one only if another process reads the same
    // socket between the measuring and the reading, or if memory runs out. So the receive
    // call both datagram transports make (detail::socket_recv_datagram) is checked here on
    // its own: it says EMSGSIZE (WSAEMSGSIZE), never hands back a datagram cut short.
    using ioloop::address_family;
    using ioloop::socket_type;
    ioloop::socket receiver = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
    receiver.bind(endpoint::ip("127.0.0.1", 0));
    const endpoint to = receiver.local_endpoint();
    ioloop::socket sender = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
    const auto send = [&](std::string_view d) {
        REQUIRE(ioloop::detail::socket_sendto(sender.fd(), d.data(), d.size(), to.native(),
                                              to.native_size()) == std::ptrdiff_t(d.size()));
    };
    struct outcome {
        std::ptrdiff_t n;
        std::error_code error;
    };
    const auto receive = [&](char* into, std::size_t size) {
        REQUIRE(test::wait_readable(receiver.fd(), 10));
        sockaddr_storage from{};
        socklen_t from_size = sizeof from;
        const std::ptrdiff_t n = ioloop::detail::socket_recv_datagram(
            receiver.fd(), into, size, reinterpret_cast<sockaddr*>(&from), &from_size);
        return outcome{n, n < 0 ? test::last_socket_error() : std::error_code()};
    };
    char small[100];
    send(std::string(1000, 'x'));
    const outcome too_large = receive(small, sizeof small);
    CHECK(too_large.n == -1);
    CHECK(too_large.error == std::errc::message_size);
    // The rest of it is gone: the next read finds the next datagram.
    send("next");
    const outcome next = receive(small, sizeof small);
    REQUIRE(next.n == 4);
    CHECK(std::string_view(small, 4) == "next");
}

TEST_CASE("close: connection_lost on a later iteration, and sendto after it is an error") {
    ioloop::event_loop loop;
    auto [t, p] = open<recorder>(loop, endpoint::ip("127.0.0.1", 0), {});
    p->loop = &loop;
    const std::shared_ptr<ending> end = p->end;
    t->close();
    CHECK(t->is_closing());
    CHECK_FALSE(end->lost);  // never inside close()
    CHECK_THROWS_AS(t->sendto("late", endpoint::ip("127.0.0.1", 9)), ioloop::invalid_state_error);
    test::run_with_watchdog(loop);
    CHECK(end->lost);
    CHECK_FALSE(end->code);
}

// POSIX only (see platform.hpp): UDP on loopback never pushes back like a Unix datagram
// receiver that does not read.
#if defined(TEST_UNIX_SOCKETS)
TEST_CASE("datagrams the socket cannot take are queued, sent in order, and flow-controlled") {
    // A Unix datagram receiver that does not read: its queue fills after a few datagrams
    // and the sender's socket says EAGAIN (UDP on loopback never pushes back like that).
    ioloop::event_loop loop;
    const std::string path = unique_path("dgram-slow");
    ::unlink(path.c_str());
    ioloop::socket receiver =
        ioloop::socket::open(ioloop::address_family::unix_domain, ioloop::socket_type::datagram);
    receiver.bind(endpoint::unix_path(path));
    auto [client, p] = open<recorder>(loop, {}, endpoint::unix_path(path));
    p->loop = &loop;
    client->set_write_buffer_limits(16 * 1024);

    const std::size_t count = 64;
    std::vector<std::string> sent;
    for (std::size_t i = 0; i < count; ++i) {
        std::string d(8000, char('a' + i % 26));
        d.replace(0, 8, std::to_string(100000000 + i).substr(1));
        sent.push_back(d);
        client->sendto(d);
    }
    REQUIRE(client->get_write_buffer_size() > 16 * 1024);
    CHECK(p->pauses == 1);
    CHECK(p->resumes == 0);

    // Now the receiver reads: the queue drains, in order, and writing resumes.
    std::vector<std::string> received;
    loop.add_reader(receiver.fd(), [&] {
        char buf[10000];
        const ::ssize_t n = ::recv(receiver.fd(), buf, sizeof buf, 0);
        if (n > 0) received.emplace_back(buf, std::size_t(n));
        if (received.size() == count) loop.stop();
    });
    test::run_with_watchdog(loop);
    CHECK(client->get_write_buffer_size() == 0);
    CHECK(p->resumes == 1);
    CHECK(received == sent);
    loop.remove_reader(receiver.fd());
    ::unlink(path.c_str());
}
#endif

TEST_CASE("bad input: no address, or addresses of two families") {
    ioloop::event_loop loop;
    try {
        open<recorder>(loop, {}, {});
        FAIL("no address accepted");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::invalid_argument);
    }
    CHECK_THROWS_AS(
        open<recorder>(loop, endpoint::ip("127.0.0.1", 0), endpoint::ip("::1", 9)),
        std::system_error);
    loop.close();
    CHECK_THROWS_AS(open<recorder>(loop, endpoint::ip("127.0.0.1", 0), {}),
                    ioloop::invalid_state_error);
}

TEST_CASE("closing the loop frees open datagram transports without callbacks") {
    ioloop::event_loop loop;
    auto [t, p] = open<recorder>(loop, endpoint::ip("127.0.0.1", 0), {});
    p->loop = &loop;
    const std::shared_ptr<ending> end = p->end;
    const ioloop::native_socket fd = t->get_extra_info("socket").fd();
    loop.close();
    CHECK_FALSE(end->lost);
    // The descriptor is closed (LeakSanitizer checks the memory).
    CHECK_FALSE(test::is_open_socket(fd));
}

TEST_CASE("debug mode reports a protocol callback that blocks the loop, naming its transport") {
    struct sleeper : ioloop::datagram_protocol {
        ioloop::event_loop* loop = nullptr;
        void datagram_received(std::string_view, const endpoint&) override {
            const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(30);
            while (std::chrono::steady_clock::now() < until) {
            }
            loop->stop();
        }
    };
    ioloop::event_loop loop;
    loop.set_debug(true);
    loop.set_slow_callback_duration(std::chrono::milliseconds(20));
    std::vector<std::string> reports;
    loop.set_exception_handler(
        [&](const ioloop::exception_context& c) { reports.push_back(c.message); });
    auto [t, p] = open<sleeper>(loop, endpoint::ip("127.0.0.1", 0), {});
    p->loop = &loop;
    const endpoint to = t->get_extra_info("sockname").address();
    const std::string name =
        "the transport of socket " + std::to_string(t->get_extra_info("socket").fd());
    t->sendto("wake up", to);
    test::run_with_watchdog(loop);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].find("executing " + name + " took") == 0);
}

// ---- datagram_options, host names, broadcast, multicast --------------------------------

namespace {

// Collects datagrams with their senders; stops the loop at `expected`.
struct collector : ioloop::datagram_protocol {
    ioloop::event_loop* loop = nullptr;
    std::vector<std::pair<std::string, endpoint>> got;
    std::size_t expected = 1;
    std::vector<std::error_code> errors;
    void datagram_received(std::string_view data, const endpoint& from) override {
        got.emplace_back(std::string(data), from);
        if (got.size() == expected && loop) loop->stop();
    }
    void error_received(std::error_code ec) override {
        errors.push_back(ec);
        if (loop) loop->stop();
    }
};

template <class P>
std::pair<ioloop::datagram_transport*, P*> open_with(ioloop::event_loop& loop, endpoint local,
                                                      endpoint remote,
                                                      ioloop::datagram_options options) {
    return loop.run_until_complete(loop.create_datagram_endpoint(
        [] { return std::make_unique<P>(); }, std::move(local), std::move(remote), options));
}

// Whether this system lets a socket join a group on the loopback interface at all; where
// it does not, the multicast test is skipped (and says so), never passed.
bool multicast_on_loopback() {
    try {
        ioloop::socket s = ioloop::socket::open(ioloop::address_family::ipv4,
                                                ioloop::socket_type::datagram);
        s.bind(endpoint::ip("0.0.0.0", 0));
        s.join_multicast_group(endpoint::ip("239.255.42.99", 0), endpoint::ip("127.0.0.1", 0));
        s.set_multicast_interface(endpoint::ip("127.0.0.1", 0));
        return true;
    } catch (const std::system_error&) {
        return false;
    }
}

}  // namespace

TEST_CASE("create_datagram_endpoint by host names: resolved, bound and connected") {
    ioloop::event_loop loop;
    auto [server, sp] = loop.run_until_complete(loop.create_datagram_endpoint(
        [] { return std::make_unique<collector>(); }, "localhost", 0, "", 0,
        {.family = ioloop::address_family::ipv4}));
    sp->loop = &loop;
    const endpoint at = server->get_extra_info("sockname").address();
    CHECK(at.host() == "127.0.0.1");
    // The remote by name too, with its port; no local: the system binds on connect.
    auto [client, cp] = loop.run_until_complete(loop.create_datagram_endpoint(
        [] { return std::make_unique<collector>(); }, "", 0, "localhost", at.port(),
        {.family = ioloop::address_family::ipv4}));
    CHECK(client->get_extra_info("peername").address() == at);
    client->sendto("by name");
    test::run_with_watchdog(loop);
    REQUIRE(sp->got.size() == 1);
    CHECK(sp->got[0].first == "by name");
    CHECK(sp->got[0].second == client->get_extra_info("sockname").address());
    // Today's overloads unchanged, and the options with endpoints.
    auto [plain, pp] = open<recorder>(loop, endpoint::ip("127.0.0.1", 0), {});
    CHECK(plain->get_extra_info("sockname").address().host() == "127.0.0.1");
    auto [unbound, up] = open_with<collector>(loop, {}, {}, {.family = ioloop::address_family::ipv4});
    CHECK_FALSE(unbound->get_extra_info("peername"));
    (void)cp;
    (void)pp;
    (void)up;
    loop.close();
}

TEST_CASE("create_datagram_endpoint: bad names and families fail with the call's name") {
    ioloop::event_loop loop;
    auto factory = [] { return std::make_unique<collector>(); };
    // Neither side nor a family.
    try {
        loop.run_until_complete(loop.create_datagram_endpoint(factory, "", 0, "", 0));
        FAIL("nothing accepted");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::invalid_argument);
        CHECK(std::string(e.what()).find("create_datagram_endpoint") != std::string::npos);
    }
    // A name that cannot exist: the resolver's error.
    try {
        loop.run_until_complete(
            loop.create_datagram_endpoint(factory, "no-such-host.invalid", 0, "", 0));
        FAIL("a missing host accepted");
    } catch (const std::system_error& e) {
        CHECK(e.code().category() == ioloop::resolver_category());
    }
    // The options' family against an endpoint of the other one.
    CHECK_THROWS_AS(open_with<collector>(loop, endpoint::ip("127.0.0.1", 0), {},
                                         {.family = ioloop::address_family::ipv6}),
                    std::system_error);
    // A local IPv4 name and a remote IPv6 one: no pair of one family.
    try {
        loop.run_until_complete(loop.create_datagram_endpoint(factory, "127.0.0.1", 0, "::1", 9));
        FAIL("two families accepted");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::address_family_not_supported);
    }
    loop.close();
}

#if defined(IOLOOP_POSIX)
TEST_CASE("reuse_port: two endpoints share one UDP port") {
    ioloop::event_loop loop;
    auto [a, ap] = open_with<collector>(loop, endpoint::ip("127.0.0.1", 0), {}, {.reuse_port = true});
    const endpoint at = a->get_extra_info("sockname").address();
    auto [b, bp] = open_with<collector>(loop, at, {}, {.reuse_port = true});
    CHECK(b->get_extra_info("sockname").address() == at);
    // Without the option the port is taken.
    try {
        open_with<collector>(loop, at, {}, {});
        FAIL("a taken port bound twice");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::address_in_use);
    }
    (void)ap;
    (void)bp;
    loop.close();
}
#else
TEST_CASE("reuse_port: Windows has no SO_REUSEPORT, and says so at the call") {
    ioloop::event_loop loop;
    try {
        open_with<collector>(loop, endpoint::ip("127.0.0.1", 0), {}, {.reuse_port = true});
        FAIL("reuse_port accepted");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::operation_not_supported);
    }
    loop.close();
}
#endif

TEST_CASE("allow_broadcast: a datagram to 127.255.255.255 arrives; without it, refused") {
    ioloop::event_loop loop;
    auto [rx, rp] = open_with<collector>(loop, endpoint::ip("0.0.0.0", 0), {}, {});
    rp->loop = &loop;
    const std::uint16_t port = rx->get_extra_info("sockname").address().port();
    auto [tx, tp] = open_with<collector>(loop, endpoint::ip("127.0.0.1", 0), {},
                                         {.allow_broadcast = true});
    tx->sendto("hello, everyone", endpoint::ip("127.255.255.255", port));
    test::run_with_watchdog(loop);
    REQUIRE(rp->got.size() == 1);
    CHECK(rp->got[0].first == "hello, everyone");
    // No SO_BROADCAST: the system refuses the send (EACCES), which reaches error_received.
    auto [quiet, qp] = open_with<collector>(loop, endpoint::ip("127.0.0.1", 0), {}, {});
    qp->loop = &loop;
    quiet->sendto("not allowed", endpoint::ip("127.255.255.255", port));
    test::run_with_watchdog(loop);
    REQUIRE(qp->errors.size() == 1);
    CHECK(qp->errors[0] == std::errc::permission_denied);
    CHECK(rp->got.size() == 1);
    (void)tp;
    loop.close();
}

TEST_CASE("multicast on loopback: a member of the group receives what is sent to it" *
          doctest::skip(!multicast_on_loopback())) {
    ioloop::event_loop loop;
    const endpoint group = endpoint::ip("239.255.42.99", 0);
    auto [rx, rp] = open_with<collector>(loop, endpoint::ip("0.0.0.0", 0), {}, {});
    rp->loop = &loop;
    rx->join_multicast_group(group, endpoint::ip("127.0.0.1", 0));
    const std::uint16_t port = rx->get_extra_info("sockname").address().port();
    auto [tx, tp] = open_with<collector>(loop, endpoint::ip("127.0.0.1", 0), {}, {});
    tx->set_multicast_interface(endpoint::ip("127.0.0.1", 0));
    tx->sendto("to the group", endpoint::ip("239.255.42.99", port));
    test::run_with_watchdog(loop);
    REQUIRE(rp->got.size() == 1);
    CHECK(rp->got[0].first == "to the group");
    CHECK(rp->got[0].second == tx->get_extra_info("sockname").address());
    // Not a group address: the system's refusal, named.
    CHECK_THROWS_AS(rx->join_multicast_group(endpoint::ip("127.0.0.1", 0)), std::system_error);
    (void)tp;
    rx->close();
    CHECK_THROWS_AS(rx->join_multicast_group(group), ioloop::invalid_state_error);
    loop.close();
}
