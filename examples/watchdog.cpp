// A watchdog: runs a program and restarts it when it crashes (exits non-zero or is killed
// by a signal), waiting longer after each crash in a row: 100 ms, doubling up to 5 s, back
// to 100 ms once a run has lasted 10 s. A clean exit (status 0) ends the watchdog with 0;
// too many restarts in a row end it with 1. SIGINT or SIGTERM stop the child (SIGTERM,
// then SIGKILL after 5 s) and end the watchdog with 0.
//   watchdog [-n MAX_RESTARTS] PROGRAM [ARGS...]
//   watchdog -n 3 sh -c 'echo working; sleep 1; exit 1'
// POSIX only.
#include <ioloop/ioloop.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

ioloop::coro<int> watch(std::string program, std::vector<std::string> args, int max_restarts) {
    auto& loop = ioloop::get_running_loop();
    ioloop::process* current = nullptr;  // the child that runs now, if any
    ioloop::event stop;
    ioloop::timer_handle kill_later;
    // A signal to stop: SIGTERM to the child now, SIGKILL if it still runs 5 s later.
    auto on_signal = [&] {
        if (stop.is_set()) return;
        stop.set();
        if (!current) return;
        current->terminate();
        kill_later = loop.call_later(5s, [&] {
            if (current) current->kill();
        });
    };
    loop.add_signal_handler(SIGINT, on_signal);
    loop.add_signal_handler(SIGTERM, on_signal);
    auto backoff = 100ms;
    int crashes = 0;
    int status = 0;
    while (!stop.is_set()) {
        ioloop::process p = co_await ioloop::create_subprocess_exec(program, args);
        const auto started = loop.time();
        std::fprintf(stderr, "watchdog: started %s (pid %d)\n", program.c_str(), p.pid());
        current = &p;
        const int rc = co_await p.wait();
        current = nullptr;
        if (stop.is_set()) {
            std::fprintf(stderr, "watchdog: stopped %s\n", program.c_str());
            break;
        }
        if (rc == 0) {
            std::fprintf(stderr, "watchdog: %s exited cleanly\n", program.c_str());
            break;
        }
        if (loop.time() - started >= 10s) {
            crashes = 0;
            backoff = 100ms;
        }
        if (++crashes > max_restarts) {
            std::fprintf(stderr, "watchdog: %s crashed %d times in a row; giving up\n",
                         program.c_str(), crashes);
            status = 1;
            break;
        }
        std::fprintf(stderr, "watchdog: %s %s %d; restarting in %lld ms\n", program.c_str(),
                     rc < 0 ? "killed by signal" : "exited with", rc < 0 ? -rc : rc,
                     static_cast<long long>(backoff.count()));
        // The backoff, cut short by a signal to stop.
        try {
            co_await ioloop::wait_for(stop.wait(), backoff);
        } catch (const ioloop::timeout_error&) {
        }
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
    }
    kill_later.cancel();
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    co_return status;
}

}  // namespace

int main(int argc, char** argv) {
    int max_restarts = 10;
    int i = 1;
    if (i + 1 < argc && std::strcmp(argv[i], "-n") == 0) {
        max_restarts = std::atoi(argv[i + 1]);
        i += 2;
    }
    if (i >= argc) {
        std::fprintf(stderr, "usage: watchdog [-n MAX_RESTARTS] PROGRAM [ARGS...]\n");
        return 2;
    }
    std::vector<std::string> args(argv + i + 1, argv + argc);
    try {
        return ioloop::run(watch(argv[i], std::move(args), max_restarts));
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "watchdog: %s\n", e.what());  // the program cannot start
        return 127;
    }
}
