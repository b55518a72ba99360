// An HTTPS client on streams (asyncio's open_connection with ssl=): GETs a path over TLS
// and prints the status line, the headers and the body's length. The host is the name sent
// in the handshake (SNI) and the name the server's certificate must carry; the certificate
// must chain to a trusted root (the system's, or --cafile's). Exit code 0 on a 2xx or 3xx,
// 1 otherwise; a failed handshake prints OpenSSL's reason ("certificate has expired", ...).
//   g++ -std=c++20 -I single_include examples/https_get.cpp -o https_get -lssl -lcrypto
//   ./https_get example.org 443 /                   verified against the system's roots
//   ./https_get localhost 8443 / --cafile ca.pem    against a private CA instead
//   ./https_get localhost 8443 / --insecure         no verification at all (tests only)
//   ./https_get --demo --cert server.pem --key server.key [--cafile ca.pem]
//        demo: an HTTPS server in this process, with that certificate (which must name
//        localhost), and a GET from it; without --cafile the certificate trusts itself
//        (right for a self-signed one). Make one with:
//        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//          -subj /CN=localhost -addext subjectAltName=DNS:localhost
//          -keyout server.key -out server.pem
#include <ioloop/ioloop.hpp>
#include <ioloop/ssl.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

std::string_view chomp(std::string_view line) {  // without its "\r\n" (or bare "\n")
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

bool same_name(std::string_view a, std::string_view b) {  // header names ignore case
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; };
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

// The value of the header `name` among "Name: value" lines, or "" if absent.
std::string header(const std::vector<std::string>& lines, std::string_view name) {
    for (std::string_view line : lines) {
        const std::size_t colon = line.find(':');
        if (colon == line.npos || !same_name(line.substr(0, colon), name)) continue;
        line.remove_prefix(colon + 1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
            line.remove_prefix(1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        return std::string(line);
    }
    return {};
}

// Reads and counts n bytes, 64 KiB at a time (a body need not fit in memory).
ioloop::coro<std::size_t> skip(ioloop::stream_reader& reader, std::size_t n) {
    for (std::size_t left = n; left > 0;) {
        const std::string piece = co_await reader.read(std::min<std::size_t>(left, 64 * 1024));
        if (piece.empty()) {
            throw std::runtime_error("the body ended after " + std::to_string(n - left) +
                                     " of its " + std::to_string(n) + " bytes");
        }
        left -= piece.size();
    }
    co_return n;
}

// The body's length, by whichever of HTTP/1.1's three framings the response uses.
ioloop::coro<std::size_t> read_body(ioloop::stream_reader& reader,
                                    const std::vector<std::string>& headers) {
    if (same_name(header(headers, "transfer-encoding"), "chunked")) {
        // Chunks: a hex size line, that many bytes, "\r\n"; a size of 0 ends them, then
        // trailer lines up to an empty one.
        std::size_t total = 0;
        for (;;) {
            const std::string line = co_await reader.readline();
            char* end = nullptr;
            const unsigned long long size = std::strtoull(line.c_str(), &end, 16);
            if (end == line.c_str()) throw std::runtime_error("a malformed chunk size line");
            if (size == 0) break;
            total += co_await skip(reader, size);
            const std::string crlf = co_await reader.readline();
            if (!chomp(crlf).empty()) throw std::runtime_error("a chunk longer than its size");
        }
        for (std::string trailer = "-"; !chomp(trailer).empty();) {
            trailer = co_await reader.readline();
        }
        co_return total;
    }
    if (const std::string length = header(headers, "content-length"); !length.empty()) {
        co_return co_await skip(reader, std::strtoull(length.c_str(), nullptr, 10));
    }
    std::size_t total = 0;  // neither: the body runs to the end of the connection
    for (;;) {
        const std::string piece = co_await reader.read(64 * 1024);
        if (piece.empty()) break;
        total += piece.size();
    }
    co_return total;
}

// GET `path` from `host`:`port` (connecting to `address`, the host itself unless the demo
// says otherwise), with `ctx`; prints the response; returns the exit code.
ioloop::coro<int> get(const ioloop::ssl_context& ctx, std::string host, std::string address,
                      std::uint16_t port, std::string path) {
    // Returns once the handshake is done: the certificate verified for `host`, which was
    // also sent as SNI (server_hostname; it defaults to the host connected to).
    auto [reader, writer] = co_await ioloop::open_connection(
        address, port, {.ssl = ctx, .server_hostname = host.c_str()});
    const ioloop::extra_info alpn = writer.get_extra_info("alpn_protocol");
    std::printf("* %s, %s, ALPN %s\n", writer.get_extra_info("ssl_version").text().c_str(),
                writer.get_extra_info("cipher").text().c_str(),
                alpn ? alpn.text().c_str() : "none");

    const bool ipv6 = host.find(':') != host.npos;  // an address literal goes in brackets
    const std::string host_header =
        (ipv6 ? "[" + host + "]" : host) + (port == 443 ? "" : ":" + std::to_string(port));
    writer.write("GET " + path + " HTTP/1.1\r\nHost: " + host_header +
                 "\r\nUser-Agent: ioloop-https_get\r\nAccept: */*\r\nConnection: close\r\n\r\n");

    // The status line, "HTTP/1.1 200 OK", then header lines up to an empty one.
    const std::string first = co_await reader.readline();
    const std::string status_line{chomp(first)};
    if (status_line.size() < 12 || !status_line.starts_with("HTTP/") || status_line[8] != ' ') {
        throw std::runtime_error(status_line.empty() ? "the server closed without a response"
                                                     : "not an HTTP response: " + status_line);
    }
    const int status = std::atoi(status_line.c_str() + 9);
    std::printf("%s\n", status_line.c_str());
    std::vector<std::string> headers;
    for (;;) {
        const std::string line = co_await reader.readline();
        if (line.empty()) throw std::runtime_error("the server closed within the headers");
        if (chomp(line).empty()) break;
        headers.emplace_back(chomp(line));
        std::printf("%s\n", headers.back().c_str());
    }
    std::size_t length = 0;
    if (status != 204 && status != 304) length = co_await read_body(reader, headers);
    std::printf("* body: %zu bytes\n", length);

    // close_notify to the server, and its own back (within ssl_shutdown_timeout).
    writer.close();
    co_await writer.wait_closed();
    co_return status >= 200 && status < 400 ? 0 : 1;
}

// The client's TLS configuration: the system's roots, peer and host name verified.
ioloop::ssl_context client_context(const std::string& cafile, bool insecure) {
    ioloop::ssl_context ctx = ioloop::create_default_context();
    if (!cafile.empty()) ctx.load_verify_locations(cafile);
    if (insecure) {
        ctx.set_check_hostname(false);  // first: a host name check needs verification on
        ctx.set_verify_mode(ioloop::verify_mode::none);
    }
    ctx.set_alpn_protocols({"http/1.1"});  // as browsers and curl offer over HTTP/1.1
    return ctx;
}

// The demo's server: one response per connection, saying what the handshake agreed on.
ioloop::coro<void> demo_handler(ioloop::stream_reader reader, ioloop::stream_writer writer) {
    for (std::string line = "-"; !chomp(line).empty();) {  // the request's head, ignored
        line = co_await reader.readline();
    }
    const std::string body = "Hello over " + writer.get_extra_info("ssl_version").text() +
                             " with " + writer.get_extra_info("cipher").text() + "\n";
    writer.write(
        "HTTP/1.1 200 OK\r\nServer: ioloop-demo\r\nContent-Type: text/plain\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    co_await writer.drain();
    writer.close();
}

ioloop::coro<int> demo(std::string cert, std::string key, std::string cafile) {
    // A server's context: its certificate and key, no certificate asked of clients.
    ioloop::ssl_context server_ctx = ioloop::create_default_context(ioloop::purpose::client_auth);
    server_ctx.load_cert_chain(cert, key);
    server_ctx.set_alpn_protocols({"http/1.1"});
    ioloop::server server =
        co_await ioloop::start_server(demo_handler, "127.0.0.1", 0, {.ssl = server_ctx});
    const std::uint16_t port = server.sockets().at(0).local_endpoint().port();
    std::printf("https_get: demo server listening on 127.0.0.1:%u\n", port);
    const ioloop::ssl_context ctx = client_context(cafile.empty() ? cert : cafile, false);
    // To 127.0.0.1 (where the server listens), as "localhost" (what its certificate names).
    const int rc = co_await get(ctx, "localhost", "127.0.0.1", port, "/");
    server.close();
    co_await server.wait_closed();
    co_return rc;
}

int main(int argc, char** argv) {
    std::vector<std::string> positional;
    std::string cafile, cert, key;
    bool insecure = false, demo_mode = false, usable = true;
    for (int i = 1; usable && i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--insecure") {
            insecure = true;
        } else if (arg == "--demo") {
            demo_mode = true;
        } else if (arg == "--cafile" && has_value) {
            cafile = argv[++i];
        } else if (arg == "--cert" && has_value) {
            cert = argv[++i];
        } else if (arg == "--key" && has_value) {
            key = argv[++i];
        } else if (!arg.starts_with("--")) {
            positional.emplace_back(arg);
        } else {
            usable = false;
        }
    }
    const long port = positional.size() == 3 ? std::atol(positional[1].c_str()) : 0;
    if (demo_mode ? !positional.empty() || cert.empty() || key.empty() || insecure
                  : positional.size() != 3 || port <= 0 || port > 65535 ||
                        !positional[2].starts_with("/") || !cert.empty() || !key.empty()) {
        usable = false;
    }
    if (!usable) {
        std::fprintf(stderr,
                     "usage: https_get HOST PORT /PATH [--cafile FILE] [--insecure]\n"
                     "       https_get --demo --cert FILE --key FILE [--cafile FILE]\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line at once, even into a pipe
    try {
        if (demo_mode) return ioloop::run(demo(cert, key, cafile));
        const ioloop::ssl_context ctx = client_context(cafile, insecure);
        return ioloop::run(get(ctx, positional[0], positional[0], static_cast<std::uint16_t>(port),
                               positional[2]));
    } catch (const std::exception& e) {  // a handshake's failure says why: OpenSSL's reason
        std::fprintf(stderr, "https_get: %s\n", e.what());
        return 1;
    }
}
