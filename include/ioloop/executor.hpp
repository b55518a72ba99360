// ioloop: where run_in_executor and to_thread send blocking work (asyncio's
// concurrent.futures.Executor). The default is ioloop::thread_pool; any class that
// implements these two calls can replace it through loop.set_default_executor.
#ifndef IOLOOP_EXECUTOR_HPP
#define IOLOOP_EXECUTOR_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/unique_function.hpp"

IOLOOP_NAMESPACE_BEGIN

class executor {
public:
    using work = detail::unique_function<void()>;

    executor() = default;
    executor(const executor&) = delete;
    executor& operator=(const executor&) = delete;
    virtual ~executor() = default;

    // Runs `job` on another thread, eventually. Throws invalid_state_error after shutdown.
    virtual void submit(work job) = 0;

    // Accepts no more work, and returns once the work already submitted has finished.
    virtual void shutdown() noexcept = 0;
};

IOLOOP_NAMESPACE_END

#endif
