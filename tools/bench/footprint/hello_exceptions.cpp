// Footprint context, not a target: a hello that may throw std::runtime_error, as ioloop's
// errors do. Throwing links libstdc++'s exception runtime (unwinder, std::string, the
// terminate handler's demangler): most of what a static C++ program adds to the puts hello.
#include <cstdio>
#include <stdexcept>

int main(int argc, char**) {
    if (argc > 1) throw std::runtime_error("unexpected argument");
    std::puts("hello");
}
