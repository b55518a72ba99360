// LAN discovery over UDP, the way printers and game servers find each other: an announcer
// sends "ioloop-discovery NAME" every so often to a broadcast address or a multicast group,
// and a listener reports each one it hears, with the sender's address. Both are datagram
// endpoints (asyncio's loop.create_datagram_endpoint): the announcer with
// allow_broadcast, or with the loopback as its multicast interface; the listener bound to
// the port on every interface, having joined the group for multicast.
//
// Both work on one machine without root: Linux delivers a broadcast to 127.255.255.255 to
// every socket bound to the port (sending to it needs SO_BROADCAST, else EACCES), and a
// multicast datagram sent out of the loopback interface to every member that joined on it.
//   g++ -std=c++20 -I single_include examples/lan_discovery.cpp -o lan_discovery
//   ./lan_discovery                 demo: a listener and an announcer in one process, exits
//   ./lan_discovery listen --port 5353 [--count N] [--serve-for S] [--multicast 239.255.0.1]
//   ./lan_discovery announce --port 5353 --name kitchen [--count N] [--interval S]
//                   [--multicast 239.255.0.1]   (default: broadcast to 127.255.255.255)
#include <ioloop/ioloop.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

constexpr std::string_view prefix = "ioloop-discovery ";

struct options {
    std::string mode;        // listen, announce, or empty for the demo
    long port = 5353;
    std::string name = "ioloop";
    std::string multicast;   // a group address; empty: broadcast
    long count = 0;          // listen: stop after this many; announce: send this many (0: 3)
    double interval = 0.2;   // seconds between announcements
    double serve_for = 0;    // listen: seconds; 0: until the count or a signal
};

// Reports each announcement; stops the loop after `count` of them.
class listener_protocol : public ioloop::datagram_protocol {
public:
    listener_protocol(ioloop::event_loop& loop, long count) : loop_(loop), count_(count) {}

    void datagram_received(std::string_view data, const ioloop::endpoint& from) override {
        if (data.substr(0, prefix.size()) != prefix) return;  // not ours
        const std::string_view name = data.substr(prefix.size());
        std::printf("lan_discovery: found %.*s at %s\n", static_cast<int>(name.size()),
                    name.data(), from.to_string().c_str());
        if (count_ > 0 && ++heard_ == count_) loop_.stop();
    }
    void error_received(std::error_code ec) override {
        std::printf("lan_discovery: error received: %s\n", ec.message().c_str());
    }

private:
    ioloop::event_loop& loop_;
    long count_;
    long heard_ = 0;
};

// The listener's endpoint: the port on every IPv4 interface, in the group if multicast.
std::pair<ioloop::datagram_transport*, listener_protocol*> open_listener(ioloop::event_loop& loop,
                                                                         const options& o) {
    auto [t, p] = loop.run_until_complete(loop.create_datagram_endpoint(
        [&] { return std::make_unique<listener_protocol>(loop, o.count); },
        ioloop::endpoint::ip("0.0.0.0", static_cast<std::uint16_t>(o.port)), ioloop::endpoint()));
    if (!o.multicast.empty()) {
        // Joined on the loopback: the announcer's datagrams leave by it (below).
        t->join_multicast_group(ioloop::endpoint::ip(o.multicast, 0),
                                ioloop::endpoint::ip("127.0.0.1", 0));
    }
    std::printf("lan_discovery: listening on %s%s%s\n",
                t->get_extra_info("sockname").address().to_string().c_str(),
                o.multicast.empty() ? "" : " in group ", o.multicast.c_str());
    return {t, p};
}

// Sends the announcements, one every interval.
ioloop::coro<void> announce(const options& o) {
    auto& loop = ioloop::get_running_loop();
    const bool multicast = !o.multicast.empty();
    const ioloop::endpoint to = ioloop::endpoint::ip(
        multicast ? o.multicast : std::string("127.255.255.255"),
        static_cast<std::uint16_t>(o.port));
    auto factory = [] { return std::make_unique<ioloop::datagram_protocol>(); };
    // asyncio: create_datagram_endpoint(..., local_addr=("127.0.0.1", 0), allow_broadcast=True)
    auto [t, p] = co_await loop.create_datagram_endpoint(
        factory, ioloop::endpoint::ip("127.0.0.1", 0), ioloop::endpoint(),
        {.allow_broadcast = !multicast});
    (void)p;
    if (multicast) t->set_multicast_interface(ioloop::endpoint::ip("127.0.0.1", 0));
    const long count = o.count > 0 ? o.count : 3;
    const std::string message = std::string(prefix) + o.name;
    for (long i = 0; i < count; ++i) {
        if (i > 0) co_await ioloop::sleep(std::chrono::duration<double>(o.interval));
        t->sendto(message, to);
        std::printf("lan_discovery: announced %s to %s\n", o.name.c_str(), to.to_string().c_str());
    }
    t->close();
}

int run_listener(const options& o) {
    ioloop::event_loop loop;
    open_listener(loop, o);
    const char* why = "the count reached";
    for (int sig : {SIGINT, SIGTERM}) {
        loop.add_signal_handler(sig, [&loop, &why, sig] {
            why = sig == SIGINT ? "SIGINT" : "SIGTERM";
            loop.stop();
        });
    }
    if (o.serve_for > 0) {
        loop.call_later(std::chrono::duration<double>(o.serve_for), [&loop, &why] {
            why = "the time given";
            loop.stop();
        });
    }
    loop.run_forever();
    std::printf("lan_discovery: stopped by %s\n", why);
    loop.close();
    return 0;
}

// The demo: a listener, then an announcer in the same loop; both ways in turn.
int run_demo() {
    bool heard_all = true;
    for (const char* group : {"", "239.255.42.1"}) {
        ioloop::event_loop loop;
        options o;
        o.port = 0;
        o.count = 3;
        o.multicast = group;
        auto [t, p] = open_listener(loop, o);
        (void)p;
        o.port = t->get_extra_info("sockname").address().port();
        o.name = *group ? "demo-multicast" : "demo-broadcast";
        ioloop::task<void> sender = loop.create_task(announce(o));
        ioloop::timer_handle give_up = loop.call_later(std::chrono::seconds(5), [&] {
            std::printf("lan_discovery: gave up waiting\n");
            heard_all = false;
            loop.stop();
        });
        loop.run_forever();  // until the listener heard all three
        give_up.cancel();
        loop.run_until_complete(sender);
        loop.close();
    }
    return heard_all ? 0 : 1;
}

int main(int argc, char** argv) {
    options o;
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        o.mode = argv[1];
        first = 2;
    }
    bool usable = (argc - first) % 2 == 0 && (o.mode.empty() || o.mode == "listen" ||
                                               o.mode == "announce");
    for (int i = first; usable && i + 1 < argc; i += 2) {
        const std::string_view opt = argv[i];
        if (opt == "--port") {
            o.port = std::atol(argv[i + 1]);
        } else if (opt == "--name") {
            o.name = argv[i + 1];
        } else if (opt == "--multicast") {
            o.multicast = argv[i + 1];
        } else if (opt == "--count") {
            o.count = std::atol(argv[i + 1]);
        } else if (opt == "--interval") {
            o.interval = std::atof(argv[i + 1]);
        } else if (opt == "--serve-for") {
            o.serve_for = std::atof(argv[i + 1]);
        } else {
            usable = false;
        }
    }
    if (!usable || o.port < 0 || o.port > 65535 || (o.mode.empty() && argc > 1)) {
        std::fprintf(stderr,
                     "usage: lan_discovery [listen|announce] [--port P] [--name NAME] "
                     "[--multicast GROUP] [--count N] [--interval S] [--serve-for S]\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each log line at once, even into a pipe
    try {
        if (o.mode == "listen") return run_listener(o);
        if (o.mode == "announce") return ioloop::run(announce(o)), 0;
        return run_demo();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lan_discovery: %s\n", e.what());
        return 1;
    }
}
