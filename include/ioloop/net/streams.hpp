// ioloop: asyncio's stream functions: open_connection / open_unix_connection give a
// connected (stream_reader, stream_writer) pair; start_server / start_unix_server run a
// coroutine per accepted connection, as a task of its own; connect_read_pipe /
// connect_write_pipe give a stream_reader or a stream_writer over a pipe or a terminal.
//
// Each is a plain function that checks its arguments and returns the coroutine that does
// the work, so the callback and the strings it was given are moved out of the caller's
// co_await expression at once (g++ 12 mishandles such temporaries across a suspension).
#ifndef IOLOOP_NET_STREAMS_HPP
#define IOLOOP_NET_STREAMS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/connect_pipe.hpp"
#include "ioloop/net/create_connection.hpp"
#include "ioloop/net/create_server.hpp"
#include "ioloop/net/connect_options.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/serve_options.hpp"
#include "ioloop/net/server.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_reader.hpp"
#include "ioloop/net/stream_writer.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct stream_access {
    static void set_pending(stream_reader_protocol& p, coro<void> c) noexcept {
        p.pending_ = std::move(c);
        p.from_server_ = 1;
    }
    // The stream a handle is of (the handle is not empty).
    template <class Handle>
    static stream_reader_protocol& protocol_of(const Handle& h) noexcept {
        return *h.s_;
    }
};

inline void check_stream_limit(std::size_t limit, const char* what) {
    if (limit == 0 || limit > stream_reader_protocol::max_limit) {
        throw std::invalid_argument(concat({what, ": the limit must be in [1, 2^32)"}));
    }
}

// A client connection's protocol, and its handles, put where the connecting coroutine
// keeps them. A pipe has one of the two: a null one is not made (a writer made and
// dropped would close the transport).
struct stream_client_factory {
    std::size_t limit;
    stream_reader* reader;
    stream_writer* writer;

    std::unique_ptr<stream_reader_protocol> operator()() const {
        std::unique_ptr<stream_reader_protocol> p = stream_reader_protocol::create(limit);
        if (reader) *reader = stream_reader(*p);
        if (writer) *writer = stream_writer(*p);
        return p;
    }
};

// A server connection's protocol, and the callback's coroutine for it, which becomes a
// task once the transport calls connection_made.
template <class Callback>
struct stream_server_factory {
    Callback cb;
    std::size_t limit;

    std::unique_ptr<stream_reader_protocol> operator()() {
        std::unique_ptr<stream_reader_protocol> p = stream_reader_protocol::create(limit);
        stream_access::set_pending(*p, cb(stream_reader(*p), stream_writer(*p)));
        return p;
    }
};

template <class Callback>
constexpr void check_stream_callback() {
    static_assert(
        std::is_same_v<std::invoke_result_t<Callback&, stream_reader, stream_writer>, coro<void>>,
        "start_server: the callback must be callable as cb(stream_reader, stream_writer) and "
        "return ioloop::coro<void>");
}

// open_connection's coroutine. The factory puts the handles right here, in the frame,
// before the transport exists: nothing can take the connection from under them. The loop
// is the one running the coroutine, as in asyncio: loop.run_until_complete(open_connection(...))
// works.
template <class = void>
coro<std::pair<stream_reader, stream_writer>> open_stream(std::string host, std::uint16_t port,
                                                          bool unix_path, std::size_t limit) {
    loop_base& loop = loop_access::running_or_throw(unix_path ? "open_unix_connection"
                                                              : "open_connection");
    stream_reader reader;
    stream_writer writer;
    const stream_client_factory factory{limit, &reader, &writer};
    if (unix_path) {
        auto connecting = loop.create_unix_connection(factory, std::move(host));
        co_await std::move(connecting);
    } else {
        auto connecting = loop.create_connection(factory, std::move(host), port);
        co_await std::move(connecting);
    }
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

// open_connection's coroutine with options: to host's addresses (`sock` closed), or over
// `sock`, connected already (host empty).
template <class = void>
coro<std::pair<stream_reader, stream_writer>> open_stream_with(std::string host,
                                                               std::uint16_t port, socket sock,
                                                               connect_options o) {
    loop_base& loop = loop_access::running_or_throw("open_connection");
    stream_reader reader;
    stream_writer writer;
    const stream_client_factory factory{o.limit, &reader, &writer};
    if (sock.is_open()) {
        auto connecting = loop.create_connection(factory, std::move(sock), o);
        co_await std::move(connecting);
    } else {
        auto connecting = loop.create_connection(factory, std::move(host), port, o);
        co_await std::move(connecting);
    }
    co_return std::pair<stream_reader, stream_writer>(std::move(reader), std::move(writer));
}

// connect_read_pipe's and connect_write_pipe's coroutine: one handle of the pair, over the
// descriptor, owned from the call (closed if the coroutine never runs or fails).
template <class Handle>
coro<Handle> open_pipe_stream(owned_descriptor fd, std::size_t limit) {
    constexpr bool reading = std::is_same_v<Handle, stream_reader>;
    const char* what = reading ? "connect_read_pipe" : "connect_write_pipe";
    loop_base& loop = loop_access::running_or_throw(what);
    Handle handle;
    if constexpr (reading) {
        auto connecting = loop.connect_read_pipe(stream_client_factory{limit, &handle, nullptr},
                                                 fd.release());
        co_await std::move(connecting);
    } else {
        auto connecting = loop.connect_write_pipe(stream_client_factory{limit, nullptr, &handle},
                                                  fd.release());
        co_await std::move(connecting);
    }
    co_return handle;
}

// start_server's coroutine, on the loop that runs it.
template <class Callback>
coro<server> serve_streams(stream_server_factory<Callback> factory, std::string where,
                           std::uint16_t port, bool unix_path, serve_options o) {
    loop_base& loop = loop_access::running_or_throw(unix_path ? "start_unix_server"
                                                              : "start_server");
    if (unix_path) {
        auto starting = loop.create_unix_server(std::move(factory), std::move(where), o);
        co_return co_await std::move(starting);
    }
    auto starting = loop.create_server(std::move(factory), std::move(where), port, o);
    co_return co_await std::move(starting);
}

// start_server's coroutine with options: on the hosts (sock closed), or on `sock`. The
// hosts are this frame's copy of the caller's options.hosts.
template <class Callback>
coro<server> serve_streams_with(stream_server_factory<Callback> factory,
                                std::vector<std::string> hosts, std::uint16_t port, socket sock,
                                serve_options o) {
    loop_base& loop = loop_access::running_or_throw("start_server");
    if (sock.is_open()) {
        auto starting = loop.create_server(std::move(factory), std::move(sock), o);
        co_return co_await std::move(starting);
    }
    o.hosts = &hosts;
    auto starting = loop.create_server(std::move(factory), std::string(), port, o);
    co_return co_await std::move(starting);
}

}  // namespace detail

// co_await open_connection(host, port) -> {stream_reader, stream_writer} (asyncio's
// open_connection): host's addresses are tried in order; the last one's error
// (std::system_error, errc::connection_refused...) if none connects. `limit` is the
// reader's (see stream_reader).
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_connection(
    std::string host, std::uint16_t port, std::size_t limit = stream_default_limit) {
    detail::check_stream_limit(limit, "open_connection");
    return detail::open_stream(std::move(host), port, false, limit);
}

// With options (connect_options: limit, local_addr, happy_eyeballs_delay, interleave,
// all_errors; ssl and server_hostname need <ioloop/ssl.hpp>).
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_connection(std::string host,
                                                              std::uint16_t port,
                                                              const connect_options& options) {
    detail::check_stream_limit(options.limit, "open_connection");
    detail::check_connect_options(options, "open_connection");
    return detail::open_stream_with(std::move(host), port, socket(), options);
}

// Over `sock`, a stream socket connected already (asyncio's sock=): the streams own it.
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_connection(
    socket sock, const connect_options& options = {}) {
    detail::check_stream_limit(options.limit, "open_connection");
    detail::check_connect_options(options, "open_connection");
    detail::check_connected_stream(sock, "open_connection");
    return detail::open_stream_with(std::string(), 0, std::move(sock), options);
}

// The same over a Unix stream socket at `path` (a leading '\0': an abstract name, Linux).
template <class = void>  // a template: compiled only where it is used
coro<std::pair<stream_reader, stream_writer>> open_unix_connection(
    std::string path, std::size_t limit = stream_default_limit) {
    detail::check_stream_limit(limit, "open_unix_connection");
    return detail::open_stream(std::move(path), 0, true, limit);
}

// co_await connect_read_pipe(fd) -> stream_reader (asyncio's StreamReader over
// loop.connect_read_pipe): fd, a pipe, a FIFO, a terminal or a character device (POSIX),
// or an overlapped named pipe's HANDLE (Windows, IOCP), is the stream's from the call on,
// and closed at EOF, when the last stream_reader of it goes, or when the loop closes.
// `limit` is the reader's (see stream_reader).
template <class = void>  // a template: compiled only where it is used
coro<stream_reader> connect_read_pipe(native_descriptor fd,
                                      std::size_t limit = stream_default_limit) {
    detail::owned_descriptor owned(fd);
    detail::check_stream_limit(limit, "connect_read_pipe");
    return detail::open_pipe_stream<stream_reader>(std::move(owned), limit);
}

// co_await connect_write_pipe(fd) -> stream_writer: every stream_writer method works on it,
// drain included; write_eof and close send what is buffered, then close fd. The reader
// going away is errc::broken_pipe (from drain or wait_closed), never SIGPIPE.
template <class = void>  // a template: compiled only where it is used
coro<stream_writer> connect_write_pipe(native_descriptor fd) {
    return detail::open_pipe_stream<stream_writer>(detail::owned_descriptor(fd),
                                                   stream_default_limit);
}

// co_await start_server(cb, host, port) -> server (asyncio's start_server), serving at
// once: each accepted connection runs cb(stream_reader, stream_writer) as a task. cb
// takes both by value (a coroutine keeps its parameters). An exception the task ends with
// goes to the loop's exception handler; when cb returns, its writer goes, which closes the
// connection unless the writer was moved elsewhere. Port 0: the system picks a free port,
// server.sockets()[0].local_endpoint().port(). An empty host: every interface.
// A lambda coroutine reaches its captures through the server's copy of the lambda, which
// lives while the server handle or one of its connections does: a handler that goes on
// after its connection is gone must not use its captures once the server is destroyed.
template <class Callback>
coro<server> start_server(Callback cb, std::string host, std::uint16_t port,
                          std::size_t limit = stream_default_limit, int backlog = 100) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(limit, "start_server");
    serve_options o;
    o.backlog = backlog;
    return detail::serve_streams(detail::stream_server_factory<Callback>{std::move(cb), limit},
                                 std::move(host), port, false, o);
}

// With options (serve_options: limit, backlog, reuse_address, reuse_port, keep_alive,
// start_serving, hosts; ssl needs <ioloop/ssl.hpp>).
template <class Callback>
coro<server> start_server(Callback cb, std::string host, std::uint16_t port,
                          const serve_options& options) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(options.limit, "start_server");
    detail::check_serve_options(options, "start_server");
    return detail::serve_streams_with(
        detail::stream_server_factory<Callback>{std::move(cb), options.limit},
        detail::hosts_of(std::move(host), options), port, socket(), options);
}

// On `sock`, a stream socket bound already, listening or not (asyncio's sock=; systemd's
// socket activation passes one as descriptor 3: socket(3) adopts it). The server owns it.
template <class Callback>
coro<server> start_server(Callback cb, socket sock, const serve_options& options = {}) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(options.limit, "start_server");
    detail::check_serve_options(options, "start_server");
    detail::check_listening_socket(sock, options, "start_server");
    return detail::serve_streams_with(
        detail::stream_server_factory<Callback>{std::move(cb), options.limit}, {}, 0,
        std::move(sock), options);
}

// The same on a Unix stream socket at `path`; a stale socket file there is replaced.
template <class Callback>
coro<server> start_unix_server(Callback cb, std::string path,
                               std::size_t limit = stream_default_limit, int backlog = 100) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(limit, "start_unix_server");
    serve_options o;
    o.backlog = backlog;
    return detail::serve_streams(detail::stream_server_factory<Callback>{std::move(cb), limit},
                                 std::move(path), 0, true, o);
}

// With options (serve_options: limit, backlog, start_serving; the TCP ones, reuse_port,
// keep_alive and hosts, do not apply to a Unix socket).
template <class Callback>
coro<server> start_unix_server(Callback cb, std::string path, const serve_options& options) {
    detail::check_stream_callback<Callback>();
    detail::check_stream_limit(options.limit, "start_unix_server");
    detail::check_serve_options(options, "start_unix_server");
    if (options.hosts && !options.hosts->empty()) {
        throw std::invalid_argument("start_unix_server: hosts do not apply to a Unix socket");
    }
    return detail::serve_streams(
        detail::stream_server_factory<Callback>{std::move(cb), options.limit}, std::move(path), 0,
        true, options);
}

IOLOOP_NAMESPACE_END

#endif
