// add_reader / add_writer / remove_reader / remove_writer on pipes and socket pairs, on
// every readiness backend, including the select backend's FD_SETSIZE limit.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(IOLOOP_POSIX)
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <unistd.h>
#endif

using namespace std::chrono_literals;
using test::fd_pair;  // pipe(): on Windows a socket pair, since its select takes sockets only
using test::read_some;
using test::run_one_iteration;
using test::run_with_watchdog;
using test::write_all;

namespace {

constexpr std::string_view backend_name = ioloop::event_loop::backend_type::name;

#if defined(IOLOOP_POSIX)
// A descriptor numbered at least FD_SETSIZE, duplicated from `fd`, raising the soft
// RLIMIT_NOFILE if it is too low. Closed on scope exit; the limit is restored.
struct high_fd {
    int fd = -1;
    rlimit saved{};
    bool raised = false;

    explicit high_fd(int from) {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
        const rlim_t needed = FD_SETSIZE + 16;
        if (saved.rlim_cur != RLIM_INFINITY && saved.rlim_cur < needed) {
            rlimit more = saved;
            more.rlim_cur = needed;
            const bool hard_allows = saved.rlim_max == RLIM_INFINITY || saved.rlim_max >= needed;
            REQUIRE_MESSAGE(hard_allows,
                            "RLIMIT_NOFILE's hard limit is too low for a descriptor >= FD_SETSIZE");
            REQUIRE(::setrlimit(RLIMIT_NOFILE, &more) == 0);
            raised = true;
        }
        fd = ::fcntl(from, F_DUPFD_CLOEXEC, FD_SETSIZE);
        REQUIRE(fd >= FD_SETSIZE);
    }
    ~high_fd() {
        if (fd != -1) ::close(fd);
        if (raised) ::setrlimit(RLIMIT_NOFILE, &saved);
    }
    high_fd(const high_fd&) = delete;
    high_fd& operator=(const high_fd&) = delete;
};
#endif

}  // namespace

TEST_CASE("add_reader on a pipe runs when data is written") {
    INFO("backend: " << backend_name);
    ioloop::event_loop loop;
    fd_pair p = fd_pair::pipe();
    bool written = false;
    bool ran_before_data = false;
    std::string got;
    loop.add_reader(p.first(), [&] {
        if (!written) ran_before_data = true;
        got = read_some(p.first());
        loop.remove_reader(p.first());
        loop.stop();
    });
    // The reader waits (several iterations, the loop asleep in its poll) until this timer
    // writes.
    loop.call_later(20ms, [&] {
        written = true;
        write_all(p.second(), "hello");
    });
    run_with_watchdog(loop);
    CHECK_FALSE(ran_before_data);
    CHECK(got == "hello");
}

TEST_CASE("readers are level-triggered: one runs again on the next iteration while data remains") {
    ioloop::event_loop loop;
    fd_pair p = fd_pair::pipe();
    write_all(p.second(), "abc");
    std::string got;
    std::vector<std::uint64_t> iterations;
    loop.add_reader(p.first(), [&] {
        iterations.push_back(loop.iteration_count());
        got += read_some(p.first(), 1);  // one byte per call: the rest stays readable
        if (got.size() == 3) {
            loop.remove_reader(p.first());
            loop.stop();
        }
    });
    run_with_watchdog(loop);
    CHECK(got == "abc");
    REQUIRE(iterations.size() == 3);
    CHECK(iterations[1] == iterations[0] + 1);
    CHECK(iterations[2] == iterations[1] + 1);
}

TEST_CASE("remove_reader from inside its own callback: it runs once, never again") {
    ioloop::event_loop loop;
    fd_pair p = fd_pair::pipe();
    write_all(p.second(), "x");  // never read: the fd stays readable
    int runs = 0;
    bool removed = false;
    loop.add_reader(p.first(), [&] {
        ++runs;
        removed = loop.remove_reader(p.first());
    });
    // Several iterations go by before this stops the loop.
    int ticks = 0;
    struct tick {
        ioloop::event_loop* loop;
        int* ticks;
        void operator()() const {
            if (++*ticks == 5) {
                loop->stop();
            } else {
                loop->call_soon(*this);
            }
        }
    };
    loop.call_soon(tick{&loop, &ticks});
    run_with_watchdog(loop);
    CHECK(ticks == 5);
    CHECK(runs == 1);
    CHECK(removed);
    CHECK_FALSE(loop.remove_reader(p.first()));
}

TEST_CASE("add_reader twice on the same fd replaces the reader") {
    ioloop::event_loop loop;
    fd_pair p = fd_pair::pipe();
    int first_runs = 0;
    int second_runs = 0;
    loop.add_reader(p.first(), [&] { ++first_runs; });
    loop.add_reader(p.first(), [&] {
        ++second_runs;
        CHECK(read_some(p.first()) == "data");
        loop.stop();
    });
    write_all(p.second(), "data");
    run_with_watchdog(loop);
    CHECK(first_runs == 0);
    CHECK(second_runs == 1);
    CHECK(loop.remove_reader(p.first()));
    CHECK_FALSE(loop.remove_reader(p.first()));
}

TEST_CASE("remove_reader and remove_writer report whether there was one") {
    ioloop::event_loop loop;
    fd_pair s = fd_pair::sockets();
    CHECK_FALSE(loop.remove_reader(s.first()));
    CHECK_FALSE(loop.remove_writer(s.first()));
    CHECK_FALSE(loop.remove_reader(ioloop::invalid_socket));
    CHECK_FALSE(loop.remove_reader(100000));

    loop.add_reader(s.first(), [] {});
    CHECK_FALSE(loop.remove_writer(s.first()));  // a reader is not a writer
    CHECK(loop.remove_reader(s.first()));
    CHECK_FALSE(loop.remove_reader(s.first()));

    loop.add_writer(s.first(), [] {});
    CHECK_FALSE(loop.remove_reader(s.first()));
    CHECK(loop.remove_writer(s.first()));
    CHECK_FALSE(loop.remove_writer(s.first()));
}

TEST_CASE("add_writer on a socket pair runs when writable") {
    ioloop::event_loop loop;
    fd_pair s = fd_pair::sockets();
    int runs = 0;
    loop.add_writer(s.first(), [&] {
        ++runs;
        CHECK(test::send_some(s.first(), "ping") == 4);
        CHECK(loop.remove_writer(s.first()));
        loop.stop();
    });
    run_with_watchdog(loop);
    CHECK(runs == 1);
    CHECK(read_some(s.second()) == "ping");
}

TEST_CASE("a writer waits while the socket's buffer is full") {
    ioloop::event_loop loop;
    fd_pair s = fd_pair::sockets();
    // Fill the send buffer until the kernel refuses more.
    const std::string chunk(65536, 'z');
    std::size_t filled = 0;
    for (;;) {
        const long n = test::send_some(s.first(), chunk);
        if (n < 0) {
            REQUIRE(test::last_would_block());
            break;
        }
        filled += static_cast<std::size_t>(n);
    }
    REQUIRE(filled > 0);

    bool drained = false;
    bool ran_while_full = false;
    loop.add_writer(s.first(), [&] {
        if (!drained) ran_while_full = true;
        loop.remove_writer(s.first());
        loop.stop();
    });
    // The peer drains everything a little later; only then may the writer run.
    loop.call_later(20ms, [&] {
        std::string sink(1 << 20, '\0');
        std::size_t got = 0;
        while (got < filled) {
            const long n = test::read_some_into(s.second(), sink.data(), sink.size());
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        CHECK(got == filled);
        drained = true;
    });
    run_with_watchdog(loop);
    CHECK(drained);
    CHECK_FALSE(ran_while_full);
}

TEST_CASE("a reader and a writer on the same fd; removing one keeps the other") {
    ioloop::event_loop loop;
    fd_pair s = fd_pair::sockets();
    write_all(s.second(), "r");  // s.first() is now readable, and it is writable anyway
    int reads = 0;
    int writes = 0;
    loop.add_reader(s.first(), [&] { ++reads; });  // reads nothing: stays readable
    loop.add_writer(s.first(), [&] { ++writes; });

    run_one_iteration(loop);
    CHECK(reads == 1);
    CHECK(writes == 1);

    CHECK(loop.remove_writer(s.first()));
    run_one_iteration(loop);
    CHECK(reads == 2);
    CHECK(writes == 1);

    // And the other way round.
    loop.add_writer(s.first(), [&] { ++writes; });
    CHECK(loop.remove_reader(s.first()));
    run_one_iteration(loop);
    CHECK(reads == 2);
    CHECK(writes == 2);
    CHECK(loop.remove_writer(s.first()));
}

TEST_CASE("a reader removed by another callback of the same iteration does not run") {
    // Both fds are ready in the same iteration. Whichever callback runs first removes the
    // other's reader; the other, already queued, must then not run.
    ioloop::event_loop loop;
    fd_pair a = fd_pair::pipe();
    fd_pair b = fd_pair::pipe();
    write_all(a.second(), "a");
    write_all(b.second(), "b");
    int a_runs = 0;
    int b_runs = 0;
    bool removed_other = false;
    loop.add_reader(a.first(), [&] {
        ++a_runs;
        removed_other = loop.remove_reader(b.first());
    });
    loop.add_reader(b.first(), [&] {
        ++b_runs;
        removed_other = loop.remove_reader(a.first());
    });
    run_one_iteration(loop);
    CHECK(a_runs + b_runs == 1);
    CHECK(removed_other);

    // The survivor is still registered and still runs (its data was never read).
    run_one_iteration(loop);
    CHECK(a_runs + b_runs == 2);
    CHECK((a_runs == 2 || b_runs == 2));
}

TEST_CASE("a reader replaced by another callback of the same iteration does not run") {
    ioloop::event_loop loop;
    fd_pair a = fd_pair::pipe();
    fd_pair b = fd_pair::pipe();
    write_all(a.second(), "a");
    write_all(b.second(), "b");
    int old_runs = 0;
    int new_runs = 0;
    // Whichever of the two runs first replaces both readers (its own included); the
    // other one, already queued for this iteration, must not run.
    loop.add_reader(a.first(), [&] {
        ++old_runs;
        loop.add_reader(a.first(), [&] { ++new_runs; });
        loop.add_reader(b.first(), [&] { ++new_runs; });
    });
    loop.add_reader(b.first(), [&] {
        ++old_runs;
        loop.add_reader(a.first(), [&] { ++new_runs; });
        loop.add_reader(b.first(), [&] { ++new_runs; });
    });
    run_one_iteration(loop);
    CHECK(old_runs == 1);
    CHECK(new_runs == 0);
    // Both fds are still readable (nothing was read): both new readers run.
    run_one_iteration(loop);
    CHECK(old_runs == 1);
    CHECK(new_runs == 2);
}

// add_reader checks the descriptor itself; transports and servers count on the backend to
// refuse one. epoll and kqueue see a closed descriptor at once (poll and select only in
// their next wait, which reports it once and forgets it: "a descriptor closed while
// watched" below). POSIX only: that is where those two are, and where a closed number is
// the next one handed out.
#if defined(IOLOOP_POSIX)
TEST_CASE("the backend refuses a closed descriptor, naming it, and keeps nothing of it") {
    if constexpr (backend_name == "epoll" || backend_name == "kqueue") {
        ioloop::event_loop::backend_type backend;
        int closed_fd = -1;
        {
            fd_pair p = fd_pair::pipe();
            closed_fd = p.first();
        }
        int marker = 0;
        for (unsigned events : {ioloop::backend::io_read, ioloop::backend::io_write,
                                ioloop::backend::io_read | ioloop::backend::io_write}) {
            CAPTURE(events);
            try {
                backend.watch(closed_fd, 0, events, &marker);
                FAIL_CHECK("watch on a closed fd did not throw");
            } catch (const std::system_error& e) {
                CHECK(e.code() == std::errc::bad_file_descriptor);
                CHECK(std::string(e.what()).find("fd " + std::to_string(closed_fd)) !=
                      std::string::npos);
            }
        }
        // The number open again, as another file: nothing of the failed calls reports it.
        fd_pair p = fd_pair::pipe();
        REQUIRE(p.first() == closed_fd);
        write_all(p.second(), "x");
        int reports = 0;
        backend.wait(std::chrono::milliseconds(0), [&](void*, unsigned) { ++reports; });
        CHECK(reports == 0);
    }
}
#endif

TEST_CASE("add_reader / add_writer with a bad fd throw std::system_error") {
    ioloop::event_loop loop;
    CHECK_THROWS_AS(loop.add_reader(ioloop::invalid_socket, [] {}), std::system_error);
    CHECK_THROWS_AS(loop.add_writer(ioloop::invalid_socket, [] {}), std::system_error);

    ioloop::native_socket closed_fd = ioloop::invalid_socket;
    {
        fd_pair p = fd_pair::pipe();
        closed_fd = p.first();
    }
    try {
        loop.add_reader(closed_fd, [] {});
        FAIL("add_reader on a closed fd did not throw");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::bad_file_descriptor);
        CHECK(std::string(e.what()).find(std::to_string(closed_fd)) != std::string::npos);
    }
    CHECK_FALSE(loop.remove_reader(closed_fd));

    // Nothing half-registered was left behind: the loop still works with good fds.
    fd_pair p = fd_pair::pipe();
    write_all(p.second(), "ok");
    std::string got;
    loop.add_reader(p.first(), [&] {
        got = read_some(p.first());
        loop.remove_reader(p.first());
        loop.stop();
    });
    run_with_watchdog(loop);
    CHECK(got == "ok");
}

TEST_CASE("peer close wakes the reader, which reads EOF") {
    for (const bool socket : {false, true}) {
        CAPTURE(socket);
        ioloop::event_loop loop;
        fd_pair p = socket ? fd_pair::sockets() : fd_pair::pipe();
        std::string got = "<not run>";
        loop.add_reader(p.first(), [&] {
            got = read_some(p.first());
            loop.remove_reader(p.first());
            loop.stop();
        });
        loop.call_later(10ms, [&] { p.close_second(); });
        run_with_watchdog(loop);
        CHECK(got.empty());
    }
}

// POSIX only: a test cannot choose a Windows handle's value (dup3 picks the number here).
#if defined(IOLOOP_POSIX)
TEST_CASE("a descriptor number closed and reopened can be watched again") {
    // Closing an fd without remove_reader is a misuse, but a common one; re-adding a
    // reader for the reused number must watch the new file (epoll forgot the old one).
    ioloop::event_loop loop;
    fd_pair first = fd_pair::pipe();
    const int number = first.first();
    int old_runs = 0;
    loop.add_reader(number, [&] { ++old_runs; });
    first.close_first();

    fd_pair second = fd_pair::pipe();
    int reopened = second.first();
    if (reopened != number) {
        // Another descriptor took the number: move our pipe's read end onto it.
        REQUIRE(::dup3(reopened, number, O_CLOEXEC) == number);
        reopened = number;
    }
    std::string got;
    loop.add_reader(number, [&] {
        got = read_some(number);
        loop.remove_reader(number);
        loop.stop();
    });
    write_all(second.second(), "again");
    run_with_watchdog(loop);
    if (reopened != second.first()) ::close(reopened);
    CHECK(old_runs == 0);
    CHECK(got == "again");
}
#endif

TEST_CASE("a descriptor closed while watched is forgotten, not spun on") {
    // A misuse (remove_reader belongs before close), but it must neither spin the loop
    // nor throw out of run_forever: epoll and kqueue forget the fd by themselves; poll and
    // select report it once (the callback's own read would see EBADF) and then forget it.
    ioloop::event_loop loop;
    fd_pair p = fd_pair::pipe();
    const ioloop::native_socket fd = p.first();
    int runs = 0;
    loop.add_reader(fd, [&] { ++runs; });
    p.close_first();
    loop.call_later(50ms, [&] { loop.stop(); });
    const auto before = loop.iteration_count();
    CHECK_NOTHROW(run_with_watchdog(loop));
    CHECK(loop.iteration_count() - before < 20);
    if (backend_name == "epoll" || backend_name == "kqueue") {
        CHECK(runs == 0);
    } else {
        CHECK(runs == 1);
    }
    CHECK(loop.remove_reader(fd));  // the loop still had it registered
}

TEST_CASE("close() unregisters readers and writers and destroys their callbacks") {
    fd_pair s = fd_pair::sockets();
    auto token = std::make_shared<int>(0);
    ioloop::event_loop loop;
    loop.add_reader(s.first(), [token] {});
    loop.add_writer(s.first(), [token] {});
    CHECK(token.use_count() == 3);
    loop.close();
    CHECK(token.use_count() == 1);
    CHECK_FALSE(loop.remove_reader(s.first()));
}

// POSIX: an fd_set is a bitmap of descriptor numbers below FD_SETSIZE. (On Windows it is a
// counted array of sockets, which the select backend sizes to what it watches: see below.)
#if defined(IOLOOP_POSIX)
TEST_CASE("a descriptor >= FD_SETSIZE") {
    INFO("backend: " << backend_name);
    ioloop::event_loop loop;
    fd_pair p = fd_pair::pipe();
    high_fd high(p.first());

    if constexpr (backend_name == "select") {
        // An fd_set cannot hold it: the select backend refuses it instead of writing past
        // the set (the ASan build would catch a write out of bounds).
        try {
            loop.add_reader(high.fd, [] {});
            FAIL("add_reader did not throw for fd " << high.fd);
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::invalid_argument);
            CHECK(std::string(e.what()).find("FD_SETSIZE") != std::string::npos);
        }
        CHECK_THROWS_AS(loop.add_writer(high.fd, [] {}), std::system_error);
        CHECK_FALSE(loop.remove_reader(high.fd));
        CHECK_FALSE(loop.remove_writer(high.fd));

        // The loop is intact: the low end of the same pipe still works.
        write_all(p.second(), "low");
        std::string got;
        loop.add_reader(p.first(), [&] {
            got = read_some(p.first());
            loop.remove_reader(p.first());
            loop.stop();
        });
        run_with_watchdog(loop);
        CHECK(got == "low");
    } else {
        // epoll and poll have no such limit: the reader runs.
        std::string got;
        loop.add_reader(high.fd, [&] {
            got = read_some(high.fd);
            loop.remove_reader(high.fd);
            loop.stop();
        });
        write_all(p.second(), "high");
        run_with_watchdog(loop);
        CHECK(got == "high");
    }
}
#endif

#if defined(IOLOOP_POSIX)
TEST_CASE("a descriptor a transport watches is refused by add_reader, and the other way round") {
    // A backend keeps one registration per descriptor: a second would take the first one's
    // events (epoll turns a second ADD into a MOD, poll and select overwrite it), and the
    // first watcher would hang. So the loop refuses it: errc::file_exists.
    INFO("backend: " << backend_name);
    ioloop::event_loop loop;
    fd_pair taken = fd_pair::pipe();
    fd_pair watched = fd_pair::pipe();
    struct sink : ioloop::protocol {
        std::string got;
        ioloop::event arrived;
        void data_received(std::string_view data) override {
            got.append(data);
            arrived.set();
        }
    };
    const int transport_fd = taken.first();
    sink* s = loop.run_until_complete([&]() -> ioloop::coro<sink*> {
        auto made = co_await loop.connect_read_pipe([] { return std::make_unique<sink>(); },
                                                    taken.release_first());
        co_return made.second;
    }());
    try {
        loop.add_reader(transport_fd, [] {});
        FAIL("add_reader took the descriptor of a transport");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::file_exists);
    }
    // The transport still hears its bytes.
    write_all(taken.second(), "still mine");
    loop.run_until_complete([](sink* t) -> ioloop::coro<void> { co_await t->arrived.wait(); }(s));
    CHECK(s->got == "still mine");

    int reader_runs = 0;
    loop.add_reader(watched.first(), [&reader_runs] { ++reader_runs; });
    const int reader_fd = watched.first();
    try {
        loop.run_until_complete(loop.connect_read_pipe(
            [] { return std::make_unique<sink>(); }, watched.release_first()));
        FAIL("a transport took the descriptor add_reader watches");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::file_exists);
    }
    // The refused transport closed the descriptor it was given, as it promises.
    CHECK(::fcntl(reader_fd, F_GETFD) == -1);
    CHECK(reader_runs == 0);
    loop.close();
}
#endif

#if defined(IOLOOP_WINDOWS)
TEST_CASE("select on Windows watches more sockets than FD_SETSIZE at once") {
    // Winsock's fd_set holds FD_SETSIZE (64) sockets unless sized otherwise; the backend
    // passes arrays as long as it needs. The last socket watched is the one made ready.
    INFO("backend: " << backend_name);
    ioloop::event_loop loop;
    std::vector<fd_pair> pairs;
    for (int i = 0; i < FD_SETSIZE + 36; ++i) pairs.push_back(fd_pair::sockets());
    std::string got;
    for (fd_pair& p : pairs) {
        loop.add_reader(p.first(), [&] {
            got = read_some(p.first());
            loop.stop();
        });
    }
    write_all(pairs.back().second(), "last");
    run_with_watchdog(loop);
    CHECK(got == "last");
    for (fd_pair& p : pairs) CHECK(loop.remove_reader(p.first()));
}
#endif
