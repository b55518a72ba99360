// ioloop: what a backend must provide, stated once as a concept so a wrong backend fails
// with one clear line. A readiness backend watches descriptors and reports, for each
// ready one, the pointer it was given and which of io_read / io_write happened. Completion
// backends (IOCP, io_uring) report finished operations through the same wait().
#ifndef IOLOOP_BACKEND_CONCEPT_HPP
#define IOLOOP_BACKEND_CONCEPT_HPP

#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <string_view>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN
namespace backend {

// Interest and readiness bits. An error or hang-up on a descriptor reports both, so
// whichever callback is registered runs and sees the error from its own read or write.
inline constexpr unsigned io_read = 1;
inline constexpr unsigned io_write = 2;

// Stands for the loop's event callback in the concept: void(void* data, unsigned events).
struct event_sink_archetype {
    void operator()(void*, unsigned) const noexcept {}
};

template <class B>
concept event_backend = requires(B& b, std::chrono::nanoseconds timeout,
                                 event_sink_archetype sink) {
    requires std::is_convertible_v<decltype(B::name), std::string_view>;
    // Blocks up to `timeout` (negative: forever, zero: just look), then calls sink for
    // every event. Returns early, with no event, after interrupt().
    b.wait(timeout, sink);
    // Makes a wait() in progress, or the next one, return. Thread- and signal-safe.
    { b.interrupt() } noexcept;
};

template <class B>
concept readiness_backend = event_backend<B> && requires(B& b, native_socket fd,
                                                         unsigned events, void* data) {
    // Changes the interest in `fd` from `old_events` to `new_events` (0 means not watched),
    // reporting events with `data`. Throws std::system_error for an fd it cannot watch.
    b.watch(fd, events, events, data);
};

template <class B>
concept completion_backend = event_backend<B> && requires(B& b, native_descriptor h) {
    // Sends the completions of h's operations (a socket's or a pipe's handle) to this
    // backend's wait(), which reports each to the detail::overlapped_op (an io_watcher)
    // that started it.
    b.associate(h);
};

// Optional: a backend that reports signals itself (kqueue's EVFILT_SIGNAL). watch_signal
// takes `sig` over: it reports each arrival with `data` (io_read), sets the disposition it
// needs and saves the one before in `saved`; or it returns false, doing nothing, for a
// signal it leaves to the loop's sigaction handler. unwatch_signal gives `saved` back.
template <class B, class Saved>
concept signal_backend = requires(B& b, int sig, void* data, Saved& saved) {
    requires std::is_convertible_v<decltype(b.watch_signal(sig, data, saved)), bool>;
    { b.unwatch_signal(sig, saved) } noexcept;
};

// Optional: a backend that learns of a child process's exit itself (kqueue's EVFILT_PROC).
// watch_process reports the exit of `pid` once, with `data` (io_read), and then forgets it;
// false if it cannot watch that child (the caller then finds another way).
// unwatch_process forgets it before that.
template <class B>
concept process_backend = requires(B& b, int pid, void* data) {
    requires std::is_convertible_v<decltype(b.watch_process(pid, data)), bool>;
    { b.unwatch_process(pid) } noexcept;
};

}  // namespace backend
IOLOOP_NAMESPACE_END

#endif
