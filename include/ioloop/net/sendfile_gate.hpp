// ioloop: sendfile_gate, what loop.sendfile (net/sendfile.hpp) and the stream transport it
// sends through share while it runs. The transport refuses the user's write() (asyncio:
// "sendfile is in progress"), and sets `changed` when something the sendfile waits for
// happens: its write buffer emptied, its socket turned writable (while want_writable), or
// it went away (gone: the sendfile must not touch it again).
#ifndef IOLOOP_NET_SENDFILE_GATE_HPP
#define IOLOOP_NET_SENDFILE_GATE_HPP

#include "ioloop/coro/event.hpp"
#include "ioloop/detail/config.hpp"

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class connection_counter;  // net/stream_core.hpp

struct sendfile_gate {
    event changed;
    bool want_writable = false;  // native sendfile: the socket was full, wake when writable
    bool own_write = false;      // the fallback's own write(), which the gate lets through
    bool gone = false;           // the transport is destroyed
    connection_counter* server = nullptr;  // the transport's, kept here while the gate is set

    void wake() noexcept { changed.set(); }
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
