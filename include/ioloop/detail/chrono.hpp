// ioloop: the clocks and durations. With libstdc++, C++20's <chrono> also brings calendars,
// time zones and their stream output: about 0.1 s of every compile (g++ 12, -O0) that we
// would charge to every user. The part we use, also what <thread> and <mutex> include, is
// <bits/chrono.h>; any other library gets the standard header.
#ifndef IOLOOP_DETAIL_CHRONO_HPP
#define IOLOOP_DETAIL_CHRONO_HPP

#include "ioloop/detail/config.hpp"

#include <version>  // tiny; tells which standard library this is

#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The one rule for a user's delay, whatever its type (hours::max() included): rounded up
// to the loop clock's tick, so nothing runs early, and saturated instead of overflowing.
// The range checks are made in floating point, where neither the conversion nor the sum
// with `now` can overflow.

// The delay as a clock duration: duration::max() (never) past the clock's range,
// duration::min() below it.
template <class Rep, class Period>
constexpr std::chrono::steady_clock::duration saturating_ceil(
    std::chrono::duration<Rep, Period> delay) noexcept {
    using duration = std::chrono::steady_clock::duration;
    using seconds = std::chrono::duration<double>;
    if (seconds(delay) >= seconds(duration::max())) return duration::max();
    if (seconds(delay) <= seconds(duration::min())) return duration::min();
    return std::chrono::ceil<duration>(delay);
}

// now + delay: time_point::max() (never) past the clock's range, time_point::min() below.
// A negative delay gives a deadline in the past, ordered like any other (asyncio's too).
template <class Rep, class Period>
constexpr std::chrono::steady_clock::time_point saturating_deadline(
    std::chrono::steady_clock::time_point now, std::chrono::duration<Rep, Period> delay) noexcept {
    using time_point = std::chrono::steady_clock::time_point;
    using seconds = std::chrono::duration<double>;
    const seconds target = seconds(now.time_since_epoch()) + seconds(delay);
    if (target >= seconds(time_point::duration::max())) return time_point::max();
    if (target <= seconds(time_point::duration::min())) return time_point::min();
    return now + std::chrono::ceil<time_point::duration>(delay);
}

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
