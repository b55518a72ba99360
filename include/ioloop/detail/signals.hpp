// ioloop: the process-wide side of add_signal_handler. A POSIX signal handler may only
// touch lock-free atomics and async-signal-safe calls, so it marks the signal pending and
// wakes the loop that registered it; the loop runs the user's callback on its own thread.
// Windows has no POSIX signals: there Ctrl+C and Ctrl+Break arrive as console control
// events (SetConsoleCtrlHandler) and count as SIGINT and SIGBREAK, and the C runtime's
// signal() carries the rest of what it supports (raise(SIGTERM), say).
#ifndef IOLOOP_DETAIL_SIGNALS_HPP
#define IOLOOP_DETAIL_SIGNALS_HPP

#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <cerrno>
#include <csignal>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What the signal handler may reach of a loop: a flag and a signal-safe wakeup.
struct signal_target {
    atomic<bool> any_pending{false};
    void (*wake)(void* context) noexcept = nullptr;
    void* context = nullptr;
};

// Signals are numbered below NSIG on every system we know; 65 covers Linux's real-time
// signals too.
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

#if defined(IOLOOP_POSIX)

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

#elif defined(IOLOOP_WINDOWS)

using saved_signal_action = void (*)(int);

// Whether on_console_event is registered; once it is, it stays for the process.
inline atomic<bool> console_handler_on{false};

// The C runtime resets a signal to SIG_DFL before running its handler: take it again.
inline void on_crt_signal(int sig) {
    std::signal(sig, &on_crt_signal);
    on_signal(sig);
}

// Runs on a thread the system starts for the event. TRUE: handled, so the process lives.
inline BOOL WINAPI on_console_event(DWORD event) {
    const int sig = event == CTRL_C_EVENT ? SIGINT : event == CTRL_BREAK_EVENT ? SIGBREAK : 0;
    if (sig == 0 || !signal_slots[sig].target.load(memory_order::acquire)) return FALSE;
    on_signal(sig);
    return TRUE;
}

inline void install_signal_handler(int sig, saved_signal_action& saved) {
    saved = std::signal(sig, &on_crt_signal);
    if (saved == SIG_ERR) {
        throw std::system_error(
            std::make_error_code(std::errc::invalid_argument),
            concat({"add_signal_handler: signal ", decimal(sig),
                    " does not exist on Windows (SIGINT, SIGBREAK, SIGTERM, SIGABRT, SIGFPE, "
                    "SIGILL and SIGSEGV do)"}));
    }
    // Ctrl+C and Ctrl+Break: registering the same handler twice would call it twice.
    if ((sig == SIGINT || sig == SIGBREAK) &&
        !console_handler_on.exchange(true, memory_order::acq_rel) &&
        !::SetConsoleCtrlHandler(&on_console_event, TRUE)) {
        const unsigned long err = ::GetLastError();
        console_handler_on.store(false, memory_order::release);
        std::signal(sig, saved);
        throw_system_error(err, "add_signal_handler: SetConsoleCtrlHandler");
    }
}

inline void restore_signal_handler(int sig, const saved_signal_action& saved) noexcept {
    std::signal(sig, saved);
    // The console handler stays: with no loop on the signal it passes the event on.
}

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
