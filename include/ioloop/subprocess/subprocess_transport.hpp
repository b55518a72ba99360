// ioloop: asyncio's subprocess API on the callback front end: loop.subprocess_exec /
// subprocess_shell, subprocess_protocol and subprocess_transport.
//
//   auto [t, p] = co_await loop.subprocess_exec(factory, "ls", {"-l"}, {.out = stdio::pipe});
//
// The order of the protocol's calls is asyncio's: connection_made first; then, as they
// happen, pipe_data_received(fd, data), pipe_connection_lost(fd, error) and
// process_exited(); connection_lost last, once the child has exited and every pipe is
// closed. Each pipe is an ordinary pipe transport (get_pipe_transport(fd)) whose protocol
// forwards to this one; pause_writing / resume_writing come from the stdin pipe.
#ifndef IOLOOP_SUBPROCESS_SUBPROCESS_TRANSPORT_HPP
#define IOLOOP_SUBPROCESS_SUBPROCESS_TRANSPORT_HPP

#include "ioloop/coro/coro.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/loop_base.hpp"
#include "ioloop/net/connect_pipe.hpp"
#include "ioloop/net/protocol.hpp"
#include "ioloop/net/transport.hpp"
#include "ioloop/net/transport_core.hpp"
#include "ioloop/subprocess/child_watch.hpp"
#include "ioloop/subprocess/process.hpp"
#include "ioloop/subprocess/stdio.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// asyncio's SubprocessTransport. Valid from connection_made until connection_lost returns.
class subprocess_transport {
public:
    virtual int get_pid() const = 0;
    // The exit code once the child has exited, -N if signal N ended it; empty before.
    virtual std::optional<int> get_returncode() const = 0;
    // The pipe transport of the child's fd (0, 1 or 2), or null: not a pipe, or closed.
    virtual transport* get_pipe_transport(int fd) const = 0;
    // On an exited child, nothing happens.
    virtual void send_signal(int sig) = 0;
    void terminate() { send_signal(detail::terminate_signal); }
    void kill() { send_signal(detail::kill_signal); }
    // Closes the pipes, and kills the child if it still runs (as asyncio).
    virtual void close() = 0;
    virtual bool is_closing() const = 0;

protected:
    subprocess_transport() = default;
    subprocess_transport(const subprocess_transport&) = delete;
    subprocess_transport& operator=(const subprocess_transport&) = delete;
    ~subprocess_transport() = default;
};

// asyncio's SubprocessProtocol (pause_writing / resume_writing and connection_lost are
// base_protocol's).
class subprocess_protocol : public base_protocol {
public:
    virtual void connection_made(subprocess_transport& t) { (void)t; }
    // Bytes the child wrote on fd 1 or 2. The view points into a buffer the loop reuses.
    virtual void pipe_data_received(int fd, std::string_view data) {
        (void)fd;
        (void)data;
    }
    // The pipe of fd (0, 1 or 2) is closed; an error says why, if there was one.
    virtual void pipe_connection_lost(int fd, std::error_code ec) {
        (void)fd;
        (void)ec;
    }
    virtual void process_exited() {}
};

namespace detail {

// The subprocess transport: the child, its pipes, the user's protocol. Freed after
// connection_lost, or without a callback when the loop closes.
class subprocess_pipes final : public subprocess_transport, public loop_resource {
public:
    // The protocol of one pipe: forwards to the subprocess protocol.
    class pipe_end final : public protocol {
    public:
        pipe_end(subprocess_pipes& owner, int fd) noexcept : owner_(owner), fd_(fd) {}
        void connection_made(transport& t) override { owner_.pipes_[fd_] = &t; }
        void data_received(std::string_view data) override {
            owner_.call("pipe_data_received", [&] { owner_.proto_->pipe_data_received(fd_, data); });
        }
        void connection_lost(std::error_code ec) override { owner_.pipe_lost(fd_, ec); }
        void pause_writing() override {
            owner_.call("pause_writing", [&] { owner_.proto_->pause_writing(); });
        }
        void resume_writing() override {
            owner_.call("resume_writing", [&] { owner_.proto_->resume_writing(); });
        }

    private:
        subprocess_pipes& owner_;
        int fd_;
    };

    subprocess_pipes(loop_base& loop, process p, std::unique_ptr<subprocess_protocol> proto)
        : loop_(loop), process_(std::move(p)), proto_(std::move(proto)) {
        net_access::add_resource(loop_, *this);
        child_().set_exit_hook(&subprocess_pipes::exited, this);
    }

    // The pipes are connected: the protocol hears of the transport, then of what happened
    // meanwhile (nothing can: no iteration ran since the child started).
    void made() {
        made_ = true;
        call("connection_made", [&] { proto_->connection_made(*this); });
        try_finish();
    }

    int get_pid() const override { return child_().pid(); }
    std::optional<int> get_returncode() const override { return child_().returncode(); }
    transport* get_pipe_transport(int fd) const override {
        return fd >= 0 && fd < 3 ? pipes_[fd] : nullptr;
    }
    void send_signal(int sig) override {
        check_signal(sig, "send_signal");
        if (!child_().returncode()) signal_child(child_().id(), sig);
    }
    void close() override {
        if (closing_) return;
        closing_ = true;
        for (transport* t : pipes_) {
            if (t) t->close();
        }
        if (!child_().returncode()) signal_child(child_().id(), kill_signal);
    }
    bool is_closing() const override { return closing_; }

    // The pipes could not all be connected (the call throws): the protocol, which never
    // heard of the transport, hears nothing more; the child is killed, and the transport
    // goes once it has been reaped and its pipes are closed.
    void abandon() noexcept {
        silent_ = true;
        made_ = true;
        close();
    }

    void on_loop_close() noexcept override {
        child_().set_exit_hook(nullptr, nullptr);
        delete this;  // the pipes' transports are closed by the loop too, with no callback
    }

    ~subprocess_pipes() override = default;

private:
    child& child_() const { return *process_.child_; }

    template <class F>
    void call(const char* hook, F&& f) noexcept {
        if (silent_) return;
        try {
            f();
        } catch (...) {
            report_protocol_error(loop_, hook);
        }
    }

    static void exited(void* self) noexcept {
        auto* s = static_cast<subprocess_pipes*>(self);
        s->child_().set_exit_hook(nullptr, nullptr);
        // From the poll step (or a posted callback): the protocol hears of it on its own.
        try {
            loop_access::post(s->loop_, [s] {
                s->exit_told_ = true;
                s->call("process_exited", [s] { s->proto_->process_exited(); });
                s->try_finish();
            });
        } catch (...) {  // the loop is closing: on_loop_close frees it
        }
    }

    void pipe_lost(int fd, std::error_code ec) noexcept {
        pipes_[fd] = nullptr;
        call("pipe_connection_lost", [&] { proto_->pipe_connection_lost(fd, ec); });
        try_finish();
    }

    // connection_lost once the child has exited and every pipe is closed.
    void try_finish() noexcept {
        if (!made_ || !exit_told_ || finished_) return;
        for (transport* t : pipes_) {
            if (t) return;
        }
        finished_ = true;
        net_access::remove_resource(loop_, *this);
        call("connection_lost", [&] { proto_->connection_lost({}); });
        delete this;
    }

    loop_base& loop_;
    process process_;
    std::unique_ptr<subprocess_protocol> proto_;
    transport* pipes_[3] = {};
    bool made_ = false;
    bool exit_told_ = false;
    bool closing_ = false;
    bool finished_ = false;
    bool silent_ = false;  // abandon()ed

    friend class pipe_end;
};

// Factories for the pipes' transports.
struct pipe_end_factory {
    subprocess_pipes* owner;
    int fd;
    std::unique_ptr<subprocess_pipes::pipe_end> operator()() const {
        return std::make_unique<subprocess_pipes::pipe_end>(*owner, fd);
    }
};

template <class P, class Factory>
coro<std::pair<subprocess_transport*, P*>> subprocess_call(loop_base& loop, Factory factory,
                                                          std::string program,
                                                          std::vector<std::string> args,
                                                          bool shell, subprocess_options options,
                                                          const char* what) {
    // The child's pipes as plain descriptors: this layer makes its own transports.
    spawned s;
    spawn_process(s, loop, program, args, shell, options, what);
    std::unique_ptr<P> proto = factory();
    P* p = proto.get();
    auto* t = new subprocess_pipes(loop, std::move(s.p), std::move(proto));
    // From here the transport owns the pipes: a failure closes what is connected.
    try {
        if (s.ours[0].get() != no_descriptor()) {
            co_await loop.connect_write_pipe(pipe_end_factory{t, 0}, s.ours[0].release());
        }
        for (int fd = 1; fd < 3; ++fd) {
            if (s.ours[fd].get() != no_descriptor()) {
                co_await loop.connect_read_pipe(pipe_end_factory{t, fd}, s.ours[fd].release());
            }
        }
    } catch (...) {
        t->abandon();
        throw;
    }
    t->made();
    co_return std::pair<subprocess_transport*, P*>(t, p);
}

}  // namespace detail

// co_await loop.subprocess_exec(factory, program, args, options) ->
// std::pair<subprocess_transport*, P*> (asyncio's loop.subprocess_exec); P derives from
// subprocess_protocol. Errors as create_subprocess_exec's.
template <class Factory>
coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> loop_base::subprocess_exec(
    Factory factory, std::string program, detail::arg_list args,
    const subprocess_options& options) {
    static_assert(std::is_base_of_v<subprocess_protocol, detail::protocol_of<Factory>>,
                  "subprocess_exec: the factory must make a subprocess_protocol");
    detail::check_options(options, "subprocess_exec");
    detail::net_access::check_open(*this, "subprocess_exec");
    return detail::subprocess_call<detail::protocol_of<Factory>>(
        *this, std::move(factory), std::move(program), std::move(args.get()), false, options,
        "subprocess_exec");
}

// co_await loop.subprocess_shell(factory, cmd, options): cmd run as create_subprocess_shell
// runs it (/bin/sh -c; cmd.exe /c on Windows).
template <class Factory>
coro<std::pair<subprocess_transport*, detail::protocol_of<Factory>*>> loop_base::subprocess_shell(
    Factory factory, std::string cmd, const subprocess_options& options) {
    static_assert(std::is_base_of_v<subprocess_protocol, detail::protocol_of<Factory>>,
                  "subprocess_shell: the factory must make a subprocess_protocol");
    detail::check_options(options, "subprocess_shell");
    detail::net_access::check_open(*this, "subprocess_shell");
    std::vector<std::string> args;
    args.push_back(std::move(cmd));
    return detail::subprocess_call<detail::protocol_of<Factory>>(
        *this, std::move(factory), detail::shell_program(), std::move(args), true, options,
        "subprocess_shell");
}

IOLOOP_NAMESPACE_END

#endif
