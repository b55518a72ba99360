// ioloop: server_state, what a server is while it lives: its listening sockets, each
// served by a listener of the loop's backend family (net/reactive/listener.hpp,
// net/iocp/listener.hpp), the factory of its connections' protocols, and its count of
// connections. `server` (net/server.hpp) is the handle users hold.
//
// Accepting under EMFILE (no descriptor left): the server reports it once through the
// loop's exception handler, stops accepting for 100 ms and tries again, so it neither
// spins nor gives up; the pending clients wait in the kernel's backlog.
#ifndef IOLOOP_NET_SERVER_STATE_HPP
#define IOLOOP_NET_SERVER_STATE_HPP

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
#include "ioloop/net/io_engine.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_core.hpp"

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

// How a backend family starts the transport of an accepted connection.
using start_stream_fn = transport& (*)(loop_base&, socket, owned_stream_protocol,
                                       connection_counter*);

// One listening socket of a server, accepting the way its backend family does; it hands
// each connection, or each failure, to its server.
class server_listener {
public:
    virtual ~server_listener() = default;
    // Starts (true) or stops (false) accepting; failing to start is reported, not thrown.
    virtual void serve(bool on) noexcept = 0;

    std::string unlink_path;  // a Unix socket's file, removed when the server closes

protected:
    server_listener() = default;
    server_listener(const server_listener&) = delete;
    server_listener& operator=(const server_listener&) = delete;
};

class server_state final : public loop_resource, public connection_counter {
public:
    // How long accepting pauses when the process is out of descriptors.
    static constexpr std::chrono::milliseconds accept_retry_delay{100};

    server_state(loop_base& loop, protocol_factory factory, int backlog)
        : loop_(loop), factory_(std::move(factory)), backlog_(backlog > 0 ? backlog : 1) {
        net_access::add_resource(loop_, *this);
    }

    // A listening socket to serve, and its family's listener (make_listener(*this, s));
    // `unlink_path` is a Unix socket's file, removed on close.
    template <class MakeListener>
    void add_listener(socket s, std::string unlink_path, MakeListener make_listener) {
        listeners_.reserve(listeners_.size() + 1);
        sockets_.reserve(sockets_.size() + 1);
        std::unique_ptr<server_listener> l = make_listener(*this, s);
        l->unlink_path = std::move(unlink_path);
        listeners_.push_back(std::move(l));
        sockets_.push_back(std::move(s));
    }

    void start_serving() {
        if (closed_) throw invalid_state_error("server::start_serving: the server is closed");
        if (serving_) return;
        serving_ = true;
        serve(true);
    }

    void close() noexcept {
        if (closed_) return;
        closed_ = true;
        serving_ = false;
        retry_.cancel();
        serve(false);
        for (auto& l : listeners_) {
            if (!l->unlink_path.empty()) remove_socket_file(l->unlink_path.c_str());
        }
        sockets_.clear();  // closes them
        forever_.set();
        check_idle();
    }

    bool is_serving() const noexcept { return serving_; }
    // SO_KEEPALIVE on each accepted TCP connection (serve_options::keep_alive).
    void set_keep_alive(bool on) noexcept { keep_alive_ = on; }
    const std::vector<socket>& sockets() const noexcept { return sockets_; }
    loop_base& loop() const noexcept { return loop_; }
    // Connections a listener takes per readiness report at most: asyncio takes up to
    // `backlog`, enough to empty a burst, bounded so other work is not starved.
    int backlog() const noexcept { return backlog_; }

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

    // ---- what the listeners report -----------------------------------------------------

    // A connection accepted on a socket of `family`: it gets a protocol, and a transport
    // from the listener's family.
    void accepted(socket conn, int family, start_stream_fn start) noexcept {
        out_of_fds_reported_ = false;
        try {
            if (family == AF_INET || family == AF_INET6) {
                conn.set_no_delay(true);
                if (keep_alive_) conn.set_keep_alive(true);
            }
            start(loop_, std::move(conn), factory_(), this);
        } catch (...) {
            report("server: could not set up an accepted connection");
        }
    }

    // Accepting on `fd` failed. Out of descriptors or memory: accepting pauses and
    // retries; anything else is reported and accepting goes on.
    void accept_failed(std::error_code ec, native_socket fd) noexcept {
        const bool out_of_resources = ec == std::errc::too_many_files_open ||
                                      ec == std::errc::too_many_files_open_in_system ||
                                      ec == std::errc::no_buffer_space ||
                                      ec == std::errc::not_enough_memory;
        if (!out_of_resources) {
            report_error(ec, concat({"server: accept on socket ", decimal(fd), " failed"}));
            return;
        }
        if (!out_of_fds_reported_) {
            out_of_fds_reported_ = true;
            report_error(ec, concat({"server: accept on socket ", decimal(fd),
                                     " failed; accepting again in ",
                                     decimal(accept_retry_delay.count()), " ms"}));
        }
        serve(false);
        try {
            retry_ = loop_.call_later(accept_retry_delay, [this] {
                if (serving_) serve(true);
            });
        } catch (...) {
            serve(true);  // no timer: better to retry at once than never
        }
    }

    void report(std::string message) noexcept {
        try {
            loop_.call_exception_handler({std::move(message), std::current_exception(), {}});
        } catch (...) {
        }
    }

private:
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

    void serve(bool on) noexcept {
        for (auto& l : listeners_) l->serve(on);
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
    std::vector<std::unique_ptr<server_listener>> listeners_;
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
    bool keep_alive_ = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
