// ioloop: loop.connect_read_pipe and loop.connect_write_pipe (asyncio's): a descriptor that
// is not a socket, handed to a stream transport and the factory's protocol.
#ifndef IOLOOP_NET_CONNECT_PIPE_HPP
#define IOLOOP_NET_CONNECT_PIPE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/create_connection.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/transport.hpp"

#include <memory>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The coroutine owns the descriptor from its creation: destroyed unstarted, it closes it.
template <class P, class Factory>
coro<std::pair<transport*, P*>> connect_pipe(loop_base& loop, Factory factory,
                                             owned_descriptor fd, descriptor_kind kind) {
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    transport& t = with_family(loop, [&](auto ops) -> transport& {
        return ops.start_pipe(loop, std::move(fd), kind, std::move(proto));
    });
    co_return std::pair<transport*, P*>(&t, p);
}

// The checks made at the call, then the coroutine. The descriptor is owned at once.
template <class Factory>
coro<std::pair<transport*, protocol_of<Factory>*>> connect_pipe_call(loop_base& loop,
                                                                     Factory factory,
                                                                     native_descriptor fd,
                                                                     descriptor_kind kind) {
    owned_descriptor owned(fd);
    net_access::check_open(loop, pipe_call(kind));
    return connect_pipe<protocol_of<Factory>>(loop, std::move(factory), std::move(owned), kind);
}

}  // namespace detail

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_read_pipe(
    Factory factory, native_descriptor fd) {
    return detail::connect_pipe_call(*this, std::move(factory), fd,
                                     detail::descriptor_kind::read_pipe);
}

template <class Factory>
coro<std::pair<transport*, detail::protocol_of<Factory>*>> loop_base::connect_write_pipe(
    Factory factory, native_descriptor fd) {
    return detail::connect_pipe_call(*this, std::move(factory), fd,
                                     detail::descriptor_kind::write_pipe);
}

IOLOOP_NAMESPACE_END

#endif
