// ioloop: release_guard, what `async with lock:` / `async with semaphore:` become:
// `auto guard = co_await l.scoped();` acquires, and the guard's destructor releases, also
// when the scope is left by an exception (cancelled_error included).
#ifndef IOLOOP_CORO_RELEASE_GUARD_HPP
#define IOLOOP_CORO_RELEASE_GUARD_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <utility>

IOLOOP_NAMESPACE_BEGIN

// Owns one acquisition of a lock or semaphore and releases it once: at destruction, or
// earlier with release(). Movable (a guard can be returned or handed to a task), not
// copyable (two owners would release twice).
template <class Primitive>
class [[nodiscard]] release_guard {
public:
    release_guard() noexcept = default;
    // Adopts an acquisition the caller made.
    explicit release_guard(Primitive& p) noexcept : p_(&p) {}
    release_guard(release_guard&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    // Releases what it owned (as its destructor would), then takes over o's.
    release_guard& operator=(release_guard&& o) noexcept {
        if (this != &o) {
            release_quietly();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    release_guard(const release_guard&) = delete;
    release_guard& operator=(const release_guard&) = delete;
    ~release_guard() { release_quietly(); }

    // Releases now instead of at the end of the scope; then the guard owns nothing.
    // Throws what the primitive's release() throws.
    void release() {
        if (p_) std::exchange(p_, nullptr)->release();
    }

    // True while the guard still owns its acquisition.
    bool owns() const noexcept { return p_ != nullptr; }
    explicit operator bool() const noexcept { return owns(); }

private:
    // A destructor cannot throw: a release the primitive refuses is skipped. That happens
    // when the loop closes while a task waits in condition::wait() holding a guard (wait()
    // had given the lock up), or when the lock was released behind the guard's back.
    void release_quietly() noexcept {
        try {
            release();
        } catch (const invalid_state_error&) {
        }
    }

    Primitive* p_ = nullptr;
};

namespace detail {

// The acquire awaiter of a primitive, resuming with a guard instead of nothing.
template <class Acquire, class Primitive>
class scoped_acquire final : public Acquire {
public:
    explicit scoped_acquire(Primitive& p) noexcept : Acquire(p), p_(p) {}

    release_guard<Primitive> await_resume() {
        Acquire::await_resume();
        return release_guard<Primitive>(p_);
    }

private:
    Primitive& p_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
