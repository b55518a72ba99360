// Transports and protocols (asyncio's callback networking API) on every readiness
// backend: echo round trips over TCP (IPv4, IPv6) and Unix sockets, and each transport
// method as a user relies on it: write buffering, half-close, close (flushes) and abort
// (does not), pause_reading, the write-buffer limits and the pause/resume_writing marks,
// get_extra_info.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using ioloop::address_family;
using ioloop::endpoint;
using nettest::probe;
using nettest::record;
using nettest::records;

namespace {

std::unique_ptr<ioloop::protocol> make_echo() { return std::make_unique<nettest::echo>(); }

// Runs a few loop iterations and some milliseconds: enough for a level-triggered backend
// to report what is pending, so that "nothing happened" means something.
ioloop::coro<void> let_the_loop_run() {
    for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0s);
    co_await ioloop::sleep(20ms);
    for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0s);
}

// Sends `payload` through the connection `c` records, then write_eof, and waits for the
// echo to end with EOF and the connection to close cleanly; returns what came back.
ioloop::coro<std::string> echo_back(record& c, const std::string& payload) {
    REQUIRE(c.t != nullptr);
    c.t->write(payload);
    c.t->write_eof();
    AWAIT_UNTIL(c.lost == 1);
    CHECK(c.eofs == 1);
    CHECK_FALSE(c.lost_code);
    co_return c.data;
}

ioloop::coro<void> tcp_echo_round_trips(std::string host) {
    auto& loop = ioloop::get_running_loop();
    auto echo_factory = &make_echo;
    ioloop::server srv = co_await loop.create_server(echo_factory, host, 0);
    const std::uint16_t port = nettest::port_of(srv);
    std::uint32_t seed = 1;
    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(1000),
                             std::size_t(65536 + 7), std::size_t(1) << 20}) {
        CAPTURE(size);
        const std::string payload = nettest::random_bytes(size, seed++);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        auto [t, p] = co_await loop.create_connection(factory, host, port);
        CHECK(t == c.t);
        CHECK(p != nullptr);
        const std::string back = co_await echo_back(c, payload);
        CHECK(back.size() == payload.size());
        CHECK(back == payload);
    }
}

}  // namespace

TEST_CASE("echo over TCP/IPv4: random payloads up to 1 MiB come back byte for byte") {
    nettest::run(tcp_echo_round_trips("127.0.0.1"));
}

TEST_CASE("echo over TCP/IPv6 (::1): random payloads up to 1 MiB come back byte for byte") {
    if (nettest::have_ipv6_loopback()) {
        nettest::run(tcp_echo_round_trips("::1"));
    } else {
        nettest::run(tcp_echo_round_trips("127.0.0.1"));
    }
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("echo over a Unix socket: random payloads up to 1 MiB come back byte for byte") {
    const std::string path = nettest::unix_path("echo");
    nettest::run([](std::string path) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server srv = co_await loop.create_unix_server(echo_factory, path);
        std::uint32_t seed = 100;
        for (std::size_t size : {std::size_t(1), std::size_t(300000), std::size_t(1) << 20}) {
            CAPTURE(size);
            const std::string payload = nettest::random_bytes(size, seed++);
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            auto [t, p] = co_await loop.create_unix_connection(factory, path);
            (void)t;
            (void)p;
            CHECK((co_await echo_back(c, payload)) == payload);
        }
    }(path));
    ::unlink(path.c_str());
}
#endif

TEST_CASE("many small writes and writelines arrive in order, coalesced by the peer's reads") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));

        std::string expected;
        const int writes = 5000;
        for (int i = 0; i < writes; ++i) {
            const std::string piece = "piece-" + std::to_string(i) + ";";
            c.t->write(piece);
            expected += piece;
        }
        c.t->writelines({"one ", "two ", "three "});
        const std::vector<std::string> more{"four ", "", "five"};
        c.t->writelines(more);
        expected += "one two three four five";
        c.t->write_eof();
        AWAIT_UNTIL(srv.size() == 1 && srv[0].lost == 1);
        CHECK(srv[0].data == expected);
        CHECK(srv[0].eofs == 1);
        CHECK_FALSE(srv[0].lost_code);
        // Written in one go without the loop running: the server read them in far fewer
        // reads than there were writes.
        CHECK(srv[0].received_calls < writes / 10);
        AWAIT_UNTIL(c.lost == 1);
    }());
}

TEST_CASE("writes made while a write is pending are buffered behind it, in order") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] {
            record& r = srv.all.emplace_back();
            r.pause_reading_at_start = true;  // a peer that does not read (yet)
            return std::make_unique<probe>(r);
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);

        // More than the kernel's socket buffers hold: some of it stays in the transport.
        std::string expected = nettest::random_bytes(16 << 20, 5);
        c.t->write(expected);
        const std::size_t buffered = c.t->get_write_buffer_size();
        REQUIRE(buffered > 0);
        CHECK(buffered < expected.size());
        for (int i = 0; i < 1000; ++i) {
            const std::string piece = std::to_string(1000000 + i);  // 7 bytes
            c.t->write(piece);
            expected += piece;
        }
        CHECK(c.t->get_write_buffer_size() == buffered + 7000);

        srv[0].t->resume_reading();
        c.t->write_eof();
        AWAIT_UNTIL(srv[0].lost == 1);
        CHECK(srv[0].data.size() == expected.size());
        CHECK(srv[0].data == expected);
        AWAIT_UNTIL(c.lost == 1);
        CHECK_FALSE(c.lost_code);
    }());
}

TEST_CASE("half-close: eof_received returning true keeps the server writing after the EOF") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] {
            record& r = srv.all.emplace_back();
            r.keep_open_on_eof = true;
            return std::make_unique<probe>(r);
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));

        CHECK(c.t->can_write_eof());
        c.t->write("request");
        c.t->write_eof();
        c.t->write_eof();  // twice: nothing more
        CHECK_FALSE(c.t->is_closing());  // half-closed, not closing: it still reads
        CHECK_THROWS_AS(c.t->write("late"), ioloop::invalid_state_error);

        AWAIT_UNTIL(srv.size() == 1 && srv[0].eofs == 1);
        record& sv = srv[0];
        CHECK(sv.data == "request");
        CHECK(sv.lost == 0);
        REQUIRE(sv.t != nullptr);
        CHECK_FALSE(sv.t->is_closing());
        // The reply, after the client's EOF: a short part and a large one.
        const std::string big = nettest::random_bytes(1 << 20, 9);
        sv.t->write("reply:");
        sv.t->write(big);
        sv.t->close();
        AWAIT_UNTIL(c.lost == 1);
        CHECK(c.data == "reply:" + big);
        CHECK(c.eofs == 1);
        CHECK_FALSE(c.lost_code);
        AWAIT_UNTIL(sv.lost == 1);
        CHECK_FALSE(sv.lost_code);
    }());
}

TEST_CASE("half-close: eof_received returning false (the default) closes the transport") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        c.keep_open_on_eof = true;  // the client keeps its side: it sees the server close
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        c.t->write("bye");
        c.t->write_eof();
        AWAIT_UNTIL(srv.size() == 1 && srv[0].lost == 1);
        CHECK(srv[0].eofs == 1);
        CHECK(srv[0].data == "bye");
        CHECK_FALSE(srv[0].lost_code);
        AWAIT_UNTIL(c.eofs == 1);  // the server closed its side too
        REQUIRE(c.t != nullptr);
        CHECK(c.lost == 0);  // the client's eof_received said true: still open
        CHECK_FALSE(c.t->is_closing());
        c.t->close();
        AWAIT_UNTIL(c.lost == 1);
        CHECK_FALSE(c.lost_code);
    }());
}

TEST_CASE("close() flushes a large write buffer first; connection_lost(no error) follows") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        ioloop::transport& t = *c.t;

        const std::string payload = nettest::random_bytes(16 << 20, 11);
        CHECK_FALSE(t.is_closing());
        t.write(payload);
        REQUIRE(t.get_write_buffer_size() > 0);  // the kernel did not take it all
        t.close();
        CHECK(t.is_closing());
        CHECK_FALSE(t.is_reading());
        CHECK(c.lost == 0);  // never inside close(): on a later iteration
        t.close();           // twice: nothing more
        CHECK_THROWS_AS(t.write("more"), ioloop::invalid_state_error);
        AWAIT_UNTIL(c.lost == 1);
        CHECK_FALSE(c.lost_code);
        CHECK(c.buffer_at_lost == 0);  // everything was sent before connection_lost
        CHECK(c.destroyed == 1);       // the protocol went with its transport
        AWAIT_UNTIL(srv.size() == 1 && srv[0].lost == 1);
        CHECK(srv[0].eofs == 1);
        CHECK(srv[0].data.size() == payload.size());
        CHECK(srv[0].data == payload);
    }());
}

TEST_CASE("abort() drops the write buffer: the peer gets a prefix, connection_lost follows") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] {
            record& r = srv.all.emplace_back();
            r.pause_reading_at_start = true;
            return std::make_unique<probe>(r);
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);

        const std::string payload = nettest::random_bytes(16 << 20, 13);
        c.t->write(payload);
        REQUIRE(c.t->get_write_buffer_size() > 0);
        c.t->abort();
        CHECK(c.t->is_closing());
        CHECK(c.t->get_write_buffer_size() == 0);
        CHECK(c.lost == 0);  // on a later iteration
        CHECK_THROWS_AS(c.t->write("x"), ioloop::invalid_state_error);
        AWAIT_UNTIL(c.lost == 1);
        CHECK_FALSE(c.lost_code);

        srv[0].t->resume_reading();
        AWAIT_UNTIL(srv[0].lost == 1);
        const std::string& got = srv[0].data;
        CHECK(got.size() < payload.size());
        CHECK(payload.compare(0, got.size(), got) == 0);  // a prefix, in order
    }());
}

TEST_CASE("pause_reading holds back data the kernel has; resume_reading delivers it") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
        ioloop::transport& t = *c.t;
        const ioloop::native_socket fd = t.get_extra_info("socket").fd();

        CHECK(t.is_reading());
        t.pause_reading();
        t.pause_reading();  // idempotent
        CHECK_FALSE(t.is_reading());
        srv[0].t->write("while you were paused");
        AWAIT_UNTIL(test::unread_bytes(fd) == 21);  // it is there, in the kernel
        co_await let_the_loop_run();
        CHECK(c.received_calls == 0);
        CHECK(c.data.empty());

        t.resume_reading();
        t.resume_reading();  // idempotent
        CHECK(t.is_reading());
        AWAIT_UNTIL(c.data == "while you were paused");

        // The peer's EOF waits too.
        t.pause_reading();
        srv[0].t->close();
        AWAIT_UNTIL(test::peer_shut_down(fd));
        co_await let_the_loop_run();
        CHECK(c.eofs == 0);
        CHECK(c.lost == 0);
        t.resume_reading();
        AWAIT_UNTIL(c.lost == 1);
        CHECK(c.eofs == 1);
        CHECK_FALSE(c.lost_code);
        AWAIT_UNTIL(srv[0].lost == 1);
    }());
}

TEST_CASE("set_write_buffer_limits: asyncio's defaulting rules, low > high rejected") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = &make_echo;
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        ioloop::transport& t = *c.t;
        const auto limits = [&t] {
            const ioloop::write_buffer_limits l = t.get_write_buffer_limits();
            return std::pair<std::size_t, std::size_t>(l.low, l.high);
        };
        using limit_pair = std::pair<std::size_t, std::size_t>;

        CHECK(limits() == limit_pair(16384, 65536));  // asyncio's defaults
        t.set_write_buffer_limits(1000);               // high alone: low = high / 4
        CHECK(limits() == limit_pair(250, 1000));
        t.set_write_buffer_limits(ioloop::transport::unset, 300);  // low alone: high = 4 low
        CHECK(limits() == limit_pair(300, 1200));
        t.set_write_buffer_limits(5000, 5000);
        CHECK(limits() == limit_pair(5000, 5000));
        t.set_write_buffer_limits(0, 0);
        CHECK(limits() == limit_pair(0, 0));
        t.set_write_buffer_limits();  // neither: the defaults again
        CHECK(limits() == limit_pair(16384, 65536));

        t.set_write_buffer_limits(4000, 1000);
        CHECK_THROWS_AS(t.set_write_buffer_limits(10, 20), std::invalid_argument);
        CHECK_THROWS_AS(t.set_write_buffer_limits(0, 1), std::invalid_argument);
        CHECK(limits() == limit_pair(1000, 4000));  // a rejected call changes nothing
        CHECK(c.pauses == 0);
        CHECK(c.resumes == 0);
        t.close();
        AWAIT_UNTIL(c.lost == 1);
    }());
}

namespace {

// A protocol that sends `payload` in chunks and respects flow control: it stops writing
// at pause_writing and goes on at resume_writing; it closes once everything is written.
struct producer_state {
    ioloop::transport* t = nullptr;
    std::string payload;
    std::size_t chunk = 4096;
    std::size_t high = 65536;  // the limits it sets in connection_made
    std::size_t sent = 0;      // handed to write()
    std::size_t max_buffer = 0;
    std::vector<std::size_t> at_pause;   // the buffer size each pause_writing saw
    std::vector<std::size_t> at_resume;  // ... and each resume_writing
    bool paused = false;
    bool closed = false;
    int lost = 0;
    std::error_code lost_code;
};

class producer : public ioloop::protocol {
public:
    explicit producer(producer_state& s) : s_(s) {}
    void connection_made(ioloop::transport& t) override {
        s_.t = &t;
        t.set_write_buffer_limits(s_.high);
        pump();
    }
    void pause_writing() override {
        CHECK_FALSE(s_.paused);
        s_.paused = true;
        s_.at_pause.push_back(s_.t->get_write_buffer_size());
    }
    void resume_writing() override {
        CHECK(s_.paused);
        s_.paused = false;
        s_.at_resume.push_back(s_.t->get_write_buffer_size());
        pump();
    }
    void connection_lost(std::error_code ec) override {
        ++s_.lost;
        s_.lost_code = ec;
        s_.t = nullptr;
    }

private:
    void pump() {
        while (!s_.paused && s_.sent < s_.payload.size()) {
            const std::size_t n = std::min(s_.chunk, s_.payload.size() - s_.sent);
            s_.t->write(std::string_view(s_.payload).substr(s_.sent, n));
            s_.sent += n;
            s_.max_buffer = std::max(s_.max_buffer, s_.t->get_write_buffer_size());
        }
        if (s_.sent == s_.payload.size() && !s_.closed) {
            s_.closed = true;
            s_.t->close();  // flushes what is buffered, then connection_lost
        }
    }
    producer_state& s_;
};

// A server-side reader that takes one read, then pauses reading for a millisecond.
struct slow_reader_state {
    ioloop::transport* t = nullptr;
    std::string data;
    int reads = 0;
    int lost = 0;
};

class slow_reader : public ioloop::protocol {
public:
    explicit slow_reader(slow_reader_state& s) : s_(s) {}
    void connection_made(ioloop::transport& t) override { s_.t = &t; }
    void data_received(std::string_view d) override {
        s_.data.append(d);
        ++s_.reads;
        s_.t->pause_reading();
        slow_reader_state* s = &s_;
        ioloop::get_running_loop().call_later(1ms, [s] {
            if (s->t) s->t->resume_reading();
        });
    }
    void connection_lost(std::error_code) override {
        ++s_.lost;
        s_.t = nullptr;
    }

private:
    slow_reader_state& s_;
};

void check_marks(const producer_state& p) {
    const std::size_t low = p.high / 4;
    for (std::size_t b : p.at_pause) {
        CHECK(b > p.high);             // not before the high-water mark ...
        CHECK(b <= p.high + p.chunk);  // ... and at the first write past it
    }
    for (std::size_t b : p.at_resume) CHECK(b <= low);
    CHECK(p.max_buffer <= p.high + p.chunk);  // it never grew further
}

}  // namespace

TEST_CASE("pause_writing at the high-water mark against a peer that does not read; "
          "resume_writing at the low mark once it reads") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] {
            record& r = srv.all.emplace_back();
            r.pause_reading_at_start = true;
            return std::make_unique<probe>(r);
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        producer_state p;
        p.payload = nettest::random_bytes(16 << 20, 17);
        auto factory = [&p] { return std::make_unique<producer>(p); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));

        AWAIT_UNTIL(p.at_pause.size() == 1);
        CHECK(p.paused);
        const std::size_t sent = p.sent;
        const std::size_t buffered = p.t->get_write_buffer_size();
        CHECK(sent < p.payload.size());
        // The peer does not read: nothing resumes the producer, and the buffer does not grow.
        co_await let_the_loop_run();
        CHECK(p.at_resume.empty());
        CHECK(p.sent == sent);
        CHECK(p.t->get_write_buffer_size() <= buffered);

        AWAIT_UNTIL(srv.size() == 1);
        srv[0].t->resume_reading();
        AWAIT_UNTIL(p.lost == 1);
        CHECK_FALSE(p.lost_code);
        CHECK(p.at_resume.size() == p.at_pause.size());
        check_marks(p);
        AWAIT_UNTIL(srv[0].lost == 1);
        CHECK(srv[0].data.size() == p.payload.size());
        CHECK(srv[0].data == p.payload);
    }());
}

TEST_CASE("a slow reader: the writer's buffer stops growing at the high-water mark") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        slow_reader_state r;
        auto server_factory = [&r] { return std::make_unique<slow_reader>(r); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        producer_state p;
        p.payload = nettest::random_bytes(12 << 20, 19);
        p.high = 32768;
        p.chunk = 1000;
        auto factory = [&p] { return std::make_unique<producer>(p); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        AWAIT_UNTIL(p.lost == 1 && r.lost == 1);
        CHECK_FALSE(p.lost_code);
        CHECK(p.at_pause.size() >= 2);  // it had to wait for the reader, more than once
        CHECK(p.at_resume.size() == p.at_pause.size());
        check_marks(p);
        CHECK(r.reads > 1);
        CHECK(r.data.size() == p.payload.size());
        CHECK(r.data == p.payload);
    }());
}

TEST_CASE("set_write_buffer_limits below the buffered size pauses the protocol at once") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] {
            record& r = srv.all.emplace_back();
            r.pause_reading_at_start = true;
            return std::make_unique<probe>(r);
        };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        c.t->set_write_buffer_limits(64 << 20);
        c.t->write(nettest::random_bytes(16 << 20, 23));
        const std::size_t buffered = c.t->get_write_buffer_size();
        REQUIRE(buffered > 1024);
        CHECK(c.pauses == 0);  // under the (raised) high-water mark
        c.t->set_write_buffer_limits(1024);
        CHECK(c.pauses == 1);
        CHECK(c.paused);
        c.t->abort();
        AWAIT_UNTIL(c.lost == 1);
        CHECK(c.resumes == 0);
        srv[0].t->resume_reading();
        AWAIT_UNTIL(srv[0].lost == 1);
    }());
}

TEST_CASE("get_extra_info: peername, sockname, socket, and nothing for an unknown name") {
    const std::string path = nettest::unix_path("extra");
    nettest::run([]([[maybe_unused]] std::string path) -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", port);
        AWAIT_UNTIL(srv.size() == 1 && srv[0].made == 1);
        ioloop::transport& ct = *c.t;
        ioloop::transport& st = *srv[0].t;

        const ioloop::extra_info peer = ct.get_extra_info("peername");
        REQUIRE(peer.is_address());
        CHECK(peer.address() == endpoint::ip("127.0.0.1", port));
        const ioloop::extra_info mine = ct.get_extra_info("sockname");
        REQUIRE(mine.is_address());
        CHECK(mine.address().host() == "127.0.0.1");
        CHECK(mine.address().port() != 0);
        CHECK(mine.address() != peer.address());
        // The server's view is the mirror image.
        CHECK(st.get_extra_info("peername").address() == mine.address());
        CHECK(st.get_extra_info("sockname").address() == peer.address());
        // The typed forms.
        CHECK(ct.peername() == peer.address());
        CHECK(ct.sockname() == mine.address());
        CHECK(st.peername() == mine.address());
        // Raw bytes through the std::span<const std::byte> overload.
        const std::byte raw[] = {std::byte{0}, std::byte{'o'}, std::byte{'k'}, std::byte{0xfe}};
        ct.write(std::span<const std::byte>(raw));
        AWAIT_UNTIL(srv[0].data.size() == 4);
        CHECK(srv[0].data == std::string("\0ok\xfe", 4));

        const ioloop::extra_info sock = ct.get_extra_info("socket");
        REQUIRE(sock.is_descriptor());
        const ioloop::native_socket fd = sock.fd();
        CHECK(fd != ioloop::invalid_socket);
        CHECK(test::socket_option(fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
#if defined(IOLOOP_POSIX)  // Windows cannot read a socket's blocking mode back
        CHECK(test::nonblocking(fd));
#endif
        CHECK_FALSE(test::inheritable(fd));
        CHECK(st.get_extra_info("socket").fd() != fd);
        CHECK_THROWS_AS((void)sock.address(), ioloop::invalid_state_error);
        CHECK_THROWS_AS((void)peer.fd(), ioloop::invalid_state_error);

        const ioloop::extra_info unknown = ct.get_extra_info("compression");
        CHECK_FALSE(unknown.has_value());
        CHECK_FALSE(static_cast<bool>(unknown));
        CHECK_FALSE(ct.get_extra_info("").has_value());
        CHECK_THROWS_AS((void)unknown.address(), ioloop::invalid_state_error);

        ct.close();
#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
        // A Unix socket: the server's path; the client's own socket is unnamed (nothing).
        auto echo_factory = &make_echo;
        ioloop::server us = co_await loop.create_unix_server(echo_factory, path);
        record u;
        auto unix_factory = [&u] { return std::make_unique<probe>(u); };
        (void)co_await loop.create_unix_connection(unix_factory, path);
        const ioloop::extra_info upeer = u.t->get_extra_info("peername");
        REQUIRE(upeer.is_address());
        CHECK(upeer.address().family() == address_family::unix_domain);
        CHECK(upeer.address().path() == path);
        CHECK_FALSE(u.t->get_extra_info("sockname").has_value());
        CHECK(u.t->peername().path() == path);
        CHECK(u.t->sockname().family() == address_family::unspecified);
        CHECK(u.t->get_extra_info("socket").is_descriptor());
        u.t->close();
        AWAIT_UNTIL(u.lost == 1);
#endif
        AWAIT_UNTIL(c.lost == 1 && srv[0].lost == 1);
    }(path));
    ::unlink(path.c_str());
}

namespace {

// A datagram protocol that, told to resume, sends `extra` more datagrams and closes.
struct finisher_state {
    ioloop::datagram_transport* t = nullptr;
    int extra = 0;
    int pauses = 0;
    int resumes = 0;
    int lost = 0;
    std::error_code lost_code;
    std::vector<std::string> sent;
};

std::string numbered_datagram(std::size_t i) {
    std::string d(8000, static_cast<char>('a' + i % 26));
    d.replace(0, 8, std::to_string(100000000 + i).substr(1));
    return d;
}

class finisher : public ioloop::datagram_protocol {
public:
    explicit finisher(finisher_state& s) : s_(s) {}
    void connection_made(ioloop::datagram_transport& t) override { s_.t = &t; }
    void pause_writing() override { ++s_.pauses; }
    void resume_writing() override {
        if (++s_.resumes > 1) return;  // it may pause and resume again while closing
        for (int i = 0; i < s_.extra; ++i) {
            s_.sent.push_back(numbered_datagram(s_.sent.size()));
            s_.t->sendto(s_.sent.back());
        }
        s_.t->close();  // the last act: whatever is queued is still sent
    }
    void connection_lost(std::error_code ec) override {
        ++s_.lost;
        s_.lost_code = ec;
        s_.t = nullptr;
    }

private:
    finisher_state& s_;
};

}  // namespace

// POSIX only: it needs a receiver whose queue fills and pushes back on the sender, which a
// Unix datagram socket is (UDP on loopback drops instead); see platform.hpp.
#if defined(TEST_UNIX_SOCKETS)
TEST_CASE("a datagram protocol that writes and closes from resume_writing: everything is "
          "sent, connection_lost runs once") {
    for (int extra : {0, 64}) {
        CAPTURE(extra);
        const std::string path = nettest::unix_path("dgram-finisher");
        nettest::run([](std::string path, int extra) -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            // A Unix datagram receiver that does not read yet: its queue fills, and the
            // sender's socket pushes back (UDP on loopback does not).
            ioloop::socket receiver =
                ioloop::socket::open(address_family::unix_domain, ioloop::socket_type::datagram);
            receiver.bind(endpoint::unix_path(path));
            finisher_state s;
            s.extra = extra;
            auto factory = [&s] { return std::make_unique<finisher>(s); };
            (void)co_await loop.create_datagram_endpoint(factory, endpoint(),
                                                         endpoint::unix_path(path));
            s.t->set_write_buffer_limits(16 * 1024);
            for (std::size_t i = 0; i < 64; ++i) {
                s.sent.push_back(numbered_datagram(i));
                s.t->sendto(s.sent.back());
            }
            REQUIRE(s.pauses == 1);

            // Reads until connection_lost came and the queue is empty: what was sent before
            // connection_lost is all there.
            std::vector<std::string> received;
            char buffer[10000];
            for (;;) {
                const ::ssize_t n = ::recv(receiver.fd(), buffer, sizeof buffer, 0);
                if (n > 0) {
                    received.emplace_back(buffer, static_cast<std::size_t>(n));
                    continue;
                }
                REQUIRE(errno == EAGAIN);
                if (s.lost != 0) break;
                AWAIT_UNTIL(s.lost != 0 || test::unread_bytes(receiver.fd()) > 0);
            }
            for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0s);  // a second one?
            CHECK(s.resumes >= 1);
            CHECK(s.lost == 1);
            CHECK_FALSE(s.lost_code);
            CHECK(received.size() == s.sent.size());
            CHECK(received == s.sent);
        }(path, extra));
        ::unlink(path.c_str());
    }
}
#endif
