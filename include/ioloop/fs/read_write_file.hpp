// ioloop: read_file(path) and write_file(path, data), a whole file in one hop to the loop's
// executor (open, read or write, close: one pool job, not three). Cancelled, they are
// run_in_executor: the caller sees cancelled_error at once; the job finishes on the pool
// (a write_file's bytes are written) and its result is dropped.
#ifndef IOLOOP_FS_READ_WRITE_FILE_HPP
#define IOLOOP_FS_READ_WRITE_FILE_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/run_in_executor.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/file_io.hpp"
#include "ioloop/fs/file.hpp"
#include "ioloop/loop_base.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct whole_file {
    std::string data;
    std::error_code error;
};

// The pool's work. Each owns its path (and bytes): it may outlive a cancelled caller's
// frame.
struct read_whole_file {
    std::string path;

    whole_file operator()() const {
        whole_file r;
        file_access access;
        access.read = true;
        native_file f = no_file();
        r.error = open_native_file(path, access, f);
        if (r.error) return r;
        try {
            r.error = read_native_file_to_end(f, r.data);
        } catch (...) {
            r.error = std::make_error_code(std::errc::not_enough_memory);
        }
        (void)close_native_file(f);  // read-only: nothing for close to report
        return r;
    }
};

struct write_whole_file {
    std::string path;
    std::string data;

    std::error_code operator()() const noexcept {
        file_access access;
        access.write = true;
        access.create = true;
        access.truncate = true;
        native_file f = no_file();
        std::error_code ec = open_native_file(path, access, f);
        if (ec) return ec;
        std::size_t written = 0;
        ec = write_native_file(f, data.data(), data.size(), false, written);
        const std::error_code closing = close_native_file(f);
        return ec ? ec : closing;
    }
};

// Templates on their work, so that nothing of run_in_executor is compiled where they are
// not used (a non-dependent call would be, in every program that includes the header).
template <class Work = read_whole_file>
coro<std::string> read_file_in_pool(std::string path) {
    loop_base& loop = loop_access::running_or_throw("read_file");
    auto job = loop.run_in_executor(Work{path});  // a statement of its own: see open_file_in_pool
    whole_file got = co_await std::move(job);
    if (got.error) throw_file_error(got.error, "read_file", path);
    co_return std::move(got.data);
}

template <class Work = write_whole_file>
coro<void> write_file_in_pool(Work work) {
    loop_base& loop = loop_access::running_or_throw("write_file");
    const std::string path = work.path;
    auto job = loop.run_in_executor(std::move(work));
    const std::error_code error = co_await std::move(job);
    if (error) throw_file_error(error, "write_file", path);
}

}  // namespace detail

// The whole file at path (UTF-8), read on the executor; std::system_error naming the path,
// as `read_file "/x": No such file or directory`.
template <class = void>  // a template: compiled only where it is used
[[nodiscard]] coro<std::string> read_file(std::string path) {
    return detail::read_file_in_pool(std::move(path));
}

// Replaces the file at path (created if missing, as mode "w") with data, written on the
// executor. data is copied at the call.
template <class = void>  // a template: compiled only where it is used
[[nodiscard]] coro<void> write_file(std::string path, std::string_view data) {
    return detail::write_file_in_pool(detail::write_whole_file{std::move(path), std::string(data)});
}

IOLOOP_NAMESPACE_END

#endif
