// ioloop: race (asio's awaitable `||`, Boost.Cobalt's race): the first of several
// awaitables to finish, the others cancelled and waited for.
//
//   std::variant<std::string, ioloop::void_result> r =
//       co_await ioloop::race(reader.readline(), ioloop::sleep(5s));
//   if (r.index() == 0) use(std::get<0>(r));                  // the line came first
//
// Each argument is a coro (made a task at once, as gather does), a task, a future, or any
// other awaitable (a temporary is moved into a task of its own; a named one is awaited
// where it lies and must outlive the race). The result is a std::variant of the results in
// argument order, void ones as void_result (the same type gather gives them, and unlike
// std::monostate it says what it stands for); index() says which argument won, so two
// arguments of one type stay apart.
//
// The first child to be done wins (children already done when the race is awaited: the
// first in argument order). Every other child still running is then cancelled, and the
// race returns only once all of them are done: nothing it started outlives it. If the
// winner failed (or was cancelled on its own), the race throws what it threw, after the
// same cancel and wait. A loser's result is dropped; a loser that fails with anything but
// the cancellation keeps its exception, which its task reports as never retrieved unless
// the caller reads it through a handle of its own. Cancelling the task that awaits the
// race cancels every child, waits for them, and throws cancelled_error.
//
// A task or future the caller passes is cancelled too if it loses: pass shield(t) to keep
// it running. The race is an awaitable (no task, no allocation of its own), awaited once;
// it can be moved until then (kept in a variable, given to wait_for).
#ifndef IOLOOP_CORO_RACE_HPP
#define IOLOOP_CORO_RACE_HPP

#include "ioloop/coro/awaitable.hpp"
#include "ioloop/coro/children.hpp"
#include "ioloop/coro/future_base.hpp"
#include "ioloop/coro/task.hpp"
#include "ioloop/coro/task_base.hpp"
#include "ioloop/coro/void_result.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/errors.hpp"

#include <coroutine>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

// What every race shares: linking to the children, picking the winner, cancelling and
// waiting for the rest. The derived class owns the children and the links.
class race_core : public wait_point {
public:
    using link = child_link<race_core>;

    race_core(const race_core&) = delete;
    race_core& operator=(const race_core&) = delete;

    // A child is done (its link is already off its list): the first one wins and the
    // others are told to stop; the task goes on once the last one is done.
    void child_done(link& l) noexcept {
        --pending_;
        if (winner_ == no_winner) {
            winner_ = static_cast<std::size_t>(&l - links_);
            stop_the_rest();
        }
        // No task_ yet: a future cancelled by start() finished within the cancel.
        if (pending_ == 0 && task_) task_->wake();
    }

    // The awaiting task was cancelled: every child still running is cancelled (unless
    // they already were), and the race ends in cancelled_error once they are all done.
    void on_cancel(task_base& t) noexcept override {
        cancel_requested_ = true;
        stop_the_rest();
        t.cancel_passed_on();  // suspended: some child is still running, and wakes it
    }

protected:
    static constexpr std::size_t no_winner = static_cast<std::size_t>(-1);

    race_core() noexcept = default;
    // Only before the race is awaited: no link is bound yet.
    race_core(race_core&&) noexcept {}
    ~race_core() = default;

    // await_suspend's work, once the links name their children. False if every child is
    // already done.
    bool start(std::coroutine_handle<> h, link* links, std::size_t n) {
        if (links_) throw invalid_state_error("race: a race is awaited once");
        task_base& t = current_task_or_throw("race");
        links_ = links;
        count_ = n;
        for (std::size_t i = 0; i < n; ++i) {
            if (links[i].state->done()) {
                if (winner_ == no_winner) winner_ = i;
            } else {
                links[i].state->add_link(&links[i]);
                ++pending_;
            }
        }
        if (winner_ != no_winner) stop_the_rest();
        if (pending_ == 0) return false;
        task_ = &t;
        t.suspend(h, this);
        return true;
    }

    // await_resume's checks before the winner's result is read; the winner's index.
    std::size_t winner_or_throw() {
        if (task_) task_->throw_if_cancelled();
        if (cancel_requested_) throw cancelled_error();
        future_base* w = links_[winner_].state;
        if (w->state() != future_base::status::finished) w->rethrow_if_not_finished("race");
        return winner_;
    }

    // Destroyed while children still run (the loop is closing with the task unfinished):
    // called by the derived class, whose links go before this base's destructor runs.
    void unlink_all() noexcept {
        if (pending_ == 0) return;
        for (std::size_t i = 0; i < count_; ++i) links_[i].unlink();
    }

private:
    // Cancels every child not done yet, once: a second cancel would reach a loser in its
    // cleanup (a winner found after the race was cancelled, or the other way round).
    void stop_the_rest() noexcept {
        if (stopping_) return;
        stopping_ = true;
        for (std::size_t i = 0; i < count_; ++i) {
            future_base* s = links_[i].state;
            if (!s->done()) s->cancel();
        }
    }

    task_base* task_ = nullptr;
    link* links_ = nullptr;
    std::size_t count_ = 0;
    std::size_t pending_ = 0;
    std::size_t winner_ = no_winner;
    bool cancel_requested_ = false;
    bool stopping_ = false;  // the children still running were cancelled
};

// The handle race keeps for an argument: a coro's task, a task or future as given, and
// for any other awaitable a task that awaits it.
template <class A, bool = valued_child<A>>
struct race_spec {
    using handle = child_handle<A>;
    static constexpr bool move = moves_result<A>;
};
template <class A>
struct race_spec<A, false> {
    using handle = task<awaited_value_t<A>>;
    static constexpr bool move = true;
};

template <class A>
typename race_spec<A&&>::handle make_racer(A&& a) {
    if constexpr (valued_child<A>) {
        return make_child(std::forward<A>(a));
    } else {
        return create_task(hold_awaitable(std::forward<A>(a)));
    }
}

// A task or future of another loop is refused before the race copies it.
template <class A>
void check_racer(const A& a) {
    if constexpr (child_awaitable<A> && !is_coro_argument<std::remove_cvref_t<A>>)
        check_running_loop(a, "race");
}

template <class... Specs>
class [[nodiscard]] race_tuple final : public race_core {
    static constexpr std::size_t count = sizeof...(Specs);

public:
    using result_type = std::variant<gathered_t<typename Specs::handle::value_type>...>;

    // Braces: the children are made (coros become tasks) in argument order.
    template <class... A>
    requires(sizeof...(A) == count)  // count >= 2: never a copy or a move
    explicit race_tuple(A&&... aws) : children_{make_racer(std::forward<A>(aws))...} {}
    // Until it is awaited (links are bound then), a race can be moved.
    race_tuple(race_tuple&& o) noexcept(std::is_nothrow_move_constructible_v<
                                        std::tuple<typename Specs::handle...>>)
        : race_core(std::move(o)), children_(std::move(o.children_)) {}
    ~race_tuple() { unlink_all(); }

    bool await_ready() const noexcept { return false; }

    bool await_suspend(std::coroutine_handle<> h) {
        bind(std::index_sequence_for<Specs...>{});
        return start(h, storage_, count);
    }

    result_type await_resume() { return pick<0>(winner_or_throw()); }

private:
    template <std::size_t... I>
    void bind(std::index_sequence<I...>) noexcept {
        ((storage_[I].owner = this, storage_[I].state = std::get<I>(children_).state()), ...);
    }

    template <std::size_t I>
    result_type pick(std::size_t winner) {
        if constexpr (I + 1 < count) {
            if (winner != I) return pick<I + 1>(winner);
        }
        using spec = std::tuple_element_t<I, std::tuple<Specs...>>;
        auto& h = std::get<I>(children_);
        if constexpr (std::is_void_v<typename spec::handle::value_type>) {
            h.result();
            return result_type(std::in_place_index<I>);
        } else {
            return result_type(std::in_place_index<I>, take_result<spec::move>(h));
        }
    }

    std::tuple<typename Specs::handle...> children_;
    link storage_[count];
};

}  // namespace detail

// co_await race(a, b, ...) -> std::variant<A, B, ...> (void as void_result): the first to
// finish; the others are cancelled and waited for before it returns.
template <class A, class... B>
requires((detail::valued_child<A> || detail::awaitable<A>) &&
         ((detail::valued_child<B> || detail::awaitable<B>)&&...))
auto race(A&& a, B&&... b) {
    static_assert(sizeof...(B) > 0, "race: give it at least two awaitables");
    detail::check_racer(a);
    (detail::check_racer(b), ...);
    return detail::race_tuple<detail::race_spec<A&&>, detail::race_spec<B&&>...>(
        std::forward<A>(a), std::forward<B>(b)...);
}

IOLOOP_NAMESPACE_END

#endif
