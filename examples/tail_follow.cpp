// A `tail -F` for one log file: prints the lines appended to PATH as they come, and keeps
// following across log rotation, whether the file is renamed away and a new one made at the
// path (logrotate's default: the old file is read to its end first, so no line written
// before the rotation is lost), or truncated in place (copytruncate: reading starts over).
// It polls, as tail does on most systems: every interval it reads what is new through
// ioloop's file API (the loop never waits for the disk) and stat()s the path on the
// executor. SIGINT or SIGTERM stops it cleanly.
//   ./tail_follow /var/log/app.log                 (new lines only, as tail -f -n 0)
//   ./tail_follow --from-start --interval 50 app.log
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <system_error>

#include <sys/stat.h>

namespace {

struct options {
    std::string path;
    std::chrono::milliseconds interval{100};
    bool from_start = false;
};

// Which file the path names now: a rotation makes it another (device, inode), or none.
struct identity {
    bool exists = false;
    dev_t device = 0;
    ino_t inode = 0;
    long long size = 0;

    bool same_file(const identity& o) const {
        return exists && o.exists && device == o.device && inode == o.inode;
    }
};

// stat(2) may wait for the disk (or an NFS server): it runs on the executor too.
ioloop::coro<identity> look_at(std::string path) {
    // Started in a statement of its own: g++ 12 mishandles a lambda temporary that holds a
    // string inside a co_await expression.
    auto looking = ioloop::to_thread([path] {
        identity id;
        struct stat st;
        if (::stat(path.c_str(), &st) == 0) {
            id.exists = true;
            id.device = st.st_dev;
            id.inode = st.st_ino;
            id.size = static_cast<long long>(st.st_size);
        }
        return id;
    });
    co_return co_await std::move(looking);
}

class follower {
public:
    explicit follower(const options& o) : o_(o) {}

    ioloop::coro<void> run() {
        co_await reopen(o_.from_start);
        for (;;) {
            if (open_) co_await print_new_lines();
            const identity now = co_await look_at(o_.path);
            if (!open_) {
                if (now.exists) co_await reopen(true);  // it appeared: all of it is new
                co_await ioloop::sleep(o_.interval);
                continue;
            }
            if (!now.same_file(current_)) {
                // Rotated (renamed away, or removed): what was written to the old file
                // before the writer moved on is read to its end, then the new file's turn.
                co_await print_new_lines();
                co_await close_current();
                if (partial_.size() != 0) print(partial_ + "\n");  // the old file's last line
                partial_.clear();
                std::fprintf(stderr, "tail_follow: %s was rotated; following the new file\n",
                             o_.path.c_str());
                if (now.exists) co_await reopen(true);
                continue;
            }
            const long long at = co_await file_.tell();
            if (now.size < at) {
                // Truncated in place (copytruncate): start over from its beginning.
                std::fprintf(stderr, "tail_follow: %s was truncated\n", o_.path.c_str());
                co_await file_.seek(0);
                partial_.clear();
            }
            co_await ioloop::sleep(o_.interval);
        }
    }

    ioloop::coro<void> close_current() {
        if (!open_) co_return;
        open_ = false;
        co_await file_.close();
    }

private:
    // Opens the path (if it is there) at its start, or at its end (only what comes next).
    ioloop::coro<void> reopen(bool at_start) {
        try {
            file_ = co_await ioloop::open_file(o_.path, "rb");
        } catch (const std::system_error& e) {
            if (e.code() != std::errc::no_such_file_or_directory) throw;
            std::fprintf(stderr, "tail_follow: %s does not exist (yet); waiting\n",
                         o_.path.c_str());
            co_return;
        }
        open_ = true;
        // Named after opening: if the path is rotated in between, the next poll sees a
        // different file and reads this one to its end first, which is what rotation asks.
        current_ = co_await look_at(o_.path);
        if (!at_start) co_await file_.seek(0, ioloop::seek_end);
    }

    // Every complete line that is new; a line still being written (no '\n' yet) is kept
    // until its end arrives.
    ioloop::coro<void> print_new_lines() {
        std::string out;
        for (;;) {
            std::string line = co_await file_.readline();
            if (line.empty()) break;
            if (line.back() != '\n') {
                partial_ += line;
                break;
            }
            out += partial_;
            out += line;
            partial_.clear();
        }
        print(out);
    }

    static void print(const std::string& text) {
        if (text.empty()) return;
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);  // a pipe to another program sees each batch at once
    }

    options o_;
    ioloop::file file_;
    bool open_ = false;
    identity current_;
    std::string partial_;
};

ioloop::coro<int> amain(options o) {
    auto& loop = ioloop::get_running_loop();
    follower f(o);
    auto following = ioloop::create_task(f.run(), "follow");
    const char* why = "?";
    for (int sig : {SIGINT, SIGTERM}) {
        loop.add_signal_handler(sig, [&following, &why, sig] {
            why = sig == SIGINT ? "SIGINT" : "SIGTERM";
            following.cancel();
        });
    }
    std::fprintf(stderr, "tail_follow: following %s every %lld ms\n", o.path.c_str(),
                 static_cast<long long>(o.interval.count()));
    int status = 0;
    try {
        co_await following;
    } catch (const ioloop::cancelled_error&) {
        std::fprintf(stderr, "tail_follow: stopped by %s\n", why);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tail_follow: %s\n", e.what());
        status = 1;
    }
    co_await f.close_current();
    co_return status;
}

int usage() {
    std::fprintf(stderr, "usage: tail_follow [--from-start] [--interval MS] PATH\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--from-start") {
            o.from_start = true;
        } else if (arg == "--interval" && i + 1 < argc) {
            const long ms = std::strtol(argv[++i], nullptr, 10);
            if (ms <= 0) return usage();
            o.interval = std::chrono::milliseconds(ms);
        } else if (!arg.empty() && arg[0] != '-' && o.path.empty()) {
            o.path = arg;
        } else {
            return usage();
        }
    }
    if (o.path.empty()) return usage();
    return ioloop::run(amain(o));
}
