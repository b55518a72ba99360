// ioloop: the datagram transport of the readiness backends: a UDP or Unix datagram
// socket, its protocol, and the datagrams the socket could not take yet (sent in order
// once it can, as asyncio queues them).
//
// Reading: every datagram reaches the protocol whole, or not at all. A UDP payload always
// fits the loop's shared 64 KiB read buffer, so a UDP socket reads straight into it. A Unix
// datagram may be as large as its sender's SO_SNDBUF allows (over 200,000 bytes by default
// on Linux), so a Unix socket first asks the size of the next one (FIONREAD) and reads a
// larger one into a buffer of its own, freed once the protocol has seen it: an idle
// endpoint holds no buffer. A datagram that still does not fit (another process read the
// one measured, or no memory for the buffer) is lost: error_received says so with
// std::errc::message_size, and nothing short is delivered.
#ifndef IOLOOP_NET_REACTIVE_DATAGRAM_SOCKET_TRANSPORT_HPP
#define IOLOOP_NET_REACTIVE_DATAGRAM_SOCKET_TRANSPORT_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/datagram_core.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"

#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class datagram_socket_transport final : public datagram_core<datagram_socket_transport> {
    using core = transport_core<datagram_socket_transport, datagram_transport, datagram_protocol>;
    friend core;
    friend datagram_core<datagram_socket_transport>;

public:
    static datagram_socket_transport& start(loop_base& loop, socket sock,
                                            std::unique_ptr<datagram_protocol> p) {
        const bool measure = may_outgrow_read_buffer(sock.fd());
        return core::start(loop, sock.release(), std::move(p), measure);
    }

private:
    datagram_socket_transport(loop_base& loop, native_socket fd,
                              std::unique_ptr<datagram_protocol> p, bool measure) noexcept
        : datagram_core(loop, fd, std::move(p)), measure_(measure) {}
    ~datagram_socket_transport() override = default;

    // The largest UDP payload: 65,535 bytes less UDP's 8-byte header and, over IPv4, its
    // 20-byte header (IPv6 does not count its own). The shared buffer must take it.
    static constexpr std::size_t largest_udp_payload = 65'527;
    static_assert(net_access::read_buffer_size >= largest_udp_payload,
                  "a UDP datagram must fit the shared read buffer: UDP reads do not measure");

    // Whether the socket's datagrams may be larger than the shared read buffer: any but a
    // UDP socket's (in practice a Unix one's). If getsockname fails the family is unknown,
    // and the socket is measured: that is only slower.
    static bool may_outgrow_read_buffer(native_socket fd) noexcept {
        sockaddr_storage address{};
        socklen_t size = sizeof address;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return true;
        return address.ss_family != AF_INET && address.ss_family != AF_INET6;
    }

    unsigned wanted_events() const noexcept {
        return (closing_ ? 0u : unsigned(backend::io_read)) |
               (queue_.empty() ? 0u : unsigned(backend::io_write));
    }
    std::size_t buffered() const noexcept { return queue_.bytes(); }

    void on_io(unsigned events) noexcept override {
        if ((events & backend::io_read) && (watched_ & backend::io_read)) read_ready();
        if ((events & backend::io_write) && !queue_.empty() && !lost_) write_ready();
    }

    void read_ready() noexcept {
        std::span<char> buffer = net_access::read_buffer(loop_);
        // A datagram larger than the shared buffer: one of its own, for this read only.
        // (FIONREAD counts every queued datagram on the BSDs and macOS: there a small one
        // with more than 64 KiB queued behind it gets one too, larger than it needs.)
        std::unique_ptr<char[]> own;
        if (measure_) {
            const std::size_t next = next_datagram_size(fd_);
            if (next > buffer.size()) {
                own.reset(new (std::nothrow) char[next]);
                // No memory for it: the shared buffer cannot hold the datagram either, so it
                // is lost and reported as too large (message_size).
                if (own) buffer = {own.get(), next};
            }
        }
        sockaddr_storage from{};
        socklen_t size = sizeof from;
        auto* native = reinterpret_cast<sockaddr*>(&from);
        std::ptrdiff_t n;
        int err = 0;
        do {
            n = socket_recv_datagram(fd_, buffer.data(), buffer.size(), native, &size);
            if (n == -1) err = last_socket_error();
        } while (n == -1 && interrupted(err));
        if (n < 0) {
            // EMSGSIZE (WSAEMSGSIZE): a datagram larger than the buffer, lost; the protocol
            // hears std::errc::message_size, and nothing of it is delivered.
            if (!would_block(err)) report_error(datagram_error_code(err));
            return;
        }
        deliver(std::string_view(buffer.data(), std::size_t(n)), native, size);
    }

    void write_ready() noexcept {
        while (!queue_.empty() && !lost_) {
            const datagram& d = queue_.front();
            if (!send_one(d.data, d.to)) break;
            queue_.pop_front();
        }
        if (lost_) return;
        if (queue_.empty()) update_watch();
        datagrams_sent();
    }

    // ---- what datagram_core asks of us --------------------------------------------------

    bool can_send_now() const noexcept { return queue_.empty(); }
    void queued() noexcept { update_watch(); }

    // Sends one datagram; false if the socket cannot take it now. A failure other than
    // that goes to the protocol's error_received and the datagram is dropped (asyncio).
    bool send_one(std::string_view data, const endpoint& to) noexcept {
        const bool connected = to.family() == address_family::unspecified;
        for (;;) {
            const std::ptrdiff_t n =
                connected ? socket_send(fd_, data.data(), data.size())
                          : socket_sendto(fd_, data.data(), data.size(), to.native(),
                                          to.native_size());
            if (n >= 0) return true;
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (would_block(err)) return false;
            report_error(datagram_error_code(err));
            return true;  // dropped: it counts as handled
        }
    }

    bool measure_;  // ask each datagram's size before reading it (not UDP)
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
