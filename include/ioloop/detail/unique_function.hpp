// ioloop: a move-only callable with a small inline buffer (std::function copies and
// <functional> costs compile time; std::move_only_function is C++23).
#ifndef IOLOOP_DETAIL_UNIQUE_FUNCTION_HPP
#define IOLOOP_DETAIL_UNIQUE_FUNCTION_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/type_name.hpp"

#include <cstddef>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class Signature>
class unique_function;

template <class R, class... Args>
class unique_function<R(Args...)> {
public:
    // Three pointers inline: a lambda capturing `this` and two references fits, and the
    // whole object stays at four pointers.
    static constexpr std::size_t inline_size = 3 * sizeof(void*);

    unique_function() noexcept = default;
    unique_function(std::nullptr_t) noexcept {}  // NOLINT: implicit, like std::function

    template <class F, class D = std::decay_t<F>,
              class = std::enable_if_t<!std::is_same_v<D, unique_function> &&
                                       std::is_invocable_r_v<R, D&, Args...>>>
    unique_function(F&& f) {  // NOLINT: implicit, like std::function
        emplace(std::forward<F>(f));
    }

    unique_function(unique_function&& other) noexcept { take(other); }

    unique_function& operator=(unique_function&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }

    unique_function(const unique_function&) = delete;
    unique_function& operator=(const unique_function&) = delete;

    ~unique_function() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    R operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

    // What the callable is, for the debug reports ("which callback blocked the loop").
    std::string_view name() const noexcept { return ops_ ? ops_->name : std::string_view{}; }

    // A callable may describe itself better than its type does (a task step names its
    // task): its `std::string describe() const`, if it has one. Empty otherwise.
    std::string describe() const {
        return ops_ && ops_->describe ? ops_->describe(storage_) : std::string();
    }

    // Constructs the callable in place (the object must be empty): no temporary, no move.
    template <class F, class D = std::decay_t<F>>
    void emplace(F&& f) {
        static_assert(std::is_invocable_r_v<R, D&, Args...>, "wrong signature for this callable");
        if constexpr (fits_inline<D>) {
            ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
        } else {
            *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
        }
        ops_ = &ops_for<D>;
    }

    void reset() noexcept {
        if (ops_) {
            if (ops_->destroy) ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

private:
    struct ops {
        R (*invoke)(void*, Args&&...);
        void (*move)(void* from, void* to) noexcept;  // leaves `from` destroyed
        void (*destroy)(void*) noexcept;              // null when there is nothing to destroy
        std::string_view name;
        std::string (*describe)(const void*);  // null unless the callable describes itself
    };

    template <class D>
    static constexpr bool fits_inline =
        sizeof(D) <= inline_size &&
        alignof(D) <= alignof(void*) && std::is_nothrow_move_constructible_v<D>;

    template <class D>
    static D& target(void* p) noexcept {
        if constexpr (fits_inline<D>) {
            return *std::launder(reinterpret_cast<D*>(p));
        } else {
            return **reinterpret_cast<D**>(p);
        }
    }

    // Most callbacks capture a few pointers: nothing to destroy, no call to make.
    template <class D>
    static constexpr void (*destroyer())(void*) noexcept {
        if constexpr (fits_inline<D> && std::is_trivially_destructible_v<D>) {
            return nullptr;
        } else {
            return [](void* p) noexcept {
                if constexpr (fits_inline<D>) {
                    target<D>(p).~D();
                } else {
                    delete &target<D>(p);
                }
            };
        }
    }

    template <class D>
    static constexpr std::string (*describer())(const void*) {
        if constexpr (requires(const D& f) { f.describe(); }) {
            return [](const void* p) { return target<D>(const_cast<void*>(p)).describe(); };
        } else {
            return nullptr;
        }
    }

    template <class D>
    static constexpr ops ops_for = {
        [](void* p, Args&&... args) -> R { return target<D>(p)(std::forward<Args>(args)...); },
        [](void* from, void* to) noexcept {
            if constexpr (fits_inline<D>) {
                D& f = target<D>(from);
                ::new (to) D(std::move(f));
                f.~D();
            } else {
                *reinterpret_cast<D**>(to) = *reinterpret_cast<D**>(from);
            }
        },
        destroyer<D>(),
        type_name<D>(),
        describer<D>(),
    };

    void take(unique_function& other) noexcept {
        if (other.ops_) {
            other.ops_->move(other.storage_, storage_);
            ops_ = std::exchange(other.ops_, nullptr);
        }
    }

    alignas(void*) unsigned char storage_[inline_size];
    const ops* ops_ = nullptr;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
