// ioloop: thread_pool (asyncio's default concurrent.futures.ThreadPoolExecutor), the
// executor where run_in_executor and to_thread send blocking work. Threads start on
// demand: a new one only when no started thread is idle and fewer than max_workers run.
// They live until shutdown(), which refuses new work and waits for the queued and the
// running work to finish.
#ifndef IOLOOP_CORO_THREAD_POOL_HPP
#define IOLOOP_CORO_THREAD_POOL_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/threads.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/executor.hpp"

#include <cstddef>
#include <system_error>
#include <utility>

IOLOOP_NAMESPACE_BEGIN

class thread_pool final : public executor {
public:
    // asyncio's rule for the default executor: enough threads for blocking I/O on a small
    // machine, capped on a large one.
    static std::size_t default_max_workers() noexcept {
        const std::size_t n = detail::pool_thread::hardware_concurrency() + 4;
        return n < 32 ? n : 32;
    }

    // No thread starts here: the first ones start with the first work.
    explicit thread_pool(std::size_t max_workers = default_max_workers()) : max_(max_workers) {
        if (max_ == 0) {
            // Bad input, reported like add_signal_handler's bad signal number.
            throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                    "thread_pool: max_workers must be at least 1");
        }
    }

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    // Shuts down: waits for the work already submitted. Must not run on one of the pool's
    // own threads (it would wait for itself).
    ~thread_pool() override { shutdown(); }

    std::size_t max_workers() const noexcept { return max_; }

    // Queues `job`; an idle thread takes it, else a new thread if fewer than max_workers
    // run, else the first thread to finish its current work. `job` must not throw: an
    // exception escaping it ends the program, as one escaping a std::thread does.
    void submit(work job) override {
        auto* it = new item{std::move(job), nullptr};
        mutex_.lock();
        if (shutdown_) {
            mutex_.unlock();
            delete it;  // out of the lock: the callable's destructor may do anything
            throw invalid_state_error("thread_pool.submit: the pool is shut down");
        }
        // Each idle thread takes one queued item: this one needs a new thread unless
        // there are more idle threads than items already waiting.
        if (idle_ <= queued_ && threads_ < max_) {
            try {
                start_worker();
            } catch (...) {
                // Without any thread the work would never run; with some, it waits its turn.
                if (threads_ == 0) {
                    mutex_.unlock();
                    delete it;
                    throw;
                }
            }
        }
        if (tail_) {
            tail_->next = it;
        } else {
            head_ = it;
        }
        tail_ = it;
        ++queued_;
        if (idle_ > 0) work_or_exit_.notify_one();
        mutex_.unlock();
    }

    // Accepts no more work and returns once the queued and the running work have
    // finished and the threads have ended. Called from one of the pool's own jobs, it
    // only refuses new work: waiting there would wait for itself.
    void shutdown() noexcept override {
        mutex_.lock();
        shutdown_ = true;
        work_or_exit_.notify_all();
        if (current_pool_ == this) {
            mutex_.unlock();
            return;
        }
        while (alive_ > 0) work_or_exit_.wait(mutex_);
        worker* ended = std::exchange(workers_, nullptr);
        mutex_.unlock();
        while (worker* w = ended) {
            ended = w->next;
            w->thread.join();
            delete w;
        }
    }

private:
    struct item {
        work fn;
        item* next;
    };

    struct worker {
        detail::pool_thread thread;
        worker* next = nullptr;
    };

    // With the lock held.
    void start_worker() {
        auto* w = new worker;
        try {
            w->thread.start(&thread_pool::worker_main, this);
        } catch (...) {
            delete w;
            throw;
        }
        w->next = workers_;
        workers_ = w;
        ++threads_;
        ++alive_;
    }

    static void worker_main(void* self) noexcept { static_cast<thread_pool*>(self)->work_loop(); }

    // Takes work until the pool is shut down and the queue is empty.
    void work_loop() noexcept {
        current_pool_ = this;
        mutex_.lock();
        for (;;) {
            if (item* it = head_) {
                head_ = it->next;
                if (!head_) tail_ = nullptr;
                --queued_;
                mutex_.unlock();
                it->fn();
                delete it;
                mutex_.lock();
                continue;
            }
            if (shutdown_) break;
            ++idle_;
            work_or_exit_.wait(mutex_);
            --idle_;
        }
        --alive_;
        work_or_exit_.notify_all();  // shutdown() waits for the last one
        mutex_.unlock();
    }

    // The pool whose work this thread runs, if any: shutdown() must not wait for itself.
    static inline thread_local const thread_pool* current_pool_ = nullptr;

    const std::size_t max_;
    detail::pool_mutex mutex_;  // guards everything below
    detail::pool_condition work_or_exit_;
    item* head_ = nullptr;  // the queue, oldest first
    item* tail_ = nullptr;
    std::size_t queued_ = 0;
    std::size_t idle_ = 0;     // threads waiting for work
    std::size_t threads_ = 0;  // started so far
    std::size_t alive_ = 0;    // not yet ended
    worker* workers_ = nullptr;
    bool shutdown_ = false;
};

IOLOOP_NAMESPACE_END

#endif
