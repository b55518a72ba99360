// ioloop: the process-wide side of add_signal_handler. A POSIX signal handler may only
// touch lock-free atomics and async-signal-safe calls, so it marks the signal pending and
// wakes the loop that registered it; the loop runs the user's callback on its own thread.
#ifndef IOLOOP_DETAIL_SIGNALS_HPP
#define IOLOOP_DETAIL_SIGNALS_HPP

#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"

#if defined(IOLOOP_POSIX)

#include <cerrno>

#include <signal.h>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What the signal handler may reach of a loop: a flag and a signal-safe wakeup.
struct signal_target {
    atomic<bool> any_pending{false};
    void (*wake)(void* context) noexcept = nullptr;
    void* context = nullptr;
};

// Signals are numbered below NSIG on every POSIX system we know; 65 covers Linux's
// real-time signals too.
#if defined(NSIG)
inline constexpr int max_signal = NSIG;
#else
inline constexpr int max_signal = 65;
#endif

struct signal_slot {
    atomic<bool> pending{false};
    atomic<signal_target*> target{nullptr};
};

inline signal_slot signal_slots[max_signal];

// Installed with sigaction for every signal a loop handles.
inline void on_signal(int sig) {
    if (sig <= 0 || sig >= max_signal) return;
    signal_slot& slot = signal_slots[sig];
    slot.pending.store(true, memory_order::release);
    if (signal_target* t = slot.target.load(memory_order::acquire)) {
        t->any_pending.store(true, memory_order::release);
        t->wake(t->context);
    }
}

// The disposition a signal had before a loop took it, restored when the loop lets go.
using saved_signal_action = struct sigaction;

// Routes `sig` to on_signal; SA_RESTART so that other threads' blocking calls are not
// interrupted by a signal only the loop cares about.
inline void install_signal_handler(int sig, saved_signal_action& saved) {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (::sigaction(sig, &sa, &saved) == -1) {
        throw_errno(errno, concat({"add_signal_handler: sigaction(", decimal(sig), ")"}));
    }
}

inline void restore_signal_handler(int sig, const saved_signal_action& saved) noexcept {
    ::sigaction(sig, &saved, nullptr);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX
#endif
