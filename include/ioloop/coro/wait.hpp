// ioloop: wait and as_completed (asyncio.wait, asyncio.as_completed): watch a set of tasks
// or futures without taking their results.
//
//   auto [done, pending] = co_await ioloop::wait(std::move(tasks), ioloop::first_completed);
//   auto [done, pending] = co_await ioloop::wait(tasks, 5s);  // all_completed, at most 5 s
//
//   auto next = ioloop::as_completed(std::move(tasks), 10s);
//   while (!next.empty()) {
//       ioloop::task<int> t = co_await next.next();  // the next one done; timeout_error
//       use(t.result());                              // once the 10 s have passed
//   }
//
// The arguments are a vector of tasks, futures, any_task or any_future handles, or of coros
// (made tasks at once; asyncio 3.12 refuses coroutines in wait because their tasks would be
// lost, but here the result hands back the task handles). Neither cancels anything: on
// timeout wait returns what is done so far, and a cancel of the waiting task ends only the
// wait.
//
// wait returns wait_result{done, pending}, two vectors of the handles, each in argument
// order (asyncio returns two sets). When the condition already holds, wait returns without
// suspending (asyncio yields to the loop once first). An empty vector is an error, as in
// asyncio.
//
// as_completed returns an as_completed_set, a queue of the handles in the order they
// finish: co_await next() gives the next one done (already-done ones first, in argument
// order), size() says how many next() has left to give. It starts watching, and its
// timeout counts, from the call. Once the timeout passed, next() gives the handles that
// finished before it, then throws timeout_error for each one left (asyncio yields a
// TimeoutError for each). The set stays where it was made (its links point to it).
#ifndef IOLOOP_CORO_WAIT_HPP
#define IOLOOP_CORO_WAIT_HPP

#include "ioloop/coro/children.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/loop_access.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"
#include "ioloop/handle.hpp"

#include <coroutine>
#include <cstddef>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// When wait returns (asyncio.FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class return_when : unsigned char {
    first_completed,  // as soon as any is done
    first_exception,  // as soon as any fails (a cancel does not count), or all are done
    all_completed,    // once all are done
};
using enum return_when;  // ioloop::first_completed, ...
// asyncio's own spelling, for code carried over from Python.
inline constexpr return_when FIRST_COMPLETED = return_when::first_completed;
inline constexpr return_when FIRST_EXCEPTION = return_when::first_exception;
inline constexpr return_when ALL_COMPLETED = return_when::all_completed;

template <class H>
struct wait_result {
    std::vector<H> done;
    std::vector<H> pending;
};

namespace detail {

// A timeout that may be absent (no <optional>).
struct maybe_timeout {
    std::chrono::steady_clock::duration delay{};
    bool set = false;

    template <class Rep, class Period>
    static maybe_timeout of(std::chrono::duration<Rep, Period> d) {
        // Saturated, as sleep does: a delay past the clock's range never comes.
        const std::chrono::steady_clock::duration delay = saturating_ceil(d);
        if (delay == std::chrono::steady_clock::duration::max()) return {};
        return {delay, true};
    }
};

template <class H>
class [[nodiscard]] wait_awaiter final : public wait_point {
public:
    using link = child_link<wait_awaiter>;

    wait_awaiter(std::vector<H>&& children, return_when when, maybe_timeout timeout)
        : children_(std::move(children)), timeout_(timeout), when_(when) {
        if (children_.empty()) throw error("wait: the set of tasks and futures is empty");
    }
    // Before it is awaited (into a wait_for, a race): no link is made yet.
    wait_awaiter(wait_awaiter&& o) noexcept
        : children_(std::move(o.children_)), timeout_(o.timeout_), when_(o.when_) {}
    wait_awaiter(const wait_awaiter&) = delete;
    wait_awaiter& operator=(const wait_awaiter&) = delete;
    ~wait_awaiter() { stop_watching(); }

    // The children were checked against the running loop where wait() took them.
    bool await_ready() const noexcept {
        std::size_t done = 0;
        for (const H& c : children_) {
            if (!c.done()) continue;
            if (when_ == first_completed || failed(c.state())) return true;
            ++done;
        }
        return done == children_.size();
    }

    void await_suspend(std::coroutine_handle<> h) {
        if (!links_.empty()) throw invalid_state_error("wait: a wait is awaited once");
        task_base& t = current_task_or_throw("wait");
        const std::size_t n = children_.size();
        links_ = std::vector<link>(n);
        for (std::size_t i = 0; i < n; ++i) {
            link& l = links_[i];
            l.owner = this;
            l.state = children_[i].state();
            if (l.state->done()) continue;
            l.state->add_link(&l);
            ++pending_;
        }
        task_ = &t;
        if (timeout_.set) timer_ = t.loop()->call_later(timeout_.delay, [this] { finish(); });
        t.suspend(h, this);
    }

    wait_result<H> await_resume() {
        stop_watching();
        if (task_) task_->throw_if_cancelled();
        wait_result<H> r;
        for (H& c : children_) (c.done() ? r.done : r.pending).push_back(std::move(c));
        return r;
    }

    // The waiting task was cancelled: only the wait ends.
    void on_cancel(task_base& t) noexcept override {
        stop_watching();
        t.wake();
    }

private:
    friend link;

    static bool failed(const future_base* s) noexcept {
        return s->state() == future_base::status::failed;
    }

    void child_done(link& l) noexcept {
        --pending_;
        if (pending_ == 0 || when_ == first_completed ||
            (when_ == first_exception && failed(l.state))) {
            finish();
        }
    }

    void finish() noexcept {
        stop_watching();
        task_->wake();
    }

    void stop_watching() noexcept {
        timer_.cancel();
        for (link& l : links_) l.unlink();
    }

    std::vector<H> children_;
    std::vector<link> links_;
    task_base* task_ = nullptr;
    timer_handle timer_;
    std::size_t pending_ = 0;
    maybe_timeout timeout_;
    return_when when_;
};

// What wait and as_completed take: a vector of children, taken over if it is an rvalue,
// copied if it is an lvalue. Not a parameter by value: the copy would be made before the
// function runs, and a copy counts a reference to each handle's state, which for a task
// or future of another loop is that loop's thread's to count. So every handle is checked
// here, first, and nowhere else: wait and as_completed are made where they are awaited.
template <class V>
inline constexpr bool is_vector = false;
template <class A>
inline constexpr bool is_vector<std::vector<A>> = true;

template <class V>
using vector_element = typename std::remove_cvref_t<V>::value_type;

template <class V>
concept child_vector = is_vector<std::remove_cvref_t<V>> && child_awaitable<vector_element<V>>;

template <class V>
using vector_child_handle = child_handle<vector_element<V>>;

template <class V>
std::vector<vector_child_handle<V>> take_children(V&& aws, const char* what) {
    using A = vector_element<V>;
    if constexpr (is_coro_argument<A>) {
        static_assert(!std::is_lvalue_reference_v<V>,
                      "a vector of coros is consumed: pass std::move(v)");
        return handles_of(std::move(aws));  // tasks of the running loop
    } else if constexpr (std::is_lvalue_reference_v<V>) {
        return checked_copy(aws, what);
    } else {
        for (const A& h : aws) check_running_loop(h, what);
        return std::move(aws);
    }
}

}  // namespace detail

// co_await wait(aws, when) -> wait_result{done, pending}.
template <class V>
requires detail::child_vector<V>
auto wait(V&& aws, return_when when = all_completed) {
    using H = detail::vector_child_handle<V>;
    return detail::wait_awaiter<H>(detail::take_children(std::forward<V>(aws), "wait"), when, {});
}

// co_await wait(aws, timeout, when): returns when `when` holds or the timeout passed,
// whichever comes first; nothing is cancelled.
template <class V, class Rep, class Period>
requires detail::child_vector<V>
auto wait(V&& aws, std::chrono::duration<Rep, Period> timeout, return_when when = all_completed) {
    using H = detail::vector_child_handle<V>;
    return detail::wait_awaiter<H>(detail::take_children(std::forward<V>(aws), "wait"), when,
                                   detail::maybe_timeout::of(timeout));
}

// What as_completed returns: the handles, handed out in the order they finish.
template <class H>
class [[nodiscard]] as_completed_set {
    using link = detail::child_link<as_completed_set>;

public:
    class next_awaiter;

    as_completed_set(std::vector<H>&& children, detail::maybe_timeout timeout)
        : children_(std::move(children)), left_(children_.size()) {
        const std::size_t n = children_.size();
        links_ = std::vector<link>(n);
        order_.reserve(n);  // child_done appends without allocating
        // The children were checked against the running loop where as_completed took them.
        for (std::size_t i = 0; i < n; ++i) {
            link& l = links_[i];
            l.owner = this;
            l.state = children_[i].state();
            if (l.state->done()) {
                order_.push_back(i);
            } else {
                l.state->add_link(&l);
            }
        }
        if (timeout.set && order_.size() < n) {
            timer_ = detail::loop_access::running_or_throw("as_completed")
                         .call_later(timeout.delay, [this] { expire(); });
        }
    }
    as_completed_set(const as_completed_set&) = delete;
    as_completed_set& operator=(const as_completed_set&) = delete;
    ~as_completed_set() {
        timer_.cancel();
        for (link& l : links_) l.unlink();
    }

    // How many more times next() gives a handle or throws timeout_error.
    std::size_t size() const noexcept { return left_; }
    bool empty() const noexcept { return left_ == 0; }

    // co_await next(): the next handle done. One task at a time may wait in next().
    next_awaiter next() noexcept { return next_awaiter(*this); }

    // A range of size() awaitables, each the next handle done (asyncio's plain `for f in
    // as_completed(fs): await f`):
    //   for (auto next : ioloop::as_completed(std::move(tasks))) {
    //       ioloop::task<int> t = co_await next;
    //   }
    class iterator {
    public:
        next_awaiter operator*() const noexcept { return set_->next(); }
        iterator& operator++() noexcept {
            ++at_;
            return *this;
        }
        bool operator==(const iterator& other) const noexcept { return at_ == other.at_; }

    private:
        friend as_completed_set;
        iterator(as_completed_set* s, std::size_t at) noexcept : set_(s), at_(at) {}
        as_completed_set* set_;
        std::size_t at_;
    };
    iterator begin() noexcept { return iterator(this, 0); }
    iterator end() noexcept { return iterator(this, left_); }  // as many as are left

    class next_awaiter final : public detail::wait_point {
    public:
        explicit next_awaiter(as_completed_set& s) noexcept : set_(s) {}
        // Before it is awaited (into a wait_for, a race): the set does not know it yet.
        next_awaiter(next_awaiter&& o) noexcept : set_(o.set_) {}
        next_awaiter(const next_awaiter&) = delete;
        next_awaiter& operator=(const next_awaiter&) = delete;
        ~next_awaiter() {
            if (set_.waiter_ == this) set_.waiter_ = nullptr;
        }

        bool await_ready() const noexcept { return set_.ready(); }

        void await_suspend(std::coroutine_handle<> h) {
            if (set_.waiter_)
                throw invalid_state_error("as_completed: another task waits in next()");
            task_ = &detail::current_task_or_throw("as_completed");
            set_.waiter_ = this;
            task_->suspend(h, this);
        }

        H await_resume() {
            if (task_) task_->throw_if_cancelled();
            return set_.take();
        }

        // Only the wait ends: the children are not cancelled.
        void on_cancel(detail::task_base& t) noexcept override {
            set_.waiter_ = nullptr;
            t.wake();
        }

    private:
        friend as_completed_set;
        as_completed_set& set_;
        detail::task_base* task_ = nullptr;
    };

private:
    friend link;

    bool ready() const noexcept { return read_ < order_.size() || timed_out_ || left_ == 0; }

    H take() {
        if (left_ == 0)
            throw invalid_state_error("as_completed: every awaitable was given already");
        --left_;
        if (read_ < order_.size()) return std::move(children_[order_[read_++]]);
        throw timeout_error();  // ready() held: the timeout passed
    }

    void child_done(link& l) noexcept {
        order_.push_back(static_cast<std::size_t>(&l - links_.data()));
        if (order_.size() == children_.size()) timer_.cancel();
        wake_waiter();
    }

    // The timeout passed: what finished so far is still handed out, then timeout_error.
    void expire() noexcept {
        timed_out_ = true;
        for (link& l : links_) l.unlink();
        wake_waiter();
    }

    void wake_waiter() noexcept {
        if (next_awaiter* w = std::exchange(waiter_, nullptr)) w->task_->wake();
    }

    std::vector<H> children_;
    std::vector<link> links_;
    std::vector<std::size_t> order_;  // indexes of the children, in the order they finished
    std::size_t read_ = 0;            // order_[read_] is the next to hand out
    std::size_t left_;
    next_awaiter* waiter_ = nullptr;
    timer_handle timer_;
    bool timed_out_ = false;
};

// as_completed(aws) -> as_completed_set: co_await its next() for each handle in the order
// they finish.
template <class V>
requires detail::child_vector<V> as_completed_set<detail::vector_child_handle<V>> as_completed(
    V&& aws) {
    return as_completed_set<detail::vector_child_handle<V>>(
        detail::take_children(std::forward<V>(aws), "as_completed"), {});
}

// as_completed(aws, timeout): next() throws timeout_error once the timeout (counted from
// this call) passed and the handles that finished before it were handed out.
template <class V, class Rep, class Period>
requires detail::child_vector<V> as_completed_set<detail::vector_child_handle<V>> as_completed(
    V&& aws, std::chrono::duration<Rep, Period> timeout) {
    return as_completed_set<detail::vector_child_handle<V>>(
        detail::take_children(std::forward<V>(aws), "as_completed"),
        detail::maybe_timeout::of(timeout));
}

IOLOOP_NAMESPACE_END

#endif
