// An echo server and client over TLS (start_server and open_connection with ssl=): what
// echo_streams does, encrypted. TLS has no half-close (a writer has no write_eof), so the
// client knows its echo is whole by counting: it reads back as many bytes as it sent, then
// closes. The server says, for each connection, what the handshake agreed on: the version,
// the cipher, the name the client asked for (SNI) and the protocol chosen (ALPN).
//   g++ -std=c++20 -I single_include examples/tls_echo.cpp -o tls_echo -lssl -lcrypto
//   ./tls_echo --demo --cert server.pem --key server.key [--cafile ca.pem]
//        demo: serves on a free port, three clients at once, exits; the certificate must
//        name localhost; without --cafile it trusts itself (right for a self-signed one)
//   ./tls_echo --cert server.pem --key server.key --port 8443 [--serve-for 30]
//        serves 127.0.0.1:8443 until Ctrl-C
//        (try: openssl s_client -connect 127.0.0.1:8443 -servername localhost -quiet)
//   ./tls_echo --connect 8443 --cafile ca.pem --server-hostname localhost < file
//        the client alone: sends stdin, prints the echo (--insecure: no verification)
//   --alpn PROTO on either side: the protocol offered (client) or accepted (server)
//   --starttls on both sides: the connection starts in plain text; the client sends the line
//        "STARTTLS", the server answers "OK", and both go on over TLS (as SMTP and IMAP do)
// (https_get's comment says how to make a certificate with the openssl command.)
#include <ioloop/ioloop.hpp>
#include <ioloop/ssl.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

struct options {
    std::string host = "127.0.0.1", cert, key, cafile, server_hostname, alpn;
    long port = -1, connect_port = -1;
    double serve_for = 0;  // seconds; 0: until SIGINT or SIGTERM
    bool demo = false, insecure = false, starttls = false;
};

// What the handshake agreed on, as get_extra_info tells it.
std::string describe(const ioloop::stream_writer& writer) {
    const ioloop::extra_info alpn = writer.get_extra_info("alpn_protocol");
    std::string out =
        writer.get_extra_info("ssl_version").text() + " " + writer.get_extra_info("cipher").text();
    // SNI: OpenSSL's own call on the connection's SSL* (a client that sent none: null).
    auto* ssl = static_cast<SSL*>(writer.get_extra_info("ssl_object").handle());
    const char* sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : nullptr;
    out += ", SNI ";
    out += sni ? sni : "none";
    out += ", ALPN " + (alpn ? alpn.text() : std::string("none"));
    return out;
}

// STARTTLS, the server's side: the client's request in plain text, the answer, then the
// handshake (as the server: the stream came from start_server). False: no request.
ioloop::coro<bool> accept_starttls(ioloop::stream_reader& reader, ioloop::stream_writer& writer,
                                   const ioloop::ssl_context& ctx) {
    const std::string request = co_await reader.readline();
    if (request != "STARTTLS\n") {
        writer.write("ERR send STARTTLS first\n");
        co_return false;
    }
    writer.write("OK\n");
    co_await writer.start_tls(ctx);  // the reader and the writer go on over TLS
    co_return true;
}

// The server's task for one connection: echoes until the client closes. Over TLS from the
// start (the handshake is done when the task starts: a client that failed it never gets
// here), or from the client's STARTTLS with `starttls`.
ioloop::coro<void> echo(ioloop::stream_reader reader, ioloop::stream_writer writer,
                        const ioloop::ssl_context* starttls) {
    const std::string peer = writer.get_extra_info("peername").address().to_string();
    std::size_t echoed = 0;
    try {
        if (starttls && !co_await accept_starttls(reader, writer, *starttls)) {
            writer.close();
            co_return;
        }
        std::printf("tls_echo: %s connected: %s\n", peer.c_str(), describe(writer).c_str());
        for (;;) {
            std::string data = co_await reader.read(65536);  // "" at EOF: the client closed
            if (data.empty()) break;
            echoed += data.size();
            writer.write(data);
            co_await writer.drain();  // waits while the client is behind
        }
    } catch (const std::system_error& e) {  // reset, a TLS error, a failed STARTTLS handshake
        std::printf("tls_echo: %s: %s\n", peer.c_str(), e.what());
    }
    std::printf("tls_echo: %s echoed %zu bytes\n", peer.c_str(), echoed);
    writer.close();  // close_notify, then the connection closes
}

ioloop::coro<void> send_all(ioloop::stream_writer& writer, std::string_view data) {
    writer.write(data);
    co_await writer.drain();
}

// Sends `payload` over TLS and returns what came back. `name`: the name sent as SNI and
// checked against the server's certificate (null: the host).
ioloop::coro<std::string> echo_client(const ioloop::ssl_context& ctx, std::string host,
                                      std::uint16_t port, const char* name, std::string payload) {
    auto [reader, writer] =
        co_await ioloop::open_connection(host, port, {.ssl = ctx, .server_hostname = name});
    // Sending is a task of its own: it waits in drain() while this one reads the echo.
    ioloop::task<void> sender = ioloop::create_task(send_all(writer, payload));
    std::string back = co_await reader.readexactly(payload.size());
    co_await sender;
    writer.close();  // close_notify; wait_closed: until the connection is gone
    co_await writer.wait_closed();
    co_return back;
}

ioloop::ssl_context server_context(const options& o) {
    ioloop::ssl_context ctx = ioloop::create_default_context(ioloop::purpose::client_auth);
    ctx.load_cert_chain(o.cert, o.key);
    if (!o.alpn.empty()) ctx.set_alpn_protocols({o.alpn});
    return ctx;
}

ioloop::ssl_context client_context(const options& o) {
    ioloop::ssl_context ctx = ioloop::create_default_context();  // the system's roots
    if (!o.cafile.empty()) ctx.load_verify_locations(o.cafile);
    if (o.insecure) {
        ctx.set_check_hostname(false);  // first: a host name check needs verification on
        ctx.set_verify_mode(ioloop::verify_mode::none);
    }
    if (!o.alpn.empty()) ctx.set_alpn_protocols({o.alpn});
    return ctx;
}

ioloop::coro<int> demo(options o) {
    const ioloop::ssl_context server_ctx = server_context(o);
    auto on_connection = [](ioloop::stream_reader reader, ioloop::stream_writer writer) {
        return echo(std::move(reader), std::move(writer), nullptr);
    };
    ioloop::server server =
        co_await ioloop::start_server(on_connection, "127.0.0.1", 0, {.ssl = server_ctx});
    const std::uint16_t port = server.sockets().at(0).local_endpoint().port();
    std::printf("tls_echo: listening on 127.0.0.1:%u\n", port);
    if (o.cafile.empty()) o.cafile = o.cert;
    const ioloop::ssl_context ctx = client_context(o);
    const std::string big(4 << 20, 'x');  // 4 MiB: drain() at work on both sides
    // Three clients at once, to 127.0.0.1 as "localhost" (the name the certificate holds).
    auto [a, b, c] =
        co_await ioloop::gather(echo_client(ctx, "127.0.0.1", port, "localhost", "hello"),
                                echo_client(ctx, "127.0.0.1", port, "localhost", "world"),
                                echo_client(ctx, "127.0.0.1", port, "localhost", big));
    std::printf("got back \"%s\", \"%s\" and %s\n", a.c_str(), b.c_str(),
                c == big ? "the same 4 MiB" : "something else");
    server.close();
    co_await server.wait_closed();  // every connection it made is gone
    co_return c == big ? 0 : 1;
}

ioloop::coro<int> serve(options o) {
    auto& loop = ioloop::get_running_loop();
    const ioloop::ssl_context ctx = server_context(o);
    const ioloop::ssl_context* starttls = o.starttls ? &ctx : nullptr;
    auto on_connection = [starttls](ioloop::stream_reader reader, ioloop::stream_writer writer) {
        return echo(std::move(reader), std::move(writer), starttls);
    };
    ioloop::serve_options how{.ssl = ctx};
    if (o.starttls) how.ssl = nullptr;  // plain at first: TLS comes after the request
    ioloop::server server = co_await ioloop::start_server(on_connection, o.host,
                                                          static_cast<std::uint16_t>(o.port), how);
    std::printf("tls_echo: listening on %s\n",
                server.sockets().at(0).local_endpoint().to_string().c_str());
    const char* why = "the time given";
    for (int sig : {SIGINT, SIGTERM}) {
        loop.add_signal_handler(sig, [&server, &why, sig] {
            why = sig == SIGINT ? "SIGINT" : "SIGTERM";
            server.close();  // serve_forever returns
        });
    }
    if (o.serve_for > 0) {
        loop.call_later(std::chrono::duration<double>(o.serve_for), [&server] { server.close(); });
    }
    co_await server.serve_forever();
    std::printf("tls_echo: stopped by %s\n", why);
    co_return 0;  // ioloop::run then cancels the connections' tasks still running
}

ioloop::coro<int> client(options o) {
    std::string payload;  // stdin, read before the loop's work starts (it blocks)
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, stdin)) > 0;) payload.append(buf, n);
    const ioloop::ssl_context ctx = client_context(o);
    const char* name = o.server_hostname.empty() ? nullptr : o.server_hostname.c_str();
    ioloop::connect_options how{.ssl = ctx, .server_hostname = name};
    if (o.starttls) how = {};  // plain at first: TLS comes after the request
    auto [reader, writer] =
        co_await ioloop::open_connection(o.host, static_cast<std::uint16_t>(o.connect_port), how);
    if (o.starttls) {
        writer.write("STARTTLS\n");
        if (const std::string answer = co_await reader.readline(); answer != "OK\n") {
            throw std::runtime_error("the server did not take STARTTLS: " + answer);
        }
        // The name to check and send as SNI: start_tls has no host to default to.
        co_await writer.start_tls(ctx, {.server_hostname = name ? name : o.host.c_str()});
    }
    std::fprintf(stderr, "tls_echo: connected: %s\n", describe(writer).c_str());
    ioloop::task<void> sender = ioloop::create_task(send_all(writer, payload));
    const std::string back = co_await reader.readexactly(payload.size());
    co_await sender;
    writer.close();
    co_await writer.wait_closed();
    std::fwrite(back.data(), 1, back.size(), stdout);
    co_return 0;
}

int main(int argc, char** argv) {
    options o;
    bool usable = true;
    for (int i = 1; usable && i < argc; ++i) {
        const std::string_view opt = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
        if (opt == "--demo") {
            o.demo = true;
        } else if (opt == "--insecure") {
            o.insecure = true;
        } else if (opt == "--starttls") {
            o.starttls = true;
        } else if (!value) {
            usable = false;
        } else {
            ++i;  // the option's value
            if (opt == "--host") {
                o.host = value;
            } else if (opt == "--port") {
                o.port = std::atol(value);
            } else if (opt == "--serve-for") {
                o.serve_for = std::atof(value);
            } else if (opt == "--connect") {
                o.connect_port = std::atol(value);
            } else if (opt == "--cert") {
                o.cert = value;
            } else if (opt == "--key") {
                o.key = value;
            } else if (opt == "--cafile") {
                o.cafile = value;
            } else if (opt == "--server-hostname") {
                o.server_hostname = value;
            } else if (opt == "--alpn") {
                o.alpn = value;
            } else {
                usable = false;
            }
        }
    }
    const bool is_client = o.connect_port >= 0, serving = o.port >= 0;
    const bool has_cert = !o.cert.empty() && !o.key.empty();
    if (is_client ? o.demo || serving || !o.cert.empty()
                  : !has_cert || o.demo == serving || !o.server_hostname.empty() ||
                        (o.demo && o.starttls)) {
        usable = false;
    }
    if (!usable) {
        std::fprintf(
            stderr,
            "usage: tls_echo --demo --cert FILE --key FILE [--cafile FILE]\n"
            "       tls_echo --cert FILE --key FILE --port P [--host H] "
            "[--serve-for SECONDS] [--alpn PROTO] [--starttls]\n"
            "       tls_echo --connect PORT [--host H] [--cafile FILE] [--insecure]\n"
            "                [--server-hostname NAME] [--alpn PROTO] [--starttls] < payload\n");
        return 2;
    }
    try {
        if (is_client) return ioloop::run(client(o));
        std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
        return ioloop::run(o.demo ? demo(o) : serve(o));
    } catch (const std::exception& e) {  // a failed handshake says why: OpenSSL's reason
        std::fprintf(stderr, "tls_echo: %s\n", e.what());
        return 1;
    }
}
