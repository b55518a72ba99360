// Subprocesses (asyncio's create_subprocess_exec / create_subprocess_shell), against real
// programs: sh, cat, sleep, grep, ls on POSIX; cmd.exe and ioloop_test_child
// (tests/child_helper.cpp: Wine has no cat) on Windows, through test::*_command (platform.hpp).
// Bytes through a child and back; exit codes; kill and terminate (-SIGKILL / -SIGTERM on
// POSIX, 1 on Windows); stdout and stderr apart and folded; many children at once; a missing
// program failing at the call; a cancelled wait leaving the child alone; lines read while the
// child runs; the thread that waits where there is no pidfd; the loop closing with a child
// running. POSIX only: a child the program forked itself, /proc/self/fd in the child,
// signals. Windows only: the command line's quoting, the handles a child inherits, the
// signals send_signal refuses. Windows' select has no pipes: the cases that need them are
// left out of that build (TEST_PIPES), which checks the error instead.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(TEST_POSIX_PROCESSES)
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

using namespace std::chrono_literals;
using ioloop::coro;
using nettest::failure_of;
using ioloop::stdio;

namespace {

// Runs the body twice: with the loop watching pidfds, and with the thread per child that
// stands in where the kernel has none (Windows: always the thread).
template <class Body>
void for_each_child_watch(Body body) {
    for (const bool threads : {false, true}) {
        CAPTURE(threads);
        ioloop::detail::force_thread_child_watch = threads;
        nettest::run(body());
        ioloop::detail::force_thread_child_watch = false;
    }
}

// The lines of text, each with its newline.
std::string lines(std::initializer_list<std::string_view> each) {
    std::string all;
    for (std::string_view l : each) {
        all += l;
        all += test::shell_newline;
    }
    return all;
}

// A test::child_command, started. (Not a coroutine: the call copies what it needs.)
coro<ioloop::process> start(const test::child_command& c, const ioloop::subprocess_options& o = {}) {
    return ioloop::create_subprocess_exec(c.program, c.args, o);
}

}  // namespace

#if defined(TEST_PIPES)

TEST_CASE("communicate: 4 MiB through a child that copies, byte for byte; grep's count; the returncode") {
    for_each_child_watch([]() -> coro<void> {
        const std::string payload = nettest::random_bytes(4 << 20, 21);
        ioloop::process p =
            co_await start(test::copy_command(), {.in = stdio::pipe, .out = stdio::pipe});
        CHECK(p.pid() > 0);
        CHECK_FALSE(p.returncode().has_value());
        auto [out, err] = co_await p.communicate(payload);
        CHECK(out.size() == payload.size());
        CHECK(out == payload);
        CHECK(err.empty());
        CHECK(p.returncode() == 0);
        CHECK(co_await p.wait() == 0);
#if defined(TEST_POSIX_PROCESSES)
        ioloop::process g = co_await ioloop::create_subprocess_exec(
            "grep", {"-c", "x"}, {.in = stdio::pipe, .out = stdio::pipe});
        auto [count, none] = co_await g.communicate("x\ny\nx\n");
        CHECK(count == "2\n");
        CHECK(co_await g.wait() == 0);
#endif
    });
}

#endif  // TEST_PIPES

TEST_CASE("exit codes; kill and terminate; signalling an exited child does nothing; many waiters") {
    for_each_child_watch([]() -> coro<void> {
        ioloop::process a = co_await ioloop::create_subprocess_shell("exit 7");
        CHECK(co_await a.wait() == 7);
        ioloop::process b = co_await start(test::sleep_command());
        b.kill();
        CHECK(co_await b.wait() == test::killed_returncode);
        ioloop::process c = co_await start(test::sleep_command());
        c.terminate();
        CHECK(co_await c.wait() == test::terminated_returncode);
        c.kill();  // exited: nothing happens, and nothing throws
        CHECK(c.returncode() == test::terminated_returncode);
        c.send_signal(SIGTERM);
        CHECK(c.returncode() == test::terminated_returncode);
        // Any number of tasks may wait.
        ioloop::process e = co_await ioloop::create_subprocess_shell("exit 3");
        auto [x, y] = co_await ioloop::gather(e.wait(), e.wait());
        CHECK(x == 3);
        CHECK(y == 3);
    });
}

#if defined(TEST_POSIX_PROCESSES)
TEST_CASE("a signal that ended the child is its returncode, -N") {
    for_each_child_watch([]() -> coro<void> {
        ioloop::process d = co_await ioloop::create_subprocess_exec("sleep", {"30"});
        d.send_signal(SIGINT);
        CHECK(co_await d.wait() == -SIGINT);
    });
}
#else
TEST_CASE("send_signal on Windows: SIGTERM ends the child; a signal Windows cannot send is an error") {
    nettest::run([]() -> coro<void> {
        ioloop::process p = co_await start(test::sleep_command());
        // asyncio's ValueError, whether the child runs or not; the child is not touched.
        CHECK_THROWS_AS(p.send_signal(SIGINT), std::invalid_argument);
        CHECK_THROWS_AS(p.send_signal(9), std::invalid_argument);
        CHECK_FALSE(p.returncode().has_value());
        CHECK(test::process_exists(p.pid()));
        p.send_signal(SIGTERM);
        CHECK(co_await p.wait() == 1);
        CHECK_THROWS_AS(p.send_signal(SIGINT), std::invalid_argument);
    }());
}
#endif

#if defined(TEST_PIPES)

TEST_CASE("stdout and stderr apart, folded with stdio::to_stdout, and sent to the null device") {
    nettest::run([]() -> coro<void> {
        ioloop::process apart = co_await ioloop::create_subprocess_shell(
            test::shell_out_then_err, {.out = stdio::pipe, .err = stdio::pipe});
        auto [o1, e1] = co_await apart.communicate();
        CHECK(o1 == lines({"out"}));
        CHECK(e1 == lines({"err"}));
        ioloop::process folded = co_await ioloop::create_subprocess_shell(
            test::shell_out_then_err, {.out = stdio::pipe, .err = stdio::to_stdout});
        auto [o2, e2] = co_await folded.communicate();
        CHECK(o2 == lines({"out", "err"}));
        CHECK(e2.empty());
        ioloop::process quiet = co_await ioloop::create_subprocess_shell(
            test::shell_out_then_err, {.out = stdio::devnull, .err = stdio::pipe});
        auto [o3, e3] = co_await quiet.communicate();
        CHECK(o3.empty());
        CHECK(e3 == lines({"err"}));
        // A stream that is not a pipe is an error to use.
        CHECK_THROWS_AS(quiet.out(), ioloop::invalid_state_error);
        CHECK_THROWS_AS(quiet.in(), ioloop::invalid_state_error);
        CHECK_THROWS_AS((void)quiet.communicate("input, with no pipe to take it"),
                        ioloop::invalid_state_error);
    }());
}

TEST_CASE("env replaces the child's environment") {
    nettest::run([]() -> coro<void> {
        std::vector<std::string> env = test::base_env;
        env.emplace_back("IOLOOP_TEST_VAR=set");
        ioloop::process q = co_await ioloop::create_subprocess_shell(
            test::shell_print_test_var, {.out = stdio::pipe, .env = &env});
        auto [o, e] = co_await q.communicate();
        CHECK(o == lines({"[set]"}));
    }());
}

#else

TEST_CASE("Windows' select: stdio::pipe is an error of the call, and no child starts; children without pipes run") {
    nettest::run([]() -> coro<void> {
        const std::system_error refused = co_await failure_of(
            [] { return start(test::copy_command(), {.in = stdio::pipe}); },
            "a child with a pipe started on select");
        CHECK(refused.code() == std::errc::operation_not_supported);
        CHECK(std::string(refused.what()).find("create_subprocess_exec") != std::string::npos);
        // The callback front end the same.
        struct no_calls : ioloop::subprocess_protocol {};
        const test::child_command c = test::copy_command();
        const std::system_error refused_too = co_await failure_of(
            [&c] {
                return ioloop::get_running_loop().subprocess_exec(
                    [] { return std::make_unique<no_calls>(); }, c.program, c.args,
                    {.out = stdio::pipe});
            },
            "loop.subprocess_exec with a pipe started on select");
        CHECK(refused_too.code() == std::errc::operation_not_supported);
        ioloop::process p = co_await ioloop::create_subprocess_shell(
            "exit 4", {.in = stdio::devnull, .out = stdio::devnull, .err = stdio::to_stdout});
        CHECK(co_await p.wait() == 4);
    }());
}

#endif  // TEST_PIPES

TEST_CASE("a handle of this process as the child's stdout; cwd") {
    nettest::run([]() -> coro<void> {
        test::temp_file file;
        ioloop::process p = co_await ioloop::create_subprocess_shell(
            test::shell_then(test::shell_print_cwd, "echo done"),
            {.out = stdio(file.handle()), .cwd = test::some_directory});
        CHECK(co_await p.wait() == 0);
        // The handle is still this process's: the child had a copy.
        CHECK(file.contents() == lines({test::some_directory, "done"}));
    }());
}

TEST_CASE("a program that cannot start fails at the call, not as a child exiting 127") {
    nettest::run([]() -> coro<void> {
        const std::system_error missing = co_await failure_of(
            [] { return ioloop::create_subprocess_exec("ioloop-no-such-program"); },
            "a missing program started");
        CHECK(missing.code() == std::errc::no_such_file_or_directory);
        CHECK(std::string(missing.what()).find("ioloop-no-such-program") != std::string::npos);
        const std::system_error bad_cwd = co_await failure_of(
            [] {
                return ioloop::create_subprocess_shell("exit 0", {.cwd = "/ioloop/no/such/dir"});
            },
            "a child started in a missing directory");
        CHECK(bad_cwd.code() == test::missing_cwd_error);
        CHECK_THROWS_AS((void)ioloop::create_subprocess_shell("exit 0", {.in = stdio::to_stdout}),
                        std::invalid_argument);
#if defined(TEST_POSIX_PROCESSES)
        char path[] = "/tmp/ioloop-not-executable-XXXXXX";  // mode 0600: no x bit at all
        const int fd = ::mkstemp(path);
        REQUIRE(fd >= 0);
        ::close(fd);
        const std::string not_executable = path;
        const std::system_error not_exec = co_await failure_of(
            [&] { return ioloop::create_subprocess_exec(not_executable); },
            "a file that is not executable started");
        ::unlink(path);
        CHECK(not_exec.code() == std::errc::permission_denied);
#endif
    }());
}

TEST_CASE("many children at once, each with its own exit code (and output, where there are pipes)") {
    for_each_child_watch([]() -> coro<void> {
        std::vector<ioloop::task<std::pair<std::string, int>>> tasks;
        for (int i = 0; i < test::many_children; ++i) {
            tasks.push_back(ioloop::create_task([](int i) -> coro<std::pair<std::string, int>> {
                const std::string cmd = test::shell_then("echo " + std::to_string(i),
                                                         "exit " + std::to_string(i % 7));
#if defined(TEST_PIPES)
                ioloop::process p =
                    co_await ioloop::create_subprocess_shell(cmd, {.out = stdio::pipe});
#else
                ioloop::process p =
                    co_await ioloop::create_subprocess_shell(cmd, {.out = stdio::devnull});
#endif
                auto [out, err] = co_await p.communicate();
                co_return std::pair<std::string, int>(out, co_await p.wait());
            }(i)));
        }
        std::vector<std::pair<std::string, int>> results = co_await ioloop::gather(tasks);
        for (int i = 0; i < test::many_children; ++i) {
#if defined(TEST_PIPES)
            CHECK(results[static_cast<std::size_t>(i)].first == lines({std::to_string(i)}));
#endif
            CHECK(results[static_cast<std::size_t>(i)].second == i % 7);
        }
    });
}

#if defined(TEST_POSIX_PROCESSES)

TEST_CASE("a child the program forked itself is left for its own waitpid") {
    for_each_child_watch([]() -> coro<void> {
        const pid_t own = ::fork();
        REQUIRE(own >= 0);
        if (own == 0) ::_exit(42);
        // One of ours exits too, and is reaped by the loop; the other one is not touched.
        ioloop::process p = co_await ioloop::create_subprocess_exec("true");
        CHECK(co_await p.wait() == 0);
        int status = 0;
        pid_t r;
        while ((r = ::waitpid(own, &status, 0)) == -1 && errno == EINTR) {
        }
        CHECK(r == own);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 42);
    });
}

TEST_CASE("no descriptor of the parent reaches the child: only 0, 1 and 2") {
    nettest::run([]() -> coro<void> {
        // One opened without close-on-exec, as a careless program would.
        const int leaky = ::open("/dev/null", O_RDONLY);
        REQUIRE(leaky >= 0);
        ioloop::process p = co_await ioloop::create_subprocess_exec(
            "ls", {"/proc/self/fd"}, {.out = stdio::pipe});
        const std::string out = (co_await p.communicate()).first;
        ::close(leaky);
        CHECK(co_await p.wait() == 0);
        // ls's own descriptor of the directory it lists is the one more it may show.
        std::vector<std::string> fds;
        std::size_t start = 0;
        for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1) {
            fds.push_back(out.substr(start, nl - start));
        }
        CAPTURE(out);
        REQUIRE(fds.size() >= 3);
        CHECK(fds[0] == "0");
        CHECK(fds[1] == "1");
        CHECK(fds[2] == "2");
        CHECK(fds.size() <= 4);
    }());
}

#endif  // TEST_POSIX_PROCESSES

#if defined(IOLOOP_WINDOWS)

TEST_CASE("Windows: only the child's three handles are inherited, not another inheritable one") {
    nettest::run([]() -> coro<void> {
        // An inheritable handle, as a careless program would make one.
        SECURITY_ATTRIBUTES inheritable{sizeof inheritable, nullptr, TRUE};
        const HANDLE event = ::CreateEventW(&inheritable, TRUE, FALSE, nullptr);
        REQUIRE(event != nullptr);
        const auto number = std::to_string(reinterpret_cast<std::uintptr_t>(event));
        // The child exits 1 if that number is an open handle in it.
        ioloop::process p = co_await ioloop::create_subprocess_exec(
            "ioloop_test_child", {"handle", number},
            {.in = stdio::devnull, .out = stdio::devnull});
        CHECK(co_await p.wait() == 0);
        ::CloseHandle(event);
    }());
}

TEST_CASE("Windows: the command line is quoted as the C runtime splits it (Python's list2cmdline)") {
    using ioloop::detail::command_line;
    CHECK(command_line("prog", {"a", "b c", ""}) == "prog a \"b c\" \"\"");
    CHECK(command_line("C:\\Program Files\\x.exe", {}) == "\"C:\\Program Files\\x.exe\"");
    CHECK(command_line("p", {"say \"hi\""}) == "p \"say \\\"hi\\\"\"");
    CHECK(command_line("p", {"a\\\\b", "c\\\"d"}) == "p a\\\\b c\\\\\\\"d");  // only before '"'
    CHECK(command_line("p", {"dir\\", "my dir\\"}) == "p dir\\ \"my dir\\\\\"");
    CHECK(command_line("p", {"tab\there"}) == "p \"tab\there\"");
#if defined(TEST_PIPES)
    nettest::run([]() -> coro<void> {
        const std::vector<std::string> args{"args", "a b", "", "c\"d", "e\\", "f g\\", "h\\\"i",
                                            "tab\there", "\xc3\xbcnic\xc3\xb6" "de"};
        ioloop::process p = co_await ioloop::create_subprocess_exec("ioloop_test_child", args,
                                                                    {.out = stdio::pipe});
        auto [out, err] = co_await p.communicate();
        std::string expected;
        for (std::size_t i = 1; i < args.size(); ++i) expected += "[" + args[i] + "]\n";
        CHECK(out == expected);
        CHECK(co_await p.wait() == 0);
    }());
#endif
}

TEST_CASE("Windows: the environment block is sorted by name, case-insensitively, and ends in two NULs") {
    using ioloop::detail::environment_block;
    const std::vector<std::string> env{"ZED=1", "abc=2", "=C:=C:\\x", "Path=p", "PATH_EXT=e",
                                       "\xc3\xa9t\xc3\xa9=3"};
    // '=' (0x3D) sorts before letters; "Path" before "PATH_EXT" (a prefix first); é after Z.
    const std::wstring expected(L"=C:=C:\\x\0abc=2\0Path=p\0PATH_EXT=e\0ZED=1\0\u00e9t\u00e9=3\0\0", 46);
    CHECK(environment_block(env, "test") == expected);
    CHECK(environment_block({}, "test") == std::wstring(2, L'\0'));
}

#endif  // IOLOOP_WINDOWS

#if defined(TEST_PIPES)

TEST_CASE("a cancelled wait leaves the child alone; lines read while the child runs and other tasks run") {
    for_each_child_watch([]() -> coro<void> {
        ioloop::process p =
            co_await start(test::lines_command(), {.in = stdio::pipe, .out = stdio::pipe});
        // A wait cancelled by a timeout: the child is still there, and still ours.
        CHECK_THROWS_AS(co_await ioloop::wait_for(p.wait(), 20ms), ioloop::timeout_error);
        CHECK_FALSE(p.returncode().has_value());
        CHECK(test::process_exists(p.pid()));
        // Meanwhile another task keeps running.
        int ticks = 0;
        ioloop::event stop;
        // (Its state comes as arguments: a lambda's captures would die with the closure.)
        ioloop::task<void> ticker = ioloop::create_task(
            [](int* ticks, ioloop::event* stop) -> coro<void> {
                while (!stop->is_set()) {
                    ++*ticks;
                    co_await ioloop::sleep(1ms);
                }
            }(&ticks, &stop));
        p.in().write("1\n");
        CHECK(co_await p.out().readline() == "line-1\n");
        const int ticks_between = ticks;
        p.in().write("2\n");
        CHECK(co_await p.out().readline() == "line-2\n");
        p.in().close();
        CHECK(co_await p.wait() == 0);
        CHECK(co_await p.out().read() == "");
        stop.set();
        co_await ticker;
        CHECK(ticks_between > 0);  // the ticker ran while the first line was awaited
        CHECK(ticks > 0);
    });
}

#endif  // TEST_PIPES

TEST_CASE("a dropped process is still reaped: no zombie is left") {
    for_each_child_watch([]() -> coro<void> {
        int pid = 0;
        {
            ioloop::process p = co_await ioloop::create_subprocess_shell("exit 0");
            pid = p.pid();
        }
        // Nobody waits for it; the loop reaps it when it exits.
        AWAIT_UNTIL(!test::process_exists(pid));
    });
}

TEST_CASE("the loop closing with a child running: reported, the child left running, then reaped") {
    for (const bool threads : {false, true}) {
        CAPTURE(threads);
        ioloop::detail::force_thread_child_watch = threads;
        int pid = 0;
        std::string report;
        {
            ioloop::event_loop loop;
            loop.set_exception_handler([&](const ioloop::exception_context& c) {
                report = c.message;
            });
            ioloop::process p = loop.run_until_complete(start(test::sleep_command()));
            pid = p.pid();
            loop.close();
            CHECK(report.find("still running") != std::string::npos);
            CHECK(report.find(std::to_string(pid)) != std::string::npos);
            CHECK(test::process_exists(pid));  // not killed by the close
        }
        ioloop::detail::force_thread_child_watch = false;
        REQUIRE(test::end_process(pid));
        // The thread that waits for it reaps it: no zombie. (Polled: this is another thread.)
        const auto until = std::chrono::steady_clock::now() + 20s;
        while (test::process_exists(pid) && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(1ms);
        }
        CHECK_FALSE(test::process_exists(pid));
    }
}

// The callback front end (loop.subprocess_exec): POSIX's for now.
#if defined(TEST_PIPES)

namespace {

// What a subprocess_protocol heard, in order.
struct child_record {
    std::vector<std::string> calls;
    std::string out;
    std::string err;
    ioloop::subprocess_transport* t = nullptr;
    std::optional<int> returncode_at_exit;
    bool lost = false;
};

class child_probe final : public ioloop::subprocess_protocol {
public:
    explicit child_probe(child_record& r) : r_(r) {}
    void connection_made(ioloop::subprocess_transport& t) override {
        r_.calls.push_back("made");
        r_.t = &t;
    }
    void pipe_data_received(int fd, std::string_view data) override {
        (fd == 1 ? r_.out : r_.err).append(data);
    }
    void pipe_connection_lost(int fd, std::error_code ec) override {
        r_.calls.push_back("pipe_lost " + std::to_string(fd) + (ec ? " error" : ""));
    }
    void process_exited() override {
        r_.calls.push_back("exited");
        r_.returncode_at_exit = r_.t->get_returncode();
    }
    void connection_lost(std::error_code ec) override {
        r_.calls.push_back(ec ? "lost error" : "lost");
        r_.lost = true;
        r_.t = nullptr;
    }

private:
    child_record& r_;
};

}  // namespace

TEST_CASE("loop.subprocess_exec: protocol calls in asyncio's order, the pipes' transports, and connection_lost last") {
    for_each_child_watch([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        child_record r;
        const test::child_command c = test::protocol_command();
        auto [t, p] = co_await loop.subprocess_exec(
            [&r] { return std::make_unique<child_probe>(r); }, c.program, c.args,
            {.in = stdio::pipe, .out = stdio::pipe, .err = stdio::pipe});
        REQUIRE(t != nullptr);
        CHECK(p != nullptr);
        CHECK(r.calls.at(0) == "made");
        CHECK(t->get_pid() > 0);
        CHECK_FALSE(t->get_returncode().has_value());
        REQUIRE(t->get_pipe_transport(0) != nullptr);
        CHECK(t->get_pipe_transport(1) != nullptr);
        CHECK(t->get_pipe_transport(3) == nullptr);
        t->get_pipe_transport(0)->write("x\n");
        t->get_pipe_transport(0)->close();
        AWAIT_UNTIL(r.lost);
        CHECK(r.out == "out\ngot-x\n");
        CHECK(r.err == "err\n");
        CHECK(r.returncode_at_exit == 5);
        // made first, lost last, each pipe lost once, exited once.
        REQUIRE(r.calls.size() == 6);
        CHECK(r.calls.front() == "made");
        CHECK(r.calls.back() == "lost");
        for (const char* c : {"pipe_lost 0", "pipe_lost 1", "pipe_lost 2", "exited"}) {
            CHECK(std::count(r.calls.begin(), r.calls.end(), c) == 1);
        }
    });
}

TEST_CASE("subprocess_transport::close kills a running child; subprocess_shell; a missing program") {
    nettest::run([]() -> coro<void> {
        auto& loop = ioloop::get_running_loop();
        child_record r;
        const test::child_command c = test::started_then_sleep_command();
        auto [t, p] = co_await loop.subprocess_exec(
            [&r] { return std::make_unique<child_probe>(r); }, c.program, c.args,
            {.out = stdio::pipe});
        AWAIT_UNTIL(r.out == "started\n");
        t->close();
        CHECK(t->is_closing());
        AWAIT_UNTIL(r.lost);
        CHECK(r.returncode_at_exit == test::killed_returncode);
        CHECK(r.calls.back() == "lost");

        child_record shell;
        co_await loop.subprocess_shell([&shell] { return std::make_unique<child_probe>(shell); },
                                       test::shell_out_then_err,
                                       {.out = stdio::pipe, .err = stdio::pipe});
        AWAIT_UNTIL(shell.lost);
        CHECK(shell.out == lines({"out"}));
        CHECK(shell.err == lines({"err"}));
        CHECK(shell.returncode_at_exit == 0);

        const std::system_error missing = co_await failure_of(
            [&] {
                return loop.subprocess_exec([&r] { return std::make_unique<child_probe>(r); },
                                            "ioloop-no-such-program", {}, {});
            },
            "a missing program started");
        CHECK(missing.code() == std::errc::no_such_file_or_directory);
    }());
}

#endif  // TEST_PIPES

TEST_CASE("an empty process handle is a clear error") {
    ioloop::process empty;
    CHECK_THROWS_AS((void)empty.pid(), ioloop::invalid_state_error);
    CHECK_THROWS_AS(empty.kill(), ioloop::invalid_state_error);
    CHECK_THROWS_AS((void)empty.wait(), ioloop::invalid_state_error);
}
