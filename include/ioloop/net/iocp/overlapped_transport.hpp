// ioloop: overlapped_transport, what both IOCP transports (stream and datagram) do alike
// around their two operations: one that waits for data (a zero-byte read or peek, so an
// idle connection holds no read buffer) and one that sends. The kernel owns each one's
// OVERLAPPED and buffers until its completion is dequeued, so the transport is freed only
// once neither is in flight.
//
// Core is the protocol-facing part (stream_core<Derived>, or transport_core for
// datagrams). Derived provides start_waiting_for_data() (throws if it cannot start),
// read_op() and write_op(); it may hide close_now() and close_last() (how a socket
// closes, below) when its handle is something else.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_TRANSPORT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/detail/windows.hpp"

#if defined(IOLOOP_WINDOWS)

#include <string>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// An overlapped operation whose completion calls a member of its owner.
template <class Owner, void (Owner::*Done)() noexcept>
class member_op final : public overlapped_op {
public:
    explicit member_op(Owner& owner) noexcept : owner_(owner) {}
    std::string describe() const override { return owner_.operations_owner(); }

private:
    void on_io(unsigned) noexcept override { (owner_.*Done)(); }
    Owner& owner_;
};

template <class Derived, class Core>
class overlapped_transport : public Core {
public:
    // What debug mode calls the transport when one of its operations was slow.
    std::string operations_owner() const { return this->describe(); }

protected:
    using Core::Core;

    // The transport itself is never reported to: its operations are.
    void on_io(unsigned) noexcept override {}

    // transport_core's hook. Reading wanted: an operation waits for data. Not wanted any
    // more: one in flight is left to complete and then ignored, unless the connection is
    // lost.
    void change_watch(unsigned, unsigned new_events) {
        if (new_events & backend::io_read) {
            if (!reading_) self().start_waiting_for_data();
        } else if (this->lost_) {
            cancel_all();
        }
    }

    // transport_core's hook: what is in flight is cancelled (close_now); the memory goes
    // when the last completion has come (close_last, then delete).
    void close_and_free() noexcept {
        closed_ = true;
        self().close_now();
        free_if_idle();
    }

    // A socket closes at once, which cancels its operations, and their completions still
    // come to the port.
    void close_now() noexcept { ::closesocket(this->fd_); }
    void close_last() noexcept {}

    void cancel_all() noexcept {
        const auto h = reinterpret_cast<HANDLE>(this->fd_);
        if (reading_) ::CancelIoEx(h, self().read_op().overlapped());
        if (writing_) ::CancelIoEx(h, self().write_op().overlapped());
    }

    // After close, each completion asks whether it was the last.
    void free_if_idle() noexcept {
        if (reading_ || writing_) return;
        self().close_last();
        delete this;  // the destructor is virtual
    }

    bool reading_ = false;  // the operation waiting for data is in flight
    bool writing_ = false;  // a send is in flight
    bool closed_ = false;   // closed: only completions are awaited

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
