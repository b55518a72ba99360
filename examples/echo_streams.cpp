// An echo server and client with coroutines and streams (asyncio's start_server and
// open_connection): each connection is a task that reads and writes back, waiting in
// drain() when the client reads slowly. The client sends while it reads: a large echo
// comes back while the payload is still going out.
//   g++ -std=c++20 -I single_include examples/echo_streams.cpp -o echo_streams
//   ./echo_streams                  demo: serves on a free port, three clients at once, exits
//   ./echo_streams --port 8888      serves 127.0.0.1:8888 until Ctrl-C (try: nc 127.0.0.1 8888)
//   ./echo_streams --port 0 --serve-for 30    a free port (printed), stops after 30 s
//   ./echo_streams --connect 8888 < file      the client alone: sends stdin, prints the echo
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>

// The server's task for one connection (asyncio:
// `while data := await reader.read(65536): writer.write(data); await writer.drain()`).
ioloop::coro<void> echo(ioloop::stream_reader reader, ioloop::stream_writer writer) {
    try {
        for (;;) {
            std::string data = co_await reader.read(65536);  // some bytes, or "" at EOF
            if (data.empty()) break;
            writer.write(data);
            co_await writer.drain();  // waits while the client is behind
        }
    } catch (const std::system_error& e) {  // the client reset the connection, ...
        std::printf("echo_streams: %s\n", e.what());
    }
    writer.close();  // or just return: the connection closes with its last writer
}

ioloop::coro<void> send_all(ioloop::stream_writer& writer, std::string_view data) {
    writer.write(data);
    co_await writer.drain();
    writer.write_eof();  // the server reads EOF after the last byte
}

// Sends `payload` to host:port and returns what came back.
ioloop::coro<std::string> echo_client(std::string host, std::uint16_t port, std::string payload) {
    auto [reader, writer] = co_await ioloop::open_connection(host, port);
    // Sending is a task of its own: it waits in drain() while this one reads the echo.
    ioloop::task<void> sender = ioloop::create_task(send_all(writer, payload));
    std::string back = co_await reader.read();  // everything, until the server closes
    co_await sender;
    writer.close();
    co_await writer.wait_closed();
    co_return back;
}

ioloop::coro<int> demo() {
    ioloop::server server = co_await ioloop::start_server(echo, "127.0.0.1", 0);
    const std::uint16_t port = server.sockets().at(0).local_endpoint().port();
    std::printf("echo_streams: listening on 127.0.0.1:%u\n", port);
    const std::string big(4 << 20, 'x');  // 4 MiB: drain() at work on both sides
    // Three clients at once (asyncio.gather); results in argument order.
    auto [a, b, c] = co_await ioloop::gather(echo_client("127.0.0.1", port, "hello"),
                                             echo_client("127.0.0.1", port, "world"),
                                             echo_client("127.0.0.1", port, big));
    std::printf("got back \"%s\", \"%s\" and %s\n", a.c_str(), b.c_str(),
                c == big ? "the same 4 MiB" : "something else");
    server.close();
    co_await server.wait_closed();  // every connection it made is gone
    co_return c == big ? 0 : 1;
}

ioloop::coro<int> serve(std::string host, std::uint16_t port, double serve_for) {
    auto& loop = ioloop::get_running_loop();
    ioloop::server server = co_await ioloop::start_server(echo, host, port);
    std::printf("echo_streams: listening on %s\n",
                server.sockets().at(0).local_endpoint().to_string().c_str());
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
    std::printf("echo_streams: stopped by %s\n", why);
    co_return 0;  // ioloop::run then cancels the connections' tasks still running
}

ioloop::coro<int> client(std::string host, std::uint16_t port) {
    std::string payload;  // stdin, read before the loop's work starts (it blocks)
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, stdin)) > 0;) payload.append(buf, n);
    const std::string back = co_await echo_client(host, port, std::move(payload));
    std::fwrite(back.data(), 1, back.size(), stdout);
    co_return 0;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 8888, connect_port = -1;
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
                     "usage: echo_streams [--host H] [--port P] [--serve-for SECONDS]\n"
                     "       echo_streams [--host H] --connect PORT < payload\n");
        return 2;
    }
    try {
        if (connect_port >= 0) {
            return ioloop::run(client(host, static_cast<std::uint16_t>(connect_port)));
        }
        std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
        if (argc == 1) return ioloop::run(demo());
        return ioloop::run(serve(host, static_cast<std::uint16_t>(port), serve_for));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_streams: %s\n", e.what());
        return 1;
    }
}
