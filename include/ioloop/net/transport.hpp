// ioloop: transports, asyncio's callback networking interface: the connection a protocol
// writes to. `transport` is a stream (TCP, Unix stream socket), `datagram_transport` a
// datagram socket. Each backend family has its own implementation behind these
// interfaces (readiness: net/socket_transport.hpp), so the protocols and the streams
// above them are the same code everywhere.
//
// Lifetime: a transport owns itself. It stays valid until its protocol's connection_lost
// has returned, then it is destroyed with the protocol. Closing the loop destroys the
// transports that are still open, without callbacks.
#ifndef IOLOOP_NET_TRANSPORT_HPP
#define IOLOOP_NET_TRANSPORT_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/net/endpoint.hpp"

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

namespace detail {
struct sendfile_gate;    // net/sendfile_gate.hpp
struct sendfile_access;  // net/sendfile.hpp
struct tls_access;       // net/start_tls.hpp
struct owned_stream_protocol;
}  // namespace detail

// What get_extra_info returns: an address ("peername", "sockname"), a descriptor
// ("socket": a SOCKET on Windows; "pipe": read it with pipe(), a HANDLE on Windows), text
// (a TLS transport's "cipher", "ssl_version", "alpn_protocol", "peercert" as PEM), a
// library's object ("ssl_object": OpenSSL's SSL*, as void*), or nothing (an unknown name,
// or a transport already closed).
class extra_info {
public:
    extra_info() noexcept = default;
    explicit extra_info(endpoint address) : kind_(kind::address), address_(std::move(address)) {}
    explicit extra_info(native_socket fd) noexcept : kind_(kind::descriptor), fd_(fd) {}
    explicit extra_info(std::string text) : kind_(kind::text), text_(std::move(text)) {}
    explicit extra_info(void* object) noexcept : kind_(kind::object), object_(object) {}

    bool has_value() const noexcept { return kind_ != kind::none; }
    explicit operator bool() const noexcept { return has_value(); }
    bool is_address() const noexcept { return kind_ == kind::address; }
    bool is_descriptor() const noexcept { return kind_ == kind::descriptor; }
    bool is_text() const noexcept { return kind_ == kind::text; }
    bool is_handle() const noexcept { return kind_ == kind::object; }

    const endpoint& address() const {
        if (kind_ != kind::address) throw invalid_state_error("extra_info: not an address");
        return address_;
    }
    native_socket fd() const {
        if (kind_ != kind::descriptor) throw invalid_state_error("extra_info: not a descriptor");
        return fd_;
    }
    const std::string& text() const {
        if (kind_ != kind::text) throw invalid_state_error("extra_info: not text");
        return text_;
    }
    // A library's object, to be cast back to its type ("ssl_object": SSL*).
    void* handle() const {
        if (kind_ != kind::object) throw invalid_state_error("extra_info: not a handle");
        return object_;
    }
    // A pipe transport's descriptor ("pipe"), as connect_read_pipe / connect_write_pipe
    // took it: fd() on POSIX, the pipe's HANDLE on Windows.
    native_descriptor pipe() const { return detail::socket_as_descriptor(fd()); }

private:
    enum class kind : unsigned char { none, address, descriptor, text, object };
    kind kind_ = kind::none;
    endpoint address_;
    native_socket fd_ = invalid_socket;
    std::string text_;
    void* object_ = nullptr;
};

// asyncio's defaults: pause the protocol above 64 KiB buffered, resume at a quarter.
inline constexpr std::size_t default_write_high_water = 64 * 1024;

// The write-buffer limits, as asyncio's get_write_buffer_limits() gives them.
struct write_buffer_limits {
    std::size_t low;
    std::size_t high;
};

class base_transport : public detail::loop_resource {
public:
    // Stops reading at once; buffered writes are still sent, then the connection is
    // closed and connection_lost(no error) is called on a later iteration. Closing twice
    // does nothing.
    virtual void close() = 0;
    // Closes at once, dropping buffered writes; connection_lost(no error) follows.
    virtual void abort() = 0;
    // True once close() or abort() was called, or the connection was lost.
    virtual bool is_closing() const noexcept = 0;

    // "peername", "sockname" (addresses), "socket" (the descriptor); a pipe transport
    // (connect_read_pipe, connect_write_pipe) has "pipe" (its descriptor) alone; nothing
    // otherwise.
    virtual extra_info get_extra_info(std::string_view name) const = 0;

    // get_extra_info("peername") and ("sockname"), typed. An endpoint rather than an
    // optional: endpoint has its own empty value, the unspecified address
    // (family() == address_family::unspecified), given when there is no address: a pipe,
    // a transport already closed, a datagram socket with no peer.
    endpoint peername() const { return address_of("peername"); }
    endpoint sockname() const { return address_of("sockname"); }

    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    // asyncio's rule: high alone sets low to high / 4; low alone sets high to 4 * low;
    // neither gives the defaults. `low` must not exceed `high` (std::invalid_argument).
    virtual void set_write_buffer_limits(std::size_t high = unset, std::size_t low = unset) = 0;
    virtual write_buffer_limits get_write_buffer_limits() const noexcept = 0;

    static constexpr std::size_t unset = static_cast<std::size_t>(-1);

protected:
    base_transport() = default;
    ~base_transport() override = default;

private:
    endpoint address_of(std::string_view name) const {
        extra_info info = get_extra_info(name);
        return info.is_address() ? info.address() : endpoint();
    }
};

namespace detail {

// Bytes as the transports take them: std::byte and char have the same representation.
inline std::string_view as_chars(std::span<const std::byte> data) noexcept {
    return std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
}

}  // namespace detail

class transport : public base_transport {
public:
    // Sends data, buffering what the socket does not take now; never blocks.
    // After close(), abort() or write_eof(): invalid_state_error (a bug in the caller).
    // After the connection was lost to an error: dropped (connection_lost reports it).
    virtual void write(std::string_view data) = 0;
    // The same for raw bytes (std::as_bytes(std::span(v)) of any trivially copyable v).
    void write(std::span<const std::byte> data) { write(detail::as_chars(data)); }

    // The pieces, in order, as one write.
    template <class Range>
    void writelines(const Range& pieces) {
        std::string joined;
        for (const auto& piece : pieces) joined.append(std::string_view(piece));
        write(joined);
    }
    void writelines(std::initializer_list<std::string_view> pieces) {
        writelines<std::initializer_list<std::string_view>>(pieces);
    }

    // Half-close: the peer reads EOF once the buffered writes are sent; reading goes on.
    virtual void write_eof() = 0;
    virtual bool can_write_eof() const noexcept = 0;

    // Flow control from the reading side: no data_received until resume_reading().
    // Both are idempotent.
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
    virtual bool is_reading() const noexcept = 0;

protected:
    transport() = default;
    ~transport() override = default;

private:
    friend struct detail::sendfile_access;
    friend struct detail::tls_access;
    // loop.start_tls's hook: puts `p` in the place of this transport's protocol and gives
    // the one it had back (which a TLS layer over this transport then owns). False: this
    // transport cannot (a TLS transport already, or one of the program's own).
    virtual bool exchange_protocol(detail::owned_stream_protocol& p) noexcept {
        (void)p;
        return false;
    }
    // loop.sendfile's hooks (net/sendfile.hpp). The socket sendfile(2) may write to: a
    // plain socket's on a readiness backend, none otherwise (the fallback is used then).
    virtual native_socket sendfile_socket() const noexcept { return invalid_socket; }
    // The gate of the sendfile that runs, or nullptr when it ends; set again after a
    // change of its want_writable. False: the transport cannot take one (another runs, or
    // it is a transport of the program's own, which knows no gate: a test's fake).
    virtual bool set_sendfile_gate(detail::sendfile_gate* gate) noexcept {
        (void)gate;
        return false;
    }
};

class datagram_transport : public base_transport {
public:
    // Sends one datagram to `to` (or to the connected peer when `to` is unspecified).
    // Datagrams the socket cannot take now are queued and sent in order.
    virtual void sendto(std::string_view data, const endpoint& to = endpoint()) = 0;
    void sendto(std::span<const std::byte> data, const endpoint& to = endpoint()) {
        sendto(detail::as_chars(data), to);
    }

    // Multicast, which asyncio leaves to setsockopt on get_extra_info("socket"): here on
    // the transport, so that the same call works on every backend and a closed transport
    // says so. Joins `group` on the interface `where` (IPv4: the interface's address,
    // unspecified for the routing table's choice; IPv6: an endpoint whose scope id names
    // it); set_multicast_interface chooses the interface datagrams to a group leave by
    // (loopback: endpoint "127.0.0.1").
    virtual void join_multicast_group(const endpoint& group, const endpoint& where = endpoint()) = 0;
    virtual void set_multicast_interface(const endpoint& where) = 0;

protected:
    datagram_transport() = default;
    ~datagram_transport() override = default;
};

IOLOOP_NAMESPACE_END

#endif
