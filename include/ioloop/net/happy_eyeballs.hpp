// ioloop: how a connect call goes through a host's addresses (asyncio's
// create_connection): in order, one attempt at a time; or, with a happy_eyeballs_delay,
// staggered as RFC 8305 says (asyncio's staggered_race): the next attempt starts when the
// one before has gone the delay without connecting, or at once when it fails, the earlier
// ones going on meanwhile; the first to connect wins, and every other attempt is cancelled
// and its socket closed before the call returns. The addresses may first be interleaved by
// family, so that a dead IPv6 route delays the IPv4 one by one delay only.
#ifndef IOLOOP_NET_HAPPY_EYEBALLS_HPP
#define IOLOOP_NET_HAPPY_EYEBALLS_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/wait.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/connect_errors.hpp"
#include "ioloop/net/connect_options.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/socket.hpp"

#include <chrono>
#include <cstddef>
#include <exception>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The addresses grouped by family in the order each family first appears, then taken
// `first_family_count` - 1 from the first family, then one from each family in turn, so that
// the first family has `first_family_count` before the second's first (asyncio's
// _interleave_addrinfos). The order within a family is kept.
inline std::vector<endpoint> interleave_addresses(const std::vector<endpoint>& addresses,
                                                  std::size_t first_family_count) {
    std::vector<std::vector<endpoint>> families;
    for (const endpoint& a : addresses) {
        std::size_t i = 0;
        while (i < families.size() && families[i].front().family() != a.family()) ++i;
        if (i == families.size()) families.emplace_back();
        families[i].push_back(a);
    }
    std::vector<endpoint> result;
    result.reserve(addresses.size());
    std::vector<std::size_t> taken(families.size(), 0);
    if (!families.empty()) {
        while (taken[0] < families[0].size() && taken[0] + 1 < first_family_count)
            result.push_back(families[0][taken[0]++]);
    }
    while (result.size() < addresses.size()) {
        for (std::size_t f = 0; f < families.size(); ++f) {
            if (taken[f] < families[f].size()) result.push_back(families[f][taken[f]++]);
        }
    }
    return result;
}

// The addresses a connect tries, in the order it tries them: those of local_addr's family
// only when one is given, interleaved as the options say.
inline std::vector<endpoint> connect_order(std::vector<endpoint> addresses,
                                           const connect_options& o, const char* what) {
    if (o.local_addr.family() != address_family::unspecified) {
        std::vector<endpoint> same;
        for (const endpoint& a : addresses) {
            if (a.family() == o.local_addr.family()) same.push_back(a);
        }
        if (same.empty() && !addresses.empty()) {
            throw std::system_error(
                std::make_error_code(std::errc::address_family_not_supported),
                concat({what, ": no address of local_addr ", o.local_addr.to_string(),
                        "'s family to connect to"}));
        }
        addresses = std::move(same);
    }
    const bool staggered = o.happy_eyeballs_delay.count() >= 0;
    const int interleave = o.interleave >= 0 ? o.interleave : (staggered ? 1 : 0);
    if (interleave > 0 && addresses.size() > 1)
        return interleave_addresses(addresses, static_cast<std::size_t>(interleave));
    return addresses;
}

// A socket of to's family, bound to `local` if it is specified, connected to `to` (TCP_NODELAY
// on for TCP), the way the loop's backend family connects (the same path as
// loop.sock_connect).
template <class = void>
coro<socket> connect_socket(loop_base& loop, endpoint to, endpoint local = {}) {
    socket s = socket::open(to.family(), socket_type::stream);
    if (to.family() != address_family::unix_domain) s.set_no_delay(true);
    if (local.family() != address_family::unspecified) s.bind(local);
    co_await with_family(loop, [&](auto ops) { return ops.connect(loop, s, to, "connect"); });
    co_return s;
}

// What a connect throws when every address failed: with all_errors, connect_errors;
// else the one error, the first if they all say the same, or one std::system_error naming
// each (asyncio's OSError("Multiple exceptions: ...")), whose code is the last one's.
[[noreturn]] inline void throw_connect_failure(std::vector<connect_failure> failures,
                                               std::exception_ptr last, bool all_errors,
                                               const char* what) {
    if (failures.empty()) {
        throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                                concat({what, ": the host has no address"}));
    }
    if (all_errors) throw connect_errors(std::move(failures), what);
    bool same = true;
    for (const connect_failure& f : failures) same = same && f.message == failures[0].message;
    if (same) std::rethrow_exception(last);
    std::string text = "Multiple exceptions: ";
    for (std::size_t i = 0; i < failures.size(); ++i) {
        if (i != 0) text += ", ";
        text += failures[i].message;
    }
    throw std::system_error(failures.back().code, text);
}

// One address at a time, each attempt to its end (asyncio without happy_eyeballs_delay).
template <class = void>
coro<socket> connect_in_turn(loop_base& loop, std::vector<endpoint> addresses,
                             connect_options o, const char* what) {
    std::vector<connect_failure> failures;
    std::exception_ptr last;
    for (const endpoint& to : addresses) {
        try {
            co_return co_await connect_socket(loop, to, o.local_addr);
        } catch (const std::system_error& e) {
            failures.push_back({to, e.code(), e.what()});
            last = std::current_exception();
        }
    }
    throw_connect_failure(std::move(failures), std::move(last), o.all_errors, what);
}

// The attempts in flight of a staggered connect, cancelled if the connect ends before
// they do (it won, failed, or was itself cancelled): each one's socket is closed when its
// task ends.
struct connect_attempts {
    std::vector<task<socket>> tasks;
    std::vector<std::size_t> index;  // of each task's address

    connect_attempts() = default;
    connect_attempts(const connect_attempts&) = delete;
    connect_attempts& operator=(const connect_attempts&) = delete;
    ~connect_attempts() {
        for (task<socket>& t : tasks) {
            if (!t.done()) {
                t.cancel();
            } else if (!t.cancelled()) {
                (void)t.exception();  // read: a failure nobody looked at is not reported
            }
        }
    }
};

// RFC 8305's staggered attempts (asyncio's staggered_race); addresses is not empty. As
// asyncio, the next attempt starts when the latest one has run the delay or has failed
// (an earlier one failing does not hurry it).
template <class = void>
coro<socket> connect_staggered(loop_base& loop, std::vector<endpoint> addresses,
                               connect_options o, const char* what) {
    // Each address's failure, in its slot: the errors come out in the addresses' order.
    std::vector<connect_failure> failed(addresses.size());
    std::vector<bool> did_fail(addresses.size(), false);
    std::exception_ptr last;
    connect_attempts running;
    std::size_t next = 0;
    loop_base::time_point latest_start{};
    const auto start_next = [&] {
        running.tasks.push_back(
            loop.create_task(connect_socket(loop, addresses[next], o.local_addr)));
        running.index.push_back(next);
        ++next;
        latest_start = loop.time();
    };
    start_next();
    socket winner;
    while (!running.tasks.empty() && !winner.is_open()) {
        if (next < addresses.size()) {
            using duration = std::chrono::steady_clock::duration;
            const duration waited = loop.time() - latest_start;
            const duration left =
                waited < o.happy_eyeballs_delay ? o.happy_eyeballs_delay - waited : duration{};
            (void)co_await wait(running.tasks, left, first_completed);
        } else {
            (void)co_await wait(running.tasks, first_completed);
        }
        // The attempts done: a failure is kept, the first success wins (another that
        // connected in the same turn is closed with its task).
        bool latest_failed = false;
        for (std::size_t i = 0; i < running.tasks.size();) {
            task<socket>& t = running.tasks[i];
            if (!t.done()) {
                ++i;
                continue;
            }
            const std::size_t k = running.index[i];
            if (std::exception_ptr e = t.exception()) {
                try {
                    std::rethrow_exception(e);  // anything but a system_error leaves at once
                } catch (const std::system_error& err) {
                    failed[k] = {addresses[k], err.code(), err.what()};
                    did_fail[k] = true;
                    last = e;
                    latest_failed = latest_failed || k + 1 == next;
                }
            } else if (!winner.is_open()) {
                winner = std::move(t.result());
            }
            running.tasks.erase(running.tasks.begin() + static_cast<std::ptrdiff_t>(i));
            running.index.erase(running.index.begin() + static_cast<std::ptrdiff_t>(i));
        }
        if (winner.is_open() || next == addresses.size()) continue;
        if (latest_failed || running.tasks.empty() ||
            loop.time() - latest_start >= o.happy_eyeballs_delay) {
            start_next();
        }
    }
    if (winner.is_open()) {
        // The losers are cancelled and waited for, so that their sockets are closed when
        // the caller gets the winner. One that failed or connected meanwhile is dropped.
        if (!running.tasks.empty()) {
            for (task<socket>& t : running.tasks) t.cancel();
            (void)co_await wait(running.tasks);
            for (task<socket>& t : running.tasks) {
                if (!t.cancelled()) (void)t.exception();  // read, so it is not reported
            }
            running.tasks.clear();
        }
        co_return winner;
    }
    std::vector<connect_failure> failures;
    for (std::size_t k = 0; k < addresses.size(); ++k) {
        if (did_fail[k]) failures.push_back(std::move(failed[k]));
    }
    throw_connect_failure(std::move(failures), std::move(last), o.all_errors, what);
}

// The first of `addresses` to connect, as the options say; what = the call's name.
template <class = void>
coro<socket> connect_any(loop_base& loop, std::vector<endpoint> addresses, connect_options o,
                         const char* what) {
    addresses = connect_order(std::move(addresses), o, what);
    if (o.happy_eyeballs_delay.count() >= 0 && addresses.size() > 1)
        return connect_staggered(loop, std::move(addresses), o, what);
    return connect_in_turn(loop, std::move(addresses), o, what);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
