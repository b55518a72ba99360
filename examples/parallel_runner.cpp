// A parallel runner in the spirit of `xargs -P`: each line of stdin is a shell command;
// at most N run at once, each under a time limit; Ctrl+C (or SIGTERM) kills the children
// and stops. Each command's output goes straight to this program's stdout and stderr.
//   parallel_runner [-P N] [-t SECONDS] < commands.txt
//   printf 'sleep 1; echo a\nfalse\necho b\n' | parallel_runner -P 2
// Exit status, as xargs': 0 when every command exited 0; 123 when one exited 1-125; 124
// when one exited 255; 125 when one was killed by a signal or timed out; 126 when one could
// not be started; 130 when interrupted.
// stdin is read whole first (it may be a regular file, which the loop does not watch), so
// this is for lists of commands, not endless streams of them. POSIX only.
#include <ioloop/ioloop.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include <signal.h>

namespace {

struct settings {
    int parallel = 4;
    std::chrono::milliseconds limit{0};  // 0: none
};

// What the run has seen, as the exit status it gives.
struct outcome {
    int status = 0;
    void saw(int s) { status = std::max(status, s); }
};

// Kills the command's whole process group (the shell and what it started).
void kill_group(ioloop::process& p) {
    if (!p.returncode()) ::killpg(p.pid(), SIGKILL);
}

// Runs one command under the limit; its exit status in xargs' terms.
ioloop::coro<int> run_one(std::string command, settings s) {
    ioloop::process p;
    try {
        // Its own process group: a command's own children (`sleep 9; echo x` forks sleep)
        // are killed with it.
        p = co_await ioloop::create_subprocess_shell(command, {.start_new_session = true});
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "parallel_runner: %s: %s\n", command.c_str(), e.what());
        co_return 126;
    }
    int rc = 0;
    bool timed_out = false;
    std::exception_ptr interrupted;
    try {
        if (s.limit.count() > 0) {
            rc = co_await ioloop::wait_for(p.wait(), s.limit);
        } else {
            rc = co_await p.wait();
        }
    } catch (const ioloop::timeout_error&) {
        timed_out = true;
    } catch (const ioloop::cancelled_error&) {
        interrupted = std::current_exception();
    }
    if (timed_out || interrupted) {
        // The command goes, and is waited for (no co_await inside a catch block).
        if (timed_out) {
            std::fprintf(stderr, "parallel_runner: %s: timed out, killed\n", command.c_str());
        }
        kill_group(p);
        (void)co_await p.wait();
        if (interrupted) std::rethrow_exception(interrupted);
        co_return 125;
    }
    if (rc == 0) co_return 0;
    if (rc < 0) co_return 125;  // killed by signal -rc
    if (rc == 255) co_return 124;
    co_return 123;
}

// One of the N workers: takes the next command until there are none.
ioloop::coro<void> worker(const std::vector<std::string>* commands, std::size_t* next,
                          settings s, outcome* out) {
    while (*next < commands->size()) {
        const std::string& command = (*commands)[(*next)++];
        out->saw(co_await run_one(command, s));
    }
}

ioloop::coro<int> run_all(std::vector<std::string> commands, settings s) {
    auto& loop = ioloop::get_running_loop();
    outcome out;
    std::size_t next = 0;
    std::vector<ioloop::task<void>> workers;
    for (int i = 0; i < s.parallel; ++i) {
        workers.push_back(ioloop::create_task(worker(&commands, &next, s, &out)));
    }
    bool interrupted = false;
    auto stop = [&] {
        interrupted = true;
        for (ioloop::task<void>& w : workers) w.cancel();  // each kills its child
    };
    loop.add_signal_handler(SIGINT, stop);
    loop.add_signal_handler(SIGTERM, stop);
    // Every worker to its end, cancelled or not.
    (void)co_await ioloop::gather(ioloop::return_exceptions, workers);
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    co_return interrupted ? 130 : out.status;
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "-P") == 0 && i + 1 < argc) {
            s.parallel = std::atoi(argv[++i]);
        } else if (std::strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            s.limit = std::chrono::milliseconds(
                static_cast<long long>(std::atof(argv[++i]) * 1000));
        } else {
            std::fprintf(stderr, "usage: parallel_runner [-P N] [-t SECONDS] < commands\n");
            return 2;
        }
    }
    if (s.parallel < 1) s.parallel = 1;
    std::vector<std::string> commands;
    for (std::string line; std::getline(std::cin, line);) {
        if (!line.empty()) commands.push_back(line);
    }
    return ioloop::run(run_all(std::move(commands), s));
}
