// A small HTTP/1.1 server on streams (asyncio's start_server): one task per connection reads
// requests with readline and readexactly and answers each in turn. Keep-alive as HTTP/1.1
// says: a connection stays open after a response unless the client said
// "Connection: close", or spoke HTTP/1.0 without "Connection: keep-alive". Garbage gets a 400.
// Three timeouts of 30 s each (--timeout sets them all), so that no client holds a
// connection forever: a connection where no request starts within 30 s (of the connect, or
// of the previous response) is closed; a request must arrive whole, head and body, within
// 30 s of its first byte, or it gets a 408 and the connection is closed (a deadline per
// request, not per read: a client sending one byte every few seconds is closed all the
// same); a client that stops reading its responses for 30 s is dropped.
//   g++ -std=c++20 -I single_include examples/http_server.cpp -o http_server
//   ./http_server                   demo: serves on a free port, sends itself 3 requests, exits
//   ./http_server --port 8080       serves 127.0.0.1:8080 until Ctrl-C
//   ./http_server --port 8080 --timeout 5      the timeouts 5 s instead of 30 (seconds, > 0)
//   curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080/    (two requests, one connection)
//   curl --data-binary @file http://127.0.0.1:8080/echo      (the body comes back)
// HTTPS: built with WITH_TLS defined and OpenSSL linked, it serves TLS when given a
// certificate and its key; each connection's task starts once its handshake is done, and
// a client that does not finish it within the timeout is dropped. The rest is the same.
//   g++ -std=c++20 -DWITH_TLS -I single_include examples/http_server.cpp -lssl -lcrypto -o ...
//   ./http_server --port 8443 --cert server.pem --key server.key
//   curl --cacert ca.pem https://localhost:8443/
// (A macro, not a second program: the plain build needs no OpenSSL, which Windows builds
// lack, and the lines under WITH_TLS are all that serving HTTPS takes.)
#include <ioloop/ioloop.hpp>
#ifdef WITH_TLS
#include <ioloop/ssl.hpp>
#endif

#include <algorithm>
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
#include <vector>

constexpr std::size_t max_body = 1 << 20;  // 1 MiB
constexpr std::size_t max_headers = 100;
using seconds = std::chrono::duration<double>;  // --timeout takes fractions of a second
constexpr seconds default_timeout{30};

struct request {
    std::string method, target, version;
    std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
    std::string body;
    bool keep_alive = true;

    const std::string* header(std::string_view name) const {
        for (const auto& [n, v] : headers) {
            if (n == name) return &v;
        }
        return nullptr;
    }
};

// An error answered with its status; the connection is then closed.
struct http_error : std::runtime_error {
    http_error(int s, const std::string& why) : std::runtime_error(why), status(s) {}
    int status;
};

std::string_view reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 413:
            return "Content Too Large";
        case 431:
            return "Request Header Fields Too Large";
        case 501:
            return "Not Implemented";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return out;
}

std::string_view trim(std::string_view s) {  // HTTP's optional whitespace: spaces and tabs
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::string_view chomp(std::string_view line) {  // without its "\r\n" (or bare "\n")
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

// The first byte of the next request, or "" at EOF. Empty lines before a request are
// ignored (RFC 9112, 2.2): their bytes are skipped here, so they count as idle time and
// never start a request's deadline.
ioloop::coro<std::string> first_byte(ioloop::stream_reader& reader) {
    std::string byte;
    do {
        byte = co_await reader.read(1);
    } while (byte == "\r" || byte == "\n");
    co_return byte;
}

// The rest of a request whose first byte is `line`: request line, headers, body.
ioloop::coro<void> read_head_and_body(ioloop::stream_reader& reader, request& req,
                                      std::string line) {
    // The request line: METHOD SP TARGET SP HTTP/x.y
    line += co_await reader.readline();
    const std::string_view start = chomp(line);
    const std::size_t sp1 = start.find(' '), sp2 = start.rfind(' ');
    if (sp1 == 0 || sp1 == sp2 || sp2 + 1 == start.size() || start.find(' ', sp1 + 1) != sp2) {
        throw http_error(400, "malformed request line");
    }
    req.method = start.substr(0, sp1);
    req.target = start.substr(sp1 + 1, sp2 - sp1 - 1);
    req.version = start.substr(sp2 + 1);
    if (req.version != "HTTP/1.1" && req.version != "HTTP/1.0") {
        const bool looks_http =
            req.version.size() == 8 && req.version.starts_with("HTTP/") && req.version[6] == '.';
        throw http_error(looks_http ? 505 : 400, "unsupported version " + req.version);
    }

    // Header lines up to an empty line: "Name: value".
    for (;;) {
        line = co_await reader.readline();
        if (line.empty() || line.back() != '\n') throw http_error(400, "EOF within the headers");
        const std::string_view h = chomp(line);
        if (h.empty()) break;
        const std::size_t colon = h.find(':');
        if (colon == 0 || colon == h.npos || h.substr(0, colon).find_first_of(" \t") != h.npos)
            throw http_error(400, "malformed header line");
        if (req.headers.size() == max_headers) throw http_error(431, "too many headers");
        req.headers.emplace_back(lower(h.substr(0, colon)), trim(h.substr(colon + 1)));
    }

    // Persistence: HTTP/1.1 keeps the connection by default, HTTP/1.0 closes it.
    const std::string connection = req.header("connection") ? lower(*req.header("connection")) : "";
    req.keep_alive = req.version == "HTTP/1.1" ? connection.find("close") == connection.npos
                                               : connection.find("keep-alive") != connection.npos;

    // The body: Content-Length bytes (chunked bodies are not supported by this example).
    if (req.header("transfer-encoding")) throw http_error(501, "Transfer-Encoding not supported");
    if (const std::string* length = req.header("content-length")) {
        if (length->empty() || length->size() > 9 ||
            length->find_first_not_of("0123456789") != length->npos) {
            throw http_error(400, "bad Content-Length");
        }
        const std::size_t n = std::strtoul(length->c_str(), nullptr, 10);
        if (n > max_body) throw http_error(413, "body over 1 MiB");
        try {
            req.body = co_await reader.readexactly(n);
        } catch (const ioloop::incomplete_read_error&) {
            throw http_error(400, "body shorter than its Content-Length");
        }
    }
}

// The next request, or false when the client closed, or started none within `timeout`,
// between requests. The idle wait ends at the request's first byte, which is why that byte
// is read alone (a stream has no peek): from there the whole request is under one deadline,
// since a deadline per read would let a client send a byte a second forever.
ioloop::coro<bool> read_request(ioloop::stream_reader& reader, request& req, seconds timeout) {
    std::string first;
    try {
        first = co_await ioloop::wait_for(first_byte(reader), timeout);
    } catch (const ioloop::timeout_error&) {
        co_return false;  // idle too long: closed without a word, as no request was made
    }
    if (first.empty()) co_return false;  // EOF: the client is done
    try {
        co_await ioloop::timeout(timeout, read_head_and_body(reader, req, std::move(first)));
    } catch (const ioloop::timeout_error&) {
        throw http_error(408, "the request did not arrive in time");
    }
    co_return true;
}

// One response: status line, headers, body (none for HEAD).
void respond(ioloop::stream_writer& writer, const request& req, int status, std::string_view body,
             std::string_view extra_headers = {},
             std::string_view type = "text/plain; charset=utf-8") {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) +
                      "\r\nServer: ioloop-example\r\nContent-Type: " + std::string(type) +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                      std::string(extra_headers) +
                      "Connection: " + (req.keep_alive ? "keep-alive" : "close") + "\r\n\r\n";
    if (req.method != "HEAD") out += body;
    writer.write(out);
}

// The routes: "/" greets, "/echo" sends a POST's body back; the rest is 404.
int route(ioloop::stream_writer& writer, const request& req, int nth) {
    const std::string path = req.target.substr(0, req.target.find('?'));
    if (path == "/") {
        if (req.method != "GET" && req.method != "HEAD") {
            respond(writer, req, 405, "use GET\n", "Allow: GET, HEAD\r\n");
            return 405;
        }
        respond(writer, req, 200,
                "Hello from ioloop: request " + std::to_string(nth) + " on this connection\n");
        return 200;
    }
    if (path == "/echo") {
        if (req.method != "POST") {
            respond(writer, req, 405, "POST a body to /echo\n", "Allow: POST\r\n");
            return 405;
        }
        const std::string* type = req.header("content-type");
        respond(writer, req, 200, req.body, {}, type ? *type : "application/octet-stream");
        return 200;
    }
    respond(writer, req, 404, "Not found: " + path + "\n");
    return 404;
}

// A connection's task: requests in order, until one says close, the client goes, or an error.
ioloop::coro<void> serve_client(ioloop::stream_reader reader, ioloop::stream_writer writer,
                                seconds timeout) {
    const std::string peer = writer.get_extra_info("peername").address().to_string();
    try {
        for (int nth = 1;; ++nth) {
            request req;
            int status = 0;
            try {
                if (!co_await read_request(reader, req, timeout)) break;
                status = route(writer, req, nth);
            } catch (const http_error& e) {
                req.keep_alive = false;  // the stream's state is unknown: answer and close
                status = e.status;
                respond(writer, req, e.status, std::string(e.what()) + "\n");
            } catch (const ioloop::limit_overrun_error&) {
                req.keep_alive = false;
                status = 431;
                respond(writer, req, 431, "a line over 64 KiB\n");
            }
            std::printf("%s \"%s %s %s\" %d\n", peer.c_str(), req.method.c_str(),
                        req.target.c_str(), req.version.c_str(), status);
            // Back-pressure: a slow client slows its own task. One that stops reading its
            // responses altogether would hold the connection, and what is unsent, forever:
            // after the timeout it is dropped (abort: what is buffered goes too).
            try {
                co_await ioloop::wait_for(writer.drain(), timeout);
            } catch (const ioloop::timeout_error&) {
                std::printf("%s: not reading its responses, dropped\n", peer.c_str());
                if (ioloop::transport* t = writer.transport()) t->abort();
                break;
            }
            if (!req.keep_alive) break;
        }
    } catch (const std::system_error& e) {  // reset by the peer, ...
        std::printf("%s: %s\n", peer.c_str(), e.what());
    }
    writer.close();  // sends what is buffered, then closes
}

// The demo's client: three requests written at once (pipelined) on one connection.
ioloop::coro<void> demo_client(std::uint16_t port) {
    auto [reader, writer] = co_await ioloop::open_connection("127.0.0.1", port);
    writer.write(
        "GET / HTTP/1.1\r\nHost: demo\r\n\r\n"
        "POST /echo HTTP/1.1\r\nHost: demo\r\nContent-Length: 6\r\n\r\nhello\n"
        "GET /missing HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
    const std::string responses = co_await reader.read();  // until the server closes
    std::printf("--- the three responses, as received:\n%s", responses.c_str());
}

ioloop::coro<int> amain(std::string host, long port, double serve_for, seconds timeout,
                        ioloop::serve_options options) {
    auto& loop = ioloop::get_running_loop();
    auto on_connection = [timeout](ioloop::stream_reader reader, ioloop::stream_writer writer) {
        return serve_client(std::move(reader), std::move(writer), timeout);
    };
    ioloop::server server = co_await ioloop::start_server(
        on_connection, host, static_cast<std::uint16_t>(port), options);
    const ioloop::endpoint where = server.sockets().at(0).local_endpoint();
    std::printf("http_server: listening on %s\n", where.to_string().c_str());
    if (serve_for < 0) {  // the demo
        co_await demo_client(where.port());
        co_return 0;
    }
    const char* why = "the time given";
    for (int sig : {SIGINT, SIGTERM}) {
        loop.add_signal_handler(sig, [&server, &why, sig] {
            why = sig == SIGINT ? "SIGINT" : "SIGTERM";
            server.close();  // serve_forever returns
        });
    }
    if (serve_for > 0) {
        loop.call_later(std::chrono::duration<double>(serve_for), [&server] { server.close(); });
    }
    co_await server.serve_forever();
    std::printf("http_server: stopped by %s\n", why);
    co_return 0;  // ioloop::run then cancels the connections' tasks still running
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 8080;
    double serve_for = 0;               // seconds; 0: until SIGINT or SIGTERM
    seconds timeout = default_timeout;  // idle, a whole request, a stalled reader
    std::string cert, key;              // HTTPS (WITH_TLS) when both are given
    bool usable = argc % 2 == 1;        // options come in pairs
    for (int i = 1; usable && i + 1 < argc; i += 2) {
        const std::string_view opt = argv[i];
        if (opt == "--host") {
            host = argv[i + 1];
        } else if (opt == "--port") {
            port = std::atol(argv[i + 1]);
        } else if (opt == "--serve-for") {
            serve_for = std::atof(argv[i + 1]);
        } else if (opt == "--timeout") {
            timeout = seconds(std::atof(argv[i + 1]));
        } else if (opt == "--cert") {
            cert = argv[i + 1];
        } else if (opt == "--key") {
            key = argv[i + 1];
        } else {
            usable = false;
        }
    }
    if (!usable || serve_for < 0 || !(timeout.count() > 0) ||  // !(> 0): NaN too
        cert.empty() != key.empty()) {
        std::fprintf(stderr,
                     "usage: http_server [--host H] [--port P] [--serve-for SECONDS] "
                     "[--timeout SECONDS] [--cert FILE --key FILE]\n");
        return 2;
    }
    if (argc == 1) {  // no options: the demo, on a free port
        port = 0;
        serve_for = -1;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
    try {
        ioloop::serve_options options;  // plain HTTP, unless given a certificate
#ifdef WITH_TLS
        // A server's TLS context: its certificate chain and key; no certificate is asked of
        // clients. A client that does not finish its handshake in time is dropped.
        ioloop::ssl_context tls = ioloop::create_default_context(ioloop::purpose::client_auth);
        if (!cert.empty()) {
            tls.load_cert_chain(cert, key);
            tls.set_alpn_protocols({"http/1.1"});  // a client offering h2 too gets HTTP/1.1
            options.ssl = tls;
            options.ssl_handshake_timeout =
                std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
            std::printf("http_server: HTTPS with the certificate %s\n", cert.c_str());
        }
#else
        if (!cert.empty()) {
            std::fprintf(stderr,
                         "http_server: built without TLS (define WITH_TLS, link OpenSSL)\n");
            return 2;
        }
#endif
        return ioloop::run(amain(host, port, serve_for, timeout, options));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "http_server: %s\n", e.what());
        return 1;
    }
}
