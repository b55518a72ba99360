// ioloop: starting a child process and learning how it ended (POSIX): the names
// detail/spawn.hpp lists, for the subprocess layer (subprocess/).
//
// Why posix_spawnp and not fork or vfork + exec: glibc's posix_spawn is clone(CLONE_VM |
// CLONE_VFORK) + exec, so it copies no page tables however large the parent is (what makes
// fork slow), it runs no code of ours between clone and exec (where vfork's rules forbid
// almost everything), and it returns exec's error to the caller: a program that cannot start
// is an error of this call, never a child that exits 127 (glibc >= 2.24, macOS, the BSDs).
//
// Descriptors: every descriptor ioloop opens is close-on-exec; posix_spawn_file_actions_
// addclosefrom_np (glibc >= 2.34) also closes, in the child, those the program opened
// without it, so that nothing but 0, 1 and 2 reaches the child, as Python's close_fds.
//
// The end of a child: a pidfd (Linux >= 5.3) becomes readable when the child exits, and the
// loop watches it like any descriptor; waitpid on the child's own pid then reaps it. Without
// pidfds, a thread per child waits for that pid alone (see subprocess/child_watch.hpp). Never
// waitpid(-1): children the program made some other way are its own to reap.
#ifndef IOLOOP_DETAIL_SPAWN_POSIX_HPP
#define IOLOOP_DETAIL_SPAWN_POSIX_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/spawn_request.hpp"

#if defined(IOLOOP_POSIX)

#include <cerrno>
#include <csignal>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

extern char** environ;

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A child, as the calls below name it.
struct child_id {
    int pid = -1;
};

// What create_subprocess_shell's command runs in: `/bin/sh -c cmd`.
inline std::string shell_program() { return "/bin/sh"; }

// A spawn's resources, freed on every path.
class spawn_actions {
public:
    spawn_actions() {
        if (int e = ::posix_spawn_file_actions_init(&actions_)) throw_errno(e, "posix_spawn");
        if (int e = ::posix_spawnattr_init(&attr_)) {
            ::posix_spawn_file_actions_destroy(&actions_);
            throw_errno(e, "posix_spawn");
        }
    }
    spawn_actions(const spawn_actions&) = delete;
    spawn_actions& operator=(const spawn_actions&) = delete;
    ~spawn_actions() {
        ::posix_spawnattr_destroy(&attr_);
        ::posix_spawn_file_actions_destroy(&actions_);
    }

    posix_spawn_file_actions_t actions_;
    posix_spawnattr_t attr_;
};

// Starts the child. A program that cannot start (not found, not executable, a cwd that
// does not exist) is a std::system_error naming it.
inline child_id spawn_child(const spawn_request& r) {
    const char* program = r.program->c_str();
    std::vector<char*> argv;
    argv.reserve(r.args->size() + 3);
    argv.push_back(const_cast<char*>(program));
    if (r.shell) argv.push_back(const_cast<char*>("-c"));
    for (const std::string& a : *r.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (r.env) {
        envp.reserve(r.env->size() + 1);
        for (const std::string& e : *r.env) envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
    }

    spawn_actions sa;
    auto check = [&](int e) {
        if (e != 0) throw_errno(e, concat({"spawning \"", program, "\""}));
    };
    for (int i = 0; i < 3; ++i) {
        if (r.child_fds[i] >= 0) check(::posix_spawn_file_actions_adddup2(&sa.actions_, r.child_fds[i], i));
    }
    if (r.err_to_out) check(::posix_spawn_file_actions_adddup2(&sa.actions_, 1, 2));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    check(::posix_spawn_file_actions_addclosefrom_np(&sa.actions_, 3));
#endif
    if (r.cwd) {
#if (defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))) || \
    defined(__APPLE__) || defined(__FreeBSD__)
        check(::posix_spawn_file_actions_addchdir_np(&sa.actions_, r.cwd));
#else
        throw_errno(ENOTSUP, concat({"spawning \"", program, "\": cwd needs "
                                     "posix_spawn_file_actions_addchdir_np"}));
#endif
    }
    // A child starts with SIGPIPE at its default, whatever the parent does with it (as
    // Python's subprocess): a program at the end of a pipe expects to die of it.
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    check(::posix_spawnattr_setsigdefault(&sa.attr_, &defaults));
    short flags = POSIX_SPAWN_SETSIGDEF;
    if (r.new_session) {
#if defined(POSIX_SPAWN_SETSID)
        flags |= POSIX_SPAWN_SETSID;
#else
        throw_errno(ENOTSUP, concat({"spawning \"", program, "\": start_new_session needs "
                                     "POSIX_SPAWN_SETSID"}));
#endif
    }
    check(::posix_spawnattr_setflags(&sa.attr_, flags));
    pid_t pid = -1;
    check(::posix_spawnp(&pid, program, &sa.actions_, &sa.attr_, argv.data(),
                         r.env ? envp.data() : environ));
    return child_id{static_cast<int>(pid)};
}

// A pipe whose two ends are close-on-exec from the start where the system can (pipe2): a
// spawn on another thread in between would leak them into its child otherwise.
inline bool make_cloexec_pipe(int (&fds)[2]) noexcept {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
    return ::pipe2(fds, O_CLOEXEC) == 0;
#else
    if (::pipe(fds) == -1) return false;
    ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return true;
#endif
}

// A pipe for one of the child's descriptors, both ends close-on-exec (the child gets its
// end through spawn_child's dup2): `ours` reads if the child writes, and writes if it
// reads (child_reads: its stdin).
inline void make_child_pipe(native_descriptor& ours, native_descriptor& childs, bool child_reads,
                            const char* what) {
    int fds[2];
    if (!make_cloexec_pipe(fds)) throw_errno(errno, concat({what, ": pipe"}));
    ours = fds[child_reads ? 1 : 0];
    childs = fds[child_reads ? 0 : 1];
}

inline native_descriptor open_devnull(const char* what) {
    const int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd == -1) throw_errno(errno, concat({what, ": opening /dev/null"}));
    return fd;
}

// A descriptor that becomes readable when the child exits, or none where the kernel has
// none (Linux < 5.3, a seccomp filter, not Linux).
inline native_descriptor open_pidfd(const child_id& id) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
    const long fd = ::syscall(SYS_pidfd_open, id.pid, 0);
    if (fd < 0) return -1;
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // pidfds are close-on-exec already
    return static_cast<int>(fd);
#else
    (void)id;
    return -1;
#endif
}

// asyncio's returncode from a wait status: the exit code, or -N for signal N.
inline int returncode_of(int status) noexcept {
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

// Reaps the child if it has exited: true, and its returncode. `block` waits for it.
inline bool reap_child(const child_id& id, int& returncode, bool block) noexcept {
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(id.pid, &status, block ? 0 : WNOHANG);
        if (r == id.pid) {
            returncode = returncode_of(status);
            return true;
        }
        if (r == -1 && errno == EINTR) continue;
        if (r == -1) {
            // ECHILD: someone else reaped it (a waitpid(-1) elsewhere, SIGCHLD ignored):
            // its status is lost. asyncio reports 255 then.
            returncode = 255;
            return true;
        }
        return false;  // 0: still running
    }
}

// A pid needs no second handle: a thread that waits uses the same one.
inline child_id copy_child_id(const child_id& id) noexcept { return id; }
inline void close_child_id(child_id&) noexcept {}

// The signals of terminate() and kill(); every signal may be sent.
inline constexpr int terminate_signal = SIGTERM;
inline constexpr int kill_signal = SIGKILL;
inline void check_signal(int, const char*) noexcept {}

// Sends sig to the child; false if it is gone already.
inline bool signal_child(const child_id& id, int sig) noexcept { return ::kill(id.pid, sig) == 0; }

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_POSIX

#endif
