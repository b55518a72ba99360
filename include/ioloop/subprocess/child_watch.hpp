// ioloop: a child process as its loop knows it, from its start until it is reaped: the
// returncode once it has exited, and the tasks waiting for that.
//
// How the end is learned: from the backend where it watches processes (kqueue's
// EVFILT_PROC); else the loop watches the child's pidfd like any descriptor (Linux >= 5.3);
// without either, a thread waits for that child alone (its pid; on Windows its process
// handle) and tells the loop (asyncio's ThreadedChildWatcher). No thread and no signal
// handler in the first two. None takes a SIGCHLD disposition, which a program's own
// handler (or SIG_IGN) would fight over, and none reaps a child it did not start.
//
// The loop closing with the child still running: the child is not killed (it may be meant
// to outlive the program, as a daemon's helper); the loop's exception handler hears of it,
// as asyncio warns, and a thread waits for the child's end so that no zombie is left (on
// Windows, so that its process handle is closed then).
#ifndef IOLOOP_SUBPROCESS_CHILD_WATCH_HPP
#define IOLOOP_SUBPROCESS_CHILD_WATCH_HPP

#include "ioloop/backend/concept.hpp"
#include "ioloop/coro/event.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/io_watcher.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/detail/spawn.hpp"
#include "ioloop/detail/threads.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/net_access.hpp"

#include <optional>
#include <string>
#include <utility>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// For the tests: take the thread's way even where pidfds exist.
inline bool force_thread_child_watch = false;

// A thread that waits for one child (reap_child, blocking) and, unless its owner let go
// meanwhile, tells the owner's loop. Shared by the two; the last to let go frees it.
class reaper_thread {
public:
    using done_fn = void (*)(void* owner, int returncode) noexcept;

    // Starts the thread, which waits on its own copy of the child's id; the owner holds one
    // reference. `owner` null: nobody is told (the loop is gone), the child is only reaped.
    static reaper_thread* start(const child_id& id, loop_base* loop, void* owner, done_fn done) {
        auto* r = new reaper_thread(loop, owner, done);
        try {
            r->id_ = copy_child_id(id);
        } catch (...) {
            delete r;
            throw;
        }
        if (const int err = start_detached_thread(&reaper_thread::main, r)) {
            close_child_id(r->id_);
            delete r;
            throw_errno(err, concat({"waiting for child process ", decimal(id.pid), ": no thread"}));
        }
        return r;
    }

    // The owner no longer wants to hear (reaped, or its loop is closing).
    void let_go() noexcept {
        m_.lock();
        owner_ = nullptr;
        const bool last = --refs_ == 0;
        m_.unlock();
        if (last) delete this;
    }

private:
    reaper_thread(loop_base* loop, void* owner, done_fn done) noexcept
        : loop_(loop), owner_(owner), done_(done), refs_(owner ? 2 : 1) {}

    static void* main(void* self) {
        auto* r = static_cast<reaper_thread*>(self);
        int rc = 0;
        reap_child(r->id_, rc, true);
        close_child_id(r->id_);
        r->m_.lock();
        // Under the lock: the owner's loop cannot finish closing while the call is queued.
        if (void* owner = r->owner_) {
            done_fn done = r->done_;
            try {
                r->loop_->call_soon_threadsafe([owner, done, rc] { done(owner, rc); });
            } catch (...) {  // the loop closed: it no longer runs callbacks
            }
        }
        const bool last = --r->refs_ == 0;
        r->m_.unlock();
        if (last) delete r;
        return nullptr;
    }

    pool_mutex m_;
    child_id id_;
    loop_base* loop_;
    void* owner_;
    done_fn done_;
    int refs_;
};

// One child: alive while a process handle holds it or it is still watched.
class child final : public io_watcher, public loop_resource {
public:
    child(loop_base& loop, child_id id, std::string program) noexcept
        : loop_(&loop), id_(id), program_(std::move(program)) {}

    // Starts watching for the child's end (one reference for the watch): the backend's own
    // way (kqueue's EVFILT_PROC), else a pidfd, else a thread.
    void watch() {
        if (!force_thread_child_watch &&
            net_access::engine(*loop_).watch_process(id_.pid, *this)) {
            by_backend_ = true;
        } else {
            pidfd_ = force_thread_child_watch ? no_descriptor() : open_pidfd(id_);
        }
        if (pidfd_ != no_descriptor()) {
            try {
                net_access::watch(*loop_, descriptor_as_socket(pidfd_), 0, backend::io_read, *this);
            } catch (...) {
                close_descriptor(std::exchange(pidfd_, no_descriptor()));
            }
        }
        if (!by_backend_ && pidfd_ == no_descriptor()) {
            thread_ = reaper_thread::start(id_, loop_, this, &child::thread_done);
        }
        net_access::add_resource(*loop_, *this);
        watched_ = true;
        ++refs_;
    }

    // Told (on the loop's thread) when the child has exited, after the waiters are woken.
    using exit_hook = void (*)(void* arg) noexcept;
    void set_exit_hook(exit_hook h, void* arg) noexcept {
        hook_ = h;
        hook_arg_ = arg;
    }

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }

    int pid() const noexcept { return id_.pid; }
    const child_id& id() const noexcept { return id_; }
    const std::optional<int>& returncode() const noexcept { return returncode_; }
    event& exited() noexcept { return exited_; }
    loop_base& loop() const noexcept { return *loop_; }

    // The pidfd is readable, or the backend says so: the child has exited.
    void on_io(unsigned) noexcept override {
        if (by_backend_) {
            // Reported once: the backend has dropped its event.
            by_backend_ = false;
            net_access::engine(*loop_).unwatch_process(id_.pid, true);
            int rc = 0;
            reap_child(id_, rc, true);  // it has exited: waitpid returns at once
            finish(rc);
            return;
        }
        int rc = 0;
        if (reap_child(id_, rc, false)) finish(rc);
    }

    std::string describe() const override {
        return concat({"child process ", decimal(id_.pid), " (", program_, ")"});
    }

    void on_loop_close() noexcept override {
        if (!watched_) return;
        stop_watching();
        if (!returncode_) {
            loop_->call_exception_handler(
                {concat({"the event loop closed while ", describe(),
                         " was still running; it is left running, and reaped when it exits"}),
                 nullptr,
                 {}});
            try {
                reaper_thread::start(id_, nullptr, nullptr, nullptr);
            } catch (...) {  // no thread: the child stays a zombie until this process ends
            }
        }
        watched_ = false;
        release();
    }

private:
    ~child() override { close_child_id(id_); }

    static void thread_done(void* self, int rc) noexcept {
        auto* c = static_cast<child*>(self);
        if (c->watched_) c->finish(rc);
    }

    void finish(int rc) noexcept {
        returncode_ = rc;
        stop_watching();
        net_access::remove_resource(*loop_, *this);
        watched_ = false;
        exited_.set();
        if (hook_) hook_(hook_arg_);
        release();  // the watch's reference; a handle may keep the child
    }

    void stop_watching() noexcept {
        if (by_backend_) {
            by_backend_ = false;
            net_access::engine(*loop_).unwatch_process(id_.pid, false);
        }
        if (pidfd_ != no_descriptor()) {
            try {
                net_access::watch(*loop_, descriptor_as_socket(pidfd_), backend::io_read, 0, *this);
            } catch (...) {
            }
            close_descriptor(std::exchange(pidfd_, no_descriptor()));
        }
        if (thread_) std::exchange(thread_, nullptr)->let_go();
    }

    loop_base* loop_;
    child_id id_;
    native_descriptor pidfd_ = no_descriptor();
    reaper_thread* thread_ = nullptr;
    exit_hook hook_ = nullptr;
    void* hook_arg_ = nullptr;
    std::string program_;
    std::optional<int> returncode_;
    event exited_;
    int refs_ = 0;
    bool watched_ = false;
    bool by_backend_ = false;  // the backend reports the exit (watch_process)
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
