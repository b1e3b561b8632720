#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>

#include "replay/segment_tree.h"

namespace pydqn {

// Proportional prioritization (Schaul et al. 2016): transition i is drawn with probability
// p_i^alpha / sum_j p_j^alpha. Leaves hold p^alpha, in a sum tree (to draw) and a min tree (to
// normalize importance-sampling weights by the largest any stored transition could get). A slot
// that cannot be sampled (never written, being rewritten, n-step window still open) holds 0 in
// the sum tree and +inf in the min tree. Callers own the slot while they set it (see
// TransitionRing::hold), so two writers never race on one leaf.
class Priorities {
 public:
  Priorities(int64_t capacity, double alpha) : alpha_(alpha), sums_(capacity), minima_(capacity) {}

  double alpha() const { return alpha_; }
  // The running maximum of the priorities given, which new transitions get (1 until one is given).
  double max_priority() const { return max_priority_.load(std::memory_order_acquire); }

  // The maximum is raised before the leaf is stored (a saved state reads leaves, then the maximum).
  void set(int64_t slot, double priority) {
    double seen = max_priority_.load(std::memory_order_relaxed);
    while (priority > seen &&
           !max_priority_.compare_exchange_weak(seen, priority, std::memory_order_acq_rel)) {
    }
    set_leaf(slot, std::pow(priority, alpha_));
  }
  void set_max(int64_t slot) { set_leaf(slot, std::pow(max_priority(), alpha_)); }
  void clear(int64_t slot) {
    sums_.set(slot, 0.0);
    minima_.set(slot, std::numeric_limits<double>::infinity());
  }
  // Restoring a saved buffer: a leaf as leaf() returned it, and the running maximum.
  void set_leaf(int64_t slot, double leaf) {
    sums_.set(slot, leaf);
    minima_.set(slot, leaf);
  }
  void restore_max_priority(double priority) {
    max_priority_.store(priority, std::memory_order_relaxed);
  }

  double leaf(int64_t slot) const { return sums_.get(slot); }
  double total() const { return sums_.root(); }
  double min_leaf() const { return minima_.root(); }
  // The largest leaf update_priorities accepts: the sum of all leaves stays finite.
  double max_leaf() const {
    return std::numeric_limits<double>::max() / static_cast<double>(2 * sums_.leaves());
  }
  // The slot where the running sum of leaves passes `mass`, 0 <= mass < total().
  int64_t find(double mass) const { return sums_.find_prefix(mass); }

  int64_t nbytes() const { return sums_.nbytes() + minima_.nbytes(); }
  static int64_t nbytes_for(int64_t capacity) {
    return SumTree::nbytes_for(capacity) + MinTree::nbytes_for(capacity);
  }

 private:
  const double alpha_;
  std::atomic<double> max_priority_{1.0};
  SumTree sums_;
  MinTree minima_;
};

}  // namespace pydqn
