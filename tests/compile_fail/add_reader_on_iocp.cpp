// Must not compile: add_reader on IOCP, a completion backend, where there is no readiness
// to wait for. tests/CMakeLists.txt checks that the compiler says why.
#include <ioloop/ioloop.hpp>

int main() {
    ioloop::basic_event_loop<ioloop::backend::iocp> loop;
    loop.add_reader(ioloop::invalid_socket, [] {});
}
