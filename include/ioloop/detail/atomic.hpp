// ioloop: the few atomic operations the loop needs. With GCC and Clang they are the
// compiler's __atomic builtins, which std::atomic is made of: <atomic> would cost every
// user of the header about 0.03 s per compile and a dozen more functions at -O0. Other
// compilers get std::atomic under the same names.
#ifndef IOLOOP_DETAIL_ATOMIC_HPP
#define IOLOOP_DETAIL_ATOMIC_HPP

#include "ioloop/detail/config.hpp"

#if !defined(__GNUC__) && !defined(__clang__)
#include <atomic>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

#if defined(__GNUC__) || defined(__clang__)

enum class memory_order : int {
    relaxed = __ATOMIC_RELAXED,
    acquire = __ATOMIC_ACQUIRE,
    release = __ATOMIC_RELEASE,
    acq_rel = __ATOMIC_ACQ_REL,
};

// Lock-free only: signal handlers use these too.
template <class T>
class atomic {
    static_assert(__atomic_always_lock_free(sizeof(T), 0), "ioloop needs lock-free atomics");

public:
    constexpr atomic(T value = T{}) noexcept : value_(value) {}  // NOLINT: like std::atomic
    atomic(const atomic&) = delete;
    atomic& operator=(const atomic&) = delete;

    T load(memory_order order) const noexcept {
        return __atomic_load_n(&value_, static_cast<int>(order));
    }
    void store(T value, memory_order order) noexcept {
        __atomic_store_n(&value_, value, static_cast<int>(order));
    }
    T exchange(T value, memory_order order) noexcept {
        return __atomic_exchange_n(&value_, value, static_cast<int>(order));
    }
    T fetch_add(T delta, memory_order order) noexcept {
        return __atomic_fetch_add(&value_, delta, static_cast<int>(order));
    }
    T fetch_sub(T delta, memory_order order) noexcept {
        return __atomic_fetch_sub(&value_, delta, static_cast<int>(order));
    }
    bool compare_exchange_weak(T& expected, T desired, memory_order success,
                               memory_order failure) noexcept {
        return __atomic_compare_exchange_n(&value_, &expected, desired, true,
                                           static_cast<int>(success), static_cast<int>(failure));
    }

private:
    T value_;
};

#else

using memory_order = std::memory_order;
template <class T>
using atomic = std::atomic<T>;

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
