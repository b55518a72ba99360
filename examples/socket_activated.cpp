// A line echo server that takes its listening socket from systemd's socket activation
// (asyncio's start_server(sock=...)): systemd binds the port, then starts the server with
// the socket as descriptor 3 and LISTEN_FDS=1, LISTEN_PID=<its pid> in the environment.
// Not activated, it binds 127.0.0.1:--port itself. Each client is greeted with where the
// socket came from, then gets its lines back. POSIX (systemd's protocol is descriptors).
//   g++ -std=c++20 -I single_include examples/socket_activated.cpp -o socket_activated
//   ./socket_activated --port 8888                   binds it itself (try: nc 127.0.0.1 8888)
//   python3 examples/socket_activate.py --port 8888 -- ./socket_activated
//                                                    activated, as systemd would do it
// As a systemd unit pair: socket_activated.socket with ListenStream=8888, and
// socket_activated.service with ExecStart=/path/to/socket_activated.
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <unistd.h>

namespace {

// sd_listen_fds(3)'s first descriptor: systemd passes them from 3 on.
constexpr int listen_fds_start = 3;

// The socket systemd passed, or none: LISTEN_PID must name this process (the variables may
// have been meant for a parent), and LISTEN_FDS say how many there are (one is used here).
// Both are removed, as sd_listen_fds(1) does, so that a child of ours does not take them
// for its own.
ioloop::socket activated_socket() {
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    const bool ours = pid && fds && std::atol(pid) == static_cast<long>(::getpid()) &&
                      std::atol(fds) >= 1;
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!ours) return ioloop::socket();
    // Adopting makes it non-blocking and close-on-exec, as the loop needs.
    return ioloop::socket(listen_fds_start);
}

const char* origin = "its own socket";

ioloop::coro<void> echo_lines(ioloop::stream_reader reader, ioloop::stream_writer writer) {
    try {
        writer.write(std::string("hello: serving on ") + origin + "\n");
        for (;;) {
            std::string line = co_await reader.readline();  // "" at EOF
            if (line.empty()) break;
            writer.write(line);
            co_await writer.drain();
        }
    } catch (const std::system_error& e) {  // the client reset the connection, ...
        std::printf("socket_activated: %s\n", e.what());
    }
    writer.close();
}

ioloop::coro<int> serve(ioloop::socket sock, std::uint16_t port, double serve_for) {
    auto& loop = ioloop::get_running_loop();
    ioloop::server server;
    if (sock.is_open()) {
        origin = "a socket from socket activation";
        server = co_await ioloop::start_server(echo_lines, std::move(sock));
    } else {
        server = co_await ioloop::start_server(echo_lines, "127.0.0.1", port);
    }
    std::printf("socket_activated: listening on %s (%s)\n",
                server.sockets().at(0).local_endpoint().to_string().c_str(), origin);
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
    std::printf("socket_activated: stopped by %s\n", why);
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    long port = 8888;
    double serve_for = 0;         // seconds; 0: until SIGINT or SIGTERM
    bool usable = argc % 2 == 1;  // options come in pairs
    for (int i = 1; usable && i + 1 < argc; i += 2) {
        const std::string_view opt = argv[i];
        if (opt == "--port") {
            port = std::atol(argv[i + 1]);
        } else if (opt == "--serve-for") {
            serve_for = std::atof(argv[i + 1]);
        } else {
            usable = false;
        }
    }
    if (!usable || port < 0 || port > 65535) {
        std::fprintf(stderr, "usage: socket_activated [--port P] [--serve-for SECONDS]\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
    try {
        return ioloop::run(serve(activated_socket(), static_cast<std::uint16_t>(port), serve_for));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "socket_activated: %s\n", e.what());
        return 1;
    }
}
