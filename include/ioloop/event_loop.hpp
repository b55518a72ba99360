// ioloop: basic_event_loop<Backend>, asyncio's event loop. One iteration (run_once) is the
// four steps of DESIGN.md: compute the poll timeout, poll, move due timers to the ready
// queue, run exactly the callbacks that were ready when the step began.
#ifndef IOLOOP_EVENT_LOOP_HPP
#define IOLOOP_EVENT_LOOP_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/pod_vector.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/remote_queue.hpp"
#include "ioloop/detail/running_loop.hpp"
#include "ioloop/detail/signals.hpp"
#include "ioloop/detail/source_location.hpp"
#include "ioloop/detail/timer_queue.hpp"
#include "ioloop/detail/unique_function.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/exception_context.hpp"
#include "ioloop/handle.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

template <class Backend>
class basic_event_loop {
    static_assert(
        backend::event_backend<Backend>,
        "basic_event_loop<Backend>: Backend does not model ioloop::backend::event_backend");
    static_assert(std::is_same_v<std::chrono::steady_clock::duration, std::chrono::nanoseconds>,
                  "ioloop counts time in steady_clock's nanoseconds");

public:
    using backend_type = Backend;
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    using duration = clock::duration;
    using exception_handler = detail::unique_function<void(const exception_context&)>;

    basic_event_loop() : pool_(new detail::node_pool) {
        pool_->on_timer_cancel = [](void* q, detail::callback_node* n) noexcept {
            static_cast<detail::timer_queue*>(q)->cancel(n);
        };
        pool_->timer_queue = &timers_;
        signal_target_.wake = [](void* b) noexcept { static_cast<Backend*>(b)->interrupt(); };
        signal_target_.context = &backend_;
        // Like PYTHONASYNCIODEBUG: debug mode without touching the code.
        if (const char* env = std::getenv("IOLOOP_DEBUG")) debug_ = env[0] != '\0' && env[0] != '0';
    }

    basic_event_loop(const basic_event_loop&) = delete;
    basic_event_loop& operator=(const basic_event_loop&) = delete;

    ~basic_event_loop() {
        if (!closed_) close();
        delete[] signals_;
        pool_->orphan();
    }

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
        if (wake) backend_.interrupt();
        return handle(n);
    }

    // Runs fn once `delay` has passed on loop.time()'s clock, never earlier.
    template <class Rep, class Period, class F>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn,
                            detail::source_location where = detail::source_location::current()) {
        const time_point now = time();
        return schedule_timer(now, deadline_after(now, delay), std::forward<F>(fn), where,
                              "call_later");
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

    // Runs iterations until stop(). A stop() made before the call makes it run one.
    void run_forever() {
        if (closed_) throw invalid_state_error("run_forever: the event loop is closed");
        if (running_) throw invalid_state_error("run_forever: this event loop is already running");
        if (detail::running_loop) {
            throw invalid_state_error(
                "run_forever: another event loop is already running in this thread");
        }
        running_scope scope(*this);
        do {
            run_once();
        } while (!stopping_);
    }

    // The current iteration finishes, then run_forever returns.
    void stop() noexcept { stopping_ = true; }

    bool is_running() const noexcept { return running_; }

    // Drops every pending callback, timer, watched descriptor and signal handler. A closed
    // loop cannot schedule or run anything. Closing twice does nothing.
    void close() {
        if (running_) throw invalid_state_error("close: the event loop is running");
        if (closed_) return;
        closed_ = true;
        detail::node_queue dropped = remote_.close();
        if (signals_) {
            for (int sig = 1; sig < detail::max_signal; ++sig) remove_signal_handler(sig);
        }
        for (fd_watch*& w : watches_) {
            if (!w) continue;
            backend_.watch(w->fd, w->events, 0, w);
            if (w->reader) dropped.push(w->reader);
            if (w->writer) dropped.push(w->writer);
            delete std::exchange(w, nullptr);
        }
        watched_count_ = 0;
        dropped.append(ready_.take());
        timers_.clear(dropped);
        // Last: releasing runs the callbacks' destructors, which may do anything.
        dropped.clear();
    }

    bool is_closed() const noexcept { return closed_; }

    // Iterations run so far: lets a program (or a test) see that an idle loop sleeps.
    std::uint64_t iteration_count() const noexcept { return iterations_; }

    // ---- descriptors (readiness backends only) ----------------------------------------

    // Runs fn on every iteration while fd is readable; replaces an earlier reader of fd.
    template <class F>
    void add_reader(int fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        add_watch(fd, backend::io_read, make_persistent_node(std::forward<F>(fn), where),
                  "add_reader");
    }

    // True if fd had a reader.
    bool remove_reader(int fd) {
        require_readiness_backend();
        return remove_watch(fd, backend::io_read);
    }

    template <class F>
    void add_writer(int fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        add_watch(fd, backend::io_write, make_persistent_node(std::forward<F>(fn), where),
                  "add_writer");
    }

    bool remove_writer(int fd) {
        require_readiness_backend();
        return remove_watch(fd, backend::io_write);
    }

    // ---- signals ----------------------------------------------------------------------

    // Runs fn on the loop's thread each time `sig` arrives; replaces an earlier handler.
    // One loop at a time may handle a given signal.
    template <class F>
    void add_signal_handler(int sig, F&& fn,
                            detail::source_location where = detail::source_location::current()) {
        check_open("add_signal_handler");
        if (sig <= 0 || sig >= detail::max_signal) {
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    detail::concat({"add_signal_handler: ", detail::decimal(sig),
                                                    " is not a signal number"}));
        }
        detail::signal_slot& slot = detail::signal_slots[sig];
        detail::signal_target* owner = slot.target.load(detail::memory_order::acquire);
        if (owner && owner != &signal_target_) {
            throw invalid_state_error(
                detail::concat({"add_signal_handler: signal ", detail::decimal(sig),
                                " is already handled by another event loop"}));
        }
        detail::callback_node* n = make_persistent_node(std::forward<F>(fn), where);
        n->refs.store(1, detail::memory_order::relaxed);  // the loop's registration
        if (!signals_) signals_ = new signal_registration[detail::max_signal]();
        signal_registration& reg = signals_[sig];
        if (detail::callback_node* old = reg.handler) {
            unregister(old);
        } else {
            try {
                slot.pending.store(false, detail::memory_order::relaxed);
                slot.target.store(&signal_target_, detail::memory_order::release);
                detail::install_signal_handler(sig, reg.saved);
            } catch (...) {
                slot.target.store(nullptr, detail::memory_order::release);
                n->release();
                throw;
            }
        }
        reg.handler = n;
    }

    // True if sig had a handler; the signal's earlier disposition is restored.
    bool remove_signal_handler(int sig) {
        if (!signals_ || sig <= 0 || sig >= detail::max_signal) return false;
        detail::callback_node* n = std::exchange(signals_[sig].handler, nullptr);
        if (!n) return false;
        detail::restore_signal_handler(sig, signals_[sig].saved);
        detail::signal_slots[sig].target.store(nullptr, detail::memory_order::release);
        unregister(n);
        return true;
    }

    // ---- errors and debugging ---------------------------------------------------------

    // Receives every exception that escapes a callback, and the debug-mode reports.
    // An empty handler restores default_exception_handler.
    void set_exception_handler(exception_handler h) noexcept {
        handler_ = std::move(h);
        ++handler_version_;
    }

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

private:
    static constexpr void require_readiness_backend() noexcept {
        static_assert(backend::readiness_backend<Backend>,
                      "add_reader/add_writer need a readiness backend (epoll, kqueue, poll, "
                      "select); a completion backend such as IOCP cannot wait for readiness: "
                      "use the sock_* operations or transports instead");
    }

    // A descriptor's reader and writer callbacks; the backend reports events with it.
    struct fd_watch {
        int fd;
        unsigned events = 0;
        detail::callback_node* reader = nullptr;
        detail::callback_node* writer = nullptr;
    };

    // Marks the loop as running on this thread for as long as run_forever runs.
    struct running_scope {
        explicit running_scope(basic_event_loop& l) : loop(l) {
            loop.running_ = true;
            detail::running_loop = &loop;
        }
        ~running_scope() {
            loop.running_ = false;
            loop.stopping_ = false;
            detail::running_loop = nullptr;
        }
        running_scope(const running_scope&) = delete;
        running_scope& operator=(const running_scope&) = delete;
        basic_event_loop& loop;
    };

    void run_once() {
        ++iterations_;
        // 1. Timeout: none if work is ready, else until the nearest timer, else forever.
        const std::chrono::nanoseconds timeout = poll_timeout();
        // 2. Poll. With work ready and nothing to watch the syscall can only return the
        //    wakeup descriptor, and the flags below already tell us that.
        if (timeout.count() != 0 || watched_count_ != 0) {
            backend_.wait(timeout, [this](void* data, unsigned events) { on_io(data, events); });
        }
        take_remote();
        take_signals();
        // 3. Timers.
        fire_due_timers();
        // 4. Exactly what is ready now; what these callbacks schedule runs next iteration.
        detail::callback_node* next = ready_.release_list();
        if (debug_) [[unlikely]] {
            run_timed(next);
            return;
        }
        while (next) {
            detail::callback_node* n = next;
            next = n->next;
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

    void on_io(void* data, unsigned events) noexcept {
        auto* w = static_cast<fd_watch*>(data);
        if ((events & backend::io_read) && w->reader) enqueue(w->reader);
        if ((events & backend::io_write) && w->writer) enqueue(w->writer);
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

    void take_signals() noexcept {
        // A plain load first: the exchange is a locked instruction, and this runs every time.
        if (!signals_ || !signal_target_.any_pending.load(detail::memory_order::relaxed) ||
            !signal_target_.any_pending.exchange(false, detail::memory_order::acq_rel)) {
            return;
        }
        for (int sig = 1; sig < detail::max_signal; ++sig) {
            if (signals_[sig].handler &&
                detail::signal_slots[sig].pending.exchange(false, detail::memory_order::acq_rel)) {
                enqueue(signals_[sig].handler);
            }
        }
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
    IOLOOP_NOINLINE void run_timed(detail::callback_node* next) noexcept {
        while (next) {
            detail::callback_node* n = next;
            next = n->next;
            if (!n->is_cancelled()) {
                const time_point start = time();
                try {
                    n->fn();
                } catch (...) {
                    report_exception(*n);
                }
                const duration took = time() - start;
                if (took >= slow_callback_) report_slow(*n, took);
            }
            finish(n);
        }
    }

    void report_slow(const detail::callback_node& n, duration took) noexcept {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.3f", double(took.count()) * 1e-9);
        std::string callback = describe(n);
        std::string message =
            detail::concat({"executing ", callback, " took ", seconds, " seconds"});
        call_exception_handler({std::move(message), nullptr, std::move(callback)});
    }

    IOLOOP_NOINLINE void report_exception(detail::callback_node& n) noexcept {
        call_exception_handler({"exception in callback", std::current_exception(), describe(n)});
    }

    // "main()::<lambda()> scheduled at hello.cpp:12"
    static std::string describe(const detail::callback_node& n) {
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

    // now + delay, rounded up to the clock's tick, saturating instead of overflowing. A
    // negative delay gives a deadline in the past, ordered like any other (asyncio does
    // the same): call_later(-5s) runs before an earlier call_later(0s).
    template <class Rep, class Period>
    static time_point deadline_after(time_point now, std::chrono::duration<Rep, Period> delay) {
        // Checked first in floating point, in clock ticks: computing the room left on
        // either side must not overflow either.
        constexpr double ticks_per_unit = double(Period::num) * duration::period::den /
                                          (double(Period::den) * duration::period::num);
        const double ticks = double(delay.count()) * ticks_per_unit;
        const double at = double(now.time_since_epoch().count());
        if (ticks >= double(std::numeric_limits<duration::rep>::max()) - at)
            return time_point::max();
        if (ticks <= double(std::numeric_limits<duration::rep>::min()) - at)
            return time_point::min();
        return now + std::chrono::ceil<duration>(delay);
    }

    void add_watch(int fd, unsigned which, detail::callback_node* n, const char* what) {
        n->refs.store(1, detail::memory_order::relaxed);  // the registration's
        try {
            check_open(what);
            if (!detail::is_open_fd(fd)) {
                detail::throw_errno(EBADF, detail::concat({what, ": fd ", detail::decimal(fd),
                                                           " is not an open descriptor"}));
            }
            const auto ufd = static_cast<std::size_t>(fd);
            if (ufd >= watches_.size()) watches_.resize(ufd + 1);
            if (!watches_[ufd]) watches_[ufd] = new fd_watch{fd};
        } catch (...) {
            n->release();
            throw;
        }
        fd_watch& w = *watches_[static_cast<std::size_t>(fd)];
        const unsigned before = w.events;
        try {
            backend_.watch(fd, before, before | which, &w);
        } catch (...) {
            if (before == 0) delete std::exchange(watches_[static_cast<std::size_t>(fd)], nullptr);
            n->release();
            throw;
        }
        if (before == 0) ++watched_count_;
        w.events = before | which;
        detail::callback_node*& slot = which == backend::io_read ? w.reader : w.writer;
        if (slot) unregister(slot);
        slot = n;
    }

    bool remove_watch(int fd, unsigned which) {
        if (fd < 0 || static_cast<std::size_t>(fd) >= watches_.size()) return false;
        fd_watch*& w = watches_[static_cast<std::size_t>(fd)];
        if (!w) return false;
        detail::callback_node*& slot = which == backend::io_read ? w->reader : w->writer;
        if (!slot) return false;
        const unsigned after = w->events & ~which;
        backend_.watch(fd, w->events, after, w);
        w->events = after;
        unregister(std::exchange(slot, nullptr));
        if (after == 0) {
            delete std::exchange(w, nullptr);
            --watched_count_;
        }
        return true;
    }

    // Cancelled timers are purged in bulk past this many (and past 3/4 of the queue).
    static constexpr std::size_t purge_threshold = 64;

    Backend backend_;
    detail::node_pool* pool_;  // owned; orphaned in the destructor
    detail::node_queue ready_;
    detail::timer_queue timers_;
    std::uint64_t timer_seq_ = 0;

    detail::pod_vector<fd_watch*> watches_;  // by fd; owned, freed when unwatched or closed
    std::size_t watched_count_ = 0;

    detail::remote_queue remote_;  // from call_soon_threadsafe

    detail::signal_target signal_target_;
    // By signal number; allocated by the first add_signal_handler.
    struct signal_registration {
        detail::callback_node* handler;
        detail::saved_signal_action saved;  // the disposition to restore
    };
    signal_registration* signals_ = nullptr;

    exception_handler handler_;
    std::uint64_t handler_version_ = 0;  // counts set_exception_handler calls
    duration slow_callback_ = std::chrono::milliseconds(100);
    std::uint64_t iterations_ = 0;
    bool debug_ = false;
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;
};

IOLOOP_NAMESPACE_END

#endif
