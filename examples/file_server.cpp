// A static file server over HTTP/1.0 that sends each file with loop.sendfile (asyncio's):
// on Linux the kernel copies the file to the socket (sendfile(2)) and the bytes never pass
// through the program; elsewhere they go by reads on the executor and writes. One request
// per connection, GET or HEAD; the response says its Content-Length, then the connection
// closes. A path with a ".." segment, or one that is not a regular file, is a 404.
//   g++ -std=c++20 -I single_include examples/file_server.cpp -o file_server
//   ./file_server                        demo: serves this program's own file to itself, exits
//   ./file_server --root DIR --port 8080          serves DIR on 127.0.0.1:8080 until Ctrl-C
//   ./file_server --root DIR --port 0 --serve-for 60    a free port (printed), stops after 60 s
//   curl -o copy http://127.0.0.1:8080/some/file
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

// What a connection's protocol and its serving task share: the protocol dies with the
// transport, and the task must not touch the transport after that.
struct connection_state {
    bool lost = false;
};

ioloop::coro<void> serve(ioloop::transport& t, std::shared_ptr<connection_state> state,
                         std::string root, std::string head);

// Reads the request's head, then hands the connection to a task.
class request_reader : public ioloop::protocol {
public:
    explicit request_reader(std::string root) : root_(std::move(root)) {}

    void connection_made(ioloop::transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override {
        if (started_) return;
        head_.append(data);
        if (head_.find("\r\n\r\n") == std::string::npos) {
            if (head_.size() > 16384) transport_->close();  // no head is that long
            return;
        }
        started_ = true;
        transport_->pause_reading();  // one request per connection
        ioloop::create_task(serve(*transport_, state_, root_, std::move(head_)));
    }
    void connection_lost(std::error_code) override { state_->lost = true; }

private:
    ioloop::transport* transport_ = nullptr;
    std::shared_ptr<connection_state> state_ = std::make_shared<connection_state>();
    std::string root_;
    std::string head_;
    bool started_ = false;
};

// "/a/b.txt" -> "a/b.txt"; empty if the target could leave the root.
std::string relative_path(std::string_view target) {
    if (target.empty() || target[0] != '/') return {};
    target.remove_prefix(1);
    std::string_view rest = target;
    while (!rest.empty()) {
        const std::size_t slash = rest.find('/');
        const std::string_view segment = rest.substr(0, slash);
        if (segment == ".." || segment == ".") return {};
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return std::string(target);
}

void respond_status(ioloop::transport& t, const char* status) {
    t.write(std::string("HTTP/1.0 ") + status +
            "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    t.close();
}

ioloop::coro<void> serve(ioloop::transport& t, std::shared_ptr<connection_state> state,
                         std::string root, std::string head) {
    auto& loop = ioloop::get_running_loop();
    // "GET /path HTTP/1.0"
    const std::string_view line = std::string_view(head).substr(0, head.find("\r\n"));
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = line.find(' ', sp1 == std::string_view::npos ? 0 : sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
        respond_status(t, "400 Bad Request");
        co_return;
    }
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (method != "GET" && method != "HEAD") {
        respond_status(t, "405 Method Not Allowed");
        co_return;
    }
    const std::string relative = relative_path(target.substr(0, target.find('?')));
    ioloop::file f;
    long long size = -1;
    if (!relative.empty()) {
        try {
            f = co_await ioloop::open_file(root + "/" + relative, "rb");
            size = co_await f.seek(0, ioloop::seek_end);
        } catch (const std::system_error&) {
            size = -1;  // missing, a directory, unreadable: all a 404 to the client
        }
    }
    if (state->lost) co_return;
    if (size < 0) {
        respond_status(t, "404 Not Found");
        co_return;
    }
    t.write("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
            std::to_string(size) + "\r\nConnection: close\r\n\r\n");
    if (method == "GET" && size > 0) {
        try {
            // asyncio: await loop.sendfile(transport, file)
            const std::size_t sent = co_await loop.sendfile(t, f);
            std::printf("file_server: sent %s (%zu bytes)\n", relative.c_str(), sent);
        } catch (const std::exception& e) {
            std::printf("file_server: %s: %s\n", relative.c_str(), e.what());
            if (!state->lost) t.abort();
            co_return;
        }
    }
    if (!state->lost) t.close();  // once the buffered bytes are out
}

ioloop::coro<int> amain(std::string root, std::string host, long port, double serve_for) {
    auto& loop = ioloop::get_running_loop();
    // Made before the co_await, not inside it: g++ 12 copies a lambda's captures bitwise
    // there (a double free of the string).
    auto factory = [root] { return std::make_unique<request_reader>(root); };
    ioloop::server server =
        co_await loop.create_server(std::move(factory), host, static_cast<std::uint16_t>(port));
    const ioloop::endpoint where = server.sockets()[0].local_endpoint();
    std::printf("file_server: listening on %s\n", where.to_string().c_str());
    if (serve_for < 0) {  // the demo: fetch this program's source from itself
        auto [reader, writer] = co_await ioloop::open_connection(host, where.port());
        writer.write("GET /" + std::string(__FILE__).substr(root.size() + 1) +
                     " HTTP/1.0\r\n\r\n");
        const std::string answer = co_await reader.read();
        std::printf("demo: %zu bytes back, starting \"%s\"\n", answer.size(),
                    answer.substr(0, answer.find("\r\n")).c_str());
        server.close();
        co_return answer.rfind("HTTP/1.0 200 OK", 0) == 0 ? 0 : 1;
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
    std::printf("file_server: stopped by %s\n", why);
    co_return 0;
}

int main(int argc, char** argv) {
    std::string root = ".";
    std::string host = "127.0.0.1";
    long port = 8080;
    double serve_for = 0;         // seconds; 0: until SIGINT or SIGTERM
    bool usable = argc % 2 == 1;  // options come in pairs
    for (int i = 1; usable && i + 1 < argc; i += 2) {
        const std::string_view opt = argv[i];
        if (opt == "--root") {
            root = argv[i + 1];
        } else if (opt == "--host") {
            host = argv[i + 1];
        } else if (opt == "--port") {
            port = std::atol(argv[i + 1]);
        } else if (opt == "--serve-for") {
            serve_for = std::atof(argv[i + 1]);
        } else {
            usable = false;
        }
    }
    if (!usable || serve_for < 0 || port < 0 || port > 65535) {
        std::fprintf(stderr, "usage: file_server [--root DIR] [--host H] [--port P] "
                             "[--serve-for SECONDS]\n");
        return 2;
    }
    if (argc == 1) {  // the demo: this source file's directory, a free port
        const std::string self = __FILE__;
        const std::size_t slash = self.find_last_of("/\\");
        root = slash == std::string::npos ? "." : self.substr(0, slash);
        port = 0;
        serve_for = -1;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
    try {
        return ioloop::run(amain(root, host, port, serve_for));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "file_server: %s\n", e.what());
        return 1;
    }
}
