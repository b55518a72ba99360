// ioloop: basic_event_loop<Backend>, asyncio's event loop: loop_base (the queues, the
// timers, the tasks) plus a backend. One iteration (run_once) is the four steps of
// DESIGN.md: compute the poll timeout, poll, move due timers to the ready queue, run
// exactly the callbacks that were ready when the step began.
#ifndef IOLOOP_EVENT_LOOP_HPP
#define IOLOOP_EVENT_LOOP_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/pod_vector.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/signals.hpp"
#include "ioloop/detail/source_location.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/loop_base.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class socket;    // net/socket.hpp
class endpoint;  // net/endpoint.hpp

namespace detail {
// The I/O engine of Backend's family: how transports, servers and the sock_* operations
// move bytes on it. Chosen in net/engines.hpp, the one place that knows the families.
template <class Backend>
struct engine_of;
}  // namespace detail

template <class Backend>
class basic_event_loop : public loop_base {
    static_assert(
        backend::event_backend<Backend>,
        "basic_event_loop<Backend>: Backend does not model ioloop::backend::event_backend");

public:
    using backend_type = Backend;

    basic_event_loop()
        : loop_base(
              [](loop_base* self) noexcept {
                  static_cast<basic_event_loop*>(self)->backend_.interrupt();
              },
              &detail::backend_tag<Backend>) {
        signal_target_.wake = [](void* b) noexcept { static_cast<Backend*>(b)->interrupt(); };
        signal_target_.context = &backend_;
        io_ = &engine_;
    }

    ~basic_event_loop() {
        if (!closed_) close();
        delete[] signals_;
    }

    // ---- running ----------------------------------------------------------------------

    // Runs iterations until stop(). A stop() made before the call makes it run one.
    void run_forever() {
        check_can_run();
        running_scope scope(*this);
        do {
            run_once();
        } while (!stopping_);
    }

    // Runs the loop until the task (or the coroutine, made a task) is done; returns its
    // result or throws its exception (defined with the coroutine front end).
    template <class Awaitable>
    decltype(auto) run_until_complete(Awaitable&& work);

    // Drops every pending callback, timer, watched descriptor and signal handler, and
    // destroys the coroutines of unfinished tasks. A closed loop cannot schedule or run
    // anything. Closing twice does nothing.
    void close() {
        if (running_) throw invalid_state_error("close: the event loop is running");
        if (closed_) return;
        // Transports and servers first: they unwatch their descriptors from the backend.
        engine_.close_resources();
        detail::node_queue dropped;
        if (signals_) {
            for (int sig = 1; sig < detail::max_signal; ++sig) remove_signal_handler(sig);
        }
        engine_.close_watches(dropped);  // add_reader's and add_writer's
        close_queues(dropped);
        // A completion backend: the kernel owns the memory of each operation in flight
        // until its completion comes, cancelled or not.
        engine_.finish_operations();
    }

    // ---- descriptors (readiness backends only) ----------------------------------------

    // Runs fn on every iteration while fd is readable; replaces an earlier reader of fd.
    template <class F>
    void add_reader(native_socket fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        engine_.add_watch(fd, backend::io_read, make_persistent_node(std::forward<F>(fn), where),
                          "add_reader", true);
    }

    // True if fd had a reader.
    bool remove_reader(native_socket fd) {
        require_readiness_backend();
        return engine_.remove_watch(fd, backend::io_read);
    }

    template <class F>
    void add_writer(native_socket fd, F&& fn,
                    detail::source_location where = detail::source_location::current()) {
        require_readiness_backend();
        engine_.add_watch(fd, backend::io_write, make_persistent_node(std::forward<F>(fn), where),
                          "add_writer", true);
    }

    bool remove_writer(native_socket fd) {
        require_readiness_backend();
        return engine_.remove_watch(fd, backend::io_write);
    }

    // ---- awaitable socket operations (readiness backends; defined in net/sock_ops.hpp) --
    // Each tries the syscall first and waits for readiness only on EAGAIN. The socket (and
    // the bytes a view names) must outlive the await.

    // Up to max_bytes from s; an empty string at EOF.
    coro<std::string> sock_recv(socket& s, std::size_t max_bytes);
    // Up to buf.size() bytes into buf; how many (0 at EOF).
    coro<std::size_t> sock_recv_into(socket& s, std::span<std::byte> buf);
    // All of data, however many sends it takes; no SIGPIPE, a closed peer is a system_error.
    coro<void> sock_sendall(socket& s, std::string_view data);
    // The next connection on a listening socket (non-blocking, close-on-exec) and its peer.
    coro<std::pair<socket, endpoint>> sock_accept(socket& listener);
    // Connects s to `to`; a refusal is a system_error (errc::connection_refused).
    coro<void> sock_connect(socket& s, endpoint to);
    // One datagram (up to max_bytes of it) and its sender.
    coro<std::pair<std::string, endpoint>> sock_recvfrom(socket& s, std::size_t max_bytes);
    // One datagram into buf (what does not fit is lost, as recvfrom's) and its sender: the
    // byte count and the address (asyncio's sock_recvfrom_into).
    coro<std::pair<std::size_t, endpoint>> sock_recvfrom_into(socket& s, std::span<std::byte> buf);
    // One datagram to `to`; the bytes sent.
    coro<std::size_t> sock_sendto(socket& s, std::string_view data, endpoint to);
    // A file's bytes to a connected stream socket (asyncio's loop.sock_sendfile): sendfile(2)
    // on Linux's readiness backends, else (fallback) reads through the executor and sends;
    // count < 0 to the end of the file. The count sent; the file's position offset + sent
    // after. Defined in net/sendfile.hpp.
    coro<std::size_t> sock_sendfile(socket& s, file& f, long long offset = 0,
                                    long long count = -1, bool fallback = true);

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
                take_signal(sig, reg);
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
        release_signal(sig, signals_[sig]);
        detail::signal_slots[sig].target.store(nullptr, detail::memory_order::release);
        unregister(n);
        return true;
    }

private:
    static constexpr void require_readiness_backend() noexcept {
        static_assert(backend::readiness_backend<Backend>,
                      "add_reader/add_writer need a readiness backend (epoll, kqueue, poll, "
                      "select); a completion backend such as IOCP cannot wait for readiness: "
                      "use the sock_* operations or transports instead");
    }

    void run_once() {
        ++iterations_;
        // 1. Timeout: none if work is ready, else until the nearest timer, else forever.
        const std::chrono::nanoseconds timeout = poll_timeout();
        // 2. Poll. With work ready and nothing to watch the syscall can only return the
        //    wakeup descriptor, and the flags below already tell us that.
        if (timeout.count() != 0 || engine_.waiting()) {
            // Transports run their protocols right here, and a protocol may remove a
            // reader whose event is still to come in this batch: so what is unwatched
            // during the batch is freed only after it (engine_.after_poll).
            backend_.wait(timeout, [this](void* data, unsigned events) noexcept {
                auto* w = static_cast<detail::io_watcher*>(data);
                engine_.event_arrived();  // a completion backend: one operation fewer
                if (debug_) [[unlikely]] {
                    run_timed_io(*w, events);
                } else {
                    w->on_io(events);
                }
            });
        }
        engine_.after_poll();
        take_remote();
        take_signals();
        // 3. Timers.
        fire_due_timers();
        // 4. Exactly what is ready now.
        run_ready();
    }

    // An I/O event in debug mode: timed like a callback, reported if slow.
    IOLOOP_NOINLINE void run_timed_io(detail::io_watcher& w, unsigned events) noexcept {
        const time_point start = time();
        w.on_io(events);
        const duration took = time() - start;
        if (took < slow_callback_) return;
        try {
            report_slow(w.describe(), took);
        } catch (...) {
        }
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

    Backend backend_;
    typename detail::engine_of<Backend>::type engine_{*this, backend_};

    detail::signal_target signal_target_;
    // A signal's handler and its disposition before. A backend that watches signals itself
    // (backend::signal_backend) reports an arrival to the registration: it queues the handler.
    struct signal_registration final : detail::io_watcher {
        void on_io(unsigned) noexcept override {
            if (handler) loop->enqueue(handler);
        }
        basic_event_loop* loop = nullptr;
        detail::callback_node* handler = nullptr;
        detail::saved_signal_action saved{};  // the disposition to restore
        bool by_backend = false;              // the backend reports it: no handler installed
    };

    // Routes sig to this loop: as events of the backend where it has them (it sets the
    // disposition it needs, SIG_IGN for kqueue: no handler runs in signal context), else
    // through a sigaction handler that marks the signal pending and wakes the backend.
    void take_signal(int sig, signal_registration& reg) {
        reg.loop = this;
        if constexpr (backend::signal_backend<Backend, detail::saved_signal_action>) {
            reg.by_backend =
                backend_.watch_signal(sig, static_cast<detail::io_watcher*>(&reg), reg.saved);
            if (reg.by_backend) return;
        }
        detail::install_signal_handler(sig, reg.saved);
    }

    void release_signal(int sig, signal_registration& reg) noexcept {
        if constexpr (backend::signal_backend<Backend, detail::saved_signal_action>) {
            if (std::exchange(reg.by_backend, false)) {
                backend_.unwatch_signal(sig, reg.saved);
                return;
            }
        }
        detail::restore_signal_handler(sig, reg.saved);
    }

    // By signal number; allocated by the first add_signal_handler.
    signal_registration* signals_ = nullptr;
};

IOLOOP_NAMESPACE_END

#endif
