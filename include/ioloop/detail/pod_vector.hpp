// ioloop: a growable array of trivially copyable values (timer heap entries, pointers,
// pollfds). std::vector would do, but at -O0 each std::vector<T> a program instantiates
// costs it dozens of functions to compile (measured: four of them add 0.16 s, g++ 12),
// and every user of the header pays that on every compile. Trivially copyable values
// need no constructors or destructors run, so realloc() moves them.
#ifndef IOLOOP_DETAIL_POD_VECTOR_HPP
#define IOLOOP_DETAIL_POD_VECTOR_HPP

#include "ioloop/detail/config.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>
#include <type_traits>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class T>
class pod_vector {
    static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                  "pod_vector holds trivially copyable values only");

public:
    pod_vector() noexcept = default;
    pod_vector(const pod_vector&) = delete;
    pod_vector& operator=(const pod_vector&) = delete;
    ~pod_vector() { std::free(data_); }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T* data() noexcept { return data_; }
    T* begin() noexcept { return data_; }
    T* end() noexcept { return data_ + size_; }

    T& operator[](std::size_t i) noexcept { return data_[i]; }
    const T& operator[](std::size_t i) const noexcept { return data_[i]; }
    T& front() noexcept { return data_[0]; }
    const T& front() const noexcept { return data_[0]; }
    T& back() noexcept { return data_[size_ - 1]; }

    void push_back(const T& value) {
        if (size_ == capacity_) reserve(capacity_ ? 2 * capacity_ : 8);
        data_[size_++] = value;
    }

    void pop_back() noexcept { --size_; }
    void clear() noexcept { size_ = 0; }

    // Grows with copies of `fill`, or shrinks.
    void resize(std::size_t n, const T& fill = T{}) {
        if (n > capacity_) reserve(n > 2 * capacity_ ? n : 2 * capacity_);
        for (std::size_t i = size_; i < n; ++i) data_[i] = fill;
        size_ = n;
    }

private:
    void reserve(std::size_t n) {
        void* grown = std::realloc(static_cast<void*>(data_), n * sizeof(T));
        if (!grown) throw std::bad_alloc();
        data_ = static_cast<T*>(grown);
        capacity_ = n;
    }

    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
