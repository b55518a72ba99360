// ioloop: iocp_io, the state of the completion family's engine that its transports,
// listeners and operations reach from a loop: the operations in flight (the loop polls
// while there is one, and waits for them all when it closes: the kernel owns their
// memory until then), the loop's completion port, and the event its pipe transports'
// reads of data already there wait on (net/iocp/pipe_io.hpp).
#ifndef IOLOOP_NET_IOCP_IOCP_IO_HPP
#define IOLOOP_NET_IOCP_IOCP_IO_HPP

#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/io_engine.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/socket.hpp"

#if defined(IOLOOP_WINDOWS)

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class iocp_io : public io_engine {
public:
    // The engine of a loop known to run a completion backend (only IOCP code asks).
    static iocp_io& of(loop_base& loop) noexcept {
        return static_cast<iocp_io&>(net_access::engine(loop));
    }

    void operation_started() noexcept { ++in_flight_; }
    // An operation that failed to start, so no completion will come.
    void operation_not_started() noexcept { --in_flight_; }

    // Sends s's completions to this loop's port, unless they go there already. A socket
    // tied to another loop's port cannot move (detail::port_binding): that is an error,
    // not a wait for completions that would never come.
    void associate_once(socket& s) {
        std::uint64_t& bound = s.port_binding().port;
        if (bound == port_id_) return;
        if (bound != 0) {
            throw invalid_state_error(
                concat({"socket ", decimal(static_cast<long long>(s.fd())),
                        " belongs to another event loop: IOCP ties a socket to one loop's "
                        "completion port for its life"}));
        }
        associate(socket_as_descriptor(s.fd()));
        bound = port_id_;
    }

    // Sends a pipe's completions to this loop's port. A handle tied to another port (an
    // earlier loop's) cannot move: CreateIoCompletionPort fails, and `what` says so.
    void associate_pipe(HANDLE h, std::string_view what) {
        try {
            associate(h);
        } catch (const std::system_error& e) {
            throw std::system_error(
                e.code(), concat({what, ": the pipe's completions cannot come to this loop (is "
                                        "it tied to another loop's completion port?)"}));
        }
    }

    // Queues op's completion through the port, for an operation that ended at its start
    // with no completion of its own. Counted in flight like any other.
    void post(overlapped_op& op) {
        operation_started();
        try {
            queue_completion(op.overlapped());
        } catch (...) {
            operation_not_started();
            throw;
        }
    }

    // A manual-reset event, made by the first pipe transport: an overlapped call given it
    // (tagged, see pipe_io.hpp) signals it instead of queuing a completion on the port.
    void make_quiet_event() {
        if (quiet_event_ != nullptr) return;
        quiet_event_ = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        if (quiet_event_ == nullptr) throw_system_error(::GetLastError(), "CreateEventW");
    }
    HANDLE quiet_event() const noexcept { return quiet_event_; }

    // Readiness is not what a completion port reports: add_reader does not compile on
    // IOCP, and what reaches these at run time (wait_readable) is told so.
    void add_watch(native_socket, unsigned, callback_node* n, const char* what, bool) override {
        n->refs.store(1, memory_order::relaxed);
        n->release();
        no_readiness(what);
    }
    bool remove_watch(native_socket, unsigned) override { return false; }
    void watch(native_socket, unsigned, unsigned new_events, io_watcher&) override {
        if (new_events != 0) no_readiness("watching a descriptor");
    }

protected:
    iocp_io() noexcept : io_engine(io_family::completion) {
        static atomic<std::uint64_t> ports{0};
        port_id_ = ports.fetch_add(1, memory_order::relaxed) + 1;
    }
    ~iocp_io() {
        if (quiet_event_ != nullptr) ::CloseHandle(quiet_event_);
    }

    virtual void associate(HANDLE h) = 0;
    virtual void queue_completion(OVERLAPPED* o) = 0;

    [[noreturn]] static void no_readiness(const char* what) {
        throw std::system_error(
            std::make_error_code(std::errc::operation_not_supported),
            concat({what, ": a completion backend (IOCP) cannot wait for readiness; use the "
                          "transports, streams or sock_* operations, or a readiness backend "
                          "(select)"}));
    }

    std::size_t in_flight_ = 0;  // operations started and not yet completed
    std::uint64_t port_id_;      // names this loop's port (never 0)
    HANDLE quiet_event_ = nullptr;
};

// Shorthands for IOCP code that holds a loop.
inline void associate_once(loop_base& loop, socket& s) { iocp_io::of(loop).associate_once(s); }
inline void operation_started(loop_base& loop) noexcept { iocp_io::of(loop).operation_started(); }
inline void operation_not_started(loop_base& loop) noexcept {
    iocp_io::of(loop).operation_not_started();
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
