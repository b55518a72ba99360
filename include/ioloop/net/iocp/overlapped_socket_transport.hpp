// ioloop: the stream transport of a completion backend (IOCP): the same protocol-facing
// behaviour as socket_transport, over overlapped operations.
//
// Reading: a zero-byte WSARecv waits for data without a buffer, so an idle connection
// holds no read buffer here either; its completion means "readable", and one
// non-blocking recv() then reads where stream_core::receive says (the loop's shared
// buffer, or a buffered protocol's own). Writing: a write first
// tries send(); what the socket does not take goes out through one WSASend at a time. The
// bytes of a WSASend in flight belong to the kernel until it completes, so writes made
// meanwhile queue behind them in a second buffer, and the transport itself is freed only
// once no operation of it is in flight.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_SOCKET_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/iocp/overlapped_transport.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/iocp/overlapped_call.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class overlapped_socket_transport final
    : public overlapped_transport<overlapped_socket_transport,
                                  stream_core<overlapped_socket_transport>> {
    using core = transport_core<overlapped_socket_transport, transport, base_protocol>;
    friend core;
    friend stream_core<overlapped_socket_transport>;
    friend overlapped_transport;

public:
    // As socket_transport::start, on a socket whose completions go to the loop's port
    // already (iocp_ops::start_stream sees to it).
    static overlapped_socket_transport& start(loop_base& loop, socket sock,
                                              owned_stream_protocol p,
                                              connection_counter* server) {
        return core::start(loop, sock.release(), std::move(p), server);
    }

private:
    // The bytes of the WSASend in flight (the kernel's until it completes), and what was
    // written since, sent next.
    struct write_buffers {
        std::string in_flight;
        std::string queued;
        std::size_t size() const noexcept { return in_flight.size() + queued.size(); }
    };

    overlapped_socket_transport(loop_base& loop, native_socket fd, owned_stream_protocol p,
                                connection_counter* server) noexcept
        : overlapped_transport(loop, fd, std::move(p), server), read_op_(*this), write_op_(*this) {}
    ~overlapped_socket_transport() override = default;

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept { return wants_to_read() ? backend::io_read : 0u; }
    // Once lost, the bytes in flight are not the protocol's any more (see drop_buffer).
    std::size_t buffered() const noexcept {
        if (!writes_) return 0;
        return lost_ ? writes_->queued.size() : writes_->size();
    }
    // The bytes in flight stay: the kernel reads them until the cancelled send completes.
    void drop_buffer() noexcept {
        if (writes_) writes_->queued.clear();
    }
    auto& read_op() noexcept { return read_op_; }
    auto& write_op() noexcept { return write_op_; }

    // ---- reading ------------------------------------------------------------------------

    // A zero-byte read: its completion means data is there.
    void start_waiting_for_data() {
        read_op_.reset();
        WSABUF none{0, nullptr};
        DWORD flags = 0;
        operation_started(loop_);
        const unsigned long err =
            started(::WSARecv(fd_, &none, 1, nullptr, &flags, read_op_.overlapped(), nullptr));
        if (err != 0) {
            operation_not_started(loop_);
            throw_system_error(err, "WSARecv (waiting for data)");
        }
        reading_ = true;
    }

    void read_done() noexcept {
        reading_ = false;
        if (closed_) return free_if_idle();
        // Lost, or paused since: resume_reading posts the next zero-byte read.
        if (lost_ || !(watched_ & backend::io_read)) return;
        unsigned long bytes = 0;
        const unsigned long err = read_op_.result(fd_, bytes);
        if (err != 0 && err != WSAEDISCON) {
            force_close(system_error_code(err));
            return;
        }
        read_some();
        if (!lost_ && (watched_ & backend::io_read) && !reading_) {
            try {
                start_waiting_for_data();
            } catch (const std::system_error& e) {
                force_close(e.code());
            }
        }
    }

    void read_some() noexcept {
        receive([this](std::span<char> buffer) noexcept {
            const int len = buffer.size() > INT_MAX ? INT_MAX : static_cast<int>(buffer.size());
            const int n = ::recv(fd_, buffer.data(), len, 0);
            if (n < 0) {
                const int err = ::WSAGetLastError();
                if (err != WSAEWOULDBLOCK) {
                    force_close(system_error_code(static_cast<unsigned long>(err)));
                }
            }
            return std::ptrdiff_t(n);
        });
    }

    // ---- writing ------------------------------------------------------------------------

    bool has_write_buffer() const noexcept { return writes_ != nullptr; }

    // Sends what the socket takes now; the rest goes out through WSASend, one at a time.
    void send_or_buffer(std::string_view data) {
        if (!writes_) {
            const int n = send_some(data);
            if (n < 0) return;  // a fatal error closed the transport
            data.remove_prefix(static_cast<std::size_t>(n));
            if (data.empty()) return;
            writes_ = std::make_unique<write_buffers>();
            writes_->queued.assign(data);
            send_queued();
        } else {
            writes_->queued.append(data);
        }
        maybe_pause_protocol();
    }

    // One non-blocking send: the count taken (0 if it would block), or -1 after a fatal
    // error, which has closed the transport.
    int send_some(std::string_view data) noexcept {
        const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
        const int n = ::send(fd_, data.data(), len, 0);
        if (n >= 0) return n;
        const int err = ::WSAGetLastError();
        if (err == WSAEWOULDBLOCK) return 0;
        force_close(system_error_code(static_cast<unsigned long>(err)));
        return -1;
    }

    // Moves the queued bytes in flight: one WSASend, completed once Winsock took them all.
    void send_queued() noexcept {
        writes_->in_flight.swap(writes_->queued);
        writes_->queued.clear();
        write_op_.reset();
        WSABUF b{static_cast<ULONG>(writes_->in_flight.size()), writes_->in_flight.data()};
        operation_started(loop_);
        const unsigned long err =
            started(::WSASend(fd_, &b, 1, nullptr, 0, write_op_.overlapped(), nullptr));
        if (err != 0) {
            operation_not_started(loop_);
            writes_->in_flight.clear();
            force_close(system_error_code(err));
            return;
        }
        writing_ = true;
    }

    void write_done() noexcept {
        writing_ = false;
        if (closed_) return free_if_idle();
        unsigned long bytes = 0;
        const unsigned long err = write_op_.result(fd_, bytes);
        writes_->in_flight.clear();
        if (lost_) return;
        if (err != 0) {
            force_close(system_error_code(err));
            return;
        }
        if (!writes_->queued.empty()) {
            send_queued();
            maybe_resume_protocol();
            return;
        }
        writes_.reset();
        writes_done();
    }

    void shutdown_write() noexcept {
        if (::shutdown(fd_, SD_SEND) != 0) {
            const int err = ::WSAGetLastError();
            if (err != WSAENOTCONN) force_close(system_error_code(static_cast<unsigned long>(err)));
        }
    }

    std::unique_ptr<write_buffers> writes_;  // only while a write is partly sent
    member_op<overlapped_socket_transport, &overlapped_socket_transport::read_done> read_op_;
    member_op<overlapped_socket_transport, &overlapped_socket_transport::write_done> write_op_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
