// ioloop: loop_base, everything of an event loop that does not depend on its backend:
// the ready queue, the timers, the cross-thread queue, the exception handler, debug mode,
// the tasks and the executor. basic_event_loop<Backend> adds the backend. The coroutine
// front end sees a loop only through this class, so it is the same code for every backend.
#ifndef IOLOOP_LOOP_BASE_HPP
#define IOLOOP_LOOP_BASE_HPP

#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/remote_queue.hpp"
#include "ioloop/detail/source_location.hpp"
#include "ioloop/detail/task_registry.hpp"
#include "ioloop/detail/timer_queue.hpp"
#include "ioloop/detail/unique_function.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/exception_context.hpp"
#include "ioloop/executor.hpp"
#include "ioloop/handle.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

template <class T>
class coro;
template <class T>
class task;
template <class T>
class future;
class loop_base;
class endpoint;                // net/endpoint.hpp
enum class address_family;     // net/endpoint.hpp
struct address_info;           // net/getaddrinfo.hpp
struct datagram_options;       // net/create_datagram_endpoint.hpp
class file;                    // fs/file.hpp
enum class socket_type : int;  // net/socket.hpp
class socket;                  // net/socket.hpp
struct connect_options;        // net/connect_options.hpp
struct serve_options;          // net/serve_options.hpp
class server;                  // net/server.hpp
class transport;               // net/transport.hpp
class base_protocol;           // net/protocol.hpp
class ssl_option;              // net/ssl_option.hpp
struct tls_options;            // net/ssl_option.hpp
class datagram_transport;      // net/transport.hpp
class subprocess_transport;    // subprocess/subprocess_transport.hpp
struct subprocess_options;     // subprocess/stdio.hpp

namespace detail {

// Lets what outlives a loop (a future kept after the loop is gone) know that it is gone.
struct loop_access;  // the coroutine front end's way in
struct net_access;   // the networking layer's (net/net_access.hpp)
class io_engine;     // net/io_engine.hpp
class arg_list;      // subprocess/stdio.hpp

// Its address names a backend type at run time, without RTTI.
template <class Backend>
inline constexpr char backend_tag = 0;

// The protocol type a factory makes: factory() returns std::unique_ptr<P>. Spelled out in
// the declarations below (not `auto`), so that naming them does not compile them.
template <class Factory>
using protocol_of = typename std::invoke_result_t<Factory&>::element_type;

struct loop_anchor {
    loop_base* loop;
    std::size_t refs;
};

}  // namespace detail

// What create_task takes besides the coroutine: {.name = "fetch", .eager_start = true}.
// The name points at the caller's string (copied by the call); eager_start runs the
// coroutine at once, inside create_task, until it first suspends (asyncio's eager_start,
// 3.14), when the loop is running on this thread; a coroutine that finishes without
// suspending gives a task that is already done and never scheduled.
struct task_options {
    const char* name = nullptr;
    bool eager_start = false;
};

// How the loop's create_task starts tasks (asyncio's loop.set_task_factory): `standard`
// schedules them, `eager` starts them eagerly as above (asyncio.eager_task_factory). A
// task factory of asyncio's kind, a function of any coroutine, has no C++ counterpart: a
// coro<T> is a different type for every T; these are the two factories asyncio ships.
enum class task_factory : unsigned char { standard, eager };
inline constexpr task_factory eager_task_factory = task_factory::eager;

class loop_base {
    static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>,
                  "ioloop counts time in steady_clock's nanoseconds");

public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    using duration = clock::duration;
    using exception_handler = detail::unique_function<void(const exception_context&)>;

    loop_base(const loop_base&) = delete;
    loop_base& operator=(const loop_base&) = delete;

    // ---- scheduling -------------------------------------------------------------------

    // Runs fn on a later iteration, after everything scheduled before it (FIFO).
    template <class F>
    handle call_soon(F&& fn, detail::source_location where = detail::source_location::current()) {
        check_open("call_soon");
        detail::callback_node* n = make_node(std::forward<F>(fn), where);
        n->refs.store(2, detail::memory_order::relaxed);  // the ready queue's and the handle's
        ready_.push(n);
        return handle(n);
    }

    // Like call_soon, from any thread; wakes the loop if it sleeps in its poll.
    template <class F>
    handle call_soon_threadsafe(
        F&& fn, detail::source_location where = detail::source_location::current()) {
        static_assert(std::is_invocable_v<std::decay_t<F>&>,
                      "call_soon_threadsafe: the callback must be callable with no arguments");
        auto* n = new detail::callback_node;
        n->threadsafe = true;
        n->where = where;
        n->refs.store(2, detail::memory_order::relaxed);
        try {
            n->fn.emplace(std::forward<F>(fn));
        } catch (...) {
            delete n;
            throw;
        }
        const auto pushed = remote_.push(n);
        if (pushed == detail::remote_queue::push_result::closed) {
            delete n;
            throw invalid_state_error("call_soon_threadsafe: the event loop is closed");
        }
        // Only the push into an empty queue wakes the loop: later ones ride on that wakeup.
        const bool wake = pushed == detail::remote_queue::push_result::queued_into_empty;
        if (wake) interrupt_(this);
        return handle(n);
    }

    // Runs fn once `delay` has passed on loop.time()'s clock, never earlier.
    template <class Rep, class Period, class F>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn,
                            detail::source_location where = detail::source_location::current()) {
        const time_point now = time();
        return schedule_timer(now, detail::saturating_deadline(now, delay), std::forward<F>(fn),
                              where, "call_later");
    }

    // Runs fn once loop.time() reaches `when`, never earlier.
    template <class Duration, class F>
    timer_handle call_at(std::chrono::time_point<clock, Duration> when, F&& fn,
                         detail::source_location where = detail::source_location::current()) {
        return schedule_timer(time(), std::chrono::ceil<duration>(when), std::forward<F>(fn), where,
                              "call_at");
    }

    // The loop's clock: monotonic.
    time_point time() const noexcept { return clock::now(); }

    // ---- running ----------------------------------------------------------------------

    // The current iteration finishes, then run_forever returns.
    void stop() noexcept { stopping_ = true; }

    bool is_running() const noexcept { return running_; }
    bool is_closed() const noexcept { return closed_; }

    // Iterations run so far: lets a program (or a test) see that an idle loop sleeps.
    std::uint64_t iteration_count() const noexcept { return iterations_; }

    // ---- coroutines (defined with the coroutine front end) -----------------------------

    // A pending future bound to this loop (asyncio's loop.create_future()).
    template <class T = void>
    future<T> create_future();

    // Schedules the coroutine to start on the next iteration; the task runs even if
    // nobody awaits it. An empty name becomes "Task-<n>".
    template <class T>
    task<T> create_task(coro<T> body);
    // (A template: a braced {.name = ...} must not be taken for a std::string.)
    template <class T, class Name>
        requires std::is_convertible_v<Name&&, std::string>
    task<T> create_task(coro<T> body, Name&& name);
    template <class T>
    task<T> create_task(coro<T> body, task_options options);
    // The same for a callable returning a coro: fn is moved into the task and lives (with
    // what it captured) as long as the coroutine it made runs, so that
    // `loop.create_task([x]() -> coro<void> { ... })` is safe. Defined in coro/task.hpp.
    template <class F>
        requires std::is_invocable_v<std::decay_t<F>&>
    auto create_task(F&& fn);
    template <class F, class Name>
        requires std::is_invocable_v<std::decay_t<F>&> && std::is_convertible_v<Name&&, std::string>
    auto create_task(F&& fn, Name&& name);
    template <class F>
        requires std::is_invocable_v<std::decay_t<F>&>
    auto create_task(F&& fn, task_options options);

    // set_task_factory(ioloop::eager_task_factory): every create_task starts eagerly;
    // set_task_factory(nullptr), or task_factory::standard, undoes it.
    void set_task_factory(task_factory f) noexcept { eager_tasks_ = f == task_factory::eager; }
    void set_task_factory(std::nullptr_t) noexcept { eager_tasks_ = false; }
    task_factory get_task_factory() const noexcept {
        return eager_tasks_ ? task_factory::eager : task_factory::standard;
    }


    // Runs fn() on the default executor; the task completes on the loop's thread.
    template <class F>
    auto run_in_executor(F fn);

    // co_await loop.getaddrinfo(host, port): host's addresses, resolved on the default
    // executor (::getaddrinfo blocks); a numeric host is parsed without a thread (defined
    // in net/getaddrinfo.hpp). A template only so that the coroutine is compiled where used.
    template <class = void>
    coro<std::vector<endpoint>> getaddrinfo(std::string host, std::uint16_t port,
                                            socket_type type = socket_type{});
    // asyncio's full form: every hint (type and proto as the system's SOCK_* and IPPROTO_*
    // numbers, 0 for any; flags AI_*), and every answer with its family, type, proto and
    // canonical name. An empty host is the system's null host (the wildcard address with
    // AI_PASSIVE, the loopback without).
    template <class = void>
    coro<std::vector<address_info>> getaddrinfo(std::string host, std::uint16_t port,
                                                address_family family, int type = 0,
                                                int proto = 0, int flags = 0);
    // co_await loop.getnameinfo(address, flags) -> (host, service), flags NI_*.
    template <class = void>
    coro<std::pair<std::string, std::string>> getnameinfo(endpoint address, int flags = 0);

    // ---- transports and protocols (defined in net/) -----------------------------------
    // `factory()` makes the connection's protocol: a std::unique_ptr<P>, P derived from
    // ioloop::protocol or ioloop::buffered_protocol (datagram_protocol for datagrams). The
    // transport owns it from then on.

    // co_await loop.create_connection(factory, host, port, options) ->
    // std::pair<transport*, P*>: tries host's addresses in order, or staggered with
    // options.happy_eyeballs_delay (connect_options, net/connect_options.hpp); if none
    // connects, the one error, "Multiple exceptions: ..." or connect_errors (all_errors).
    // The addresses may be given already resolved. The sock= form takes a connected stream
    // socket (asyncio's sock=); connect_accepted_socket takes one a listener accepted.
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, std::string host, std::uint16_t port);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, std::string host, std::uint16_t port, const connect_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, std::vector<endpoint> addresses, const connect_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, socket sock);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_connection(
        Factory factory, socket sock, const connect_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_accepted_socket(
        Factory factory, socket sock);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_accepted_socket(
        Factory factory, socket sock, const serve_options& options);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> create_unix_connection(
        Factory factory, std::string path);

    // co_await loop.create_server(factory, host, port, options) -> server, listening on
    // every address of host (all interfaces when host is empty) and of options.hosts,
    // serving at once unless options.start_serving is false (serve_options,
    // net/serve_options.hpp). The sock= form serves a socket already bound (systemd's
    // socket activation hands one over as descriptor 3).
    template <class Factory>
    coro<server> create_server(Factory factory, std::string host, std::uint16_t port,
                               int backlog = 100);
    template <class Factory>
    coro<server> create_server(Factory factory, std::string host, std::uint16_t port,
                               const serve_options& options);
    template <class Factory>
    coro<server> create_server(Factory factory, socket sock);
    template <class Factory>
    coro<server> create_server(Factory factory, socket sock, const serve_options& options);
    template <class Factory>
    coro<server> create_unix_server(Factory factory, std::string path, int backlog = 100);
    template <class Factory>
    coro<server> create_unix_server(Factory factory, std::string path,
                                    const serve_options& options);

    // co_await loop.create_datagram_endpoint(factory, local, remote) ->
    // std::pair<datagram_transport*, P*>: bound to `local` if given, connected to `remote`
    // if given (an unspecified endpoint() means "not given"; one of them is needed).
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, endpoint local, endpoint remote);
    // The same with options (reuse_port, allow_broadcast; family makes an unbound socket
    // when neither address is given). Defined in net/create_datagram_endpoint.hpp.
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, endpoint local, endpoint remote, datagram_options options);
    // asyncio's local_addr=(host, port), remote_addr=(host, port): names resolved through
    // getaddrinfo (the options' family, proto and flags as hints); an empty host means that
    // side is not given. The first local/remote pair of one family that works is used.
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, std::string local_host, std::uint16_t local_port, std::string remote_host,
        std::uint16_t remote_port, datagram_options options);
    template <class Factory>
    coro<std::pair<datagram_transport*, detail::protocol_of<Factory>*>> create_datagram_endpoint(
        Factory factory, std::string local_host, std::uint16_t local_port, std::string remote_host,
        std::uint16_t remote_port);

    // co_await loop.start_tls(transport, ssl, options) -> transport* (asyncio's STARTTLS
    // upgrade): a TLS layer (an ssl_context of <ioloop/ssl.hpp>) goes between the transport
    // and its protocol, which goes on over TLS through the transport returned once the
    // handshake is done; use that one from then on. options.server_side: this end answers
    // the handshake. asyncio's protocol argument may be given too: it must be the
    // transport's own. Defined in net/start_tls.hpp.
    template <class = void>
    coro<transport*> start_tls(transport& t, ssl_option ssl);
    template <class = void>
    coro<transport*> start_tls(transport& t, ssl_option ssl, const tls_options& options);
    template <class = void>
    coro<transport*> start_tls(transport& t, base_protocol& p, ssl_option ssl,
                               const tls_options& options);

    // co_await loop.sendfile(transport, file, offset, count) -> bytes sent (asyncio's):
    // count < 0 sends to the end of the file. sendfile(2) where the transport is a plain
    // socket's on a readiness backend on Linux (its write buffer is flushed first, reading
    // paused, and write() refused until it ends); elsewhere, with fallback, reads through
    // the executor and writes with flow control; without fallback,
    // sendfile_not_available_error. The file's position is offset + sent afterwards.
    // Defined in net/sendfile.hpp.
    template <class = void>
    coro<std::size_t> sendfile(transport& t, file& f, long long offset = 0, long long count = -1,
                               bool fallback = true);

    // co_await loop.connect_read_pipe(factory, fd) -> std::pair<transport*, P*>: a
    // descriptor that is not a socket (POSIX: a pipe, a FIFO, a terminal, a character
    // device; Windows, on IOCP: the HANDLE of a connected named pipe opened with
    // FILE_FLAG_OVERLAPPED) read as a stream. fd is the transport's from the call on:
    // (POSIX) made non-blocking and close-on-exec, closed when the transport is gone or
    // when the call fails. EOF reaches eof_received, then connection_lost. A regular file
    // is refused (the file API reads files). connect_write_pipe writes one: buffering,
    // water marks and close as a socket's; write_eof closes it once the bytes are out; the
    // reader going away is connection_lost(errc::broken_pipe), never SIGPIPE. Defined in
    // net/connect_pipe.hpp.
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_read_pipe(
        Factory factory, native_descriptor fd);
    template <class Factory>
    coro<std::pair<transport*, detail::protocol_of<Factory>*>> connect_write_pipe(
        Factory factory, native_descriptor fd);

    // co_await loop.subprocess_exec(factory, program, args, options) ->
    // std::pair<subprocess_transport*, P*>, and subprocess_shell(factory, cmd, options):
    // asyncio's, with a subprocess_protocol. Defined in subprocess/subprocess_transport.hpp.
    template <class Factory>
    coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> subprocess_exec(
        Factory factory, std::string program, detail::arg_list args,
        const subprocess_options& options);
    template <class Factory>
    coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> subprocess_shell(
        Factory factory, std::string cmd, const subprocess_options& options);

    // run_in_executor sends work here from now on; the loop does not own it. It must
    // outlive the work sent to it.
    void set_default_executor(executor& e) noexcept { executor_ = &e; }

    // ---- errors and debugging ---------------------------------------------------------

    // Receives every exception that escapes a callback, and the debug-mode reports.
    // An empty handler restores default_exception_handler.
    void set_exception_handler(exception_handler h) noexcept {
        handler_ = std::move(h);
        ++handler_version_;
    }

    // The handler set_exception_handler set; empty for the default (asyncio's
    // get_exception_handler returns None then). It is move-only, so this lends it: call it,
    // or take it over with set_exception_handler(std::move(...)) to wrap it. While it runs,
    // it is lent to that call, and this is empty.
    exception_handler& get_exception_handler() noexcept { return handler_; }

    void call_exception_handler(const exception_context& ctx) noexcept {
        if (!handler_) {
            default_exception_handler(ctx);
            return;
        }
        // The handler may replace itself while it runs: keep it alive until it returns, and
        // put it back only if nobody set another. Meanwhile, reports it causes itself go to
        // the default handler instead of recursing.
        exception_handler running = std::move(handler_);
        const std::uint64_t version = handler_version_;
        try {
            running(ctx);
        } catch (...) {
            default_exception_handler(
                {"exception in the exception handler", std::current_exception(), ctx.callback});
            default_exception_handler(ctx);
        }
        if (handler_version_ == version) handler_ = std::move(running);
    }

    // Prints the context to stderr.
    static void default_exception_handler(const exception_context& ctx) noexcept {
        std::fprintf(stderr, "ioloop: %s\n", ctx.message.c_str());
        if (!ctx.callback.empty()) std::fprintf(stderr, "  callback: %s\n", ctx.callback.c_str());
        if (ctx.exception) {
            try {
                std::rethrow_exception(ctx.exception);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "  exception: %s\n", e.what());
            } catch (...) {
                std::fprintf(stderr, "  exception: (not derived from std::exception)\n");
            }
        }
    }

    // Debug mode times every callback and reports those slower than
    // slow_callback_duration() (default 100 ms) through the exception handler.
    void set_debug(bool on) noexcept { debug_ = on; }
    bool get_debug() const noexcept { return debug_; }

    template <class Rep, class Period>
    void set_slow_callback_duration(std::chrono::duration<Rep, Period> d) noexcept {
        slow_callback_ = std::chrono::duration_cast<duration>(d);
    }
    duration slow_callback_duration() const noexcept { return slow_callback_; }

protected:
    // `interrupt` wakes the loop's backend from its wait, from any thread.
    // `backend` identifies the backend type (get_running_loop<Backend>() checks it).
    loop_base(void (*interrupt)(loop_base*) noexcept, const void* backend)
        : backend_tag_(backend), interrupt_(interrupt), pool_(new detail::node_pool) {
        pool_->on_timer_cancel = [](void* q, detail::callback_node* n) noexcept {
            static_cast<detail::timer_queue*>(q)->cancel(n);
        };
        pool_->timer_queue = &timers_;
        // Like PYTHONASYNCIODEBUG: debug mode without touching the code.
        if (const char* env = std::getenv("IOLOOP_DEBUG")) debug_ = env[0] != '\0' && env[0] != '0';
    }

    ~loop_base() {
        if (anchor_) {
            anchor_->loop = nullptr;
            release_anchor(anchor_);
        }
        pool_->orphan();
    }

    // Closing, the backend-independent part: nothing queued runs any more (the nodes in
    // `dropped`, and the loop's own, are released), unfinished tasks are abandoned (their
    // coroutines destroyed), the default executor is shut down.
    void close_queues(detail::node_queue& dropped) noexcept {
        closed_ = true;
        dropped.append(remote_.close());
        dropped.append(ready_.take());
        timers_.clear(dropped);
        // Released before the tasks are abandoned: a task's queued step is a node that
        // lives inside the task. Releasing runs the callbacks' destructors, which may do
        // anything.
        dropped.clear();
        tasks_.abandon_all();
        if (owned_executor_) {
            owned_executor_->shutdown();
            delete std::exchange(owned_executor_, nullptr);
            executor_ = nullptr;
        }
    }

    // Marks the loop as running on this thread for as long as run_forever runs.
    struct running_scope {
        explicit running_scope(loop_base& l) : loop(l) {
            loop.running_ = true;
            running_loop_ = &loop;
        }
        ~running_scope() {
            loop.running_ = false;
            loop.stopping_ = false;
            running_loop_ = nullptr;
        }
        running_scope(const running_scope&) = delete;
        running_scope& operator=(const running_scope&) = delete;
        loop_base& loop;
    };

    // Throws unless run_forever may start now.
    void check_can_run() const {
        if (closed_) throw invalid_state_error("run_forever: the event loop is closed");
        if (running_) throw invalid_state_error("run_forever: this event loop is already running");
        if (running_loop_) {
            throw invalid_state_error(
                "run_forever: another event loop is already running in this thread");
        }
    }

    // Step 4: exactly the callbacks that are ready now; what they schedule runs on the
    // next iteration.
    void run_ready() {
        detail::ready_node* next = ready_.release_list();
        if (debug_) [[unlikely]] {
            run_timed(next);
            return;
        }
        while (next) {
            detail::ready_node* r = next;
            next = r->next;
            if (r->embedded) [[unlikely]] {
                run_embedded(r);  // the node may be gone now
                continue;
            }
            auto* n = static_cast<detail::callback_node*>(r);
            if (!n->is_cancelled()) {
                try {
                    n->fn();
                } catch (...) {
                    report_exception(*n);
                }
            }
            finish(n);
        }
    }

    std::chrono::nanoseconds poll_timeout() noexcept {
        if (!ready_.empty() || stopping_) return std::chrono::nanoseconds(0);
        drop_cancelled_head_timers();
        if (timers_.empty()) return std::chrono::nanoseconds(-1);
        // Compared before subtracting: a deadline of time_point::min() must not overflow.
        const auto deadline = timers_.top_deadline();
        const auto now = time().time_since_epoch().count();
        if (deadline <= now) return std::chrono::nanoseconds(0);
        return std::chrono::nanoseconds(deadline - now);  // the clock counts nanoseconds
    }

    // Queues a registered (reader, writer, signal) callback; the registration keeps its
    // own reference.
    void enqueue(detail::callback_node* n) noexcept {
        n->add_ref();
        ready_.push(n);
    }

    void take_remote() noexcept {
        if (remote_.has_work()) ready_.append(remote_.take());
    }

    void fire_due_timers() {
        if (timers_.empty()) return;
        // Cancelled timers left in the queue cost a pop each; a purge costs a visit to
        // every queued node. Purge only when they are most of the queue.
        if (timers_.cancelled_count() > purge_threshold &&
            timers_.cancelled_count() * 4 > timers_.size() * 3) {
            detail::node_queue dropped;
            timers_.purge_cancelled(dropped);
            dropped.clear();
        }
        const time_point now = time();
        const auto now_ticks = now.time_since_epoch().count();
        // Due timers are taken a batch at a time and their nodes prefetched, so the cache
        // misses of nodes scattered in memory overlap instead of queueing up.
        detail::callback_node* due[16];
        std::size_t count;
        do {
            count = 0;
            while (count < std::size(due) && !timers_.empty() &&
                   timers_.top_deadline() <= now_ticks) {
                due[count] = timers_.pop();
                IOLOOP_PREFETCH(due[count]);
                ++count;
            }
            for (std::size_t i = 0; i < count; ++i) {
                detail::callback_node* n = due[i];
                if (n->is_cancelled()) {
                    drop_cancelled_timer(n);
                } else {
                    n->in_timer_heap = false;
                    ready_.push(n);  // the timer queue's reference moves to the ready queue
                }
            }
        } while (count == std::size(due));
        timers_.advance(now);
    }

    void drop_cancelled_head_timers() noexcept {
        while (!timers_.empty() && timers_.top()->is_cancelled()) {
            drop_cancelled_timer(timers_.pop());
        }
    }

    // A cancelled timer popped from the timer queue: it leaves the queue's count and its
    // reference goes.
    void drop_cancelled_timer(detail::callback_node* n) noexcept {
        n->in_timer_heap = false;
        timers_.forget_cancelled();
        n->release();
    }

    // A task's step, kept out of the loop above: inlined there it slows every other
    // callback down (measured: 217M -> 202M callbacks/s).
    static IOLOOP_NOINLINE void run_embedded(detail::ready_node* r) noexcept {
        auto* e = static_cast<detail::embedded_node*>(r);
        e->run(*e, nullptr);
    }

    // Ends a registration (reader, writer, signal handler): if it is queued in this
    // iteration it must not run, and the registration's reference goes.
    static void unregister(detail::callback_node* n) noexcept {
        n->cancel();
        n->release();
    }

    // A one-shot callback that ran (or was skipped) drops its callable now, with what it
    // captured, even if a handle keeps the node: as asyncio drops a handle's callback.
    static void finish(detail::callback_node* n) noexcept {
        if (!n->persistent) n->fn.reset();
        n->release();
    }

    // Step 4 in debug mode: each callback is timed, the slow ones reported.
    IOLOOP_NOINLINE void run_timed(detail::ready_node* next) noexcept {
        while (next) {
            detail::ready_node* r = next;
            next = r->next;
            if (r->embedded) {
                auto* e = static_cast<detail::embedded_node*>(r);
                std::string what;
                e->run(*e, &what);  // now: the node may be gone after it ran
                const time_point start = time();
                e->run(*e, nullptr);
                const duration took = time() - start;
                if (took >= slow_callback_) report_slow(std::move(what), took);
                continue;
            }
            auto* n = static_cast<detail::callback_node*>(r);
            if (!n->is_cancelled()) {
                const time_point start = time();
                try {
                    n->fn();
                } catch (...) {
                    report_exception(*n);
                }
                const duration took = time() - start;
                if (took >= slow_callback_) report_slow(describe(*n), took);
            }
            finish(n);
        }
    }

    void report_slow(std::string callback, duration took) noexcept {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3f", double(took.count()) * 1e-9);
        std::string message =
            detail::concat({"executing ", callback, " took ", seconds, " seconds"});
        call_exception_handler({std::move(message), nullptr, std::move(callback)});
    }

    IOLOOP_NOINLINE void report_exception(detail::callback_node& n) noexcept {
        call_exception_handler({"exception in callback", std::current_exception(), describe(n)});
    }

    // "main()::<lambda()> scheduled at hello.cpp:12"
    static std::string describe(const detail::callback_node& n) {
        std::string own = n.fn.describe();
        if (!own.empty()) return own;
        return detail::concat({n.fn.name(), " scheduled at ", n.where.file, ":",
                               detail::decimal(static_cast<long long>(n.where.line))});
    }

    void check_open(const char* what) const {
        if (closed_)
            throw invalid_state_error(detail::concat({what, ": the event loop is closed"}));
    }

    // A fresh node holding fn, with no references counted yet.
    template <class F>
    detail::callback_node* make_node(F&& fn, detail::source_location where) {
        static_assert(std::is_invocable_v<std::decay_t<F>&>,
                      "ioloop: the callback must be callable with no arguments");
        detail::callback_node* n = pool_->acquire();
        try {
            n->fn.emplace(std::forward<F>(fn));
        } catch (...) {
            pool_->recycle(n);
            throw;
        }
        n->where = where;
        return n;
    }

    // A node that runs each time it is queued (readers, writers, signal handlers).
    template <class F>
    detail::callback_node* make_persistent_node(F&& fn, detail::source_location where) {
        detail::callback_node* n = make_node(std::forward<F>(fn), where);
        n->persistent = true;
        return n;
    }

    template <class F>
    timer_handle schedule_timer(time_point now, time_point when, F&& fn,
                                const detail::source_location& where, const char* what) {
        check_open(what);
        detail::callback_node* n = make_node(std::forward<F>(fn), where);
        n->when = when;
        n->seq = ++timer_seq_;
        n->refs.store(2, detail::memory_order::relaxed);  // the heap's and the handle's
        try {
            timers_.push(n, now);
        } catch (...) {
            n->refs.store(0, detail::memory_order::relaxed);
            pool_->recycle(n);
            throw;
        }
        return timer_handle(n);
    }

    static void release_anchor(detail::loop_anchor* a) noexcept {
        if (--a->refs == 0) delete a;
    }

    // Cancelled timers are purged in bulk past this many (and past 3/4 of the queue).
    static constexpr std::size_t purge_threshold = 64;

    // The loop running on this thread, if any (asyncio: "Cannot run the event loop while
    // another loop is running"; get_running_loop()).
    static inline thread_local loop_base* running_loop_ = nullptr;

    const void* backend_tag_;
    void (*interrupt_)(loop_base*) noexcept;
    detail::node_pool* pool_;  // owned; orphaned in the destructor
    detail::node_queue ready_;
    detail::timer_queue timers_;
    std::uint64_t timer_seq_ = 0;
    detail::remote_queue remote_;  // from call_soon_threadsafe

    detail::task_registry tasks_;            // the tasks that have not finished
    std::uint64_t task_counter_ = 0;         // names "Task-<n>"
    detail::loop_anchor* anchor_ = nullptr;  // made for the first future
    executor* executor_ = nullptr;           // run_in_executor's; made on first use
    executor* owned_executor_ = nullptr;     // the default thread pool, once made

    // How the loop moves bytes: its backend family's engine (net/io_engine.hpp), owned and
    // set by basic_event_loop. The networking layer reaches the backend only through it.
    detail::io_engine* io_ = nullptr;

    exception_handler handler_;
    std::uint64_t handler_version_ = 0;  // counts set_exception_handler calls
    duration slow_callback_ = std::chrono::milliseconds(100);
    std::uint64_t iterations_ = 0;
    bool debug_ = false;
    bool eager_tasks_ = false;  // set_task_factory(eager_task_factory)
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;

    friend struct detail::loop_access;
    friend struct detail::net_access;
};

IOLOOP_NAMESPACE_END

#endif
