// Footprint baseline: what any C++ hello costs, with no event loop.
#include <cstdio>

int main() { std::puts("hello"); }
