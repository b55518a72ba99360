// Must not compile: a stream factory whose protocol is neither an ioloop::protocol nor an
// ioloop::buffered_protocol. tests/CMakeLists.txt checks that the compiler says why.
#include <ioloop/ioloop.hpp>

#include <memory>

struct not_a_stream_protocol : ioloop::datagram_protocol {};

ioloop::coro<void> serve() {
    auto factory = [] { return std::make_unique<not_a_stream_protocol>(); };
    (void)co_await ioloop::get_running_loop().create_server(factory, "127.0.0.1", 0);
}

int main() { ioloop::run(serve()); }
