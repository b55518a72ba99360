// ioloop: what the subprocess layer asks of the system when it starts a child: the program,
// its arguments, environment and directory, and the child's three standard descriptors.
// detail/spawn_posix.hpp and detail/spawn_windows.hpp turn it into a running child (see
// detail/spawn.hpp for the whole contract).
#ifndef IOLOOP_DETAIL_SPAWN_REQUEST_HPP
#define IOLOOP_DETAIL_SPAWN_REQUEST_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <string>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

struct spawn_request {
    // POSIX: looked up on PATH when it has no '/', as execvp. Windows: as CreateProcessW
    // looks up a command line's first word (detail/spawn_windows.hpp).
    const std::string* program = nullptr;
    const std::vector<std::string>* args = nullptr;  // after the program's own name
    // args holds one shell command, which program (shell_program()) runs: "/bin/sh -c cmd"
    // on POSIX, `cmd.exe /c "cmd"` on Windows, the command given as it is, unquoted.
    bool shell = false;
    const std::vector<std::string>* env = nullptr;  // "NAME=value" each; null: inherited
    const char* cwd = nullptr;                      // UTF-8; null: this process's
    // child_fds[i] becomes the child's descriptor i (the child gets its own copy); none
    // (no_descriptor()): this process's own i, inherited. err_to_out makes the child's 2 a
    // copy of its 1.
    native_descriptor child_fds[3] = {no_descriptor(), no_descriptor(), no_descriptor()};
    bool err_to_out = false;
    // POSIX: setsid() in the child, its own session and process group (Popen's
    // start_new_session). Windows has no such thing and ignores it, as Popen does.
    bool new_session = false;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
