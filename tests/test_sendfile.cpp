// loop.sendfile(transport, file) and loop.sock_sendfile(sock, file) (asyncio's): a file's
// bytes to a TCP peer over loopback, whole or a part, through sendfile(2) where the system
// can (Linux's readiness backends) and by reads and writes elsewhere; the file's position
// after; the transport's write refused meanwhile and its earlier bytes sent first;
// fallback = false where sendfile(2) is impossible; bad arguments.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"
#include "net_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

using namespace std::chrono_literals;
using ioloop::address_family;
using ioloop::endpoint;
using ioloop::socket_type;

namespace {

// Reads a connected socket to EOF.
ioloop::coro<std::string> read_all(ioloop::socket& conn) {
    auto& loop = ioloop::get_running_loop();
    std::string all;
    for (;;) {
        std::string chunk = co_await loop.sock_recv(conn, 65536);
        if (chunk.empty()) co_return all;
        all += chunk;
    }
}


// sendfile(2) is used here: Linux, a readiness backend.
#if defined(__linux__)
constexpr bool native_sendfile = !ioloop::backend::completion_backend<ioloop::event_loop::backend_type>;
#else
constexpr bool native_sendfile = false;
#endif

void write_bytes(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    REQUIRE(out.good());
}

ioloop::socket tcp_listener() {
    ioloop::socket l = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    l.bind(endpoint::ip("127.0.0.1", 0));
    l.listen();
    return l;
}

// Accepts one connection and reads it to EOF.
ioloop::coro<std::string> accept_and_read_all(ioloop::socket& listener) {
    auto& loop = ioloop::get_running_loop();
    auto [conn, peer] = co_await loop.sock_accept(listener);
    std::string all;
    for (;;) {
        std::string chunk = co_await loop.sock_recv(conn, 65536);
        if (chunk.empty()) co_return all;
        all += chunk;
    }
}

// A connected client socket and the task reading the other end to EOF.
struct tcp_pair {
    ioloop::socket listener = tcp_listener();
    ioloop::socket client;
};

ioloop::coro<void> connect(tcp_pair& p) {
    auto& loop = ioloop::get_running_loop();
    p.client = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    co_await loop.sock_connect(p.client, p.listener.local_endpoint());
}

// A client protocol that keeps its transport and hears when it is lost.
struct client_protocol : ioloop::protocol {
    ioloop::transport* transport = nullptr;
    std::shared_ptr<bool> lost = std::make_shared<bool>(false);
    void connection_made(ioloop::transport& t) override { transport = &t; }
    void connection_lost(std::error_code) override { *lost = true; }
};

}  // namespace

TEST_CASE("sock_sendfile: 3 MiB to a TCP peer, every byte in order; the position after") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(3 << 20, 7);
    write_bytes(dir.path("big"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        tcp_pair p;
        auto reader = ioloop::create_task(accept_and_read_all(p.listener));
        co_await connect(p);
        ioloop::file f = co_await ioloop::open_file(dir.path("big"), "rb");
        // fallback = false: sendfile(2) must do it where it can; elsewhere it may not.
        if (native_sendfile) {
            CHECK(co_await loop.sock_sendfile(p.client, f, 0, -1, false) == data.size());
        } else {
            CHECK(co_await loop.sock_sendfile(p.client, f) == data.size());
        }
        CHECK(co_await f.tell() == static_cast<long long>(data.size()));
        p.client.close();
        const std::string got = co_await reader;
        CHECK(got.size() == data.size());
        CHECK(got == data);
    }());
}

TEST_CASE("sock_sendfile: an offset and a count send that part; the position is offset + count") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(200000, 8);
    write_bytes(dir.path("part"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        tcp_pair p;
        auto reader = ioloop::create_task(accept_and_read_all(p.listener));
        co_await connect(p);
        ioloop::file f = co_await ioloop::open_file(dir.path("part"), "rb");
        // A read first: its buffered bytes must not confuse the position.
        CHECK(co_await f.read(10) == data.substr(0, 10));
        CHECK(co_await loop.sock_sendfile(p.client, f, 1000, 50000) == 50000);
        CHECK(co_await f.tell() == 51000);
        // A count past the end: what there is.
        CHECK(co_await loop.sock_sendfile(p.client, f, 190000, 50000) == 10000);
        CHECK(co_await f.tell() == 200000);
        // The fallback path asked for explicitly is the same bytes.
        p.client.close();
        const std::string got = co_await reader;
        CHECK(got == data.substr(1000, 50000) + data.substr(190000));
    }());
}

TEST_CASE("cancelling sock_sendfile: cancelled_error, and the position says what went") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(16 << 20, 15);
    write_bytes(dir.path("big"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        tcp_pair p;
        auto accepting = ioloop::create_task(loop.sock_accept(p.listener));
        co_await connect(p);
        auto [conn, peer] = co_await std::move(accepting);
        ioloop::file f = co_await ioloop::open_file(dir.path("big"), "rb");
        // Nobody reads: the kernel's buffers fill and the sending waits, until cancelled.
        auto sending = ioloop::create_task(loop.sock_sendfile(p.client, f));
        co_await ioloop::sleep(0s);
        co_await ioloop::sleep(0s);
        REQUIRE_FALSE(sending.done());
        sending.cancel();
        CHECK_THROWS_AS(co_await sending, ioloop::cancelled_error);
        const long long at = co_await f.tell();
        CHECK(at < static_cast<long long>(data.size()));
        // The socket works on; what the peer gets is the file's first `at` bytes (the
        // fallback's cancelled send may have put out part of a chunk beyond them).
        p.client.close();
        const std::string got = co_await read_all(conn);
        if (native_sendfile) {
            CHECK(static_cast<long long>(got.size()) == at);
        } else {
            CHECK(static_cast<long long>(got.size()) >= at);
        }
        CHECK(got == data.substr(0, got.size()));
    }());
}

TEST_CASE("sock_sendfile on a socket that cannot send: broken_pipe, never a SIGPIPE") {
    test::scoped_temp_dir dir("sendfile");
    write_bytes(dir.path("f"), nettest::random_bytes(100000, 13));
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        tcp_pair p;
        auto reader = ioloop::create_task(accept_and_read_all(p.listener));
        co_await connect(p);
        ioloop::file f = co_await ioloop::open_file(dir.path("f"), "rb");
        // Our own side shut for sending: the system's answer is EPIPE (and SIGPIPE, which
        // would end this program at its default disposition).
        REQUIRE(test::shutdown_send(p.client.fd()));
        try {
            co_await loop.sock_sendfile(p.client, f);
            FAIL("a shut socket took the file");
        } catch (const std::system_error& e) {
#if defined(IOLOOP_POSIX)
            CHECK(e.code() == std::errc::broken_pipe);
#else
            CHECK(e.code());  // WSAESHUTDOWN
#endif
        }
        CHECK(co_await f.tell() == 0);
        CHECK(co_await reader == "");
    }());
}

TEST_CASE("sock_sendfile: bad arguments are refused at the call, naming it") {
    test::scoped_temp_dir dir("sendfile");
    write_bytes(dir.path("f"), "abc");
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        tcp_pair p;
        auto reader = ioloop::create_task(accept_and_read_all(p.listener));
        co_await connect(p);
        ioloop::file f = co_await ioloop::open_file(dir.path("f"), "rb");
        try {
            (void)loop.sock_sendfile(p.client, f, -1);
            FAIL("a negative offset accepted");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).find("loop.sock_sendfile") != std::string::npos);
        }
        CHECK_THROWS_AS((void)loop.sock_sendfile(p.client, f, 0, 0), std::invalid_argument);
        ioloop::file w = co_await ioloop::open_file(dir.path("w"), "wb");
        CHECK_THROWS_AS(co_await loop.sock_sendfile(p.client, w), ioloop::invalid_state_error);
        ioloop::file none;
        CHECK_THROWS_AS((void)loop.sock_sendfile(p.client, none), ioloop::invalid_state_error);
        p.client.close();
        CHECK(co_await reader == "");
    }());
}

TEST_CASE("loop.sendfile: earlier writes go first, the file, then later writes") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(2 << 20, 9);
    write_bytes(dir.path("big"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = tcp_listener();
        auto [t, proto] = co_await loop.create_connection(
            [] { return std::make_unique<client_protocol>(); }, "127.0.0.1",
            listener.local_endpoint().port());
        // Kept here: the protocol goes with its transport.
        const std::shared_ptr<bool> lost = proto->lost;
        auto [conn, peer] = co_await loop.sock_accept(listener);
        ioloop::file f = co_await ioloop::open_file(dir.path("big"), "rb");
        // A header larger than the kernel's buffers while nobody reads: part of it waits in
        // the transport's buffer, so the sendfile must wait for it.
        const std::string header = nettest::random_bytes(16 << 20, 10);
        t->write(header);
        REQUIRE(t->get_write_buffer_size() > 0);
        CHECK(t->is_reading());
        // Without fallback where sendfile(2) must do it; with it elsewhere.
        auto sending = ioloop::create_task(loop.sendfile(*t, f, 0, -1, !native_sendfile));
        // The sendfile has begun once it paused reading.
        while (t->is_reading()) co_await ioloop::sleep(0s);
        // While the file goes, write() is a bug in the caller: refused, and nothing lost.
        CHECK_FALSE(sending.done());
        CHECK_THROWS_AS(t->write("too early"), ioloop::invalid_state_error);
        auto reader = ioloop::create_task(read_all(conn));
        CHECK(co_await sending == data.size());
        CHECK(t->is_reading());  // resumed as it was
        CHECK(co_await f.tell() == static_cast<long long>(data.size()));
        t->write("trailer");
        t->close();
        const std::string got = co_await reader;
        CHECK(got.size() == header.size() + data.size() + 7);
        CHECK(got == header + data + "trailer");
        co_await ioloop::sleep(0s);
        CHECK(*lost);
    }());
}

TEST_CASE("loop.sendfile: bad arguments and a closing transport are refused") {
    test::scoped_temp_dir dir("sendfile");
    write_bytes(dir.path("f"), "abc");
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = tcp_listener();
        auto reader = ioloop::create_task(accept_and_read_all(listener));
        auto [t, proto] = co_await loop.create_connection(
            [] { return std::make_unique<client_protocol>(); }, "127.0.0.1",
            listener.local_endpoint().port());
        ioloop::file f = co_await ioloop::open_file(dir.path("f"), "rb");
        CHECK_THROWS_AS((void)loop.sendfile(*t, f, -5), std::invalid_argument);
        CHECK_THROWS_AS((void)loop.sendfile(*t, f, 0, 0), std::invalid_argument);
        CHECK(co_await loop.sendfile(*t, f, 1) == 2);
        t->close();
        CHECK_THROWS_AS(co_await loop.sendfile(*t, f), ioloop::invalid_state_error);
        CHECK(co_await reader == "bc");
        (void)proto;
    }());
}

TEST_CASE("loop.sendfile: the peer going away fails the call; the position is offset + sent") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(16 << 20, 11);
    write_bytes(dir.path("big"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = tcp_listener();
        auto [t, proto] = co_await loop.create_connection(
            [] { return std::make_unique<client_protocol>(); }, "127.0.0.1",
            listener.local_endpoint().port());
        auto [conn, peer] = co_await loop.sock_accept(listener);
        ioloop::file f = co_await ioloop::open_file(dir.path("big"), "rb");
        auto sending = ioloop::create_task(loop.sendfile(*t, f));
        // The peer reads a little, then resets the connection.
        std::string first = co_await loop.sock_recv(conn, 1000);
        CHECK_FALSE(first.empty());
        REQUIRE(test::set_linger_zero(conn.fd()));
        conn.close();
        CHECK_THROWS_AS(co_await sending, std::system_error);
        const long long at = co_await f.tell();
        CHECK(at > 0);
        CHECK(at < static_cast<long long>(data.size()));
        (void)proto;
    }());
}

#if defined(TEST_PIPES) && defined(IOLOOP_POSIX)
TEST_CASE("loop.sendfile on a pipe transport: not available without fallback; with it, sent") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(300000, 12);
    write_bytes(dir.path("f"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        auto [t, proto] = co_await loop.connect_write_pipe(
            [] { return std::make_unique<client_protocol>(); }, fds[1]);
        ioloop::stream_reader r = co_await ioloop::connect_read_pipe(fds[0]);
        ioloop::file f = co_await ioloop::open_file(dir.path("f"), "rb");
        CHECK_THROWS_AS(co_await loop.sendfile(*t, f, 0, -1, false),
                        ioloop::sendfile_not_available_error);
        CHECK(co_await f.tell() == 0);
        auto read_all = [](ioloop::stream_reader& from) -> ioloop::coro<std::string> {
            co_return co_await from.read();
        };
        auto reading = ioloop::create_task(read_all(r));
        CHECK(co_await loop.sendfile(*t, f) == data.size());
        t->close();
        CHECK(co_await reading == data);
        (void)proto;
    }());
}
#endif

namespace {

// A server's protocol that sends the file on each connection, then closes.
struct file_sender : ioloop::protocol {
    std::string path;
    std::shared_ptr<std::size_t> sent;
    file_sender(std::string p, std::shared_ptr<std::size_t> s) : path(std::move(p)), sent(std::move(s)) {}
    void connection_made(ioloop::transport& t) override {
        ioloop::create_task(send(t, path, sent));
    }
    static ioloop::coro<void> send(ioloop::transport& t, std::string path,
                                   std::shared_ptr<std::size_t> sent) {
        auto& loop = ioloop::get_running_loop();
        ioloop::file f = co_await ioloop::open_file(path, "rb");
        *sent = co_await loop.sendfile(t, f);
        t.close();
    }
};

}  // namespace

TEST_CASE("loop.sendfile on a server's connection: the server still counts it to the end") {
    test::scoped_temp_dir dir("sendfile");
    const std::string data = nettest::random_bytes(1 << 20, 14);
    write_bytes(dir.path("f"), data);
    ioloop::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto sent = std::make_shared<std::size_t>(0);
        auto factory = [path = dir.path("f"), sent] {
            return std::make_unique<file_sender>(path, sent);
        };
        ioloop::server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
        const std::uint16_t port = server.sockets().at(0).local_endpoint().port();
        auto [reader, writer] = co_await ioloop::open_connection("127.0.0.1", port);
        const std::string got = co_await reader.read();
        CHECK(got == data);
        CHECK(*sent == data.size());
        writer.close();
        server.close();
        // Returns once the server's connections are gone: the count survived the sendfile.
        co_await ioloop::wait_for(server.wait_closed(), 10s);
    }());
}
