// ioloop: iocp_engine<Backend>, the I/O engine of the completion backends (IOCP):
// overlapped operations whose buffers the kernel owns until they complete. It counts the
// operations in flight and makes the sock_* operations' calls. Its transports, connect
// and listeners are in net/iocp/ops.hpp.
#ifndef IOLOOP_NET_IOCP_ENGINE_HPP
#define IOLOOP_NET_IOCP_ENGINE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/iocp/overlapped_sock_ops.hpp"
#include "ioloop/net/socket.hpp"

#if defined(IOLOOP_WINDOWS)

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Backend>
class iocp_engine final : public iocp_io {
public:
    iocp_engine(loop_base&, Backend& backend) noexcept : backend_(backend) {}
    ~iocp_engine() = default;

    // ---- the loop's hooks (basic_event_loop calls these directly) ----------------------

    // An operation is in flight: the poll step must wait for its completion.
    bool waiting() const noexcept { return in_flight_ != 0; }
    // Each event is one operation's completion.
    void event_arrived() noexcept { --in_flight_; }
    void after_poll() noexcept {}
    // add_reader does not compile on IOCP: there is no table of watched descriptors.
    void close_watches(node_queue&) noexcept {}
    // Closing: the transports, servers and tasks have closed their sockets or cancelled
    // their operations, but the kernel owns each operation's memory until its completion
    // is dequeued. So the loop waits for them all (cancelled operations complete at
    // once), and each frees itself.
    void finish_operations() noexcept {
        try {
            while (in_flight_ != 0) {
                backend_.wait(std::chrono::nanoseconds(-1), [this](void* data, unsigned) noexcept {
                    --in_flight_;
                    static_cast<io_watcher*>(data)->on_io(0);
                });
            }
        } catch (...) {
            // The port failed: what is left is leaked rather than freed under the kernel.
        }
    }

    // ---- the sock_* operations (net/overlapped_sock_ops.hpp) ---------------------------

    coro<void> sock_connect(loop_base& loop, socket& s, endpoint to) {
        return overlapped_connect(loop, s, std::move(to), "sock_connect");
    }

    coro<std::size_t> sock_recv_into(loop_base& loop, socket& s, std::span<std::byte> buf) {
        return overlapped_recv_into(loop, s, buf);
    }
    coro<void> sock_sendall(loop_base& loop, socket& s, std::string_view data) {
        return overlapped_sendall(loop, s, data);
    }
    coro<std::pair<socket, endpoint>> sock_accept(loop_base& loop, socket& listener) {
        return overlapped_accept(loop, listener);
    }
    // No TransmitFile: loop.sock_sendfile falls back to reads and sends here.
    static constexpr bool native_sendfile = false;

    coro<std::pair<std::size_t, endpoint>> sock_recvfrom_into(loop_base& loop, socket& s,
                                                             std::span<std::byte> buf) {
        return overlapped_recvfrom_into(loop, s, buf);
    }
    coro<std::size_t> sock_sendto(loop_base& loop, socket& s, std::string_view data,
                                  endpoint to) {
        return overlapped_sendto(loop, s, data, std::move(to));
    }

private:
    void associate(HANDLE h) override { backend_.associate(h); }
    void queue_completion(OVERLAPPED* o) override { backend_.post(o); }

    Backend& backend_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
