// The few things the tests need that POSIX and Windows spell differently, each defined once
// per platform under the same name, so that every test file is the same code everywhere.
// A check that has no meaning on a platform (SIGUSR1, setrlimit) is not here: its
// TEST_CASE is left out of that platform's build, with a comment saying why.
#ifndef IOLOOP_TESTS_PLATFORM_HPP
#define IOLOOP_TESTS_PLATFORM_HPP

#include <ioloop/ioloop.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(IOLOOP_POSIX)
#include <cerrno>
#include <fcntl.h>
#include <malloc.h>  // mallinfo2: glibc
#include <netdb.h>  // EAI_* (Windows: <ws2tcpip.h>, which ioloop.hpp includes)
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>
#elif defined(IOLOOP_WINDOWS)
#include <malloc.h>  // _heapwalk
#include <psapi.h>   // after <windows.h>, which ioloop.hpp includes
#endif

// Unix-domain sockets exist on POSIX. Windows 10 has AF_UNIX stream sockets (no datagram
// ones), but Wine, where the Windows suite runs, has none at all (socket() fails with
// WSAEAFNOSUPPORT): the TEST_CASEs that need them are compiled on POSIX only.
#if defined(IOLOOP_POSIX)
#define TEST_UNIX_SOCKETS 1
#endif

// Wine's select does not report a UDP socket's ICMP error (port unreachable): neither the
// read nor the except set shows it, though SO_ERROR holds it; Windows reports it as
// readable. The check that needs it is left out of the Windows select build, which runs
// under Wine here.
#if defined(IOLOOP_WINDOWS) && defined(IOLOOP_BACKEND_SELECT)
#define TEST_WINE_SELECT 1
#endif

// Pipes the loop can take (connect_read_pipe, connect_write_pipe): POSIX's pipes on every
// backend, Windows' overlapped named pipes on IOCP. Windows' select waits on sockets only:
// the TEST_CASEs that need a pipe transport are left out of that build, and
// test_pipes.cpp checks its error there instead.
#if defined(IOLOOP_POSIX) || !defined(IOLOOP_BACKEND_SELECT)
#define TEST_PIPES 1
#endif

// What only POSIX's processes have: fork(), /proc/self/fd, signals other than SIGTERM, a
// file without the execute bit. The TEST_CASEs and checks about them are POSIX-only; the
// Windows build checks its own counterparts (TerminateProcess's exit code, the handles a
// child inherits) instead.
#if defined(IOLOOP_POSIX)
#define TEST_POSIX_PROCESSES 1
#endif

// AddressSanitizer (g++ says __SANITIZE_ADDRESS__, clang __has_feature): its allocator
// and quarantine hold freed memory back, so a check of heap bytes or peak RSS has no
// meaning there; such a TEST_CASE or check is left out of that build.
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

namespace test {

// add_reader / add_writer exist on readiness backends only; on IOCP they do not compile,
// so the few checks that use them outside test_readers_writers sit under
// `if constexpr (test::readiness_backend)`.
inline constexpr bool readiness_backend =
    ioloop::backend::readiness_backend<ioloop::event_loop::backend_type>;

// ---- signals ------------------------------------------------------------------------------

#if defined(IOLOOP_POSIX)
// Two signals that nothing else in the process uses.
inline constexpr int test_signal = SIGUSR1;
inline constexpr int other_test_signal = SIGUSR2;
// Signals the system refuses to let anyone handle.
inline constexpr int refused_signals[] = {SIGKILL, SIGSTOP};

// Sends sig to the whole process, as another program would.
inline bool send_signal(int sig) { return ::kill(::getpid(), sig) == 0; }
#elif defined(IOLOOP_WINDOWS)
// The C runtime knows SIGINT, SIGILL, SIGFPE, SIGSEGV, SIGTERM, SIGBREAK and SIGABRT only;
// SIGTERM and SIGBREAK are never raised by the runtime itself (SIGINT and SIGBREAK come
// from the console's Ctrl+C and Ctrl+Break, which a test run does not send).
inline constexpr int test_signal = SIGTERM;
inline constexpr int other_test_signal = SIGBREAK;
// Numbers below NSIG that the C runtime has no signal for (SIGHUP and SIGKILL on POSIX).
inline constexpr int refused_signals[] = {1, 9};

// Windows has no kill(): raise() is how a signal reaches the C runtime's handler, on the
// calling thread.
inline bool send_signal(int sig) { return std::raise(sig) == 0; }
#endif

// ---- environment --------------------------------------------------------------------------

#if defined(IOLOOP_POSIX)
inline void set_env(const char* name, const char* value) { ::setenv(name, value, 1); }
inline void unset_env(const char* name) { ::unsetenv(name); }
#elif defined(IOLOOP_WINDOWS)
// Note: on Windows an empty value removes the variable, so set_env(name, "") is unset_env.
inline void set_env(const char* name, const char* value) { ::_putenv_s(name, value); }
inline void unset_env(const char* name) { ::_putenv_s(name, ""); }
#endif

// ---- child processes ----------------------------------------------------------------------

// The programs and shell commands the subprocess tests run: POSIX's own (sh, cat, sleep);
// on Windows cmd.exe and tests/child_helper.cpp's ioloop_test_child (Wine has no cat).
struct child_command {
    std::string program;
    std::vector<std::string> args;
};

#if defined(IOLOOP_POSIX)
// How the shell's echo ends a line.
inline constexpr std::string_view shell_newline = "\n";
// Two shell commands, one after the other.
inline std::string shell_then(std::string_view a, std::string_view b) {
    return std::string(a) + "; " + std::string(b);
}
// Prints "out" on stdout, then "err" on stderr.
inline constexpr const char* shell_out_then_err = "echo out; echo err >&2";
// Prints the working directory; and a directory to run it in.
inline constexpr const char* shell_print_cwd = "pwd";
inline constexpr const char* some_directory = "/usr";
// Prints the value of IOLOOP_TEST_VAR in brackets.
inline constexpr const char* shell_print_test_var = "echo \"[$IOLOOP_TEST_VAR]\"";
// What a replaced environment needs besides the variables a test sets.
inline const std::vector<std::string> base_env{"PATH=/usr/bin:/bin"};
// Copies stdin to stdout, byte for byte; sleeps 30 s; answers each line x with "line-x\n".
inline child_command copy_command() { return {"cat", {}}; }
inline child_command sleep_command() { return {"sleep", {"30"}}; }
inline child_command lines_command() {
    return {"sh", {"-c", "while read x; do echo line-$x; done"}};
}
// Prints "out" on stdout and "err" on stderr, reads a line x, prints "got-x", exits 5.
inline child_command protocol_command() {
    return {"sh", {"-c", "echo out; echo err >&2; read x; echo got-$x; exit 5"}};
}
// Prints "started", then runs for 30 s.
inline child_command started_then_sleep_command() {
    return {"sh", {"-c", "echo started; exec sleep 30"}};
}
// The returncode after terminate() and after kill(): -SIGTERM and -SIGKILL.
inline constexpr int terminated_returncode = -SIGTERM;
inline constexpr int killed_returncode = -SIGKILL;
// A cwd that does not exist: CreateProcessW and posix_spawn say it differently.
inline constexpr std::errc missing_cwd_error = std::errc::no_such_file_or_directory;
// How many children a test starts at once (cmd.exe under Wine starts slowly).
inline constexpr int many_children = 50;

// Whether pid is still a process of the system (running, or a zombie nobody reaped).
inline bool process_exists(int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }
// Ends pid as another program would (SIGKILL).
inline bool end_process(int pid) { return ::kill(pid, SIGKILL) == 0; }
#elif defined(IOLOOP_WINDOWS)
inline constexpr std::string_view shell_newline = "\r\n";
// (No space before '&': cmd.exe's echo would print it.)
inline std::string shell_then(std::string_view a, std::string_view b) {
    return std::string(a) + "& " + std::string(b);
}
inline constexpr const char* shell_out_then_err = "echo out& echo err>&2";
inline constexpr const char* shell_print_cwd = "cd";
inline constexpr const char* some_directory = "C:\\windows";
inline constexpr const char* shell_print_test_var = "echo [%IOLOOP_TEST_VAR%]";
// cmd.exe needs SystemRoot (Windows' own libraries look for it).
inline const std::vector<std::string> base_env{"SystemRoot=C:\\windows"};
inline child_command copy_command() { return {"ioloop_test_child", {"copy"}}; }
inline child_command sleep_command() { return {"ioloop_test_child", {"sleep", "30000"}}; }
inline child_command lines_command() { return {"ioloop_test_child", {"lines"}}; }
inline child_command protocol_command() { return {"ioloop_test_child", {"protocol"}}; }
inline child_command started_then_sleep_command() { return {"ioloop_test_child", {"started"}}; }
// TerminateProcess(handle, 1), as Python's Popen.terminate, for both.
inline constexpr int terminated_returncode = 1;
inline constexpr int killed_returncode = 1;
// ERROR_DIRECTORY, which Python raises as NotADirectoryError.
inline constexpr std::errc missing_cwd_error = std::errc::not_a_directory;
inline constexpr int many_children = 20;

// Whether pid is still a process of the system: running, or exited while a handle of it
// is open somewhere (Windows' zombie: the loop's handle not closed yet).
inline bool process_exists(int pid) {
    const HANDLE h = ::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
    if (h == nullptr) return false;
    ::CloseHandle(h);
    return true;
}
inline bool end_process(int pid) {
    const HANDLE h = ::OpenProcess(PROCESS_TERMINATE, FALSE, static_cast<DWORD>(pid));
    if (h == nullptr) return false;
    const bool ended = ::TerminateProcess(h, 9) != 0;
    ::CloseHandle(h);
    return ended;
}
#endif

// A file of this process's own, open for reading and writing, removed with it: what a
// test gives a child as stdio(handle).
class temp_file {
public:
    temp_file();
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    ~temp_file();
    ioloop::native_descriptor handle() const { return h_; }
    // Everything in it now, read from its start.
    std::string contents() const;

private:
    ioloop::native_descriptor h_;
    std::string path_;
};

#if defined(IOLOOP_POSIX)
inline temp_file::temp_file() {
    char path[] = "/tmp/ioloop-test-XXXXXX";
    h_ = ::mkstemp(path);
    REQUIRE(h_ >= 0);
    path_ = path;
}
inline temp_file::~temp_file() {
    ::close(h_);
    ::unlink(path_.c_str());
}
inline std::string temp_file::contents() const {
    std::string all(4096, '\0');
    const long n = ::pread(h_, all.data(), all.size(), 0);
    all.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return all;
}
#elif defined(IOLOOP_WINDOWS)
inline temp_file::temp_file() {
    char dir[MAX_PATH + 1];
    char path[MAX_PATH + 1];
    REQUIRE(::GetTempPathA(sizeof dir, dir) > 0);
    REQUIRE(::GetTempFileNameA(dir, "iol", 0, path) != 0);
    path_ = path;
    h_ = ::CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                       nullptr, CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, nullptr);
    REQUIRE(h_ != INVALID_HANDLE_VALUE);
}
inline temp_file::~temp_file() {
    ::CloseHandle(h_);
    ::DeleteFileA(path_.c_str());
}
inline std::string temp_file::contents() const {
    std::string all(4096, '\0');
    OVERLAPPED at_start{};  // the offset to read from (the handle is synchronous)
    DWORD n = 0;
    if (!::ReadFile(h_, all.data(), static_cast<DWORD>(all.size()), &n, &at_start)) n = 0;
    all.resize(n);
    return all;
}
#endif

// ---- memory -------------------------------------------------------------------------------

// The process's peak resident memory so far, in KiB.
inline long peak_rss_kib() {
#if defined(IOLOOP_POSIX)
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
#elif defined(IOLOOP_WINDOWS)
    PROCESS_MEMORY_COUNTERS counters{};
    counters.cb = sizeof counters;
    ::K32GetProcessMemoryInfo(::GetCurrentProcess(), &counters, sizeof counters);
    return static_cast<long>(counters.PeakWorkingSetSize / 1024);
#endif
}

// The bytes malloc has handed out and not had back (glibc's mallinfo2 on POSIX; the C
// runtime's heap, walked, on Windows).
inline std::size_t heap_bytes_in_use() {
#if defined(IOLOOP_POSIX)
    return ::mallinfo2().uordblks;
#elif defined(IOLOOP_WINDOWS)
    std::size_t used = 0;
    _HEAPINFO entry{};
    while (::_heapwalk(&entry) == _HEAPOK) {
        if (entry._useflag == _USEDENTRY) used += entry._size;
    }
    return used;
#endif
}

// ---- sockets, the process, its files ------------------------------------------------------

#if defined(IOLOOP_POSIX)
inline void close_socket(ioloop::native_socket s) { ::close(s); }
// shutdown(SHUT_WR): the peer reads EOF.
inline bool shutdown_send(ioloop::native_socket s) { return ::shutdown(s, SHUT_WR) == 0; }
inline long process_id() { return static_cast<long>(::getpid()); }
// Where a test may create files of its own.
inline std::string temp_dir() { return "/tmp"; }
#elif defined(IOLOOP_WINDOWS)
inline void close_socket(ioloop::native_socket s) { ::closesocket(s); }
inline bool shutdown_send(ioloop::native_socket s) { return ::shutdown(s, SD_SEND) == 0; }
inline long process_id() { return static_cast<long>(::GetCurrentProcessId()); }
inline std::string temp_dir() {
    char path[MAX_PATH + 1];
    const DWORD n = ::GetTempPathA(sizeof path, path);  // ends with a backslash
    REQUIRE(n > 0);
    return std::string(path, n - 1);
}
#endif

// Two connected descriptors, non-blocking, closed on scope exit (unless closed already).
// sockets(): a connected stream socket pair: socketpair(AF_UNIX) on POSIX, a loopback TCP
// connection on Windows (it has no socketpair). pipe(): a pipe (first() its read end) on
// POSIX; Windows' select waits on sockets only, so there it is a socket pair as well.
class fd_pair {
public:
    static fd_pair sockets();
    static fd_pair pipe();

    ioloop::native_socket first() const { return fds_[0]; }
    ioloop::native_socket second() const { return fds_[1]; }
    // Gives up ownership of one end (to an ioloop::socket, say).
    ioloop::native_socket release_first() { return std::exchange(fds_[0], ioloop::invalid_socket); }
    ioloop::native_socket release_second() { return std::exchange(fds_[1], ioloop::invalid_socket); }
    void close_first() { close_one(0); }
    void close_second() { close_one(1); }

    fd_pair() = default;
    fd_pair(fd_pair&& o) noexcept : fds_{o.fds_[0], o.fds_[1]} {
        o.fds_[0] = o.fds_[1] = ioloop::invalid_socket;
    }
    fd_pair& operator=(fd_pair&&) = delete;
    ~fd_pair() {
        close_first();
        close_second();
    }

private:
    void close_one(int i) {
        if (fds_[i] != ioloop::invalid_socket) close_socket(fds_[i]);
        fds_[i] = ioloop::invalid_socket;
    }

    ioloop::native_socket fds_[2] = {ioloop::invalid_socket, ioloop::invalid_socket};
};

#if defined(IOLOOP_POSIX)

inline fd_pair fd_pair::sockets() {
    fd_pair p;
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.fds_) == 0);
    return p;
}

inline fd_pair fd_pair::pipe() {
    fd_pair p;
    REQUIRE(::pipe2(p.fds_, O_NONBLOCK | O_CLOEXEC) == 0);
    return p;
}

// Bytes written to (or read from) any of these descriptors: write() and read() take pipes
// and sockets alike. send_some is for sockets only, and never raises SIGPIPE.
inline long write_some(ioloop::native_socket fd, std::string_view data) {
    return static_cast<long>(::write(fd, data.data(), data.size()));
}
inline long send_some(ioloop::native_socket fd, std::string_view data) {
    return static_cast<long>(::send(fd, data.data(), data.size(), MSG_NOSIGNAL));
}
inline long read_some_into(ioloop::native_socket fd, char* buf, std::size_t size) {
    return static_cast<long>(::read(fd, buf, size));
}
// Whether the last write_some / read_some_into failed only because it would block.
inline bool last_would_block() { return errno == EAGAIN || errno == EWOULDBLOCK; }

#elif defined(IOLOOP_WINDOWS)

inline fd_pair fd_pair::sockets() {
    ioloop::detail::start_winsock();
    const SOCKET listener = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    REQUIRE(listener != INVALID_SOCKET);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int size = sizeof address;
    auto* any = reinterpret_cast<sockaddr*>(&address);
    fd_pair p;
    const bool ok = ::bind(listener, any, size) == 0 && ::listen(listener, 1) == 0 &&
                    ::getsockname(listener, any, &size) == 0 &&
                    (p.fds_[0] = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)) != INVALID_SOCKET &&
                    ::connect(p.fds_[0], any, size) == 0 &&
                    (p.fds_[1] = ::accept(listener, nullptr, nullptr)) != INVALID_SOCKET;
    ::closesocket(listener);
    REQUIRE_MESSAGE(ok, "a loopback TCP pair: Winsock error " << ::WSAGetLastError());
    for (SOCKET s : p.fds_) {
        u_long nonblocking = 1;
        REQUIRE(::ioctlsocket(s, FIONBIO, &nonblocking) == 0);
        // Small writes go out at once, as on a Unix socket pair.
        const BOOL nodelay = TRUE;
        ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&nodelay),
                     sizeof nodelay);
    }
    return p;
}

inline fd_pair fd_pair::pipe() { return sockets(); }

inline long write_some(ioloop::native_socket fd, std::string_view data) {
    return ::send(fd, data.data(), static_cast<int>(data.size()), 0);
}
inline long send_some(ioloop::native_socket fd, std::string_view data) { return write_some(fd, data); }
inline long read_some_into(ioloop::native_socket fd, char* buf, std::size_t size) {
    return ::recv(fd, buf, static_cast<int>(size), 0);
}
inline bool last_would_block() { return ::WSAGetLastError() == WSAEWOULDBLOCK; }

#endif

// ---- pipes --------------------------------------------------------------------------------

// A pipe as connect_read_pipe and connect_write_pipe take one, its two ends closed on scope
// exit unless released (to a transport) or closed already: pipe2(O_CLOEXEC) on POSIX (the
// transports make their ends non-blocking); on Windows a named pipe, both ends overlapped,
// as the IOCP backend needs. `reader_is_server` (Windows) says which end CreateNamedPipeW
// makes, the other being CreateFileW's client end: their errors differ, so tests take
// both; on POSIX it means nothing.
class pipe_pair {
public:
    static pipe_pair make(bool reader_is_server = true);

    ioloop::native_descriptor reader() const { return ends_[0]; }
    ioloop::native_descriptor writer() const { return ends_[1]; }
    ioloop::native_descriptor release_reader() { return std::exchange(ends_[0], none()); }
    ioloop::native_descriptor release_writer() { return std::exchange(ends_[1], none()); }
    void close_reader() { close_one(0); }
    void close_writer() { close_one(1); }

    pipe_pair() = default;
    pipe_pair(pipe_pair&& o) noexcept : ends_{o.release_reader(), o.release_writer()} {}
    pipe_pair& operator=(pipe_pair&&) = delete;
    ~pipe_pair() {
        close_reader();
        close_writer();
    }

private:
    static ioloop::native_descriptor none() { return ioloop::detail::no_descriptor(); }
    void close_one(int i) {
        if (ends_[i] != none()) ioloop::detail::close_descriptor(ends_[i]);
        ends_[i] = none();
    }

    ioloop::native_descriptor ends_[2] = {none(), none()};
};

// The orientations of a pipe_pair worth running a test with: both on Windows.
#if defined(IOLOOP_POSIX)
inline constexpr bool pipe_orientations[] = {true};
#elif defined(IOLOOP_WINDOWS)
inline constexpr bool pipe_orientations[] = {true, false};
#endif

#if defined(IOLOOP_POSIX)

inline pipe_pair pipe_pair::make(bool) {
    pipe_pair p;
    REQUIRE(::pipe2(p.ends_, O_CLOEXEC) == 0);
    return p;
}

// All of data into the pipe's write end, blocking (the tests write less than it holds).
inline void write_to_pipe(ioloop::native_descriptor fd, std::string_view data) {
    REQUIRE(::write(fd, data.data(), data.size()) == static_cast<long>(data.size()));
}

inline bool descriptor_open(ioloop::native_descriptor fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Whether the other end of this pipe end has gone: the write end's reader (POLLERR), the
// read end's writer (POLLHUP, once what it wrote is read).
inline bool pipe_peer_gone(ioloop::native_descriptor fd) {
    pollfd p{fd, 0, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

#elif defined(IOLOOP_WINDOWS)

inline pipe_pair pipe_pair::make(bool reader_is_server) {
    static int made = 0;
    const std::wstring name = L"\\\\.\\pipe\\ioloop-test-" + std::to_wstring(process_id()) +
                              L"-" + std::to_wstring(++made);
    const DWORD direction = reader_is_server ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND;
    const HANDLE server = ::CreateNamedPipeW(
        name.c_str(), direction | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, 65536,
        65536, 0, nullptr);
    REQUIRE_MESSAGE(server != INVALID_HANDLE_VALUE, "CreateNamedPipeW: error " << ::GetLastError());
    pipe_pair p;
    p.ends_[reader_is_server ? 0 : 1] = server;
    const HANDLE client =
        ::CreateFileW(name.c_str(), reader_is_server ? GENERIC_WRITE : GENERIC_READ, 0, nullptr,
                      OPEN_EXISTING, FILE_FLAG_OVERLAPPED, nullptr);
    REQUIRE_MESSAGE(client != INVALID_HANDLE_VALUE, "CreateFileW: error " << ::GetLastError());
    p.ends_[reader_is_server ? 1 : 0] = client;
    // The client's open connected the server end: ConnectNamedPipe says so at once.
    OVERLAPPED o{};
    const BOOL connected = ::ConnectNamedPipe(server, &o);
    REQUIRE((connected || ::GetLastError() == ERROR_PIPE_CONNECTED));
    return p;
}

// Waits for an overlapped call on a handle no port knows of: its OVERLAPPED has no event,
// so the handle itself is signalled.
inline DWORD finish_overlapped(HANDLE h, OVERLAPPED& o, BOOL started, DWORD& moved) {
    if (!started && ::GetLastError() != ERROR_IO_PENDING) return ::GetLastError();
    return ::GetOverlappedResult(h, &o, &moved, TRUE) ? 0 : ::GetLastError();
}

inline void write_to_pipe(ioloop::native_descriptor h, std::string_view data) {
    OVERLAPPED o{};
    DWORD written = 0;
    const BOOL started =
        ::WriteFile(h, data.data(), static_cast<DWORD>(data.size()), nullptr, &o);
    REQUIRE(finish_overlapped(h, o, started, written) == 0);
    REQUIRE(written == data.size());
}

inline bool descriptor_open(ioloop::native_descriptor h) {
    DWORD flags = 0;
    return ::GetHandleInformation(h, &flags) != 0;
}

// A read end: PeekNamedPipe says the writer went away (its bytes read). A write end: a
// zero-byte write says the reader did (ERROR_NO_DATA).
inline bool pipe_peer_gone(ioloop::native_descriptor h) {
    DWORD available = 0;
    if (::PeekNamedPipe(h, nullptr, 0, nullptr, &available, nullptr)) return false;
    const DWORD peeked = ::GetLastError();
    if (peeked != ERROR_ACCESS_DENIED) {  // a read end
        return peeked == ERROR_BROKEN_PIPE || peeked == ERROR_PIPE_NOT_CONNECTED;
    }
    OVERLAPPED o{};
    DWORD written = 0;
    const DWORD err = finish_overlapped(h, o, ::WriteFile(h, "", 0, nullptr, &o), written);
    return err == ERROR_NO_DATA || err == ERROR_BROKEN_PIPE;
}

#endif

// ---- raw socket calls the tests make themselves --------------------------------------------

#if defined(IOLOOP_POSIX)
// An int socket option's value (getsockopt), -1 if it cannot be read.
inline int socket_option(ioloop::native_socket s, int level, int name) {
    int value = -1;
    socklen_t size = sizeof value;
    return ::getsockopt(s, level, name, &value, &size) == 0 ? value : -1;
}
// Sets an int socket option (setsockopt); false if the system refused it.
inline bool set_socket_option(ioloop::native_socket s, int level, int name, int value) {
    return ::setsockopt(s, level, name, &value, sizeof value) == 0;
}
// Whether s is an open socket; a closed one's number may be reused, so check at once.
inline bool is_open_socket(ioloop::native_socket s) { return ::fcntl(s, F_GETFD) != -1; }
// Whether a program this one starts would inherit s (close-on-exec not set).
inline bool inheritable(ioloop::native_socket s) { return (::fcntl(s, F_GETFD) & FD_CLOEXEC) == 0; }
// Whether s is in non-blocking mode. (Windows cannot read the mode back: FIONBIO only sets
// it. The checks that use this are POSIX-only.)
inline bool nonblocking(ioloop::native_socket s) { return (::fcntl(s, F_GETFL) & O_NONBLOCK) != 0; }
// The last socket call's failure, as the portable code it means.
inline std::error_code last_socket_error() { return {errno, std::generic_category()}; }
// A non-blocking connect() that goes on in the background failed with this.
inline bool connect_in_progress() { return errno == EINPROGRESS; }
// On Linux SO_REUSEADDR never lets a socket bind a port another socket listens on.
inline constexpr bool reuse_address_takes_ports = false;
#elif defined(IOLOOP_WINDOWS)
inline int socket_option(ioloop::native_socket s, int level, int name) {
    int value = 0;  // TCP_NODELAY may come back as one byte (Wine does that): the rest stays 0
    int size = sizeof value;
    return ::getsockopt(s, level, name, reinterpret_cast<char*>(&value), &size) == 0 ? value : -1;
}
inline bool set_socket_option(ioloop::native_socket s, int level, int name, int value) {
    return ::setsockopt(s, level, name, reinterpret_cast<const char*>(&value), sizeof value) == 0;
}
inline bool is_open_socket(ioloop::native_socket s) { return socket_option(s, SOL_SOCKET, SO_TYPE) != -1; }
inline bool inheritable(ioloop::native_socket s) {
    DWORD flags = 0;
    REQUIRE(::GetHandleInformation(reinterpret_cast<HANDLE>(s), &flags));
    return (flags & HANDLE_FLAG_INHERIT) != 0;
}
// The library's own mapping (detail/windows.hpp) of a Winsock code to its portable meaning.
inline std::error_code last_socket_error() {
    return ioloop::detail::system_error_code(static_cast<unsigned long>(::WSAGetLastError()));
}
inline bool connect_in_progress() { return ::WSAGetLastError() == WSAEWOULDBLOCK; }
// On Windows SO_REUSEADDR lets a socket bind a port that another one uses, even a listener's.
inline constexpr bool reuse_address_takes_ports = true;
#endif

#if defined(IOLOOP_POSIX)
// Bytes the kernel holds for the socket and nobody has read yet.
inline int unread_bytes(ioloop::native_socket s) {
    int n = 0;
    REQUIRE(::ioctl(s, FIONREAD, &n) == 0);
    return n;
}
#elif defined(IOLOOP_WINDOWS)
inline int unread_bytes(ioloop::native_socket s) {
    u_long n = 0;
    REQUIRE(::ioctlsocket(s, FIONREAD, &n) == 0);
    return static_cast<int>(n);
}
#endif

#if defined(IOLOOP_POSIX)
// Whether the socket has an error or hang-up pending (a peer's reset arrived).
inline bool reset_arrived(ioloop::native_socket s) {
    pollfd p{s, 0, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}
// SO_LINGER with a zero timeout: closing the socket sends a reset, not a FIN.
inline bool set_linger_zero(ioloop::native_socket s) {
    const linger hard{1, 0};
    return ::setsockopt(s, SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0;
}
#elif defined(IOLOOP_WINDOWS)
// Winsock's select has no error set for a connected socket: a reset makes it readable (the
// read would fail). The callers' sockets have nothing else to read.
inline bool reset_arrived(ioloop::native_socket s) {
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(s, &readable);
    timeval now{0, 0};
    return ::select(0, &readable, nullptr, nullptr, &now) == 1;
}
inline bool set_linger_zero(ioloop::native_socket s) {
    const linger hard{1, 0};
    return ::setsockopt(s, SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&hard),
                        sizeof hard) == 0;
}
#endif

#if defined(IOLOOP_POSIX)
// How many descriptors below 65536 are open in this process. (Windows has no such count
// to compare: Wine's GetProcessHandleCount says 0. The checks that use it are POSIX-only.)
inline int open_descriptor_count() {
    int n = 0;
    for (int fd = 0; fd < 65536; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1) ++n;
    }
    return n;
}
#endif

// Whether the peer's EOF is what a read of this non-blocking socket would find next (its
// buffer is empty): a peek that finds no byte and no error.
inline bool peer_shut_down(ioloop::native_socket s) {
    char byte;
    return ::recv(s, &byte, 1, MSG_PEEK) == 0;
}

// Waits up to `seconds` for a connecting socket to be done: writable (connected, or failed
// on POSIX) or, on Windows, in select's exception set (failed). True if it is.
inline bool wait_connect_done(ioloop::native_socket s, long seconds) {
    fd_set writable;
    fd_set failed;
    FD_ZERO(&writable);
    FD_ZERO(&failed);
    FD_SET(s, &writable);
    FD_SET(s, &failed);
    timeval limit{seconds, 0};
    // The first argument is ignored on Windows.
    return ::select(static_cast<int>(s) + 1, nullptr, &writable, &failed, &limit) >= 1;
}

// Waits up to `seconds` for s to have something to read (a datagram, say). True if it has.
inline bool wait_readable(ioloop::native_socket s, long seconds) {
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(s, &readable);
    timeval limit{seconds, 0};
    // The first argument is ignored on Windows.
    return ::select(static_cast<int>(s) + 1, &readable, nullptr, nullptr, &limit) == 1;
}

// A connected stream socket pair (fd_pair::sockets()) as two ioloop::sockets.
inline std::pair<ioloop::socket, ioloop::socket> socket_pair() {
    fd_pair p = fd_pair::sockets();
    ioloop::socket a(p.release_first());
    return {std::move(a), ioloop::socket(p.release_second())};
}

// All of data, in one write (the tests write less than a socket buffer holds).
inline void write_all(ioloop::native_socket fd, std::string_view data) {
    REQUIRE(write_some(fd, data) == static_cast<long>(data.size()));
}

// What is there to read, up to `max` bytes: "" at EOF, "<nothing>" when nothing is there
// yet; any other failure fails the test.
inline std::string read_some(ioloop::native_socket fd, std::size_t max = 4096) {
    std::string buf(max, '\0');
    const long n = read_some_into(fd, buf.data(), buf.size());
    if (n < 0) {
        CHECK(last_would_block());
        return "<nothing>";
    }
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

}  // namespace test

#endif
