// ioloop: Python asyncio's event loop for C++20, in one header.
// https://docs.python.org/3/library/asyncio-eventloop.html is the model; shared names
// mean the same thing. Include this file; everything else is an implementation detail.
#ifndef IOLOOP_IOLOOP_HPP
#define IOLOOP_IOLOOP_HPP

#include "ioloop/coro/awaitable.hpp"
#include "ioloop/coro/barrier.hpp"
#include "ioloop/coro/condition.hpp"
#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/event.hpp"
#include "ioloop/coro/future.hpp"
#include "ioloop/coro/gather.hpp"
#include "ioloop/coro/lock.hpp"
#include "ioloop/coro/outcome.hpp"
#include "ioloop/coro/queue.hpp"
#include "ioloop/coro/race.hpp"
#include "ioloop/coro/run.hpp"
#include "ioloop/coro/run_coroutine_threadsafe.hpp"
#include "ioloop/coro/run_in_executor.hpp"
#include "ioloop/coro/semaphore.hpp"
#include "ioloop/coro/shield.hpp"
#include "ioloop/coro/sleep.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_group.hpp"
#include "ioloop/coro/thread_pool.hpp"
#include "ioloop/coro/timeout.hpp"
#include "ioloop/coro/wait.hpp"
#include "ioloop/coro/wait_for.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/event_loop.hpp"
#include "ioloop/exception_context.hpp"
#include "ioloop/executor.hpp"
#include "ioloop/fs/file.hpp"
#include "ioloop/fs/open_mode.hpp"
#include "ioloop/fs/read_write_file.hpp"
#include "ioloop/fwd.hpp"
#include "ioloop/handle.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/connect_errors.hpp"
#include "ioloop/net/connect_options.hpp"
#include "ioloop/net/connect_pipe.hpp"
#include "ioloop/net/create_connection.hpp"
#include "ioloop/net/create_datagram_endpoint.hpp"
#include "ioloop/net/create_server.hpp"
#include "ioloop/net/descriptor_check.hpp"
#include "ioloop/net/endpoint.hpp"
#include "ioloop/net/engines.hpp"
#include "ioloop/net/fd_ready.hpp"
#include "ioloop/net/getaddrinfo.hpp"
#include "ioloop/net/happy_eyeballs.hpp"
#include "ioloop/net/pipe_transport.hpp"
#include "ioloop/net/sock_ops.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/sendfile.hpp"
#include "ioloop/net/sendfile_gate.hpp"
#include "ioloop/net/serve_options.hpp"
#include "ioloop/net/server.hpp"
#include "ioloop/net/socket.hpp"
#include "ioloop/net/stream_core.hpp"
#include "ioloop/net/stream_reader.hpp"
#include "ioloop/net/stream_writer.hpp"
#include "ioloop/net/streams.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"
#include "ioloop/net/wait_io.hpp"
#include "ioloop/subprocess/process.hpp"
#include "ioloop/subprocess/stdio.hpp"
#include "ioloop/subprocess/subprocess_transport.hpp"

// Internal macros end here (nlohmann's macro_unscope); IOLOOP_HAS_* and the version stay.
#undef IOLOOP_NOINLINE
#undef IOLOOP_ALWAYS_INLINE
#undef IOLOOP_PREFETCH
#undef IOLOOP_NAMESPACE_BEGIN
#undef IOLOOP_NAMESPACE_END
#undef IOLOOP_ABI_TAG
#undef IOLOOP_ABI_CONCAT
#undef IOLOOP_ABI_CONCAT_

#endif
