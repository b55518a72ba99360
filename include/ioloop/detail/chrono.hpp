// ioloop: the clocks and durations. With libstdc++, C++20's <chrono> also brings calendars,
// time zones and their stream output: about 0.1 s of every compile (g++ 12, -O0) that we
// would charge to every user. The part we use, also what <thread> and <mutex> include, is
// <bits/chrono.h>; any other library gets the standard header.
#ifndef IOLOOP_DETAIL_CHRONO_HPP
#define IOLOOP_DETAIL_CHRONO_HPP

#include <version>  // tiny; tells which standard library this is

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif

#endif
