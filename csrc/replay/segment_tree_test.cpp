#include "replay/segment_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

namespace pydqn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The smallest i with p0 + ... + pi > mass: the linear scan find_prefix must agree with.
int64_t linear_prefix(const std::vector<double>& leaves, double mass) {
  double running = 0.0;
  for (size_t i = 0; i < leaves.size(); ++i) {
    running += leaves[i];
    if (running > mass) return static_cast<int64_t>(i);
  }
  return -1;
}

// Every inner node equals Combine of its children: what "exact once writers stop" means.
template <typename Tree, typename Combine>
void expect_consistent(const Tree& tree, Combine combine, const std::vector<double>& leaves) {
  const int64_t n = tree.leaves();
  std::vector<double> level(n);
  for (int64_t i = 0; i < n; ++i) {
    level[i] = tree.get(i);
    ASSERT_EQ(level[i], leaves[i]) << "leaf " << i;
  }
  // Rebuild the tree bottom-up from the leaves alone; the root must match it exactly (integer
  // valued leaves make sums exact whatever the order of addition).
  while (level.size() > 1) {
    std::vector<double> up(level.size() / 2);
    for (size_t i = 0; i < up.size(); ++i) up[i] = combine(level[2 * i], level[2 * i + 1]);
    level.swap(up);
  }
  EXPECT_EQ(tree.root(), level[0]);
  // Inner nodes of a sum tree steer find_prefix: a stale one sends some mass to the wrong leaf.
  if constexpr (std::is_same_v<Tree, SumTree>) {
    for (double mass = 0.0; mass < level[0]; mass += 0.5) {
      ASSERT_EQ(tree.find_prefix(mass), linear_prefix(leaves, mass)) << "mass " << mass;
    }
  }
}

TEST(SegmentTree, RoundsCapacityUpToAPowerOfTwo) {
  EXPECT_EQ(SumTree(1).leaves(), 1);
  EXPECT_EQ(SumTree(5).leaves(), 8);
  EXPECT_EQ(SumTree(8).leaves(), 8);
  EXPECT_EQ(MinTree(9).leaves(), 16);
  EXPECT_EQ(SumTree(9).nbytes(), 2 * 16 * static_cast<int64_t>(sizeof(double)));
  EXPECT_THROW(SumTree(0), c10::ValueError);
}

TEST(SegmentTree, EmptyTreesHoldTheIdentity) {
  SumTree sums(6);
  MinTree minima(6);
  EXPECT_EQ(sums.root(), 0.0);
  EXPECT_EQ(minima.root(), kInf);
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(sums.get(i), 0.0);
    EXPECT_EQ(minima.get(i), kInf);
  }
}

TEST(SegmentTree, RootIsTheSumAndMinimumOfTheLeavesAfterOverwrites) {
  SumTree sums(13);
  MinTree minima(13);
  std::vector<double> sum_model(16, 0.0), min_model(16, kInf);
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> slot(0, 12), value(0, 1000);
  for (int step = 0; step < 500; ++step) {
    const int i = slot(gen);
    const double v = value(gen) / 8.0;  // multiples of 1/8: every partial sum is exact
    sums.set(i, v);
    minima.set(i, v);
    sum_model[i] = v;
    min_model[i] = v;
    ASSERT_EQ(sums.root(), std::accumulate(sum_model.begin(), sum_model.end(), 0.0));
    ASSERT_EQ(minima.root(), *std::min_element(min_model.begin(), min_model.end()));
  }
  expect_consistent(sums, SumOf::apply, sum_model);
  expect_consistent(minima, MinOf::apply, min_model);
}

TEST(SegmentTree, FindPrefixReturnsTheFirstLeafWhoseRunningSumExceedsTheMass) {
  // Zeros inside, at the ends and as a whole right subtree, where a descent could go wrong.
  const std::vector<double> leaves = {0, 3, 0, 0, 1, 2, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0};
  SumTree tree(16);
  for (size_t i = 0; i < leaves.size(); ++i) tree.set(static_cast<int64_t>(i), leaves[i]);
  ASSERT_EQ(tree.root(), 12.0);
  // Every quarter step in [0, total): exact prefix boundaries included (mass == 3 lands past 1).
  for (double mass = 0.0; mass < 12.0; mass += 0.25) {
    const int64_t found = tree.find_prefix(mass);
    EXPECT_EQ(found, linear_prefix(leaves, mass)) << "mass " << mass;
    EXPECT_GT(leaves[found], 0.0) << "mass " << mass << " landed on an empty leaf";
  }
  EXPECT_EQ(tree.find_prefix(2.999), 1);
  EXPECT_EQ(tree.find_prefix(3.0), 4);
  EXPECT_EQ(tree.find_prefix(11.999), 8);
}

TEST(SegmentTree, FindPrefixMatchesALinearScanOnRandomTrees) {
  std::mt19937 gen(11);
  for (int trial = 0; trial < 50; ++trial) {
    const int capacity = 1 + trial % 17;
    SumTree tree(capacity);
    std::vector<double> leaves(capacity);
    std::uniform_int_distribution<int> value(0, 4);
    for (int i = 0; i < capacity; ++i) tree.set(i, leaves[i] = value(gen));
    const double total = std::accumulate(leaves.begin(), leaves.end(), 0.0);
    if (total == 0.0) continue;
    for (double mass = 0.0; mass < total; mass += 0.5) {
      ASSERT_EQ(tree.find_prefix(mass), linear_prefix(leaves, mass))
          << "capacity " << capacity << " mass " << mass;
    }
  }
}

// Threads own interleaved leaves, so siblings and every ancestor are updated concurrently by
// different threads. Small integer values make exact sums, and coincidences where a node's new
// value equals its old one, frequent. Whatever the interleaving, once all set() calls have
// returned each node must equal Combine of its children.
template <typename Tree, typename Combine>
void concurrent_sets_end_exact(Combine combine, int rounds) {
  constexpr int kThreads = 4;
  constexpr int kLeaves = 16;
  for (int round = 0; round < rounds; ++round) {
    Tree tree(kLeaves);
    std::vector<double> last(kLeaves);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 gen(1000 * round + t);
        std::uniform_int_distribution<int> value(0, 3);
        ready.fetch_add(1);
        while (ready.load() < kThreads) {
        }
        for (int step = 0; step < 2000; ++step) {
          const int leaf = t + kThreads * (step % (kLeaves / kThreads));
          const double v = value(gen);
          tree.set(leaf, v);
          last[leaf] = v;  // this thread's own leaf; read after join
        }
      });
    }
    for (auto& thread : threads) thread.join();
    expect_consistent(tree, combine, last);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "round " << round;
      return;
    }
  }
}

// A sum whose apply() can stop one thread between reading a node's children and publishing
// their sum, so a test can interleave a second set() exactly there.
struct GatedSum {
  static constexpr double kIdentity = 0.0;
  static inline std::atomic<std::thread::id> gated{};
  static inline std::atomic<int> state{0};  // 0 idle, 1 the gated thread waits, 2 go on
  static double apply(double a, double b) {
    if (std::this_thread::get_id() == gated.load()) {
      gated.store(std::thread::id());  // only its first apply() waits
      state.store(1);
      while (state.load() != 2) std::this_thread::yield();
    }
    return a + b;
  }
};

// Writer A sets leaf 0 and reads the children (2, 1) but has not yet published 3; writer B then
// sets leaf 1 to 0 and finds the root already at 2 + 0 = 2, the value it wants, so it stops. When
// A publishes the 3 it computed from B's old leaf, only A is left to correct it, by recomputing
// after its CAS (without that re-check the root stayed at 3 over leaves 2 and 0).
TEST(SegmentTreeConcurrency, ASetThatFindsTheParentUpToDateSurvivesASiblingsStaleWrite) {
  SegmentTree<GatedSum> tree(2);
  tree.set(0, 1.0);
  tree.set(1, 1.0);
  ASSERT_EQ(tree.root(), 2.0);
  GatedSum::state.store(0);
  std::atomic<bool> start{false};
  std::thread a([&] {
    while (!start.load()) std::this_thread::yield();
    tree.set(0, 2.0);
  });
  GatedSum::gated.store(a.get_id());
  start.store(true);
  while (GatedSum::state.load() != 1) std::this_thread::yield();
  tree.set(1, 0.0);  // writer B, on this thread, while A waits
  GatedSum::state.store(2);
  a.join();
  EXPECT_EQ(tree.root(), tree.get(0) + tree.get(1));
  EXPECT_EQ(tree.root(), 2.0);
}

TEST(SegmentTreeConcurrency, ConcurrentSetsOnDistinctLeavesEndWithExactSums) {
  concurrent_sets_end_exact<SumTree>(SumOf::apply, 50);
}

TEST(SegmentTreeConcurrency, ConcurrentSetsOnDistinctLeavesEndWithExactMinima) {
  concurrent_sets_end_exact<MinTree>(MinOf::apply, 50);
}

}  // namespace
}  // namespace pydqn
