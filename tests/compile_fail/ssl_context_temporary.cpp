// Must not compile: a temporary ssl_context as the ssl option. The options refer to the
// context, and the call makes its TLS layers after it connects, when the temporary is gone
// (auto c = open_connection(...); co_await std::move(c); would dangle). The message says
// to keep the context in a variable.
#include <ioloop/ssl.hpp>

ioloop::coro<void> connect() {
    auto pair = co_await ioloop::open_connection(
        "example.org", 443, {.ssl = ioloop::create_default_context()});
    (void)pair;
}

int main() {}
