// ioloop: open_file and ioloop::file, what aiofiles gives asyncio: a file whose every
// blocking call (open, read, write, seek, truncate, close) runs on the loop's default
// executor, so the loop never waits for a disk. Bytes in, bytes out: no newline
// translation, no text encoding.
//
// The rules:
// - One operation at a time: operations on one file are served in the order they were
//   awaited (a FIFO lock, as asyncio.Lock), never at once. Two tasks may share a file;
//   each operation sees the file as the previous one left it.
// - Cancelling an operation is run_in_executor's rule: the task sees cancelled_error at
//   once, and the system call already running on the pool finishes. Its effect stays and
//   nothing is lost: a cancelled read's bytes go to the file's read buffer (the next read
//   returns them, and tell() is as if the cancelled read had not been made); a cancelled
//   write, seek or truncate has happened. The next operation waits for that call to end.
//   An operation cancelled while it waits for its turn does nothing.
// - Reads are buffered (buffer_size, 64 KiB a hop): readline finds its line in the buffer
//   and goes to the pool only to refill it; read(n), readline and tell agree on one
//   position. Writes are not buffered: write() returns once the system has the bytes, so
//   flush() has nothing to push (it waits for the operations before it). Neither syncs
//   to the disk (no fsync), as Python's flush does not.
// - A file destroyed while open closes its descriptor where the last reference goes: on
//   the loop's thread if no operation runs (one close(2), which on a local file system does
//   not wait for the disk), else on the pool thread that finishes the operation. co_await
//   close() runs it on the pool and reports its error (NFS reports write errors there).
#ifndef IOLOOP_FS_FILE_HPP
#define IOLOOP_FS_FILE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/lock.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/run_in_executor.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/file_io.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/fs/open_mode.hpp"
#include "ioloop/loop_base.hpp"

#include <coroutine>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

// seek's whence, as os.SEEK_SET, SEEK_CUR and SEEK_END.
inline constexpr int seek_set = 0;
inline constexpr int seek_cur = 1;
inline constexpr int seek_end = 2;

class file;

namespace detail {

// `what "path": reason`, e.g. `open_file "/nonexistent/x": No such file or directory`.
[[noreturn]] inline void throw_file_error(std::error_code ec, std::string_view what,
                                          std::string_view path) {
    throw std::system_error(ec, concat({what, " \"", path, "\""}));
}

enum class file_job_kind : unsigned char { read, read_to_end, write, seek, truncate, close };

class file_job_wait;

// What an open file is, shared by the ioloop::file, the operations under way (their
// coroutines) and the job on the pool, each with a reference: whoever lets go last closes
// the descriptor. Everything is the loop thread's, except the job's fields while `pending`:
// set by the loop before the job is submitted, then the worker's until it hands the job
// back (the executor's queue and call_soon_threadsafe order the two sides).
class file_core {
public:
    // One refill of the read buffer. Python's io.DEFAULT_BUFFER_SIZE is 8 KiB (128 KiB
    // since 3.14); a hop to the pool costs some microseconds, so a refill takes enough to
    // make a hop per 64 KiB of lines, the stream reader's limit.
    static constexpr std::size_t buffer_size = std::size_t{64} << 10;

    file_core(loop_base& l, std::string p, native_file h, const file_access& a,
              long long position)
        : loop(&l),
          path(std::move(p)),
          handle(h),
          readable(a.read),
          writable(a.write),
          append(a.append),
          os_position(position) {}
    file_core(const file_core&) = delete;
    file_core& operator=(const file_core&) = delete;
    ~file_core() {
        if (handle != no_file()) (void)close_native_file(handle);
    }

    void add_ref() noexcept { refs_.fetch_add(1, memory_order::relaxed); }
    void release() noexcept {
        if (refs_.fetch_sub(1, memory_order::acq_rel) == 1) delete this;
    }

    // The read buffer: bytes read from the system that no read returned yet.
    std::size_t buffered() const noexcept { return buffer.size() - consumed; }
    // Where the next read starts (tell()): the system's position less what is buffered.
    long long position() const noexcept {
        return os_position - static_cast<long long>(buffered());
    }
    // The first n buffered bytes, taken out (the whole buffer is moved, not copied).
    std::string take(std::size_t n) {
        if (consumed == 0 && n == buffer.size()) return std::exchange(buffer, std::string());
        std::string part = buffer.substr(consumed, n);
        consumed += n;
        if (consumed == buffer.size()) drop_buffer();
        return part;
    }
    void drop_buffer() noexcept {
        buffer.clear();
        consumed = 0;
    }
    // For an operation that moves the position (write, seek, truncate): the buffer is
    // dropped, and its job first moves the system's position back over it (`rewind`), so
    // that the file's position is where the reading stopped.
    void unread_buffer() noexcept {
        rewind = static_cast<long long>(buffered());
        drop_buffer();
    }

    // The checks each operation makes when its turn comes.
    void check_open(const char* what) const {
        if (closed) {
            throw invalid_state_error(
                concat({what, ": I/O operation on closed file \"", path, "\""}));
        }
    }
    void check_readable(const char* what) const {
        check_open(what);
        if (!readable) {
            throw invalid_state_error(concat({what, ": \"", path, "\" is not open for reading"}));
        }
    }
    void check_writable(const char* what) const {
        check_open(what);
        if (!writable) {
            throw invalid_state_error(concat({what, ": \"", path, "\" is not open for writing"}));
        }
    }
    void throw_if_failed(const char* what) const {
        if (error) throw_file_error(error, what, path);
    }

    // Sends the job (its fields set) to the loop's executor.
    void start(file_job_kind k);

    // The job, on a pool thread.
    void run_job() noexcept;
    // The job's end, on the loop's thread: its effect is applied whether or not the
    // operation that started it still waits, then it is woken, or, cancelled, the next
    // operation may go.
    void complete() noexcept;

    loop_base* loop;
    const std::string path;
    native_file handle;
    const bool readable;
    const bool writable;
    const bool append;
    bool closed = false;

    lock turn;  // one operation at a time, first come first served

    std::string buffer;
    std::size_t consumed = 0;  // buffer[0, consumed) is returned already
    long long os_position;     // the system's position, as the last job left it

    // The job in flight (at most one: its operation holds the turn).
    file_job_kind kind = file_job_kind::read;
    bool pending = false;   // submitted, not yet completed on the loop
    bool orphaned = false;  // its operation is gone (cancelled): complete() passes the turn
    file_job_wait* waiter = nullptr;
    std::size_t want = 0;       // read: at most this many bytes
    long long offset = 0;       // seek: the offset; truncate: the size
    int whence = 0;             // seek
    long long rewind = 0;       // bytes to move the system's position back by first
    std::string data;           // read: what was read (read_to_end: after a prefix); write: the bytes
    std::size_t moved = 0;      // read, write: how many bytes the system moved
    long long new_position = 0; // the system's position after the job, -1 if it has none
    std::error_code error;

private:
    atomic<unsigned> refs_{1};
};

// A counted reference to a file_core.
class file_ref {
public:
    file_ref() noexcept = default;
    explicit file_ref(file_core* c) noexcept : core_(c) {}  // adopts a reference
    file_ref(const file_ref& o) noexcept : core_(o.core_) {
        if (core_) core_->add_ref();
    }
    file_ref(file_ref&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
    file_ref& operator=(file_ref o) noexcept {
        std::swap(core_, o.core_);
        return *this;
    }
    ~file_ref() {
        if (core_) core_->release();
    }
    file_core* get() const noexcept { return core_; }
    file_core& operator*() const noexcept { return *core_; }

private:
    file_core* core_ = nullptr;
};

// The executor's work (a reference to the file), then the callback the worker hands to
// the loop (the same reference). Dropped unrun (an executor that discards its queue, a
// closed loop), it lets go of its reference and nothing else.
class file_job_handoff {
public:
    explicit file_job_handoff(file_core* c) noexcept : core_(c) {}
    file_job_handoff(file_job_handoff&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
    file_job_handoff(const file_job_handoff&) = delete;
    file_job_handoff& operator=(const file_job_handoff&) = delete;
    file_job_handoff& operator=(file_job_handoff&&) = delete;
    ~file_job_handoff() {
        if (core_) core_->release();
    }

    // On the loop's thread.
    void operator()() const noexcept { core_->complete(); }

    // On a pool thread: the job, then the completion to the loop. A closed loop refuses
    // it, and the reference goes here (the last one closes the descriptor).
    static void run(file_job_handoff& work) noexcept {
        file_core* c = work.core_;
        c->run_job();
        try {
            c->loop->call_soon_threadsafe(std::move(work));
        } catch (...) {
        }
    }

private:
    file_core* core_;
};

// One job of an operation: started when made, awaited at once. The task is woken by
// complete(), then the job's error is thrown, named `what`; or it is cancelled (then the
// job goes on without it, orphaned when the operation's turn ends).
class file_job_wait final : public wait_point {
public:
    file_job_wait(file_core& c, file_job_kind kind, const char* what) : core_(c), what_(what) {
        core_.start(kind);
    }
    file_job_wait(const file_job_wait&) = delete;
    file_job_wait& operator=(const file_job_wait&) = delete;
    ~file_job_wait() {
        if (core_.waiter == this) core_.waiter = nullptr;
    }

    bool await_ready() const noexcept { return !core_.pending; }
    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("ioloop::file");
        core_.waiter = this;
        task_->suspend(h, this);  // last: a pending cancel calls on_cancel right here
    }
    void await_resume() {
        if (task_) task_->throw_if_cancelled();
        core_.throw_if_failed(what_);
    }

    void on_cancel(task_base& t) noexcept override {
        core_.waiter = nullptr;
        t.wake();
    }
    void arrive() noexcept {
        core_.waiter = nullptr;
        task_->wake();
    }

private:
    file_core& core_;
    const char* what_;
    task_base* task_ = nullptr;
};

// Held by an operation from the moment it has its turn: at its end the turn passes on,
// unless its job still runs (it was cancelled): then complete() passes it.
class file_turn {
public:
    explicit file_turn(file_core& c) noexcept : core_(c) {}
    file_turn(const file_turn&) = delete;
    file_turn& operator=(const file_turn&) = delete;
    ~file_turn() {
        if (core_.pending) {
            core_.orphaned = true;
        } else {
            core_.turn.release();
        }
    }

private:
    file_core& core_;
};

inline void file_core::start(file_job_kind k) {
    kind = k;
    error.clear();
    moved = 0;
    new_position = -1;
    executor& e = default_executor(*loop);
    add_ref();
    file_job_handoff work(this);
    pending = true;
    try {
        e.submit([w = std::move(work)]() mutable noexcept { file_job_handoff::run(w); });
    } catch (...) {  // a shut-down executor: the work and its reference are gone
        pending = false;
        throw;
    }
}

inline void file_core::run_job() noexcept {
    long long at = 0;
    if (rewind != 0 && kind != file_job_kind::close) {
        error = seek_native_file(handle, -rewind, seek_cur, at);
    }
    if (!error) {
        switch (kind) {
            case file_job_kind::read:
                try {
                    data.resize(want);
                    error = read_native_file(handle, data.data(), want, moved);
                } catch (...) {
                    error = std::make_error_code(std::errc::not_enough_memory);
                }
                data.resize(error ? 0 : moved);
                break;
            case file_job_kind::read_to_end: {
                const std::size_t before = data.size();
                try {
                    error = read_native_file_to_end(handle, data);
                } catch (...) {
                    error = std::make_error_code(std::errc::not_enough_memory);
                }
                moved = data.size() - before;
                break;
            }
            case file_job_kind::write:
                error = write_native_file(handle, data.data(), data.size(), append, moved);
                break;
            case file_job_kind::seek:
                error = seek_native_file(handle, offset, whence, at);
                break;
            case file_job_kind::truncate:
                error = truncate_native_file(handle, offset);
                break;
            case file_job_kind::close:
                error = close_native_file(handle);
                handle = no_file();  // released even when close reports an error
                break;
        }
    }
    if (handle != no_file() && !seek_native_file(handle, 0, seek_cur, at)) new_position = at;
}

inline void file_core::complete() noexcept {
    pending = false;
    rewind = 0;
    if (new_position >= 0) {
        os_position = new_position;
    } else if (kind == file_job_kind::read || kind == file_job_kind::read_to_end ||
               kind == file_job_kind::write) {
        os_position += static_cast<long long>(moved);  // a pipe or a FIFO: counted
    }
    if (kind == file_job_kind::read || kind == file_job_kind::read_to_end) {
        // Into the buffer even if nobody waits: a cancelled read loses nothing.
        if (buffered() == 0) {
            drop_buffer();
            buffer.swap(data);
        } else {
            if (consumed != 0) {
                buffer.erase(0, consumed);
                consumed = 0;
            }
            try {
                buffer.append(data);
            } catch (...) {
                if (!error) error = std::make_error_code(std::errc::not_enough_memory);
            }
        }
        data.clear();
    } else if (kind == file_job_kind::write) {
        data.clear();
    }
    if (file_job_wait* w = waiter) {
        w->arrive();
    } else if (orphaned) {
        orphaned = false;
        turn.release();
    }
}

// ---- the operations: each a coroutine holding its own reference to the file -------------
// Templates (as net/streams.hpp's), so that a program that uses no file compiles none of
// them.

template <class = void>
coro<std::string> file_read(file_ref ref, long long n) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable("file::read");
    if (n < 0) {
        // What is buffered goes first, in the same string: one allocation for the whole
        // file when its size is known, and nothing lost if the read is cancelled.
        f.data = f.take(f.buffered());
        co_await file_job_wait(f, file_job_kind::read_to_end, "file::read");
        co_return f.take(f.buffered());
    }
    const std::size_t want = static_cast<std::size_t>(n);
    while (f.buffered() < want) {
        const std::size_t missing = want - f.buffered();
        f.want = missing > file_core::buffer_size ? missing : file_core::buffer_size;
        co_await file_job_wait(f, file_job_kind::read, "file::read");
        if (f.moved == 0) break;  // end of file
    }
    co_return f.take(want < f.buffered() ? want : f.buffered());
}

template <class = void>
coro<std::string> file_readline(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_readable("file::readline");
    std::size_t scanned = 0;  // buffered bytes known to hold no '\n'
    for (;;) {
        const std::size_t at = f.buffer.find('\n', f.consumed + scanned);
        if (at != std::string::npos) co_return f.take(at + 1 - f.consumed);
        scanned = f.buffered();
        f.want = file_core::buffer_size;
        co_await file_job_wait(f, file_job_kind::read, "file::readline");
        if (f.moved == 0) co_return f.take(f.buffered());  // the last line, without '\n'
    }
}

template <class = void>
coro<std::size_t> file_write(file_ref ref, std::string bytes) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_writable("file::write");
    f.unread_buffer();
    f.data = std::move(bytes);
    co_await file_job_wait(f, file_job_kind::write, "file::write");
    co_return f.moved;
}

template <class = void>
coro<long long> file_seek(file_ref ref, long long offset, int whence) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_open("file::seek");
    f.unread_buffer();
    f.offset = offset;
    f.whence = whence;
    co_await file_job_wait(f, file_job_kind::seek, "file::seek");
    co_return f.os_position;
}

// size < 0: at the current position (Python's truncate(None)).
template <class = void>
coro<long long> file_truncate(file_ref ref, long long size) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_writable("file::truncate");
    if (size < 0) size = f.position();
    f.unread_buffer();
    f.offset = size;
    co_await file_job_wait(f, file_job_kind::truncate, "file::truncate");
    co_return size;
}

template <class = void>
coro<long long> file_tell(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_open("file::tell");
    co_return f.position();
}

template <class = void>
coro<void> file_flush(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    f.check_open("file::flush");
}

template <class = void>
coro<void> file_close(file_ref ref) {
    file_core& f = *ref;
    co_await f.turn.acquire();
    file_turn turn(f);
    if (f.closed) co_return;  // close is idempotent, as Python's
    f.closed = true;          // from here the operations queued behind fail
    f.drop_buffer();
    co_await file_job_wait(f, file_job_kind::close, "file::close");
}

// What the pool's open gives back: a descriptor that closes itself if nobody takes it (the
// open_file that asked was cancelled meanwhile).
class opened_file {
public:
    opened_file() noexcept = default;
    opened_file(opened_file&& o) noexcept
        : handle(std::exchange(o.handle, no_file())), position(o.position), error(o.error) {}
    opened_file(const opened_file&) = delete;
    opened_file& operator=(const opened_file&) = delete;
    opened_file& operator=(opened_file&&) = delete;
    ~opened_file() {
        if (handle != no_file()) (void)close_native_file(handle);
    }

    native_file handle = no_file();
    long long position = 0;
    std::error_code error;
};

// The pool's open. It owns a copy of the path: a cancelled open_file's frame may go before
// it runs.
struct open_in_pool {
    std::string path;
    file_access access;

    opened_file operator()() const noexcept {
        opened_file o;
        o.error = open_native_file(path, access, o.handle);
        // Python's "a" starts at the end, so that tell() says where writes go.
        if (!o.error && access.append) (void)seek_native_file(o.handle, 0, seek_end, o.position);
        return o;
    }
};

struct file_factory;
struct file_sendfile_access;  // net/sendfile.hpp: loop.sendfile reads the file's core

}  // namespace detail

// An open file (aiofiles' AsyncBufferedIOBase): move-only; every operation is awaited and
// runs as the comment at the top of this file says. A default-constructed or moved-from
// file is no file: its operations throw invalid_state_error at the call.
class file {
public:
    file() noexcept = default;
    file(file&&) noexcept = default;
    file& operator=(file&&) noexcept = default;
    file(const file&) = delete;
    file& operator=(const file&) = delete;
    ~file() = default;  // the last reference closes (see the top of this file)

    // Up to n bytes, fewer only at the end of the file; n < 0: everything to the end.
    template <class = void>
    [[nodiscard]] coro<std::string> read(long long n = -1) {
        return detail::file_read(ref("file::read"), n);
    }
    // One line with its '\n'; the last line may lack it; "" at the end of the file.
    template <class = void>
    [[nodiscard]] coro<std::string> readline() {
        return detail::file_readline(ref("file::readline"));
    }
    // All of data, at the position (at the end in "a" modes); the count written. The bytes
    // are copied at the call: the caller's may go at once.
    template <class = void>
    [[nodiscard]] coro<std::size_t> write(std::string_view data) {
        return detail::file_write(ref("file::write"), std::string(data));
    }
    // Returns once the operations before it are done (writes are not buffered).
    template <class = void>
    [[nodiscard]] coro<void> flush() { return detail::file_flush(ref("file::flush")); }
    // whence: seek_set, seek_cur or seek_end (anything else is std::invalid_argument at the
    // call); the new position.
    template <class = void>
    [[nodiscard]] coro<long long> seek(long long offset, int whence = seek_set) {
        if (whence != seek_set && whence != seek_cur && whence != seek_end) {
            throw std::invalid_argument(
                detail::concat({"file::seek: invalid whence ",
                                detail::decimal(whence), " (seek_set, seek_cur or seek_end)"}));
        }
        return detail::file_seek(ref("file::seek"), offset, whence);
    }
    template <class = void>
    [[nodiscard]] coro<long long> tell() { return detail::file_tell(ref("file::tell")); }
    // The file's size becomes `size` (default: the current position); the position does not
    // move. Returns the new size.
    template <class = void>
    [[nodiscard]] coro<long long> truncate() { return detail::file_truncate(ref("file::truncate"), -1); }
    template <class = void>
    [[nodiscard]] coro<long long> truncate(long long size) {
        if (size < 0) {
            throw std::invalid_argument(detail::concat(
                {"file::truncate: negative size ", detail::decimal(size)}));
        }
        return detail::file_truncate(ref("file::truncate"), size);
    }
    // Closes once the operations before it are done; idempotent.
    template <class = void>
    [[nodiscard]] coro<void> close() { return detail::file_close(ref("file::close")); }

    // Whether close() was called (Python's `closed`).
    bool closed() const noexcept { return !core_.get() || core_.get()->closed; }
    // The path it was opened with (Python's `name`).
    const std::string& name() const {
        if (!core_.get()) throw invalid_state_error("file::name: no file");
        return core_.get()->path;
    }

private:
    friend struct detail::file_factory;
    friend struct detail::file_sendfile_access;
    explicit file(detail::file_core* c) noexcept : core_(c) {}

    // The file, for an operation called on its loop's thread while that loop runs: its
    // jobs go to that loop's executor and come back to it.
    detail::file_ref ref(const char* what) const {
        if (!core_.get()) {
            throw invalid_state_error(
                detail::concat({what, ": no file (default-constructed or moved from)"}));
        }
        if (detail::loop_access::running() != core_.get()->loop) {
            throw invalid_state_error(detail::concat(
                {what, ": \"", core_.get()->path,
                 "\" was opened on another event loop than the one running here (if any)"}));
        }
        return core_;
    }

    detail::file_ref core_;
};

namespace detail {

// How open_file makes a file of a new core.
struct file_factory {
    static file make(file_core* c) noexcept { return file(c); }
};

// A template on its work, so that nothing of run_in_executor is compiled where it is not
// used (a non-dependent call would be, in every program that includes the header).
template <class Work = open_in_pool>
coro<file> open_file_in_pool(std::string path, file_access access) {
    loop_base& loop = loop_access::running_or_throw("open_file");
    // Submitted in a statement of its own: g++ 12 mishandles a temporary of class type
    // (here the work, holding a string) made inside a co_await expression, and frees memory
    // that is not its own when the work is destroyed on the pool.
    auto job = loop.run_in_executor(Work{path, access});
    opened_file opened = co_await std::move(job);
    if (opened.error) throw_file_error(opened.error, "open_file", path);
    auto* core = new file_core(loop, std::move(path), opened.handle, access, opened.position);
    opened.handle = no_file();  // the core's now
    co_return file_factory::make(core);
}

}  // namespace detail

// Opens path (UTF-8) in the pool; a bad mode throws std::invalid_argument here, at the
// call. Errors: std::system_error naming the path, as `open_file "/x/y": No such file or
// directory`; a directory is std::errc::is_a_directory.
template <class = void>  // a template: compiled only where it is used
[[nodiscard]] coro<file> open_file(std::string path, std::string_view mode = "r") {
    const detail::file_access access = detail::parse_open_mode(mode);
    return detail::open_file_in_pool(std::move(path), access);
}

IOLOOP_NAMESPACE_END

#endif
