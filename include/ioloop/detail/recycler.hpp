// ioloop: where coroutine frames and task states are allocated, and the read blocks of
// stream readers. A busy program makes and frees thousands of them per loop iteration, in
// bursts: more than malloc's per-thread cache holds, and a burst freed at once can make
// glibc give the memory back to the kernel only to fault it in again for the next burst.
// So each thread keeps free lists by size, reused without a lock, up to a budget.
// Sanitizer builds bypass the lists, so that a use after free is still caught.
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
    // Class c holds blocks of c * 16 - 8 bytes: what glibc's malloc gives in a chunk of
    // c * 16 (its 8-byte header, sizes in steps of 16). Rounding to 16 instead would cost a
    // whole step more for every size of 16k + 1 to 16k + 8 bytes: 16 bytes per idle
    // connection for the transport (104 bytes), 16 for the stream reader (120).
    static constexpr std::size_t granule = 16;
    static constexpr std::size_t header = 8;
    static constexpr std::size_t largest = 1024;     // larger blocks go straight to malloc
    static constexpr std::size_t budget = 8u << 20;  // bytes kept per thread at most

    recycler() = default;
    recycler(const recycler&) = delete;
    recycler& operator=(const recycler&) = delete;
    ~recycler() {
        while (block* b = read_blocks_) {
            read_blocks_ = b->next;
            ::operator delete(b);
        }
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
        return ::operator new(c * granule - header);
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

    // A stream reader's read block: what one read takes at most (the transports' 64 KiB),
    // held only while the reader holds unread bytes.
    //
    // Why they are kept: every connection that is readable in one poll step receives into
    // a block before any task runs, so a whole poll batch of blocks is in use at once, and
    // all of them come back a moment later. From malloc, that burst freed at once is the
    // top of the heap, which glibc trims and then faults in again (the per-message strings
    // of the former reader did the same: 104,546 page faults and 1,035 brk calls in 3.4 s
    // at 100 connections x 16 KiB, in the measurement). Measured here, echo server
    // with coroutines, 100 connections x 16 KiB for 2 s, page faults of the server: former
    // reader 211,789; blocks from malloc (none kept) 259,653; 16 kept 187,199; 64 kept
    // 86,995; 128 kept 685, as many as the raw epoll server's order (111), and 1.6x the
    // requests/s of the former reader in the same conditions.
    // The cost: 128 blocks are 8 MiB of address space, resident only where reads touched
    // them. After a burst of 10,000 connections sending 16 bytes each (bench (f)), the
    // kept blocks hold one touched page each: 512 KiB for the thread, measured as 52
    // bytes more per idle connection (804 instead of 752), however many connections.
    static constexpr std::size_t read_block_size = 64 * 1024;
    static constexpr std::size_t read_blocks_kept = 128;

    char* allocate_read_block() {
        if (block* b = read_blocks_) {
            read_blocks_ = b->next;
            --read_blocks_count_;
            return reinterpret_cast<char*>(b);
        }
        return static_cast<char*>(::operator new(read_block_size));
    }

    // How many read blocks are kept now, ready to be taken (the tests look).
    std::size_t read_blocks_free() const noexcept { return read_blocks_count_; }

    void deallocate_read_block(char* p) noexcept {
        if (read_blocks_count_ == read_blocks_kept) {
            ::operator delete(p);
            return;
        }
        auto* b = reinterpret_cast<block*>(p);
        b->next = read_blocks_;
        read_blocks_ = b;
        ++read_blocks_count_;
    }

private:
    struct block {
        block* next;
    };

    static constexpr std::size_t size_class(std::size_t size) noexcept {
        return (size + header + granule - 1) / granule;
    }

    static constexpr std::size_t classes = (largest + header + granule - 1) / granule + 1;

    block* free_[classes] = {};
    std::size_t kept_ = 0;
    block* read_blocks_ = nullptr;
    std::size_t read_blocks_count_ = 0;
};

#ifdef IOLOOP_RECYCLER_BYPASS
inline constexpr bool recycling = false;
inline void* allocate_recycled(std::size_t size) { return ::operator new(size); }
inline void deallocate_recycled(void* p, std::size_t) noexcept { ::operator delete(p); }
inline char* allocate_read_block() {
    return static_cast<char*>(::operator new(recycler::read_block_size));
}
inline void deallocate_read_block(char* p) noexcept { ::operator delete(p); }
#else
// Each thread's recycler comes from the platform shim (detail/posix.hpp, detail/windows.hpp),
// not from an `inline thread_local` variable: for one with a destructor, mingw-w64's GCC
// emits the TLS init function in every translation unit as a plain symbol (a program that
// includes the header twice fails to link), and runs the destructor on freed memory.
inline constexpr bool recycling = true;
inline void* allocate_recycled(std::size_t size) {
    return this_thread_instance<recycler>().allocate(size);
}
inline void deallocate_recycled(void* p, std::size_t size) noexcept {
    this_thread_instance<recycler>().deallocate(p, size);
}
inline char* allocate_read_block() {
    return this_thread_instance<recycler>().allocate_read_block();
}
inline void deallocate_read_block(char* p) noexcept {
    this_thread_instance<recycler>().deallocate_read_block(p);
}
#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#undef IOLOOP_RECYCLER_BYPASS

#endif
