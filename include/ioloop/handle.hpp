// ioloop: handle and timer_handle, what call_soon / call_later return (asyncio's Handle
// and TimerHandle). A handle shares its callback's node; cancel() is idempotent and safe
// after the callback ran. A handle may outlive its loop (it then only reports state).
#ifndef IOLOOP_HANDLE_HPP
#define IOLOOP_HANDLE_HPP

#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"

#include <utility>

IOLOOP_NAMESPACE_BEGIN

class loop_base;

class handle {
public:
    handle() noexcept = default;

    handle(const handle& other) noexcept : node_(other.node_) {
        if (node_) node_->add_ref();
    }
    handle(handle&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    handle& operator=(handle other) noexcept {
        std::swap(node_, other.node_);
        return *this;
    }
    ~handle() {
        if (node_) node_->release();
    }

    // The callback will not run. Calling it again, or after the callback ran, does nothing.
    void cancel() noexcept {
        if (node_) node_->cancel();
    }

    bool cancelled() const noexcept { return node_ && node_->is_cancelled(); }

    // False for a default-constructed (or moved-from) handle.
    explicit operator bool() const noexcept { return node_ != nullptr; }

protected:
    friend class loop_base;

    // Adopts one reference that the caller already counted.
    explicit handle(detail::callback_node* adopted) noexcept : node_(adopted) {}

    detail::callback_node* node_ = nullptr;
};

class timer_handle : public handle {
public:
    timer_handle() noexcept = default;

    // The deadline, on loop.time()'s clock.
    std::chrono::steady_clock::time_point when() const noexcept {
        return node_ ? node_->when : std::chrono::steady_clock::time_point{};
    }

private:
    friend class loop_base;

    using handle::handle;
};

IOLOOP_NAMESPACE_END

#endif
