// ioloop: starting a child process and learning how it ended (Windows): the names
// detail/spawn.hpp lists, for the subprocess layer (subprocess/).
//
// The command line: Windows hands a child one string, which the child's C runtime splits
// into arguments. It is built from the program and its arguments with the rules the
// Microsoft C runtime splits by (those of Python's subprocess.list2cmdline): an argument
// with a space or a tab, or an empty one, is put in double quotes; a double quote is
// escaped with a backslash; backslashes are doubled where they come before a double quote
// (one of the argument's, or the closing one), and left alone elsewhere. A program that
// splits its command line its own way (cmd.exe) may read it otherwise: that is why
// create_subprocess_shell passes its command as it is, `cmd.exe /c "<cmd>"` (Python's
// shell=True, with %ComSpec% when set).
//
// The program: CreateProcessW is given no application name, so it takes the command
// line's first word and looks it up as it documents: a name with no extension gets
// ".exe"; a name without a path is searched in the directory of this program's .exe, the
// current directory, the 32-bit system directory (System32), the 16-bit one, the Windows
// directory, then the directories of this process's PATH (not of `env`'s).
//
// Handles: the child's standard handles are inheritable copies made for it alone, and only
// those are inherited: STARTUPINFOEXW with PROC_THREAD_ATTRIBUTE_HANDLE_LIST (Windows
// Vista and later; Wine 8 takes it too), so that a handle some other part of the program
// made inheritable does not leak into the child (Python's close_fds). A pipe is a named
// pipe: this process's end overlapped (FILE_FLAG_OVERLAPPED: the IOCP backend's pipe
// transport needs it), the child's synchronous (what a child's C runtime expects).
//
// The end of a child: its process handle is signalled when it exits; a thread waits on it
// (subprocess/child_watch.hpp) and GetExitCodeProcess gives the returncode. An exit status
// above INT_MAX (an NTSTATUS such as 0xC0000005, an access violation) reads as the negative
// int of the same 32 bits.
//
// Signals, as asyncio on Windows: SIGTERM is TerminateProcess with exit code 1 (so that
// terminate() and kill(), which do the same, leave returncode 1, as Python's Popen);
// CTRL_C_EVENT and CTRL_BREAK_EVENT go to the child's console process group through
// GenerateConsoleCtrlEvent (Windows delivers them only to a child that is a process group's
// leader and shares this console); any other number is an error (asyncio's ValueError).
#ifndef IOLOOP_DETAIL_SPAWN_WINDOWS_HPP
#define IOLOOP_DETAIL_SPAWN_WINDOWS_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/spawn_request.hpp"
#include "ioloop/detail/windows.hpp"

#if defined(IOLOOP_WINDOWS)

#include <algorithm>
#include <climits>
#include <csignal>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// A child, as the calls below name it: its id, and a handle of its process.
struct child_id {
    int pid = -1;
    HANDLE process = nullptr;
};

// UTF-8 to UTF-16; a string that is not UTF-8 is an error of `what`.
inline std::wstring to_utf16(std::string_view s, std::string_view what) {
    if (s.empty()) return {};
    if (s.size() > static_cast<std::size_t>(INT_MAX)) {
        throw std::length_error(concat({what, ": a string longer than INT_MAX bytes"}));
    }
    const int size = static_cast<int>(s.size());
    const int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), size, nullptr, 0);
    if (n == 0) throw_system_error(::GetLastError(), concat({what, ": a string that is not UTF-8"}));
    std::wstring w(static_cast<std::size_t>(n), L'\0');
    ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), size, w.data(), n);
    return w;
}

// UTF-16 (the system's) to UTF-8; unpaired surrogates become U+FFFD.
inline std::string to_utf8(std::wstring_view w) {
    if (w.empty()) return {};
    const int size = static_cast<int>(w.size());
    const int n = ::WideCharToMultiByte(CP_UTF8, 0, w.data(), size, nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<std::size_t>(n), '\0');
    ::WideCharToMultiByte(CP_UTF8, 0, w.data(), size, s.data(), n, nullptr, nullptr);
    return s;
}

// Appends one argument to a command line, quoted as the C runtime splits (see the top).
// UTF-8 as it is: no byte of a multibyte sequence is a space, a tab, '"' or '\\'.
inline void append_argument(std::string& line, std::string_view arg) {
    const bool quoted = arg.empty() || arg.find_first_of(" \t") != std::string_view::npos;
    if (quoted) line += '"';
    std::size_t backslashes = 0;  // seen and not written yet
    for (const char c : arg) {
        if (c == '\\') {
            ++backslashes;
            continue;
        }
        // Before a double quote, each backslash is doubled and one more escapes the quote.
        line.append(c == '"' ? backslashes * 2 + 1 : backslashes, '\\');
        backslashes = 0;
        line += c;
    }
    // Before the closing quote, doubled too.
    line.append(quoted ? backslashes * 2 : backslashes, '\\');
    if (quoted) line += '"';
}

// The command line of program and args, as list2cmdline builds it.
inline std::string command_line(const std::string& program, const std::vector<std::string>& args) {
    std::string line;
    append_argument(line, program);
    for (const std::string& a : args) {
        line += ' ';
        append_argument(line, a);
    }
    return line;
}

// What create_subprocess_shell's command runs in: %ComSpec% (Windows sets it to cmd.exe's
// full path), else "cmd.exe", found in the system directory.
inline std::string shell_program() {
    wchar_t buffer[MAX_PATH];
    const DWORD n = ::GetEnvironmentVariableW(L"ComSpec", buffer, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) return "cmd.exe";
    return to_utf8(std::wstring_view(buffer, n));
}

// The environment block CreateProcessW takes with CREATE_UNICODE_ENVIRONMENT: each
// "NAME=value" and a NUL, then one more NUL; sorted by name, case-insensitively and in
// Unicode order with no locale, as Windows documents that it wants it. A name may begin
// with '=' (cmd.exe's "=C:=C:\dir"): its end is the first '=' after that.
inline std::wstring environment_block(const std::vector<std::string>& env, std::string_view what) {
    std::vector<std::wstring> vars;
    vars.reserve(env.size());
    for (const std::string& e : env) vars.push_back(to_utf16(e, what));
    const auto name = [](const std::wstring& v) {
        const std::size_t end = v.find(L'=', 1);
        return std::wstring_view(v).substr(0, end == std::wstring::npos ? v.size() : end);
    };
    std::stable_sort(vars.begin(), vars.end(), [&](const std::wstring& a, const std::wstring& b) {
        const std::wstring_view x = name(a);
        const std::wstring_view y = name(b);
        return ::CompareStringOrdinal(x.data(), static_cast<int>(x.size()), y.data(),
                                      static_cast<int>(y.size()), TRUE) == CSTR_LESS_THAN;
    });
    std::wstring block;
    for (const std::wstring& v : vars) {
        block += v;
        block += L'\0';
    }
    if (vars.empty()) block += L'\0';  // an empty block is two NULs
    block += L'\0';
    return block;
}

// A pipe for one of the child's descriptors: a named pipe whose server end is ours,
// overlapped, and whose client end is the child's, synchronous; neither inheritable
// (spawn_child makes the child's copy). `ours` reads if the child writes, and writes if
// it reads (child_reads: its stdin).
inline void make_child_pipe(native_descriptor& ours, native_descriptor& childs, bool child_reads,
                            const char* what) {
    static volatile LONG serial = 0;
    const std::wstring name = L"\\\\.\\pipe\\ioloop-child-" + std::to_wstring(::GetCurrentProcessId()) +
                              L"-" + std::to_wstring(::InterlockedIncrement(&serial));
    // FIRST_PIPE_INSTANCE and one instance: a name someone else made first is an error,
    // not a pipe shared with them.
    const HANDLE server = ::CreateNamedPipeW(
        name.c_str(),
        (child_reads ? PIPE_ACCESS_OUTBOUND : PIPE_ACCESS_INBOUND) | FILE_FLAG_OVERLAPPED |
            FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, 65536,
        65536, 0, nullptr);
    if (server == INVALID_HANDLE_VALUE) {
        throw_system_error(::GetLastError(), concat({what, ": CreateNamedPipeW"}));
    }
    const HANDLE client = ::CreateFileW(name.c_str(), child_reads ? GENERIC_READ : GENERIC_WRITE,
                                        0, nullptr, OPEN_EXISTING, 0, nullptr);
    if (client == INVALID_HANDLE_VALUE) {
        const unsigned long err = ::GetLastError();
        ::CloseHandle(server);
        throw_system_error(err, concat({what, ": opening a named pipe's client end"}));
    }
    // The client's open connected the server end: ConnectNamedPipe says so at once.
    OVERLAPPED o{};
    if (!::ConnectNamedPipe(server, &o)) {
        unsigned long err = ::GetLastError();
        DWORD unused = 0;
        if (err == ERROR_IO_PENDING) err = ::GetOverlappedResult(server, &o, &unused, TRUE) ? 0 : ::GetLastError();
        if (err != 0 && err != ERROR_PIPE_CONNECTED) {
            ::CloseHandle(client);
            ::CloseHandle(server);
            throw_system_error(err, concat({what, ": ConnectNamedPipe"}));
        }
    }
    ours = server;
    childs = client;
}

inline native_descriptor open_devnull(const char* what) {
    const HANDLE h = ::CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE,
                                   FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0,
                                   nullptr);
    if (h == INVALID_HANDLE_VALUE) throw_system_error(::GetLastError(), concat({what, ": opening NUL"}));
    return h;
}

// The inheritable copies of the child's three handles, closed once it has its own.
class child_handles {
public:
    child_handles() = default;
    child_handles(const child_handles&) = delete;
    child_handles& operator=(const child_handles&) = delete;
    ~child_handles() {
        for (std::size_t i = 0; i < count_; ++i) ::CloseHandle(copies_[i]);
    }

    // An inheritable copy of h (a handle of this process); null if `optional` and h cannot
    // be copied (this process has no such standard handle: a GUI program's).
    HANDLE add(HANDLE h, bool optional, std::string_view what) {
        HANDLE copy = nullptr;
        const HANDLE self = ::GetCurrentProcess();
        if (h == nullptr || h == INVALID_HANDLE_VALUE ||
            !::DuplicateHandle(self, h, self, &copy, 0, TRUE, DUPLICATE_SAME_ACCESS)) {
            if (optional) return nullptr;
            throw_system_error(h == nullptr || h == INVALID_HANDLE_VALUE ? ERROR_INVALID_HANDLE
                                                                         : ::GetLastError(),
                               concat({what, ": a handle for the child"}));
        }
        copies_[count_++] = copy;
        return copy;
    }

    HANDLE* data() noexcept { return copies_; }
    std::size_t size() const noexcept { return count_; }

private:
    HANDLE copies_[3] = {};
    std::size_t count_ = 0;
};

// PROC_THREAD_ATTRIBUTE_HANDLE_LIST over the given handles: the only ones the child
// inherits.
class inherit_only {
public:
    inherit_only(HANDLE* handles, std::size_t count, std::string_view what) {
        SIZE_T size = 0;
        ::InitializeProcThreadAttributeList(nullptr, 1, 0, &size);  // says the size it needs
        storage_.resize(size);
        list_ = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage_.data());
        if (!::InitializeProcThreadAttributeList(list_, 1, 0, &size)) {
            list_ = nullptr;
            throw_system_error(::GetLastError(), concat({what, ": InitializeProcThreadAttributeList"}));
        }
        if (!::UpdateProcThreadAttribute(list_, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles,
                                         count * sizeof(HANDLE), nullptr, nullptr)) {
            const unsigned long err = ::GetLastError();
            ::DeleteProcThreadAttributeList(std::exchange(list_, nullptr));  // no destructor runs
            throw_system_error(err, concat({what, ": UpdateProcThreadAttribute"}));
        }
    }
    inherit_only(const inherit_only&) = delete;
    inherit_only& operator=(const inherit_only&) = delete;
    ~inherit_only() {
        if (list_) ::DeleteProcThreadAttributeList(list_);
    }

    LPPROC_THREAD_ATTRIBUTE_LIST get() const noexcept { return list_; }

private:
    std::vector<unsigned char> storage_;  // new's alignment, which the list needs
    LPPROC_THREAD_ATTRIBUTE_LIST list_ = nullptr;
};

// Starts the child. A program that cannot start (not found: errc::no_such_file_or_directory;
// a cwd that is not a directory: errc::not_a_directory, as Python's NotADirectoryError) is
// a std::system_error naming it.
inline child_id spawn_child(const spawn_request& r) {
    const std::string what = concat({"spawning \"", *r.program, "\""});
    std::string line;
    if (r.shell) {
        append_argument(line, *r.program);
        line += " /c \"";
        line += r.args->front();
        line += '"';
    } else {
        line = command_line(*r.program, *r.args);
    }
    std::wstring wide_line = to_utf16(line, what);  // CreateProcessW may write into it
    const std::wstring cwd = r.cwd ? to_utf16(r.cwd, what) : std::wstring();
    std::wstring env = r.env ? environment_block(*r.env, what) : std::wstring();

    child_handles handles;
    HANDLE std_handles[3] = {};
    const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    for (int i = 0; i < 3; ++i) {
        if (i == 2 && r.err_to_out) {
            std_handles[2] = std_handles[1];
        } else if (r.child_fds[i] != no_descriptor()) {
            std_handles[i] = handles.add(r.child_fds[i], false, what);
        } else {
            std_handles[i] = handles.add(::GetStdHandle(std_ids[i]), true, what);
        }
    }

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = std_handles[0];
    si.StartupInfo.hStdOutput = std_handles[1];
    si.StartupInfo.hStdError = std_handles[2];
    DWORD flags = CREATE_UNICODE_ENVIRONMENT;
    BOOL inherit = FALSE;
    std::optional<inherit_only> only;
    if (handles.size() > 0) {  // an empty handle list is an error: then inherit nothing
        only.emplace(handles.data(), handles.size(), what);
        si.lpAttributeList = only->get();
        flags |= EXTENDED_STARTUPINFO_PRESENT;
        inherit = TRUE;
    }
    PROCESS_INFORMATION pi{};
    if (!::CreateProcessW(nullptr, wide_line.data(), nullptr, nullptr, inherit, flags,
                          r.env ? env.data() : nullptr, r.cwd ? cwd.c_str() : nullptr,
                          &si.StartupInfo, &pi)) {
        throw_system_error(::GetLastError(), what);
    }
    ::CloseHandle(pi.hThread);
    return child_id{static_cast<int>(pi.dwProcessId), pi.hProcess};
}

// Windows has no descriptor the loop could watch for a process's end: a thread waits.
inline native_descriptor open_pidfd(const child_id&) noexcept { return no_descriptor(); }

// Whether the child has exited: true, and its exit code. `block` waits for it.
inline bool reap_child(const child_id& id, int& returncode, bool block) noexcept {
    const DWORD waited = ::WaitForSingleObject(id.process, block ? INFINITE : 0);
    if (waited == WAIT_TIMEOUT) return false;
    DWORD code = 0;
    if (waited != WAIT_OBJECT_0 || !::GetExitCodeProcess(id.process, &code)) {
        returncode = 255;  // the handle is unusable: the status is lost (POSIX's ECHILD)
        return true;
    }
    returncode = static_cast<int>(code);
    return true;
}

// A second handle of the child's process, for a thread that waits on it while the first
// may be closed.
inline child_id copy_child_id(const child_id& id) {
    child_id copy{id.pid, nullptr};
    const HANDLE self = ::GetCurrentProcess();
    if (!::DuplicateHandle(self, id.process, self, &copy.process, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
        throw_system_error(::GetLastError(), concat({"child process ", decimal(id.pid), ": DuplicateHandle"}));
    }
    return copy;
}

inline void close_child_id(child_id& id) noexcept {
    if (id.process) ::CloseHandle(std::exchange(id.process, nullptr));
}

// terminate() and kill() both end the child with TerminateProcess (see the top).
inline constexpr int terminate_signal = SIGTERM;
inline constexpr int kill_signal = SIGTERM;

// The numbers send_signal takes here, as asyncio on Windows; any other is an error.
inline void check_signal(int sig, const char* what) {
    if (sig == SIGTERM || sig == CTRL_C_EVENT || sig == CTRL_BREAK_EVENT) return;
    throw std::invalid_argument(
        concat({what, ": signal ", decimal(sig),
                " cannot be sent on Windows: SIGTERM (TerminateProcess), CTRL_C_EVENT and "
                "CTRL_BREAK_EVENT only"}));
}

// Sends sig (check_signal's) to the child; false if it did not go (the child has exited).
inline bool signal_child(const child_id& id, int sig) noexcept {
    if (sig == SIGTERM) return ::TerminateProcess(id.process, 1) != 0;
    return ::GenerateConsoleCtrlEvent(static_cast<DWORD>(sig), static_cast<DWORD>(id.pid)) != 0;
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif  // IOLOOP_WINDOWS

#endif
