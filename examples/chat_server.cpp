// A chat server on streams: every line a client sends goes to all the other clients,
// prefixed with the sender's name. Each connection is a task that reads lines; sending to
// the others is a plain write (buffered, never waiting), and a client that falls more than
// 1 MiB behind is disconnected so one stalled reader cannot hold everyone's memory.
// Commands: "/name NEW" renames, "/quit" leaves (as does closing the connection).
//   g++ -std=c++20 -I single_include examples/chat_server.cpp -o chat_server
//   ./chat_server                   demo: serves on a free port, two clients chat, exits
//   ./chat_server --port 7777       serves 127.0.0.1:7777 until Ctrl-C
//   nc 127.0.0.1 7777               (in two terminals: type lines in each)
//   ./chat_server --port 0 --serve-for 30     a free port (printed), stops after 30 s
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <list>
#include <string>
#include <string_view>
#include <system_error>

constexpr std::size_t max_behind = 1 << 20;  // bytes buffered for a client before it is dropped

struct member {
    std::string name;
    ioloop::stream_writer* writer;  // lives in the member's own task
};

class room {
public:
    std::list<member>::iterator join(ioloop::stream_writer& writer) {
        const std::string name = "guest-" + std::to_string(++joined_);
        broadcast(nullptr, "* " + name + " joined\n");
        std::string here;
        for (const member& m : members_) here += (here.empty() ? "" : ", ") + m.name;
        writer.write("* welcome, " + name + "; also here: " + (here.empty() ? "nobody" : here) +
                     "; /name NEW to rename, /quit to leave\n");
        std::printf("chat_server: %s joined\n", name.c_str());
        return members_.insert(members_.end(), member{name, &writer});
    }
    void leave(std::list<member>::iterator who) noexcept {
        std::printf("chat_server: %s left\n", who->name.c_str());
        try {
            broadcast(&*who, "* " + who->name + " left\n");
        } catch (...) {  // out of memory: the others just miss the news
        }
        members_.erase(who);
    }
    // Asks every client to go: each task then reads EOF and leaves.
    void close_all() {
        for (member& m : members_) m.writer->close();
    }
    // `line` to everyone but `from`.
    void broadcast(const member* from, std::string_view line) {
        for (member& m : members_) {
            if (&m == from || m.writer->is_closing()) continue;
            m.writer->write(line);
            ioloop::transport* t = m.writer->transport();
            if (t && t->get_write_buffer_size() > max_behind) {
                std::printf("chat_server: %s is too far behind, disconnecting it\n",
                            m.name.c_str());
                t->abort();  // its task then reads an error, and leaves
            }
        }
    }

private:
    std::list<member> members_;
    unsigned long joined_ = 0;
};

// One client's task: lines in, broadcast out, until EOF, "/quit" or an error.
ioloop::coro<void> chat(room& r, ioloop::stream_reader reader, ioloop::stream_writer writer) {
    struct leave_at_exit {  // also when the task is cancelled (the loop shutting down)
        room& r;
        std::list<member>::iterator me;
        ~leave_at_exit() { r.leave(me); }
    } membership{r, r.join(writer)};
    member& me = *membership.me;
    try {
        for (;;) {
            std::string line;
            try {
                line = co_await reader.readline();  // "" at EOF
            } catch (const ioloop::limit_overrun_error&) {
                writer.write("* that line was over 64 KiB, and was dropped\n");
                continue;  // the stream goes on after the line
            }
            if (line.empty() || line == "/quit\n" || line == "/quit\r\n") break;
            if (line.back() != '\n') line += '\n';  // a last line without one, at EOF
            if (line.starts_with("/name ") && line.size() > 7) {
                std::string name = line.substr(6, line.find_first_of("\r\n") - 6);
                r.broadcast(nullptr, "* " + me.name + " is now " + name + "\n");
                me.name = std::move(name);
                continue;
            }
            r.broadcast(&me, me.name + ": " + line);
        }
    } catch (const std::system_error& e) {  // reset, or aborted for being too slow
        std::printf("chat_server: %s: %s\n", me.name.c_str(), e.what());
    }
    writer.close();
}

// The demo: two clients; each line of one reaches the other.
ioloop::coro<int> demo(room& r) {
    auto on_client = [&r](ioloop::stream_reader rd, ioloop::stream_writer wr) {
        return chat(r, std::move(rd), std::move(wr));
    };
    ioloop::server server = co_await ioloop::start_server(on_client, "127.0.0.1", 0);
    const std::uint16_t port = server.sockets().at(0).local_endpoint().port();
    std::printf("chat_server: listening on 127.0.0.1:%u\n", port);

    auto [alice_in, alice] = co_await ioloop::open_connection("127.0.0.1", port);
    std::printf("alice reads: %s", (co_await alice_in.readline()).c_str());
    auto [bob_in, bob] = co_await ioloop::open_connection("127.0.0.1", port);
    std::printf("bob reads:   %s", (co_await bob_in.readline()).c_str());
    std::printf("alice reads: %s", (co_await alice_in.readline()).c_str());  // bob joined
    alice.write("/name alice\nhello bob\n");
    std::printf("bob reads:   %s", (co_await bob_in.readline()).c_str());
    std::printf("bob reads:   %s", (co_await bob_in.readline()).c_str());
    bob.write("hi alice, bye\n");
    bob.write_eof();               // bob leaves
    for (int i = 0; i < 3; ++i) {  // her rename, bob's line, bob leaving
        std::printf("alice reads: %s", (co_await alice_in.readline()).c_str());
    }
    co_return 0;  // ioloop::run then cancels the clients' tasks on the server's side
}

ioloop::coro<int> serve(room& r, std::string host, std::uint16_t port, double serve_for) {
    auto& loop = ioloop::get_running_loop();
    auto on_client = [&r](ioloop::stream_reader rd, ioloop::stream_writer wr) {
        return chat(r, std::move(rd), std::move(wr));
    };
    ioloop::server server = co_await ioloop::start_server(on_client, host, port);
    std::printf("chat_server: listening on %s\n",
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
    co_await server.serve_forever();  // until server.close()
    r.broadcast(nullptr, "* the server is shutting down\n");
    r.close_all();
    try {
        co_await ioloop::wait_for(server.wait_closed(), std::chrono::seconds(5));
    } catch (const ioloop::timeout_error&) {
        // Clients that do not take their last lines: ioloop::run cancels their tasks.
    }
    std::printf("chat_server: stopped by %s\n", why);
    co_return 0;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    long port = 7777;
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
        std::fprintf(stderr, "usage: chat_server [--host H] [--port P] [--serve-for SECONDS]\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
    room r;  // outlives the loop: the clients' tasks leave it even when they are cancelled
    try {
        if (argc == 1) return ioloop::run(demo(r));
        return ioloop::run(serve(r, host, static_cast<std::uint16_t>(port), serve_for));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "chat_server: %s\n", e.what());
        return 1;
    }
}
