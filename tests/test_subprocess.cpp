// Subprocesses (asyncio's create_subprocess_exec / create_subprocess_shell), against real
// programs: sh, cat, sleep, grep, ls. 4 MiB through cat and back; exit codes; kill and
// terminate as -SIGKILL / -SIGTERM; stdout and stderr apart and folded; 50 children at
// once; a child the program forked itself left for its own waitpid; no descriptor of the
// parent in the child; a missing program failing at the call; a cancelled wait leaving
// the child alone; lines read while the child runs; the thread that waits where there is
// no pidfd; the loop closing with a child running. POSIX's for now (Windows' children are
// still to come).
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "net_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#if defined(IOLOOP_POSIX)

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <string_view>
#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using ioloop::coro;
using nettest::failure_of;
using ioloop::stdio;

namespace {

// Whether pid is still a process of the system (running, or a zombie nobody reaped).
bool process_exists(int pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Runs the body twice: with the loop watching pidfds, and with the thread per child that
// stands in where the kernel has none.
template <class Body>
void for_each_child_watch(Body body) {
    for (const bool threads : {false, true}) {
        CAPTURE(threads);
        ioloop::detail::force_thread_child_watch = threads;
        nettest::run(body());
        ioloop::detail::force_thread_child_watch = false;
    }
}

}  // namespace

TEST_CASE("communicate: 4 MiB through cat, byte for byte; grep's count; the returncode") {
    for_each_child_watch([]() -> coro<void> {
        const std::string payload = nettest::random_bytes(4 << 20, 21);
        ioloop::process p = co_await ioloop::create_subprocess_exec(
            "cat", {}, {.in = stdio::pipe, .out = stdio::pipe});
        CHECK(p.pid() > 0);
        CHECK_FALSE(p.returncode().has_value());
        auto [out, err] = co_await p.communicate(payload);
        CHECK(out.size() == payload.size());
        CHECK(out == payload);
        CHECK(err.empty());
        CHECK(p.returncode() == 0);
        CHECK(co_await p.wait() == 0);

        ioloop::process g = co_await ioloop::create_subprocess_exec(
            "grep", {"-c", "x"}, {.in = stdio::pipe, .out = stdio::pipe});
        auto [count, none] = co_await g.communicate("x\ny\nx\n");
        CHECK(count == "2\n");
        CHECK(co_await g.wait() == 0);
    });
}

TEST_CASE("exit codes, and signals as -N: kill, terminate, send_signal; signalling an exited child does nothing") {
    for_each_child_watch([]() -> coro<void> {
        ioloop::process a = co_await ioloop::create_subprocess_shell("exit 7");
        CHECK(co_await a.wait() == 7);
        ioloop::process b = co_await ioloop::create_subprocess_exec("sleep", {"30"});
        b.kill();
        CHECK(co_await b.wait() == -SIGKILL);
        ioloop::process c = co_await ioloop::create_subprocess_exec("sleep", {"30"});
        c.terminate();
        CHECK(co_await c.wait() == -SIGTERM);
        ioloop::process d = co_await ioloop::create_subprocess_exec("sleep", {"30"});
        d.send_signal(SIGINT);
        CHECK(co_await d.wait() == -SIGINT);
        d.kill();  // exited: nothing happens, and nothing throws
        CHECK(d.returncode() == -SIGINT);
        // Any number of tasks may wait.
        ioloop::process e = co_await ioloop::create_subprocess_shell("exit 3");
        auto [x, y] = co_await ioloop::gather(e.wait(), e.wait());
        CHECK(x == 3);
        CHECK(y == 3);
    });
}

TEST_CASE("stdout and stderr apart, folded with stdio::to_stdout, and sent to /dev/null") {
    nettest::run([]() -> coro<void> {
        const char* script = "echo out; echo err >&2";
        ioloop::process apart = co_await ioloop::create_subprocess_shell(
            script, {.out = stdio::pipe, .err = stdio::pipe});
        auto [o1, e1] = co_await apart.communicate();
        CHECK(o1 == "out\n");
        CHECK(e1 == "err\n");
        ioloop::process folded = co_await ioloop::create_subprocess_shell(
            script, {.out = stdio::pipe, .err = stdio::to_stdout});
        auto [o2, e2] = co_await folded.communicate();
        CHECK(o2 == "out\nerr\n");
        CHECK(e2.empty());
        ioloop::process quiet = co_await ioloop::create_subprocess_shell(
            script, {.out = stdio::devnull, .err = stdio::pipe});
        auto [o3, e3] = co_await quiet.communicate();
        CHECK(o3.empty());
        CHECK(e3 == "err\n");
        // A stream that is not a pipe is an error to use.
        CHECK_THROWS_AS(quiet.out(), ioloop::invalid_state_error);
        CHECK_THROWS_AS(quiet.in(), ioloop::invalid_state_error);
        CHECK_THROWS_AS((void)quiet.communicate("input, with no pipe to take it"),
                        ioloop::invalid_state_error);
    }());
}

TEST_CASE("a descriptor of this process as the child's stdout; cwd and env") {
    nettest::run([]() -> coro<void> {
        char path[] = "/tmp/ioloop-subprocess-XXXXXX";
        const int fd = ::mkstemp(path);
        REQUIRE(fd >= 0);
        ioloop::process p = co_await ioloop::create_subprocess_shell(
            "pwd; echo \"[$IOLOOP_TEST_VAR]\"",
            {.out = stdio(fd), .cwd = "/usr"});
        CHECK(co_await p.wait() == 0);
        const std::vector<std::string> env{"IOLOOP_TEST_VAR=set", "PATH=/usr/bin:/bin"};
        ioloop::process q = co_await ioloop::create_subprocess_shell(
            "echo \"[$IOLOOP_TEST_VAR]\"", {.out = stdio::pipe, .env = &env});
        auto [o, e] = co_await q.communicate();
        CHECK(o == "[set]\n");
        // The descriptor is still this process's: the child had a copy.
        char buf[64] = {};
        REQUIRE(::lseek(fd, 0, SEEK_SET) == 0);
        const ssize_t n = ::read(fd, buf, sizeof buf - 1);
        CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "/usr\n[]\n");
        ::close(fd);
        ::unlink(path);
    }());
}

TEST_CASE("a program that cannot start fails at the call, not as a child exiting 127") {
    nettest::run([]() -> coro<void> {
        const std::system_error missing = co_await failure_of(
            [] { return ioloop::create_subprocess_exec("ioloop-no-such-program"); },
            "a missing program started");
        CHECK(missing.code() == std::errc::no_such_file_or_directory);
        CHECK(std::string(missing.what()).find("ioloop-no-such-program") != std::string::npos);
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
        const std::system_error bad_cwd = co_await failure_of(
            [] {
                return ioloop::create_subprocess_exec("true", {},
                                                      {.cwd = "/ioloop/no/such/dir"});
            },
            "a child started in a missing directory");
        CHECK(bad_cwd.code() == std::errc::no_such_file_or_directory);
        CHECK_THROWS_AS((void)ioloop::create_subprocess_exec("true", {}, {.in = stdio::to_stdout}),
                        std::invalid_argument);
    }());
}

TEST_CASE("50 children at once, each with its own exit code and output") {
    for_each_child_watch([]() -> coro<void> {
        std::vector<ioloop::task<std::pair<std::string, int>>> tasks;
        for (int i = 0; i < 50; ++i) {
            tasks.push_back(ioloop::create_task([](int i) -> coro<std::pair<std::string, int>> {
                const std::string cmd = "echo " + std::to_string(i) + "; exit " +
                                        std::to_string(i % 7);
                ioloop::process p =
                    co_await ioloop::create_subprocess_shell(cmd, {.out = stdio::pipe});
                auto [out, err] = co_await p.communicate();
                co_return std::pair<std::string, int>(out, co_await p.wait());
            }(i)));
        }
        std::vector<std::pair<std::string, int>> results = co_await ioloop::gather(tasks);
        for (int i = 0; i < 50; ++i) {
            CHECK(results[static_cast<std::size_t>(i)].first == std::to_string(i) + "\n");
            CHECK(results[static_cast<std::size_t>(i)].second == i % 7);
        }
    });
}

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

TEST_CASE("a cancelled wait leaves the child alone; lines read while the child runs and other tasks run") {
    for_each_child_watch([]() -> coro<void> {
        ioloop::process p = co_await ioloop::create_subprocess_exec(
            "sh", {"-c", "read x; echo line-$x; read y; echo line-$y"},
            {.in = stdio::pipe, .out = stdio::pipe});
        // A wait cancelled by a timeout: the child is still there, and still ours.
        CHECK_THROWS_AS(co_await ioloop::wait_for(p.wait(), 20ms), ioloop::timeout_error);
        CHECK_FALSE(p.returncode().has_value());
        CHECK(process_exists(p.pid()));
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
        CHECK(ticks >= ticks_between);
        CHECK(ticks > 0);
    });
}

TEST_CASE("a dropped process is still reaped: no zombie is left") {
    for_each_child_watch([]() -> coro<void> {
        int pid = 0;
        {
            ioloop::process p = co_await ioloop::create_subprocess_exec("true");
            pid = p.pid();
        }
        // Nobody waits for it; the loop reaps it when it exits.
        AWAIT_UNTIL(!process_exists(pid));
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
            ioloop::process p = loop.run_until_complete(
                ioloop::create_subprocess_exec("sleep", {"30"}));
            pid = p.pid();
            loop.close();
            CHECK(report.find("still running") != std::string::npos);
            CHECK(report.find(std::to_string(pid)) != std::string::npos);
            CHECK(process_exists(pid));  // not killed by the close
        }
        ioloop::detail::force_thread_child_watch = false;
        REQUIRE(::kill(pid, SIGKILL) == 0);
        // The thread that waits for it reaps it: no zombie. (Polled: this is another thread.)
        const auto until = std::chrono::steady_clock::now() + 20s;
        while (process_exists(pid) && std::chrono::steady_clock::now() < until) {
            ::usleep(1000);
        }
        CHECK_FALSE(process_exists(pid));
    }
}

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
        auto [t, p] = co_await loop.subprocess_exec(
            [&r] { return std::make_unique<child_probe>(r); }, "sh",
            {"-c", "echo out; echo err >&2; read x; echo got-$x; exit 5"},
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
        auto [t, p] = co_await loop.subprocess_shell(
            [&r] { return std::make_unique<child_probe>(r); }, "echo started; exec sleep 30",
            {.out = stdio::pipe});
        AWAIT_UNTIL(r.out == "started\n");
        t->close();
        CHECK(t->is_closing());
        AWAIT_UNTIL(r.lost);
        CHECK(r.returncode_at_exit == -SIGKILL);
        CHECK(r.calls.back() == "lost");
        const std::system_error missing = co_await failure_of(
            [&] {
                return loop.subprocess_exec([&r] { return std::make_unique<child_probe>(r); },
                                            "ioloop-no-such-program", {}, {});
            },
            "a missing program started");
        CHECK(missing.code() == std::errc::no_such_file_or_directory);
    }());
}

TEST_CASE("an empty process handle is a clear error") {
    ioloop::process empty;
    CHECK_THROWS_AS((void)empty.pid(), ioloop::invalid_state_error);
    CHECK_THROWS_AS(empty.kill(), ioloop::invalid_state_error);
    CHECK_THROWS_AS((void)empty.wait(), ioloop::invalid_state_error);
}

#endif  // IOLOOP_POSIX
