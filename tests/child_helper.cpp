// The child the Windows subprocess tests start (test_subprocess.cpp), where POSIX's run
// cat, sleep and sh: Wine has no program that copies stdin to stdout byte for byte.
// Found by name next to the test programs (CreateProcessW looks in the directory of the
// program that starts it first). One mode per run:
//   ioloop_test_child copy         stdin to stdout, byte for byte, until EOF
//   ioloop_test_child lines        each line read becomes "line-<line>\n" at once
//   ioloop_test_child sleep MS     sleeps, then exits 0
//   ioloop_test_child started      "started\n" on stdout, then sleeps 30 s
//   ioloop_test_child args ...     each argument as the C runtime split it, "[arg]\n" (UTF-8)
//   ioloop_test_child handle N     exits 1 if N is an open handle here (inherited), else 0
//   ioloop_test_child protocol     "out\n" on stdout, "err\n" on stderr, then reads a line x
//                                  and answers "got-x\n"; exits 5 (as POSIX's protocol_command)
#include <windows.h>

#include <cwchar>
#include <string>

namespace {

bool write_all(HANDLE out, const char* data, DWORD size) {
    while (size > 0) {
        DWORD n = 0;
        if (!::WriteFile(out, data, size, &n, nullptr)) return false;
        data += n;
        size -= n;
    }
    return true;
}

std::string utf8(const wchar_t* w) {
    const int n = ::WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<std::size_t>(n > 0 ? n - 1 : 0), '\0');
    if (n > 1) ::WideCharToMultiByte(CP_UTF8, 0, w, -1, s.data(), n, nullptr, nullptr);
    return s;
}

}  // namespace

int wmain(int argc, wchar_t** argv) {
    const HANDLE in = ::GetStdHandle(STD_INPUT_HANDLE);
    const HANDLE out = ::GetStdHandle(STD_OUTPUT_HANDLE);
    const std::wstring mode = argc > 1 ? argv[1] : L"";
    if (mode == L"copy" || mode == L"lines") {
        char buf[65536];
        std::string line;
        for (;;) {
            DWORD n = 0;
            if (!::ReadFile(in, buf, sizeof buf, &n, nullptr) || n == 0) break;
            if (mode == L"copy") {
                if (!write_all(out, buf, n)) return 2;
                continue;
            }
            for (DWORD i = 0; i < n; ++i) {
                if (buf[i] != '\n') {
                    line += buf[i];
                    continue;
                }
                const std::string reply = "line-" + line + "\n";
                if (!write_all(out, reply.data(), static_cast<DWORD>(reply.size()))) return 2;
                line.clear();
            }
        }
        return 0;
    }
    if (mode == L"sleep" && argc > 2) {
        ::Sleep(static_cast<DWORD>(std::wcstoul(argv[2], nullptr, 10)));
        return 0;
    }
    if (mode == L"started") {
        if (!write_all(out, "started\n", 8)) return 2;
        ::Sleep(30000);
        return 0;
    }
    if (mode == L"args") {
        for (int i = 2; i < argc; ++i) {
            const std::string a = "[" + utf8(argv[i]) + "]\n";
            if (!write_all(out, a.data(), static_cast<DWORD>(a.size()))) return 2;
        }
        return 0;
    }
    if (mode == L"protocol") {
        if (!write_all(out, "out\n", 4) || !write_all(::GetStdHandle(STD_ERROR_HANDLE), "err\n", 4))
            return 2;
        std::string line;
        char c = 0;
        DWORD n = 0;
        while (::ReadFile(in, &c, 1, &n, nullptr) && n == 1 && c != '\n') line += c;
        const std::string reply = "got-" + line + "\n";
        return write_all(out, reply.data(), static_cast<DWORD>(reply.size())) ? 5 : 2;
    }
    if (mode == L"handle" && argc > 2) {
        const auto h = reinterpret_cast<HANDLE>(static_cast<ULONG_PTR>(std::wcstoull(argv[2], nullptr, 10)));
        DWORD flags = 0;
        return ::GetHandleInformation(h, &flags) ? 1 : 0;
    }
    return 3;
}
