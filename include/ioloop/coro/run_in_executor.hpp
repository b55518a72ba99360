// ioloop: loop.run_in_executor(fn) and ioloop::to_thread(fn, args...) (asyncio's): fn runs
// on the loop's default executor (a thread_pool made on first use, owned and shut down
// by the loop) while the loop goes on; a task completes with fn's result or exception on
// the loop's thread. Cancelling the task does not stop fn (no thread can be stopped from
// outside): fn does not start if it has not yet, and its result is dropped if it runs.
#ifndef IOLOOP_CORO_RUN_IN_EXECUTOR_HPP
#define IOLOOP_CORO_RUN_IN_EXECUTOR_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/result_value.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/coro/thread_pool.hpp"
#include "ioloop/detail/atomic.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/executor.hpp"
#include "ioloop/loop_base.hpp"

#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

template <class R>
class executor_result;

// One call of fn on an executor. Two sides hold it, each with one reference: the loop's
// side (an executor_result, in the frame of the task that awaits the call) and the
// worker's side (the work in the executor's queue, then the completion the worker hands
// to the loop). Whichever side lets go last deletes it, so that neither has to know
// whether the other is still there. The count is the only thing both threads touch at
// the same time; the result is written by the worker before it hands the completion over
// (call_soon_threadsafe publishes it) and read by the loop when the completion runs.
template <class R>
class executor_job {
public:
    executor_job(const executor_job&) = delete;
    executor_job& operator=(const executor_job&) = delete;

    void release() noexcept {
        if (refs_.fetch_sub(1, memory_order::acq_rel) == 1) delete this;
    }

    // Where the result goes: the loop's thread only.
    executor_result<R>* receiver = nullptr;
    // Written by the worker before it hands the completion over, read by the loop after.
    result_value<R> value;
    std::exception_ptr error;

protected:
    explicit executor_job(loop_base& l) noexcept : loop_(&l) {}
    virtual ~executor_job() = default;

    // The worker's side: true once the loop's side has let go (the awaiting task was
    // cancelled or abandoned). Only the worker's reference is left, and nothing can add
    // one back, so the answer cannot change.
    bool abandoned() const noexcept { return refs_.load(memory_order::acquire) == 1; }

    // On the worker, with the result stored: hands the worker's reference to the loop,
    // in a callback that delivers the result. If the loop is closed, the callback is
    // destroyed right here, on the worker, and the loop is not touched further.
    void hand_over() noexcept {
        try {
            loop_->call_soon_threadsafe(completion(this));
        } catch (...) {  // closed loop (or no memory for the callback): already released
        }
    }

private:
    // Owns the worker's reference from the moment the worker hands it over.
    struct completion {
        executor_job* job;
        explicit completion(executor_job* j) noexcept : job(j) {}
        completion(completion&& o) noexcept : job(std::exchange(o.job, nullptr)) {}
        completion(const completion&) = delete;
        completion& operator=(const completion&) = delete;
        completion& operator=(completion&&) = delete;
        ~completion() {
            if (job) job->release();
        }
        void operator()() const noexcept {
            if (executor_result<R>* r = job->receiver) r->arrive();
        }
    };

    loop_base* loop_;
    atomic<unsigned> refs_{2};
};

template <class R, class F>
class executor_job_of final : public executor_job<R> {
public:
    executor_job_of(loop_base& l, F&& fn) : executor_job<R>(l) { fn_.set(std::move(fn)); }

    // The work given to the executor, on the worker's thread. fn (and what it captured)
    // is destroyed here, right after the call.
    void run() noexcept {
        if (this->abandoned()) {  // cancelled before it started: fn never runs
            fn_.reset();
            this->release();
            return;
        }
        try {
            if constexpr (std::is_void_v<R>) {
                fn_.get()();
                this->value.set();
            } else {
                this->value.set(fn_.get()());
            }
        } catch (...) {
            this->error = std::current_exception();
        }
        fn_.reset();
        this->hand_over();
    }

private:
    result_value<F> fn_;
};

// The loop's side of a job: a parameter of the coroutine that awaits it, so it lives in
// the task's frame and lets go of the job whenever that frame goes (the task finished,
// was cancelled before its first step, or was abandoned by a closing loop). It is also
// the awaiter, and the task's wait point while the job runs.
template <class R>
class executor_result final : public wait_point {
public:
    explicit executor_result(executor_job<R>* j) noexcept : job_(j) { job_->receiver = this; }
    // Moved into the coroutine frame: the completion must find the new address.
    executor_result(executor_result&& o) noexcept : job_(std::exchange(o.job_, nullptr)) {
        if (job_) job_->receiver = this;
    }
    executor_result(const executor_result&) = delete;
    executor_result& operator=(const executor_result&) = delete;
    executor_result& operator=(executor_result&&) = delete;
    ~executor_result() { let_go(); }

    bool await_ready() const noexcept { return arrived_; }

    void await_suspend(std::coroutine_handle<> h) {
        task_ = &current_task_or_throw("run_in_executor");
        task_->suspend(h, this);
    }

    R await_resume() {
        if (task_) task_->throw_if_cancelled();
        // Let go of on a cancel that was then withdrawn (uncancel): the result is lost, so
        // the cancellation stands, as awaiting a cancelled future in asyncio.
        if (!job_) throw cancelled_error();
        if (job_->error) std::rethrow_exception(job_->error);
        if constexpr (!std::is_void_v<R>) return std::move(job_->value.get());
    }

    // asyncio: the awaiting task is cancelled at once; the thread goes on. The job is let
    // go of: it does not start if it has not, and its completion finds no receiver.
    void on_cancel(task_base& t) noexcept override {
        let_go();
        t.wake();
    }

    // From the job's completion, on the loop's thread: the result is in the job.
    void arrive() noexcept {
        job_->receiver = nullptr;
        arrived_ = true;
        if (task_) task_->wake();
    }

private:
    void let_go() noexcept {
        if (executor_job<R>* j = std::exchange(job_, nullptr)) {
            j->receiver = nullptr;
            j->release();  // last touch: the worker may delete the job from here on
        }
    }

    executor_job<R>* job_;
    task_base* task_ = nullptr;
    bool arrived_ = false;
};

// The body of run_in_executor's task: a real task (name, cancel, done callbacks) whose
// only wait is the job.
template <class R>
coro<R> await_executor_job(executor_result<R> result) {
    if constexpr (std::is_void_v<R>) {
        co_await result;
    } else {
        co_return co_await result;
    }
}

// The loop's executor: the one set with set_default_executor, else the loop's own
// thread_pool, made now if it was not yet. The loop shuts it down and deletes it when it
// closes.
inline executor& default_executor(loop_base& l) {
    executor*& slot = loop_access::executor_slot(l);
    if (!slot) {
        auto* pool = new thread_pool(thread_pool::default_max_workers());
        loop_access::owned_executor_slot(l) = pool;
        slot = pool;
    }
    return *slot;
}

}  // namespace detail

// fn is submitted now (asyncio submits at the call too), and runs even if the task is
// never awaited. R is fn's result decayed: a reference fn returns is copied on the worker,
// since the object it refers to may change once the loop goes on.
//
// A custom executor (set_default_executor) and this loop must both outlive the work sent
// to it: the worker hands the result to the loop with call_soon_threadsafe. The loop's own
// pool is shut down, and its work waited for, when the loop closes.
template <class F>
auto loop_base::run_in_executor(F fn) {
    static_assert(std::is_invocable_v<F&>,
                  "run_in_executor: fn must be callable with no arguments");
    using R = std::remove_cvref_t<std::invoke_result_t<F&>>;
    check_open("run_in_executor");
    executor& e = detail::default_executor(*this);
    auto* job = new detail::executor_job_of<R, F>(*this, std::move(fn));
    detail::executor_result<R> result(job);  // the loop's reference; the worker's is next
    try {
        e.submit([job]() noexcept { job->run(); });
    } catch (...) {  // a shut-down executor: nothing will run, drop the worker's reference
        job->release();
        throw;
    }
    return create_task(detail::await_executor_job<R>(std::move(result)));
}

// asyncio.to_thread: fn(args...) runs on the running loop's default executor. fn and args
// are decay-copied (or moved) into the job, and args are moved into the call. Returns the
// task, like run_in_executor (asyncio returns a coroutine: here the work starts at the
// call, not when it is awaited).
template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
    loop_base& l = detail::loop_access::running_or_throw("to_thread");
    return l.run_in_executor(
        [f = std::forward<F>(fn), ... a = std::forward<Args>(args)]() mutable -> decltype(auto) {
            return f(std::move(a)...);
        });
}

IOLOOP_NAMESPACE_END

#endif
