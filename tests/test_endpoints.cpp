// Endpoints (parsing and formatting IPv4, IPv6 and Unix-domain addresses) and sockets
// (non-blocking, close-on-exec descriptors; bind, listen, addresses, options), before any
// loop integration: the socket calls here are plain blocking ones made by the test.
#include <ioloop/ioloop.hpp>  // first: proves the header is self-contained

#include "platform.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#if defined(IOLOOP_POSIX)
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#endif

using ioloop::address_family;
using ioloop::endpoint;
using ioloop::socket_type;

namespace {

// The std::errc a call threw, or a failed check when it threw nothing.
template <class F>
std::error_code thrown_code(F&& f) {
    try {
        std::forward<F>(f)();
    } catch (const std::system_error& e) {
        return e.code();
    }
    FAIL_CHECK("no std::system_error was thrown");
    return {};
}

std::string thrown_message(auto&& f) {
    try {
        f();
    } catch (const std::system_error& e) {
        return e.what();
    }
    return {};
}

#if defined(TEST_UNIX_SOCKETS)
// A private directory for Unix socket files, removed with what it holds.
struct temp_dir {
    std::string path;
    temp_dir() {
        char pattern[] = "/tmp/ioloop-endpoints-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~temp_dir() {
        ::unlink((path + "/s.sock").c_str());
        ::rmdir(path.c_str());
    }
};
#endif

// A listening IPv4 socket on an ephemeral loopback port.
ioloop::socket loopback_listener() {
    ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    s.bind(endpoint::ip("127.0.0.1", 0));
    s.listen();
    return s;
}

}  // namespace

TEST_CASE("an IPv4 literal parses and formats") {
    const endpoint ep = endpoint::ip("127.0.0.1", 8080);
    CHECK(ep.family() == address_family::ipv4);
    CHECK(ep.host() == "127.0.0.1");
    CHECK(ep.port() == 8080);
    CHECK(ep.to_string() == "127.0.0.1:8080");
    CHECK(ep.path().empty());
    REQUIRE(ep.native_size() == sizeof(sockaddr_in));
    const auto* in = reinterpret_cast<const sockaddr_in*>(ep.native());
    CHECK(in->sin_family == AF_INET);
    CHECK(ntohs(in->sin_port) == 8080);
    CHECK(ntohl(in->sin_addr.s_addr) == 0x7f000001u);

    CHECK(endpoint::ip("0.0.0.0", 0).to_string() == "0.0.0.0:0");
    CHECK(endpoint::ip("255.255.255.255", 65535).to_string() == "255.255.255.255:65535");
}

TEST_CASE("IPv6 literals parse, with or without brackets, and format with them") {
    const endpoint a = endpoint::ip("::1", 8080);
    const endpoint b = endpoint::ip("[::1]", 8080);
    CHECK(a.family() == address_family::ipv6);
    CHECK(a.host() == "::1");
    CHECK(a.port() == 8080);
    CHECK(a.to_string() == "[::1]:8080");
    CHECK(a == b);
    CHECK(a.native_size() == sizeof(sockaddr_in6));

    const endpoint mapped = endpoint::ip("::ffff:1.2.3.4", 80);
    CHECK(mapped.family() == address_family::ipv6);
    CHECK(mapped.host() == "::ffff:1.2.3.4");
    CHECK(mapped.to_string() == "[::ffff:1.2.3.4]:80");
    CHECK(mapped != endpoint::ip("1.2.3.4", 80));  // a mapped address is still IPv6

    // inet_ntop's canonical spelling: leading zeros and the longest zero run compressed.
    CHECK(endpoint::ip("2001:0db8:0000:0000:0000:0000:0000:0001", 443).host() == "2001:db8::1");
}

TEST_CASE("an IPv6 scope is an interface name or a number") {
    // Names need if_nametoindex, which Windows keeps in a library ioloop does not link:
    // there scopes are numbers only, and a name is refused (checked below).
#if defined(IOLOOP_POSIX)
    const unsigned lo = ::if_nametoindex("lo");
    if (lo != 0) {
        const endpoint named = endpoint::ip("fe80::1%lo", 80);
        const endpoint numbered = endpoint::ip("fe80::1%" + std::to_string(lo), 80);
        CHECK(named == numbered);
        CHECK(named.host() == "fe80::1%lo");
        CHECK(named.to_string() == "[fe80::1%lo]:80");
        CHECK(endpoint::ip("[fe80::1%lo]", 80) == named);
        CHECK(named != endpoint::ip("fe80::1", 80));
    }
#endif
    endpoint untouched = endpoint::ip("10.0.0.1", 1);
    CHECK_FALSE(endpoint::parse_ip("fe80::1%no-such-interface0", 80, untouched));
    CHECK_FALSE(endpoint::parse_ip("fe80::1%", 80, untouched));
    CHECK_FALSE(endpoint::parse_ip("fe80::1%99999999999", 80, untouched));
    CHECK_FALSE(endpoint::parse_ip("1.2.3.4%1", 80, untouched));  // scopes are IPv6 only
    CHECK(untouched == endpoint::ip("10.0.0.1", 1));              // failures leave it
}

TEST_CASE("what is not a numeric address is errc::invalid_argument, naming the host") {
    for (std::string_view bad :
         {"256.1.1.1", "example.com", "1.2.3", "", "1.2.3.4.5", "::1::2", "[1.2.3.4]", "[::1",
          "::1]", "[]", " 1.2.3.4", "localhost", "12345:::"}) {
        CAPTURE(bad);
        CHECK(thrown_code([&] { (void)endpoint::ip(bad, 80); }) == std::errc::invalid_argument);
        endpoint out;
        CHECK_FALSE(endpoint::parse_ip(bad, 80, out));
        CHECK(out.family() == address_family::unspecified);
    }
    const std::string message = thrown_message([] { (void)endpoint::ip("example.com", 80); });
    CHECK(message.find("\"example.com\"") != std::string::npos);
    CHECK(message.find("getaddrinfo") != std::string::npos);

    // A NUL would cut the text short for inet_pton, which would parse the prefix.
    using namespace std::string_literals;
    for (const std::string& bad :
         {"127.0.0.1\0.example"s, "::1\0"s, "[::1]\0"s, "\0"s, "fe80::1%1\0x"s}) {
        CAPTURE(bad.size());
        CHECK(thrown_code([&] { (void)endpoint::ip(bad, 80); }) == std::errc::invalid_argument);
        endpoint out;
        CHECK_FALSE(endpoint::parse_ip(bad, 80, out));
    }
    CHECK(thrown_message([] {
              (void)endpoint::ip("127.0.0.1\0.example"s, 80);
          }).find("\"127.0.0.1...\" holds a NUL character") != std::string::npos);
    CHECK(thrown_code([] { (void)endpoint::unix_path("/tmp/a\0b"s); }) ==
          std::errc::invalid_argument);

    // A literal far longer than any address is refused, not copied.
    CHECK_FALSE([] {
        endpoint out;
        return endpoint::parse_ip(std::string(1000, '1'), 80, out);
    }());
}

TEST_CASE("a default endpoint is unspecified") {
    const endpoint ep;
    CHECK(ep.family() == address_family::unspecified);
    CHECK(ep.native_size() == 0);
    CHECK(ep.port() == 0);
    CHECK(ep.host().empty());
    CHECK(ep.to_string() == "unspecified");
    CHECK(ep == endpoint());
    CHECK(ep != endpoint::ip("0.0.0.0", 0));
}

TEST_CASE("Unix paths: pathnames, abstract names, and the sun_path limit") {
    const endpoint file = endpoint::unix_path("/tmp/x.sock");
    CHECK(file.family() == address_family::unix_domain);
    CHECK(file.path() == "/tmp/x.sock");
    CHECK(file.to_string() == "/tmp/x.sock");
    CHECK(file.port() == 0);
    CHECK(file.host().empty());
    CHECK(file.native_size() == offsetof(sockaddr_un, sun_path) + 12);  // with its NUL
    CHECK(file == endpoint::unix_path("/tmp/x.sock"));
    CHECK(file != endpoint::unix_path("/tmp/y.sock"));

    using namespace std::string_view_literals;
    const endpoint abstract = endpoint::unix_path("\0ioloop-abstract"sv);
    CHECK(abstract.path() == "\0ioloop-abstract"sv);
    CHECK(abstract.to_string() == "@ioloop-abstract");
    CHECK(abstract.native_size() == offsetof(sockaddr_un, sun_path) + 16);  // no NUL
    CHECK(abstract != endpoint::unix_path("/ioloop-abstract"));

    const std::size_t room = sizeof(sockaddr_un{}.sun_path);
    CHECK(endpoint::unix_path(std::string(room - 1, 'a')).path().size() == room - 1);
    CHECK(thrown_code([&] { (void)endpoint::unix_path(std::string(room, 'a')); }) ==
          std::errc::filename_too_long);
    CHECK(thrown_code([&] { (void)endpoint::unix_path(std::string(4096, 'a')); }) ==
          std::errc::filename_too_long);
    // An abstract name has no terminator, so it may fill sun_path.
    CHECK(endpoint::unix_path(std::string(1, '\0') + std::string(room - 1, 'b')).to_string() ==
          "@" + std::string(room - 1, 'b'));
    CHECK(thrown_code([] { (void)endpoint::unix_path(""); }) == std::errc::invalid_argument);
    CHECK(thrown_code([] { (void)endpoint::unix_path("a\0b"sv); }) == std::errc::invalid_argument);
}

TEST_CASE("from_native round-trips every family and rejects what it cannot hold") {
    using namespace std::string_view_literals;
    for (const endpoint& ep :
         {endpoint::ip("192.168.1.20", 5353), endpoint::ip("2001:db8::42", 65535),
          endpoint::ip("::ffff:10.1.2.3", 1), endpoint::unix_path("/run/ioloop.sock"),
          endpoint::unix_path("\0abstract"sv)}) {
        CAPTURE(ep.to_string());
        const endpoint copy = endpoint::from_native(ep.native(), ep.native_size());
        CHECK(copy == ep);
        CHECK(copy.to_string() == ep.to_string());
        CHECK(copy.native_size() == ep.native_size());
    }

    // A pathname whose length leaves out the terminator (as some kernels report it).
    const endpoint file = endpoint::unix_path("/tmp/z");
    CHECK(endpoint::from_native(file.native(), file.native_size() - 1) == file);

    sockaddr_in in{};
    in.sin_family = AF_INET;
    CHECK(thrown_code([&] {
              (void)endpoint::from_native(reinterpret_cast<const sockaddr*>(&in), sizeof in - 1);
          }) == std::errc::invalid_argument);
    CHECK(thrown_code([] { (void)endpoint::from_native(nullptr, 16); }) ==
          std::errc::invalid_argument);
    sockaddr_storage other{};
    other.ss_family = AF_UNSPEC;
    CHECK(thrown_code([&] {
              (void)endpoint::from_native(reinterpret_cast<const sockaddr*>(&other), sizeof other);
          }) == std::errc::address_family_not_supported);
}

TEST_CASE("open: every family and type is non-blocking and close-on-exec") {
    for (address_family family : {
             address_family::ipv4, address_family::ipv6
#if defined(TEST_UNIX_SOCKETS)
                 ,
                 address_family::unix_domain
#endif
         }) {
        for (socket_type type : {socket_type::stream, socket_type::datagram}) {
            CAPTURE(static_cast<int>(family));
            CAPTURE(static_cast<int>(type));
            ioloop::socket s;
            try {
                s = ioloop::socket::open(family, type);
            } catch (const std::system_error& e) {
                // A machine without IPv6 is not a failure of ours.
                if (family == address_family::ipv6 &&
                    e.code() == std::errc::address_family_not_supported)
                    continue;
                throw;
            }
            REQUIRE(s.is_open());
#if defined(IOLOOP_POSIX)  // Windows cannot read a socket's blocking mode back
            CHECK(test::nonblocking(s.fd()));
#endif
            CHECK_FALSE(test::inheritable(s.fd()));
            const int kind = test::socket_option(s.fd(), SOL_SOCKET, SO_TYPE);
            CHECK(kind == (type == socket_type::stream ? SOCK_STREAM : SOCK_DGRAM));
        }
    }
    CHECK(thrown_code([] {
              (void)ioloop::socket::open(address_family::unspecified, socket_type::stream);
          }) == std::errc::address_family_not_supported);
}

// POSIX only: Windows cannot read a socket's blocking mode back, and there an adopted
// socket keeps the inheritance it had (sockets ioloop opens are not inheritable).
#if defined(IOLOOP_POSIX)
TEST_CASE("an adopted descriptor becomes non-blocking and close-on-exec") {
    const int raw = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(raw != -1);
    REQUIRE_FALSE(test::nonblocking(raw));
    ioloop::socket s(raw);
    CHECK(s.fd() == raw);
    CHECK(test::nonblocking(raw));
    CHECK_FALSE(test::inheritable(raw));
}
#endif

TEST_CASE("adopting no descriptor at all is errc::bad_file_descriptor") {
    CHECK(thrown_code([] { ioloop::socket bad(ioloop::invalid_socket); }) ==
          std::errc::bad_file_descriptor);
}

TEST_CASE("bind to port 0, then local_endpoint reports the port the kernel chose") {
    ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    s.bind(endpoint::ip("127.0.0.1", 0));
    const endpoint local = s.local_endpoint();
    CHECK(local.family() == address_family::ipv4);
    CHECK(local.host() == "127.0.0.1");
    CHECK(local.port() != 0);

    ioloop::socket udp = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
    udp.bind(endpoint::ip("127.0.0.1", 0));
    CHECK(udp.local_endpoint().port() != 0);
}

TEST_CASE("listen, a blocking connect, accept: both ends agree on the addresses") {
    ioloop::socket listener = loopback_listener();
    const endpoint server = listener.local_endpoint();

    const ioloop::native_socket client = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(client != ioloop::invalid_socket);
    REQUIRE(::connect(client, server.native(), server.native_size()) == 0);
    ioloop::socket client_socket(client);  // owns it from here, and tests adoption

    // The listener is non-blocking: the connection is queued already, so accept finds it.
    const ioloop::native_socket accepted = ::accept(listener.fd(), nullptr, nullptr);
    REQUIRE(accepted != ioloop::invalid_socket);
    ioloop::socket peer(accepted);

    CHECK(peer.local_endpoint() == server);
    CHECK(peer.remote_endpoint() == client_socket.local_endpoint());
    CHECK(client_socket.remote_endpoint() == server);
    CHECK(peer.remote_endpoint().to_string().rfind("127.0.0.1:", 0) == 0);
    CHECK_FALSE(peer.pending_error());

    // A listener has no peer: ENOTCONN, in a message that says which call failed.
    const std::string message = thrown_message([&] { (void)listener.remote_endpoint(); });
    CHECK(message.find("getpeername") != std::string::npos);
    CHECK(thrown_code([&] { (void)listener.remote_endpoint(); }) == std::errc::not_connected);
}

TEST_CASE("a refused connect shows in pending_error") {
    // A port that was bound and released: nothing listens there.
    endpoint target;
    {
        ioloop::socket probe = ioloop::socket::open(address_family::ipv4, socket_type::stream);
        probe.bind(endpoint::ip("127.0.0.1", 0));
        target = probe.local_endpoint();
    }
    ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    const int rc = ::connect(s.fd(), target.native(), target.native_size());
    if (rc == -1 && test::connect_in_progress()) {
        // Wait for the outcome the way a loop would, by select.
        REQUIRE(test::wait_connect_done(s.fd(), 5));
        CHECK(s.pending_error() == std::errc::connection_refused);
#if defined(IOLOOP_POSIX)  // Windows clears SO_ERROR on reading it too, but Wine does not
        CHECK_FALSE(s.pending_error());  // reading it cleared it
#endif
    } else {
        CHECK(rc == -1);
        CHECK(test::last_socket_error() == std::errc::connection_refused);
    }
}

TEST_CASE("set_no_delay and set_reuse_address read back through getsockopt") {
    ioloop::socket s = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    const auto option = [&](int level, int name) {
        const int value = test::socket_option(s.fd(), level, name);
        REQUIRE(value != -1);
        return value != 0;
    };
    s.set_no_delay(true);
    CHECK(option(IPPROTO_TCP, TCP_NODELAY));
    s.set_no_delay(false);
    CHECK_FALSE(option(IPPROTO_TCP, TCP_NODELAY));
    s.set_reuse_address(true);
    CHECK(option(SOL_SOCKET, SO_REUSEADDR));
    s.set_reuse_address(false);
    CHECK_FALSE(option(SOL_SOCKET, SO_REUSEADDR));

    // TCP_NODELAY means nothing to a datagram socket: the error names the option.
    ioloop::socket udp = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
    const std::string message = thrown_message([&] { udp.set_no_delay(true); });
    CHECK(message.find("setsockopt TCP_NODELAY") != std::string::npos);
}

TEST_CASE("binding a port in use is errc::address_in_use, naming the address") {
    ioloop::socket first = loopback_listener();
    const endpoint taken = first.local_endpoint();
    ioloop::socket second = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    // On POSIX SO_REUSEADDR does not allow taking a listener's port; on Windows it does.
    if (!test::reuse_address_takes_ports) second.set_reuse_address(true);
    CHECK(thrown_code([&] { second.bind(taken); }) == std::errc::address_in_use);
    const std::string message = thrown_message([&] { second.bind(taken); });
    CHECK(message.find("bind " + taken.to_string() + ":") == 0);
}

TEST_CASE("move semantics: the descriptor is closed exactly once, by its last owner") {
    using test::is_open_socket;
    ioloop::socket a = ioloop::socket::open(address_family::ipv4, socket_type::stream);
    const ioloop::native_socket fd = a.fd();

    ioloop::socket b(std::move(a));
    CHECK_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move): the moved-from state
    CHECK(a.fd() == ioloop::invalid_socket);
    CHECK(b.fd() == fd);

    ioloop::socket c;
    CHECK_FALSE(c.is_open());
    c = std::move(b);
    CHECK(c.fd() == fd);
    CHECK_FALSE(b.is_open());

    // Move-assigning over an open socket closes the old descriptor.
    ioloop::socket d = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
    const ioloop::native_socket old = d.fd();
    d = std::move(c);
    CHECK_FALSE(is_open_socket(old));
    CHECK(d.fd() == fd);
    CHECK(is_open_socket(fd));

    // Destroying the moved-from sockets closes nothing; the last owner closes once.
    { ioloop::socket gone(std::move(a)); }
    CHECK(is_open_socket(fd));
    d.close();
    CHECK_FALSE(d.is_open());
    CHECK_FALSE(is_open_socket(fd));
    d.close();  // idempotent

    // release() hands the descriptor over without closing it.
    ioloop::socket e = ioloop::socket::open(address_family::ipv4, socket_type::datagram);
    const ioloop::native_socket released = e.release();
    CHECK_FALSE(e.is_open());
    CHECK(is_open_socket(released));
    test::close_socket(released);
}

#if defined(TEST_UNIX_SOCKETS)  // POSIX only: see platform.hpp
TEST_CASE("a Unix stream socket bound in a temporary directory") {
    temp_dir dir;
    const endpoint address = endpoint::unix_path(dir.path + "/s.sock");
    ioloop::socket listener =
        ioloop::socket::open(address_family::unix_domain, socket_type::stream);
    listener.bind(address);
    listener.listen();
    CHECK(listener.local_endpoint() == address);
    CHECK(listener.local_endpoint().to_string() == dir.path + "/s.sock");

    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(client != -1);
    ioloop::socket client_socket(client);
    REQUIRE(::connect(client, address.native(), address.native_size()) == 0);
    ioloop::socket peer(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    CHECK(peer.local_endpoint() == address);
    CHECK(client_socket.remote_endpoint() == address);
    // The client never bound: its address is unnamed, an empty path.
    CHECK(peer.remote_endpoint().family() == address_family::unix_domain);
    CHECK(peer.remote_endpoint().path().empty());

    // bind unlinks nothing: the file is still there, so a second bind finds it in use.
    ioloop::socket again = ioloop::socket::open(address_family::unix_domain, socket_type::stream);
    CHECK(thrown_code([&] { again.bind(address); }) == std::errc::address_in_use);
}
#endif

#if defined(__linux__)
TEST_CASE("a Linux abstract Unix name binds without a file") {
    using namespace std::string_view_literals;
    const std::string name = std::string("\0ioloop-test-"sv) + std::to_string(::getpid());
    const endpoint address = endpoint::unix_path(name);
    ioloop::socket s = ioloop::socket::open(address_family::unix_domain, socket_type::datagram);
    s.bind(address);
    CHECK(s.local_endpoint() == address);
    CHECK(s.local_endpoint().to_string() == "@ioloop-test-" + std::to_string(::getpid()));
}
#endif
