// A port prober: connects to many ports of one host at once, each attempt under
// ioloop::wait_for, and reports each port as open (it accepted), closed (it refused) or
// filtered (no answer in time). Each probe is a task; a semaphore bounds how many sockets
// are open at once; gather collects the results in port order.
//   g++ -std=c++20 -I single_include examples/port_prober.cpp -o port_prober
//   ./port_prober                          127.0.0.1, ports 1-1024
//   ./port_prober ::1 22,80,8000-8100 --timeout 300 --at-once 100 --all
// Probe only hosts you are allowed to probe.
#include <ioloop/ioloop.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;

enum class port_state { open, closed, filtered, error };
constexpr const char* names[] = {"open", "closed", "filtered", "error"};

struct result {
    port_state state;
    std::string detail;  // what failed, for port_state::error
};

ioloop::coro<result> probe(ioloop::endpoint to, std::chrono::milliseconds limit,
                           ioloop::semaphore& sockets) {
    auto slot = co_await sockets.scoped();  // released when the probe ends
    auto& loop = ioloop::get_running_loop();
    ioloop::socket s = ioloop::socket::open(to.family(), ioloop::socket_type::stream);
    try {
        // asyncio: await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
        co_await ioloop::wait_for(loop.sock_connect(s, to), limit);
        co_return result{port_state::open, {}};
    } catch (const ioloop::timeout_error&) {
        co_return result{port_state::filtered, {}};  // no SYN-ACK, no RST: dropped on the way
    } catch (const std::system_error& e) {
        if (e.code() == std::errc::connection_refused) co_return result{port_state::closed, {}};
        if (e.code() == std::errc::host_unreachable || e.code() == std::errc::network_unreachable)
            co_return result{port_state::filtered, {}};  // an ICMP "unreachable" answered
        co_return result{port_state::error, e.what()};
    }
}  // the socket closes here: an open port sees a connection come and go

// "22,80,8000-8100" -> the ports, in order; empty if malformed.
std::vector<std::uint16_t> parse_ports(std::string_view spec) {
    std::vector<std::uint16_t> ports;
    while (!spec.empty()) {
        const std::string_view item = spec.substr(0, spec.find(','));
        spec.remove_prefix(std::min(spec.size(), item.size() + 1));
        const std::size_t dash = item.find('-');
        const long first = std::atol(std::string(item.substr(0, dash)).c_str());
        const long last =
            dash == item.npos ? first : std::atol(std::string(item.substr(dash + 1)).c_str());
        if (first < 1 || last > 65535 || first > last) return {};
        for (long p = first; p <= last; ++p) ports.push_back(static_cast<std::uint16_t>(p));
    }
    return ports;
}

ioloop::coro<int> amain(std::string host, std::vector<std::uint16_t> ports,
                        std::chrono::milliseconds limit, long at_once, bool all) {
    auto& loop = ioloop::get_running_loop();
    const ioloop::endpoint address =
        (co_await loop.getaddrinfo(host, 0, ioloop::socket_type::stream)).at(0);
    std::printf("probing %zu ports of %s, %ld at once, %lld ms each\n", ports.size(),
                address.host().c_str(), at_once, static_cast<long long>(limit.count()));

    const auto start = loop.time();
    ioloop::semaphore sockets(static_cast<std::size_t>(at_once));
    std::vector<ioloop::task<result>> probes;
    for (std::uint16_t port : ports) {
        probes.push_back(
            ioloop::create_task(probe(ioloop::endpoint::ip(address.host(), port), limit, sockets)));
    }
    const std::vector<result> results = co_await ioloop::gather(std::move(probes));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(loop.time() - start);

    std::size_t count[4] = {};
    for (std::size_t i = 0; i < results.size(); ++i) {
        const result& r = results[i];
        ++count[static_cast<int>(r.state)];
        if (all || r.state != port_state::closed) {  // closed ports are most: list on request
            std::printf("%u %s%s%s\n", ports[i], names[static_cast<int>(r.state)],
                        r.detail.empty() ? "" : ": ", r.detail.c_str());
        }
    }
    std::printf("%zu ports in %lld ms: %zu open, %zu closed, %zu filtered, %zu errors\n",
                results.size(), static_cast<long long>(took.count()), count[0], count[1], count[2],
                count[3]);
    co_return 0;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    std::vector<std::uint16_t> ports = parse_ports("1-1024");
    long timeout_ms = 1000, at_once = 256;
    bool all = false;
    int positional = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--all") {
            all = true;
        } else if (arg == "--timeout" && i + 1 < argc) {
            timeout_ms = std::atol(argv[++i]);
        } else if (arg == "--at-once" && i + 1 < argc) {
            at_once = std::atol(argv[++i]);
        } else if (positional == 0 && !arg.starts_with("--")) {
            host = arg;
            ++positional;
        } else if (positional == 1 && !arg.starts_with("--")) {
            ports = parse_ports(arg);
            ++positional;
        } else {
            ports.clear();  // unknown: usage below
            break;
        }
    }
    if (ports.empty() || timeout_ms <= 0 || at_once <= 0) {
        std::fprintf(stderr,
                     "usage: port_prober [HOST [PORTS]] [--timeout MS] [--at-once N] [--all]\n"
                     "       PORTS: 22,80,8000-8100 (default 1-1024), HOST: default 127.0.0.1\n");
        return 2;
    }
    try {
        return ioloop::run(
            amain(host, std::move(ports), std::chrono::milliseconds(timeout_ms), at_once, all));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "port_prober: %s\n", e.what());
        return 1;
    }
}
