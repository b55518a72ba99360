// ioloop: server (asyncio's Server): listening sockets that accept connections and give
// each a transport and a protocol from the server's factory. `server` is a move-only
// handle on a detail::server_state (net/server_state.hpp); destroying it stops the
// listening (the connections already made go on).
#ifndef IOLOOP_NET_SERVER_HPP
#define IOLOOP_NET_SERVER_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/net/server_state.hpp"
#include "ioloop/net/socket.hpp"

#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

class server {
public:
    server() noexcept = default;
    explicit server(detail::server_state* state) noexcept : state_(state) {}
    server(server&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    server& operator=(server&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::exchange(other.state_, nullptr);
        }
        return *this;
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    // Stops listening; the connections it made go on.
    ~server() { reset(); }

    // Stops listening and closes the listening sockets; the connections go on (asyncio).
    void close() noexcept {
        if (state_) state_->close();
    }

    // co_await s.wait_closed(): until close() was called and every connection the server
    // made is gone (asyncio 3.12).
    template <class = void>
    coro<void> wait_closed() {
        if (!state_) co_return;
        detail::server_state* st = state_;
        st->add_ref();  // the handle may go while this waits
        struct release_on_exit {
            detail::server_state* st;
            ~release_on_exit() { st->release(); }
        } release{st};
        co_await st->idle().wait();
    }

    // Serves until close() (then returns) or until the awaiting task is cancelled (then
    // closes the server and lets cancelled_error through).
    template <class = void>
    coro<void> serve_forever() {
        if (!state_) throw invalid_state_error("server::serve_forever: an empty server handle");
        detail::server_state* st = state_;
        st->start_serving();
        st->add_ref();
        struct close_on_exit {
            detail::server_state* st;
            ~close_on_exit() {
                st->close();
                st->release();
            }
        } closer{st};
        co_await st->closed_event().wait();
    }

    void start_serving() {
        if (!state_) throw invalid_state_error("server::start_serving: an empty server handle");
        state_->start_serving();
    }

    bool is_serving() const noexcept { return state_ && state_->is_serving(); }

    // The listening sockets; empty once closed. With port 0 asked for,
    // sockets()[0].local_endpoint().port() is the port the system picked.
    const std::vector<socket>& sockets() const noexcept {
        static const std::vector<socket> none;
        return state_ ? state_->sockets() : none;
    }

private:
    void reset() noexcept {
        if (!state_) return;
        state_->close();
        std::exchange(state_, nullptr)->release();
    }

    detail::server_state* state_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
