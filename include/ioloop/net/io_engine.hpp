// ioloop: io_engine, a loop's I/O state, kept by the engine of its backend's family. A
// readiness backend (epoll, kqueue, poll, select) tells when a descriptor is ready, and
// the family's code then makes the call (net/reactive/); a completion backend (IOCP)
// runs overlapped operations whose buffers the kernel owns until they complete
// (net/iocp/). Everything above (transports' protocol-facing rules, servers,
// connections, streams) is written once, and reaches its family's code through
// net/engines.hpp.
//
// Each basic_event_loop<Backend> owns the engine of Backend's family, chosen in one place
// (net/engines.hpp), and loop_base keeps a pointer to it: its one member for I/O. A third
// family (io_uring) is one more engine.
#ifndef IOLOOP_NET_IO_ENGINE_HPP
#define IOLOOP_NET_IO_ENGINE_HPP

#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <cstddef>
#include <memory>
#include <span>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The backend families: readiness (net/reactive/) and completion (net/iocp/).
enum class io_family : unsigned char { readiness, completion };

class io_engine {
public:
    // How much one read takes at most: libuv's 64 KiB.
    static constexpr std::size_t read_buffer_size = 64 * 1024;

    io_engine(const io_engine&) = delete;
    io_engine& operator=(const io_engine&) = delete;

    // Which family's code serves this loop: the networking layer asks in one place
    // (net/engines.hpp, with_family).
    io_family family() const noexcept { return family_; }

    // Readiness, for what waits on a descriptor it does not own (add_reader, wait_readable,
    // the sock_* operations) or watches its own (the readiness transports): runs `n` each
    // time fd is readable (io_read) or writable (io_write). add_reader's kind `replaces`
    // an earlier one; a one-shot wait does not, and is refused (errc::file_exists) like
    // a descriptor a transport or a server watches: a backend keeps one registration per
    // descriptor, and a second would take the first one's events. Takes the node's one
    // reference, also when it throws. A completion engine cannot wait for readiness and
    // says so (errc::operation_not_supported).
    virtual void add_watch(native_socket fd, unsigned which, callback_node* n, const char* what,
                           bool replaces) = 0;
    // True if fd had one for `which`.
    virtual bool remove_watch(native_socket fd, unsigned which) = 0;
    // A descriptor the networking layer owns, registered for w (old -> now; 0 unwatches).
    virtual void watch(native_socket fd, unsigned old_events, unsigned new_events,
                       io_watcher& w) = 0;
    // A child's exit reported to w (io_read, once) by the backend itself, where it can
    // (backend::process_backend: kqueue's EVFILT_PROC); false elsewhere.
    virtual bool watch_process(int pid, io_watcher& w) noexcept {
        (void)pid;
        (void)w;
        return false;
    }
    // After the exit was reported (`reported`: the backend dropped the event then), or to
    // give up watching before.
    virtual void unwatch_process(int pid, bool reported) noexcept {
        (void)pid;
        (void)reported;
    }

    // ---- what every family keeps alike ------------------------------------------------

    // Where every transport of the loop reads into: an idle connection holds no buffer.
    std::span<char> read_buffer() {
        if (!read_buffer_) read_buffer_ = std::make_unique<char[]>(read_buffer_size);
        return {read_buffer_.get(), read_buffer_size};
    }

    // The open transports and servers, closed with the loop.
    void add_resource(loop_resource& r) noexcept { resources_.add(r); }
    void remove_resource(loop_resource& r) noexcept { resources_.remove(r); }
    void close_resources() noexcept { resources_.close_all(); }

protected:
    explicit io_engine(io_family f) noexcept : family_(f) {}
    ~io_engine() = default;

private:
    io_family family_;
    resource_list resources_;
    std::unique_ptr<char[]> read_buffer_;  // made on first use
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
