// ioloop: what the readiness transports (stream and datagram) share: the socket and its
// protocol, the backend registration, write flow control, and the way to the end, where
// connection_lost runs on a later iteration and the transport frees itself.
//
// A transport is its own io_watcher, so an event reaches it without a lookup, and its
// protocol runs right inside the poll step. It is freed only by a posted callback, so an
// event still to come in the same poll batch never reaches freed memory.
#ifndef IOLOOP_NET_TRANSPORT_CORE_HPP
#define IOLOOP_NET_TRANSPORT_CORE_HPP

#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"

#include <cstddef>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// Reports an exception a protocol's callback threw; `hook` names the callback.
inline void report_protocol_error(loop_base& loop, std::string_view hook) noexcept {
    try {
        loop.call_exception_handler(
            {concat({"Fatal error: protocol.", hook, "() call failed."}), std::current_exception(),
             {}});
    } catch (...) {
    }
}

// Checks asyncio's rule for set_write_buffer_limits and fills in the missing one.
inline write_buffer_limits resolve_write_limits(std::size_t high, std::size_t low) {
    if (high == base_transport::unset) {
        high = low == base_transport::unset ? default_write_high_water : 4 * low;
    }
    if (low == base_transport::unset) low = high / 4;
    if (low > high) {
        throw std::invalid_argument(concat({"set_write_buffer_limits: high (", decimal(high),
                                            ") must be >= low (", decimal(low), ")"}));
    }
    return {low, high};
}

// Derived provides: wanted_events() (what to watch now), buffered() (bytes not sent
// yet), drop_buffer(), and on_io. Interface is transport or datagram_transport.
template <class Derived, class Interface, class Protocol>
class transport_core : public Interface, protected io_watcher {
public:
    bool is_closing() const noexcept final { return closing_; }

    void close() final {
        user_closed_ = true;
        start_closing();
    }

    void abort() final {
        user_closed_ = true;
        force_close({});
    }

    std::size_t get_write_buffer_size() const noexcept final { return self().buffered(); }

    void set_write_buffer_limits(std::size_t high, std::size_t low) final {
        const write_buffer_limits limits = resolve_write_limits(high, low);
        high_ = limits.high;
        low_ = limits.low;
        maybe_pause_protocol();
    }
    write_buffer_limits get_write_buffer_limits() const noexcept final { return {low_, high_}; }

    // What Derived knows of its descriptor (a socket's addresses, a pipe's number).
    extra_info get_extra_info(std::string_view name) const final { return self().extra(name); }

protected:
    std::string describe() const override {
        return concat({"the transport of socket ", decimal(fd_)});
    }

    transport_core(loop_base& loop, native_socket fd, std::unique_ptr<Protocol> p) noexcept
        : loop_(loop), protocol_(std::move(p)), fd_(fd) {}
    ~transport_core() override = default;

    // Makes a Derived(loop, fd, protocol, extra...) that owns fd, watches it and tells the
    // protocol. If that fails (no memory; the backend cannot take the descriptor), fd is
    // closed and the protocol dropped without a callback, and the error is thrown.
    template <class P, class... Extra>
    static Derived& start(loop_base& loop, native_socket fd, P p, Extra&&... extra) {
        Derived* t;
        try {
            t = new Derived(loop, fd, std::move(p), extra...);
        } catch (...) {
            Derived::close_unmade(fd, extra...);
            throw;
        }
        try {
            t->update_watch_or_throw();
        } catch (...) {
            t->close_and_free();
            throw;
        }
        net_access::add_resource(t->loop_, *t);
        t->opened();
        try {
            t->tell_connection_made();
        } catch (...) {
            t->protocol_failed("connection_made");
        }
        return *t;
    }

    // ---- flow control -------------------------------------------------------------------

    void maybe_pause_protocol() noexcept {
        if (protocol_paused_ || self().buffered() <= high_) return;
        protocol_paused_ = true;
        try {
            protocol_->pause_writing();
        } catch (...) {
            report_protocol_error(loop_, "pause_writing");
        }
    }

    void maybe_resume_protocol() noexcept {
        if (!protocol_paused_ || self().buffered() > low_) return;
        protocol_paused_ = false;
        try {
            protocol_->resume_writing();
        } catch (...) {
            report_protocol_error(loop_, "resume_writing");
        }
    }

    // ---- closing ------------------------------------------------------------------------

    // Stops reading; connection_lost follows once the buffered bytes are sent.
    void start_closing() noexcept {
        if (closing_) return;
        closing_ = true;
        update_watch();
        if (self().buffered() == 0 && !lost_) schedule_connection_lost({});
    }

    // Drops the buffered bytes; connection_lost(ec) follows.
    void force_close(std::error_code ec) noexcept {
        if (lost_) return;
        self().drop_buffer();
        closing_ = true;
        schedule_connection_lost(ec);
    }

    void protocol_failed(std::string_view hook) noexcept {
        report_protocol_error(loop_, hook);
        force_close(std::make_error_code(std::errc::connection_aborted));
    }

    void schedule_connection_lost(std::error_code ec) noexcept {
        lost_ = true;
        update_watch();  // unwatches: nothing more comes in or goes out
        try {
            loop_access::post(loop_, [this, ec] { finish(ec); });
        } catch (...) {
            // No memory for the callback: the transport stays a resource of the loop, and
            // closing the loop frees it.
        }
    }

    // ---- the backend registration -------------------------------------------------------

    void update_watch_or_throw() {
        const unsigned want = lost_ ? 0 : self().wanted_events();
        if (want == watched_) return;
        self().change_watch(watched_, want);
        watched_ = static_cast<unsigned char>(want);
    }

    // What watching means: a readiness backend's registration. A completion transport
    // hides this with its own (posting a zero-byte read, say).
    void change_watch(unsigned old_events, unsigned new_events) {
        net_access::watch(loop_, fd_, old_events, new_events, *this);
    }

    // Failing to change what the backend watches (no memory for epoll's bookkeeping)
    // leaves a connection that would hang: it is closed with the error instead.
    void update_watch() noexcept {
        try {
            update_watch_or_throw();
        } catch (const std::system_error& e) {
            if (!lost_) {
                force_close(e.code());
            } else {
                watched_ = 0;  // unwatching failed: the descriptor is closed right after
            }
        } catch (...) {
            force_close(std::make_error_code(std::errc::not_enough_memory));
        }
    }

    // Closes the descriptor of a transport that could not be made (no memory); `extra` are
    // start's. Derived hides this when its descriptor may be other than a socket.
    template <class... Extra>
    static void close_unmade(native_socket fd, const Extra&...) noexcept {
        close_socket(fd);
    }

    // Hooks for Derived (a server's connection count): the transport started, ended.
    void opened() noexcept {}
    void ended() noexcept {}
    // The protocol hears of its new transport. Derived hides this when its protocol may
    // be of more than one kind (a stream's: plain or buffered).
    void tell_connection_made() { protocol_->connection_made(*this); }

    // get_extra_info for a socket: "socket", "peername", "sockname". Derived hides this
    // when its descriptor is something else.
    extra_info extra(std::string_view name) const {
        if (name == "socket") return extra_info(fd_);
        sockaddr_storage addr{};
        socklen_t size = sizeof addr;
        auto* native = reinterpret_cast<sockaddr*>(&addr);
        int rc = -1;
        if (name == "peername") rc = ::getpeername(fd_, native, &size);
        if (name == "sockname") rc = ::getsockname(fd_, native, &size);
        // An unnamed Unix socket has an address of just its family: nothing to say.
        if (rc == -1 || size <= family_size) return {};
        return extra_info(endpoint::from_native(native, size));
    }

    loop_base& loop_;
    std::unique_ptr<Protocol> protocol_;
    std::size_t high_ = default_write_high_water;
    std::size_t low_ = default_write_high_water / 4;
    native_socket fd_;
    unsigned char watched_ = 0;  // the events the backend watches for us
    bool closing_ = false;
    bool user_closed_ = false;  // close() or abort() was called: writing is a bug
    bool protocol_paused_ = false;
    bool lost_ = false;  // connection_lost is scheduled; the socket is unwatched

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

    void finish(std::error_code ec) noexcept {
        try {
            protocol_->connection_lost(ec);
        } catch (...) {
            report_protocol_error(loop_, "connection_lost");
        }
        net_access::remove_resource(loop_, *this);
        release();
    }

    void on_loop_close() noexcept final {
        lost_ = true;
        update_watch();
        release();
    }

    void release() noexcept {
        self().ended();
        self().close_and_free();
    }

protected:
    // The end of a readiness transport: nothing refers to it any more. A completion
    // transport hides this: the kernel may still own its buffers.
    void close_and_free() noexcept {
        close_socket(fd_);
        delete this;  // the destructor is virtual (loop_resource's)
    }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
