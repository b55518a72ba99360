// Echo server on ioloop's coroutine front end: a task per connection, as asyncio's echo
// server is written: read what is there, write it back, drain.
//
//   echo_ioloop_coro PORT
//
// SIGINT and SIGTERM close the server through add_signal_handler; serve_forever then
// returns, ioloop::run cancels the connections' tasks, and the exit status is 0.
#include "echo_common.h"

#include <ioloop/ioloop.hpp>

#include <csignal>
#include <string>
#include <system_error>

namespace {

ioloop::coro<void> echo(ioloop::stream_reader reader, ioloop::stream_writer writer) {
    try {
        for (;;) {
            std::string data = co_await reader.read(64 * 1024);
            if (data.empty()) break;  // EOF
            writer.write(data);
            co_await writer.drain();
        }
    } catch (const std::system_error&) {
        // The client reset the connection: nothing to say, the writer closes below.
    }
    writer.close();
}

ioloop::coro<void> serve(unsigned short port) {
    ioloop::server server = co_await ioloop::start_server(echo, "127.0.0.1", port);
    auto& loop = ioloop::get_running_loop();
    loop.add_signal_handler(SIGINT, [&] { server.close(); });
    loop.add_signal_handler(SIGTERM, [&] { server.close(); });
    co_await server.serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
    ioloop::run(serve(echo_setup(argc, argv)));
    return 0;
}
