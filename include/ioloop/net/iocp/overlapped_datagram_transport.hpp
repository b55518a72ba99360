// ioloop: the datagram transport of a completion backend (IOCP): the same protocol-facing
// behaviour as datagram_socket_transport, over overlapped operations.
//
// Reading: a zero-byte WSARecvFrom with MSG_PEEK waits for a datagram without a buffer
// (a plain zero-byte receive would consume the datagram, truncated to nothing); its
// completion means "readable", and one non-blocking recvfrom() then reads the datagram
// into the loop's shared buffer. Sending: sendto() goes straight to the socket while
// nothing waits; a datagram the socket cannot take is queued, and the queue goes out one
// WSASendTo at a time, in order. The datagram of a WSASendTo in flight (its bytes and its
// address) belongs to the kernel until the completion, so it sits in its own member, out
// of the queue's vector, which may reallocate meanwhile; and the transport itself is
// freed only once no operation of it is in flight.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_DATAGRAM_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_DATAGRAM_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/datagram_core.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/iocp/overlapped_transport.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/iocp/overlapped_call.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class overlapped_datagram_transport final
    : public overlapped_transport<overlapped_datagram_transport,
                                  datagram_core<overlapped_datagram_transport>> {
    using core =
        transport_core<overlapped_datagram_transport, datagram_transport, datagram_protocol>;
    friend core;
    friend datagram_core<overlapped_datagram_transport>;
    friend overlapped_transport;

public:
    // As datagram_socket_transport::start, on a socket whose completions go to the loop's
    // port already (iocp_ops::start_datagram sees to it).
    static overlapped_datagram_transport& start(loop_base& loop, socket sock,
                                                std::unique_ptr<datagram_protocol> p) {
        return core::start(loop, sock.release(), std::move(p));
    }

private:
    overlapped_datagram_transport(loop_base& loop, native_socket fd,
                                  std::unique_ptr<datagram_protocol> p) noexcept
        : overlapped_transport(loop, fd, std::move(p)), peek_op_(*this), send_op_(*this) {}
    ~overlapped_datagram_transport() override = default;

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept { return closing_ ? 0u : unsigned(backend::io_read); }
    // Flow control counts the datagram in flight too: it has not left yet.
    std::size_t buffered() const noexcept {
        return queue_.bytes() + (writing_ ? in_flight_.data.size() : 0);
    }

    auto& read_op() noexcept { return peek_op_; }
    auto& write_op() noexcept { return send_op_; }

    // A zero-byte peek waits for a datagram; while closing, one in flight consumes
    // nothing, so it is left to complete and then ignored.
    void start_waiting_for_data() {
        if (const unsigned long err = start_peek())
            throw_system_error(err, "WSARecvFrom (waiting for a datagram)");
    }

    // ---- reading ------------------------------------------------------------------------

    // Starts the zero-byte peek: 0, or the error of one that failed at once (no
    // completion comes for that one).
    unsigned long start_peek() noexcept {
        peek_op_.reset();
        WSABUF none{0, nullptr};
        // A member, not a local: the kernel may write the flags back at completion.
        peek_flags_ = MSG_PEEK;
        operation_started(loop_);
        unsigned long err = started(::WSARecvFrom(fd_, &none, 1, nullptr, &peek_flags_, nullptr,
                                                  nullptr, peek_op_.overlapped(), nullptr));
        // A datagram there already: the peek "fails" at once with WSAEMSGSIZE (it is larger
        // than zero bytes), but that status is only a warning, so the completion is still
        // queued to the port, as for a pending peek.
        if (err == WSAEMSGSIZE) err = 0;
        if (err != 0) {
            operation_not_started(loop_);
            return err;
        }
        reading_ = true;
        return 0;
    }

    void peek_done() noexcept {
        reading_ = false;
        if (closed_) return free_if_idle();
        // Lost, or closing since: nothing more is read.
        if (lost_ || !(watched_ & backend::io_read)) return;
        unsigned long bytes = 0;
        const unsigned long err = peek_op_.result(fd_, bytes);
        if (err == 0 || err == WSAEMSGSIZE || err == ERROR_MORE_DATA) {
            // A datagram is there (larger than the zero bytes asked for: "message size").
            receive_one();
        } else if (err != ERROR_OPERATION_ABORTED) {
            // An ICMP error for an earlier send, reported by the peek itself.
            report_error(datagram_error_code(err));
        }
        keep_reading();
    }

    // Posts the next peek while reading is wanted. An ICMP error (port or network
    // unreachable) may fail it at once: it is reported, which consumes it, and the peek
    // tried again; any other error there would fail every peek, so it closes the transport.
    void keep_reading() noexcept {
        while (!lost_ && (watched_ & backend::io_read) && !reading_) {
            const unsigned long err = start_peek();
            if (err == 0) return;
            if (err != WSAECONNRESET && err != WSAENETRESET) {
                force_close(system_error_code(err));
                return;
            }
            report_error(datagram_error_code(err));
        }
    }

    void receive_one() noexcept {
        const std::span<char> buffer = net_access::read_buffer(loop_);
        sockaddr_storage from{};
        int size = sizeof from;
        auto* native = reinterpret_cast<sockaddr*>(&from);
        // A datagram larger than the buffer (none over UDP, whose payloads fit) fails with
        // WSAEMSGSIZE: error_received hears std::errc::message_size, and nothing of it is
        // delivered.
        const std::ptrdiff_t n =
            socket_recv_datagram(fd_, buffer.data(), buffer.size(), native, &size);
        if (n < 0) {
            const int err = ::WSAGetLastError();
            if (err != WSAEWOULDBLOCK) {
                report_error(datagram_error_code(static_cast<unsigned long>(err)));
            }
            return;
        }
        deliver(std::string_view(buffer.data(), std::size_t(n)), native, size);
    }

    // ---- sending ------------------------------------------------------------------------

    // ---- what datagram_core asks of us --------------------------------------------------

    bool can_send_now() const noexcept { return !writing_ && queue_.empty(); }
    void queued() noexcept {
        if (!writing_) send_next();
    }

    // One non-blocking send; false if the socket cannot take it now. A failure other than
    // that goes to the protocol's error_received and the datagram is dropped (asyncio).
    bool send_one(std::string_view data, const endpoint& to) noexcept {
        const int len = data.size() > INT_MAX ? INT_MAX : static_cast<int>(data.size());
        const int n = to.family() == address_family::unspecified
                          ? ::send(fd_, data.data(), len, 0)
                          : ::sendto(fd_, data.data(), len, 0, to.native(),
                                     static_cast<int>(to.native_size()));
        if (n >= 0) return true;
        const int err = ::WSAGetLastError();
        if (err == WSAEWOULDBLOCK) return false;
        report_error(datagram_error_code(static_cast<unsigned long>(err)));
        return true;  // dropped: it counts as handled
    }

    // Moves the next queued datagram in flight through one WSASendTo (WSASend when
    // connected); one that fails to start is reported and dropped, and the next tried.
    void send_next() noexcept {
        while (!writing_ && !queue_.empty() && !lost_) {
            in_flight_ = queue_.pop_front();
            send_op_.reset();
            WSABUF b{static_cast<ULONG>(in_flight_.data.size()), in_flight_.data.data()};
            const endpoint& to = in_flight_.to;
            operation_started(loop_);
            const unsigned long err =
                to.family() == address_family::unspecified
                    ? started(::WSASend(fd_, &b, 1, nullptr, 0, send_op_.overlapped(), nullptr))
                    : started(::WSASendTo(fd_, &b, 1, nullptr, 0, to.native(),
                                          static_cast<int>(to.native_size()), send_op_.overlapped(),
                                          nullptr));
            if (err == 0) {
                writing_ = true;
                return;
            }
            operation_not_started(loop_);
            in_flight_ = {};
            report_error(datagram_error_code(err));  // may send, close or abort
        }
    }

    void send_done() noexcept {
        writing_ = false;
        if (closed_) return free_if_idle();
        unsigned long bytes = 0;
        const unsigned long err = send_op_.result(fd_, bytes);
        in_flight_ = {};
        if (lost_) return;
        if (err != 0) report_error(datagram_error_code(err));  // that datagram is dropped
        if (lost_) return;
        send_next();
        datagrams_sent();
    }

    datagram in_flight_;  // the WSASendTo's, the kernel's until it completes
    member_op<overlapped_datagram_transport, &overlapped_datagram_transport::peek_done> peek_op_;
    member_op<overlapped_datagram_transport, &overlapped_datagram_transport::send_done> send_op_;
    DWORD peek_flags_ = 0;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
