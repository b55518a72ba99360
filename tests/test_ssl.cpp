// TLS (<ioloop/ssl.hpp>) in one process, on every backend: ioloop's client against
// ioloop's server over streams (open_connection / start_server) and protocols
// (create_connection / create_server): 1 MiB echoed byte for byte; TLS 1.2 and 1.3 each
// forced and seen in "ssl_version"; SNI; ALPN; "peercert", "cipher", "ssl_object"; an
// untrusted, a wrong-host and an expired certificate refused with OpenSSL's reason; a
// peer that leaves without close_notify (an OpenSSL peer on a thread: the data, then EOF,
// as asyncio 3.11 shows it, see asyncio_ssl_eof.py) or resets; nothing read lost at
// shutdown; a buffered_protocol's reads; flow control both ways (drain waits; a reader
// that stops reading stops the writer); STARTTLS both ways (stream_writer::start_tls,
// loop.start_tls); the handshake and shutdown timeouts; a cancelled open_connection;
// 1,000 concurrent connections; mutual TLS; close + wait_closed on both sides; the
// ssl_context rules. The certificates come from tests/make_certs.sh (CTest's ssl_certs
// fixture), in the directory IOLOOP_TEST_CERTS names. Built on POSIX only (no mingw
// OpenSSL): the OpenSSL peer uses POSIX sockets directly.
#include <ioloop/ssl.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"
#include "platform.hpp"
#include "ssl_helpers.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(TEST_ASAN)
#include <sanitizer/lsan_interface.h>
#endif

using namespace std::chrono_literals;
using ioloop::coro;
using ioloop::stream_reader;
using ioloop::stream_writer;
using nettest::probe;
using nettest::record;
using nettest::records;
using ssltest::cert;

namespace {

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// The same, whatever the letters' case: OpenSSL's reasons changed case between versions
// ("Hostname mismatch" in 1.1, "hostname mismatch" in 3.0).
bool contains_nocase(std::string_view text, std::string_view part) {
    auto lower = [](std::string_view s) {
        std::string out(s);
        for (char& c : out) {
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        return out;
    };
    return contains(lower(text), lower(part));
}

// An extra_info's text, or "" when there is none.
std::string text_of(const ioloop::extra_info& info) {
    return info.has_value() ? std::string(info.text()) : std::string();
}

SSL* ssl_object_of(const stream_writer& w) {
    return static_cast<SSL*>(w.get_extra_info("ssl_object").handle());
}

// What a server's connection handler saw of its connection.
struct server_view {
    int served = 0;    // handlers started (after the handshake)
    int finished = 0;  // handlers that saw EOF and returned
    std::string version;
    std::string cipher;
    std::string peercert;
    std::string alpn;
    bool has_sni = false;
    std::string sni;
    bool has_socket = false;
    bool has_peername = false;
};

void look_at(const stream_writer& w, server_view& v) {
    v.version = text_of(w.get_extra_info("ssl_version"));
    v.cipher = text_of(w.get_extra_info("cipher"));
    v.peercert = text_of(w.get_extra_info("peercert"));
    v.alpn = text_of(w.get_extra_info("alpn_protocol"));
    const char* sni = SSL_get_servername(ssl_object_of(w), TLSEXT_NAMETYPE_host_name);
    v.has_sni = sni != nullptr;
    v.sni = sni ? sni : "";
    v.has_socket = w.get_extra_info("socket").is_descriptor();
    v.has_peername = w.get_extra_info("peername").is_address();
}

// A start_server handler that records what it sees, then echoes lines until EOF.
auto viewing_echo(server_view& v) {
    return [&v](stream_reader r, stream_writer w) -> coro<void> {
        look_at(w, v);
        ++v.served;
        for (;;) {
            std::string line = co_await r.readline();
            if (line.empty()) break;
            w.write(line);
            co_await w.drain();
        }
        ++v.finished;
    };
}

// Echoes every chunk back until EOF.
coro<void> echo_bytes(stream_reader r, stream_writer w) {
    for (;;) {
        std::string chunk = co_await r.read(65536);
        if (chunk.empty()) break;
        w.write(chunk);
        co_await w.drain();
    }
}

// Writes `data` in pieces, draining after each: more than the socket buffers hold.
coro<void> send_all(stream_writer& w, const std::string& data) {
    for (std::size_t at = 0; at < data.size(); at += 100000) {
        w.write(std::string_view(data).substr(at, 100000));
        co_await w.drain();
    }
}

std::unique_ptr<ioloop::protocol> make_echo() { return std::make_unique<nettest::echo>(); }

// The error of a failed TLS connection is in ssl_category, and its message carries the
// reason.
void check_ssl_failure(const std::system_error& e, std::string_view reason) {
    INFO("what(): " << std::string(e.what()));
    CHECK(e.code().category() == ioloop::ssl_category());
    CHECK(contains_nocase(e.what(), reason));
}

// A certificate file as the peer shows it: its PEM text (make_certs.sh writes nothing
// else in it).
std::string pem_of(std::string_view name) { return ssltest::read_text(cert(name)); }

// Whether two PEM texts are the same certificate, whatever the line ends after them.
bool same_pem(std::string a, std::string b) {
    while (!a.empty() && (a.back() == '\n' || a.back() == '\r')) a.pop_back();
    while (!b.empty() && (b.back() == '\n' || b.back() == '\r')) b.pop_back();
    return !a.empty() && a == b;
}

// ---- an OpenSSL peer on a thread ----------------------------------------------------------

// A blocking OpenSSL server for one connection, on a thread of its own: the peer that
// misbehaves as ioloop's own server never does. It accepts, handshakes, writes `payload`,
// then ends as told:
//   ragged: shuts the TCP connection down (FIN) with no close_notify before it, reads
//           what comes until the client closes, then closes;
//   reset:  waits for one byte from the client (it read everything), then resets the
//           connection (SO_LINGER 0);
//   silent: after the payload, neither reads nor writes until the client closes the TCP
//           connection (so it never answers a close_notify).
// Every wait is bounded (20 s), so a test that fails never leaves it hanging.
class openssl_peer {
public:
    enum class ending { ragged, reset, silent };

    openssl_peer(const ioloop::ssl_context& ctx, std::string payload, ending how)
        : ctx_(ctx.native_handle()), payload_(std::move(payload)), how_(how) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listener_ != -1);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(listener_, 1) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    openssl_peer(const openssl_peer&) = delete;
    openssl_peer& operator=(const openssl_peer&) = delete;
    ~openssl_peer() {
        if (thread_.joinable()) thread_.join();
        ::close(listener_);
    }

    std::uint16_t port() const { return port_; }
    // What went wrong on the thread ("" if nothing); read after join().
    std::string join() {
        if (thread_.joinable()) thread_.join();
        return error_;
    }

private:
    void serve() {
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, 20000) != 1) {
            error_ = "no client came";
            return;
        }
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd == -1) {
            error_ = "accept failed";
            return;
        }
        const timeval limit{20, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        SSL* ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            error_ = "handshake failed";
        } else if (SSL_write(ssl, payload_.data(), static_cast<int>(payload_.size())) !=
                   static_cast<int>(payload_.size())) {
            error_ = "write failed";
        } else if (how_ == ending::ragged) {
            ::shutdown(fd, SHUT_WR);
            drain_until_closed(fd);
        } else if (how_ == ending::reset) {
            char go = 0;
            if (SSL_read(ssl, &go, 1) != 1) error_ = "no byte from the client";
            const linger hard{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        } else {
            drain_until_closed(fd);
        }
        SSL_free(ssl);  // no SSL_shutdown: no close_notify
        ::close(fd);
    }

    // Reads raw bytes (a close_notify among them, unanswered) until the peer closes.
    static void drain_until_closed(int fd) {
        char buf[4096];
        while (::recv(fd, buf, sizeof buf, 0) > 0) {
        }
    }

    SSL_CTX* ctx_;
    std::string payload_;
    ending how_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::string error_;
    std::thread thread_;
};

}  // namespace

// ---- the context ------------------------------------------------------------------------------

TEST_CASE("ssl_context: asyncio's defaults and rules; copies share one SSL_CTX; bad files named") {
    const ioloop::ssl_context client = ioloop::create_default_context();
    CHECK(client.get_check_hostname());
    CHECK(client.get_verify_mode() == ioloop::verify_mode::required);
    CHECK(SSL_CTX_get_min_proto_version(client.native_handle()) == TLS1_2_VERSION);
    const ioloop::ssl_context server = ioloop::create_default_context(ioloop::purpose::client_auth);
    CHECK_FALSE(server.get_check_hostname());
    CHECK(server.get_verify_mode() == ioloop::verify_mode::none);
    const ioloop::ssl_context copy = client;  // NOLINT: the copy is the point
    CHECK(copy.native_handle() == client.native_handle());
    CHECK(copy.native_handle() != server.native_handle());

    // Python's ValueError: no CERT_NONE while the host name is checked. Nothing changes.
    ioloop::ssl_context ctx = ioloop::create_default_context();
    std::string refusal;
    try {
        ctx.set_verify_mode(ioloop::verify_mode::none);
    } catch (const std::invalid_argument& e) {
        refusal = e.what();
    }
    CHECK(contains(refusal, "check_hostname"));
    CHECK(ctx.get_verify_mode() == ioloop::verify_mode::required);
    CHECK(ctx.get_check_hostname());
    ctx.set_check_hostname(false);
    ctx.set_verify_mode(ioloop::verify_mode::none);
    CHECK(ctx.get_verify_mode() == ioloop::verify_mode::none);
    // And the other way (Python 3.7+): checking the host name again needs the peer
    // verified, so it turns CERT_NONE into CERT_REQUIRED.
    ctx.set_check_hostname(true);
    CHECK(ctx.get_verify_mode() == ioloop::verify_mode::required);

    // A file that is not there: std::system_error naming it.
    const std::string missing = ssltest::cert_dir() + "/no-such-file.pem";
    for (int which = 0; which < 3; ++which) {
        std::string what;
        try {
            if (which == 0) ctx.load_cert_chain(missing);
            if (which == 1) ctx.load_cert_chain(cert("server.pem"), missing);
            if (which == 2) ctx.load_verify_locations(missing);
        } catch (const std::system_error& e) {
            what = e.what();
        }
        INFO("case " << which << ": " << what);
        CHECK(contains(what, missing));
    }
    // A key that is not the certificate's; a cipher list that selects nothing.
    CHECK_THROWS_AS(ctx.load_cert_chain(cert("server.pem"), cert("client.key")), std::system_error);
    CHECK_THROWS(ctx.set_ciphers("NO-SUCH-CIPHER"));
    // After those refusals, the context still works.
    ctx.load_cert_chain(cert("server.pem"), cert("server.key"));
}

// ---- streams and protocols --------------------------------------------------------------------

TEST_CASE("streams over TLS: start_server / open_connection with ssl, 1 MiB echoed byte for byte") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        const std::string payload = nettest::random_bytes(1 << 20, 16);
        ioloop::server s =
            co_await ioloop::start_server(echo_bytes, "127.0.0.1", 0, {.ssl = server_ctx});
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", nettest::port_of(s), {.ssl = client_ctx, .server_hostname = "localhost"});
        auto sender = ioloop::create_task(send_all(w, payload));
        const std::string back = co_await r.readexactly(payload.size());
        co_await sender;
        CHECK(back.size() == payload.size());
        CHECK(back == payload);
        // TLS has no half-close.
        CHECK_FALSE(w.can_write_eof());
        CHECK_THROWS_AS(w.write_eof(), ioloop::invalid_state_error);
        w.close();  // close_notify: the server reads EOF and its handler returns
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("protocols over TLS: create_server / create_connection with ssl, 1 MiB echoed") {
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        const std::string payload = nettest::random_bytes(1 << 20, 17);
        auto server_factory = &make_echo;
        // The pointer form of the option, beside the reference form the other tests use.
        ioloop::server s =
            co_await loop.create_server(server_factory, "127.0.0.1", 0, {.ssl = &server_ctx});
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        auto [t, p] =
            co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s),
                                            {.ssl = &client_ctx, .server_hostname = "localhost"});
        CHECK(c.made == 1);  // connection_made came after the handshake
        CHECK(t == c.t);
        CHECK(text_of(t->get_extra_info("ssl_version")).substr(0, 4) == "TLSv");
        // One write far above the high-water mark. The server echoes from inside
        // data_received while the rest of a record is still to come (a record spans two
        // reads of the socket): its TLS layer must read on after the write it made there.
        t->write(payload);
        AWAIT_UNTIL(c.data.size() >= payload.size() || c.lost == 1);
        INFO("the connection was lost after " << c.data.size()
                                              << " bytes: " << c.lost_code.message());
        REQUIRE(c.lost == 0);
        CHECK(c.data.size() == payload.size());
        CHECK(c.data == payload);
        CHECK(c.pauses == c.resumes);
        CHECK_FALSE(t->can_write_eof());
        CHECK_THROWS_AS(t->write_eof(), ioloop::invalid_state_error);
        t->close();
        AWAIT_UNTIL(c.lost == 1);
        CHECK_FALSE(c.lost_code);
        CHECK(c.eofs == 0);  // we closed first
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("a buffered_protocol over TLS: 1 MiB through get_buffer / buffer_updated, then EOF") {
    // Small buffers of its own, so that records are split across them.
    class collector : public ioloop::buffered_protocol {
    public:
        explicit collector(record& r) : r_(r) {}
        void connection_made(ioloop::transport& t) override {
            r_.t = &t;
            ++r_.made;
        }
        std::span<char> get_buffer(std::size_t) override { return std::span<char>(buf_, 1000); }
        void buffer_updated(std::size_t n) override {
            r_.data.append(buf_, n);
            ++r_.received_calls;
        }
        bool eof_received() override {
            ++r_.eofs;
            return false;
        }
        void connection_lost(std::error_code ec) override {
            ++r_.lost;
            r_.lost_code = ec;
            r_.t = nullptr;
        }

    private:
        record& r_;
        char buf_[1000];
    };
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        const std::string payload = nettest::random_bytes(1 << 20, 19);
        // The server writes the payload and closes.
        auto sending = [&payload](stream_reader, stream_writer w) -> coro<void> {
            w.write(payload);
            w.close();
            co_await w.wait_closed();
        };
        ioloop::server s =
            co_await ioloop::start_server(sending, "127.0.0.1", 0, {.ssl = server_ctx});
        record c;
        auto factory = [&c] { return std::make_unique<collector>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s),
                                              {.ssl = client_ctx, .server_hostname = "localhost"});
        AWAIT_UNTIL(c.lost == 1);
        CHECK(c.made == 1);
        CHECK(c.data.size() == payload.size());
        CHECK(c.data == payload);
        CHECK(c.received_calls >= static_cast<int>(payload.size() / 1000));
        CHECK(c.eofs == 1);
        CHECK_FALSE(c.lost_code);
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("drain over TLS waits at the high-water mark against a peer that does not read") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        ioloop::event go;
        std::string received;
        auto stalling = [&go, &received](stream_reader r, stream_writer) -> coro<void> {
            co_await go.wait();  // reads nothing until told
            received = co_await r.read();
        };
        ioloop::server s =
            co_await ioloop::start_server(stalling, "127.0.0.1", 0, {.ssl = server_ctx});
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", nettest::port_of(s), {.ssl = client_ctx, .server_hostname = "localhost"});
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
        for (int i = 0; i < 400; ++i) {
            co_await ioloop::sleep(5ms);
            if (written == before && w.transport()->get_write_buffer_size() > limits.high) break;
            before = written;
        }
        CHECK(w.transport()->get_write_buffer_size() > limits.high);
        co_await ioloop::sleep(20ms);
        CHECK(written == before);  // still waiting: no more writes went in
        CHECK_FALSE(writer_task.done());
        // Cancelled there, the connection goes on: the peer reads all that was written.
        writer_task.cancel();
        CHECK_THROWS_AS(co_await writer_task, ioloop::cancelled_error);
        go.set();
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
        CHECK(received.size() == written);
    }());
}

TEST_CASE("a reader that stops reading over TLS stops the writer; then every byte arrives") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        const std::string payload = nettest::random_bytes(16 << 20, 18);
        std::size_t written = 0;
        bool done = false;
        auto writing = [&](stream_reader, stream_writer w) -> coro<void> {
            for (std::size_t at = 0; at < payload.size(); at += 65536) {
                w.write(std::string_view(payload).substr(at, 65536));
                written = at + 65536;
                co_await w.drain();
            }
            done = true;
        };
        ioloop::server s =
            co_await ioloop::start_server(writing, "127.0.0.1", 0, {.ssl = server_ctx});
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", nettest::port_of(s),
            {.limit = 16384, .ssl = client_ctx, .server_hostname = "localhost"});
        // Nothing is read: the reader's buffer fills to its limit, the layer stops reading
        // the socket, the kernel's buffers fill (a receive window grows only as the
        // program reads; Linux's send buffer stops at 4 MiB), and the server's drain
        // waits, far from the end.
        // A stop cannot be an event: it is taken as no progress for 50 ms on end (ten
        // polls; one quiet poll could be a loaded machine's scheduling, not a stop).
        std::size_t before = 0;
        int quiet = 0;
        for (int i = 0; i < 800 && quiet < 10; ++i) {
            co_await ioloop::sleep(5ms);
            quiet = written == before && written > 0 ? quiet + 1 : 0;
            before = written;
        }
        co_await ioloop::sleep(20ms);
        CHECK(written == before);  // stopped
        CHECK(written < payload.size() / 2);
        CHECK_FALSE(done);
        // Reading again, every byte comes, in order.
        const std::string got = co_await r.readexactly(payload.size());
        CHECK(got == payload);
        AWAIT_UNTIL([&] { return done; }());  // a call: clang sees no loop on a bare bool
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("get_extra_info over TLS: peercert, cipher, ssl_version, ssl_object, and the socket's") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        const std::uint16_t port = nettest::port_of(s);
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
        w.write("ping\n");
        CHECK(co_await r.readline() == "ping\n");

        // The client sees the server's certificate, as the file holds it.
        const ioloop::extra_info peercert = w.get_extra_info("peercert");
        REQUIRE(peercert.has_value());
        CHECK(contains(peercert.text(), "-----BEGIN CERTIFICATE-----"));
        CHECK(same_pem(std::string(peercert.text()), pem_of("server.pem")));
        // The cipher and version are OpenSSL's for this connection.
        SSL* ssl = ssl_object_of(w);
        REQUIRE(ssl != nullptr);
        CHECK(text_of(w.get_extra_info("cipher")) ==
              SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
        CHECK(text_of(w.get_extra_info("ssl_version")) == SSL_get_version(ssl));
        CHECK_FALSE(w.get_extra_info("alpn_protocol").has_value());  // nobody offered any
        // What the plain transport has is there too.
        CHECK(w.get_extra_info("peername").address() == ioloop::endpoint::ip("127.0.0.1", port));
        CHECK(w.get_extra_info("sockname").is_address());
        CHECK(w.get_extra_info("socket").is_descriptor());
        CHECK_FALSE(w.get_extra_info("no such name").has_value());

        // The server: the same version and cipher; no client certificate, so no peercert.
        AWAIT_UNTIL(seen.served == 1);
        CHECK(seen.version == text_of(w.get_extra_info("ssl_version")));
        CHECK(seen.cipher == text_of(w.get_extra_info("cipher")));
        CHECK(seen.peercert.empty());
        CHECK(seen.has_socket);
        CHECK(seen.has_peername);
        w.close();
        co_await w.wait_closed();
        AWAIT_UNTIL(seen.finished == 1);
        s.close();
        co_await s.wait_closed();
    }());
}

// ---- versions, SNI, ALPN ----------------------------------------------------------------------

TEST_CASE("TLS 1.2 and TLS 1.3, each forced by the client or by the server, as ssl_version says") {
    struct row {
        ioloop::tls_version version;
        const char* name;
        bool client_forces;
    };
    const row rows[] = {
        {ioloop::tls_version::tls1_2, "TLSv1.2", true},
        {ioloop::tls_version::tls1_2, "TLSv1.2", false},
        {ioloop::tls_version::tls1_3, "TLSv1.3", true},
        {ioloop::tls_version::tls1_3, "TLSv1.3", false},
    };
    for (const row& x : rows) {
        INFO(std::string(x.name) << " forced by the "
                                 << std::string(x.client_forces ? "client" : "server"));
        nettest::run([](const row& x) -> coro<void> {
            ioloop::ssl_context server_ctx = ssltest::server_context();
            ioloop::ssl_context client_ctx = ssltest::client_context();
            ioloop::ssl_context& forcing = x.client_forces ? client_ctx : server_ctx;
            forcing.set_minimum_version(x.version);
            forcing.set_maximum_version(x.version);
            server_view seen;
            auto handler = viewing_echo(seen);
            ioloop::server s =
                co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
            auto [r, w] = co_await ioloop::open_connection(
                "127.0.0.1", nettest::port_of(s),
                {.ssl = client_ctx, .server_hostname = "localhost"});
            w.write("v\n");
            CHECK(co_await r.readline() == "v\n");
            CHECK(text_of(w.get_extra_info("ssl_version")) == x.name);
            AWAIT_UNTIL(seen.served == 1);
            CHECK(seen.version == x.name);
            // TLS 1.3's suites are named TLS_*; TLS 1.2's cipher here is ECDHE-ECDSA-*
            // (the certificates' keys are EC).
            const std::string cipher = text_of(w.get_extra_info("cipher"));
            if (x.version == ioloop::tls_version::tls1_3) {
                CHECK(cipher.substr(0, 4) == "TLS_");
            } else {
                CHECK(cipher.substr(0, 12) == "ECDHE-ECDSA-");
            }
            w.close();
            co_await w.wait_closed();
            s.close();
            co_await s.wait_closed();
        }(x));
    }
}

TEST_CASE("no version in common: the handshake fails in ssl_category, naming the protocol") {
    nettest::run([]() -> coro<void> {
        ioloop::ssl_context server_ctx = ssltest::server_context();
        server_ctx.set_maximum_version(ioloop::tls_version::tls1_2);
        ioloop::ssl_context client_ctx = ssltest::client_context();
        client_ctx.set_minimum_version(ioloop::tls_version::tls1_3);
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        const std::system_error e = co_await nettest::failure_of(
            [&] {
                return ioloop::open_connection("127.0.0.1", nettest::port_of(s),
                                               {.ssl = client_ctx, .server_hostname = "localhost"});
            },
            "open_connection with no version in common");
        // The server refuses with a protocol_version alert; OpenSSL's client says so.
        check_ssl_failure(e, "protocol version");
        CHECK(seen.served == 0);
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("SNI: the server sees server_hostname, or the host; none for an IP address") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        const std::uint16_t port = nettest::port_of(s);
        {
            // server_hostname names the server: sent, and checked against the certificate.
            auto [r, w] = co_await ioloop::open_connection(
                "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
            AWAIT_UNTIL(seen.served == 1);
            CHECK(seen.has_sni);
            CHECK(seen.sni == "localhost");
            CHECK(SSL_get_servername(ssl_object_of(w), TLSEXT_NAMETYPE_host_name) ==
                  std::string("localhost"));
            w.close();
            co_await w.wait_closed();
        }
        {
            // An IP address as the host: no SNI (RFC 6066 has no IP addresses in it, and
            // Python sends none); the certificate is checked against its IP address.
            auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port, {.ssl = client_ctx});
            AWAIT_UNTIL(seen.served == 2);
            CHECK_FALSE(seen.has_sni);
            w.write("by address\n");
            CHECK(co_await r.readline() == "by address\n");
            w.close();
            co_await w.wait_closed();
        }
        {
            // A name as the host: it is the server_hostname. (localhost may resolve to ::1
            // first, where nothing listens: the next address is tried.)
            auto [r, w] = co_await ioloop::open_connection("localhost", port, {.ssl = client_ctx});
            AWAIT_UNTIL(seen.served == 3);
            CHECK(seen.sni == "localhost");
            w.close();
            co_await w.wait_closed();
        }
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("ALPN: the client offers h2 and http/1.1, the server http/1.1: both see http/1.1") {
    nettest::run([]() -> coro<void> {
        ioloop::ssl_context server_ctx = ssltest::server_context();
        server_ctx.set_alpn_protocols({"http/1.1"});
        ioloop::ssl_context client_ctx = ssltest::client_context();
        client_ctx.set_alpn_protocols({"h2", "http/1.1"});
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", nettest::port_of(s), {.ssl = client_ctx, .server_hostname = "localhost"});
        CHECK(text_of(w.get_extra_info("alpn_protocol")) == "http/1.1");
        AWAIT_UNTIL(seen.served == 1);
        CHECK(seen.alpn == "http/1.1");
        w.close();
        co_await w.wait_closed();

        // The vector form; a server that takes none of them: no protocol (asyncio: None).
        ioloop::ssl_context plain_server_ctx = ssltest::server_context();
        ioloop::ssl_context h2_client_ctx = ssltest::client_context();
        const std::vector<std::string> only_h2{"h2"};
        h2_client_ctx.set_alpn_protocols(only_h2);
        ioloop::server s2 =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = plain_server_ctx});
        auto [r2, w2] = co_await ioloop::open_connection(
            "127.0.0.1", nettest::port_of(s2),
            {.ssl = h2_client_ctx, .server_hostname = "localhost"});
        CHECK_FALSE(w2.get_extra_info("alpn_protocol").has_value());
        AWAIT_UNTIL(seen.served == 2);
        CHECK(seen.alpn.empty());
        w2.close();
        co_await w2.wait_closed();
        s.close();
        co_await s.wait_closed();
        s2.close();
        co_await s2.wait_closed();
    }());
}

// ---- verification -----------------------------------------------------------------------------

TEST_CASE("an untrusted, a wrong-host and an expired certificate fail with OpenSSL's reason") {
    struct row {
        const char* cert;
        const char* reason;
    };
    const row rows[] = {
        {"untrusted", "self-signed certificate"},
        {"wronghost", "Hostname mismatch"},
        {"expired", "certificate has expired"},
    };
    for (const row& x : rows) {
        INFO("the server presents " << std::string(x.cert) << ".pem");
        nettest::run([](const row& x) -> coro<void> {
            auto& loop = ioloop::get_running_loop();
            const ioloop::ssl_context server_ctx = ssltest::server_context(x.cert);
            const ioloop::ssl_context client_ctx = ssltest::client_context();
            server_view seen;
            auto handler = viewing_echo(seen);
            ioloop::server s =
                co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
            const std::uint16_t port = nettest::port_of(s);
            // Streams.
            const std::system_error e = co_await nettest::failure_of(
                [&] {
                    return ioloop::open_connection(
                        "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
                },
                "open_connection to a server with a bad certificate");
            check_ssl_failure(e, "certificate verify failed");
            check_ssl_failure(e, x.reason);
            // Protocols: the same, and no protocol was made.
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            const std::system_error e2 = co_await nettest::failure_of(
                [&] {
                    return loop.create_connection(
                        factory, "127.0.0.1", port,
                        {.ssl = client_ctx, .server_hostname = "localhost"});
                },
                "create_connection to a server with a bad certificate");
            check_ssl_failure(e2, x.reason);
            CHECK(c.made == 0);
            CHECK(seen.served == 0);  // the server's handshake failed too
            s.close();
            co_await s.wait_closed();
        }(x));
    }
}

TEST_CASE("the switches act: without check_hostname a wrong host passes, with CERT_NONE anything") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context wronghost_ctx = ssltest::server_context("wronghost");
        const ioloop::ssl_context untrusted_ctx = ssltest::server_context("untrusted");
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s1 =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = wronghost_ctx});
        ioloop::server s2 =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = untrusted_ctx});
        ioloop::ssl_context no_host_check = ssltest::client_context();
        no_host_check.set_check_hostname(false);
        {
            auto [r, w] = co_await ioloop::open_connection(
                "127.0.0.1", nettest::port_of(s1),
                {.ssl = no_host_check, .server_hostname = "localhost"});
            w.write("wrong host accepted\n");
            CHECK(co_await r.readline() == "wrong host accepted\n");
            w.close();
            co_await w.wait_closed();
        }
        // The CA check still holds without the host check.
        const std::system_error e = co_await nettest::failure_of(
            [&] {
                return ioloop::open_connection(
                    "127.0.0.1", nettest::port_of(s2),
                    {.ssl = no_host_check, .server_hostname = "localhost"});
            },
            "open_connection to an untrusted server without the host check");
        check_ssl_failure(e, "certificate verify failed");
        ioloop::ssl_context no_check = ssltest::client_context();
        no_check.set_check_hostname(false);
        no_check.set_verify_mode(ioloop::verify_mode::none);
        {
            auto [r, w] =
                co_await ioloop::open_connection("127.0.0.1", nettest::port_of(s2),
                                                 {.ssl = no_check, .server_hostname = "localhost"});
            w.write("anything accepted\n");
            CHECK(co_await r.readline() == "anything accepted\n");
            w.close();
            co_await w.wait_closed();
        }
        s1.close();
        co_await s1.wait_closed();
        s2.close();
        co_await s2.wait_closed();
    }());
}

TEST_CASE("mutual TLS: the server requires a client certificate; without one no handler runs") {
    ioloop::ssl_context server_ctx = ssltest::server_context();
    server_ctx.load_verify_locations(cert("ca.pem"));
    server_ctx.set_verify_mode(ioloop::verify_mode::required);
    nettest::run([](const ioloop::ssl_context& server_ctx) -> coro<void> {
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        const std::uint16_t port = nettest::port_of(s);
        {
            // TLS 1.2: the server asks for the certificate inside the handshake, so the
            // client's handshake fails.
            ioloop::ssl_context client_ctx = ssltest::client_context();
            client_ctx.set_maximum_version(ioloop::tls_version::tls1_2);
            (void)co_await nettest::failure_of(
                [&] {
                    return ioloop::open_connection(
                        "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
                },
                "TLS 1.2 open_connection without a client certificate");
        }
        {
            // TLS 1.3: the client's handshake ends before the server checks, so the refusal
            // comes after it: the first read gets EOF or an error (asyncio 3.11: EOF), never
            // data.
            const ioloop::ssl_context client_ctx = ssltest::client_context();
            std::string got = "(nothing yet)";
            try {
                auto [r, w] = co_await ioloop::open_connection(
                    "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
                w.write("no certificate\n");
                got = co_await r.readline();
            } catch (const std::system_error& e) {
                got = e.what();
            }
            INFO("the client saw: " << got);
            CHECK(got != "no certificate\n");
        }
        CHECK(seen.served == 0);
        {
            // With the certificate: served, and the server sees it.
            ioloop::ssl_context client_ctx = ssltest::client_context();
            client_ctx.load_cert_chain(cert("client.pem"), cert("client.key"));
            auto [r, w] = co_await ioloop::open_connection(
                "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
            w.write("with certificate\n");
            CHECK(co_await r.readline() == "with certificate\n");
            AWAIT_UNTIL(seen.served == 1);
            CHECK(same_pem(seen.peercert, pem_of("client.pem")));
            w.close();
            co_await w.wait_closed();
        }
        s.close();
        co_await s.wait_closed();
    }(server_ctx));
}

TEST_CASE("a failed server-side handshake closes that connection only; the server serves on") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        const std::uint16_t port = nettest::port_of(s);
        {
            // Plain HTTP to a TLS port: at most an alert comes back, then the end.
            auto [r, w] = co_await ioloop::open_connection("127.0.0.1", port);
            w.write("GET / HTTP/1.0\r\n\r\n");
            std::string got;
            try {
                got = co_await r.read();
            } catch (const std::system_error&) {
                // a reset: the server closed with our request unread
            }
            CHECK_FALSE(contains(got, "HTTP"));
        }
        CHECK(seen.served == 0);
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
        w.write("still serving\n");
        CHECK(co_await r.readline() == "still serving\n");
        CHECK(seen.served == 1);
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    }());
}

// ---- the end of a connection ------------------------------------------------------------------

TEST_CASE("a peer that closes without close_notify: the data, then EOF, as asyncio 3.11") {
    // tests/asyncio_ssl_eof.py shows what asyncio does: the bytes, then b"", no error.
    const ioloop::ssl_context server_ctx = ssltest::server_context();
    const std::string payload = nettest::random_bytes(300000, 9);
    openssl_peer peer(server_ctx, payload, openssl_peer::ending::ragged);
    nettest::run([](std::uint16_t port, const std::string& payload) -> coro<void> {
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
        const std::string got = co_await r.read();  // everything, to EOF
        CHECK(got.size() == payload.size());
        CHECK(got == payload);
        CHECK(r.at_eof());
        CHECK(co_await r.read() == "");
        w.close();
        co_await w.wait_closed();
    }(peer.port(), payload));
    CHECK(peer.join() == "");
}

TEST_CASE("a peer that resets the connection: the data read, then errc::connection_reset") {
    // asyncio: ConnectionResetError from the read and from wait_closed (asyncio_ssl_eof.py).
    const ioloop::ssl_context server_ctx = ssltest::server_context();
    const std::string payload = nettest::random_bytes(300000, 10);
    openssl_peer peer(server_ctx, payload, openssl_peer::ending::reset);
    nettest::run([](std::uint16_t port, const std::string& payload) -> coro<void> {
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
        CHECK(co_await r.readexactly(payload.size()) == payload);
        w.write("g");  // the peer resets once it has this
        std::error_code code;
        try {
            (void)co_await r.read();
        } catch (const std::system_error& e) {
            code = e.code();
        }
        CHECK(code == std::errc::connection_reset);
        w.close();
        CHECK_THROWS_AS(co_await w.wait_closed(), std::system_error);
    }(peer.port(), payload));
    CHECK(peer.join() == "");
}

TEST_CASE("nothing read is lost at shutdown: the server writes N bytes and closes; N, then EOF") {
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        const std::string payload = nettest::random_bytes(3 << 20, 11);
        // Streams: write, close at once (no drain): the close sends what is buffered, then
        // close_notify.
        auto writing = [&payload](stream_reader, stream_writer w) -> coro<void> {
            w.write(payload);
            w.close();
            co_await w.wait_closed();
        };
        ioloop::server s =
            co_await ioloop::start_server(writing, "127.0.0.1", 0, {.ssl = server_ctx});
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", nettest::port_of(s), {.ssl = client_ctx, .server_hostname = "localhost"});
        const std::string got = co_await r.read();
        CHECK(got.size() == payload.size());
        CHECK(got == payload);
        CHECK(r.at_eof());
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();

        // Protocols: the client hears every byte, then eof_received, then connection_lost
        // with no error.
        class write_then_close : public ioloop::protocol {
        public:
            explicit write_then_close(const std::string& data) : data_(data) {}
            void connection_made(ioloop::transport& t) override {
                t.write(data_);
                t.close();
            }

        private:
            const std::string& data_;
        };
        auto server_factory = [&payload] { return std::make_unique<write_then_close>(payload); };
        ioloop::server s2 =
            co_await loop.create_server(server_factory, "127.0.0.1", 0, {.ssl = server_ctx});
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        (void)co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s2),
                                              {.ssl = client_ctx, .server_hostname = "localhost"});
        AWAIT_UNTIL(c.lost == 1);
        CHECK(c.data.size() == payload.size());
        CHECK(c.data == payload);
        CHECK(c.eofs == 1);
        CHECK_FALSE(c.lost_code);
        s2.close();
        co_await s2.wait_closed();
    }());
}

TEST_CASE("close + wait_closed completes on both sides, whichever closes first") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        server_view seen;  // finished: the handlers whose close completed
        // The server closes when the client says "bye", or after the client's EOF.
        auto handler = [&seen](stream_reader r, stream_writer w) -> coro<void> {
            for (;;) {
                std::string line = co_await r.readline();
                if (line.empty()) break;
                w.write(line);
                if (line == "bye\n") break;
            }
            w.close();
            co_await w.wait_closed();
            ++seen.finished;
        };
        ioloop::server s =
            co_await ioloop::start_server(handler, "127.0.0.1", 0, {.ssl = server_ctx});
        const std::uint16_t port = nettest::port_of(s);
        {
            // The client first.
            auto [r, w] = co_await ioloop::open_connection(
                "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
            w.write("hello\n");
            CHECK(co_await r.readline() == "hello\n");
            w.close();
            CHECK(w.is_closing());
            co_await w.wait_closed();
            AWAIT_UNTIL(seen.finished == 1);
        }
        {
            // The server first.
            auto [r, w] = co_await ioloop::open_connection(
                "127.0.0.1", port, {.ssl = client_ctx, .server_hostname = "localhost"});
            w.write("bye\n");
            CHECK(co_await r.readline() == "bye\n");
            CHECK(co_await r.read() == "");  // the server's close_notify
            AWAIT_UNTIL(seen.finished == 2);
            w.close();
            co_await w.wait_closed();
        }
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("ssl_shutdown_timeout: a peer that never answers close_notify; wait_closed ends anyway") {
    const ioloop::ssl_context server_ctx = ssltest::server_context();
    openssl_peer peer(server_ctx, "hello", openssl_peer::ending::silent);
    nettest::run([](std::uint16_t port) -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        auto [r, w] = co_await ioloop::open_connection(
            "127.0.0.1", port,
            {.ssl = client_ctx, .server_hostname = "localhost", .ssl_shutdown_timeout = 200ms});
        CHECK(co_await r.readexactly(5) == "hello");
        const auto closing = loop.time();
        w.close();
        // At the time limit the connection is aborted, and its loss is errc::timed_out
        // (asyncio: TimeoutError from wait_closed).
        std::error_code code;
        try {
            co_await w.wait_closed();
        } catch (const std::system_error& e) {
            code = e.code();
        }
        const auto took = loop.time() - closing;
        CHECK(code == std::errc::timed_out);
        CHECK(took >= 200ms);
        CHECK(took < 10s);  // not the 30 s default, nor forever
    }(peer.port()));
    CHECK(peer.join() == "");
}

// ---- STARTTLS ---------------------------------------------------------------------------------

TEST_CASE("STARTTLS with stream_writer::start_tls on both sides: plain lines, then TLS echo") {
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        std::string server_version;
        int served = 0;
        auto handler = [&](stream_reader r, stream_writer w) -> coro<void> {
            CHECK(co_await r.readline() == "STARTTLS\n");
            CHECK_FALSE(w.get_extra_info("ssl_version").has_value());
            w.write("GO\n");
            co_await w.start_tls(server_ctx);  // the server side: the stream is start_server's
            server_version = text_of(w.get_extra_info("ssl_version"));
            ++served;
            co_await echo_bytes(std::move(r), std::move(w));
        };
        ioloop::server s = co_await ioloop::start_server(handler, "127.0.0.1", 0);
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", nettest::port_of(s));
        w.write("STARTTLS\n");
        CHECK(co_await r.readline() == "GO\n");
        co_await w.start_tls(client_ctx, {.server_hostname = "localhost"});
        CHECK(text_of(w.get_extra_info("ssl_version")).substr(0, 4) == "TLSv");
        CHECK(same_pem(text_of(w.get_extra_info("peercert")), pem_of("server.pem")));
        const std::string payload = nettest::random_bytes(200000, 12);
        auto sender = ioloop::create_task(send_all(w, payload));
        CHECK(co_await r.readexactly(payload.size()) == payload);
        co_await sender;
        CHECK(served == 1);
        CHECK(server_version == text_of(w.get_extra_info("ssl_version")));
        w.close();
        co_await w.wait_closed();
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("STARTTLS with loop.start_tls on protocol transports, both sides") {
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        records srv;
        auto server_factory = [&srv] { return std::make_unique<probe>(srv.all.emplace_back()); };
        ioloop::server s = co_await loop.create_server(server_factory, "127.0.0.1", 0);
        record c;
        auto factory = [&c] { return std::make_unique<probe>(c); };
        auto [t, p] = co_await loop.create_connection(factory, "127.0.0.1", nettest::port_of(s));
        t->write("STARTTLS\n");
        AWAIT_UNTIL(srv.size() == 1 && srv[0].data == "STARTTLS\n");

        // The client upgrades once it reads GO; the server right after writing it.
        const ioloop::tls_options client_side{.server_hostname = "localhost"};
        auto client_upgrade =
            ioloop::create_task([](record& c, ioloop::transport* t, const ioloop::ssl_context& ctx,
                                   const ioloop::tls_options& o) -> coro<ioloop::transport*> {
                AWAIT_UNTIL(c.data == "GO\n");
                co_return co_await ioloop::get_running_loop().start_tls(*t, ctx, o);
            }(c, t, client_ctx, client_side));
        srv[0].t->write("GO\n");
        ioloop::transport* st =
            co_await loop.start_tls(*srv[0].t, server_ctx, {.server_side = true});
        ioloop::transport* ct = co_await client_upgrade;
        REQUIRE(st != nullptr);
        REQUIRE(ct != nullptr);
        srv[0].t = st;  // from here on the protocols write through the new transports
        c.t = ct;
        CHECK(text_of(st->get_extra_info("ssl_version")).substr(0, 4) == "TLSv");
        CHECK(text_of(ct->get_extra_info("ssl_version")) ==
              text_of(st->get_extra_info("ssl_version")));
        CHECK(c.made == 1);  // no second connection_made
        CHECK(srv[0].made == 1);

        // The old protocols hear through the new transports.
        ct->write("over tls");
        AWAIT_UNTIL(srv[0].data == "STARTTLS\nover tls");
        st->write("back");
        AWAIT_UNTIL(c.data == "GO\nback");
        ct->close();
        AWAIT_UNTIL(c.lost == 1 && srv[0].lost == 1);
        CHECK_FALSE(c.lost_code);
        CHECK(srv[0].eofs == 1);
        s.close();
        co_await s.wait_closed();
    }());
}

// ---- timeouts and cancellation ----------------------------------------------------------------

TEST_CASE("ssl_handshake_timeout against a server that accepts and never answers: timed_out") {
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        ioloop::event release;
        server_view seen;  // served: the connections accepted
        auto silent = [&](stream_reader, stream_writer) -> coro<void> {
            ++seen.served;
            co_await release.wait();
        };
        ioloop::server s = co_await ioloop::start_server(silent, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        {
            const auto start = loop.time();
            const std::system_error e = co_await nettest::failure_of(
                [&] {
                    return ioloop::open_connection("127.0.0.1", port,
                                                   {.ssl = client_ctx,
                                                    .server_hostname = "localhost",
                                                    .ssl_handshake_timeout = 200ms});
                },
                "open_connection to a server that never answers");
            const auto took = loop.time() - start;
            CHECK(e.code() == std::errc::timed_out);
            CHECK(took >= 200ms);
            CHECK(took < 10s);
        }
        {
            record c;
            auto factory = [&c] { return std::make_unique<probe>(c); };
            const auto start = loop.time();
            const std::system_error e = co_await nettest::failure_of(
                [&] {
                    return loop.create_connection(factory, "127.0.0.1", port,
                                                  {.ssl = client_ctx,
                                                   .server_hostname = "localhost",
                                                   .ssl_handshake_timeout = 200ms});
                },
                "create_connection to a server that never answers");
            const auto took = loop.time() - start;
            CHECK(e.code() == std::errc::timed_out);
            CHECK(took >= 200ms);
            CHECK(took < 10s);
            CHECK(c.made == 0);
        }
        AWAIT_UNTIL(seen.served == 2);
        release.set();
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("ssl_handshake_timeout on a server: a client that never starts TLS is dropped") {
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        const ioloop::ssl_context server_ctx = ssltest::server_context();
        server_view seen;
        auto handler = viewing_echo(seen);
        ioloop::server s = co_await ioloop::start_server(
            handler, "127.0.0.1", 0, {.ssl = server_ctx, .ssl_handshake_timeout = 200ms});
        const auto start = loop.time();
        auto [r, w] = co_await ioloop::open_connection("127.0.0.1", nettest::port_of(s));
        std::string got = "(nothing)";
        try {
            got = co_await r.read();  // plain TCP: says nothing, waits
        } catch (const std::system_error&) {
            got = "";  // reset: the server aborted the connection
        }
        const auto took = loop.time() - start;
        CHECK(got == "");
        CHECK(took >= 200ms);
        CHECK(took < 10s);
        CHECK(seen.served == 0);
        s.close();
        co_await s.wait_closed();
    }());
}

TEST_CASE("a cancelled open_connection with ssl (wait_for) leaves no descriptor and no leak") {
    const int fds_before = nettest::open_fd_count();
    nettest::run([]() -> coro<void> {
        const ioloop::ssl_context client_ctx = ssltest::client_context();
        ioloop::event release;
        server_view seen;  // served: the connections accepted; finished: those that ended
        auto silent = [&](stream_reader r, stream_writer) -> coro<void> {
            ++seen.served;
            try {
                (void)co_await r.read();  // the client's ClientHello, then its end
            } catch (const std::system_error&) {
                // reset: the client closed before it was accepted
            }
            ++seen.finished;
            co_await release.wait();
        };
        ioloop::server s = co_await ioloop::start_server(silent, "127.0.0.1", 0);
        const std::uint16_t port = nettest::port_of(s);
        // Cancelled at several points: before the connect is done, during the handshake.
        const std::chrono::milliseconds timeouts[] = {0ms, 1ms, 50ms};
        int n = 0;
        for (const auto timeout : timeouts) {
            INFO("timeout " << timeout.count() << " ms");
            CHECK_THROWS_AS(
                co_await ioloop::wait_for(
                    ioloop::open_connection("127.0.0.1", port,
                                            {.ssl = client_ctx, .server_hostname = "localhost"}),
                    timeout),
                ioloop::timeout_error);
            ++n;
        }
        // Each connection that reached the server was closed by the cancelled client.
        AWAIT_UNTIL(seen.finished == seen.served);
        CHECK(seen.served <= n);
        release.set();
        s.close();
        co_await s.wait_closed();
    }());
    CHECK(nettest::open_fd_count() == fds_before);
}

// ---- 1,000 connections ------------------------------------------------------------------------

namespace {

constexpr int many_connections = 1000;

// The protocols and the counts: tests/net_helpers.hpp (both many-connection tests).
using nettest::greet_echo;
using nettest::many_client;
using nettest::many_client_protocol;
using nettest::many_client_totals;
using nettest::many_server_state;

std::string message_of(int i) { return "message " + std::to_string(i) + "\n"; }

ioloop::coro<void> connect_client(std::uint16_t port, const ioloop::ssl_context& ctx,
                                  many_client& c, many_client_totals& totals) {
    auto factory = [&c, &totals] { return std::make_unique<many_client_protocol>(c, totals); };
    (void)co_await ioloop::get_running_loop().create_connection(
        factory, "127.0.0.1", port, {.ssl = ctx, .server_hostname = "localhost"});
}

// The child's work: opens every connection (at most 100 handshakes in flight), waits
// until the server greeted all of them (all open at once), then sends each its message
// and checks the echo. Returns how many came back right.
ioloop::coro<int> many_clients(std::uint16_t port) {
    const ioloop::ssl_context ctx = ssltest::client_context();
    std::vector<many_client> clients(many_connections);
    many_client_totals totals;
    for (int first = 0; first < many_connections; first += 100) {
        std::vector<ioloop::task<void>> connecting;
        for (int i = first; i < std::min(first + 100, many_connections); ++i) {
            connecting.push_back(
                ioloop::create_task(connect_client(port, ctx, clients[i], totals)));
        }
        for (auto& t : connecting) co_await t;
    }
    AWAIT_UNTIL(totals.greeted == many_connections);
    for (int i = 0; i < many_connections; ++i) {
        clients[i].expected = "+" + message_of(i);
        clients[i].t->write(message_of(i));
    }
    AWAIT_UNTIL(totals.done == many_connections);
    AWAIT_UNTIL(totals.lost == many_connections);  // no protocol outlives `clients`
    co_return totals.ok;
}

// Runs in the forked child: reads the port, runs the clients, reports "<ok>\n" (or a
// negative number: -2 an exception, -3 LeakSanitizer found a leak in the child).
[[noreturn]] void child_main(int channel) {
    std::uint16_t port = 0;
    if (::read(channel, &port, sizeof port) != sizeof port) ::_exit(3);
    int ok = -1;
    try {
        ok = nettest::run(many_clients(port), 100s);
    } catch (...) {
        ok = -2;
    }
#if defined(TEST_ASAN)
    // The parent's LeakSanitizer never sees the child's memory: the child checks its own
    // (its loop is closed, its connections gone).
    if (__lsan_do_recoverable_leak_check() != 0) ok = -3;
#endif
    const std::string report = std::to_string(ok) + "\n";
    if (::write(channel, report.data(), report.size()) != static_cast<ssize_t>(report.size()))
        ::_exit(4);
    ::_exit(0);
}

}  // namespace

TEST_CASE("1,000 concurrent TLS connections to one server each echo a message") {
    // The clients run in a child process: each process holds one end of every connection,
    // which keeps select's descriptors below FD_SETSIZE (1024), and the two processes'
    // handshakes use both cores.
    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
    const rlim_t needed = 2 * many_connections + 100;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
        FAIL("RLIMIT_NOFILE's hard limit (" << limit.rlim_max << ") is below " << needed);
    }
    nettest::nofile_limit raised(std::max(needed, limit.rlim_cur));
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
            const ioloop::ssl_context server_ctx = ssltest::server_context();
            auto factory = [&state] { return std::make_unique<greet_echo>(state); };
            ioloop::server s = co_await loop.create_server(factory, "127.0.0.1", 0,
                                                           {.backlog = 1024, .ssl = server_ctx});
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
            s.close();
            co_await s.wait_closed();
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
    MESSAGE(many_connections << " TLS connections on " << nettest::backend_name() << " in "
                             << seconds << " s");
}
