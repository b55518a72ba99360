// ioloop: iocp_listener, a listening socket on a completion backend: one AcceptEx in
// flight while its server serves, the next started as each completes.
#ifndef IOLOOP_NET_IOCP_LISTENER_HPP
#define IOLOOP_NET_IOCP_LISTENER_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/iocp/overlapped_accept.hpp"
#include "ioloop/net/server_state.hpp"
#include "ioloop/net/socket.hpp"

#if defined(IOLOOP_WINDOWS)

#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class iocp_listener final : public server_listener {
public:
    // The socket's completions go to the loop's port from now on. `start` makes the
    // transports of the connections it accepts.
    iocp_listener(server_state& server, socket& s, start_stream_fn start)
        : server_(server), fd_(s.fd()), family_(family_of(s.fd())), start_(start) {
        associate_once(server.loop(), s);
    }
    ~iocp_listener() override { serve(false); }

    void serve(bool on) noexcept override {
        if (on) {
            accept_next();
        } else if (accepting_) {
            std::exchange(accepting_, nullptr)->orphan();
        }
    }

    // accept_op's report: the connection, or why there is none.
    void accepted(socket conn, const endpoint& peer, std::error_code ec) noexcept {
        accepting_ = nullptr;
        if (!server_.is_serving()) return;  // closes conn
        if (ec && ec != std::errc::connection_reset && ec != std::errc::connection_aborted) {
            server_.accept_failed(ec, fd_);
            return;
        }
        if (!ec) server_.accepted(std::move(conn), peer.native()->sa_family, start_);
        accept_next();
    }

private:
    void accept_next() noexcept {
        if (accepting_ || !server_.is_serving()) return;
        try {
            accepting_ = accept_op<iocp_listener>::start(server_.loop(), fd_, family_, *this);
        } catch (const std::system_error& e) {
            server_.accept_failed(e.code(), fd_);
        }
    }

    server_state& server_;
    native_socket fd_;
    address_family family_;  // of what it accepts
    start_stream_fn start_;
    accept_op<iocp_listener>* accepting_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
