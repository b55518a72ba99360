// Must not compile: an ssl context given to a connect call where <ioloop/ssl.hpp> is not
// included (ssl_context is only declared); the error names the header to include.
#include <ioloop/ioloop.hpp>

ioloop::coro<void> connect(const ioloop::ssl_context& ctx) {
    auto pair = co_await ioloop::open_connection("example.org", 443, {.ssl = ctx});
    (void)pair;
}

int main() {}
