// ioloop: platform detection, the one backend selection ladder, and the ABI namespace.
#ifndef IOLOOP_DETAIL_CONFIG_HPP
#define IOLOOP_DETAIL_CONFIG_HPP

#define IOLOOP_VERSION_MAJOR 0
#define IOLOOP_VERSION_MINOR 1
#define IOLOOP_VERSION_PATCH 0

#if defined(__unix__) || defined(__unix) || (defined(__APPLE__) && defined(__MACH__))
#define IOLOOP_POSIX 1
#endif
#if defined(_WIN32)
#define IOLOOP_WINDOWS 1
#endif

// One ladder per backend: available unless disabled, detected from the platform.
#if !defined(IOLOOP_HAS_EPOLL) && !defined(IOLOOP_DISABLE_EPOLL)
#if defined(__linux__)
#define IOLOOP_HAS_EPOLL 1
#endif
#endif

// kqueue: the BSDs and macOS; a build may predefine IOLOOP_HAS_KQUEUE elsewhere (the
// tests do on Linux, over tests/kqueue_emulation).
#if !defined(IOLOOP_HAS_KQUEUE) && !defined(IOLOOP_DISABLE_KQUEUE)
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__)
#define IOLOOP_HAS_KQUEUE 1
#endif
#endif

#if !defined(IOLOOP_HAS_POLL) && !defined(IOLOOP_DISABLE_POLL)
#if defined(IOLOOP_POSIX)
#define IOLOOP_HAS_POLL 1
#endif
#endif

#if !defined(IOLOOP_HAS_SELECT) && !defined(IOLOOP_DISABLE_SELECT)
#if defined(IOLOOP_POSIX) || defined(IOLOOP_WINDOWS)
#define IOLOOP_HAS_SELECT 1
#endif
#endif

#if !defined(IOLOOP_HAS_IOCP) && !defined(IOLOOP_DISABLE_IOCP)
#if defined(IOLOOP_WINDOWS)
#define IOLOOP_HAS_IOCP 1
#endif
#endif

// The default backend: an explicit IOLOOP_BACKEND_* wins, else the best one detected.
#if defined(IOLOOP_BACKEND_EPOLL)
#if !defined(IOLOOP_HAS_EPOLL)
#error "IOLOOP_BACKEND_EPOLL: epoll is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND epoll
#elif defined(IOLOOP_BACKEND_KQUEUE)
#if !defined(IOLOOP_HAS_KQUEUE)
#error "IOLOOP_BACKEND_KQUEUE: kqueue is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND kqueue
#elif defined(IOLOOP_BACKEND_POLL)
#if !defined(IOLOOP_HAS_POLL)
#error "IOLOOP_BACKEND_POLL: poll is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND poll
#elif defined(IOLOOP_BACKEND_SELECT)
#if !defined(IOLOOP_HAS_SELECT)
#error "IOLOOP_BACKEND_SELECT: select is not available on this platform"
#endif
#define IOLOOP_DEFAULT_BACKEND select
#elif defined(IOLOOP_BACKEND_IOCP)
#if !defined(IOLOOP_HAS_IOCP)
#error "IOLOOP_BACKEND_IOCP: IOCP exists on Windows only"
#endif
#define IOLOOP_DEFAULT_BACKEND iocp
#elif defined(IOLOOP_BACKEND_IO_URING)
#error "this ioloop version has no io_uring backend yet"
#elif defined(IOLOOP_HAS_EPOLL)
#define IOLOOP_DEFAULT_BACKEND epoll
#elif defined(IOLOOP_HAS_KQUEUE)  // after epoll: the default only where it is native
#define IOLOOP_DEFAULT_BACKEND kqueue
#elif defined(IOLOOP_HAS_IOCP)
#define IOLOOP_DEFAULT_BACKEND iocp
#elif defined(IOLOOP_HAS_POLL)
#define IOLOOP_DEFAULT_BACKEND poll
#elif defined(IOLOOP_HAS_SELECT)
#define IOLOOP_DEFAULT_BACKEND select
#else
#error "ioloop: no backend is available on this platform"
#endif

// The internal macros (IOLOOP_NAMESPACE_BEGIN, IOLOOP_NOINLINE, ...): undefined again at
// the end of <ioloop/ioloop.hpp>, and defined again by <ioloop/ssl.hpp> for its own part.
#include "ioloop/detail/macro_scope.hpp"

#endif
