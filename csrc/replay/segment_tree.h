#pragma once

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>

namespace pydqn {

// A segment tree over `capacity` leaves: every inner node holds Combine of its two children, so the
// root holds Combine over all leaves (prioritized replay keeps one for sums and one for minima).
//
//   node 1                      [ p0+p1+p2+p3 ]
//   nodes 2, 3          [ p0+p1 ]           [ p2+p3 ]
//   leaves 4..7     [ p0 ]    [ p1 ]    [ p2 ]    [ p3 ]      (capacity rounded up to 2^k)
//
// set() is O(log N): it stores the leaf, then recomputes each ancestor from its children and
// publishes it with a compare-and-swap. Concurrent set() calls need no lock: an ancestor written
// from stale children fails its CAS against the later writer's value, or is rewritten by it,
// because every writer recomputes from the children it reads after storing its own leaf; and
// after a successful CAS the writer recomputes once more, since a later writer that found the
// node already equal to its own combination stopped without a CAS to fail. Every access in set()
// is seq_cst: with release stores and acquire loads, two writers of sibling leaves could each
// read the other's old leaf (a store may pass a later load, as on x86), both find the parent
// unchanged and both stop without a CAS, leaving it stale (a min tree over leaves 3 and 3, set to
// 5 and 7, kept 3). In one total order, the writer whose child read comes last sees both new
// children. So once writers stop, every node is exact; while they run, a reader sees each node
// as some recent combination, which the samplers tolerate (they check the leaf they land on).
template <typename Combine>
class SegmentTree {
 public:
  explicit SegmentTree(int64_t capacity)
      : leaves_(round_up(capacity)), nodes_(new std::atomic<double>[2 * leaves_]) {
    for (int64_t i = 0; i < 2 * leaves_; ++i) {
      nodes_[i].store(Combine::kIdentity, std::memory_order_relaxed);
    }
  }

  int64_t leaves() const { return leaves_; }
  double root() const { return nodes_[1].load(std::memory_order_acquire); }
  double get(int64_t index) const {
    return nodes_[leaves_ + index].load(std::memory_order_acquire);
  }

  void set(int64_t index, double value) {
    int64_t node = leaves_ + index;
    nodes_[node].store(value, std::memory_order_seq_cst);
    for (node /= 2; node >= 1; node /= 2) {
      double current = nodes_[node].load(std::memory_order_seq_cst);
      for (;;) {
        const double combined =
            Combine::apply(nodes_[2 * node].load(std::memory_order_seq_cst),
                           nodes_[2 * node + 1].load(std::memory_order_seq_cst));
        if (combined == current) break;
        if (nodes_[node].compare_exchange_weak(current, combined, std::memory_order_seq_cst)) {
          current = combined;  // re-check: see the class comment
        }
      }
    }
  }

  // Sum trees: the leaf where the running sum of leaves passes `mass` (0 <= mass < root()), i.e.
  // the smallest i with p0 + ... + pi > mass. Under concurrent writes the descent may meet a
  // node whose children moved; it then clamps to the last child with mass.
  int64_t find_prefix(double mass) const {
    int64_t node = 1;
    while (node < leaves_) {
      const double left = nodes_[2 * node].load(std::memory_order_acquire);
      if (mass < left || nodes_[2 * node + 1].load(std::memory_order_acquire) <= 0.0) {
        node = 2 * node;
      } else {
        mass -= left;
        node = 2 * node + 1;
      }
    }
    return node - leaves_;
  }

  int64_t nbytes() const { return nbytes_for(leaves_); }
  // What a tree over `capacity` leaves allocates (all of it in the constructor).
  static int64_t nbytes_for(int64_t capacity) {
    return 2 * round_up(capacity) * static_cast<int64_t>(sizeof(double));
  }

 private:
  static int64_t round_up(int64_t capacity) {
    TORCH_CHECK_VALUE(capacity >= 1, "capacity: expected at least 1, got ", capacity);
    int64_t leaves = 1;
    while (leaves < capacity) leaves *= 2;
    return leaves;
  }

  const int64_t leaves_;
  std::unique_ptr<std::atomic<double>[]> nodes_;
};

struct SumOf {
  static constexpr double kIdentity = 0.0;
  static double apply(double a, double b) { return a + b; }
};

struct MinOf {
  static constexpr double kIdentity = std::numeric_limits<double>::infinity();
  static double apply(double a, double b) { return std::min(a, b); }
};

using SumTree = SegmentTree<SumOf>;
using MinTree = SegmentTree<MinOf>;

}  // namespace pydqn
