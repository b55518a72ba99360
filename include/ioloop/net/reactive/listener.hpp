// ioloop: reactive_listener, a listening socket on a readiness backend: watched for
// readability while its server serves; each report accepts what the backlog holds.
#ifndef IOLOOP_NET_REACTIVE_LISTENER_HPP
#define IOLOOP_NET_REACTIVE_LISTENER_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/server_state.hpp"
#include "ioloop/net/socket.hpp"

#include <string>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class reactive_listener final : public server_listener, private io_watcher {
public:
    // `start` makes the transports of the connections it accepts.
    reactive_listener(server_state& server, native_socket fd, start_stream_fn start) noexcept
        : server_(server), fd_(fd), start_(start) {}

    void serve(bool on) noexcept override {
        if (watched_ == on) return;
        try {
            net_access::watch(server_.loop(), fd_, on ? 0 : backend::io_read,
                              on ? backend::io_read : 0, *this);
            watched_ = on;
        } catch (...) {
            server_.report(concat({"server: cannot watch listening socket ", decimal(fd_)}));
        }
    }

private:
    // Takes up to `backlog` connections per readiness report, as asyncio does.
    void on_io(unsigned) noexcept override {
        for (int i = 0; i < server_.backlog() && watched_ && server_.is_serving(); ++i) {
            sockaddr_storage peer{};
            socklen_t size = 0;
            socket conn = socket::accept_on(fd_, peer, size);
            if (!conn.is_open()) {
                const int err = last_socket_error();
                if (accept_again(err)) continue;
                if (would_block(err)) return;
                server_.accept_failed(system_error_code(err), fd_);
                return;
            }
            server_.accepted(std::move(conn), peer.ss_family, start_);
        }
    }

    std::string describe() const override {
        return concat({"the server accepting on socket ", decimal(fd_)});
    }

    server_state& server_;
    native_socket fd_;
    start_stream_fn start_;
    bool watched_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
