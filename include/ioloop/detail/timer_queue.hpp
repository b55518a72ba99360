// ioloop: the loop's timers, ordered by (deadline, sequence): a wheel of small heaps for
// the next second or so, and one heap for deadlines beyond it.
//
// Why not one heap: a million pending timers make a 16 MB heap, and every pop walks it
// from top to bottom through cache misses. Here a timer goes into the heap of its ~4 ms
// slot, so the heap being popped is small and stays in cache. Within a slot the heap
// keeps exact (deadline, sequence) order, and slots are visited in time order, so the
// order is exactly that of one big heap. Timers past the wheel's horizon wait in the far
// heap and move into the wheel as time reaches them.
#ifndef IOLOOP_DETAIL_TIMER_QUEUE_HPP
#define IOLOOP_DETAIL_TIMER_QUEUE_HPP

#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/chrono.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/timer_heap.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class timer_queue {
public:
    using clock = std::chrono::steady_clock;
    using rep = clock::rep;

    timer_queue() noexcept = default;
    timer_queue(const timer_queue&) = delete;
    timer_queue& operator=(const timer_queue&) = delete;

    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    // Takes over the caller's reference to `n`. `now` is the current time: an empty
    // wheel restarts there, so that the next second of deadlines lands in it.
    void push(callback_node* n, clock::time_point now) {
        if (near_count_ == 0) advance(now);
        const std::uint64_t s = slot_of(n->when.time_since_epoch().count());
        if (s < base_ + wheel_slots) {
            put_near(n, s);
        } else {
            far_.push(n);
        }
        ++size_;
    }

    // The earliest timer; the queue must not be empty.
    callback_node* top() noexcept { return earliest().top(); }
    rep top_deadline() noexcept { return earliest().top_deadline(); }

    // Removes the earliest timer; the caller now owns the queue's reference, and clears
    // n->in_timer_heap (see timer_heap::pop).
    callback_node* pop() noexcept {
        timer_heap& h = earliest();
        callback_node* n = h.pop();
        if (&h != &far_) {
            --near_count_;
            if (h.empty()) unmark(static_cast<std::size_t>(&h - near_));
        }
        --size_;
        return n;
    }

    // `n`, still queued, was cancelled. It leaves at once if that is cheap; otherwise it
    // stays until it reaches the top or a purge (cancelled_count() tells when to purge).
    void cancel(callback_node* n) noexcept {
        const std::uint64_t s = slot_of(n->when.time_since_epoch().count());
        // Not named `near`: <windows.h> defines near and far as empty macros.
        const bool in_wheel = s < base_ + wheel_slots;
        const std::size_t i = static_cast<std::size_t>((s < base_ ? base_ : s) % wheel_slots);
        if (!(in_wheel ? near_[i] : far_).remove_recent(n)) {
            ++cancelled_;
            return;
        }
        if (in_wheel) {
            --near_count_;
            if (near_[i].empty()) unmark(i);
        }
        --size_;
        n->in_timer_heap = false;
        n->release();
    }

    // Cancelled timers still queued; a popped one is the caller's to count off.
    std::size_t cancelled_count() const noexcept { return cancelled_; }
    void forget_cancelled() noexcept { --cancelled_; }

    // Turns the wheel to `now`, once everything due before it has been popped: the empty
    // slots behind it are reused for the far future, whose timers move in.
    void advance(clock::time_point now) {
        const std::uint64_t now_slot = slot_of(now.time_since_epoch().count());
        if (near_count_ == 0) {
            if (now_slot > base_) rebase(now_slot);
            return;
        }
        // Only empty slots may be left behind (a slot's heap becomes the one 256 ahead).
        while (base_ < now_slot && !is_marked(base_ % wheel_slots)) ++base_;
        pull_from_far();
    }

    // Moves every cancelled timer to `dropped` (the caller releases them afterwards).
    void purge_cancelled(node_queue& dropped) noexcept {
        for (std::size_t i = 0; i < wheel_slots; ++i) {
            if (!is_marked(i)) continue;
            const std::size_t n = near_[i].purge_cancelled(dropped);
            near_count_ -= n;
            size_ -= n;
            if (near_[i].empty()) unmark(i);
        }
        size_ -= far_.purge_cancelled(dropped);
        cancelled_ = 0;
    }

    // Moves every timer to `dropped` (loop close).
    void clear(node_queue& dropped) noexcept {
        for (timer_heap& h : near_) h.clear(dropped);
        far_.clear(dropped);
        for (std::uint64_t& word : marks_) word = 0;
        size_ = near_count_ = cancelled_ = 0;
    }

private:
    static constexpr std::size_t wheel_slots = 256;
    // About 4.2 ms per slot (2^22 ns): a 256-slot wheel covers about 1.07 s ahead. A
    // clock coarser than that gets one tick per slot.
    static constexpr rep slot_ticks_exact =
        std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(1 << 22)).count();
    static constexpr rep slot_ticks = slot_ticks_exact > 0 ? slot_ticks_exact : 1;

    static std::uint64_t slot_of(rep when) noexcept {
        return when <= 0 ? 0 : static_cast<std::uint64_t>(when / slot_ticks);
    }

    // The heap holding the earliest timer: the first occupied slot from the wheel's
    // base, else the far heap.
    timer_heap& earliest() noexcept {
        const std::size_t start = static_cast<std::size_t>(base_ % wheel_slots);
        for (std::size_t k = 0; k < wheel_slots;) {
            const std::size_t i = (start + k) % wheel_slots;
            const std::uint64_t word = marks_[i / 64] >> (i % 64);
            if (word == 0) {
                k += 64 - i % 64;  // skip the rest of this word
                continue;
            }
            k += static_cast<std::size_t>(std::countr_zero(word));
            if (k < wheel_slots) return near_[(start + k) % wheel_slots];
        }
        return far_;
    }

    // A timer lands in its own slot, or in the wheel's first slot when its own is already
    // behind the wheel: it is still earlier than every timer in a later slot, and the
    // first slot's heap puts it in order among the others there.
    void put_near(callback_node* n, std::uint64_t s) {
        const std::size_t i = static_cast<std::size_t>((s < base_ ? base_ : s) % wheel_slots);
        near_[i].push(n);
        mark(i);
        ++near_count_;
    }

    void rebase(std::uint64_t s) {
        base_ = s;
        pull_from_far();
    }

    void pull_from_far() {
        while (!far_.empty() && slot_of(far_.top_deadline()) < base_ + wheel_slots) {
            callback_node* n = far_.pop();
            put_near(n, slot_of(n->when.time_since_epoch().count()));
        }
    }

    void mark(std::size_t i) noexcept { marks_[i / 64] |= std::uint64_t{1} << (i % 64); }
    void unmark(std::size_t i) noexcept { marks_[i / 64] &= ~(std::uint64_t{1} << (i % 64)); }
    bool is_marked(std::size_t i) const noexcept { return (marks_[i / 64] >> (i % 64)) & 1u; }

    timer_heap near_[wheel_slots];
    timer_heap far_;
    std::uint64_t marks_[wheel_slots / 64] = {};  // which slots hold timers
    std::uint64_t base_ = 0;      // the wheel holds slots [base_, base_ + wheel_slots)
    std::size_t size_ = 0;        // all timers
    std::size_t near_count_ = 0;  // timers in the wheel
    std::size_t cancelled_ = 0;   // cancelled timers still queued
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
