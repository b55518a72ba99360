// ioloop: protocols, asyncio's callback networking interface. A protocol is told what
// happens on its transport; derive from it and override the hooks you need. A transport
// owns its protocol (made by the factory given to create_connection / create_server) and
// destroys it right after connection_lost.
#ifndef IOLOOP_NET_PROTOCOL_HPP
#define IOLOOP_NET_PROTOCOL_HPP

#include "ioloop/detail/config.hpp"

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class transport;
class datagram_transport;
class endpoint;

// What every protocol hears about its connection and its flow control.
class base_protocol {
public:
    virtual ~base_protocol() = default;

    // The connection is gone; an empty code means it was closed cleanly (asyncio's None).
    // The last call: the transport and this protocol are destroyed right after it.
    virtual void connection_lost(std::error_code) {}

    // The transport's write buffer went above its high-water mark: stop writing until
    // resume_writing(). Writes made meanwhile are still buffered, not lost.
    virtual void pause_writing() {}
    // ... and drained down to its low-water mark.
    virtual void resume_writing() {}
};

// A stream (TCP, Unix stream socket).
class protocol : public base_protocol {
public:
    // The connection is up; `t` stays valid until connection_lost returns.
    virtual void connection_made(transport& t) { (void)t; }

    // Bytes that arrived. The view points into a buffer the loop reuses: copy what you keep.
    virtual void data_received(std::string_view data) { (void)data; }

    // The peer will send no more. Return false (the default) to close the transport, true
    // to keep it open for writing (half-close).
    virtual bool eof_received() { return false; }
};

// A stream whose protocol lends the buffer the bytes are received into (asyncio's
// BufferedProtocol): the transport reads straight into it, with no copy through the loop's
// shared buffer. Accepted wherever a `protocol` factory is.
class buffered_protocol : public base_protocol {
public:
    // The connection is up; `t` stays valid until connection_lost returns.
    virtual void connection_made(transport& t) { (void)t; }

    // Where the next read goes. `size_hint` is what the transport would like (the size of
    // its own reads, 64 KiB); a smaller span is fine. An empty span, or an exception, is a
    // fatal error: the loop's exception handler hears of it and the transport is aborted
    // (connection_lost gets errc::connection_aborted).
    virtual std::span<char> get_buffer(std::size_t size_hint) = 0;

    // The last span get_buffer gave now holds `n` new bytes at its start (0 < n <= its
    // size). An exception is fatal, as from get_buffer.
    virtual void buffer_updated(std::size_t n) = 0;

    // The peer will send no more. Return false (the default) to close the transport, true
    // to keep it open for writing (half-close).
    virtual bool eof_received() { return false; }
};

// Datagrams (UDP, Unix datagram socket).
class datagram_protocol : public base_protocol {
public:
    virtual void connection_made(datagram_transport& t) { (void)t; }

    // One datagram and its sender. The view points into a buffer the loop reuses.
    virtual void datagram_received(std::string_view data, const endpoint& from) {
        (void)data;
        (void)from;
    }

    // A send or receive failed (an ICMP port unreachable seen as ECONNREFUSED, ...); the
    // transport stays open, as in asyncio.
    virtual void error_received(std::error_code) {}
};

namespace detail {

// What a stream transport accepts as its protocol: one derived from protocol or from
// buffered_protocol (not both: the two hear the same events in different ways).
template <class P>
inline constexpr bool is_stream_protocol =
    std::is_base_of_v<protocol, P> != std::is_base_of_v<buffered_protocol, P>;

// A stream's protocol as its transport owns it: which kind it is, known from the factory's
// type, is kept beside it, so no call needs a dynamic_cast.
struct owned_stream_protocol {
    template <class P>
    owned_stream_protocol(std::unique_ptr<P> p) noexcept  // NOLINT: converts, as unique_ptr's
        : ptr(std::move(p)), buffered(std::is_base_of_v<buffered_protocol, P>) {
        static_assert(is_stream_protocol<P>,
                      "the protocol factory must return std::unique_ptr<P>, with P derived from "
                      "ioloop::protocol or from ioloop::buffered_protocol");
    }

    // One whose kind is known already (a protocol taken from a transport: loop.start_tls).
    owned_stream_protocol(std::unique_ptr<base_protocol> p, bool is_buffered) noexcept
        : ptr(std::move(p)), buffered(is_buffered) {}

    std::unique_ptr<base_protocol> ptr;
    bool buffered;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
