// ioloop: where coroutine frames and task states are allocated. A busy program makes and
// frees thousands of them per loop iteration, in bursts: more than malloc's per-thread
// cache holds, and a burst freed at once can make glibc give the memory back to the
// kernel only to fault it in again for the next burst. So each thread keeps free lists
// by size, reused without a lock, up to a budget. Sanitizer builds bypass the lists, so
// that a use after free is still caught.
#ifndef IOLOOP_DETAIL_RECYCLER_HPP
#define IOLOOP_DETAIL_RECYCLER_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/posix.hpp"
#include "ioloop/detail/windows.hpp"

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IOLOOP_RECYCLER_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IOLOOP_RECYCLER_BYPASS 1
#endif
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class recycler {
public:
    // Sizes are rounded up to 16 bytes, as malloc does: blocks stay as densely packed.
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t largest = 1024;     // larger blocks go straight to malloc
    static constexpr std::size_t budget = 8u << 20;  // bytes kept per thread at most

    recycler() = default;
    recycler(const recycler&) = delete;
    recycler& operator=(const recycler&) = delete;
    ~recycler() {
        for (block*& head : free_) {
            while (block* b = head) {
                head = b->next;
                ::operator delete(b);
            }
        }
    }

    void* allocate(std::size_t size) {
        const std::size_t c = size_class(size);
        if (c >= classes) return ::operator new(size);
        if (block* b = free_[c]) {
            free_[c] = b->next;
            kept_ -= c * granule;
            return b;
        }
        return ::operator new(c* granule);
    }

    void deallocate(void* p, std::size_t size) noexcept {
        const std::size_t c = size_class(size);
        if (c >= classes || kept_ + c * granule > budget) {
            ::operator delete(p);
            return;
        }
        auto* b = static_cast<block*>(p);
        b->next = free_[c];
        free_[c] = b;
        kept_ += c * granule;
    }

private:
    struct block {
        block* next;
    };

    static constexpr std::size_t classes = largest / granule + 1;

    static constexpr std::size_t size_class(std::size_t size) noexcept {
        return (size + granule - 1) / granule;
    }

    block* free_[classes] = {};
    std::size_t kept_ = 0;
};

#ifdef IOLOOP_RECYCLER_BYPASS
inline void* allocate_recycled(std::size_t size) { return ::operator new(size); }
inline void deallocate_recycled(void* p, std::size_t) noexcept { ::operator delete(p); }
#else
// Each thread's recycler comes from the platform shim (detail/posix.hpp, detail/windows.hpp),
// not from an `inline thread_local` variable: for one with a destructor, mingw-w64's GCC
// emits the TLS init function in every translation unit as a plain symbol (a program that
// includes the header twice fails to link), and runs the destructor on freed memory.
inline void* allocate_recycled(std::size_t size) {
    return this_thread_instance<recycler>().allocate(size);
}
inline void deallocate_recycled(void* p, std::size_t size) noexcept {
    this_thread_instance<recycler>().deallocate(p, size);
}
#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#undef IOLOOP_RECYCLER_BYPASS

#endif
