// ioloop: the blocking calls behind ioloop::file, read_file and write_file, under one set
// of names per platform: open(2) / read(2) / write(2) / lseek(2) / ftruncate(2) on POSIX,
// CreateFileW / ReadFile / WriteFile / SetFilePointerEx / SetEndOfFile on Windows. They
// run on the executor's threads, never on the loop's; each reports failure as the
// std::error_code it returns (empty on success), which fs/ turns into an exception naming
// the operation and the path.
#ifndef IOLOOP_DETAIL_FILE_IO_HPP
#define IOLOOP_DETAIL_FILE_IO_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/pipe_io.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <cstddef>
#include <string>
#include <system_error>

#if defined(IOLOOP_POSIX)
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/sendfile.h>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What an open mode asks of the system (fs/open_mode.hpp parses "r", "w+", "ab", ...).
struct file_access {
    bool read = false;
    bool write = false;
    bool append = false;     // every write goes to the end of the file
    bool create = false;     // a missing file is created
    bool truncate = false;   // an existing file is emptied
    bool exclusive = false;  // an existing file is an error (EEXIST)
};

// One system call moves at most this much: ReadFile and WriteFile take a 32-bit size, and
// Linux's read(2) stops at 0x7ffff000 bytes anyway.
inline constexpr std::size_t file_io_chunk = std::size_t{1} << 30;

#if defined(IOLOOP_POSIX)

using native_file = int;
inline constexpr native_file no_file() noexcept { return -1; }

inline std::error_code errno_code() noexcept { return {errno, std::generic_category()}; }

// A directory is refused here, as Python's open() refuses it (IsADirectoryError): open(2)
// of a directory for reading succeeds and only the first read(2) would fail.
inline std::error_code open_native_file(const std::string& path, const file_access& a,
                                        native_file& out) noexcept {
    int flags = O_CLOEXEC;
    if (a.read && a.write) {
        flags |= O_RDWR;
    } else {
        flags |= a.write ? O_WRONLY : O_RDONLY;
    }
    if (a.append) flags |= O_APPEND;
    if (a.create) flags |= O_CREAT;
    if (a.truncate) flags |= O_TRUNC;
    if (a.exclusive) flags |= O_EXCL;
    int fd;
    do {
        fd = ::open(path.c_str(), flags, 0666);
    } while (fd == -1 && errno == EINTR);
    if (fd == -1) return errno_code();
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        ::close(fd);
        return std::make_error_code(std::errc::is_a_directory);
    }
    out = fd;
    return {};
}

// One read(2) of at most `size` bytes; `got` is 0 at the end of the file.
inline std::error_code read_native_file(native_file fd, char* data, std::size_t size,
                                        std::size_t& got) noexcept {
    if (size > file_io_chunk) size = file_io_chunk;
    ::ssize_t n;
    do {
        n = ::read(fd, data, size);
    } while (n == -1 && errno == EINTR);
    if (n == -1) return errno_code();
    got = static_cast<std::size_t>(n);
    return {};
}

// Writes all of it (a regular file takes it in one call; a full disk ends it with ENOSPC).
// `written` counts what the system took, also when it fails part way. O_APPEND already
// sends every write to the end: `append` matters on Windows only.
inline std::error_code write_native_file(native_file fd, const char* data, std::size_t size,
                                         bool /*append*/, std::size_t& written) noexcept {
    written = 0;
    while (written < size) {
        std::size_t part = size - written;
        if (part > file_io_chunk) part = file_io_chunk;
        const ::ssize_t n = ::write(fd, data + written, part);
        if (n == -1) {
            if (errno == EINTR) continue;
            return errno_code();
        }
        written += static_cast<std::size_t>(n);
    }
    return {};
}

// lseek(2); whence is 0, 1 or 2 (SEEK_SET, SEEK_CUR, SEEK_END everywhere).
inline std::error_code seek_native_file(native_file fd, long long offset, int whence,
                                        long long& position) noexcept {
    const int how = whence == 0 ? SEEK_SET : whence == 1 ? SEEK_CUR : SEEK_END;
    const ::off_t at = ::lseek(fd, static_cast<::off_t>(offset), how);
    if (at == static_cast<::off_t>(-1)) return errno_code();
    position = static_cast<long long>(at);
    return {};
}

// The file's size becomes `size`; the position does not move.
inline std::error_code truncate_native_file(native_file fd, long long size) noexcept {
    int r;
    do {
        r = ::ftruncate(fd, static_cast<::off_t>(size));
    } while (r == -1 && errno == EINTR);
    return r == -1 ? errno_code() : std::error_code{};
}

// The file's size, or -1 if the system does not know it (a pipe, /proc): a hint for
// reading to the end in one allocation.
inline long long native_file_size(native_file fd) noexcept {
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    return static_cast<long long>(st.st_size);
}

// close(2) is not retried on EINTR: Linux has released the descriptor by then.
inline std::error_code close_native_file(native_file fd) noexcept {
    return ::close(fd) == -1 && errno != EINTR ? errno_code() : std::error_code{};
}

// sendfile(2): the kernel copies a file to a socket. Linux only here (the BSDs' and macOS's
// sendfile have other signatures and rules: loop.sendfile falls back there).
#if defined(__linux__)
inline constexpr bool native_sendfile_available = true;
// Up to count bytes of `in` from `offset` (advanced by what went) to the socket: the
// count, 0 at the end of the file, or -1 (errno says why: EPIPE, never a SIGPIPE, once the
// socket cannot send). The file's position is not used.
inline std::ptrdiff_t send_file_part(native_socket out, native_file in, long long& offset,
                                     std::size_t count) noexcept {
    off_t at = static_cast<off_t>(offset);
    const std::ptrdiff_t n =
        call_without_sigpipe([&]() noexcept { return ::sendfile(out, in, &at, count); });
    offset = static_cast<long long>(at);
    return n;
}
#else
inline constexpr bool native_sendfile_available = false;
inline std::ptrdiff_t send_file_part(native_socket, native_file, long long&,
                                     std::size_t) noexcept {
    errno = ENOSYS;
    return -1;
}
#endif

#elif defined(IOLOOP_WINDOWS)

using native_file = HANDLE;
inline native_file no_file() noexcept { return INVALID_HANDLE_VALUE; }

inline std::error_code last_error_code() noexcept { return system_error_code(::GetLastError()); }

// A UTF-8 path as the wide string CreateFileW takes; false if it is not UTF-8.
inline bool utf8_to_wide(const std::string& text, std::wstring& out) {
    if (text.empty()) {
        out.clear();
        return true;
    }
    const int size = static_cast<int>(text.size());
    const int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(), size,
                                        nullptr, 0);
    if (n <= 0) return false;
    out.assign(static_cast<std::size_t>(n), L'\0');
    return ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(), size, out.data(),
                                 n) == n;
}

// Shared as fopen's files are (read and write), and for deletion too, so that a file held
// open can be renamed or removed by another program, as on POSIX (a log rotator does).
// A directory fails with ERROR_ACCESS_DENIED; it is reported as EISDIR, as on POSIX.
inline std::error_code open_native_file(const std::string& path, const file_access& a,
                                        native_file& out) noexcept {
    std::wstring wide;
    try {
        if (!utf8_to_wide(path, wide)) return std::make_error_code(std::errc::invalid_argument);
    } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
    DWORD access = 0;
    if (a.read) access |= GENERIC_READ;
    if (a.write) access |= GENERIC_WRITE;
    DWORD disposition = OPEN_EXISTING;
    if (a.exclusive) {
        disposition = CREATE_NEW;
    } else if (a.create && a.truncate) {
        disposition = CREATE_ALWAYS;
    } else if (a.create) {
        disposition = OPEN_ALWAYS;
    } else if (a.truncate) {
        disposition = TRUNCATE_EXISTING;
    }
    const HANDLE h = ::CreateFileW(wide.c_str(), access,
                                   FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                                   nullptr, disposition, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) {
        const DWORD err = ::GetLastError();
        const DWORD attributes = ::GetFileAttributesW(wide.c_str());
        if (err == ERROR_ACCESS_DENIED && attributes != INVALID_FILE_ATTRIBUTES &&
            (attributes & FILE_ATTRIBUTE_DIRECTORY) != 0) {
            return std::make_error_code(std::errc::is_a_directory);
        }
        return system_error_code(err);
    }
    out = h;
    return {};
}

inline std::error_code read_native_file(native_file h, char* data, std::size_t size,
                                        std::size_t& got) noexcept {
    if (size > file_io_chunk) size = file_io_chunk;
    DWORD n = 0;
    if (!::ReadFile(h, data, static_cast<DWORD>(size), &n, nullptr)) {
        const DWORD err = ::GetLastError();
        if (err != ERROR_HANDLE_EOF && err != ERROR_BROKEN_PIPE) return system_error_code(err);
        n = 0;
    }
    got = n;
    return {};
}

// A handle has no O_APPEND (FILE_APPEND_DATA alone would refuse "a+"'s reads of what
// follows a seek): an appending write moves to the end first.
inline std::error_code write_native_file(native_file h, const char* data, std::size_t size,
                                         bool append, std::size_t& written) noexcept {
    written = 0;
    if (append) {
        LARGE_INTEGER zero;
        zero.QuadPart = 0;
        if (!::SetFilePointerEx(h, zero, nullptr, FILE_END)) return last_error_code();
    }
    while (written < size) {
        std::size_t part = size - written;
        if (part > file_io_chunk) part = file_io_chunk;
        DWORD n = 0;
        if (!::WriteFile(h, data + written, static_cast<DWORD>(part), &n, nullptr)) {
            return last_error_code();
        }
        written += n;
    }
    return {};
}

// FILE_BEGIN, FILE_CURRENT and FILE_END are 0, 1 and 2, as SEEK_SET, SEEK_CUR, SEEK_END.
inline std::error_code seek_native_file(native_file h, long long offset, int whence,
                                        long long& position) noexcept {
    LARGE_INTEGER distance;
    distance.QuadPart = offset;
    LARGE_INTEGER at;
    if (!::SetFilePointerEx(h, distance, &at, static_cast<DWORD>(whence))) {
        return last_error_code();
    }
    position = at.QuadPart;
    return {};
}

// SetEndOfFile cuts (or extends) at the position: moved there and back.
inline std::error_code truncate_native_file(native_file h, long long size) noexcept {
    long long was = 0;
    if (std::error_code ec = seek_native_file(h, 0, 1, was)) return ec;
    long long at = 0;
    if (std::error_code ec = seek_native_file(h, size, 0, at)) return ec;
    std::error_code ec;
    if (!::SetEndOfFile(h)) ec = last_error_code();
    (void)seek_native_file(h, was, 0, at);
    return ec;
}

inline long long native_file_size(native_file h) noexcept {
    LARGE_INTEGER size;
    if (::GetFileType(h) != FILE_TYPE_DISK || !::GetFileSizeEx(h, &size)) return -1;
    return size.QuadPart;
}

inline std::error_code close_native_file(native_file h) noexcept {
    return ::CloseHandle(h) ? std::error_code{} : last_error_code();
}

// No sendfile here (TransmitFile is not used: loop.sendfile falls back to reads and writes).
inline constexpr bool native_sendfile_available = false;
inline std::ptrdiff_t send_file_part(native_socket, native_file, long long&,
                                     std::size_t) noexcept {
    return -1;
}

#endif

// Reads from the position to the end of the file, appended to `out` (what it holds stays
// in front), with one allocation when the size is known.
inline std::error_code read_native_file_to_end(native_file f, std::string& out) {
    long long size = native_file_size(f);
    long long at = 0;
    if (size >= 0 && !seek_native_file(f, 0, 1, at)) {
        size = size > at ? size - at : 0;
    } else {
        size = -1;
    }
    // One byte more than the size: the read that returns 0 proves the end without a
    // second allocation (a file that grew meanwhile grows the string).
    std::size_t length = out.size();
    out.resize(length + (size >= 0 ? static_cast<std::size_t>(size) + 1 : std::size_t{64} << 10));
    for (;;) {
        if (length == out.size()) out.resize(out.size() * 2);
        std::size_t got = 0;
        if (std::error_code ec = read_native_file(f, out.data() + length, out.size() - length, got)) {
            out.resize(length);
            return ec;
        }
        if (got == 0) break;
        length += got;
    }
    out.resize(length);
    return {};
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
