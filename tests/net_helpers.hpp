// Helpers the transport, server and network-fault tests share: a protocol that records
// what it is told, an echo protocol, random payloads, a bounded wait for a condition, and
// descriptor-limit guards (POSIX).
#ifndef IOLOOP_TESTS_NET_HELPERS_HPP
#define IOLOOP_TESTS_NET_HELPERS_HPP

#include <ioloop/ioloop.hpp>

#include "platform.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace nettest {

using namespace std::chrono_literals;

inline std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(gen() & 0xff);
    return s;
}

inline std::string_view backend_name() { return ioloop::event_loop::backend_type::name; }

// Whether an IPv6 socket can bind ::1 here (a container may have no IPv6 at all); if not,
// the test says so in its output.
inline bool have_ipv6_loopback(ioloop::socket_type type = ioloop::socket_type::stream) {
    try {
        ioloop::socket s = ioloop::socket::open(ioloop::address_family::ipv6, type);
        s.bind(ioloop::endpoint::ip("::1", 0));
        return true;
    } catch (const std::system_error& e) {
        MESSAGE("IPv6 loopback unavailable here (" << e.what() << "): IPv6 is not checked");
        return false;
    }
}

// A Unix socket path unique to this process, backend and name; removed first.
inline std::string unix_path(std::string_view name) {
    std::string p = test::temp_dir() + "/ioloop-net-" + std::to_string(test::process_id()) +
                    "-" + std::string(backend_name()) + "-" + std::string(name) + ".sock";
    std::remove(p.c_str());
    return p;
}

// What one connection's protocol was told. It outlives the protocol, which its transport
// destroys right after connection_lost.
struct record {
    ioloop::transport* t = nullptr;  // between connection_made and connection_lost
    std::string data;
    int made = 0;
    int received_calls = 0;
    int eofs = 0;
    int lost = 0;
    std::error_code lost_code;
    std::size_t buffer_at_lost = 0;
    int pauses = 0;
    int resumes = 0;
    bool paused = false;
    bool keep_open_on_eof = false;  // what eof_received returns
    bool pause_reading_at_start = false;
    bool echo = false;  // writes back what it reads
    int destroyed = 0;
};

class probe : public ioloop::protocol {
public:
    explicit probe(record& r) : r_(r) {}
    ~probe() override { ++r_.destroyed; }

    void connection_made(ioloop::transport& t) override {
        r_.t = &t;
        ++r_.made;
        if (r_.pause_reading_at_start) t.pause_reading();
    }
    void data_received(std::string_view d) override {
        r_.data.append(d);
        ++r_.received_calls;
        if (r_.echo) r_.t->write(d);
    }
    bool eof_received() override {
        ++r_.eofs;
        return r_.keep_open_on_eof;
    }
    void connection_lost(std::error_code ec) override {
        ++r_.lost;
        r_.lost_code = ec;
        r_.buffer_at_lost = r_.t ? r_.t->get_write_buffer_size() : 0;
        r_.t = nullptr;
    }
    void pause_writing() override {
        ++r_.pauses;
        r_.paused = true;
    }
    void resume_writing() override {
        ++r_.resumes;
        r_.paused = false;
    }

private:
    record& r_;
};

// A server's probes, one record per connection (a deque: references stay valid).
struct records {
    std::deque<record> all;
    record& operator[](std::size_t i) { return all.at(i); }
    std::size_t size() const { return all.size(); }
};

// Writes back what it reads; closes when the peer is done (eof_received's default).
class echo : public ioloop::protocol {
public:
    void connection_made(ioloop::transport& t) override { t_ = &t; }
    void data_received(std::string_view d) override { t_->write(d); }

private:
    ioloop::transport* t_ = nullptr;
};

inline std::uint16_t port_of(const ioloop::server& s, std::size_t i = 0) {
    return s.sockets().at(i).local_endpoint().port();
}

// The deadline of one AWAIT_UNTIL: each tick sleeps 1 ms, and past the limit the wait
// throws, naming the condition, instead of hanging the test.
class deadline {
public:
    explicit deadline(const char* what, std::chrono::milliseconds limit = 20s)
        : what_(what), end_(ioloop::get_running_loop().time() + limit) {}
    ioloop::coro<void> tick() {
        if (ioloop::get_running_loop().time() > end_) {
            throw std::runtime_error(std::string("timed out waiting until ") + what_);
        }
        co_await ioloop::sleep(1ms);
    }

private:
    const char* what_;
    ioloop::event_loop::time_point end_;
};

// Inside a coroutine: waits until `cond` holds (checked every millisecond, 20 s at most).
#define AWAIT_UNTIL(cond) \
    for (::nettest::deadline until_deadline_(#cond); !(cond);) co_await until_deadline_.tick()

// The error that awaiting call() throws; the test fails if it returns instead.
template <class Call>
ioloop::coro<std::system_error> failure_of(Call call, const char* what) {
    try {
        (void)co_await call();
    } catch (const std::system_error& e) {
        co_return e;
    }
    FAIL(what);
    co_return std::system_error(std::error_code());
}

// Runs a coroutine test body on a fresh loop with a time limit, so a hang fails the test.
template <class T>
T run(ioloop::coro<T> body, std::chrono::seconds limit = 60s) {
    return ioloop::run(ioloop::wait_for(std::move(body), limit));
}

// Descriptor limits and counts are POSIX's: Windows has no RLIMIT_NOFILE, and Wine
// reports no handle count (GetProcessHandleCount says 0). The tests that use these are
// compiled on POSIX only.
#if defined(IOLOOP_POSIX)

// The soft descriptor limit, set for a scope and restored after.
class nofile_limit {
public:
    explicit nofile_limit(rlim_t soft) {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
        rlimit lowered = saved_;
        lowered.rlim_cur = soft;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    }
    nofile_limit(const nofile_limit&) = delete;
    nofile_limit& operator=(const nofile_limit&) = delete;
    ~nofile_limit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
    const rlimit& saved() const { return saved_; }

private:
    rlimit saved_{};
};

// Descriptors (of /dev/null) that fill the table up to its limit, or up to `until_fd`;
// closed by the destructor or release().
class fd_filler {
public:
    explicit fd_filler(int until_fd = -1) {
        for (;;) {
            const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd == -1) {
                REQUIRE(errno == EMFILE);
                break;
            }
            fds_.push_back(fd);
            if (until_fd >= 0 && fd >= until_fd) break;
        }
    }
    fd_filler(const fd_filler&) = delete;
    fd_filler& operator=(const fd_filler&) = delete;
    ~fd_filler() { release(); }
    void release() {
        for (int fd : fds_) ::close(fd);
        fds_.clear();
    }
    std::size_t size() const { return fds_.size(); }

private:
    std::vector<int> fds_;
};

// How many descriptors below 65536 are open in this process.
inline int open_fd_count() { return test::open_descriptor_count(); }

#endif

// ---- many connections at once (test_servers: 10,000 plain; test_ssl: 1,000 over TLS) ----

// Server side: greets with "+" once the connection is made (after the handshake, over
// TLS), so a client knows it was accepted, then echoes; counts the connections open at once.
struct many_server_state {
    int active = 0;
    int max_active = 0;
    int total = 0;
};

class greet_echo : public ioloop::protocol {
public:
    explicit greet_echo(many_server_state& s) : s_(s) {}
    void connection_made(ioloop::transport& t) override {
        t_ = &t;
        ++s_.total;
        s_.max_active = std::max(s_.max_active, ++s_.active);
        t.write("+");
    }
    void data_received(std::string_view d) override { t_->write(d); }
    void connection_lost(std::error_code) override { --s_.active; }

private:
    many_server_state& s_;
    ioloop::transport* t_ = nullptr;
};

// Client side (the tests run the clients in a forked child).
struct many_client {
    ioloop::transport* t = nullptr;
    std::string expected;
    std::string got;
    bool greeted = false;
    bool done = false;
    bool ok = false;
};

struct many_client_totals {
    int greeted = 0;
    int done = 0;
    int ok = 0;
    int lost = 0;
};

class many_client_protocol : public ioloop::protocol {
public:
    many_client_protocol(many_client& c, many_client_totals& totals) : c_(c), totals_(totals) {}
    void connection_made(ioloop::transport& t) override { c_.t = &t; }
    void data_received(std::string_view d) override {
        c_.got.append(d);
        if (!c_.greeted && !c_.got.empty()) {
            c_.greeted = true;
            ++totals_.greeted;
        }
        if (!c_.done && !c_.expected.empty() && c_.got.size() >= c_.expected.size()) {
            c_.done = true;
            c_.ok = c_.got == c_.expected;
            ++totals_.done;
            if (c_.ok) ++totals_.ok;
            c_.t->close();
        }
    }
    void connection_lost(std::error_code) override {
        if (!c_.done) {
            c_.done = true;
            ++totals_.done;
        }
        ++totals_.lost;
        c_.t = nullptr;
    }

private:
    many_client& c_;
    many_client_totals& totals_;
};

}  // namespace nettest

#endif
