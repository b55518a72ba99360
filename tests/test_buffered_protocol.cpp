// buffered_protocol (asyncio's BufferedProtocol) on every backend: the transport receives
// straight into the span get_buffer lends, wherever a protocol factory is taken
// (create_server, create_connection, their Unix forms); eof_received's answer; a protocol
// that lends nothing or throws is a fatal error reported to the loop's exception handler;
// and the stream reader, itself a buffered protocol now, holds no read buffer while idle.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using nettest::probe;
using nettest::record;

namespace {

// What a buffered protocol was told, kept beyond the protocol's life.
struct buffered_record {
    ioloop::transport* t = nullptr;  // between connection_made and connection_lost
    std::string data;
    std::vector<std::size_t> hints;  // get_buffer's size_hint, call by call
    std::size_t updates = 0;
    std::size_t largest_update = 0;
    bool update_beyond_span = false;   // buffer_updated(n) with n larger than the span lent
    bool update_without_span = false;  // buffer_updated with no get_buffer before it
    int made = 0;
    int eofs = 0;
    int lost = 0;
    std::error_code lost_code;
    bool keep_open_on_eof = false;  // what eof_received returns
    std::string reply_on_eof;       // written (then closed) when EOF comes, if kept open
    std::size_t buffer_size = 4096;
    // "empty get_buffer", "get_buffer" or "buffer_updated": that call fails.
    std::string fail_in;
};

// Receives into a buffer of its own, of record.buffer_size bytes, and keeps what came.
class collector : public ioloop::buffered_protocol {
public:
    explicit collector(buffered_record& r) : r_(r), buffer_(r.buffer_size) {}

    void connection_made(ioloop::transport& t) override {
        r_.t = &t;
        ++r_.made;
    }
    std::span<char> get_buffer(std::size_t size_hint) override {
        r_.hints.push_back(size_hint);
        if (r_.fail_in == "empty get_buffer") return {};
        if (r_.fail_in == "get_buffer") throw std::runtime_error("boom in get_buffer");
        lent_ = buffer_.size();
        return {buffer_.data(), buffer_.size()};
    }
    void buffer_updated(std::size_t n) override {
        if (lent_ == 0) r_.update_without_span = true;
        if (n > lent_) r_.update_beyond_span = true;
        lent_ = 0;
        ++r_.updates;
        if (n > r_.largest_update) r_.largest_update = n;
        if (r_.fail_in == "buffer_updated") throw std::runtime_error("boom in buffer_updated");
        r_.data.append(buffer_.data(), n);
    }
    bool eof_received() override {
        ++r_.eofs;
        if (r_.keep_open_on_eof && !r_.reply_on_eof.empty()) {
            // Written later, once eof_received has returned: only a transport kept open
            // can still send it.
            ioloop::get_running_loop().call_soon([&r = r_] {
                if (!r.t) return;  // lost meanwhile: the reply is missing, and that shows
                r.t->write(r.reply_on_eof);
                r.t->close();  // flushes the reply first
            });
        }
        return r_.keep_open_on_eof;
    }
    void connection_lost(std::error_code ec) override {
        ++r_.lost;
        r_.lost_code = ec;
        r_.t = nullptr;
    }

private:
    buffered_record& r_;
    std::vector<char> buffer_;
    std::size_t lent_ = 0;  // the size of the span lent last, until buffer_updated
};

// An exception handler that keeps what it is told.
struct reports {
    struct entry {
        std::string message;
        std::string what;
    };
    std::vector<entry> all;

    void install(ioloop::loop_base& loop) {
        loop.set_exception_handler([this](const ioloop::exception_context& ctx) {
            entry e{ctx.message, {}};
            try {
                if (ctx.exception) std::rethrow_exception(ctx.exception);
            } catch (const std::exception& x) {
                e.what = x.what();
            }
            all.push_back(e);
        });
    }
};

// Sends `payload` from a plain client to a server whose protocol is a collector made for
// `server`, then EOF, and waits until the server's side has seen it all and closed.
ioloop::coro<void> feed_collector(buffered_record& server, const std::string& payload) {
    auto& loop = ioloop::get_running_loop();
    auto server_factory = [&server] { return std::make_unique<collector>(server); };
    ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
    record c;
    auto factory = [&c] { return std::make_unique<probe>(c); };
    (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
    c.t->write(payload);
    c.t->write_eof();
    AWAIT_UNTIL(server.lost == 1 && c.lost == 1);
    CHECK_FALSE(c.lost_code);
}

}  // namespace

TEST_CASE("a buffered server fed 2 MiB through a 4 KiB buffer gets every byte, in place") {
    buffered_record server;
    server.buffer_size = 4096;
    const std::string payload = nettest::random_bytes(std::size_t(2) << 20, 7);
    nettest::run(feed_collector(server, payload));
    CHECK(server.made == 1);
    CHECK(server.data.size() == payload.size());
    CHECK(server.data == payload);
    CHECK(server.eofs == 1);
    CHECK_FALSE(server.lost_code);  // eof_received said close: a clean close
    // Each read filled at most the span lent, right after get_buffer lent it.
    CHECK_FALSE(server.update_beyond_span);
    CHECK_FALSE(server.update_without_span);
    CHECK(server.largest_update <= 4096);
    CHECK(server.updates >= payload.size() / 4096);
    // The hint is the transport's read size, every time.
    REQUIRE_FALSE(server.hints.empty());
    for (std::size_t h : server.hints) CHECK(h == 64 * 1024);
}

TEST_CASE("a buffered client through create_connection: the echo comes back byte for byte") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = [] { return std::make_unique<nettest::echo>(); };
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        buffered_record c;
        c.buffer_size = 1000;  // not a power of two: reads split anywhere
        auto factory = [&c] { return std::make_unique<collector>(c); };
        auto [t, p] = co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        static_assert(std::is_same_v<decltype(p), collector*>);
        CHECK(t == c.t);
        CHECK(p != nullptr);
        const std::string payload = nettest::random_bytes(300000, 11);
        t->write(payload);
        t->write_eof();
        AWAIT_UNTIL(c.lost == 1);
        CHECK(c.data == payload);
        CHECK(c.eofs == 1);
        CHECK_FALSE(c.lost_code);
        CHECK(c.largest_update <= 1000);
        CHECK_FALSE(c.update_beyond_span);
    }());
}

#if defined(TEST_PIPES)  // see platform.hpp
TEST_CASE("a buffered protocol reads a pipe: 1 MiB through a 4 KiB buffer, in place, then EOF") {
    for (const bool reader_is_server : test::pipe_orientations) {
        CAPTURE(reader_is_server);
        buffered_record in;
        const std::string payload = nettest::random_bytes(1 << 20, 89);
        nettest::run([&]() -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            test::pipe_pair p = test::pipe_pair::make(reader_is_server);
            auto factory = [&in] { return std::make_unique<collector>(in); };
            (void)co_await loop.connect_read_pipe(factory, p.release_reader());
            ioloop::stream_writer w = co_await ioloop::connect_write_pipe(p.release_writer());
            w.write(payload);
            w.close();  // sends it all, then closes: the reader's EOF
            co_await w.wait_closed();
            AWAIT_UNTIL(in.lost == 1);
        }());
        CHECK(in.made == 1);
        CHECK(in.data.size() == payload.size());
        CHECK(in.data == payload);
        CHECK(in.largest_update <= 4096);
        CHECK_FALSE(in.update_beyond_span);
        CHECK_FALSE(in.update_without_span);
        CHECK(in.eofs == 1);
        CHECK_FALSE(in.lost_code);
    }
}
#endif

TEST_CASE("eof_received: false closes the transport, true keeps it open for writing") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        for (const bool keep_open : {false, true}) {
            CAPTURE(keep_open);
            buffered_record server;
            server.keep_open_on_eof = keep_open;
            if (keep_open) server.reply_on_eof = "written after the peer's EOF";
            auto server_factory = [&server] { return std::make_unique<collector>(server); };
            ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
            c.t->write("request");
            c.t->write_eof();
            AWAIT_UNTIL(server.lost == 1 && c.lost == 1);
            CHECK(server.data == "request");
            CHECK(server.eofs == 1);
            CHECK_FALSE(server.lost_code);
            CHECK(c.eofs == 1);
            // Kept open, the server could still answer; closed, the client got nothing.
            CHECK(c.data == server.reply_on_eof);
            s.close();
            co_await s.wait_closed();
        }
    }());
}

TEST_CASE("get_buffer lending nothing or throwing, buffer_updated throwing: fatal, reported") {
    for (const char* fail_in : {"empty get_buffer", "get_buffer", "buffer_updated"}) {
        CAPTURE(fail_in);
        reports seen;  // outlives the loop, whose handler refers to it
        buffered_record server;
        server.fail_in = fail_in;
        nettest::run([](reports& seen, buffered_record& server) -> ioloop::coro<void> {
            auto& loop = ioloop::get_running_loop();
            seen.install(loop);
            auto server_factory = [&server] { return std::make_unique<collector>(server); };
            ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
            c.t->write("hello");
            AWAIT_UNTIL(server.lost == 1 && c.lost == 1);
        }(seen, server));
        CHECK(server.lost_code == std::errc::connection_aborted);
        CHECK(server.data.empty());
        CHECK(server.eofs == 0);
        REQUIRE(seen.all.size() == 1);
        const std::string hook =
            std::string_view(fail_in) == "buffer_updated" ? "buffer_updated" : "get_buffer";
        CHECK(seen.all[0].message.find("protocol." + hook + "()") != std::string::npos);
        if (std::string_view(fail_in) == "empty get_buffer") {
            CHECK(seen.all[0].what == "get_buffer() returned an empty buffer");
        } else {
            CHECK(seen.all[0].what == "boom in " + hook);
        }
    }
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("create_unix_server and create_unix_connection take buffered protocols too") {
    const std::string path = nettest::unix_path("buffered");
    buffered_record server;
    server.buffer_size = 512;
    buffered_record client;
    server.keep_open_on_eof = true;
    server.reply_on_eof = nettest::random_bytes(100000, 3);
    const std::string payload = nettest::random_bytes(200000, 5);
    nettest::run([&]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto server_factory = [&server] { return std::make_unique<collector>(server); };
        ioloop::server s = co_await loop.create_unix_server(server_factory, path);
        auto factory = [&client] { return std::make_unique<collector>(client); };
        auto [t, p] = co_await loop.create_unix_connection(factory, path);
        (void)p;
        t->write(payload);
        t->write_eof();
        AWAIT_UNTIL(server.lost == 1 && client.lost == 1);
    }());
    CHECK(server.data == payload);
    CHECK(server.largest_update <= 512);
    CHECK(client.data == server.reply_on_eof);
    CHECK(client.eofs == 1);
    CHECK_FALSE(client.lost_code);
    ::unlink(path.c_str());
}
#endif

// ---- the stream reader over a real transport -------------------------------------------

namespace {
// A factory of stream reader protocols that tells `made` where the last one is.
auto reader_factory(ioloop::stream_reader_protocol*& made) {
    return [&made] {
        auto owned = ioloop::stream_reader_protocol::create();
        made = owned.get();
        return owned;
    };
}
}  // namespace

TEST_CASE("the stream reader receives into its own buffer, and holds none while idle") {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = [] { return std::make_unique<nettest::echo>(); };
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        ioloop::stream_reader_protocol* p = nullptr;
        auto factory = reader_factory(p);
        auto [t, made] = co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        REQUIRE(made == p);
        ioloop::stream_reader reader(*p);
        ioloop::stream_writer writer(*p);
        CHECK(p->buffer_capacity() == 0);  // connected, nothing received: no buffer

        writer.write("one line\nand a half");
        AWAIT_UNTIL(p->buffered() == 19);
        CHECK(p->buffer_capacity() == 64 * 1024);  // one read's worth, while bytes wait
        CHECK(co_await reader.readline() == "one line\n");
        CHECK(p->buffer_capacity() == 64 * 1024);  // "and a half" is still there
        CHECK(co_await reader.read(100) == "and a half");
        CHECK(p->buffer_capacity() == 0);  // emptied: given back

        // More than a block unread grows the buffer; read, it goes again.
        const std::string big = nettest::random_bytes(200000, 9);
        writer.write(big);
        CHECK(co_await reader.readexactly(big.size()) == big);
        CHECK(p->buffer_capacity() == 0);

        // Many messages, each read as it comes: idle between them.
        for (int i = 0; i < 50; ++i) {
            const std::string message = "message " + std::to_string(i) + "\n";
            writer.write(message);
            CHECK(co_await reader.readline() == message);
            CHECK(p->buffer_capacity() == 0);
        }

        writer.write_eof();
        CHECK(co_await reader.read() == "");  // the echo server closes after our EOF
        CHECK(reader.at_eof());
        CHECK(p->buffer_capacity() == 0);
        (void)t;
    }());
}

// A sanitizer build allocates without the recycler (so a use after free is caught): there
// the case is reported as skipped, not passed.
TEST_CASE("a busy stream reader takes its block from the thread's recycler, then gives it back" *
          doctest::skip(!ioloop::detail::recycling)) {
    nettest::run([]() -> ioloop::coro<void> {
        auto& loop = ioloop::get_running_loop();
        auto echo_factory = [] { return std::make_unique<nettest::echo>(); };
        ioloop::server s = co_await loop.create_server(echo_factory, "127.0.0.1", 0);
        ioloop::stream_reader_protocol* p = nullptr;
        auto factory = reader_factory(p);
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        ioloop::stream_reader reader(*p);
        ioloop::stream_writer writer(*p);
        auto& blocks = ioloop::detail::this_thread_instance<ioloop::detail::recycler>();
        const std::string message = nettest::random_bytes(16384, 4);
        writer.write(message);  // the first one may take a new block
        CHECK(co_await reader.readexactly(message.size()) == message);
        const std::size_t kept = blocks.read_blocks_free();
        REQUIRE(kept >= 1);  // its block came back
        for (int i = 0; i < 20; ++i) {
            writer.write(message);
            AWAIT_UNTIL(p->buffered() != 0);
            CHECK(blocks.read_blocks_free() == kept - 1);  // taken from the kept ones
            CHECK(co_await reader.readexactly(message.size()) == message);
            CHECK(blocks.read_blocks_free() == kept);  // and given back
            CHECK(p->buffer_capacity() == 0);
        }
    }());
}

TEST_CASE("start_server's coroutines: 1 MiB per connection echoed through stream readers") {
    nettest::run([]() -> ioloop::coro<void> {
        auto echo = [](ioloop::stream_reader r, ioloop::stream_writer w) -> ioloop::coro<void> {
            for (;;) {
                std::string chunk = co_await r.read(65536);
                if (chunk.empty()) break;
                w.write(chunk);
                co_await w.drain();
            }
        };
        ioloop::server s = co_await ioloop::start_server(echo, "127.0.0.1", 0);
        std::vector<record> clients(4);
        std::vector<std::string> payloads;
        auto& loop = ioloop::get_running_loop();
        for (std::size_t i = 0; i < clients.size(); ++i) {
            payloads.push_back(nettest::random_bytes(std::size_t(1) << 20, 20 + std::uint32_t(i)));
            record& c = clients[i];
            auto factory = [&c] { return std::make_unique<probe>(c); };
            (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
            c.t->write(payloads[i]);
            c.t->write_eof();
        }
        for (std::size_t i = 0; i < clients.size(); ++i) {
            AWAIT_UNTIL(clients[i].lost == 1);
            CHECK(clients[i].data == payloads[i]);
            CHECK_FALSE(clients[i].lost_code);
        }
    }());
}
