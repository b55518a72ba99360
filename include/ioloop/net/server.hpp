// ioloop: server (asyncio's Server): listening sockets that accept connections and give
// each a transport and a protocol from the server's factory. `server` is a move-only
// handle; destroying it stops the listening (the connections already made go on).
//
// Accepting under EMFILE (no descriptor left): the server reports it once through the
// loop's exception handler, stops watching its sockets for 100 ms and tries again, so it
// neither spins nor gives up; the pending clients wait in the kernel's backlog.
#ifndef IOLOOP_NET_SERVER_HPP
#define IOLOOP_NET_SERVER_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/event.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/unique_function.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/handle.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/overlapped_accept.hpp"
#include "ioloop/net/overlapped_call.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/socket_transport.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/stream_transport.hpp"

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A stream protocol factory: a plain protocol's or a buffered one's.
using protocol_factory = unique_function<owned_stream_protocol()>;

class server_state final : public loop_resource, public connection_counter {
public:
    // How long accepting pauses when the process is out of descriptors.
    static constexpr std::chrono::milliseconds accept_retry_delay{100};

    server_state(loop_base& loop, protocol_factory factory, int backlog)
        : loop_(loop), factory_(std::move(factory)), backlog_(backlog > 0 ? backlog : 1) {
        net_access::add_resource(loop_, *this);
    }

    // A listening socket to serve; `unlink_path` is a Unix socket's file, removed on close.
    void add_listener(socket s, std::string unlink_path) {
        listeners_.reserve(listeners_.size() + 1);
        sockets_.reserve(sockets_.size() + 1);
        auto l = std::make_unique<listener>(*this, s.fd(), std::move(unlink_path));
#if defined(IOLOOP_HAS_IOCP)
        if (!net_access::has_readiness(loop_)) {
            associate_once(loop_, s);
            l->family = family_of(s.fd());
        }
#endif
        listeners_.push_back(std::move(l));
        sockets_.push_back(std::move(s));
    }

    void start_serving() {
        if (closed_) throw invalid_state_error("server::start_serving: the server is closed");
        if (serving_) return;
        serving_ = true;
        watch_listeners(true);
    }

    void close() noexcept {
        if (closed_) return;
        closed_ = true;
        serving_ = false;
        retry_.cancel();
        watch_listeners(false);
        for (auto& l : listeners_) {
            if (!l->unlink_path.empty()) remove_socket_file(l->unlink_path.c_str());
        }
        sockets_.clear();  // closes them
        forever_.set();
        check_idle();
    }

    bool is_serving() const noexcept { return serving_; }
    const std::vector<socket>& sockets() const noexcept { return sockets_; }
    loop_base& loop() const noexcept { return loop_; }

    // Until closed, with every connection it made gone.
    event& idle() noexcept { return idle_; }
    // Set by close(): serve_forever's wait.
    event& closed_event() noexcept { return forever_; }

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ != 0) return;
        // A listener's event may still be due in this poll batch: freed on the next
        // iteration. A closed loop runs nothing more, so it is freed now.
        if (loop_closed_) {
            delete this;
            return;
        }
        try {
            loop_access::post(loop_, [this] { destroy(); });
        } catch (...) {
            // No memory: left to the loop, which frees it when it closes.
        }
    }

private:
    struct listener final : io_watcher {
        listener(server_state& s, native_socket f, std::string path) noexcept
            : owner(s), fd(f), unlink_path(std::move(path)) {}
        void on_io(unsigned) noexcept override {
            if (watched) owner.accept_ready(*this);
        }
        std::string describe() const override {
            return concat({"the server accepting on socket ", decimal(fd)});
        }
        server_state& owner;
        native_socket fd;
        bool watched = false;
        std::string unlink_path;
#if defined(IOLOOP_HAS_IOCP)
        // A completion backend: the AcceptEx in flight, and the family of what it accepts.
        void accepted(socket conn, endpoint peer, std::error_code ec) noexcept {
            owner.accepted(*this, std::move(conn), peer, ec);
        }
        accept_op<listener>* accepting = nullptr;
        address_family family = address_family::ipv4;
#endif
    };

    ~server_state() override = default;

    void destroy() noexcept {
        net_access::remove_resource(loop_, *this);
        delete this;
    }

    void on_loop_close() noexcept override {
        close();  // unwatches while the backend is still there
        loop_closed_ = true;
        if (refs_ == 0) delete this;  // its posted destroy() will never run
    }

    void connection_opened() noexcept override {
        ++active_;
        ++refs_;
    }
    void connection_closed() noexcept override {
        --active_;
        check_idle();
        release();
    }

    void check_idle() noexcept {
        if (closed_ && active_ == 0) idle_.set();
    }

    void watch_listeners(bool on) noexcept {
#if defined(IOLOOP_HAS_IOCP)
        if (!net_access::has_readiness(loop_)) {
            for (auto& l : listeners_) {
                if (on) {
                    accept_next(*l);
                } else if (l->accepting) {
                    std::exchange(l->accepting, nullptr)->orphan();
                }
            }
            return;
        }
#endif
        for (auto& l : listeners_) {
            if (l->watched == on) continue;
            try {
                net_access::watch(loop_, l->fd, on ? 0 : backend::io_read,
                                  on ? backend::io_read : 0, *l);
                l->watched = on;
            } catch (...) {
                report(concat({"server: cannot watch listening socket ", decimal(l->fd)}));
            }
        }
    }

    // Takes up to `backlog` connections per readiness report, as asyncio does: enough to
    // empty a burst, bounded so other work is not starved.
    void accept_ready(listener& l) noexcept {
        for (int i = 0; i < backlog_ && serving_; ++i) {
            sockaddr_storage peer{};
            socklen_t size = 0;
            socket conn = socket::accept_on(l.fd, peer, size);
            if (!conn.is_open()) {
                const int err = last_socket_error();
                if (accept_again(err)) continue;
                if (would_block(err)) return;
                accept_failed(system_error_code(err), l);
                return;
            }
            out_of_fds_reported_ = false;
            start_connection(std::move(conn), peer.ss_family);
        }
    }

#if defined(IOLOOP_HAS_IOCP)
    // A completion backend keeps one AcceptEx in flight per listener while serving.
    void accept_next(listener& l) noexcept {
        if (l.accepting || !serving_) return;
        try {
            l.accepting = accept_op<listener>::start(loop_, l.fd, l.family, l);
        } catch (const std::system_error& e) {
            accept_failed(e.code(), l);
        }
    }

    void accepted(listener& l, socket conn, const endpoint& peer, std::error_code ec) noexcept {
        l.accepting = nullptr;
        if (!serving_) return;  // closes conn
        if (ec && ec != std::errc::connection_reset && ec != std::errc::connection_aborted) {
            accept_failed(ec, l);
            return;
        }
        if (!ec) {
            out_of_fds_reported_ = false;
            start_connection(std::move(conn), peer.native()->sa_family);
        }
        accept_next(l);
    }
#endif

    void start_connection(socket conn, int family) noexcept {
        try {
            if (family == AF_INET || family == AF_INET6) conn.set_no_delay(true);
            start_stream_transport(loop_, std::move(conn), factory_(), this);
        } catch (...) {
            report("server: could not set up an accepted connection");
        }
    }

    void accept_failed(std::error_code ec, listener& l) noexcept {
        const bool out_of_resources = ec == std::errc::too_many_files_open ||
                                      ec == std::errc::too_many_files_open_in_system ||
                                      ec == std::errc::no_buffer_space ||
                                      ec == std::errc::not_enough_memory;
        if (!out_of_resources) {
            report_error(ec, concat({"server: accept on socket ", decimal(l.fd), " failed"}));
            return;
        }
        if (!out_of_fds_reported_) {
            out_of_fds_reported_ = true;
            report_error(ec, concat({"server: accept on socket ", decimal(l.fd),
                                     " failed; accepting again in ",
                                     decimal(accept_retry_delay.count()), " ms"}));
        }
        watch_listeners(false);
        try {
            retry_ = loop_.call_later(accept_retry_delay, [this] {
                if (serving_) watch_listeners(true);
            });
        } catch (...) {
            watch_listeners(true);  // no timer: better to retry at once than never
        }
    }

    void report(std::string message) noexcept {
        try {
            loop_.call_exception_handler({std::move(message), std::current_exception(), {}});
        } catch (...) {
        }
    }

    void report_error(std::error_code ec, std::string message) noexcept {
        try {
            const std::system_error e(ec, message);
            loop_.call_exception_handler({std::move(message), std::make_exception_ptr(e), {}});
        } catch (...) {
        }
    }

    loop_base& loop_;
    protocol_factory factory_;
    std::vector<socket> sockets_;
    std::vector<std::unique_ptr<listener>> listeners_;
    event idle_;     // closed and no connection left: wait_closed
    event forever_;  // closed: serve_forever
    timer_handle retry_;
    std::size_t active_ = 0;  // connections made and not yet lost
    std::size_t refs_ = 1;    // the handle's, and one per connection
    int backlog_;
    bool serving_ = false;
    bool closed_ = false;
    bool loop_closed_ = false;
    bool out_of_fds_reported_ = false;
};

}  // namespace detail

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
