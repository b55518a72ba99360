// Transports, protocols and servers when things go wrong, on every readiness backend:
// refused and bad addresses, a peer that resets in the middle of a large write (no
// SIGPIPE), exceptions thrown by protocol callbacks, writes after close and after an
// error, and accept when the process is out of descriptors (EMFILE).
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(IOLOOP_POSIX)
#include <signal.h>
#include <time.h>
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

// A port on 127.0.0.1 that nobody listens on (bound once, then released).
std::uint16_t closed_port() {
    ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    s.bind(endpoint::ip("127.0.0.1", 0));
    return s.local_endpoint().port();
}

// The error create_connection (TCP or, with an empty host, Unix) fails with.
ioloop::coro<std::system_error> connect_error(std::string host, std::uint16_t port,
                                              std::string unix_path) {
    auto& loop = ioloop::get_running_loop();
    record c;
    auto factory = [&c] { return std::make_unique<probe>(c); };
    try {
        if (unix_path.empty()) {
            (void)co_await loop.create_connection(factory, host, port);
        } else {
            (void)co_await loop.create_unix_connection(factory, unix_path);
        }
    } catch (const std::system_error& e) {
        CHECK(c.made == 0);
        co_return e;
    }
    FAIL_CHECK("the connection was made");
    c.t->abort();
    AWAIT_UNTIL(c.lost == 1);
    co_return std::system_error(std::error_code(), "connected");
}

// Closes with SO_LINGER 0: the kernel answers with a reset, not a FIN.
void reset_close(ioloop::socket& s) {
    REQUIRE(test::set_linger_zero(s.fd()));
    s.close();
}

bool is_reset(std::error_code ec) {
    return ec == std::errc::connection_reset || ec == std::errc::broken_pipe;
}

// An exception handler that keeps what it is told.
struct reports {
    struct entry {
        std::string message;
        std::string what;
        std::error_code code;
    };
    std::vector<entry> all;

    void install(ioloop::loop_base& loop) {
        loop.set_exception_handler([this](const ioloop::exception_context& ctx) {
            entry e{ctx.message, {}, {}};
            try {
                if (ctx.exception) std::rethrow_exception(ctx.exception);
            } catch (const std::system_error& x) {
                e.what = x.what();
                e.code = x.code();
            } catch (const std::exception& x) {
                e.what = x.what();
            }
            all.push_back(e);
        });
    }
};

}  // namespace

TEST_CASE("create_connection to a port nobody listens on: errc::connection_refused") {
    const std::uint16_t port = closed_port();
    const std::system_error e = nettest::run(connect_error("127.0.0.1", port, {}));
    CHECK(e.code() == std::errc::connection_refused);
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
}

TEST_CASE("create_connection to a host that does not resolve: the resolver's error") {
    const std::system_error e = nettest::run(connect_error("no-such-host.invalid", 80, {}));
    CHECK(e.code().category() == ioloop::resolver_category());
    CHECK(e.code().value() != 0);
    CHECK(std::string(e.what()).find("no-such-host.invalid") != std::string::npos);
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("create_unix_connection: a missing path is ENOENT, a stale socket file refuses") {
    const std::string path = nettest::unix_path("missing");
    CHECK(nettest::run(connect_error({}, 0, path)).code() == std::errc::no_such_file_or_directory);
    {
        ioloop::socket old = ioloop::socket::open(address_family::unix_domain, socket_type::stream);
        old.bind(endpoint::unix_path(path));
    }  // the file stays, nobody listens
    CHECK(nettest::run(connect_error({}, 0, path)).code() == std::errc::connection_refused);
    ::unlink(path.c_str());
}
#endif

// The host names the OS would read cut short at the NUL ("127.0.0.1" here): refused
// before any resolver or socket sees them, by every front end, while a server listens on
// the prefix's port to show that nothing reached it.
TEST_CASE("a host with an embedded NUL is errc::invalid_argument everywhere, nothing connects") {
    using namespace std::string_literals;
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records accepted;
        ioloop::server target = co_await loop.create_server(
            [&accepted] { return std::make_unique<probe>(accepted.all.emplace_back()); },
            "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(target);
        const std::string hosts[] = {"127.0.0.1\0.example"s, "localhost\0"s, "\0"s};
        for (const std::string& host : hosts) {
            CAPTURE(host.size());
            CHECK((co_await connect_error(host, port, {})).code() == std::errc::invalid_argument);

            std::error_code streams, server, streams_server;
            std::string what;
            try {
                (void)co_await ioloop::open_connection(host, port);
            } catch (const std::system_error& e) {
                streams = e.code();
                what = e.what();
            }
            try {
                (void)co_await loop.create_server(&make_echo, host, 0);
            } catch (const std::system_error& e) {
                server = e.code();
            }
            try {
                (void)co_await ioloop::start_server(
                    [](ioloop::stream_reader, ioloop::stream_writer) -> ioloop::coro<void> {
                        co_return;
                    },
                    host, 0);
            } catch (const std::system_error& e) {
                streams_server = e.code();
            }
            CHECK(streams == std::errc::invalid_argument);
            CHECK(server == std::errc::invalid_argument);
            CHECK(streams_server == std::errc::invalid_argument);
            CHECK(what.find("NUL") != std::string::npos);
        }
        // A real connection now: the listener accepts in arrival order, so a connection
        // made above would have come first, and this one would not be the only one.
        record mine;
        (void)co_await loop.create_connection([&mine] { return std::make_unique<probe>(mine); },
                                              "127.0.0.1", port);
        AWAIT_UNTIL(accepted.size() == 1 && accepted[0].made == 1);
        mine.t->close();
        AWAIT_UNTIL(mine.lost == 1);
        CHECK(accepted.size() == 1);
    }());
}

TEST_CASE("create_server on a bad address: the bind's or the resolver's error") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server first = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        std::error_code in_use;
        try {
            (void)co_await loop.create_server(echo_factory, "127.0.0.1", nettest::port_of(first));
        } catch (const std::system_error& e) {
            in_use = e.code();
        }
        CHECK(in_use == std::errc::address_in_use);  // SO_REUSEADDR does not share a listener

        std::error_code not_local;
        try {
            (void)co_await loop.create_server(echo_factory, "192.0.2.1", 0);  // TEST-NET-1
        } catch (const std::system_error& e) {
            not_local = e.code();
        }
        CHECK(not_local == std::errc::address_not_available);

        std::error_code unresolved;
        try {
            (void)co_await loop.create_server(echo_factory, "no-such-host.invalid", 0);
        } catch (const std::system_error& e) {
            unresolved = e.code();
        }
        CHECK(unresolved.category() == ioloop::resolver_category());
        CHECK(first.is_serving());  // the failures did not disturb it
    }());
}

TEST_CASE("the peer resets in the middle of a large write: connection_lost says so, no SIGPIPE") {
#if defined(IOLOOP_POSIX)  // Windows has no SIGPIPE
    // The default disposition kills the process on SIGPIPE: the test would not survive one.
    struct sigaction current {};
    REQUIRE(::sigaction(SIGPIPE, nullptr, &current) == 0);
    CHECK((current.sa_handler == SIG_DFL));
#endif
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        listener.bind(endpoint::ip("127.0.0.1", 0));
        listener.listen();
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1",
                                              listener.local_endpoint().port());
        auto [peer, peer_address] = co_await loop.sock_accept(listener);
        (void)peer_address;

        const std::string payload = nettest::random_bytes(32 << 20, 31);
        c.t->write(payload);
        REQUIRE(c.t->get_write_buffer_size() > 0);
        // The peer reads a part, then resets.
        std::size_t read = 0;
        while (read < (1 << 20)) read += (co_await loop.sock_recv(peer, 65536)).size();
        REQUIRE(c.lost == 0);
        reset_close(peer);
        AWAIT_UNTIL(c.lost == 1);
        CAPTURE(c.lost_code.message());
        CHECK(is_reset(c.lost_code));
        CHECK(c.buffer_at_lost == 0);  // the rest was dropped
    }());
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("the peer closes a Unix socket in the middle of a large write: EPIPE, no SIGPIPE") {
    // A Unix stream socket reports a closed peer to send() as EPIPE at once: without
    // MSG_NOSIGNAL the kernel would also raise SIGPIPE, which kills this process.
    const std::string path = nettest::unix_path("peer-closes");
    for (bool reading : {false, true}) {
        CAPTURE(reading);
        nettest::run([](std::string path, bool reading) -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            ::unlink(path.c_str());
            ioloop::socket listener =
                ioloop::socket::open(address_family::unix_domain, socket_type::stream);
            listener.bind(endpoint::unix_path(path));
            listener.listen();
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            (void)co_await loop.create_unix_connection(factory, path);
            auto [peer, peer_address] = co_await loop.sock_accept(listener);
            (void)peer_address;
            // Not reading: the transport learns of the peer's end from a send.
            if (!reading) c.t->pause_reading();
            c.t->write(nettest::random_bytes(32 << 20, 37));
            REQUIRE(c.t->get_write_buffer_size() > 0);
            std::size_t read = 0;
            while (read < (1 << 20)) read += (co_await loop.sock_recv(peer, 65536)).size();
            peer.close();
            AWAIT_UNTIL(c.lost == 1);
            CHECK(is_reset(c.lost_code));
            CHECK(c.buffer_at_lost == 0);
        }(path, reading));
    }
    ::unlink(path.c_str());
}
#endif

TEST_CASE("write after the connection was lost to an error: dropped, no exception") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        listener.bind(endpoint::ip("127.0.0.1", 0));
        listener.listen();
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1",
                                              listener.local_endpoint().port());
        auto [peer, peer_address] = co_await loop.sock_accept(listener);
        (void)peer_address;
        ioloop::transport& t = *c.t;
        t.pause_reading();  // the transport does not see the reset by reading
        const ioloop::native_socket fd = t.get_extra_info("socket").fd();
        reset_close(peer);
        AWAIT_UNTIL(test::reset_arrived(fd));

        CHECK_NOTHROW(t.write("after the reset"));  // the send fails: the transport closes
        CHECK(t.is_closing());
        CHECK(t.get_write_buffer_size() == 0);
        CHECK_NOTHROW(t.write("and more"));  // dropped
        CHECK_NOTHROW(t.write_eof());
        CHECK(c.lost == 0);  // on a later iteration
        AWAIT_UNTIL(c.lost == 1);
        CAPTURE(c.lost_code.message());
        CHECK(is_reset(c.lost_code));
        CHECK(c.buffer_at_lost == 0);
    }());
}

namespace {

// Writes from inside connection_lost, where the transport is still valid.
struct last_words_state {
    bool threw = false;
    int lost = 0;
    std::error_code code;
};

class last_words : public ioloop::protocol {
public:
    explicit last_words(last_words_state& s) : s_(s) {}
    void connection_made(ioloop::transport& t) override { t_ = &t; }
    void connection_lost(std::error_code ec) override {
        ++s_.lost;
        s_.code = ec;
        try {
            t_->write("too late");
        } catch (...) {
            s_.threw = true;
        }
    }

private:
    last_words_state& s_;
    ioloop::transport* t_ = nullptr;
};

}  // namespace

TEST_CASE("write from connection_lost after a reset is dropped quietly") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::socket listener = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        listener.bind(endpoint::ip("127.0.0.1", 0));
        listener.listen();
        last_words_state s;
        auto factory = [&s] { return std::make_unique<last_words>(s); };
        (void)co_await loop.create_connection(factory, "127.0.0.1",
                                              listener.local_endpoint().port());
        auto [peer, peer_address] = co_await loop.sock_accept(listener);
        (void)peer_address;
        reset_close(peer);
        AWAIT_UNTIL(s.lost == 1);
        CAPTURE(s.code.message());
#if defined(IOLOOP_POSIX)  // Wine's recv reports a reset as EOF (Windows says WSAECONNRESET)
        CHECK(is_reset(s.code));
#endif
        CHECK_FALSE(s.threw);
    }());
}

TEST_CASE("write after close(), abort() or write_eof(): invalid_state_error") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        record a;
        record b;
        record e;
        auto fa = [&a] { return std::make_unique<probe>(a); };
        auto fb = [&b] { return std::make_unique<probe>(b); };
        auto fe = [&e] { return std::make_unique<probe>(e); };
        (void)co_await loop.create_connection(fa, "127.0.0.1", nettest::port_of(s));
        (void)co_await loop.create_connection(fb, "127.0.0.1", nettest::port_of(s));
        (void)co_await loop.create_connection(fe, "127.0.0.1", nettest::port_of(s));

        a.t->close();
        CHECK_THROWS_AS(a.t->write("x"), ioloop::invalid_state_error);
        CHECK_THROWS_AS(a.t->write(""), ioloop::invalid_state_error);
        CHECK_THROWS_AS(a.t->writelines({"x", "y"}), ioloop::invalid_state_error);
        b.t->abort();
        CHECK_THROWS_AS(b.t->write("x"), ioloop::invalid_state_error);
        e.t->write_eof();
        CHECK_THROWS_AS(e.t->write("x"), ioloop::invalid_state_error);
        std::string message;
        try {
            e.t->write("x");
        } catch (const ioloop::invalid_state_error& x) {
            message = x.what();
        }
        CHECK(message.find("write_eof") != std::string::npos);
        AWAIT_UNTIL(a.lost == 1 && b.lost == 1 && e.lost == 1);  // e: the echo closes
        CHECK_FALSE(a.lost_code);
        CHECK_FALSE(b.lost_code);
        CHECK_FALSE(e.lost_code);
    }());
}

namespace {

// A server protocol that echoes, and throws from the hook its record names.
struct fragile_state {
    std::string throw_in;  // "connection_made", "data_received" or "eof_received"
    int made = 0;
    int lost = 0;
    std::error_code code;
};

class fragile : public ioloop::protocol {
public:
    explicit fragile(fragile_state& s) : s_(s) {}
    void connection_made(ioloop::transport& t) override {
        t_ = &t;
        ++s_.made;
        if (s_.throw_in == "connection_made") throw std::runtime_error("boom in connection_made");
    }
    void data_received(std::string_view d) override {
        if (d.find("boom") != std::string_view::npos && s_.throw_in == "data_received") {
            throw std::runtime_error("boom in data_received");
        }
        t_->write(d);
    }
    bool eof_received() override {
        if (s_.throw_in == "eof_received") throw std::runtime_error("boom in eof_received");
        return false;
    }
    void connection_lost(std::error_code ec) override {
        ++s_.lost;
        s_.code = ec;
    }

private:
    fragile_state& s_;
    ioloop::transport* t_ = nullptr;
};

}  // namespace

TEST_CASE("an exception from data_received: reported, that transport aborted, others go on") {
    reports seen;  // outlives the loop, whose handler refers to it
    nettest::run([](reports& seen) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        seen.install(loop);
        std::vector<std::unique_ptr<fragile_state>> states;
        auto server_factory = [&states] {
            states.push_back(std::make_unique<fragile_state>());
            states.back()->throw_in = "data_received";
            return std::make_unique<fragile>(*states.back());
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record a;
        record b;
        auto fa = [&a] { return std::make_unique<probe>(a); };
        auto fb = [&b] { return std::make_unique<probe>(b); };
        (void)co_await loop.create_connection(fa, "127.0.0.1", nettest::port_of(s));
        (void)co_await loop.create_connection(fb, "127.0.0.1", nettest::port_of(s));
        a.t->write("a1 ");
        b.t->write("b1 ");
        AWAIT_UNTIL(a.data == "a1 " && b.data == "b1 ");

        a.t->write("boom");
        AWAIT_UNTIL(a.lost == 1);  // the server aborted a's connection
        REQUIRE(states.size() == 2);
        AWAIT_UNTIL(states[0]->lost == 1);
        CHECK(states[0]->code == std::errc::connection_aborted);
        REQUIRE(seen.all.size() == 1);
        CHECK(seen.all[0].message.find("data_received") != std::string::npos);
        CHECK(seen.all[0].what == "boom in data_received");
        CHECK(a.data == "a1 ");  // nothing echoed after the failure

        b.t->write("b2");  // b's connection is not affected
        AWAIT_UNTIL(b.data == "b1 b2");
        CHECK(states[1]->lost == 0);
        b.t->close();
        AWAIT_UNTIL(b.lost == 1 && states[1]->lost == 1);
        CHECK_FALSE(states[1]->code);
        CHECK(seen.all.size() == 1);
    }(seen));
}

TEST_CASE("an exception from connection_made or eof_received: reported, transport aborted") {
    for (const char* hook : {"connection_made", "eof_received"}) {
        CAPTURE(hook);
        reports seen;
        nettest::run([](std::string hook, reports& seen) -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            seen.install(loop);
            fragile_state state;
            state.throw_in = hook;
            auto server_factory = [&state] { return std::make_unique<fragile>(state); };
            ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
            record c;
            c.keep_open_on_eof = true;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
            c.t->write_eof();
            AWAIT_UNTIL(state.lost == 1);
            CHECK(state.made == 1);
            CHECK(state.code == std::errc::connection_aborted);
            REQUIRE(seen.all.size() == 1);
            CHECK(seen.all[0].message.find(hook) != std::string::npos);
            CHECK(seen.all[0].what == "boom in " + hook);
            AWAIT_UNTIL(c.eofs == 1 || c.lost == 1);  // the client sees the end
            if (c.t) c.t->close();
            AWAIT_UNTIL(c.lost == 1);
        }(hook, seen));
    }
}

// POSIX only: it lowers RLIMIT_NOFILE, which Windows does not have.
#if defined(IOLOOP_POSIX)
namespace {

double cpu_seconds() {
    timespec ts{};
    REQUIRE(::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

TEST_CASE(
    "accept under EMFILE: existing connections go on, no spinning, one report, and "
    "the waiting clients are accepted once descriptors free up") {
    nettest::nofile_limit lowered(256);
    records srv;
    reports seen;
    nettest::run([](records& srv, reports& seen) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        seen.install(loop);
        auto server_factory = [&srv] {
            record& r = srv.all.emplace_back();
            r.echo = true;
            return std::make_unique<probe>(r);
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        const endpoint address = s.sockets()[0].local_endpoint();

        // Three connections made while descriptors are plenty.
        std::vector<std::unique_ptr<record>> clients;
        for (int i = 0; i < 3; ++i) {
            clients.push_back(std::make_unique<record>());
            record* r = clients.back().get();
            auto factory = [r] { return std::make_unique<probe>(*r); };
            (void)co_await loop.create_connection(factory, "127.0.0.1", address.port());
        }
        AWAIT_UNTIL(srv.size() == 3);

        // Five more clients, connected once the table is full: they wait in the backlog.
        std::vector<ioloop::socket> waiting;
        for (int i = 0; i < 5; ++i) {
            waiting.push_back(ioloop::socket::open(address_family::ipv4, socket_type::stream));
        }
        nettest::fd_filler filler;
        REQUIRE(filler.size() > 0);
        for (ioloop::socket& w : waiting) {
            const int rc = ::connect(w.fd(), address.native(), address.native_size());
            REQUIRE((rc == 0 || errno == EINPROGRESS));
        }

        // The stalled period: the server cannot accept; its connections keep echoing.
        const double cpu_start = cpu_seconds();
        const auto wall_start = std::chrono::steady_clock::now();
        int ticks = 0;
        while (std::chrono::steady_clock::now() - wall_start < 600ms) {
            record& c = *clients[static_cast<std::size_t>(ticks % 3)];
            const std::string before = c.data;
            c.t->write("tick");
            AWAIT_UNTIL(c.data == before + "tick");
            ++ticks;
            co_await ioloop::sleep(20ms);
        }
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
        const double cpu = cpu_seconds() - cpu_start;
        const std::size_t accepted_meanwhile = srv.size() - 3;
        const std::size_t reported = seen.all.size();

        // Descriptors free up (first: the checks below may need one, as UBSan's do).
        filler.release();
        MESSAGE("out of descriptors for " << wall << " s: " << cpu << " s of CPU, " << ticks
                                          << " echoes on the open connections");
        CHECK(cpu < 0.5 * wall);  // not spinning on the ready listener
        CHECK(ticks >= 10);
        CHECK(accepted_meanwhile == 0);
        REQUIRE(reported == 1);  // reported once, not once per retry
        CHECK(seen.all[0].code == std::errc::too_many_files_open);
        CHECK(seen.all[0].message.find("accept") != std::string::npos);

        // The waiting clients are accepted and served.
        AWAIT_UNTIL(srv.size() == 8);
        for (std::size_t i = 0; i < waiting.size(); ++i) {
            const std::string text = "waited " + std::to_string(i);
            co_await loop.sock_sendall(waiting[i], text);
            std::string back;
            while (back.size() < text.size()) back += co_await loop.sock_recv(waiting[i], 100);
            CHECK(back == text);
        }
        CHECK(seen.all.size() == 1);
        for (auto& c : clients) c->t->close();
        waiting.clear();
        s.close();
        co_await s.wait_closed();
        for (auto& c : clients) CHECK(c->lost == 1);
    }(srv, seen));
}
#endif
