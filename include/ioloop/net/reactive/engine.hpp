// ioloop: reactive_engine<Backend>, the I/O engine of the readiness backends (epoll,
// kqueue, poll, select): try the call, and watch the descriptor only when it would block.
// It keeps the loop's table of watched descriptors (add_reader / add_writer and every
// one-shot wait) and the count of what is watched, and makes the sock_* operations'
// calls. Its transports, connect and listeners are in net/reactive/ops.hpp.
#ifndef IOLOOP_NET_REACTIVE_ENGINE_HPP
#define IOLOOP_NET_REACTIVE_ENGINE_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/file_io.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/pod_vector.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/fd_ready.hpp"
#include "ioloop/net/io_engine.hpp"
#include "ioloop/net/net_access.hpp"
#include "ioloop/net/reactive/ops.hpp"
#include "ioloop/net/socket.hpp"

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

[[noreturn]] inline void throw_sock_error(int err, std::string_view op, native_socket fd) {
    throw_system_error(err, concat({op, " on socket ", decimal(fd)}));
}

template <class Backend>
class reactive_engine final : public io_engine {
public:
    reactive_engine(loop_base& loop, Backend& backend) noexcept
        : io_engine(io_family::readiness), loop_(loop), backend_(backend) {}
    ~reactive_engine() { free_unwatched(); }

    // ---- the loop's hooks (basic_event_loop calls these directly) ----------------------

    // Something is watched: the poll step must ask the backend.
    bool waiting() const noexcept { return watched_count_ != 0; }
    void event_arrived() noexcept {}
    // A registration removed during the poll batch is freed only now: until then an event
    // still to come in that batch may name it (it is empty and ignores the event).
    void after_poll() noexcept { free_unwatched(); }
    // Closing: every descriptor of the table is unwatched; its callbacks go to `dropped`.
    void close_watches(node_queue& dropped) noexcept {
        for (fd_watch*& w : watches_) {
            if (!w) continue;
            try {
                backend_.watch(w->fd, w->events, 0, static_cast<io_watcher*>(w));
            } catch (...) {
                // A descriptor closed under its watch: the backend has forgotten it.
            }
            if (w->reader) dropped.push(w->reader);
            if (w->writer) dropped.push(w->writer);
            delete std::exchange(w, nullptr);
        }
        watched_count_ = 0;
        free_unwatched();
    }
    // No operation is ever in flight: a readiness backend's calls are done when they return.
    void finish_operations() noexcept {}

    // ---- io_engine -----------------------------------------------------------------------

    void add_watch(native_socket fd, unsigned which, callback_node* n, const char* what,
                   bool replaces) override {
        n->refs.store(1, memory_order::relaxed);  // the registration's
        try {
            net_access::check_open(loop_, what);
            if (!is_open_fd(fd)) {
                throw_errno(EBADF,
                            concat({what, ": fd ", decimal(fd), " is not an open descriptor"}));
            }
            const std::size_t ufd = fd_index(fd);
            if (watched_by_net(ufd)) refuse_watched(fd, what, "a transport or a server");
            if (!replaces && ufd < watches_.size() && watches_[ufd] &&
                (which == backend::io_read ? watches_[ufd]->reader : watches_[ufd]->writer)) {
                refuse_watched(fd, what, "add_reader/add_writer or another waiting task");
            }
            if (ufd >= watches_.size()) watches_.resize(ufd + 1);
            if (!watches_[ufd]) watches_[ufd] = new fd_watch(loop_, fd);
        } catch (...) {
            n->release();
            throw;
        }
        fd_watch& w = *watches_[fd_index(fd)];
        const unsigned before = w.events;
        try {
            backend_.watch(fd, before, before | which, static_cast<io_watcher*>(&w));
        } catch (...) {
            if (before == 0) delete std::exchange(watches_[fd_index(fd)], nullptr);
            n->release();
            throw;
        }
        if (before == 0) ++watched_count_;
        w.events = before | which;
        callback_node*& slot = which == backend::io_read ? w.reader : w.writer;
        if (slot) net_access::unregister(slot);
        slot = n;
    }

    bool remove_watch(native_socket fd, unsigned which) override {
        if (fd_index(fd) >= watches_.size()) return false;  // a negative fd too
        fd_watch*& w = watches_[fd_index(fd)];
        if (!w) return false;
        callback_node*& slot = which == backend::io_read ? w->reader : w->writer;
        if (!slot) return false;
        const unsigned after = w->events & ~which;
        backend_.watch(fd, w->events, after, static_cast<io_watcher*>(w));
        w->events = after;
        net_access::unregister(std::exchange(slot, nullptr));
        if (after == 0) {
            unwatched_.push_back(std::exchange(w, nullptr));  // freed after the poll step
            --watched_count_;
        }
        return true;
    }

    // A transport or a listener watches its own descriptor, outside the table above; one
    // that something else of this loop watches already is refused (see add_watch).
    void watch(native_socket fd, unsigned old_events, unsigned new_events,
               io_watcher& w) override {
        const std::size_t ufd = fd_index(fd);
        if (old_events != 0 && new_events == 0) {
            // Forgotten even if the backend fails: the caller lets go of the descriptor.
            net_watched_[ufd] = 0;
            --watched_count_;
        } else if (old_events == 0 && new_events != 0) {
            if (ufd < watches_.size() && watches_[ufd]) {
                refuse_watched(fd, "watching", "add_reader/add_writer or a waiting task");
            }
            if (watched_by_net(ufd)) refuse_watched(fd, "watching", "a transport or a server");
            if (ufd >= net_watched_.size()) net_watched_.resize(ufd + 1, 0);
            backend_.watch(fd, old_events, new_events, &w);
            net_watched_[ufd] = 1;
            ++watched_count_;
            return;
        }
        backend_.watch(fd, old_events, new_events, &w);
    }

    bool watch_process(int pid, io_watcher& w) noexcept override {
        if constexpr (backend::process_backend<Backend>) {
            if (!backend_.watch_process(pid, static_cast<io_watcher*>(&w))) return false;
            ++watched_count_;  // the poll step must ask the backend
            return true;
        } else {
            (void)pid;
            (void)w;
            return false;
        }
    }
    void unwatch_process(int pid, bool reported) noexcept override {
        if constexpr (backend::process_backend<Backend>) {
            if (!reported) backend_.unwatch_process(pid);
            --watched_count_;
        } else {
            (void)pid;
            (void)reported;
        }
    }

    // ---- the sock_* operations ---------------------------------------------------------

    // loop.sock_sendfile may use sendfile(2) (Linux): it writes to a non-blocking socket
    // and says EAGAIN like a send.
    static constexpr bool native_sendfile = native_sendfile_available;

    coro<void> sock_connect(loop_base& loop, socket& s, endpoint to) {
        return reactive_ops::connect(loop, s, std::move(to), "sock_connect");
    }

    // Each tries its syscall first, as asyncio does: data that is already there costs no
    // loop iteration. Only EAGAIN (WSAEWOULDBLOCK) makes the task wait, then it retries.

    coro<std::size_t> sock_recv_into(loop_base& loop, socket& s, std::span<std::byte> buf) {
        for (;;) {
            auto* into = reinterpret_cast<char*>(buf.data());
            const std::ptrdiff_t n = socket_recv(s.fd(), into, buf.size());
            if (n >= 0) co_return static_cast<std::size_t>(n);
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_recv", s.fd());
            co_await fd_ready(loop, s.fd(), backend::io_read, "sock_recv");
        }
    }

    coro<void> sock_sendall(loop_base& loop, socket& s, std::string_view data) {
        while (!data.empty()) {
            const std::ptrdiff_t n = socket_send(s.fd(), data.data(), data.size());
            if (n >= 0) {
                // A partial send: the kernel's buffer is full; the rest goes once it drains.
                data.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_sendall", s.fd());
            co_await fd_ready(loop, s.fd(), backend::io_write, "sock_sendall");
        }
    }

    coro<std::pair<socket, endpoint>> sock_accept(loop_base& loop, socket& listener) {
        for (;;) {
            sockaddr_storage addr{};
            socklen_t size = 0;
            socket conn = socket::accept_on(listener.fd(), addr, size);
            if (conn.is_open()) {
                endpoint peer = size == 0 ? endpoint()
                                          : endpoint::from_native(
                                                reinterpret_cast<const sockaddr*>(&addr), size);
                co_return std::pair<socket, endpoint>(std::move(conn), std::move(peer));
            }
            const int err = last_socket_error();
            // The client gave up before we took its connection; take the next.
            if (accept_again(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_accept", listener.fd());
            co_await fd_ready(loop, listener.fd(), backend::io_read, "sock_accept");
        }
    }

    coro<std::pair<std::size_t, endpoint>> sock_recvfrom_into(loop_base& loop, socket& s,
                                                             std::span<std::byte> buf) {
        for (;;) {
            sockaddr_storage addr{};
            socklen_t size = sizeof addr;
            auto* native = reinterpret_cast<sockaddr*>(&addr);
            auto* into = reinterpret_cast<char*>(buf.data());
            const std::ptrdiff_t n = socket_recvfrom(s.fd(), into, buf.size(), native, &size);
            if (n >= 0) {
                // No address (a connected stream socket, an unnamed Unix peer on some
                // systems): the sender is unspecified rather than an error.
                endpoint from = size == 0 ? endpoint() : endpoint::from_native(native, size);
                co_return std::pair<std::size_t, endpoint>(static_cast<std::size_t>(n),
                                                           std::move(from));
            }
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) throw_sock_error(err, "sock_recvfrom", s.fd());
            co_await fd_ready(loop, s.fd(), backend::io_read, "sock_recvfrom");
        }
    }

    coro<std::size_t> sock_sendto(loop_base& loop, socket& s, std::string_view data,
                                  endpoint to) {
        for (;;) {
            const std::ptrdiff_t n = socket_sendto(s.fd(), data.data(), data.size(),
                                                   to.native(), to.native_size());
            if (n >= 0) co_return static_cast<std::size_t>(n);
            const int err = last_socket_error();
            if (interrupted(err)) continue;
            if (!would_block(err)) {
                throw_system_error(err, concat({"sock_sendto ", to.to_string(), " on socket ",
                                                decimal(s.fd())}));
            }
            co_await fd_ready(loop, s.fd(), backend::io_write, "sock_sendto");
        }
    }

private:
    // A descriptor's reader and writer callbacks; the backend reports events with it.
    struct fd_watch final : io_watcher {
        fd_watch(loop_base& l, native_socket f) noexcept : loop(l), fd(f) {}

        void on_io(unsigned ready) noexcept override {
            if ((ready & backend::io_read) && reader) net_access::enqueue(loop, reader);
            if ((ready & backend::io_write) && writer) net_access::enqueue(loop, writer);
        }

        loop_base& loop;
        native_socket fd;
        unsigned events = 0;
        callback_node* reader = nullptr;
        callback_node* writer = nullptr;
    };

    bool watched_by_net(std::size_t ufd) const noexcept {
        return ufd < net_watched_.size() && net_watched_[ufd] != 0;
    }

    [[noreturn]] static void refuse_watched(native_socket fd, const char* what, const char* by) {
        throw_errno(EEXIST, concat({what, ": fd ", decimal(fd), " is watched already by ", by,
                                    " of this loop"}));
    }

    void free_unwatched() noexcept {
        for (fd_watch* w : unwatched_) delete w;
        unwatched_.clear();
    }

    loop_base& loop_;
    Backend& backend_;
    pod_vector<fd_watch*> watches_;  // by fd_index; owned, freed when unwatched or closed
    std::size_t watched_count_ = 0;  // descriptors watched, in the table or not
    pod_vector<fd_watch*> unwatched_;  // removed; freed after the next poll step
    pod_vector<unsigned char> net_watched_;  // by fd_index: 1 while a transport or a server
                                             // watches it (watch)
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
