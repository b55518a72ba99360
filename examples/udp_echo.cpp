// A UDP echo server and client with datagram protocols (asyncio's
// loop.create_datagram_endpoint): the server is bound to a local address and answers each
// datagram to its sender; the client is connected to the server's address, so its
// sendto() needs no address and it hears only from the server.
//   g++ -std=c++20 -I single_include examples/udp_echo.cpp -o udp_echo
//   ./udp_echo                      demo: a server on a free port, a client talks to it, exits
//   ./udp_echo --port 9999          serves 127.0.0.1:9999 until Ctrl-C (try: nc -u 127.0.0.1 9999)
//   ./udp_echo --port 0 --serve-for 30       a free port (printed), stops after 30 s
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
#include <vector>

class echo_server_protocol : public ioloop::datagram_protocol {
public:
    explicit echo_server_protocol(bool verbose) : verbose_(verbose) {}

    void connection_made(ioloop::datagram_transport& t) override { transport_ = &t; }
    void datagram_received(std::string_view data, const ioloop::endpoint& from) override {
        if (verbose_)
            std::printf("udp_echo: %zu bytes from %s\n", data.size(), from.to_string().c_str());
        transport_->sendto(data, from);  // queued if the socket cannot take it now
    }
    // A send failed (say, ICMP port unreachable from a client gone): UDP goes on.
    void error_received(std::error_code ec) override {
        std::printf("udp_echo: error received: %s\n", ec.message().c_str());
    }

private:
    ioloop::datagram_transport* transport_ = nullptr;
    bool verbose_;
};

// Sends each message, prints each answer, and closes once all came back.
class echo_client_protocol : public ioloop::datagram_protocol {
public:
    echo_client_protocol(ioloop::event_loop& loop, std::vector<std::string> messages,
                         std::size_t& answers)
        : loop_(loop), messages_(std::move(messages)), answers_(answers) {}

    void connection_made(ioloop::datagram_transport& t) override {
        transport_ = &t;
        for (const std::string& m : messages_) t.sendto(m);  // to the connected server
    }
    void datagram_received(std::string_view data, const ioloop::endpoint& from) override {
        std::printf("client: \"%.*s\" back from %s\n", static_cast<int>(data.size()), data.data(),
                    from.to_string().c_str());
        if (++answers_ == messages_.size()) transport_->close();
    }
    void error_received(std::error_code ec) override {
        std::printf("client: error received: %s\n", ec.message().c_str());
    }
    void connection_lost(std::error_code) override { loop_.stop(); }

private:
    ioloop::event_loop& loop_;
    ioloop::datagram_transport* transport_ = nullptr;
    std::vector<std::string> messages_;
    std::size_t& answers_;
};

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 9999;
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
        } else {
            usable = false;
        }
    }
    if (!usable) {
        std::fprintf(stderr,
                     "usage: udp_echo [--host NUMERIC_IP] [--port P] [--serve-for SECONDS]\n");
        return 2;
    }
    const bool demo = argc == 1;  // no options: serve on a free port and talk to itself
    if (demo) port = 0;

    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
    ioloop::event_loop loop;
    try {
        // asyncio: loop.create_datagram_endpoint(factory, local_addr=(host, port))
        auto [server, server_protocol] = loop.run_until_complete(loop.create_datagram_endpoint(
            [&] { return std::make_unique<echo_server_protocol>(!demo); },
            ioloop::endpoint::ip(host, static_cast<std::uint16_t>(port)), ioloop::endpoint()));
        (void)server_protocol;  // the transport owns it
        const ioloop::endpoint where = server->get_extra_info("sockname").address();
        std::printf("udp_echo: listening on %s\n", where.to_string().c_str());

        if (demo) {
            // The client: no local address (the system picks one), the server as its peer.
            std::size_t answers = 0;  // not in the protocol: it dies with its transport
            loop.run_until_complete(loop.create_datagram_endpoint(
                [&] {
                    return std::make_unique<echo_client_protocol>(
                        loop, std::vector<std::string>{"one", "two", "three"}, answers);
                },
                ioloop::endpoint(), where));
            // UDP may lose datagrams (not on loopback, in practice): do not wait forever.
            ioloop::timer_handle give_up =
                loop.call_later(std::chrono::seconds(2), [&loop] { loop.stop(); });
            loop.run_forever();  // until the client has its answers
            give_up.cancel();
            std::printf("client: %zu of 3 answers\n", answers);
            loop.close();
            return answers == 3 ? 0 : 1;
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
        server->close();
        std::printf("udp_echo: stopped by %s\n", why);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "udp_echo: %s\n", e.what());
        return 1;
    }
    loop.close();
}
