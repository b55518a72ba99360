// ioloop: loop.sendfile(transport, file) and loop.sock_sendfile(sock, file) (asyncio's):
// a file's bytes to a stream socket. Where the system can (Linux's sendfile(2), a plain
// socket on a readiness backend) the kernel copies them, without passing through the
// program; elsewhere, with fallback (the default), chunks are read through the executor
// (the file's own operations) and written. Without fallback where sendfile(2) is not
// possible: sendfile_not_available_error, as asyncio's SendfileNotAvailableError.
//
// asyncio's rules: offset >= 0; count > 0, or the whole rest of the file (count < 0 here,
// asyncio's None); the count sent is returned, and the file's position is offset + sent
// afterwards, also when the sending failed part way. On a transport, reading is paused
// and its write buffer flushed first, write() is refused while the file goes (the bytes
// would interleave), and reading resumes after if it was on before.
//
// sendfile(2) reads the file on the loop's thread, as asyncio's does: a file on a slow
// disk stalls the loop meanwhile (the page cache usually has it).
#ifndef IOLOOP_NET_SENDFILE_HPP
#define IOLOOP_NET_SENDFILE_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/file_io.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/fs/file.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/fd_ready.hpp"
#include "ioloop/net/sendfile_gate.hpp"
#include "ioloop/net/sock_ops.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/transport.hpp"

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct file_sendfile_access {
    static file_ref ref(const file& f, const char* what) { return f.ref(what); }
};

struct sendfile_access {
    static native_socket socket_of(const transport& t) noexcept { return t.sendfile_socket(); }
    static bool set_gate(transport& t, sendfile_gate* g) noexcept {
        return t.set_sendfile_gate(g);
    }
};

// One fallback read: 256 KiB, so that the hop to the executor is paid rarely.
inline constexpr std::size_t sendfile_chunk = std::size_t{256} << 10;
// One sendfile(2) call moves at most this much (Linux stops at 0x7ffff000 anyway).
inline constexpr std::size_t sendfile_call_max = std::size_t{0x7ffff000};

inline void check_sendfile_args(const char* what, long long offset, long long count) {
    if (offset < 0) {
        throw std::invalid_argument(
            concat({what, ": offset must be a non-negative integer (got ", decimal(offset), ")"}));
    }
    if (count == 0) {
        throw std::invalid_argument(
            concat({what, ": count must be a positive integer, or negative for the whole "
                          "rest of the file (got 0)"}));
    }
}

// What is left to send: count - sent, or a whole chunk for "to the end".
inline std::size_t sendfile_left(long long count, std::size_t sent, std::size_t chunk) noexcept {
    if (count < 0) return chunk;
    const std::size_t left = static_cast<std::size_t>(count) - sent;
    return left < chunk ? left : chunk;
}

// The file's position put at `to`, the read buffer dropped. On the loop's thread, not the
// pool: an lseek(2) (SetFilePointerEx) of an absolute offset does not wait for the disk,
// and holding the turn means no job of the file runs meanwhile. A hop to the pool here
// would cost each sendfile a thread's wake-up at its end.
inline void sendfile_seek(file_core& f, long long to, const char* what) {
    f.drop_buffer();
    long long at = 0;
    if (const std::error_code ec = seek_native_file(f.handle, to, seek_set, at)) {
        throw_file_error(ec, what, f.path);
    }
    f.os_position = at;
}

// The socket cannot take more now: wait for it, through the transport when there is one
// (it watches its own descriptor; a second registration would be refused).
template <class = void>
coro<void> sendfile_wait_writable(loop_base& loop, native_socket out, transport* t,
                                  sendfile_gate* gate, const char* what) {
    if (!t) {
        co_await fd_ready(loop, out, backend::io_write, what);
        co_return;
    }
    gate->changed.clear();
    gate->want_writable = true;
    sendfile_access::set_gate(*t, gate);  // watches for writability now
    co_await gate->changed.wait();
}

[[noreturn]] inline void throw_transport_gone(const char* what) {
    throw std::system_error(std::make_error_code(std::errc::connection_aborted),
                            concat({what, ": the transport was closed while the file was sent"}));
}

// sendfile(2) until count bytes (or the file's end), adding to `sent`. False if the system
// refused the very first call as not possible for these descriptors (EINVAL, ENOSYS, ...):
// the caller falls back then, or throws sendfile_not_available_error.
template <class = void>
coro<bool> sendfile_native(loop_base& loop, native_socket out, file_core& f, long long offset,
                           long long count, std::size_t& sent, transport* t,
                           sendfile_gate* gate, const char* what) {
    for (;;) {
        const std::size_t want = sendfile_left(count, sent, sendfile_call_max);
        if (want == 0) co_return true;
        long long at = offset + static_cast<long long>(sent);
        const std::ptrdiff_t n = send_file_part(out, f.handle, at, want);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0) co_return true;  // the end of the file
        const int err = errno;
        if (interrupted(err)) continue;
        if (would_block(err)) {
            co_await sendfile_wait_writable(loop, out, t, gate, what);
            if (gate && gate->gone) throw_transport_gone(what);
            continue;
        }
        // asyncio's list: the descriptors are of kinds sendfile(2) does not join.
        if (sent == 0 && (err == EINVAL || err == ENOSYS || err == ENOTSOCK || err == EOPNOTSUPP)) {
            co_return false;
        }
        throw_system_error(err, concat({what, " \"", f.path, "\" to socket ", decimal(out)}));
    }
}

// The fallback's next chunk of the file, read on the pool from where the last one ended;
// empty at the end of the file.
template <class = void>
coro<std::string> sendfile_read_chunk(file_core& f, long long count, std::size_t sent,
                                      const char* what) {
    f.want = sendfile_left(count, sent, sendfile_chunk);
    if (f.want == 0) co_return std::string();
    co_await file_job_wait(f, file_job_kind::read, what);
    co_return f.take(f.buffered());
}

// Both forms' end, as asyncio's finally: the file's position is offset + sent, whatever
// happened (unless a cancelled read of the fallback still runs on the pool: its bytes go to
// the file's buffer then, as any cancelled read's); then the failure, if any, goes on.
inline void sendfile_finish(file_core& f, long long offset, std::size_t sent,
                            const std::exception_ptr& failure, const char* what) {
    if (!f.pending) sendfile_seek(f, offset + static_cast<long long>(sent), what);
    if (failure) std::rethrow_exception(failure);
}

// The transport's write buffer empty (or the transport gone).
template <class = void>
coro<void> sendfile_flush(transport& t, sendfile_gate& gate) {
    while (!gate.gone && t.get_write_buffer_size() != 0) {
        gate.changed.clear();
        co_await gate.changed.wait();
    }
}

template <class = void>
coro<void> sendfile_to_transport(loop_base& loop, transport& t, file_core& f, long long offset,
                                 long long count, bool fallback, sendfile_gate& gate,
                                 std::size_t& sent) {
    const char* what = "loop.sendfile";
    co_await sendfile_flush(t, gate);
    if (gate.gone) throw_transport_gone(what);
    const native_socket out = sendfile_access::socket_of(t);
    bool done = false;
    if (native_sendfile_available && out != invalid_socket) {
        done = co_await sendfile_native(loop, out, f, offset, count, sent, &t, &gate, what);
    }
    if (done) co_return;
    if (!fallback) {
        throw sendfile_not_available_error(
            concat({what, ": the system cannot send \"", f.path,
                    "\" itself on this transport (sendfile(2) needs Linux, a readiness "
                    "backend and a plain socket's transport); fallback = true sends it by "
                    "reads and writes"}));
    }
    sendfile_seek(f, offset, what);
    for (;;) {
        std::string chunk = co_await sendfile_read_chunk(f, count, sent, what);
        if (gate.gone) throw_transport_gone(what);
        if (chunk.empty()) co_return;
        gate.own_write = true;
        t.write(chunk);
        gate.own_write = false;
        sent += chunk.size();
        // Flow control: past the high-water mark, wait for the buffer to drain.
        if (t.get_write_buffer_size() > t.get_write_buffer_limits().high) {
            co_await sendfile_flush(t, gate);
            if (gate.gone) throw_transport_gone(what);
        }
    }
}

template <class = void>
coro<std::size_t> loop_sendfile(loop_base& loop, transport& t, file_ref ref, long long offset,
                                long long count, bool fallback) {
    const char* what = "loop.sendfile";
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable(what);
    if (t.is_closing()) throw invalid_state_error("loop.sendfile: the transport is closing");
    sendfile_gate gate;
    if (!sendfile_access::set_gate(t, &gate)) {
        throw invalid_state_error(
            "loop.sendfile: the transport cannot take a sendfile now (another sendfile runs "
            "on it, or it is not one of ioloop's transports)");
    }
    // Takes the gate back from the transport however this frame ends (destroyed unfinished
    // when the loop closes, too), unless the transport went first.
    struct gate_hold {
        transport& t;
        sendfile_gate& gate;
        bool resume_reading;
        ~gate_hold() {
            if (gate.gone) return;
            sendfile_access::set_gate(t, nullptr);
            if (resume_reading && !t.is_closing()) t.resume_reading();
        }
    };
    std::size_t sent = 0;
    std::exception_ptr failure;
    {
        gate_hold hold{t, gate, t.is_reading()};
        if (hold.resume_reading) t.pause_reading();
        try {
            co_await sendfile_to_transport(loop, t, f, offset, count, fallback, gate, sent);
        } catch (...) {
            failure = std::current_exception();
        }
    }
    sendfile_finish(f, offset, sent, failure, what);
    co_return sent;
}

}  // namespace detail

template <class>
coro<std::size_t> loop_base::sendfile(transport& t, file& f, long long offset, long long count,
                                      bool fallback) {
    detail::check_sendfile_args("loop.sendfile", offset, count);
    check_open("loop.sendfile");
    return detail::loop_sendfile(*this, t, detail::file_sendfile_access::ref(f, "loop.sendfile"),
                                 offset, count, fallback);
}

namespace detail {

template <class Loop>
coro<std::size_t> loop_sock_sendfile(Loop& loop, socket& s, file_ref ref, long long offset,
                                     long long count, bool fallback, bool native_possible) {
    const char* what = "loop.sock_sendfile";
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable(what);
    std::size_t sent = 0;
    std::exception_ptr failure;
    try {
        bool done = false;
        if (native_possible) {
            done = co_await sendfile_native(loop, s.fd(), f, offset, count, sent, nullptr,
                                            nullptr, what);
        }
        if (!done) {
            if (!fallback) {
                throw sendfile_not_available_error(
                    concat({what, ": the system cannot send \"", f.path,
                            "\" itself here (sendfile(2) needs Linux and a readiness "
                            "backend); fallback = true sends it by reads and writes"}));
            }
            sendfile_seek(f, offset, what);
            for (;;) {
                std::string chunk = co_await sendfile_read_chunk(f, count, sent, what);
                if (chunk.empty()) break;
                co_await loop.sock_sendall(s, chunk);
                sent += chunk.size();
            }
        }
    } catch (...) {
        failure = std::current_exception();
    }
    sendfile_finish(f, offset, sent, failure, what);
    co_return sent;
}

}  // namespace detail

template <class Backend>
coro<std::size_t> basic_event_loop<Backend>::sock_sendfile(socket& s, file& f, long long offset,
                                                           long long count, bool fallback) {
    detail::check_sendfile_args("loop.sock_sendfile", offset, count);
    check_open("loop.sock_sendfile");
    // Whether the family can: sendfile(2) is the readiness engine's (on Linux).
    constexpr bool native = decltype(engine_)::native_sendfile;
    return detail::loop_sock_sendfile(*this, s,
                                      detail::file_sendfile_access::ref(f, "loop.sock_sendfile"),
                                      offset, count, fallback, native);
}

IOLOOP_NAMESPACE_END

#endif
