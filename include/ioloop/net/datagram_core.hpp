// ioloop: what every datagram transport does the same way, whatever moves its datagrams:
// sendto()'s checks and the queue of datagrams the socket did not take yet (sent in
// order, counted in bytes for flow control), what follows when datagrams leave it, and
// how a received datagram or an error reaches the protocol. Written once for both backend
// families: Derived (datagram_socket_transport, overlapped_datagram_transport) only moves
// the datagrams.
//
// Derived provides, besides what transport_core asks of it: can_send_now() (nothing would
// go out before a new datagram), send_one(data, to) (false: the socket cannot take it
// now) and queued() (a datagram joined the queue: get it moving).
#ifndef IOLOOP_NET_DATAGRAM_CORE_HPP
#define IOLOOP_NET_DATAGRAM_CORE_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct datagram {
    std::string data;
    endpoint to;  // unspecified: the connected peer
};

// Datagrams waiting for the socket, first in, first out. The front is taken by moving an
// index; the vector is compacted once the taken part outweighs what waits, so a queue
// that never quite drains stays small.
class datagram_queue {
public:
    bool empty() const noexcept { return next_ == items_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

    void push(datagram d) {
        const std::size_t size = d.data.size();
        items_.push_back(std::move(d));
        bytes_ += size;
    }

    datagram& front() noexcept { return items_[next_]; }

    datagram pop_front() noexcept {
        datagram d = std::move(items_[next_]);
        items_[next_] = {};
        bytes_ -= d.data.size();
        if (++next_ == items_.size()) {
            clear();
        } else if (next_ >= 64 && next_ * 2 >= items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(next_));
            next_ = 0;
        }
        return d;
    }

    void clear() noexcept {
        items_.clear();
        next_ = 0;
        bytes_ = 0;
    }

private:
    std::vector<datagram> items_;
    std::size_t next_ = 0;  // the first not taken yet
    std::size_t bytes_ = 0;
};

template <class Derived>
class datagram_core : public transport_core<Derived, datagram_transport, datagram_protocol> {
    using core = transport_core<Derived, datagram_transport, datagram_protocol>;

public:
    using datagram_transport::sendto;  // the std::span<const std::byte> form
    void sendto(std::string_view data, const endpoint& to) final {
        if (this->user_closed_) {
            throw invalid_state_error("datagram_transport::sendto: the transport is closed");
        }
        if (this->lost_) return;
        if (self().can_send_now() && self().send_one(data, to)) return;
        queue_.push({std::string(data), to});
        self().queued();
        this->maybe_pause_protocol();
    }

    void join_multicast_group(const endpoint& group, const endpoint& where) final {
        check_usable("join_multicast_group");
        join_multicast(this->fd_, group, where);
    }
    void set_multicast_interface(const endpoint& where) final {
        check_usable("set_multicast_interface");
        detail::set_multicast_interface(this->fd_, where);
    }

protected:
    using core::core;
    ~datagram_core() override = default;

    void check_usable(const char* what) const {
        if (this->closing_) {
            throw invalid_state_error(
                concat({"datagram_transport::", what, ": the transport is closed"}));
        }
    }

    // transport_core's hook. A datagram the kernel owns (in flight on a completion
    // backend) is not the queue's: it stays until its send completes.
    void drop_buffer() noexcept { queue_.clear(); }

    // Datagrams left the queue (sent, or failed and dropped): the protocol may resume
    // writing, and a close that waited for them goes on. resume_writing may have sent
    // more, closed or aborted: only an empty, live transport goes on to close.
    void datagrams_sent() noexcept {
        if (this->lost_) return;
        this->maybe_resume_protocol();
        if (this->closing_ && self().buffered() == 0 && !this->lost_) {
            this->schedule_connection_lost({});
        }
    }

    // A datagram read, from `native` (size bytes of address; none from an unnamed Unix
    // sender or one the system did not fill in: the sender is then unspecified).
    void deliver(std::string_view data, const sockaddr* native, socklen_t size) noexcept {
        try {
            const endpoint sender = size <= family_size || native->sa_family == AF_UNSPEC
                                        ? endpoint()
                                        : endpoint::from_native(native, size);
            this->protocol_->datagram_received(data, sender);
        } catch (...) {
            this->protocol_failed("datagram_received");
        }
    }

    // A send or receive failed, with the socket's error (see datagram_error_code): the
    // protocol hears it and the transport stays open, as in asyncio.
    void report_error(std::error_code ec) noexcept {
        try {
            this->protocol_->error_received(ec);
        } catch (...) {
            this->protocol_failed("error_received");
        }
    }

    datagram_queue queue_;

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
