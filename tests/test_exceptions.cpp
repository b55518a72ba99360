// Exceptions escaping callbacks, the exception handler and its default, and debug mode's
// slow-callback reports.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "loop_helpers.hpp"
#include "platform.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>  // dup, dup2, close: POSIX, and mingw-w64's C runtime has them too

using namespace std::chrono_literals;
using test::run_one_iteration;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// "test_exceptions.cpp:123": how a context names where a callback was scheduled.
std::string here(unsigned line) { return "test_exceptions.cpp:" + std::to_string(line); }

// The what() of a context's exception, or what was thrown if it is not a std::exception.
std::string what_of(const std::exception_ptr& e) {
    if (!e) return "<no exception>";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (int i) {
        return "int " + std::to_string(i);
    } catch (...) {
        return "<unknown>";
    }
}

// Sends everything written to fd 2 into a temporary file for as long as it lives, so the
// default exception handler's output can be checked.
class stderr_capture {
public:
    stderr_capture() {
        std::fflush(stderr);
        saved_ = ::dup(2);
        file_ = std::tmpfile();
        REQUIRE(saved_ != -1);
        REQUIRE(file_ != nullptr);
        REQUIRE(::dup2(::fileno(file_), 2) != -1);  // POSIX returns 2, Windows 0
    }
    ~stderr_capture() { restore(); }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;

    // Stops capturing and returns what was written.
    std::string text() {
        restore();
        return text_;
    }

private:
    void restore() {
        if (!file_) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        std::rewind(file_);
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) text_.append(buf, n);
        std::fclose(file_);
        file_ = nullptr;
    }

    int saved_ = -1;
    std::FILE* file_ = nullptr;
    std::string text_;
};

struct named_thrower {
    void operator()() const { throw std::logic_error("from a named function object"); }
};

}  // namespace

TEST_CASE("an exception escaping a callback reaches the exception handler; the loop runs on") {
    ioloop::event_loop loop;
    std::vector<ioloop::exception_context> reports;
    loop.set_exception_handler([&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
    std::vector<int> order;

    SUBCASE("std::runtime_error") {
        loop.call_soon([&] { order.push_back(1); });
        loop.call_soon([] { throw std::runtime_error("boom"); });
        loop.call_soon([&] { order.push_back(2); });  // same iteration, after the throw
        loop.call_soon([&] { loop.call_soon([&] { order.push_back(3); loop.stop(); }); });
        loop.run_forever();

        REQUIRE(reports.size() == 1);
        CHECK(reports[0].exception != nullptr);
        CHECK(what_of(reports[0].exception) == "boom");
        CHECK_FALSE(reports[0].message.empty());
        CHECK(order == std::vector<int>{1, 2, 3});
    }

    SUBCASE("a thrown int") {
        loop.call_soon([] { throw 42; });
        loop.call_soon([&] {
            order.push_back(1);
            loop.stop();
        });
        loop.run_forever();

        REQUIRE(reports.size() == 1);
        CHECK(what_of(reports[0].exception) == "int 42");
        CHECK_FALSE(reports[0].message.empty());
        CHECK(order == std::vector<int>{1});
    }

    SUBCASE("many throwing callbacks, each reported once") {
        for (int i = 0; i < 10; ++i) {
            loop.call_soon([i] { throw std::runtime_error("n" + std::to_string(i)); });
        }
        run_one_iteration(loop);
        REQUIRE(reports.size() == 10);
        for (int i = 0; i < 10; ++i) {
            CHECK(what_of(reports[static_cast<std::size_t>(i)].exception) == "n" + std::to_string(i));
        }
        // And the loop is still usable.
        loop.call_soon([&] { order.push_back(7); });
        run_one_iteration(loop);
        CHECK(order == std::vector<int>{7});
    }

    SUBCASE("from a timer callback") {
        loop.call_later(1ms, [] { throw std::runtime_error("timer boom"); });
        loop.call_later(5ms, [&] { loop.stop(); });
        loop.run_forever();
        REQUIRE(reports.size() == 1);
        CHECK(what_of(reports[0].exception) == "timer boom");
    }
}

TEST_CASE("the context names the callback and where it was scheduled") {
    ioloop::event_loop loop;
    std::vector<ioloop::exception_context> reports;
    loop.set_exception_handler([&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });

    SUBCASE("call_soon with a lambda") {
        const unsigned line = __LINE__; loop.call_soon([] { throw std::runtime_error("x"); });
        run_one_iteration(loop);
        REQUIRE(reports.size() == 1);
        const std::string& cb = reports[0].callback;
        INFO("callback: " << cb);
        CHECK(contains(cb, "lambda"));
        CHECK(contains(cb, "test_exceptions.cpp"));
        CHECK(contains(cb, here(line)));
    }

    SUBCASE("call_later") {
        const unsigned line = __LINE__; loop.call_later(0ms, [] { throw std::runtime_error("x"); });
        run_one_iteration(loop);
        REQUIRE(reports.size() == 1);
        INFO("callback: " << reports[0].callback);
        CHECK(contains(reports[0].callback, here(line)));
    }

    SUBCASE("call_soon_threadsafe") {
        const unsigned line = __LINE__; loop.call_soon_threadsafe([] { throw std::runtime_error("x"); });
        run_one_iteration(loop);
        REQUIRE(reports.size() == 1);
        INFO("callback: " << reports[0].callback);
        CHECK(contains(reports[0].callback, here(line)));
    }

    if constexpr (test::readiness_backend) {
        SUBCASE("add_reader") {
            test::fd_pair p = test::fd_pair::pipe();
            test::write_all(p.second(), "r");
            const unsigned line = __LINE__; loop.add_reader(p.first(), [] { throw std::runtime_error("x"); });
            run_one_iteration(loop);
            loop.remove_reader(p.first());
            REQUIRE(reports.size() == 1);
            INFO("callback: " << reports[0].callback);
            CHECK(contains(reports[0].callback, here(line)));
        }
    }

    SUBCASE("a named function object") {
        const unsigned line = __LINE__; loop.call_soon(named_thrower{});
        run_one_iteration(loop);
        REQUIRE(reports.size() == 1);
        INFO("callback: " << reports[0].callback);
        CHECK(contains(reports[0].callback, "named_thrower"));
        CHECK(contains(reports[0].callback, here(line)));
    }
}

TEST_CASE("the default exception handler prints to stderr") {
    ioloop::event_loop loop;

    SUBCASE("an empty handler (nullptr) restores the default") {
        int custom_calls = 0;
        loop.set_exception_handler([&](const ioloop::exception_context&) { ++custom_calls; });
        loop.set_exception_handler(nullptr);
        std::string text;
        {
            stderr_capture capture;
            const unsigned line = __LINE__; loop.call_soon([] { throw std::runtime_error("printed by the default"); });
            run_one_iteration(loop);
            text = capture.text();
            INFO("stderr: " << text);
            CHECK(contains(text, "printed by the default"));
            CHECK(contains(text, here(line)));
        }
        CHECK(custom_calls == 0);
    }

    SUBCASE("a default-constructed handler restores it too") {
        int custom_calls = 0;
        loop.set_exception_handler([&](const ioloop::exception_context&) { ++custom_calls; });
        loop.set_exception_handler({});
        stderr_capture capture;
        loop.call_soon([] { throw std::runtime_error("empty handler"); });
        run_one_iteration(loop);
        const std::string text = capture.text();
        INFO("stderr: " << text);
        CHECK(contains(text, "empty handler"));
        CHECK(custom_calls == 0);
    }

    SUBCASE("a fresh loop uses it, also for exceptions not derived from std::exception") {
        stderr_capture capture;
        loop.call_soon([] { throw 7; });
        bool later_ran = false;
        loop.call_soon([&] { later_ran = true; });
        run_one_iteration(loop);
        const std::string text = capture.text();
        INFO("stderr: " << text);
        CHECK(contains(text, "ioloop:"));
        CHECK(contains(text, "test_exceptions.cpp"));
        CHECK(later_ran);
    }
}

TEST_CASE("a handler that itself throws does not kill the loop") {
    ioloop::event_loop loop;
    int handler_calls = 0;
    loop.set_exception_handler([&](const ioloop::exception_context&) {
        ++handler_calls;
        throw std::runtime_error("the handler failed");
    });
    std::vector<int> order;
    stderr_capture capture;
    loop.call_soon([] { throw std::runtime_error("original failure"); });
    loop.call_soon([&] { order.push_back(1); });
    loop.call_soon([&] { loop.call_soon([&] { order.push_back(2); loop.stop(); }); });
    loop.run_forever();
    const std::string text = capture.text();

    CHECK(handler_calls == 1);
    CHECK(order == std::vector<int>{1, 2});
    // Both failures reach stderr through the default handler.
    INFO("stderr: " << text);
    CHECK(contains(text, "the handler failed"));
    CHECK(contains(text, "original failure"));
}

TEST_CASE("call_exception_handler reaches the installed handler") {
    ioloop::event_loop loop;
    std::vector<ioloop::exception_context> reports;
    loop.set_exception_handler([&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
    loop.call_exception_handler({"custom report", nullptr, "somewhere"});
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].message == "custom report");
    CHECK(reports[0].exception == nullptr);
    CHECK(reports[0].callback == "somewhere");
}

TEST_CASE("debug mode reports slow callbacks") {
    ioloop::event_loop loop;
    std::vector<ioloop::exception_context> reports;
    loop.set_exception_handler([&](const ioloop::exception_context& ctx) { reports.push_back(ctx); });
    CHECK(loop.slow_callback_duration() == 100ms);

    SUBCASE("a callback blocking for 200 ms is reported with what it was and how long") {
        loop.set_debug(true);
        CHECK(loop.get_debug());
        const unsigned line = __LINE__; loop.call_soon([] { std::this_thread::sleep_for(200ms); });
        loop.call_soon([] {});  // fast: not reported
        run_one_iteration(loop);

        REQUIRE(reports.size() == 1);
        const ioloop::exception_context& ctx = reports[0];
        INFO("message: " << ctx.message);
        CHECK(ctx.exception == nullptr);
        CHECK(contains(ctx.message, "took"));
        CHECK(contains(ctx.message, here(line)));
        CHECK(contains(ctx.callback, here(line)));
        // "... took 0.2xx seconds": at least what the callback slept, and a sane bound.
        const auto at = ctx.message.find("took ");
        REQUIRE(at != std::string::npos);
        const double seconds = std::strtod(ctx.message.c_str() + at + 5, nullptr);
        CHECK(seconds >= 0.2);
        CHECK(seconds < 5.0);
    }

    SUBCASE("a slow callback that also throws: both are reported") {
        loop.set_debug(true);
        loop.call_soon([] {
            std::this_thread::sleep_for(120ms);
            throw std::runtime_error("slow and failing");
        });
        run_one_iteration(loop);
        REQUIRE(reports.size() == 2);
        CHECK(what_of(reports[0].exception) == "slow and failing");
        CHECK(reports[1].exception == nullptr);
        CHECK(contains(reports[1].message, "took"));
    }

    SUBCASE("with debug off, nothing is reported") {
        loop.set_debug(false);
        CHECK_FALSE(loop.get_debug());
        loop.call_soon([] { std::this_thread::sleep_for(150ms); });
        run_one_iteration(loop);
        CHECK(reports.empty());
    }

    SUBCASE("set_slow_callback_duration changes the threshold") {
        loop.set_debug(true);
        loop.set_slow_callback_duration(20ms);
        CHECK(loop.slow_callback_duration() == 20ms);
        const unsigned line = __LINE__; loop.call_soon([] { std::this_thread::sleep_for(50ms); });
        run_one_iteration(loop);
        REQUIRE(reports.size() == 1);
        CHECK(contains(reports[0].message, "took"));
        CHECK(contains(reports[0].message, here(line)));
    }

    SUBCASE("below the default threshold, nothing is reported") {
        loop.set_debug(true);
        loop.call_soon([] { std::this_thread::sleep_for(5ms); });
        loop.call_later(1ms, [] { std::this_thread::sleep_for(5ms); });
        loop.call_later(2ms, [&] { loop.stop(); });
        loop.run_forever();
        CHECK(reports.empty());
    }

    SUBCASE("slow timer callbacks are reported too") {
        loop.set_debug(true);
        loop.set_slow_callback_duration(20ms);
        const unsigned line = __LINE__; loop.call_later(1ms, [&] { std::this_thread::sleep_for(50ms); loop.stop(); });
        loop.run_forever();
        REQUIRE(reports.size() == 1);
        CHECK(contains(reports[0].message, here(line)));
    }
}

TEST_CASE("IOLOOP_DEBUG in the environment turns debug mode on") {
    const char* saved = std::getenv("IOLOOP_DEBUG");
    const std::string saved_value = saved ? saved : "";

    test::set_env("IOLOOP_DEBUG", "1");
    CHECK(ioloop::event_loop().get_debug());
    test::set_env("IOLOOP_DEBUG", "0");
    CHECK_FALSE(ioloop::event_loop().get_debug());
    test::set_env("IOLOOP_DEBUG", "");
    CHECK_FALSE(ioloop::event_loop().get_debug());
    test::unset_env("IOLOOP_DEBUG");
    CHECK_FALSE(ioloop::event_loop().get_debug());

    if (saved) test::set_env("IOLOOP_DEBUG", saved_value.c_str());
}

TEST_CASE("a handler may replace itself while it runs") {
    // A one-shot handler: it installs another from inside itself, then still uses its own
    // captures. The running handler must stay alive until it returns (ASan checks; a
    // use-after-free may also crash the plain build, which is why this test comes last).
    ioloop::event_loop loop;
    std::vector<std::string> seen;
    const std::string tag(64, 'h');  // captured by value: lives inside the handler object
    loop.set_exception_handler([&loop, &seen, tag](const ioloop::exception_context& ctx) {
        loop.set_exception_handler([&seen](const ioloop::exception_context&) {
            seen.push_back("second");
        });
        seen.push_back(tag + ":" + what_of(ctx.exception));
    });
    loop.call_soon([] { throw std::runtime_error("one"); });
    loop.call_soon([] { throw std::runtime_error("two"); });
    run_one_iteration(loop);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == tag + ":one");
    CHECK(seen[1] == "second");
}
