// ioloop: asyncio's subprocess API on the coroutine front end.
//
//   ioloop::process p = co_await ioloop::create_subprocess_exec(
//       "grep", {"-c", "x"}, {.in = ioloop::stdio::pipe, .out = ioloop::stdio::pipe});
//   auto [out, err] = co_await p.communicate("x\ny\nx\n");  // out == "2\n"
//   int rc = co_await p.wait();                              // 0
//
// The child's pipes are ordinary pipe streams (connect_read_pipe / connect_write_pipe), so
// in(), out() and err() are the stream_writer and stream_readers every stream has.
#ifndef IOLOOP_SUBPROCESS_PROCESS_HPP
#define IOLOOP_SUBPROCESS_PROCESS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/gather.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/spawn.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/streams.hpp"
#include "ioloop/subprocess/child_watch.hpp"
#include "ioloop/subprocess/stdio.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

class process;

namespace detail {
struct spawned;
class subprocess_pipes;
// Templates only so that a program that starts no child does not compile them (a
// coroutine's body is transformed where it is defined: 0.17 s of every -O0 compile).
template <class = void>
coro<process> start_process(std::string program, std::vector<std::string> args, bool shell,
                            subprocess_options options, const char* what);
template <class = void>
void spawn_process(spawned& out, loop_base& loop, std::string& program,
                   std::vector<std::string>& args, bool shell, subprocess_options& options,
                   const char* what);
}  // namespace detail

// A child process (asyncio's asyncio.subprocess.Process). Move-only; dropping it leaves the
// child running, still reaped by its loop when it exits.
class process {
public:
    process() noexcept = default;
    process(process&& other) noexcept
        : child_(std::exchange(other.child_, nullptr)),
          in_(std::move(other.in_)),
          out_(std::move(other.out_)),
          err_(std::move(other.err_)) {}
    process& operator=(process&& other) noexcept {
        if (this != &other) {
            drop();
            child_ = std::exchange(other.child_, nullptr);
            in_ = std::move(other.in_);
            out_ = std::move(other.out_);
            err_ = std::move(other.err_);
        }
        return *this;
    }
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    ~process() { drop(); }

    int pid() const { return child("pid").pid(); }

    // The exit code once the child has exited (and the loop has seen it), -N if signal N
    // ended it; empty while it runs.
    std::optional<int> returncode() const { return child("returncode").returncode(); }

    // co_await p.wait() -> the returncode, once the child has exited. Any number of tasks
    // may wait; cancelling one (cancelled_error) does not touch the child.
    template <class = void>  // a template: compiled only where it is used (see above)
    [[nodiscard]] coro<int> wait() {
        detail::child& c = child("wait");
        c.add_ref();
        return wait_on(&c);
    }

    // co_await p.communicate(input) -> {stdout, stderr}: writes input to in() and closes
    // it, reads out() and err() to EOF meanwhile (no deadlock however much the child
    // writes first), then waits for the child. A stream that is not a pipe gives "" (input
    // to a child whose in is not a pipe is an invalid_state_error). A child that exits
    // without reading all of its input is not an error (asyncio ignores the broken pipe).
    template <class = void>
    [[nodiscard]] coro<std::pair<std::string, std::string>> communicate(std::string input = {}) {
        detail::child& c = child("communicate");
        if (!input.empty() && !in_) {
            throw invalid_state_error("communicate: input given, but the child's in is not a pipe");
        }
        c.add_ref();
        return communicate_on(&c, std::move(input), in_ ? clone(in_) : stream_writer(),
                              out_ ? clone(out_) : stream_reader(),
                              err_ ? clone(err_) : stream_reader());
    }

    // Sends the signal; on a child that has exited, nothing happens (asyncio 3.12). On
    // Windows, as asyncio there: SIGTERM is TerminateProcess (returncode 1), CTRL_C_EVENT
    // and CTRL_BREAK_EVENT go to the child's process group, and any other number is a
    // std::invalid_argument (asyncio's ValueError), whether the child runs or not.
    void send_signal(int sig) {
        detail::child& c = child("send_signal");
        detail::check_signal(sig, "send_signal");
        if (!c.returncode()) detail::signal_child(c.id(), sig);
    }
    // SIGTERM on POSIX (returncode -SIGTERM); on Windows TerminateProcess (returncode 1).
    void terminate() { send_signal(detail::terminate_signal); }
    // SIGKILL on POSIX (returncode -SIGKILL); on Windows the same as terminate().
    void kill() { send_signal(detail::kill_signal); }

    // The child's descriptors that are pipes (stdio::pipe); any other is an
    // invalid_state_error (asyncio's proc.stdin is None then).
    stream_writer& in() { return pipe_end(in_, "in"); }
    stream_reader& out() { return pipe_end(out_, "out"); }
    stream_reader& err() { return pipe_end(err_, "err"); }

private:
    friend class detail::subprocess_pipes;
    template <class>
    friend coro<process> detail::start_process(std::string, std::vector<std::string>, bool,
                                               subprocess_options, const char*);
    template <class>
    friend void detail::spawn_process(detail::spawned&, loop_base&, std::string&,
                                      std::vector<std::string>&, bool, subprocess_options&,
                                      const char*);

    detail::child& child(const char* what) const {
        if (!child_) {
            throw invalid_state_error(detail::concat({what, ": the process handle is empty"}));
        }
        return *child_;
    }

    template <class Handle>
    static Handle& pipe_end(Handle& h, const char* name) {
        if (!h) {
            throw invalid_state_error(
                detail::concat({"process::", name, "(): the child's ", name, " is not a pipe"}));
        }
        return h;
    }

    // A second handle to the same stream: communicate's coroutine keeps its own, so that it
    // does not depend on the process object staying where it is.
    static stream_writer clone(stream_writer& w) {
        return stream_writer(detail::stream_access::protocol_of(w));
    }
    static stream_reader clone(stream_reader& r) {
        return stream_reader(detail::stream_access::protocol_of(r));
    }

    // The reference wait() and communicate() took, given back when their coroutine ends.
    struct child_hold {
        detail::child* c;
        ~child_hold() { c->release(); }
    };

    template <class = void>
    static coro<int> wait_on(detail::child* c) {
        const child_hold hold{c};
        co_await c->exited().wait();
        co_return *c->returncode();
    }

    template <class = void>
    static coro<void> feed(stream_writer in, std::string input) {
        if (!in) co_return;
        try {
            if (!input.empty()) {
                in.write(input);
                co_await in.drain();
            }
        } catch (const std::system_error&) {
            // The child closed its stdin first (EPIPE, reset): what it did not read is not
            // an error, as in asyncio.
        }
        in.close();
    }

    template <class = void>
    static coro<std::string> drain_all(stream_reader r) {
        if (!r) co_return std::string();
        co_return co_await r.read();
    }

    template <class = void>
    static coro<std::pair<std::string, std::string>> communicate_on(detail::child* c,
                                                                    std::string input,
                                                                    stream_writer in,
                                                                    stream_reader out,
                                                                    stream_reader err) {
        const child_hold hold{c};
        auto [fed, o, e] = co_await gather(feed(std::move(in), std::move(input)),
                                           drain_all(std::move(out)), drain_all(std::move(err)));
        (void)fed;
        co_await c->exited().wait();
        co_return std::pair<std::string, std::string>(std::move(o), std::move(e));
    }

    void drop() noexcept {
        if (child_) std::exchange(child_, nullptr)->release();
    }

    detail::child* child_ = nullptr;
    stream_writer in_;
    stream_reader out_;
    stream_reader err_;
};

namespace detail {

// What start_process has once the child runs: the process, and this process's ends of
// the child's pipes, still to be made streams.
struct spawned {
    process p;
    owned_descriptor ours[3];
};

// The synchronous part of start_process (a plain function: g++ 12 cannot keep arrays in a
// coroutine's frame).
template <class>
void spawn_process(spawned& out, loop_base& loop, std::string& program,
                   std::vector<std::string>& args, bool shell, subprocess_options& options,
                   const char* what) {
    if (options.in.what() == stdio::kind::pipe || options.out.what() == stdio::kind::pipe ||
        options.err.what() == stdio::kind::pipe) {
        check_pipes_possible(loop, what);  // before a child starts with pipes nobody can use
    }
    // The child's ends: closed here once the child has its copies.
    owned_descriptor child_end[3];
    spawn_request req;
    const stdio* choice[3] = {&options.in, &options.out, &options.err};
    for (int i = 0; i < 3; ++i) {
        switch (choice[i]->what()) {
            case stdio::kind::inherit:
                break;
            case stdio::kind::pipe: {
                native_descriptor ours = no_descriptor();
                native_descriptor childs = no_descriptor();
                make_child_pipe(ours, childs, i == 0, what);
                out.ours[i] = owned_descriptor(ours);
                child_end[i] = owned_descriptor(childs);
                req.child_fds[i] = childs;
                break;
            }
            case stdio::kind::devnull:
                child_end[i] = owned_descriptor(open_devnull(what));
                req.child_fds[i] = child_end[i].get();
                break;
            case stdio::kind::to_stdout:  // err only (check_options)
                req.err_to_out = true;
                break;
            case stdio::kind::descriptor:
                req.child_fds[i] = choice[i]->descriptor();
                break;
        }
    }
    req.program = &program;
    req.args = &args;
    req.shell = shell;
    req.env = options.env;
    req.cwd = options.cwd;
    req.new_session = options.start_new_session;

    const child_id id = spawn_child(req);
    // From here the child runs: it is watched (and so reaped) whatever happens next.
    auto* c = new child(loop, id, program);
    c->add_ref();  // the handle's
    out.p.child_ = c;
    try {
        c->watch();
    } catch (...) {
        // No way to learn of its end: better no child than a zombie nobody waits for.
        signal_child(id, kill_signal);
        int rc = 0;
        reap_child(id, rc, true);
        throw;
    }
}

template <class>
coro<process> start_process(std::string program, std::vector<std::string> args, bool shell,
                            subprocess_options options, const char* what) {
    loop_base& loop = loop_access::running_or_throw(what);
    spawned s;
    spawn_process(s, loop, program, args, shell, options, what);
    if (s.ours[0].get() != no_descriptor()) s.p.in_ = co_await connect_write_pipe(s.ours[0].release());
    if (s.ours[1].get() != no_descriptor()) {
        s.p.out_ = co_await connect_read_pipe(s.ours[1].release(), options.limit);
    }
    if (s.ours[2].get() != no_descriptor()) {
        s.p.err_ = co_await connect_read_pipe(s.ours[2].release(), options.limit);
    }
    co_return std::move(s.p);
}

// What is wrong with the options is an error of the call, before any child starts.
inline void check_options(const subprocess_options& o, const char* what) {
    check_stream_limit(o.limit, what);
    if (o.in.what() == stdio::kind::to_stdout || o.out.what() == stdio::kind::to_stdout) {
        throw std::invalid_argument(concat({what, ": stdio::to_stdout is for err only"}));
    }
}

}  // namespace detail

// co_await create_subprocess_exec(program, args, options) -> process (asyncio's
// create_subprocess_exec): program is looked up on PATH as execvp does (on Windows as
// CreateProcessW does, and the arguments quoted as the C runtime splits them: see
// detail/spawn_windows.hpp); one that cannot start is a std::system_error from this call
// (errc::no_such_file_or_directory, permission_denied...), never a child that exits 127.
template <class = void>  // a template: compiled only where it is used
coro<process> create_subprocess_exec(std::string program, detail::arg_list args = {},
                                     const subprocess_options& options = {}) {
    detail::check_options(options, "create_subprocess_exec");
    return detail::start_process(std::move(program), std::move(args.get()), false, options,
                                 "create_subprocess_exec");
}

// co_await create_subprocess_shell(cmd, options) -> process: cmd run by `/bin/sh -c` (POSIX)
// or `cmd.exe /c` (Windows: %ComSpec% when set; the command passed as it is, in quotes).
template <class = void>
coro<process> create_subprocess_shell(std::string cmd, const subprocess_options& options = {}) {
    detail::check_options(options, "create_subprocess_shell");
    std::vector<std::string> args;
    args.push_back(std::move(cmd));
    return detail::start_process(detail::shell_program(), std::move(args), true, options,
                                 "create_subprocess_shell");
}

IOLOOP_NAMESPACE_END

#endif
