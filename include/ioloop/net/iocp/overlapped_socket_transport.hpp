// ioloop: the stream transport of a completion backend (IOCP): the same protocol-facing
// behaviour as socket_transport, over overlapped operations, on a connected socket or on
// an overlapped named pipe (connect_read_pipe, connect_write_pipe). The two differ only
// in the calls that move the bytes, chosen by the kind given at start; the buffering, the
// flow control and the close path are the same code.
//
// Reading: a zero-byte WSARecv (a pipe: a zero-byte ReadFile) waits for data without a
// buffer, so an idle connection holds no read buffer here either; its completion means
// "readable", and one read that takes what is there then reads where
// stream_core::receive says (the loop's shared buffer, or a buffered protocol's own): a
// non-blocking recv(), or a ReadFile whose completion skips the port (net/iocp/pipe_io.hpp).
// Writing: a socket first tries send(); what it does not take goes out through one WSASend
// at a time. A pipe has no non-blocking write, so its bytes all go through WriteFile, one
// at a time. The bytes of a send in flight belong to the kernel until it completes, so
// writes made meanwhile queue behind them in a second buffer, and the transport itself is
// freed only once no operation of it is in flight. A pipe keeps its two buffers between
// writes (up to 64 KiB each), so writing to it allocates nothing in steady state.
//
// A pipe's write_eof closes it once the bytes are out (asyncio: a pipe has no half-close).
// Closing a pipe's transport cancels its operations and closes the handle once their
// completions have come. Unlike the readiness backends, an idle write pipe does not watch
// for its reader going away (its handle may not even be readable): the next write tells.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_SOCKET_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/iocp/overlapped_transport.hpp"
#include "ioloop/net/iocp/overlapped_call.hpp"
#include "ioloop/net/iocp/pipe_io.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#if defined(IOLOOP_WINDOWS)

#include <climits>
#include <cstddef>
#include <cstdint>
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
        return core::start(loop, sock.release(), std::move(p), server, descriptor_kind::socket);
    }

    // The same on a pipe's handle h, checked and associated with the loop's port, the
    // loop's quiet event made (iocp_ops::start_pipe sees to both); `kind` is read_pipe or
    // write_pipe. The transport owns h from the call on.
    static overlapped_socket_transport& start_pipe(loop_base& loop, native_descriptor h,
                                                   descriptor_kind kind,
                                                   owned_stream_protocol p) {
        return core::start(loop, descriptor_as_socket(h), std::move(p), nullptr, kind);
    }

private:
    // The bytes of the send in flight (the kernel's until it completes), and what was
    // written since, sent next.
    struct write_buffers {
        std::string in_flight;
        std::string queued;
        std::size_t size() const noexcept { return in_flight.size() + queued.size(); }
    };

    // A pipe keeps write buffers of up to this capacity between writes.
    static constexpr std::size_t kept_write_capacity = 64 * 1024;

    overlapped_socket_transport(loop_base& loop, native_socket fd, owned_stream_protocol p,
                                connection_counter* server, descriptor_kind kind) noexcept
        : overlapped_transport(loop, fd, std::move(p), server),
          kind_(kind),
          read_op_(*this),
          write_op_(*this) {}
    ~overlapped_socket_transport() override = default;

    bool is_pipe() const noexcept { return kind_ != descriptor_kind::socket; }
    HANDLE handle() const noexcept { return socket_as_descriptor(fd_); }

    // ---- what transport_core asks of us ---------------------------------------------------

    unsigned wanted_events() const noexcept {
        return reads() && wants_to_read() ? backend::io_read : 0u;
    }
    // Once lost, the bytes in flight are not the protocol's any more (see drop_buffer).
    std::size_t buffered() const noexcept {
        if (!writes_) return 0;
        return lost_ ? writes_->queued.size() : writes_->size();
    }
    // The bytes in flight stay: the kernel reads them until the cancelled send completes.
    void drop_buffer() noexcept {
        if (writes_) writes_->queued.clear();
    }

    // A socket's addresses; a pipe has only its handle, as asyncio's extra "pipe".
    extra_info extra(std::string_view name) const {
        if (!is_pipe()) return core::extra(name);
        return name == "pipe" ? extra_info(fd_) : extra_info();
    }

    std::string describe() const override {
        if (!is_pipe()) return core::describe();
        return concat({"the transport of pipe handle ",
                       decimal(static_cast<long long>(reinterpret_cast<std::intptr_t>(handle())))});
    }

    static void close_unmade(native_socket fd, connection_counter*, descriptor_kind kind) noexcept {
        if (kind == descriptor_kind::socket) {
            close_socket(fd);
        } else {
            close_descriptor(socket_as_descriptor(fd));
        }
    }

    // ---- what overlapped_transport asks of us -------------------------------------------

    auto& read_op() noexcept { return read_op_; }
    auto& write_op() noexcept { return write_op_; }

    // A pipe's operations are cancelled, and its handle closed once their completions
    // have come: so each surely comes to the port while the handle is open.
    void close_now() noexcept {
        if (is_pipe()) {
            cancel_all();
        } else {
            overlapped_transport::close_now();
        }
    }
    void close_last() noexcept {
        if (is_pipe()) ::CloseHandle(handle());
    }

    // ---- what stream_core asks of us ----------------------------------------------------

    bool reads() const noexcept { return kind_ != descriptor_kind::write_pipe; }
    bool writes() const noexcept { return kind_ != descriptor_kind::read_pipe; }

    // ---- reading ------------------------------------------------------------------------

    // A zero-byte read: its completion means data is there.
    void start_waiting_for_data() {
        read_op_.reset();
        operation_started(loop_);
        unsigned long err;
        if (is_pipe()) {
            err = start_waiting_for_pipe_data(handle(), read_op_.overlapped());
        } else {
            WSABUF none{0, nullptr};
            DWORD flags = 0;
            err = started(
                ::WSARecv(fd_, &none, 1, nullptr, &flags, read_op_.overlapped(), nullptr));
        }
        if (err == 0) {
            reading_ = true;
            return;
        }
        operation_not_started(loop_);
        if (is_pipe() && pipe_read_ended(err)) {
            // The writer has gone, and no completion comes for a call that failed at its
            // start. One is queued, so the EOF reaches the protocol from the loop, as every
            // read's does, never inside the call that asked to read (a transport's start,
            // resume_reading).
            read_op_.reset();
            iocp_io::of(loop_).post(read_op_);
            reading_ = true;
            return;
        }
        throw_system_error(err, is_pipe() ? "ReadFile (waiting for data)"
                                          : "WSARecv (waiting for data)");
    }

    void read_done() noexcept {
        reading_ = false;
        if (closed_) return free_if_idle();
        // Lost, or paused since: resume_reading posts the next zero-byte read.
        if (lost_ || !(watched_ & backend::io_read)) return;
        unsigned long bytes = 0;
        const unsigned long err = result_of(read_op_, bytes);
        // A socket's graceful close, a pipe's writer gone: the read says EOF. A message
        // longer than the read (a message-mode pipe): data is there.
        const bool goes_on = is_pipe() ? pipe_read_ended(err) || err == ERROR_MORE_DATA
                                       : err == WSAEDISCON;
        if (err != 0 && !goes_on) {
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
        if (is_pipe()) {
            receive([this](std::span<char> buffer) noexcept {
                unsigned long n = 0;
                const unsigned long err =
                    read_pipe_now(handle(), buffer, iocp_io::of(loop_).quiet_event(), n);
                if (err == 0) return n > 0 ? std::ptrdiff_t(n) : std::ptrdiff_t(-1);
                if (pipe_read_ended(err)) return std::ptrdiff_t(0);
                force_close(system_error_code(err));
                return std::ptrdiff_t(-1);
            });
            return;
        }
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

    bool has_write_buffer() const noexcept { return writes_ && writes_->size() != 0; }

    // Sends what the socket takes now; the rest (a pipe: all) goes out through WSASend or
    // WriteFile, one at a time.
    void send_or_buffer(std::string_view data) {
        if (!has_write_buffer()) {
            if (!is_pipe()) {
                const int n = send_some(data);
                if (n < 0) return;  // a fatal error closed the transport
                data.remove_prefix(static_cast<std::size_t>(n));
                if (data.empty()) return;
            }
            if (!writes_) writes_ = std::make_unique<write_buffers>();
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

    // Moves the queued bytes in flight: one WSASend or WriteFile, completed once the
    // system took them all.
    void send_queued() noexcept {
        writes_->in_flight.swap(writes_->queued);
        writes_->queued.clear();
        write_op_.reset();
        std::string& bytes = writes_->in_flight;
        operation_started(loop_);
        unsigned long err;
        if (is_pipe()) {
            err = start_pipe_write(handle(), bytes.data(), bytes.size(), write_op_.overlapped());
        } else {
            WSABUF b{static_cast<ULONG>(bytes.size()), bytes.data()};
            err = started(::WSASend(fd_, &b, 1, nullptr, 0, write_op_.overlapped(), nullptr));
        }
        if (err != 0) {
            operation_not_started(loop_);
            bytes.clear();
            force_close(system_error_code(err));
            return;
        }
        writing_ = true;
    }

    void write_done() noexcept {
        writing_ = false;
        if (closed_) return free_if_idle();
        unsigned long bytes = 0;
        const unsigned long err = result_of(write_op_, bytes);
        std::string& sent = writes_->in_flight;
        // Taken in part (a pipe in PIPE_NOWAIT mode can): the rest goes first.
        if (err == 0 && !lost_ && bytes < sent.size()) writes_->queued.insert(0, sent, bytes);
        sent.clear();
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
        if (!is_pipe() || sent.capacity() > kept_write_capacity ||
            writes_->queued.capacity() > kept_write_capacity) {
            writes_.reset();
        }
        writes_done();
    }

    void shutdown_write() noexcept {
        // A pipe has no half-close: its write_eof closes it once the bytes are out (asyncio).
        if (is_pipe()) {
            start_closing();
            return;
        }
        if (::shutdown(fd_, SD_SEND) != 0) {
            const int err = ::WSAGetLastError();
            if (err != WSAENOTCONN) force_close(system_error_code(static_cast<unsigned long>(err)));
        }
    }

    // An operation's outcome as its handle's kind reports it.
    template <class Op>
    unsigned long result_of(Op& op, unsigned long& bytes) noexcept {
        return is_pipe() ? op.file_result(handle(), bytes) : op.result(fd_, bytes);
    }

    // First, right after stream_core's flags, whose padding it may fill.
    descriptor_kind kind_;
    std::unique_ptr<write_buffers> writes_;  // only while a write is partly sent (a pipe: kept)
    member_op<overlapped_socket_transport, &overlapped_socket_transport::read_done> read_op_;
    member_op<overlapped_socket_transport, &overlapped_socket_transport::write_done> write_op_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
