// ioloop: gather (asyncio.gather), run awaitables concurrently and collect their results in
// argument order.
//
//   auto [a, b] = co_await ioloop::gather(fetch("x"), fetch("y"));   // std::tuple<A, B>
//   std::vector<int> all = co_await ioloop::gather(std::move(tasks)); // std::vector<int>
//   auto outcomes = co_await ioloop::gather(ioloop::return_exceptions, std::move(tasks));
//
// Each argument is a coro (made a task at once, as asyncio wraps coroutines), a task or a
// future. Awaiting the gather waits for every child; the first child that fails (or is
// cancelled) ends the gather at once with that exception, and the others keep running, as
// in asyncio. With return_exceptions every child finishes and each gives an
// outcome<T>. A void child gives void_result in a tuple or vector of results.
//
// Cancellation, as asyncio's: cancelling the task that awaits the gather cancels every
// child still running, and the gather then ends in cancelled_error (with return_exceptions,
// once every child has finished). A child cancelled on its own ends the gather in
// cancelled_error too, or with return_exceptions gives an outcome holding cancelled_error.
//
// The gather is an awaitable, not a task or future (asyncio's gather returns a future): it
// links itself to each child and counts down, so it costs no task, no allocation per
// child, and, for the vector form, one array of links and the vector of results. Await it
// once. A child's result is moved out when gather owns the handle (a coro, an rvalue task
// or future, an rvalue vector), copied when the caller keeps it (an lvalue). So a task
// listed twice must come in an lvalue vector: moved out once, its result would be gone the
// second time (asyncio removes duplicates instead).
#ifndef IOLOOP_CORO_GATHER_HPP
#define IOLOOP_CORO_GATHER_HPP

#include "ioloop/coro/children.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/outcome.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/coro/void_result.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// gather(return_exceptions, ...): every child finishes, each gives an outcome<T>
// (asyncio's return_exceptions=True).
struct return_exceptions_t {
    explicit constexpr return_exceptions_t() = default;
};
inline constexpr return_exceptions_t return_exceptions{};

namespace detail {

// A child's place in the results: its value, or with return_exceptions its outcome.
template <class T, bool Outcomes>
using gather_element = std::conditional_t<Outcomes, outcome<T>, gathered_t<T>>;

// After the gather ended early, reads the exception of a child still running once it
// finishes, so that it is not reported as never retrieved: asyncio's gather does the same
// for the children that finish after it is over. Allocated only on that path.
class retrieve_when_done final : public done_link {
public:
    explicit retrieve_when_done(future_base* s) noexcept : state_(s) {}

    void on_done() noexcept override {
        if (!state_->cancelled()) {
            try {
                (void)state_->exception();
            } catch (...) {  // it is done and not cancelled: exception() does not throw
            }
        }
        delete this;
    }
    void on_future_destroyed() noexcept override { delete this; }

private:
    future_base* state_;
};

// What every form of gather shares: linking to the children, the countdown, ending early,
// passing a cancellation on. The derived class owns the children and the links.
class gather_core : public wait_point {
public:
    using link = child_link<gather_core>;

    gather_core(const gather_core&) = delete;
    gather_core& operator=(const gather_core&) = delete;

    // A child is done (its link is already off its list).
    void child_done(link& l) noexcept {
        --pending_;
        if (!return_exceptions_ && l.state->state() != future_base::status::finished) {
            failed_ = l.state;
            end_early();
            task_->wake();
        } else if (pending_ == 0) {
            task_->wake();
        }
    }

    // The awaiting task was cancelled: every child still running is cancelled (asyncio's
    // _GatheringFuture.cancel) and the gather goes on until the children react.
    void on_cancel(task_base& t) noexcept override {
        bool passed = false;
        for (std::size_t i = 0; i < count_; ++i) {
            future_base* s = links_[i].state;
            if (!s->done() && s->cancel()) passed = true;
        }
        if (passed) {
            cancel_requested_ = true;
            t.cancel_passed_on();
        } else {  // nothing left to cancel: the task throws where it waits
            t.wake();
        }
    }

protected:
    explicit gather_core(bool return_exceptions) noexcept : return_exceptions_(return_exceptions) {}
    // Only before the gather is awaited (into a wait_for, a race): no link is bound yet.
    gather_core(gather_core&& o) noexcept : return_exceptions_(o.return_exceptions_) {}
    ~gather_core() = default;

    // await_suspend's work, once the links name their children: links to those still
    // running. False if the gather is already over (all done, or one failed). `kind`
    // names the children in the error for one of another loop: each is checked as it is
    // first touched, not in a pass of its own (a cache miss per child in a large batch),
    // and a child that already failed ends the gather only once all are checked. Null
    // if the children were checked when the gather was made (the tuple form).
    bool start(std::coroutine_handle<> h, link* links, std::size_t n, const char* kind) {
        task_base& t = current_task_or_throw("gather");
        links_ = links;
        count_ = n;
        for (std::size_t i = 0; i < n; ++i) {
            link& l = links[i];
            // Throwing leaves the links made so far to the destructor's unlink_all.
            if (kind) l.state->check_running_loop("gather", kind);
            if (!l.state->done()) {
                l.state->add_link(&l);
                ++pending_;
            } else if (!failed_ && !return_exceptions_ &&
                       l.state->state() != future_base::status::finished) {
                failed_ = l.state;
            }
        }
        if (failed_) {
            end_early();
            return false;
        }
        if (pending_ == 0) return false;
        task_ = &t;
        t.suspend(h, this);
        return true;
    }

    // await_resume's checks before the results are read: a cancellation of the awaiting
    // task, the child that ended the gather, a cancellation passed on to the children.
    void throw_if_over_by_error() {
        if (task_) task_->throw_if_cancelled();
        if (failed_) failed_->rethrow_if_not_finished("gather");
        if (cancel_requested_) {
            // asyncio reads every child's exception before it raises the cancellation.
            for (std::size_t i = 0; i < count_; ++i) {
                future_base* s = links_[i].state;
                if (s->state() == future_base::status::failed) (void)s->exception();
            }
            throw cancelled_error();
        }
    }

    // Nothing is linked once the count is down (the usual end): no pass over the links.
    void unlink_all() noexcept {
        if (pending_ == 0) return;
        for (std::size_t i = 0; i < count_; ++i) links_[i].unlink();
    }

    // Refuses a second co_await (the results may have been moved out).
    void check_first_await() {
        if (awaited_) throw invalid_state_error("gather: a gather is awaited once");
        awaited_ = true;
    }

private:
    // A child failed: the gather is over and the other children keep running.
    void end_early() noexcept {
        for (std::size_t i = 0; i < count_; ++i) {
            link& l = links_[i];
            l.unlink();
            if (!l.state->done()) {
                if (auto* r = new (std::nothrow) retrieve_when_done(l.state)) l.state->add_link(r);
            }
        }
        pending_ = 0;
    }

    task_base* task_ = nullptr;
    link* links_ = nullptr;
    std::size_t count_ = 0;
    std::size_t pending_ = 0;
    future_base* failed_ = nullptr;  // the child whose exception ends the gather
    bool return_exceptions_;
    bool cancel_requested_ = false;
    bool awaited_ = false;
};

// One child's outcome; h is done.
template <bool Move, class H>
outcome<typename H::value_type> outcome_of(H& h) {
    using T = typename H::value_type;
    future_base& s = *h.state();
    if (s.state() != future_base::status::finished) return outcome<T>(error_of(s));
    if constexpr (std::is_void_v<T>) {
        return outcome<void>();
    } else {
        return outcome<T>(std::in_place, take_result<Move>(h));
    }
}

// One child's entry in the results; h is done.
template <bool Outcomes, bool Move, class H>
gather_element<typename H::value_type, Outcomes> element_of(H& h) {
    if constexpr (Outcomes) {
        return outcome_of<Move>(h);
    } else if constexpr (std::is_void_v<typename H::value_type>) {
        return void_result{};
    } else {
        return take_result<Move>(h);
    }
}

// gather(std::vector<...>): the handles, and one link per child made when awaited.
template <class H, bool Move, bool Outcomes>
class [[nodiscard]] gather_vector final : public gather_core {
public:
    using result_type = std::vector<gather_element<typename H::value_type, Outcomes>>;

    explicit gather_vector(std::vector<H>&& children) noexcept
        : gather_core(Outcomes), children_(std::move(children)) {}
    gather_vector(gather_vector&& o) noexcept  // before it is awaited (see gather_core)
        : gather_core(std::move(o)), children_(std::move(o.children_)) {}
    ~gather_vector() { unlink_all(); }

    bool await_ready() const noexcept { return children_.empty(); }

    bool await_suspend(std::coroutine_handle<> h) {
        check_first_await();
        const std::size_t n = children_.size();
        storage_ = std::vector<link>(n);
        for (std::size_t i = 0; i < n; ++i) {
            storage_[i].owner = this;
            storage_[i].state = children_[i].state();
        }
        return start(h, storage_.data(), n, handle_kind<H>);
    }

    result_type await_resume() {
        throw_if_over_by_error();
        result_type results;
        if constexpr (!Outcomes && std::is_void_v<typename H::value_type>) {
            results.resize(children_.size());
        } else {
            results.reserve(children_.size());
            for (H& c : children_) {
                results.push_back(element_of<Outcomes, Move>(c));
                // A handle the gather owns goes now, while its state is in cache, rather
                // than in a second pass over a batch that may not fit in it.
                if constexpr (Move) c = H();
            }
        }
        return results;
    }

private:
    std::vector<H> children_;
    std::vector<link> storage_;
};

// A child of the tuple form: its handle type, and whether its result may be moved out.
template <class H, bool Move>
struct child_spec {
    using handle = H;
    static constexpr bool move = Move;
};

// gather(a, b, ...): the handles in a tuple, the links in an array inside the awaiter.
template <bool Outcomes, class... Specs>
class [[nodiscard]] gather_tuple final : public gather_core {
    static constexpr std::size_t count = sizeof...(Specs);

public:
    using result_type = std::tuple<gather_element<typename Specs::handle::value_type, Outcomes>...>;

    // Braces: the children are made (coros become tasks) in argument order.
    template <class... A>
    requires(sizeof...(A) == count && (!std::is_same_v<std::remove_cvref_t<A>, gather_tuple> && ...))
    explicit gather_tuple(A&&... aws)
        : gather_core(Outcomes), children_{make_child(std::forward<A>(aws))...} {}
    gather_tuple(gather_tuple&& o)  // before it is awaited (see gather_core)
        : gather_core(std::move(o)), children_(std::move(o.children_)) {}
    ~gather_tuple() { unlink_all(); }

    bool await_ready() const noexcept { return count == 0; }

    bool await_suspend(std::coroutine_handle<> h) {
        check_first_await();
        bind(std::index_sequence_for<Specs...>{});
        return start(h, storage_, count, nullptr);  // checked by gather()
    }

    result_type await_resume() {
        throw_if_over_by_error();
        return results(std::index_sequence_for<Specs...>{});
    }

private:
    template <std::size_t... I>
    void bind(std::index_sequence<I...>) noexcept {
        ((storage_[I].owner = this, storage_[I].state = std::get<I>(children_).state()), ...);
    }

    template <std::size_t... I>
    result_type results(std::index_sequence<I...>) {
        return result_type{element_of<Outcomes, Specs::move>(std::get<I>(children_))...};
    }

    std::tuple<typename Specs::handle...> children_;
    link storage_[count == 0 ? 1 : count];
};

template <class A>
using spec_of = child_spec<child_handle<A>, moves_result<A>>;

// A task or future of another loop is refused before the tuple form copies it (or makes
// a task of a coro given with it); a coro becomes a task of the running loop.
template <class A>
void check_gather_child(const A& a) {
    if constexpr (!is_coro_argument<A>) check_running_loop(a, "gather");
}

}  // namespace detail

// co_await gather(a, b, ...) -> std::tuple<A, B, ...>, void children as void_result.
template <class... A>
requires(detail::valued_child<A>&&...) auto gather(A&&... aws) {
    (detail::check_gather_child(aws), ...);
    return detail::gather_tuple<false, detail::spec_of<A&&>...>(std::forward<A>(aws)...);
}

// co_await gather(return_exceptions, a, b, ...) -> std::tuple<outcome<A>, outcome<B>, ...>.
template <class... A>
requires(detail::valued_child<A>&&...) auto gather(return_exceptions_t, A&&... aws) {
    (detail::check_gather_child(aws), ...);
    return detail::gather_tuple<true, detail::spec_of<A&&>...>(std::forward<A>(aws)...);
}

// co_await gather(std::move(v)) -> std::vector<T> (void_result for void), from a vector of
// tasks, futures or coros; the results are moved out of the children.
template <class A>
requires detail::valued_child<A>
auto gather(std::vector<A>&& aws) {
    return detail::gather_vector<detail::child_handle<A>, true, false>(
        detail::handles_of(std::move(aws)));
}

// co_await gather(v): the caller keeps the handles; the results are copied.
template <class A>
requires detail::valued_child<A>
auto gather(const std::vector<A>& aws) {
    static_assert(!detail::is_coro_argument<A>,
                  "gather: a vector of coros is consumed, pass std::move(v)");
    return detail::gather_vector<detail::child_handle<A>, false, false>(
        detail::checked_copy(aws, "gather"));
}

// co_await gather(return_exceptions, std::move(v)) -> std::vector<outcome<T>>.
template <class A>
requires detail::valued_child<A>
auto gather(return_exceptions_t, std::vector<A>&& aws) {
    return detail::gather_vector<detail::child_handle<A>, true, true>(
        detail::handles_of(std::move(aws)));
}

template <class A>
requires detail::valued_child<A>
auto gather(return_exceptions_t, const std::vector<A>& aws) {
    static_assert(!detail::is_coro_argument<A>,
                  "gather: a vector of coros is consumed, pass std::move(v)");
    return detail::gather_vector<detail::child_handle<A>, false, true>(
        detail::checked_copy(aws, "gather"));
}

IOLOOP_NAMESPACE_END

#endif
