// ioloop: the state of a stream connection (stream_reader_protocol, asyncio's
// StreamReaderProtocol) and its reading end (stream_reader, asyncio's StreamReader).
//
// One object per connection holds everything: the protocol the transport calls, the read
// buffer, the task waiting to read, the tasks waiting in drain() or wait_closed(). The
// stream_reader and stream_writer handles point to it and share it with the transport,
// by a count of references: the transport's `delete` (after connection_lost, or when the
// loop closes) only gives up its reference (a C++20 destroying operator delete), so the
// handles stay valid, and the object goes with the last of them.
//
// Reads are awaiters, not coroutines: a read the buffer can serve costs no suspension and
// no frame; one that waits is woken only once the buffer can serve it.
//
// The protocol is a buffered_protocol: the transport receives straight into the read
// buffer, and a read copies its result out of it once, into the string it returns. The
// buffer is a block of 64 KiB, the size of one read, from the thread's recycler
// (detail/recycler.hpp says why blocks are kept, with the numbers), taken when a read is
// about to receive and given back as soon as reads have taken every byte: an idle
// connection holds no read buffer, and a busy one mallocs nothing for its buffer (only
// each read's result). It grows beyond a block only while more than that is unread (a
// long line, or reads slower than the peer: up to twice the limit and one read more).
// A read that brings nothing (a spurious wakeup) leaves the block lent until bytes come;
// EOF and connection_lost give an empty one back.
#ifndef IOLOOP_NET_STREAM_READER_HPP
#define IOLOOP_NET_STREAM_READER_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/coro/waiter_queue.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/recycler.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/transport.hpp"

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

// asyncio's default limit of a stream reader: readline and readuntil give up on a line
// longer than this, and the reader stops the transport reading above twice this.
inline constexpr std::size_t stream_default_limit = 64 * 1024;

class stream_reader;
class stream_writer;
class stream_reader_protocol;

namespace detail {

class stream_read_awaiter;
class stream_wait_awaiter;
struct stream_access;  // net/streams.hpp

// What a read asks for, and what it found so far in the buffer.
struct stream_read_request {
    enum class op : unsigned char { some, all, exactly, until, line, until_any };

    // Packed: every co_await on a read keeps its awaiter, and so this, in the coroutine's
    // frame (24 bytes instead of 40: an idle coroutine connection 16 bytes smaller).
    union {
        const char* sep_data = nullptr;  // until, line: the separator
        const std::string_view* seps;    // until_any: the separators
    };
    // some, exactly: the byte count. until, line, until_any: until a separator is found,
    // how many unread bytes are known not to start one (asyncio's `offset`), so that new
    // data is scanned once; then where it starts, relative to the unread data.
    std::size_t n = 0;
    std::uint32_t sep_size = 0;  // until, line: the separator's size; until_any: the count
    op kind = op::some;
    bool found = false;       // until, line, until_any: a separator was found
    std::uint8_t match = 0;   // until_any: which one

    std::string_view sep() const noexcept {
        return kind == op::until_any ? seps[match] : std::string_view(sep_data, sep_size);
    }

    // The method's name, for errors.
    const char* name() const noexcept {
        switch (kind) {
            case op::some:
            case op::all:
                return "read";
            case op::exactly:
                return "readexactly";
            case op::until:
            case op::until_any:
                return "readuntil";
            case op::line:
                return "readline";
        }
        return "read";
    }
};

}  // namespace detail

// asyncio's StreamReaderProtocol: the protocol of a stream connection, which feeds a
// stream_reader and serves a stream_writer. open_connection and start_server make it; make
// one yourself to put streams over a transport of your own:
//     auto p = stream_reader_protocol::create();
//     stream_reader r(*p);  stream_writer w(*p);
//     ... hand `p` to the transport (create_connection's factory), which calls
//     connection_made, get_buffer and buffer_updated, eof_received, connection_lost.
// data_received feeds it bytes by hand (asyncio's StreamReader.feed_data).
class stream_reader_protocol final : public buffered_protocol {
public:
    // The largest limit (the state keeps it in 32 bits).
    static constexpr std::size_t max_limit = 0xffffffffu;

    // Always on the heap, through create(): the handles count on it.
    static std::unique_ptr<stream_reader_protocol> create(
        std::size_t limit = stream_default_limit) {
        if (limit == 0 || limit > max_limit) {
            throw std::invalid_argument("stream_reader_protocol: the limit must be in [1, 2^32)");
        }
        return std::unique_ptr<stream_reader_protocol>(new stream_reader_protocol(limit));
    }

    stream_reader_protocol(const stream_reader_protocol&) = delete;
    stream_reader_protocol& operator=(const stream_reader_protocol&) = delete;
    // Runs when the last reference goes; `delete` does not run it (see operator delete).
    ~stream_reader_protocol() override { release_buffer(); }

    // Allocated like coroutine frames (connections come and go in bursts too).
    static void* operator new(std::size_t size) { return detail::allocate_recycled(size); }
    // Only for a constructor that throws (none does): operator new's partner.
    static void operator delete(void* p, std::size_t size) noexcept {
        detail::deallocate_recycled(p, size);
    }
    // `delete p` from the transport (or the unique_ptr create() returns): the transport
    // lets go, and the object lives on while a reader or writer handle needs it.
    static void operator delete(stream_reader_protocol* p, std::destroying_delete_t) noexcept {
        p->detach();
    }

    // ---- protocol ------------------------------------------------------------------

    void connection_made(transport& t) override {
        transport_ = &t;
        if (pending_) start_pending();
    }

    // Where the transport receives: after the unread bytes, in the block (taken now if
    // none is held). It lends all the room there is, at least a quarter block (or the
    // hint, if smaller): less, and the unread bytes move down or to a larger buffer.
    std::span<char> get_buffer(std::size_t size_hint) override {
        const std::size_t quarter = detail::recycler::read_block_size / 4;
        reserve(size_hint == 0 ? 1 : size_hint < quarter ? size_hint : quarter);
        return {buf_ + end_, cap_ - end_};
    }

    void buffer_updated(std::size_t n) override {
        end_ += n;
        received();
    }

    // Bytes received some other way, as if the transport had brought them (asyncio's
    // feed_data).
    void data_received(std::string_view data) {
        if (data.empty()) return;
        reserve(data.size());
        std::memcpy(buf_ + end_, data.data(), data.size());
        end_ += data.size();
        received();
    }

    // The peer sent EOF: reads return what is left, then "". The transport stays open for
    // writing (asyncio's streams keep a half-closed connection).
    bool eof_received() override {
        eof_ = true;
        if (unread() == 0) release_buffer();  // lent for a read that found EOF
        if (reading_ && !reading_woken_) wake_reader();
        return true;
    }

    // The transport is going away. An error fails the pending and later reads, drain()
    // and wait_closed() with it; without one, reads see EOF.
    void connection_lost(std::error_code ec) override {
        transport_ = nullptr;
        lost_ = true;
        if (unread() == 0) release_buffer();
        if (ec) {
            error_ = ec;
        } else {
            eof_ = true;
        }
        if (reading_ && !reading_woken_) wake_reader();
        wake_waiters(true, ec.value() != 0);
    }

    void pause_writing() override { write_paused_ = true; }

    void resume_writing() override {
        write_paused_ = false;
        wake_waiters(false, false);
    }

    // ---- state ---------------------------------------------------------------------

    std::size_t limit() const noexcept { return limit_; }
    // The transport while the connection is up (connected, not yet lost); else null.
    ioloop::transport* get_transport() const noexcept { return transport_; }
    // The error the connection was lost to (empty if none, or not lost).
    std::error_code exception() const noexcept { return error_; }
    // Bytes received and not read yet.
    std::size_t buffered() const noexcept { return unread(); }
    // Bytes of storage the read buffer holds: 0 whenever it is empty (an idle
    // connection holds no read buffer).
    std::size_t buffer_capacity() const noexcept { return cap_; }

private:
    // New bytes are in the buffer: the waiting read may finish now.
    void received() {
        if (reading_ && !reading_woken_ && can_finish(reading_request())) wake_reader();
        // Above twice the limit the transport stops reading until reads take the buffer
        // back to the limit. Not while a read waits for more: it needs the data (asyncio
        // resumes reading whenever a read starts to wait).
        if (!read_paused_ && transport_ && above_twice_limit() && (!reading_ || reading_woken_)) {
            transport_->pause_reading();
            read_paused_ = true;
        }
    }

    friend class stream_reader;
    friend class stream_writer;
    friend class detail::stream_read_awaiter;
    friend class detail::stream_wait_awaiter;
    friend struct detail::stream_access;

    explicit stream_reader_protocol(std::size_t limit) noexcept
        : limit_(static_cast<std::uint32_t>(limit)) {}

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ != 0) return;
        this->~stream_reader_protocol();
        detail::deallocate_recycled(this, sizeof(stream_reader_protocol));
    }

    // The transport's reference goes (or the unique_ptr's, never handed to a transport).
    // When the loop closes, the transport goes without connection_lost: from then on the
    // handles see a lost connection, and no task is woken (the loop is closing them).
    void detach() noexcept {
        transport_ = nullptr;
        lost_ = true;
        // A server connection that never started: its coroutine's frame holds handles
        // to this object, which the reference dropped last keeps alive meanwhile.
        if (pending_) {
            coro<void> never_started = std::move(pending_);
        }
        release();
    }

    void start_pending() noexcept;

    // ---- the buffer ------------------------------------------------------------------

    std::size_t unread() const noexcept { return end_ - start_; }
    const char* data() const noexcept { return buf_ + start_; }

    // Makes room for `want` bytes after the unread ones: in place, by moving the unread
    // bytes down once the consumed ones outnumber them (each byte moves at most once per
    // time the buffer's length doubles), or in a buffer twice as large. Unread bytes are
    // never more than twice the limit and one read (the transport pauses above that),
    // unless a read waits for more than that.
    void reserve(std::size_t want) {
        if (cap_ - end_ >= want) return;
        const std::size_t n = unread();
        if (buf_ && start_ >= n && cap_ - n >= want) {
            std::memmove(buf_, buf_ + start_, n);
        } else {
            const std::size_t block = detail::recycler::read_block_size;
            std::size_t cap = n + want > 2 * cap_ ? n + want : 2 * cap_;
            char* larger;
            if (cap <= block) {
                cap = block;
                larger = detail::allocate_read_block();
            } else {
                larger = static_cast<char*>(::operator new(cap));
            }
            if (n != 0) std::memcpy(larger, buf_ + start_, n);
            release_buffer();
            buf_ = larger;
            cap_ = cap;
        }
        start_ = 0;
        end_ = n;
    }

    // Gives the storage back: a block to the recycler, a larger buffer to malloc.
    void release_buffer() noexcept {
        if (!buf_) return;
        if (cap_ == detail::recycler::read_block_size) {
            detail::deallocate_read_block(buf_);
        } else {
            ::operator delete(buf_);
        }
        buf_ = nullptr;
        cap_ = start_ = end_ = 0;
    }

    // The first k unread bytes are read: an emptied buffer is given back.
    void consume(std::size_t k) noexcept {
        start_ += k;
        if (start_ == end_) release_buffer();
    }

    // Takes the first k unread bytes (all of them if k is larger), in a string of their
    // own: the buffer's block stays with the reader (or goes back to the recycler).
    std::string take(std::size_t k) {
        if (k > unread()) k = unread();
        std::string out(data(), k);
        consume(k);
        maybe_resume_transport();
        return out;
    }

    // Drops the first k unread bytes.
    void discard(std::size_t k) noexcept {
        consume(k < unread() ? k : unread());
        maybe_resume_transport();
    }

    bool above_twice_limit() const noexcept {
        const std::size_t n = unread();
        return n > limit_ && n - limit_ > limit_;  // n > 2 * limit, without overflow
    }

    // asyncio's _maybe_resume_transport: back to reading once at or below the limit.
    void maybe_resume_transport() noexcept {
        if (read_paused_ && unread() <= limit_) resume_transport();
    }

    void resume_transport() noexcept {
        read_paused_ = false;
        if (transport_) {
            try {
                transport_->resume_reading();
            } catch (...) {  // the transport is closing: nothing more to read anyway
            }
        }
    }

    // ---- reads -----------------------------------------------------------------------

    inline detail::stream_read_request& reading_request() noexcept;
    inline void wake_reader() noexcept;

    // asyncio's readuntil loop, without the waiting: true when the separator is found,
    // or the bytes without it exceed the limit.
    bool scan(detail::stream_read_request& r) const noexcept {
        if (r.found) return true;
        if (r.kind == detail::stream_read_request::op::until_any) return scan_any(r);
        const std::size_t len = unread();
        const std::size_t seplen = r.sep_size;
        if (len - r.n >= seplen) {
            const std::size_t at = std::string_view(data(), len).find(r.sep(), r.n);
            if (at != std::string_view::npos) {
                r.n = at;
                r.found = true;
                return true;
            }
            r.n = len + 1 - seplen;
        }
        return r.n > limit_;
    }

    // scan() for several separators (asyncio 3.13's readuntil of a tuple): of the ones
    // found, the one that ends first, so that the result is the shortest that ends in one.
    bool scan_any(detail::stream_read_request& r) const noexcept {
        const std::string_view unread_data(data(), unread());
        std::size_t best_end = std::string_view::npos;
        std::size_t longest = 0;
        for (std::uint32_t i = 0; i < r.sep_size; ++i) {
            const std::string_view sep = r.seps[i];
            longest = sep.size() > longest ? sep.size() : longest;
            const std::size_t at = unread_data.find(sep, r.n);
            if (at != std::string_view::npos && at + sep.size() < best_end) {
                best_end = at + sep.size();
                r.match = static_cast<std::uint8_t>(i);
            }
        }
        if (best_end != std::string_view::npos) {
            r.n = best_end - r.seps[r.match].size();
            r.found = true;
            return true;
        }
        if (unread_data.size() + 1 >= longest) r.n = unread_data.size() + 1 - longest;
        return r.n > limit_;
    }

    // True when the read can finish now, with a result or an error, without more data.
    bool can_finish(detail::stream_read_request& r) const noexcept {
        using op = detail::stream_read_request::op;
        if (error_) return true;
        switch (r.kind) {
            case op::some:
                return r.n == 0 || unread() != 0 || eof_;
            case op::all:
                return eof_;
            case op::exactly:
                return r.n == 0 || unread() >= r.n || eof_;
            case op::until:
            case op::line:
            case op::until_any:
                return scan(r) || eof_;
        }
        return true;
    }

    // The read's result, once can_finish said so; or its error.
    std::string finish(detail::stream_read_request& r) {
        using op = detail::stream_read_request::op;
        if (error_) {
            throw std::system_error(error_,
                                    detail::concat({r.name(), ": the connection was lost"}));
        }
        switch (r.kind) {
            case op::some:
                return take(r.n);
            case op::all:
                return take(unread());
            case op::exactly:
                if (unread() >= r.n) return take(r.n);
                {
                    std::string partial = take(unread());
                    throw incomplete_read_error(std::move(partial), r.n);
                }
            case op::until:
            case op::line:
            case op::until_any:
                break;
        }
        const bool line = r.kind == op::line;
        std::size_t consumed = 0;
        const char* message = nullptr;
        if (scan(r)) {
            const std::size_t seplen = r.sep().size();  // the one found, of several
            if (!r.found) {
                consumed = r.n;
                message = "the separator is not found, and the chunk exceeds the limit";
            } else if (r.n > limit_) {
                consumed = r.n;
                message = "the separator is found, but the chunk is longer than the limit";
            } else {
                return take(r.n + seplen);
            }
        } else {
            // EOF without the separator.
            std::string partial = take(unread());
            if (line) return partial;
            throw incomplete_read_error(std::move(partial), incomplete_read_error::unknown);
        }
        // Past the limit: readuntil leaves the data for the caller; readline drops the
        // chunk, and the separator too if it ends the chunk (asyncio's readline).
        if (line) {
            if (std::string_view(data(), unread()).substr(consumed).starts_with(r.sep())) {
                discard(consumed + r.sep_size);
            } else {
                discard(unread());
            }
        }
        throw limit_overrun_error(detail::concat({r.name(), ": ", message}), consumed);
    }

    // ---- drain() and wait_closed() -----------------------------------------------------

    // Wakes the waiters of drain() (and of wait_closed() too when `lost`).
    inline void wake_waiters(bool lost, bool failed) noexcept;

    // Whether the writer is closing: asyncio's transport.is_closing().
    bool closing() const noexcept { return !transport_ || transport_->is_closing(); }

    // The read buffer: the unread bytes are [start_, end_) of buf_'s cap_ bytes. No
    // storage (null, all 0) while none are unread.
    char* buf_ = nullptr;
    std::size_t cap_ = 0;
    std::size_t start_ = 0;
    std::size_t end_ = 0;
    ioloop::transport* transport_ = nullptr;
    detail::stream_read_awaiter* reading_ = nullptr;  // the read waiting for data
    detail::waiter_queue waiting_;                    // drain() and wait_closed() callers
    coro<void> pending_;          // a server connection's coroutine, until connected
    std::error_code error_;       // what the connection was lost to
    std::uint32_t limit_;         // see stream_reader::readline
    std::uint32_t refs_ = 1;      // the transport's (or create()'s unique_ptr) + handles
    std::uint16_t writers_ : 15 = 0;  // stream_writer handles: the last one closes
    // A start_server connection's (the server side of start_tls); a bit of writers_'s
    // word, so that an idle connection is no larger for it.
    std::uint16_t from_server_ : 1 = 0;
    bool eof_ = false;            // no more data will come
    bool lost_ = false;           // connection_lost ran, or the transport went
    bool read_paused_ = false;    // this reader stopped the transport's reading
    bool write_paused_ = false;   // the transport's buffer is above its high mark
    bool reading_woken_ = false;  // the waiting read was woken, and has not run yet
    bool writer_closed_ = false;  // stream_writer::close() was called
};

namespace detail {

// co_await on a read: finishes at once if the buffer can serve it, else waits in the
// reader until it can (or the connection is lost, or the task is cancelled: then the
// buffer is left as it was, and nothing is lost).
class stream_read_awaiter final : public wait_point {
public:
    stream_read_awaiter(stream_reader_protocol* s, stream_read_request r) noexcept : s_(s), r_(r) {}
    // Before it is awaited (into a wait_for, a race): the reader does not know it yet.
    stream_read_awaiter(stream_read_awaiter&& o) noexcept : s_(o.s_), r_(o.r_) {}
    stream_read_awaiter(const stream_read_awaiter&) = delete;
    stream_read_awaiter& operator=(const stream_read_awaiter&) = delete;
    // Destroyed while waiting: the loop is closing with the task unfinished.
    ~stream_read_awaiter() {
        if (s_->reading_ == this) s_->reading_ = nullptr;
    }

    bool await_ready() {
        if (s_->reading_) {
            // asyncio raises RuntimeError when two tasks wait on one reader; here a read
            // is refused while another one is pending at all (see stream_reader).
            throw invalid_state_error(
                concat({r_.name(), ": another task is already waiting to read from this stream"}));
        }
        return s_->can_finish(r_);
    }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw(r_.name());
        // Waiting while the transport is paused would wait forever (asyncio resumes it).
        if (s_->read_paused_) s_->resume_transport();
        s_->reading_ = this;
        s_->reading_woken_ = false;
        task_->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }

    std::string await_resume() {
        if (task_) {
            if (s_->reading_ == this) s_->reading_ = nullptr;
            task_->throw_if_cancelled();
        }
        return s_->finish(r_);
    }

    void on_cancel(task_base& t) noexcept override {
        s_->reading_ = nullptr;
        t.wake();
    }

private:
    friend class ioloop::stream_reader_protocol;

    stream_reader_protocol* s_;
    task_base* task_ = nullptr;
    stream_read_request r_;
};

// co_await on stream_writer::drain() or wait_closed(). drain() follows asyncio 3.12: the
// connection's error if it was lost to one; on a closing transport one iteration's yield
// (so that connection_lost can run), then ConnectionResetError's errc::connection_reset if
// the connection is gone; otherwise a wait while the transport's buffer is above its high
// mark, ended by resume_writing or connection_lost (its error, if any, is thrown).
// wait_closed() waits for connection_lost and throws the error it brought, if any.
class stream_wait_awaiter final : public waiter, public wait_point {
public:
    enum class kind : unsigned char { drain, closed };

    stream_wait_awaiter(stream_reader_protocol* s, kind k) noexcept : s_(s), kind_(k) {}
    // Before it is awaited (into a wait_for, a race): not in the reader's list yet.
    stream_wait_awaiter(stream_wait_awaiter&& o) noexcept : waiter(std::move(o)), s_(o.s_), kind_(o.kind_) {}
    ~stream_wait_awaiter() { unlink(); }  // destroyed while waiting: the loop is closing

    bool await_ready() const noexcept {
        if (kind_ == kind::closed) return s_->lost_;
        if (s_->error_) return true;
        if (!s_->closing()) return !s_->write_paused_;
        return false;
    }

    void await_suspend(std::coroutine_handle<> h) {
        task = &current_task_or_throw(kind_ == kind::drain ? "drain" : "wait_closed");
        if (kind_ == kind::drain && s_->closing() && (s_->lost_ || !s_->write_paused_)) {
            // asyncio's sleep(0) before it looks again.
            yielded_ = true;
            task->suspend(h, this);
            task->wake();
            return;
        }
        s_->waiting_.push_back(this);
        task->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }

    void await_resume() {
        if (task) {
            unlink();
            task->throw_if_cancelled();
        }
        const std::error_code ec = s_->error_;
        if (kind_ == kind::closed) {
            if (ec) throw std::system_error(ec, "wait_closed: the connection was lost");
            return;
        }
        // Not suspended: the connection's error, or nothing to wait for.
        if ((!task || yielded_ || failed_) && ec) {
            throw std::system_error(ec, "drain: the connection was lost");
        }
        if (yielded_ && s_->lost_) {
            throw std::system_error(std::make_error_code(std::errc::connection_reset),
                                    "drain: the connection was lost");
        }
    }

    void on_cancel(task_base& t) noexcept override {
        unlink();
        t.wake();
    }

private:
    friend class ioloop::stream_reader_protocol;

    stream_reader_protocol* s_;
    kind kind_;
    bool yielded_ = false;  // drain on a closing transport: looked again after one iteration
    bool failed_ = false;   // woken by connection_lost with an error
};

}  // namespace detail

inline void stream_reader_protocol::wake_waiters(bool lost, bool failed) noexcept {
    // resume_writing wakes the drain() callers only: the others go back in, in order.
    detail::waiter_queue keep;
    while (!waiting_.empty()) {
        auto* w = static_cast<detail::stream_wait_awaiter*>(waiting_.pop_front());
        if (!lost && w->kind_ == detail::stream_wait_awaiter::kind::closed) {
            keep.push_back(w);
            continue;
        }
        w->failed_ = failed;
        w->task->wake();
    }
    while (!keep.empty()) waiting_.push_back(keep.pop_front());
}

inline detail::stream_read_request& stream_reader_protocol::reading_request() noexcept {
    return reading_->r_;
}

inline void stream_reader_protocol::wake_reader() noexcept {
    reading_woken_ = true;
    reading_->task_->wake();
}

inline void stream_reader_protocol::start_pending() noexcept {
    loop_base* l = detail::loop_access::running();
    try {
        if (!l) throw invalid_state_error("start_server: a connection was made outside its loop");
        // The task is not kept: it runs on its own, and an exception it ends with reaches
        // the loop's exception handler when it goes (asyncio reports it the same way).
        (void)l->create_task(std::move(pending_));
    } catch (...) {
        pending_ = coro<void>();
        if (transport_) transport_->abort();
    }
}

// The reading end of a stream connection (asyncio's StreamReader). A handle: moving it
// is cheap, and the connection's state lives while a reader or writer handle refers to it
// (or the transport does). One task reads at a time: a read started while another one is
// waiting throws invalid_state_error.
//
// Each read is an awaiter, awaited at once (co_await reader.readline()) or given to
// wait_for / timeout / race, which move it in and may be kept and awaited later. The
// separator given to readuntil must outlive the await. Cancelling a task in a read leaves the stream as it was: the
// data already received stays for the next read.
class stream_reader {
public:
    using read_awaiter = detail::stream_read_awaiter;

    stream_reader() noexcept = default;  // empty: a moved-from or not yet assigned handle
    explicit stream_reader(stream_reader_protocol& p) noexcept : s_(&p) { p.add_ref(); }
    stream_reader(stream_reader&& other) noexcept : s_(std::exchange(other.s_, nullptr)) {}
    stream_reader& operator=(stream_reader other) noexcept {
        std::swap(s_, other.s_);
        return *this;
    }
    // The last handle of a connection that has no writer (a read pipe) closes it, as the
    // last stream_writer closes a connection: nobody could read what comes next. With a
    // live transport, refs_ counts it and the handles: 2 is the transport and this one.
    ~stream_reader() {
        if (!s_) return;
        if (s_->refs_ == 2 && s_->writers_ == 0 && s_->transport_ &&
            !s_->transport_->is_closing()) {
            try {
                s_->transport_->close();
            } catch (...) {  // a transport's close does not throw; a destructor cannot
            }
        }
        s_->release();
    }

    explicit operator bool() const noexcept { return s_ != nullptr; }

    // n < 0: everything until EOF. n == 0: "". n > 0: up to n bytes, at least one unless
    // the stream is at EOF (then ""). Throws the connection's error (std::system_error)
    // if it was lost to one.
    [[nodiscard]] read_awaiter read(std::ptrdiff_t n = -1) {
        using op = detail::stream_read_request::op;
        detail::stream_read_request r;
        r.kind = n < 0 ? op::all : op::some;
        r.n = n < 0 ? 0 : static_cast<std::size_t>(n);
        return read_awaiter(&state("read"), r);
    }

    // A line, its "\n" included; at EOF what is left without one (maybe ""). A line longer
    // than the limit: limit_overrun_error, and the line (or the limit's worth of it, when
    // no "\n" was found) is dropped from the stream. (asyncio raises ValueError there.)
    [[nodiscard]] read_awaiter readline() {
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::line;
        r.sep_data = "\n";
        r.sep_size = 1;
        return read_awaiter(&state("readline"), r);
    }

    // Exactly n bytes. EOF first: incomplete_read_error, carrying what was read.
    [[nodiscard]] read_awaiter readexactly(std::size_t n) {
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::exactly;
        r.n = n;
        return read_awaiter(&state("readexactly"), r);
    }

    // The data up to and including `sep`. EOF first: incomplete_read_error (expected()
    // is incomplete_read_error::unknown), carrying what was read. No separator within the
    // limit: limit_overrun_error, and the data stays in the stream.
    [[nodiscard]] read_awaiter readuntil() { return readuntil_one("\n"); }
    // (A template: a braced list of separators must not be taken for a string_view's
    // iterator pair; it goes to the overload below.)
    template <class Sep>
        requires std::is_convertible_v<const Sep&, std::string_view>
    [[nodiscard]] read_awaiter readuntil(const Sep& sep) {
        return readuntil_one(sep);
    }

    // The data up to and including whichever separator ends first (asyncio 3.13's
    // readuntil of a tuple), from an array that outlives the await:
    //   static constexpr std::string_view ends[] = {"\r\n", "\n"};
    //   std::string line = co_await reader.readuntil(ends);
    // (A braced list in the co_await expression would do, but g++ 12 refuses a braced array
    // there.) Errors as readuntil's; 1 to 255 separators.
    template <std::size_t N>
    [[nodiscard]] read_awaiter readuntil(const std::string_view (&seps)[N]) {
        static_assert(N > 0 && N < 256, "readuntil: give 1 to 255 separators");
        for (const std::string_view sep : seps) {
            if (sep.empty()) throw std::invalid_argument("readuntil: a separator is empty");
            if (static_cast<std::uint64_t>(sep.size()) > 0xffffffffu) {
                throw std::invalid_argument("readuntil: a separator is longer than 4 GiB");
            }
        }
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::until_any;
        r.seps = seps;
        r.sep_size = static_cast<std::uint32_t>(N);
        return read_awaiter(&state("readuntil"), r);
    }

private:
    read_awaiter readuntil_one(std::string_view sep) {
        if (sep.empty()) throw std::invalid_argument("readuntil: the separator is empty");
        if (static_cast<std::uint64_t>(sep.size()) > 0xffffffffu) {
            throw std::invalid_argument("readuntil: the separator is longer than 4 GiB");
        }
        detail::stream_read_request r;
        r.kind = detail::stream_read_request::op::until;
        r.sep_data = sep.data();
        r.sep_size = static_cast<std::uint32_t>(sep.size());
        return read_awaiter(&state("readuntil"), r);
    }

public:
    // EOF was received and the buffer is empty.
    bool at_eof() const noexcept { return s_ && s_->eof_ && s_->unread() == 0; }

    std::size_t limit() const noexcept { return s_ ? s_->limit_ : 0; }
    // The error the connection was lost to, if any (asyncio's exception()).
    std::error_code exception() const noexcept { return s_ ? s_->error_ : std::error_code(); }

private:
    friend struct detail::stream_access;
    stream_reader_protocol& state(const char* what) const {
        if (!s_) throw invalid_state_error(detail::concat({what, ": the stream_reader is empty"}));
        return *s_;
    }

    stream_reader_protocol* s_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
