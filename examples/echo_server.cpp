// An echo server with protocols and transports (asyncio's callback networking API): each
// connection gets its own echo_protocol, which writes back what it receives. Flow control
// as asyncio does it: when the client does not read its echoes fast enough, the
// transport's write buffer passes its high-water mark, pause_writing() is called, and the
// protocol stops reading until resume_writing(): the buffer stays bounded.
//   g++ -std=c++20 -I single_include examples/echo_server.cpp -o echo_server
//   ./echo_server                   demo: serves on a free port, a client talks to it, exits
//   ./echo_server --port 8888       serves 127.0.0.1:8888 until Ctrl-C (try: nc 127.0.0.1 8888)
//   ./echo_server --port 0 --serve-for 30     a free port (printed), stops after 30 s
//   ./echo_server --connect 8888 < file       the client alone: sends stdin, prints the echo
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

// The server side: one per connection, made by the server's factory.
class echo_protocol : public ioloop::protocol {
public:
    explicit echo_protocol(bool verbose) : verbose_(verbose) {}

    void connection_made(ioloop::transport& t) override {
        transport_ = &t;
        peer_ = t.get_extra_info("peername").address().to_string();
        if (verbose_) std::printf("echo_server: %s connected\n", peer_.c_str());
    }
    void data_received(std::string_view data) override {
        transport_->write(data);  // buffered if the socket cannot take it all now
        bytes_ += data.size();
    }
    // The client sent EOF: returning false closes the transport once the echo is sent.
    bool eof_received() override { return false; }
    void pause_writing() override { transport_->pause_reading(); }
    void resume_writing() override { transport_->resume_reading(); }
    void connection_lost(std::error_code ec) override {
        if (!verbose_) return;
        std::printf("echo_server: %s gone after %zu bytes%s%s\n", peer_.c_str(), bytes_,
                    ec ? ": " : "", ec ? ec.message().c_str() : "");
    }

private:
    ioloop::transport* transport_ = nullptr;
    std::string peer_;
    std::size_t bytes_ = 0;
    bool verbose_;
};

// The client side: sends its payload, half-closes, collects the echo until the server
// closes, then stops the loop.
class client_protocol : public ioloop::protocol {
public:
    client_protocol(ioloop::event_loop& loop, std::string payload, std::string& echo,
                    std::error_code& failure)
        : loop_(loop), payload_(std::move(payload)), echo_(echo), failure_(failure) {}

    void connection_made(ioloop::transport& t) override {
        t.write(payload_);  // all of it: the transport buffers what the socket refuses
        t.write_eof();      // the server sees EOF after the last byte
    }
    void data_received(std::string_view data) override { echo_.append(data); }
    void connection_lost(std::error_code ec) override {
        failure_ = ec;
        loop_.stop();
    }

private:
    ioloop::event_loop& loop_;
    std::string payload_;
    std::string& echo_;
    std::error_code& failure_;
};

// Connects to host:port, sends `payload`, returns what came back (throws on failure).
static std::string echo_client(ioloop::event_loop& loop, const std::string& host,
                               std::uint16_t port, std::string payload) {
    std::string echo;
    std::error_code failure;
    loop.run_until_complete(loop.create_connection(
        [&] { return std::make_unique<client_protocol>(loop, std::move(payload), echo, failure); },
        host, port));
    loop.run_forever();  // until connection_lost stops it
    if (failure) throw std::system_error(failure, "echo client");
    return echo;
}

static std::string read_all(std::FILE* in) {
    std::string data;
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) data.append(buf, n);
    return data;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = -1, connect_port = -1;
    double serve_for = 0;         // seconds; 0: until SIGINT or SIGTERM
    bool usable = argc % 2 == 1;  // options come in pairs
    for (int i = 1; usable && i + 1 < argc; i += 2) {
        const std::string_view opt = argv[i];
        if (opt == "--host") {
            host = argv[i + 1];
        } else if (opt == "--port") {
            port = std::atol(argv[i + 1]);
        } else if (opt == "--serve-for") {
            serve_for = std::atof(argv[i + 1]);
        } else if (opt == "--connect") {
            connect_port = std::atol(argv[i + 1]);
        } else {
            usable = false;
        }
    }
    if (!usable) {
        std::fprintf(stderr,
                     "usage: echo_server [--host H] [--port P] [--serve-for SECONDS]\n"
                     "       echo_server [--host H] --connect PORT < payload\n");
        return 2;
    }
    const bool demo = argc == 1;  // no options: serve on a free port and talk to itself
    if (demo) port = 0;
    if (port < 0) port = 8888;

    ioloop::event_loop loop;
    try {
        if (connect_port >= 0) {  // client mode: stdin to the server, the echo to stdout
            const std::string echo =
                echo_client(loop, host, static_cast<std::uint16_t>(connect_port), read_all(stdin));
            std::fwrite(echo.data(), 1, echo.size(), stdout);
            loop.close();
            return 0;
        }

        std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
        // asyncio: server = loop.run_until_complete(loop.create_server(factory, host, port))
        ioloop::server server = loop.run_until_complete(
            loop.create_server([&] { return std::make_unique<echo_protocol>(!demo); }, host,
                               static_cast<std::uint16_t>(port)));
        const ioloop::endpoint where = server.sockets().at(0).local_endpoint();
        std::printf("echo_server: listening on %s\n", where.to_string().c_str());

        if (demo) {
            for (std::string line : {"hello", "a longer line, echoed byte for byte"}) {
                std::string echo = echo_client(loop, host, where.port(), line);
                std::printf("sent \"%s\", got back \"%s\"\n", line.c_str(), echo.c_str());
            }
            const std::string big(4 << 20, 'x');  // 4 MiB: flow control at work
            const bool same = echo_client(loop, host, where.port(), big) == big;
            std::printf("sent 4 MiB, got back %s\n", same ? "the same 4 MiB" : "something else");
            loop.close();
            return same ? 0 : 1;
        }

        const char* why = "the time given";
        for (int sig : {SIGINT, SIGTERM}) {
            loop.add_signal_handler(sig, [&loop, &why, sig] {
                why = sig == SIGINT ? "SIGINT" : "SIGTERM";
                loop.stop();
            });
        }
        if (serve_for > 0) {
            loop.call_later(std::chrono::duration<double>(serve_for), [&loop] { loop.stop(); });
        }
        loop.run_forever();
        server.close();  // stop listening; close() below ends the connections left
        std::printf("echo_server: stopped by %s\n", why);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
    loop.close();
}
