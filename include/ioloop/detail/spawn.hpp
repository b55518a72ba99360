// ioloop: starting a child process and learning how it ended. The one place that chooses
// the system's way: detail/spawn_posix.hpp (posix_spawnp, pidfd, waitpid) or
// detail/spawn_windows.hpp (CreateProcessW, the process handle); each file is whole under
// its platform's macro. Both give the subprocess layer (subprocess/) the same names:
//
//   child_id                          names a child: its pid (and Windows' process handle)
//   spawn_child(spawn_request) -> child_id
//                                     starts it; one that cannot start is a
//                                     std::system_error naming the program
//   shell_program()                   what runs create_subprocess_shell's command
//   make_child_pipe(ours, childs, child_reads, what)
//                                     a pipe for one of the child's descriptors: this
//                                     process's end as connect_read_pipe / write_pipe take
//                                     it, the child's end as spawn_request takes it
//   open_devnull(what)                /dev/null, NUL
//   open_pidfd(id)                    a descriptor the loop can watch for the child's end,
//                                     or no_descriptor() (a thread waits instead)
//   reap_child(id, returncode, block) whether it has ended, and asyncio's returncode
//   copy_child_id(id), close_child_id(id)
//                                     a second handle for a thread that waits; freeing one
//   check_signal(sig, what), signal_child(id, sig), terminate_signal, kill_signal
#ifndef IOLOOP_DETAIL_SPAWN_HPP
#define IOLOOP_DETAIL_SPAWN_HPP

#include "ioloop/detail/spawn_posix.hpp"
#include "ioloop/detail/spawn_request.hpp"
#include "ioloop/detail/spawn_windows.hpp"

#endif
