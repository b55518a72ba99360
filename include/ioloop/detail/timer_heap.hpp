// ioloop: the timer queue, a 4-ary min-heap ordered by (deadline, sequence).
// Entries carry the deadline beside the node pointer, so sifting reads one contiguous
// array and never the nodes; a node does not know its position, so cancelling is O(1):
// the node is marked and dropped when it reaches the top, or purged in bulk (as asyncio
// does) when cancelled nodes outnumber live ones.
#ifndef IOLOOP_DETAIL_TIMER_HEAP_HPP
#define IOLOOP_DETAIL_TIMER_HEAP_HPP

#include "ioloop/detail/callback_node.hpp"
#include "ioloop/detail/config.hpp"
#include "ioloop/detail/pod_vector.hpp"

#include <cstddef>

IOLOOP_NAMESPACE_BEGIN
namespace detail {

class timer_heap {
public:
    using rep = std::chrono::steady_clock::rep;

    bool empty() const noexcept { return entries_.empty(); }
    std::size_t size() const noexcept { return entries_.size(); }

    // Takes over the caller's reference to `n`.
    void push(callback_node* n) {
        n->in_timer_heap = true;
        entries_.push_back({n->when.time_since_epoch().count(), n});
        sift_up(entries_.size() - 1);
    }

    callback_node* top() const noexcept { return entries_.front().node; }
    rep top_deadline() const noexcept { return entries_.front().when; }

    // Removes the earliest timer; the caller now owns the heap's reference and must clear
    // n->in_timer_heap. Not touching the node here lets the caller batch those cache misses.
    callback_node* pop() noexcept {
        callback_node* n = entries_.front().node;
        entries_.front() = entries_.back();
        entries_.pop_back();
        if (!entries_.empty()) sift_down(0);
        return n;
    }

    // Removes `n` if it is where a push just put it: on the path from the last entry up
    // to the root (a timer cancelled soon after it was scheduled usually is). Returns
    // false, without looking further, when it is not; the caller then owns no reference.
    bool remove_recent(const callback_node* n) noexcept {
        if (entries_.empty()) return false;
        std::size_t i = entries_.size() - 1;
        while (entries_[i].node != n) {
            if (i == 0) return false;
            i = parent(i);
        }
        entries_[i] = entries_.back();
        entries_.pop_back();
        // The moved entry came from below i, so it cannot belong above it.
        if (i < entries_.size()) sift_down(i);
        return true;
    }

    // Moves every cancelled timer to `dropped` and restores the heap in O(n); returns how
    // many. The caller releases them afterwards: a released callback's destructor may
    // schedule a timer.
    std::size_t purge_cancelled(node_queue& dropped) noexcept {
        const std::size_t before = entries_.size();
        std::size_t kept = 0;
        for (entry& e : entries_) {
            if (e.node->is_cancelled()) {
                e.node->in_timer_heap = false;
                dropped.push(e.node);
            } else {
                entries_[kept++] = e;
            }
        }
        entries_.resize(kept);
        if (kept > 1) {
            for (std::size_t i = parent(kept - 1) + 1; i-- > 0;) sift_down(i);
        }
        return before - kept;
    }

    // Moves every timer to `dropped` (loop close).
    void clear(node_queue& dropped) noexcept {
        for (entry& e : entries_) {
            e.node->in_timer_heap = false;
            dropped.push(e.node);
        }
        entries_.clear();
    }

private:
    struct entry {
        rep when;
        callback_node* node;
    };

    static constexpr std::size_t arity = 4;
    static std::size_t parent(std::size_t i) noexcept { return (i - 1) / arity; }

    static bool before(const entry& a, const entry& b) noexcept {
        return a.when < b.when || (a.when == b.when && a.node->seq < b.node->seq);
    }

    void sift_up(std::size_t i) noexcept {
        const entry e = entries_[i];
        while (i > 0) {
            const std::size_t p = parent(i);
            if (!before(e, entries_[p])) break;
            entries_[i] = entries_[p];
            i = p;
        }
        entries_[i] = e;
    }

    void sift_down(std::size_t i) noexcept {
        const std::size_t n = entries_.size();
        const entry e = entries_[i];
        for (;;) {
            const std::size_t first = i * arity + 1;
            if (first >= n) break;
            const std::size_t last = first + arity < n ? first + arity : n;
            std::size_t best = first;
            for (std::size_t c = first + 1; c < last; ++c) {
                if (before(entries_[c], entries_[best])) best = c;
            }
            if (!before(entries_[best], e)) break;
            entries_[i] = entries_[best];
            i = best;
        }
        entries_[i] = e;
    }

    pod_vector<entry> entries_;
};

}  // namespace detail
IOLOOP_NAMESPACE_END

#endif
