// Files: open_file, ioloop::file, read_file, write_file (API.md section 7). Every file lives
// in a temporary directory of the test's own. Where a test must know that a file operation
// is under way on the pool, the pool's work waits at a gate the test opens: nothing here
// sleeps and hopes. Also run under ThreadSanitizer (CTest label "threads").
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using ioloop::coro;

namespace {

// Runs main as a task of a new loop until it is done; rethrows what it threw.
void run(coro<void> main, ioloop::executor* pool = nullptr) {
    ioloop::event_loop loop;
    if (pool) loop.set_default_executor(*pool);
    ioloop::task<void> t = test::run_task_with_watchdog(loop, std::move(main));
    REQUIRE(t.done());
    t.result();
}

// An executor whose work waits at a gate before it runs, on a pool of its own: a file
// operation the test starts while the gate is shut is under way, as on a slow disk, until
// the test opens it. entered() counts the work that reached the gate.
class gated_executor final : public ioloop::executor {
public:
    ~gated_executor() override {
        open();
        pool_.shutdown();
    }

    void submit(work job) override {
        pool_.submit([this, job = std::move(job)]() mutable {
            {
                std::unique_lock<std::mutex> hold(mutex_);
                ++entered_;
                changed_.notify_all();
                // Bounded: a test that forgets to open fails instead of hanging.
                changed_.wait_for(hold, 30s, [this] { return open_; });
            }
            job();
        });
    }
    void shutdown() noexcept override { pool_.shutdown(); }

    void shut() {
        std::lock_guard<std::mutex> hold(mutex_);
        open_ = false;
    }
    void open() {
        std::lock_guard<std::mutex> hold(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    // Waits (on the calling thread, bounded) until `n` pieces of work reached the gate.
    bool wait_entered(int n) {
        std::unique_lock<std::mutex> hold(mutex_);
        return changed_.wait_for(hold, 30s, [&] { return entered_ >= n; });
    }
    int entered() {
        std::lock_guard<std::mutex> hold(mutex_);
        return entered_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool open_ = true;
    int entered_ = 0;
    ioloop::thread_pool pool_{4};
};

// Returns once the task just created has run its first step (a task starts on the next
// iteration) and its work waits at the gate: `n` pieces of work have reached it.
coro<void> held_at_gate(gated_executor& pool, int n) {
    co_await ioloop::sleep(0ms);
    REQUIRE(pool.wait_entered(n));
}

// The error an awaitable throws, as (code, what()); fails the test if it throws none.
template <class Awaitable>
coro<std::pair<std::error_code, std::string>> system_error_of(Awaitable a) {
    try {
        co_await std::move(a);
    } catch (const std::system_error& e) {
        co_return std::pair<std::error_code, std::string>(e.code(), e.what());
    }
    FAIL_CHECK("no std::system_error");
    co_return std::pair<std::error_code, std::string>();
}

template <class Awaitable>
coro<std::string> invalid_state_of(Awaitable a) {
    try {
        co_await std::move(a);
    } catch (const ioloop::invalid_state_error& e) {
        co_return std::string(e.what());
    }
    FAIL_CHECK("no invalid_state_error");
    co_return std::string();
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

TEST_CASE("write_file and read_file round-trip bytes exactly, also through open_file") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("data.bin");
    std::string bytes = "line\r\nnext\n";  // no newline translation, on Windows either
    bytes.push_back('\0');
    for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, bytes);
        CHECK(co_await ioloop::read_file(path) == bytes);

        ioloop::file f = co_await ioloop::open_file(path, "wb");
        CHECK(f.name() == path);
        CHECK(co_await f.write(bytes) == bytes.size());
        CHECK(co_await f.write("tail") == 4);
        co_await f.flush();
        CHECK(co_await f.tell() == static_cast<long long>(bytes.size() + 4));
        co_await f.close();
        CHECK(f.closed());

        ioloop::file r = co_await ioloop::open_file(path);  // "r" by default
        CHECK(co_await r.read() == bytes + "tail");
        CHECK(co_await r.read() == "");  // at the end: empty
        CHECK(co_await r.read(10) == "");
        co_await r.close();

        // write_file replaces what was there.
        co_await ioloop::write_file(path, "short");
        CHECK(co_await ioloop::read_file(path) == "short");
    }());
}

TEST_CASE("append mode writes at the end; a+ reads anywhere and still appends") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("log.txt");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "a\n");
        ioloop::file f = co_await ioloop::open_file(path, "a");
        CHECK(co_await f.tell() == 2);  // Python's "a" starts at the end
        CHECK(co_await f.write("b\n") == 2);
        CHECK(co_await f.tell() == 4);
        co_await f.close();
        CHECK(co_await ioloop::read_file(path) == "a\nb\n");

        ioloop::file g = co_await ioloop::open_file(path, "a+");
        CHECK(co_await g.seek(0) == 0);
        CHECK(co_await g.readline() == "a\n");
        CHECK(co_await g.write("c\n") == 2);  // to the end, not after "a\n"
        CHECK(co_await g.tell() == 6);
        co_await g.close();
        CHECK(co_await ioloop::read_file(path) == "a\nb\nc\n");

        // "a" creates a missing file.
        ioloop::file h = co_await ioloop::open_file(dir.path("new.txt"), "ab");
        co_await h.write("x");
        co_await h.close();
        CHECK(co_await ioloop::read_file(dir.path("new.txt")) == "x");
    }());
}

TEST_CASE("x creates a new file and fails on an existing one, naming it") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("once.txt");
    run([&]() -> coro<void> {
        ioloop::file f = co_await ioloop::open_file(path, "x");
        co_await f.write("first");
        co_await f.close();
        auto [code, what] = co_await system_error_of(ioloop::open_file(path, "x+"));
        CHECK(code == std::errc::file_exists);
        CHECK(starts_with(what, "open_file \"" + path + "\": "));
        CHECK(co_await ioloop::read_file(path) == "first");  // untouched
    }());
}

TEST_CASE("w truncates; r+ does not; reading a write-only file and writing a read-only one fail") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f.txt");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "0123456789");
        ioloop::file rw = co_await ioloop::open_file(path, "r+");
        CHECK(co_await rw.write("ab") == 2);
        co_await rw.close();
        CHECK(co_await ioloop::read_file(path) == "ab23456789");

        ioloop::file w = co_await ioloop::open_file(path, "w");
        CHECK(co_await ioloop::read_file(path) == "");
        std::string message = co_await invalid_state_of(w.read());
        CHECK(message == "file::read: \"" + path + "\" is not open for reading");
        co_await w.close();

        ioloop::file r = co_await ioloop::open_file(path, "r");
        message = co_await invalid_state_of(r.write("x"));
        CHECK(message == "file::write: \"" + path + "\" is not open for writing");
        message = co_await invalid_state_of(r.truncate(0));
        CHECK(message == "file::truncate: \"" + path + "\" is not open for writing");
        co_await r.close();

        // "w+" reads back what it wrote.
        ioloop::file wr = co_await ioloop::open_file(path, "w+");
        co_await wr.write("hello");
        CHECK(co_await wr.seek(0) == 0);
        CHECK(co_await wr.read() == "hello");
        co_await wr.close();
    }());
}

TEST_CASE("an invalid mode or whence is std::invalid_argument at the call") {
    for (const char* mode : {"", "rw", "z", "r++", "rbb", "wa", "rt", "R"}) {
        CAPTURE(mode);
        CHECK_THROWS_AS((void)ioloop::open_file("whatever", mode), std::invalid_argument);
    }
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "");
        int fresh = 0;
        for (const std::string mode : {"r+b", "br", "w", "wb+", "+a", "xb", "bx+"}) {
            CAPTURE(mode);
            const bool exclusive = mode.find('x') != std::string::npos;
            const std::string where = exclusive ? dir.path("new" + std::to_string(++fresh)) : path;
            ioloop::file f = co_await ioloop::open_file(where, mode);
            co_await f.close();
        }
        ioloop::file f = co_await ioloop::open_file(path, "r");
        CHECK_THROWS_AS((void)f.seek(0, 3), std::invalid_argument);
        CHECK_THROWS_AS((void)f.seek(0, -1), std::invalid_argument);
        CHECK_THROWS_AS((void)f.truncate(-1), std::invalid_argument);
        co_await f.close();
    }());
}

TEST_CASE("readline: lines with their newline, a last line without, then empty") {
    test::scoped_temp_dir dir("files");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(dir.path("lines"), "one\ntwo\n\nthree");
        ioloop::file f = co_await ioloop::open_file(dir.path("lines"));
        CHECK(co_await f.readline() == "one\n");
        CHECK(co_await f.readline() == "two\n");
        CHECK(co_await f.readline() == "\n");
        CHECK(co_await f.readline() == "three");
        CHECK(co_await f.readline() == "");
        CHECK(co_await f.readline() == "");
        co_await f.close();

        co_await ioloop::write_file(dir.path("empty"), "");
        ioloop::file e = co_await ioloop::open_file(dir.path("empty"));
        CHECK(co_await e.readline() == "");
        CHECK(co_await e.read() == "");
        CHECK(co_await e.tell() == 0);
        co_await e.close();

        // Lines longer than the read buffer (64 KiB), around short ones.
        const std::string long_line(200'000, 'x');
        const std::string longer(300'001, 'y');
        co_await ioloop::write_file(dir.path("long"), "a\n" + long_line + "\nb\n" + longer);
        ioloop::file l = co_await ioloop::open_file(dir.path("long"));
        CHECK(co_await l.readline() == "a\n");
        CHECK(co_await l.readline() == long_line + "\n");
        CHECK(co_await l.tell() == static_cast<long long>(2 + long_line.size() + 1));
        CHECK(co_await l.readline() == "b\n");
        CHECK(co_await l.readline() == longer);
        CHECK(co_await l.readline() == "");
        co_await l.close();
    }());
}

TEST_CASE("read(n) mixed with readline loses no byte, and tell agrees with both") {
    test::scoped_temp_dir dir("files");
    std::string content;
    for (int i = 0; i < 20'000; ++i) content += "line " + std::to_string(i) + "\n";
    const std::string path = dir.path("mixed");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, content);
        ioloop::file f = co_await ioloop::open_file(path);
        std::string got;
        std::size_t step = 1;
        while (true) {
            // (if, not ?:: g++ 12 destroys a co_await's string result in a conditional
            // expression twice)
            std::string part;
            if (step % 3 == 0) {
                part = co_await f.read(static_cast<long long>(step * 7));
            } else {
                part = co_await f.readline();
            }
            if (part.empty()) break;
            got += part;
            CHECK(co_await f.tell() == static_cast<long long>(got.size()));
            ++step;
        }
        CHECK(got == content);
        CHECK(co_await f.seek(0) == 0);
        CHECK(co_await f.readline() == "line 0\n");
        // read(n) beyond the buffer in one call, then read() for the rest.
        const std::string big = co_await f.read(100'000);
        CHECK(big == content.substr(7, 100'000));
        CHECK(co_await f.read() == content.substr(100'007));
        co_await f.close();
    }());
}

TEST_CASE("seek, tell and truncate, with a read buffer in between") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("digits");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "0123456789");
        ioloop::file f = co_await ioloop::open_file(path, "r+");
        CHECK(co_await f.tell() == 0);
        CHECK(co_await f.seek(3) == 3);
        CHECK(co_await f.read(2) == "34");  // the buffer now holds "56789"
        CHECK(co_await f.tell() == 5);
        CHECK(co_await f.seek(-2, ioloop::seek_cur) == 3);  // relative to 5, not to 10
        CHECK(co_await f.read(1) == "3");
        CHECK(co_await f.seek(0, ioloop::seek_end) == 10);
        CHECK(co_await f.seek(-3, ioloop::seek_end) == 7);
        CHECK(co_await f.read() == "789");

        // A write after a buffered read goes where the reading stopped.
        CHECK(co_await f.seek(0) == 0);
        CHECK(co_await f.read(2) == "01");
        CHECK(co_await f.write("ab") == 2);
        CHECK(co_await f.tell() == 4);
        CHECK(co_await f.read(2) == "45");

        // truncate leaves the position where it is, and returns the size.
        CHECK(co_await f.truncate(8) == 8);
        CHECK(co_await f.tell() == 6);
        CHECK(co_await f.read() == "67");
        CHECK(co_await f.seek(3) == 3);
        CHECK(co_await f.truncate() == 3);  // at the position
        CHECK(co_await f.tell() == 3);
        CHECK(co_await f.read() == "");
        co_await f.close();
        CHECK(co_await ioloop::read_file(path) == "01a");

        // A position before the start is the system's EINVAL, naming the file.
        ioloop::file g = co_await ioloop::open_file(path);
        auto [code, what] = co_await system_error_of(g.seek(-1));
        CHECK(code == std::errc::invalid_argument);
        CHECK(starts_with(what, "file::seek \"" + path + "\": "));
        CHECK(co_await g.read() == "01a");  // the file is unharmed
        co_await g.close();
    }());
}

TEST_CASE("a missing file's error names the path; so does a directory's") {
    test::scoped_temp_dir dir("files");
    const std::string missing = dir.path("no/such/file");
    run([&]() -> coro<void> {
        auto [code, what] = co_await system_error_of(ioloop::open_file(missing));
        CHECK(code == std::errc::no_such_file_or_directory);
        CHECK(starts_with(what, "open_file \"" + missing + "\": "));
        CHECK(what.size() > ("open_file \"" + missing + "\": ").size());  // and the reason

        auto [rcode, rwhat] = co_await system_error_of(ioloop::read_file(missing));
        CHECK(rcode == std::errc::no_such_file_or_directory);
        CHECK(starts_with(rwhat, "read_file \"" + missing + "\": "));

        auto [wcode, wwhat] = co_await system_error_of(ioloop::write_file(missing, "x"));
        CHECK(wcode == std::errc::no_such_file_or_directory);
        CHECK(starts_with(wwhat, "write_file \"" + missing + "\": "));

        // A directory, opened for reading: refused at the open (Python's IsADirectoryError).
        auto [dcode, dwhat] = co_await system_error_of(ioloop::open_file(dir.path()));
        CHECK(dcode == std::errc::is_a_directory);
        CHECK(starts_with(dwhat, "open_file \"" + dir.path() + "\": "));
        auto [fcode, fwhat] = co_await system_error_of(ioloop::read_file(dir.path()));
        CHECK(fcode == std::errc::is_a_directory);
        CHECK(starts_with(fwhat, "read_file \"" + dir.path() + "\": "));
    }());
}

TEST_CASE("operations on a closed file are invalid_state_error; close is idempotent") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f");
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "abc\n");
        ioloop::file f = co_await ioloop::open_file(path, "r+");
        CHECK_FALSE(f.closed());
        co_await f.close();
        CHECK(f.closed());
        co_await f.close();  // again: nothing
        const std::string closed = "I/O operation on closed file \"" + path + "\"";
        CHECK(co_await invalid_state_of(f.read()) == "file::read: " + closed);
        CHECK(co_await invalid_state_of(f.readline()) == "file::readline: " + closed);
        CHECK(co_await invalid_state_of(f.write("x")) == "file::write: " + closed);
        CHECK(co_await invalid_state_of(f.seek(0)) == "file::seek: " + closed);
        CHECK(co_await invalid_state_of(f.tell()) == "file::tell: " + closed);
        CHECK(co_await invalid_state_of(f.truncate()) == "file::truncate: " + closed);
        CHECK(co_await invalid_state_of(f.flush()) == "file::flush: " + closed);

        // An operation queued behind close() fails the same way when its turn comes.
        ioloop::file g = co_await ioloop::open_file(path);
        auto closing = ioloop::create_task(g.close());
        auto late = ioloop::create_task(invalid_state_of(g.readline()));
        co_await closing;
        CHECK(co_await late == "file::readline: I/O operation on closed file \"" + path + "\"");

        // A moved-from file is no file.
        ioloop::file h = co_await ioloop::open_file(path);
        ioloop::file moved = std::move(h);
        CHECK(h.closed());
        CHECK_THROWS_AS((void)h.read(), ioloop::invalid_state_error);
        CHECK(co_await moved.readline() == "abc\n");
        co_await moved.close();
    }());
}

TEST_CASE("a file is used on the loop that opened it only") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f");
    const std::string refused = "\" was opened on another event loop than the one running "
                                "here (if any)";
    ioloop::file kept;
    ioloop::event_loop first;
    ioloop::task<void> opening = test::run_task_with_watchdog(first, [&]() -> coro<void> {
        co_await ioloop::write_file(path, "x");
        kept = co_await ioloop::open_file(path);
    }());
    REQUIRE(opening.done());
    opening.result();
    // Outside any running loop, and in another loop: refused at the call.
    try {
        (void)kept.read();
        FAIL_CHECK("no invalid_state_error");
    } catch (const ioloop::invalid_state_error& e) {
        CHECK(std::string(e.what()) == "file::read: \"" + path + refused);
    }
    run([&]() -> coro<void> {
        CHECK_THROWS_AS((void)kept.tell(), ioloop::invalid_state_error);
        co_return;
    }());
    // Back on its own loop, it works.
    ioloop::task<void> reading = test::run_task_with_watchdog(first, [&]() -> coro<void> {
        CHECK(co_await kept.read() == "x");
        co_await kept.close();
    }());
    REQUIRE(reading.done());
    reading.result();
}

TEST_CASE("a cancelled read: the task sees cancelled_error at once; no byte is lost") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f");
    gated_executor pool;
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "line1\nline2\n");
        ioloop::file f = co_await ioloop::open_file(path);
        const int before = pool.entered();
        pool.shut();
        auto reading = ioloop::create_task(f.readline());
        co_await held_at_gate(pool, before + 1);
        reading.cancel();
        bool cancelled = false;
        try {
            co_await reading;
        } catch (const ioloop::cancelled_error&) {
            cancelled = true;
        }
        CHECK(cancelled);  // while the read is still held: the loop did not wait for it
        CHECK(reading.cancelled());
        pool.open();
        // The next operation waits for the cancelled one's read, whose bytes are buffered:
        // the file goes on where the cancelled readline would have started.
        CHECK(co_await f.tell() == 0);
        CHECK(co_await f.readline() == "line1\n");
        CHECK(co_await f.readline() == "line2\n");
        CHECK(co_await f.readline() == "");

        // Cancelled while it waits for its turn (behind a held read): it does nothing.
        CHECK(co_await f.seek(0) == 0);
        pool.shut();
        const int entered = pool.entered();
        auto first = ioloop::create_task(f.read(3));
        co_await held_at_gate(pool, entered + 1);
        auto queued = ioloop::create_task(f.seek(100));
        co_await ioloop::sleep(0ms);  // it runs, and queues for its turn
        queued.cancel();
        pool.open();
        CHECK(co_await first == "lin");
        CHECK_THROWS_AS(co_await queued, ioloop::cancelled_error);
        CHECK(co_await f.tell() == 3);
        co_await f.close();
    }(), &pool);
}

TEST_CASE("a cancelled write is written; a file dropped during an operation closes after it") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f");
    gated_executor pool;
    run([&]() -> coro<void> {
        ioloop::file f = co_await ioloop::open_file(path, "w+");
        pool.shut();
        const int entered = pool.entered();
        auto writing = ioloop::create_task(f.write("kept"));
        co_await held_at_gate(pool, entered + 1);
        writing.cancel();
        CHECK_THROWS_AS(co_await writing, ioloop::cancelled_error);
        pool.open();
        CHECK(co_await f.tell() == 4);  // after the write, which happened
        CHECK(co_await f.seek(0) == 0);
        CHECK(co_await f.read() == "kept");

        // Dropped while its read is held on the pool: the descriptor outlives the file
        // object until the read ends, and nothing breaks.
        pool.shut();
        const int held = pool.entered();
        {
            auto moved = std::move(f);
            auto reading = ioloop::create_task(moved.read());
            co_await held_at_gate(pool, held + 1);
            reading.cancel();
            CHECK_THROWS_AS(co_await reading, ioloop::cancelled_error);
        }
        pool.open();
        // The file is still there and whole, and can be reopened.
        CHECK(co_await ioloop::read_file(path) == "kept");
    }(), &pool);
}

TEST_CASE("two operations on one file at once are served one after the other, in order") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("f");
    gated_executor pool;
    run([&]() -> coro<void> {
        co_await ioloop::write_file(path, "one\ntwo\nthree\n");
        ioloop::file f = co_await ioloop::open_file(path, "r+");
        auto [a, b, c] = co_await ioloop::gather(f.readline(), f.readline(), f.read(3));
        CHECK(a == "one\n");
        CHECK(b == "two\n");
        CHECK(c == "thr");

        // tell() needs no pool at all, yet it waits for the read ahead of it.
        CHECK(co_await f.seek(0) == 0);
        pool.shut();
        const int entered = pool.entered();
        auto reading = ioloop::create_task(f.read(4));
        co_await held_at_gate(pool, entered + 1);
        auto telling = ioloop::create_task(f.tell());
        for (int i = 0; i < 5; ++i) co_await ioloop::sleep(0ms);
        CHECK_FALSE(telling.done());
        pool.open();
        CHECK(co_await telling == 4);
        CHECK(reading.done());
        CHECK(co_await reading == "one\n");

        // A write and a read queued together: the read sees the write.
        CHECK(co_await f.seek(0) == 0);
        auto [n, back] = co_await ioloop::gather(f.write("ONE\n"), f.read(3));
        CHECK(n == 4);
        CHECK(back == "two");
        co_await f.close();
        CHECK(co_await ioloop::read_file(path) == "ONE\ntwo\nthree\n");
    }(), &pool);
}

TEST_CASE("the loop goes on while a file operation is under way") {
    test::scoped_temp_dir dir("files");
    const std::string path = dir.path("big");
    SUBCASE("a read held on the pool: timers keep firing (order)") {
        gated_executor pool;
        run([&]() -> coro<void> {
            co_await ioloop::write_file(path, std::string(1 << 20, 'z'));
            auto& loop = ioloop::get_running_loop();
            pool.shut();
            const int entered = pool.entered();
            auto reading = ioloop::create_task(ioloop::read_file(path));
            co_await held_at_gate(pool, entered + 1);
            // Five ticks of a 1 ms timer while the read is held; the fifth opens the gate.
            std::vector<std::string> events;
            int ticks = 0;
            ioloop::event ticked;
            struct ticker {
                ioloop::event_loop* loop;
                int* ticks;
                std::vector<std::string>* events;
                ioloop::event* done;
                gated_executor* pool;
                void operator()() const {
                    events->push_back("tick");
                    if (++*ticks == 5) {
                        pool->open();
                        done->set();
                        return;
                    }
                    loop->call_later(1ms, *this);
                }
            };
            loop.call_later(1ms, ticker{&loop, &ticks, &events, &ticked, &pool});
            co_await ticked.wait();
            const std::string all = co_await reading;
            events.push_back("read done");
            CHECK(all.size() == std::size_t{1} << 20);
            CHECK(events == std::vector<std::string>{"tick", "tick", "tick", "tick", "tick",
                                                     "read done"});
        }(), &pool);
    }
    SUBCASE("a 64 MiB read_file on the default pool: a 1 ms timer is never late by much") {
        run([&]() -> coro<void> {
            co_await ioloop::write_file(path, std::string(std::size_t{64} << 20, 'q'));
            auto& loop = ioloop::get_running_loop();
            std::chrono::nanoseconds worst{0};
            int ticks = 0;
            bool reading_done = false;
            int ticks_during = 0;
            // A periodic timer, rescheduled from its due time, measuring how late each runs.
            struct periodic {
                ioloop::event_loop* loop;
                ioloop::event_loop::time_point due;
                std::chrono::nanoseconds* worst;
                int* ticks;
                bool* stop;
                void operator()() {
                    const auto late = loop->time() - due;
                    if (late > *worst) *worst = late;
                    ++*ticks;
                    if (*stop) return;
                    due += 1ms;
                    loop->call_at(due, *this);
                }
            };
            loop.call_at(loop.time() + 1ms,
                         periodic{&loop, loop.time() + 1ms, &worst, &ticks, &reading_done});
            const std::string all = co_await ioloop::read_file(path);
            ticks_during = ticks;
            reading_done = true;
            CHECK(all.size() == std::size_t{64} << 20);
            MESSAGE("ticks during the read: " << ticks_during << ", worst lateness: "
                    << std::chrono::duration_cast<std::chrono::microseconds>(worst).count()
                    << " us");
            // Loose: a loop that blocked on the read would be late by the whole read.
            CHECK(worst < 250ms);
            co_await ioloop::sleep(3ms);  // the timer sees the flag and stops
        }());
    }
}
