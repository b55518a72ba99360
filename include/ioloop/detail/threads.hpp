// ioloop: the three things the thread pool needs from a thread library (a mutex, a
// condition variable, a thread), and nothing more. On POSIX they are pthreads directly:
// <thread>, <mutex> and <condition_variable> would add about 0.13 s (+45 %) to every
// compile of <ioloop/ioloop.hpp> (g++ 12, -O0, mostly C++20's <stop_token> that <thread>
// and <condition_variable> pull in), while <pthread.h> adds nothing measurable.
// Elsewhere the standard classes do the same job.
#ifndef IOLOOP_DETAIL_THREADS_HPP
#define IOLOOP_DETAIL_THREADS_HPP

#include "ioloop/detail/config.hpp"

#include <cerrno>
#include <cstddef>
#include <system_error>

// A ladder like the backends': pthreads unless disabled, detected from the platform.
#if !defined(IOLOOP_HAS_PTHREADS) && !defined(IOLOOP_DISABLE_PTHREADS)
#if defined(IOLOOP_POSIX)
#define IOLOOP_HAS_PTHREADS 1
#endif
#endif

#if defined(IOLOOP_HAS_PTHREADS)
#include <pthread.h>
#include <unistd.h>
#else
#include <condition_variable>
#include <mutex>
#include <thread>
#endif

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// The three things the pool needs from a thread library, and nothing more.
#if defined(IOLOOP_HAS_PTHREADS)

class pool_mutex {
public:
    pool_mutex() = default;
    pool_mutex(const pool_mutex&) = delete;
    pool_mutex& operator=(const pool_mutex&) = delete;
    ~pool_mutex() { pthread_mutex_destroy(&m_); }
    void lock() noexcept { pthread_mutex_lock(&m_); }
    void unlock() noexcept { pthread_mutex_unlock(&m_); }
    pthread_mutex_t* native() noexcept { return &m_; }

private:
    pthread_mutex_t m_ = PTHREAD_MUTEX_INITIALIZER;
};

class pool_condition {
public:
    pool_condition() = default;
    pool_condition(const pool_condition&) = delete;
    pool_condition& operator=(const pool_condition&) = delete;
    ~pool_condition() { pthread_cond_destroy(&c_); }
    // `m` is locked by the caller; it is locked again when wait returns.
    void wait(pool_mutex& m) noexcept { pthread_cond_wait(&c_, m.native()); }
    void notify_one() noexcept { pthread_cond_signal(&c_); }
    void notify_all() noexcept { pthread_cond_broadcast(&c_); }

private:
    pthread_cond_t c_ = PTHREAD_COND_INITIALIZER;
};

class pool_thread {
public:
    // Runs main(arg) on a new thread; throws std::system_error if none can be made.
    void start(void (*main)(void*), void* arg) {
        entry_ = main;
        arg_ = arg;
        const int err = pthread_create(&id_, nullptr, &pool_thread::trampoline, this);
        if (err != 0)
            throw std::system_error(err, std::generic_category(), "thread_pool: no new thread");
    }
    void join() noexcept { pthread_join(id_, nullptr); }

    static std::size_t hardware_concurrency() noexcept {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }

private:
    static void* trampoline(void* self) {
        auto* t = static_cast<pool_thread*>(self);
        t->entry_(t->arg_);
        return nullptr;
    }

    pthread_t id_{};
    void (*entry_)(void*) = nullptr;
    void* arg_ = nullptr;
};

// Runs main(arg) on a new thread nobody joins (it frees what it holds itself); the error
// number if none can be made, else 0.
inline int start_detached_thread(void* (*main)(void*), void* arg) noexcept {
    pthread_t id;
    pthread_attr_t attr;
    if (int err = pthread_attr_init(&attr)) return err;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int err = pthread_create(&id, &attr, main, arg);
    pthread_attr_destroy(&attr);
    return err;
}

#else

class pool_mutex {
public:
    void lock() { m_.lock(); }
    void unlock() noexcept { m_.unlock(); }
    std::mutex& native() noexcept { return m_; }

private:
    std::mutex m_;
};

class pool_condition {
public:
    void wait(pool_mutex& m) noexcept {
        std::unique_lock<std::mutex> lock(m.native(), std::adopt_lock);
        c_.wait(lock);
        lock.release();  // the caller keeps holding it
    }
    void notify_one() noexcept { c_.notify_one(); }
    void notify_all() noexcept { c_.notify_all(); }

private:
    std::condition_variable c_;
};

class pool_thread {
public:
    void start(void (*main)(void*), void* arg) { t_ = std::thread(main, arg); }
    void join() noexcept {
        if (t_.joinable()) t_.join();
    }
    static std::size_t hardware_concurrency() noexcept {
        return std::thread::hardware_concurrency();
    }

private:
    std::thread t_;
};

inline int start_detached_thread(void* (*main)(void*), void* arg) noexcept {
    try {
        std::thread(main, arg).detach();
        return 0;
    } catch (const std::system_error& e) {
        return e.code().value();
    } catch (...) {  // no memory for the thread's state
        return ENOMEM;
    }
}

#endif

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
