// ioloop: AcceptEx on a completion backend: the pieces sock_accept and a server's
// listeners share, and accept_op, the one AcceptEx a listener keeps in flight. The
// socket AcceptEx fills and the room for the addresses belong to the kernel until the
// completion, so the operation owns them and frees itself only then.
#ifndef IOLOOP_NET_IOCP_OVERLAPPED_ACCEPT_HPP
#define IOLOOP_NET_IOCP_OVERLAPPED_ACCEPT_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/overlapped_op.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/iocp/iocp_io.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/socket.hpp"

#if defined(IOLOOP_WINDOWS)

#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_overlapped_error(unsigned long err, std::string_view op,
                                                native_socket s) {
    throw_system_error(err, concat({op, " on socket ", decimal(static_cast<long long>(s))}));
}

// AcceptEx wants room for both addresses, each 16 bytes longer than the largest.
struct accept_buffer {
    static constexpr DWORD address_room = sizeof(sockaddr_storage) + 16;
    char bytes[2 * address_room];

    // The peer's address, once AcceptEx completed.
    endpoint peer() noexcept {
        sockaddr* local = nullptr;
        sockaddr* remote = nullptr;
        int local_size = 0;
        int remote_size = 0;
        ::GetAcceptExSockaddrs(bytes, 0, address_room, address_room, &local, &local_size, &remote,
                               &remote_size);
        return remote && remote_size > 0 ? endpoint::from_native(remote, remote_size) : endpoint();
    }
};

// The family of a bound socket, for the socket AcceptEx fills.
inline address_family family_of(native_socket s) {
    sockaddr_storage addr{};
    int size = sizeof addr;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &size) != 0)
        throw_overlapped_error(::WSAGetLastError(), "getsockname", s);
    switch (addr.ss_family) {
        case AF_INET:
            return address_family::ipv4;
        case AF_INET6:
            return address_family::ipv6;
        default:
            return address_family::unix_domain;
    }
}

// Completes an accepted socket: it inherits the listener's options only once told.
inline void update_accept_context(native_socket listener, native_socket conn) {
    if (::setsockopt(conn, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT,
                     reinterpret_cast<const char*>(&listener), sizeof listener) != 0)
        throw_overlapped_error(::WSAGetLastError(), "SO_UPDATE_ACCEPT_CONTEXT", conn);
}

// Starts AcceptEx on `listener` into `conn` with `o`: 0 once started, or the error.
inline unsigned long start_accept(native_socket listener, native_socket conn,
                                  accept_buffer& addresses, OVERLAPPED* o) noexcept {
    DWORD received = 0;
    if (::AcceptEx(listener, conn, addresses.bytes, 0, accept_buffer::address_room,
                   accept_buffer::address_room, &received, o))
        return 0;
    const int err = ::WSAGetLastError();
    return err == ERROR_IO_PENDING ? 0 : static_cast<unsigned long>(err);
}

// A listener's AcceptEx in flight. Owner::accepted(socket, endpoint peer, std::error_code)
// noexcept receives the connection, or the error.
template <class Owner>
class accept_op final : public overlapped_op {
public:
    // Starts accepting on `listener`, a socket of `family` associated with the loop's
    // port; throws if AcceptEx cannot start.
    static accept_op* start(loop_base& loop, native_socket listener, address_family family,
                            Owner& owner) {
        auto* op = new accept_op(owner, listener, socket::open(family, socket_type::stream));
        operation_started(loop);
        if (const unsigned long err =
                start_accept(listener, op->conn_.fd(), op->addresses_, op->overlapped())) {
            operation_not_started(loop);
            delete op;
            throw_overlapped_error(err, "AcceptEx", listener);
        }
        return op;
    }

    // The owner goes away (or stops accepting): the completion, cancelled, frees the op.
    void orphan() noexcept {
        owner_ = nullptr;
        ::CancelIoEx(reinterpret_cast<HANDLE>(listener_), overlapped());
    }

    std::string describe() const override {
        return concat(
            {"the server accepting on socket ", decimal(static_cast<long long>(listener_))});
    }

private:
    accept_op(Owner& owner, native_socket listener, socket conn) noexcept
        : owner_(&owner), listener_(listener), conn_(std::move(conn)) {}

    void on_io(unsigned) noexcept override {
        if (Owner* owner = owner_) {
            unsigned long bytes = 0;
            const unsigned long err = result(listener_, bytes);
            std::error_code ec = err == 0 ? std::error_code() : system_error_code(err);
            endpoint peer;
            if (!ec) {
                try {
                    update_accept_context(listener_, conn_.fd());
                    peer = addresses_.peer();
                } catch (const std::system_error& e) {
                    ec = e.code();
                }
            }
            owner->accepted(std::move(conn_), std::move(peer), ec);
        }
        delete this;
    }

    Owner* owner_;
    native_socket listener_;
    socket conn_;
    accept_buffer addresses_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS
#endif
