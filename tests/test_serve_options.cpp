#include <ioloop/ioloop.hpp>
