// Echo server on ioloop's callback front end: a protocol per connection that writes back
// what it receives. The transport reads into the loop's shared 64 KiB buffer and buffers
// only what the socket does not take, so an idle connection is its transport and this
// protocol.
//
//   echo_ioloop PORT
//
// SIGINT and SIGTERM stop the loop through add_signal_handler; the exit status is 0.
#include "echo_common.h"

#include <ioloop/ioloop.hpp>

#include <csignal>
#include <memory>

namespace {

class echo final : public ioloop::protocol {
public:
    void connection_made(ioloop::transport& t) override { transport_ = &t; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    ioloop::transport* transport_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
    const unsigned short port = echo_setup(argc, argv);
    ioloop::event_loop loop;
    ioloop::server server = loop.run_until_complete(
        loop.create_server([] { return std::make_unique<echo>(); }, "127.0.0.1", port));
    loop.add_signal_handler(SIGINT, [&] { loop.stop(); });
    loop.add_signal_handler(SIGTERM, [&] { loop.stop(); });
    loop.run_forever();
    return 0;
}
