// Streams (asyncio's StreamReader, StreamWriter, open_connection, start_server): every
// reader method and its edge cases against a fake transport (EOF mid-line, a separator
// split across two chunks, limit overruns and what is left after them, flow control),
// the writer's drain / close / wait_closed, then real connections over TCP and Unix
// sockets: round trips, 1 MiB echoed, drain against a peer that does not read, refusals,
// a peer that closes mid-read, cancellation without descriptor leaks, server shutdown.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "platform.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using ioloop::coro;
using ioloop::stream_reader;
using ioloop::stream_reader_protocol;
using ioloop::stream_writer;

namespace {

// A transport that records what the streams ask of it.
class fake_transport final : public ioloop::transport {
public:
    std::string written;
    bool closed = false;
    bool eof_written = false;
    bool reading = true;
    int pauses = 0;
    int resumes = 0;

    void write(std::string_view data) override {
        if (closed) throw ioloop::invalid_state_error("fake_transport::write: closed");
        written.append(data);
    }
    void write_eof() override { eof_written = true; }
    bool can_write_eof() const noexcept override { return true; }
    void close() override { closed = true; }
    void abort() override { closed = true; }
    bool is_closing() const noexcept override { return closed; }
    ioloop::extra_info get_extra_info(std::string_view name) const override {
        if (name == "socket") return ioloop::extra_info(42);
        return {};
    }
    std::size_t get_write_buffer_size() const noexcept override { return 0; }
    void set_write_buffer_limits(std::size_t, std::size_t) override {}
    ioloop::write_buffer_limits get_write_buffer_limits() const noexcept override {
        return {16384, 65536};
    }
    void pause_reading() override {
        reading = false;
        ++pauses;
    }
    void resume_reading() override {
        reading = true;
        ++resumes;
    }
    bool is_reading() const noexcept override { return reading; }
    void on_loop_close() noexcept override {}
};

// A stream pair over a fake transport; the test plays the transport's part by calling the
// protocol's hooks.
struct fake_connection {
    fake_transport transport;
    stream_reader_protocol* protocol;
    std::unique_ptr<stream_reader_protocol> owned;  // what the transport would own
    stream_reader reader;
    stream_writer writer;

    explicit fake_connection(std::size_t limit = ioloop::stream_default_limit)
        : owned(stream_reader_protocol::create(limit)) {
        protocol = owned.get();
        reader = stream_reader(*protocol);
        writer = stream_writer(*protocol);
        protocol->connection_made(transport);
    }

    void feed(std::string_view data) { protocol->data_received(data); }
    void feed_eof() { CHECK(protocol->eof_received()); }
    // connection_lost, then the transport lets go of the protocol, as a real one does.
    void lose(std::error_code ec = {}) {
        protocol->connection_lost(ec);
        owned.reset();
    }
};

// Runs a coroutine as a task on a fresh loop.
template <class F>
void run_test(F body) {
    ioloop::run(body());
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(gen() & 0xff);
    return s;
}

std::uint16_t port_of(const ioloop::server& s) { return s.sockets().at(0).local_endpoint().port(); }

#if defined(TEST_UNIX_SOCKETS)
// A Unix socket path of its own for each test run.
std::string unix_path(const char* tag) {
    return test::temp_dir() + "/ioloop-test-streams-" + std::to_string(test::process_id()) +
           "-" + tag + ".sock";
}
#endif

// Echoes every line back until EOF.
coro<void> echo_lines(stream_reader r, stream_writer w) {
    for (;;) {
        std::string line = co_await r.readline();
        if (line.empty()) break;
        w.write(line);
        co_await w.drain();
    }
}

// Echoes every chunk back until EOF, then returns: its writer goes, which closes the
// connection once the echo is sent.
coro<void> echo_bytes(stream_reader r, stream_writer w) {
    for (;;) {
        std::string chunk = co_await r.read(65536);
        if (chunk.empty()) break;
        w.write(chunk);
        co_await w.drain();
    }
}

coro<std::string> read_all(stream_reader& r) { co_return co_await r.read(); }

coro<std::string> read_n(stream_reader& r, std::ptrdiff_t n) { co_return co_await r.read(n); }

coro<std::string> read_line(stream_reader& r) { co_return co_await r.readline(); }

coro<std::string> read_exactly(stream_reader& r, std::size_t n) {
    co_return co_await r.readexactly(n);
}

coro<void> drain_of(stream_writer& w) { co_await w.drain(); }

}  // namespace

// ---- stream_reader against a fake transport ----------------------------------------------

TEST_CASE("read(n): what is buffered, up to n; read(0) is \"\"; at EOF \"\"") {
    run_test([]() -> coro<void> {
        fake_connection c;
        c.feed("hello world");
        CHECK(co_await c.reader.read(0) == "");
        CHECK(co_await c.reader.read(5) == "hello");
        CHECK(co_await c.reader.read(100) == " world");
        CHECK(c.protocol->buffered() == 0);
        // Nothing buffered: read waits for the next chunk, and gives what it brings.
        auto t = ioloop::create_task(read_n(c.reader, 100));
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed("ab");
        CHECK(co_await t == "ab");
        c.feed_eof();
        CHECK(c.reader.at_eof());
        CHECK(co_await c.reader.read(10) == "");
        CHECK(co_await c.reader.read() == "");
    });
}

TEST_CASE("an emptied read buffer holds no storage; a read of all of it takes the string") {
    run_test([]() -> coro<void> {
        fake_connection c(16);
        CHECK(c.protocol->buffer_capacity() == 0);
        c.feed("first line\nsecond line\n");
        CHECK(c.protocol->buffer_capacity() > 0);
        CHECK(co_await c.reader.readline() == "first line\n");
        CHECK(c.protocol->buffer_capacity() > 0);  // "second line\n" is still there
        CHECK(co_await c.reader.readline() == "second line\n");
        CHECK(c.protocol->buffer_capacity() == 0);
        c.feed(std::string(40, 'x') + "\n");  // over the limit: readline drops it
        CHECK_THROWS_AS((void)co_await c.reader.readline(), ioloop::limit_overrun_error);
        CHECK(c.protocol->buffer_capacity() == 0);
        c.feed("abcdef");
        CHECK(co_await c.reader.read(3) == "abc");
        CHECK(co_await c.reader.readexactly(3) == "def");
        CHECK(c.protocol->buffer_capacity() == 0);
    });
}

TEST_CASE("read(): everything until EOF, however many chunks and over the limit") {
    run_test([]() -> coro<void> {
        fake_connection c(8);  // far less than what comes: the reader must not stall
        auto t = ioloop::create_task(read_all(c.reader));
        co_await ioloop::sleep(0ms);
        for (int i = 0; i < 10; ++i) c.feed("0123456789");
        CHECK(c.transport.reading);  // never paused: the read takes everything
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed_eof();
        const std::string all = co_await t;
        CHECK(all.size() == 100);
        CHECK(all.substr(90) == "0123456789");
        CHECK(c.reader.at_eof());
    });
}

TEST_CASE("readline: lines, a line split across chunks, EOF mid-line, then \"\"") {
    run_test([]() -> coro<void> {
        fake_connection c;
        c.feed("one\ntwo\nthr");
        CHECK(co_await c.reader.readline() == "one\n");
        CHECK(co_await c.reader.readline() == "two\n");
        auto t = ioloop::create_task(read_line(c.reader));
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed("ee");
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());  // woken only once the line is complete
        c.feed("\nfou");
        CHECK(co_await t == "three\n");
        c.feed("r");
        c.feed_eof();
        CHECK_FALSE(c.reader.at_eof());
        CHECK(co_await c.reader.readline() == "four");  // EOF mid-line: what there is
        CHECK(c.reader.at_eof());
        CHECK(co_await c.reader.readline() == "");
    });
}

TEST_CASE("readuntil: a multi-byte separator split across two chunks") {
    run_test([]() -> coro<void> {
        fake_connection c;
        auto t = ioloop::create_task([](stream_reader& r) -> coro<std::string> {
            co_return co_await r.readuntil("\r\n\r\n");
        }(c.reader));
        co_await ioloop::sleep(0ms);
        c.feed("GET / HTTP/1.1\r\nHost: x\r\n\r");
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed("\nbody");
        CHECK(co_await t == "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(co_await c.reader.read(100) == "body");
        // Already buffered: no wait at all; the separator right at the start.
        c.feed("||rest");
        CHECK(co_await c.reader.readuntil("||") == "||");
        CHECK_THROWS_AS((void)c.reader.readuntil(""), std::invalid_argument);
    });
}

TEST_CASE("readuntil of several separators: the shortest result that ends in one (asyncio 3.13)") {
    run_test([]() -> coro<void> {
        fake_connection c;
        // The one that ends first wins, whatever its place in the list. (Named arrays: g++
        // 12 cannot make a braced array inside a co_await expression.)
        c.feed("a\r\nb\nc");
        const std::string_view lf_first[] = {"\n", "\r\n"};
        const std::string_view crlf_first[] = {"\r\n", "\n"};
        CHECK(co_await c.reader.readuntil(lf_first) == "a\r\n");
        CHECK(co_await c.reader.readuntil(crlf_first) == "b\n");
        // Waiting, with a separator split across two chunks.
        static constexpr std::string_view ends[] = {"END", "STOP"};
        auto t = ioloop::create_task([](stream_reader& r) -> coro<std::string> {
            co_return co_await r.readuntil(ends);
        }(c.reader));
        co_await ioloop::sleep(0ms);
        c.feed("ST");
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed("OP and END");
        CHECK(co_await t == "cSTOP");
        CHECK(co_await c.reader.readuntil(ends) == " and END");
        CHECK_THROWS_AS((void)c.reader.readuntil({"x", ""}), std::invalid_argument);
        // EOF before any: incomplete_read_error with what there was.
        c.feed("tail");
        c.feed_eof();
        try {
            (void)co_await c.reader.readuntil(lf_first);
            FAIL_CHECK("readuntil returned without a separator");
        } catch (const ioloop::incomplete_read_error& e) {
            CHECK(e.partial() == "tail");
        }
    });
}

TEST_CASE("readuntil of several separators over the limit: limit_overrun_error, the data stays") {
    run_test([]() -> coro<void> {
        fake_connection c(8);
        c.feed(std::string(12, 'x') + ";");
        const std::string_view seps[] = {"\n", ";"};
        try {
            (void)co_await c.reader.readuntil(seps);
            FAIL_CHECK("readuntil returned past the limit");
        } catch (const ioloop::limit_overrun_error& e) {
            CHECK(e.consumed() == 12);
            CHECK(std::string_view(e.what()).find("longer than the limit") != std::string_view::npos);
        }
        CHECK(c.protocol->buffered() == 13);
        CHECK(co_await c.reader.readexactly(13) == std::string(12, 'x') + ";");
    });
}

TEST_CASE("readuntil at EOF without the separator: incomplete_read_error with the partial bytes") {
    run_test([]() -> coro<void> {
        fake_connection c;
        c.feed("no separator");
        c.feed_eof();
        try {
            (void)co_await c.reader.readuntil("\n");
            FAIL_CHECK("readuntil returned without the separator");
        } catch (const ioloop::incomplete_read_error& e) {
            CHECK(e.partial() == "no separator");
            CHECK(e.expected() == ioloop::incomplete_read_error::unknown);
            CHECK(std::string_view(e.what()).find("12 bytes read") != std::string_view::npos);
        }
        CHECK(c.reader.at_eof());  // the partial bytes left the stream
    });
}

TEST_CASE("readexactly: across chunks; readexactly(0); EOF first is incomplete_read_error") {
    run_test([]() -> coro<void> {
        fake_connection c;
        CHECK(co_await c.reader.readexactly(0) == "");
        auto t = ioloop::create_task(read_exactly(c.reader, 6));
        co_await ioloop::sleep(0ms);
        c.feed("abc");
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed("defgh");
        CHECK(co_await t == "abcdef");
        c.feed_eof();
        try {
            (void)co_await c.reader.readexactly(5);
            FAIL_CHECK("readexactly returned fewer bytes than asked");
        } catch (const ioloop::incomplete_read_error& e) {
            CHECK(e.partial() == "gh");
            CHECK(e.expected() == 5);
            CHECK(std::string(e.what()) == "2 bytes read on a total of 5 expected bytes");
        }
        CHECK(c.reader.at_eof());
        CHECK(co_await c.reader.readexactly(0) == "");
    });
}

TEST_CASE("readuntil over the limit: limit_overrun_error, the data stays; the stream goes on") {
    run_test([]() -> coro<void> {
        fake_connection c(16);
        // No separator within the limit.
        c.feed(std::string(20, 'x'));
        try {
            (void)co_await c.reader.readuntil("\n");
            FAIL_CHECK("readuntil returned past the limit");
        } catch (const ioloop::limit_overrun_error& e) {
            CHECK(e.consumed() == 20);
            CHECK(std::string_view(e.what()).find("not found") != std::string_view::npos);
        }
        CHECK(c.protocol->buffered() == 20);  // readuntil keeps it
        CHECK(co_await c.reader.read(20) == std::string(20, 'x'));
        // A separator found, but farther than the limit.
        c.feed(std::string(17, 'y') + "\nshort\n");
        try {
            (void)co_await c.reader.readuntil("\n");
            FAIL_CHECK("readuntil returned past the limit");
        } catch (const ioloop::limit_overrun_error& e) {
            CHECK(e.consumed() == 17);
            CHECK(std::string_view(e.what()).find("longer than the limit") !=
                  std::string_view::npos);
        }
        CHECK(co_await c.reader.readexactly(18) == std::string(17, 'y') + "\n");
        CHECK(co_await c.reader.readuntil("\n") == "short\n");
        // Waiting for a separator that does not come within the limit: the overrun is
        // found as the data arrives.
        auto t = ioloop::create_task([](stream_reader& r) -> coro<std::size_t> {
            try {
                (void)co_await r.readuntil("\n");
            } catch (const ioloop::limit_overrun_error& e) {
                co_return e.consumed();
            }
            co_return 0;
        }(c.reader));
        co_await ioloop::sleep(0ms);
        c.feed("0123456789");
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        c.feed("0123456789");
        CHECK(co_await t == 20);
    });
}

TEST_CASE(
    "readline over the limit: limit_overrun_error, the long line dropped, the next one read") {
    run_test([]() -> coro<void> {
        fake_connection c(16);
        // The separator is there, beyond the limit: the line goes, with its "\n".
        c.feed(std::string(30, 'a') + "\nnext\n");
        CHECK_THROWS_AS((void)co_await c.reader.readline(), ioloop::limit_overrun_error);
        CHECK(co_await c.reader.readline() == "next\n");
        // No separator within the limit: what is buffered goes (asyncio clears it); the
        // rest of that line, when it comes, reads as a line of its own.
        c.feed(std::string(20, 'b'));
        CHECK_THROWS_AS((void)co_await c.reader.readline(), ioloop::limit_overrun_error);
        CHECK(c.protocol->buffered() == 0);
        c.feed("bb\nafter\n");
        CHECK(co_await c.reader.readline() == "bb\n");
        CHECK(co_await c.reader.readline() == "after\n");
    });
}

TEST_CASE("flow control: reading pauses above twice the limit, resumes at the limit") {
    run_test([]() -> coro<void> {
        fake_connection c(10);
        c.feed(std::string(20, 'a'));
        CHECK(c.transport.reading);  // 20 is not above 2 x 10
        c.feed("b");
        CHECK_FALSE(c.transport.reading);
        CHECK(c.transport.pauses == 1);
        CHECK(co_await c.reader.read(5) == "aaaaa");
        CHECK_FALSE(c.transport.reading);  // 16 left: above the limit
        CHECK(co_await c.reader.read(6) == "aaaaaa");
        CHECK(c.transport.reading);  // 10 left
        CHECK(c.transport.resumes == 1);
        // A read that needs more than the buffer holds resumes reading and keeps it on.
        c.feed(std::string(11, 'c'));
        CHECK_FALSE(c.transport.reading);
        auto t = ioloop::create_task(read_exactly(c.reader, 60));
        co_await ioloop::sleep(0ms);
        CHECK(c.transport.reading);
        c.feed(std::string(38, 'd'));
        CHECK(c.transport.reading);  // 59 bytes, but the read still needs more
        c.feed("d");                 // 60: the read can finish, and the buffer is large
        CHECK_FALSE(c.transport.reading);
        CHECK((co_await t).size() == 60);
        CHECK(c.transport.reading);  // emptied
    });
}

TEST_CASE("a connection lost to an error: reads, drain and wait_closed throw it") {
    run_test([]() -> coro<void> {
        fake_connection c;
        c.feed("unread");
        auto t = ioloop::create_task(read_exactly(c.reader, 100));
        auto closed = ioloop::create_task(
            [](stream_writer& w) -> coro<void> { co_await w.wait_closed(); }(c.writer));
        co_await ioloop::sleep(0ms);
        c.lose(std::make_error_code(std::errc::connection_reset));
        try {
            (void)co_await t;
            FAIL_CHECK("the read did not fail");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::connection_reset);
        }
        // asyncio: the error wins over buffered data.
        CHECK_THROWS_AS((void)co_await c.reader.read(1), std::system_error);
        CHECK(c.reader.exception() == std::errc::connection_reset);
        CHECK_THROWS_AS(co_await c.writer.drain(), std::system_error);
        CHECK_THROWS_AS(co_await closed, std::system_error);
        CHECK(c.writer.is_closing());
        CHECK(c.writer.transport() == nullptr);
        c.writer.write("dropped");  // lost, not closed by us: dropped, as the transport does
    });
}

TEST_CASE("one reader at a time: a read while another waits is invalid_state_error") {
    run_test([]() -> coro<void> {
        fake_connection c;
        auto t = ioloop::create_task(read_line(c.reader));
        co_await ioloop::sleep(0ms);
        CHECK_THROWS_AS((void)co_await c.reader.read(1), ioloop::invalid_state_error);
        c.feed("x\n");
        CHECK(co_await t == "x\n");
    });
}

TEST_CASE("cancelling a task blocked in a read: cancelled_error; nothing is lost") {
    run_test([]() -> coro<void> {
        fake_connection c;
        c.feed("12345");  // half of what the read wants
        auto t = ioloop::create_task(read_exactly(c.reader, 10));
        co_await ioloop::sleep(0ms);
        CHECK_FALSE(t.done());
        t.cancel();
        CHECK_THROWS_AS((void)co_await t, ioloop::cancelled_error);
        // The stream is usable, and what was buffered is still there.
        CHECK(c.protocol->buffered() == 5);
        c.feed("67890");
        CHECK(co_await c.reader.readexactly(10) == "1234567890");
        // Cancelled after being woken, before it ran: the data stays too.
        auto u = ioloop::create_task(read_line(c.reader));
        co_await ioloop::sleep(0ms);
        c.feed("line\n");  // wakes u
        u.cancel();
        CHECK_THROWS_AS((void)co_await u, ioloop::cancelled_error);
        CHECK(co_await c.reader.readline() == "line\n");
        // wait_for over a read: a timeout, then the stream reads on.
        CHECK_THROWS_AS((void)co_await ioloop::wait_for(c.reader.readline(), 5ms),
                        ioloop::timeout_error);
        c.feed("late\n");
        CHECK(co_await c.reader.readline() == "late\n");
    });
}

TEST_CASE("empty handles: invalid_state_error, not a crash") {
    run_test([]() -> coro<void> {
        stream_reader empty;
        CHECK_THROWS_AS((void)empty.read(), ioloop::invalid_state_error);
        stream_writer none;
        CHECK_THROWS_AS(none.write("x"), ioloop::invalid_state_error);
        CHECK(none.is_closing());
        co_return;
    });
}

// ---- stream_writer against a fake transport ----------------------------------------------

TEST_CASE("writer: write, writelines, write_eof, extra info; close; write after close") {
    run_test([]() -> coro<void> {
        fake_connection c;
        c.writer.write("ab");
        c.writer.writelines({"c", "d", "e"});
        std::vector<std::string> pieces{"f", "g"};
        c.writer.writelines(pieces);
        CHECK(c.transport.written == "abcdefg");
        CHECK(c.writer.can_write_eof());
        c.writer.write_eof();
        CHECK(c.transport.eof_written);
        CHECK(c.writer.get_extra_info("socket").fd() == 42);
        CHECK(c.writer.transport() == &c.transport);
        CHECK_FALSE(c.writer.is_closing());
        c.writer.close();
        CHECK(c.transport.closed);
        CHECK(c.writer.is_closing());
        CHECK_THROWS_AS(c.writer.write("late"), ioloop::invalid_state_error);
        c.writer.close();  // twice: nothing
        c.lose();
        // The transport is gone: still a clear error, not a crash.
        CHECK_THROWS_AS(c.writer.write("later"), ioloop::invalid_state_error);
        CHECK(c.writer.transport() == nullptr);
        CHECK_FALSE(c.writer.get_extra_info("peername"));
        CHECK(c.writer.peername().family() == ioloop::address_family::unspecified);
        CHECK(c.writer.sockname().family() == ioloop::address_family::unspecified);
        co_await c.writer.wait_closed();  // lost without an error: returns
    });
}

TEST_CASE("writer: the last handle destroyed without close() closes the transport") {
    run_test([]() -> coro<void> {
        fake_connection c;
        stream_writer second(*c.protocol);
        c.writer = stream_writer();  // one writer left: still open
        CHECK_FALSE(c.transport.closed);
        { stream_writer gone = std::move(second); }
        CHECK(c.transport.closed);
        co_return;
    });
}

TEST_CASE("drain: at once below the high mark; waits while paused; the loss ends it") {
    run_test([]() -> coro<void> {
        fake_connection c;
        co_await c.writer.drain();  // not paused: no wait
        c.protocol->pause_writing();
        auto d1 = ioloop::create_task(drain_of(c.writer));
        auto d2 = ioloop::create_task(drain_of(c.writer));
        auto closed = ioloop::create_task(
            [](stream_writer& w) -> coro<void> { co_await w.wait_closed(); }(c.writer));
        co_await ioloop::sleep(1ms);
        CHECK_FALSE(d1.done());
        CHECK_FALSE(d2.done());
        c.protocol->resume_writing();
        co_await d1;
        co_await d2;
        CHECK_FALSE(closed.done());  // resume_writing wakes drain() only
        // Cancelled in drain: cancelled_error, and a later drain works.
        c.protocol->pause_writing();
        auto d3 = ioloop::create_task(drain_of(c.writer));
        co_await ioloop::sleep(0ms);
        d3.cancel();
        CHECK_THROWS_AS(co_await d3, ioloop::cancelled_error);
        // Lost while a drain waits, without an error: the drain returns (asyncio), the
        // next one raises connection_reset.
        auto d4 = ioloop::create_task(drain_of(c.writer));
        co_await ioloop::sleep(0ms);
        c.lose();
        co_await d4;
        co_await closed;
        try {
            co_await c.writer.drain();
            FAIL_CHECK("drain after the loss returned");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::connection_reset);
        }
    });
}

TEST_CASE("the connection state outlives the transport while a handle holds it") {
    run_test([]() -> coro<void> {
        stream_reader r;
        {
            fake_connection c;
            c.feed("kept\n");
            c.feed_eof();
            r = std::move(c.reader);
            c.lose();
        }  // transport, protocol reference and writer gone
        CHECK(co_await r.readline() == "kept\n");
        CHECK(r.at_eof());
    });
}

// ---- real connections ---------------------------------------------------------------------

TEST_CASE("TCP: start_server on port 0, open_connection, lines both ways, addresses") {
    run_test([]() -> coro<void> {
        ioloop::server s = co_await ioloop::start_server(echo_lines, "127.0.0.1", 0);
        const std::uint16_t port = port_of(s);
        CHECK(port != 0);
        CHECK(s.is_serving());
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port);
        CHECK(w.get_extra_info("peername").address().port() == port);
        CHECK(w.get_extra_info("sockname").address().port() != port);
        CHECK(w.peername() == ioloop::endpoint::ip("127.0.0.1", port));
        CHECK(w.sockname() == w.get_extra_info("sockname").address());
        const std::byte raw[] = {std::byte{'b'}, std::byte{'y'}, std::byte{'t'}, std::byte{'e'},
                                 std::byte{'s'}, std::byte{'\n'}};
        w.write(std::span<const std::byte>(raw));
        CHECK(co_await r.readline() == "bytes\n");
        w.write("hello\n");
        w.writelines({"wor", "ld\n"});
        co_await w.drain();
        CHECK(co_await r.readline() == "hello\n");
        CHECK(co_await r.readline() == "world\n");
        CHECK(w.can_write_eof());
        w.write_eof();  // the server's loop sees EOF, returns, and its writer closes
        CHECK(co_await r.read() == "");
        CHECK(r.at_eof());
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    });
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("Unix socket: start_unix_server, open_unix_connection, round trip") {
    run_test([]() -> coro<void> {
        const std::string path = unix_path("round-trip");
        ioloop::server s = co_await ioloop::start_unix_server(echo_lines, path);
        auto [r, w] = co_await ioloop::open_unix_connection(path);
        w.write("over unix\n");
        CHECK(co_await r.readline() == "over unix\n");
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
        CHECK(::access(path.c_str(), F_OK) == -1);  // the server removed its socket file
    });
}
#endif

TEST_CASE("1 MiB echoed through a stream server comes back identical") {
    run_test([]() -> coro<void> {
        const std::string payload = random_bytes(1 << 20, 7);
        ioloop::server s = co_await ioloop::start_server(echo_bytes, "127.0.0.1", 0);
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
        // Writing and reading at once: 1 MiB is more than the socket buffers hold.
        auto sender =
            ioloop::create_task([](stream_writer& out, const std::string& data) -> coro<void> {
                for (std::size_t at = 0; at < data.size(); at += 100000) {
                    out.write(std::string_view(data).substr(at, 100000));
                    co_await out.drain();
                }
                out.write_eof();
            }(w, payload));
        const std::string back = co_await r.readexactly(payload.size());
        CHECK(back.size() == payload.size());
        CHECK(back == payload);
        CHECK(co_await r.read() == "");  // the server closed after our EOF
        co_await sender;
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    });
}

TEST_CASE("drain waits at the high-water mark against a peer that does not read") {
#if defined(IOLOOP_POSIX)  // descriptor counts: see platform.hpp
    const int fds_before = test::open_descriptor_count();
#endif
    run_test([]() -> coro<void> {
        ioloop::event go;
        auto stalling = [&go](stream_reader r, stream_writer w) -> coro<void> {
            co_await go.wait();  // reads nothing until told
            (void)co_await r.read();
            w.close();
        };
        ioloop::server s = co_await ioloop::start_server(stalling, "127.0.0.1", 0);
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
        const ioloop::write_buffer_limits limits = w.transport()->get_write_buffer_limits();
        const std::string block(16384, 'z');
        std::size_t written = 0;
        auto writer_task = ioloop::create_task(
            [](stream_writer& out, const std::string& b, std::size_t& n) -> coro<void> {
                for (;;) {
                    out.write(b);
                    n += b.size();
                    co_await out.drain();
                }
            }(w, block, written));
        // The kernel's buffers fill, then the transport's up to the high mark, and there
        // the writer task waits in drain.
        std::size_t before = 0;
        for (int i = 0; i < 200; ++i) {
            co_await ioloop::sleep(5ms);
            if (written == before && w.transport()->get_write_buffer_size() > 0) break;
            before = written;
        }
        const std::size_t buffered = w.transport()->get_write_buffer_size();
        CHECK(buffered > limits.high);
        CHECK(buffered <= limits.high + block.size());
        co_await ioloop::sleep(20ms);
        CHECK(written == before);  // still waiting: no more writes went in
        CHECK(w.transport()->get_write_buffer_size() == buffered);
        CHECK_FALSE(writer_task.done());
        // Cancel it there: the connection is still usable, and closes cleanly.
        writer_task.cancel();
        CHECK_THROWS_AS(co_await writer_task, ioloop::cancelled_error);
        w.write_eof();
        go.set();
        CHECK(co_await r.read() == "");
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    });
#if defined(IOLOOP_POSIX)
    CHECK(test::open_descriptor_count() == fds_before);  // the cancelled drain left nothing open
#endif
}

TEST_CASE("open_connection to a closed port: std::system_error, errc::connection_refused") {
#if defined(IOLOOP_POSIX)  // descriptor counts: see platform.hpp
    const int fds_before = test::open_descriptor_count();
#endif
    std::error_code code;
    run_test([&code]() -> coro<void> {
        std::uint16_t port;
        {
            ioloop::socket probe =
                ioloop::socket::open(ioloop::address_family::ipv4, ioloop::socket_type::stream);
            probe.bind(ioloop::endpoint::ip("127.0.0.1", 0));
            port = probe.local_endpoint().port();
        }
        try {
            auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port);
            FAIL_CHECK("connected to a closed port");
        } catch (const std::system_error& e) {
            code = e.code();
        }
    });
    CHECK(code == std::errc::connection_refused);
#if defined(IOLOOP_POSIX)
    CHECK(test::open_descriptor_count() == fds_before);
#endif
}

TEST_CASE("the peer closes in the middle of readexactly: incomplete_read_error, partial bytes") {
    run_test([]() -> coro<void> {
        auto short_reply = [](stream_reader r, stream_writer w) -> coro<void> {
            (void)co_await r.readline();
            w.write("abc");
            w.close();
        };
        ioloop::server s = co_await ioloop::start_server(short_reply, "127.0.0.1", 0);
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
        w.write("request\n");
        try {
            (void)co_await r.readexactly(10);
            FAIL_CHECK("readexactly returned a short read");
        } catch (const ioloop::incomplete_read_error& e) {
            CHECK(e.partial() == "abc");
            CHECK(e.expected() == 10);
        }
        CHECK(r.at_eof());
        s.close();
        co_await s.wait_closed();
    });
}

TEST_CASE("cancelling a read, a drain, an open_connection: defined states, no descriptor leak") {
#if defined(IOLOOP_POSIX)  // descriptor counts: see platform.hpp
    const int fds_before = test::open_descriptor_count();
#endif
    run_test([]() -> coro<void> {
        ioloop::server s = co_await ioloop::start_server(echo_lines, "127.0.0.1", 0);
        {
            // A read: cancelled, then the same stream reads on.
            auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
            auto t = ioloop::create_task(read_line(r));
            co_await ioloop::sleep(5ms);
            t.cancel();
            CHECK_THROWS_AS((void)co_await t, ioloop::cancelled_error);
            w.write("after cancel\n");
            CHECK(co_await r.readline() == "after cancel\n");
        }  // the writer goes: the connection closes
        {
            // open_connection while the handshake cannot finish: a listener whose accept
            // queue is full drops the SYN, so connect stays in progress.
            ioloop::socket full =
                ioloop::socket::open(ioloop::address_family::ipv4, ioloop::socket_type::stream);
            full.bind(ioloop::endpoint::ip("127.0.0.1", 0));
            full.listen(0);
            const std::uint16_t port = full.local_endpoint().port();
            std::vector<std::pair<stream_reader, stream_writer>> queued;
            for (int i = 0; i < 4; ++i) {
                auto attempt = ioloop::create_task(ioloop::open_connection("127.0.0.1", port));
                co_await ioloop::sleep(20ms);
                if (!attempt.done()) {
                    attempt.cancel();
                    CHECK_THROWS_AS((void)co_await attempt, ioloop::cancelled_error);
                    break;
                }
                queued.push_back(co_await std::move(attempt));  // went into the queue
                CHECK(i < 3);
            }
        }
        s.close();
        co_await s.wait_closed();
    });
#if defined(IOLOOP_POSIX)
    CHECK(test::open_descriptor_count() == fds_before);
#endif
}

TEST_CASE("server close + wait_closed: waits for the connections' handlers to finish") {
    run_test([]() -> coro<void> {
        std::vector<std::string> events;
        auto handler = [&events](stream_reader r, stream_writer w) -> coro<void> {
            std::string line = co_await r.readline();
            events.push_back("handler read " + line);
            w.write(line);
        };
        ioloop::server s = co_await ioloop::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
        co_await ioloop::sleep(5ms);  // the handler is waiting in readline
        s.close();
        CHECK_FALSE(s.is_serving());
        auto waiting = ioloop::create_task(
            [](ioloop::server& srv, std::vector<std::string>& ev) -> coro<void> {
                co_await srv.wait_closed();
                ev.push_back("server closed");
            }(s, events));
        co_await ioloop::sleep(5ms);
        CHECK_FALSE(waiting.done());  // the connection is still there
        w.write("bye\n");
        CHECK(co_await r.readline() == "bye\n");
        CHECK(co_await r.read() == "");  // the handler returned: its writer closed
        co_await waiting;
        CHECK(events == std::vector<std::string>{"handler read bye\n", "server closed"});
    });
}

TEST_CASE("an exception from the connection callback reaches the loop's exception handler") {
    std::vector<std::string> reports;
    ioloop::event_loop loop;
    loop.set_exception_handler([&reports](const ioloop::exception_context& ctx) {
        std::string what;
        try {
            if (ctx.exception) std::rethrow_exception(ctx.exception);
        } catch (const std::exception& e) {
            what = e.what();
        }
        reports.push_back(what);
    });
    auto body = []() -> coro<void> {
        auto failing = [](stream_reader r, stream_writer) -> coro<void> {
            (void)co_await r.readline();
            throw std::runtime_error("handler failed");
        };
        ioloop::server s = co_await ioloop::start_server(failing, "127.0.0.1", 0);
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
        w.write("go\n");
        CHECK(co_await r.read() == "");  // the failed handler's writer closed the connection
        s.close();
        co_await s.wait_closed();
    };
    loop.run_until_complete(body());
    loop.close();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0] == "handler failed");
}

TEST_CASE("closing the loop with connections open: handles outlive it safely") {
    stream_reader kept_reader;
    stream_writer kept_writer;
    {
        ioloop::event_loop loop;
        auto body = [](stream_reader& kr, stream_writer& kw) -> coro<ioloop::server> {
            ioloop::server s = co_await ioloop::start_server(echo_lines, "127.0.0.1", 0);
            auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port_of(s));
            w.write("x\n");
            CHECK(co_await r.readline() == "x\n");
            kr = std::move(r);
            kw = std::move(w);
            co_return s;
        };
        ioloop::server s = loop.run_until_complete(body(kept_reader, kept_writer));
        loop.close();  // the server's handler task is abandoned in readline
    }
    CHECK(kept_writer.is_closing());
    CHECK(kept_writer.transport() == nullptr);
    CHECK_NOTHROW(kept_writer.close());
}

// Heap bytes have no meaning under ASan (see platform.hpp): not built there.
#if !defined(TEST_ASAN)
TEST_CASE("an idle connection costs at most 1 KiB of user memory on the server side") {
    constexpr int connections = 200;
    std::size_t per_connection = 0;
    run_test([&per_connection]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        ioloop::server s = co_await ioloop::start_server(echo_lines, "127.0.0.1", 0);
        const ioloop::endpoint to = ioloop::endpoint::ip("127.0.0.1", port_of(s));
        // Raw client sockets: only the server's side is in the count.
        std::vector<ioloop::socket> clients;
        clients.reserve(connections + 1);
        // One connection first, out of the count: the loop's shared read buffer and the
        // free lists of frames are made once per thread, not per connection.
        clients.push_back(
            ioloop::socket::open(ioloop::address_family::ipv4, ioloop::socket_type::stream));
        co_await loop.sock_connect(clients.back(), to);
        co_await loop.sock_sendall(clients.back(), "ping\n");
        CHECK(co_await loop.sock_recv(clients.back(), 100) == "ping\n");
        co_await ioloop::sleep(1ms);
        const std::size_t before = test::heap_bytes_in_use();
        for (int i = 0; i < connections; ++i) {
            clients.push_back(
                ioloop::socket::open(ioloop::address_family::ipv4, ioloop::socket_type::stream));
            co_await loop.sock_connect(clients.back(), to);
            // Some traffic first: what it used must be given back once it is over.
            co_await loop.sock_sendall(clients.back(), "ping\n");
            CHECK(co_await loop.sock_recv(clients.back(), 100) == "ping\n");
        }
        co_await ioloop::sleep(20ms);  // every handler is now waiting in readline
        const std::size_t after = test::heap_bytes_in_use();
        per_connection = (after - before) / connections;
        MESSAGE("user memory per idle stream connection: " << per_connection << " bytes");
        clients.clear();
        s.close();
        co_await s.wait_closed();
    });
    CHECK(per_connection <= 1024);
}
#endif

TEST_CASE("start_server and open_connection made outside the loop run on the loop that runs them") {
    // asyncio: loop.run_until_complete(asyncio.start_server(...)) works; so does this.
    ioloop::event_loop loop;
    auto echo_once = [](ioloop::stream_reader r, ioloop::stream_writer w) -> ioloop::coro<void> {
        w.write(co_await r.readline());
        co_await w.drain();
    };
    ioloop::server srv = loop.run_until_complete(ioloop::start_server(echo_once, "127.0.0.1", 0));
    const std::uint16_t port = srv.sockets()[0].local_endpoint().port();
    auto [reader, writer] = loop.run_until_complete(ioloop::open_connection("127.0.0.1", port));
    writer.write("ping\n");
    auto read_line = [](ioloop::stream_reader& r) -> ioloop::coro<std::string> {
        co_return co_await r.readline();
    };
    CHECK(loop.run_until_complete(read_line(reader)) == "ping\n");
}

// ---- a read kept in a wait_for or a race past the expression that made it ----------------

TEST_CASE("a wait_for of a read can be kept and awaited later; a lost race leaves the data") {
    run_test([]() -> coro<void> {
        fake_connection c;
        // The read awaiter is moved into the wait_for: nothing it refers to is a temporary.
        auto w = ioloop::wait_for(c.reader.readline(), 1h);
        auto feeder = ioloop::create_task([&c]() -> coro<void> {
            co_await ioloop::sleep(0ms);
            c.feed("kept\nnext");
        });
        CHECK(co_await std::move(w) == "kept\n");
        co_await feeder;

        auto t = ioloop::timeout(1ms, c.reader.readline());
        bool timed_out = false;
        try {
            (void)co_await t;
        } catch (const ioloop::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);

        // A read that loses a race is cancelled: what was buffered stays for the next read.
        auto r = co_await ioloop::race(c.reader.readline(), ioloop::sleep(0ms));
        CHECK(r.index() == 1);
        c.feed(" line\n");
        CHECK(co_await c.reader.readline() == "next line\n");

        // Bytes as std::span<const std::byte> go out as they are.
        const std::byte raw[] = {std::byte{0}, std::byte{0xff}, std::byte{'z'}};
        c.writer.write(std::span<const std::byte>(raw));
        CHECK(c.transport.written == std::string("\0\xff" "z", 3));
    });
}
