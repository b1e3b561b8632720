#include "replay/counter_rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "replay/mirror_kernels.h"

namespace pydqn {
namespace {

// SplitMix64 as Vigna's reference writes it: a state stepped by the golden gamma, then mixed.
class ReferenceSplitMix64 {
 public:
  explicit ReferenceSplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

TEST(CounterRng, DrawIIsTheIthOutputOfSplitMix64) {
  EXPECT_EQ(CounterRng::draw(0, 0), 0xE220A8397B1DCDAFULL);  // the published first output
  for (uint64_t seed : {0ULL, 1ULL, 42ULL, 0xDEADBEEFCAFEF00DULL}) {
    ReferenceSplitMix64 reference(seed);
    CounterRng rng(seed);
    for (uint64_t i = 0; i < 1000; ++i)
      ASSERT_EQ(rng.draw(i), reference.next()) << seed << " " << i;
  }
}

TEST(CounterRng, ARedrawIsTheFirstDrawOfTheValueAsSeed) {
  for (uint64_t r : {0ULL, 7ULL, ~0ULL}) EXPECT_EQ(CounterRng::redraw(r), CounterRng::draw(r, 0));
}

TEST(CounterRng, ReservationsAreConsecutiveAndRestoreContinuesTheCount) {
  CounterRng rng(5);
  EXPECT_EQ(rng.reserve(3), 0u);
  EXPECT_EQ(rng.reserve(10), 3u);
  EXPECT_EQ(rng.draws(), 13u);
  CounterRng copy(0);
  copy.restore(rng.seed(), rng.draws());
  EXPECT_EQ(copy.reserve(1), 13u);
  EXPECT_EQ(copy.draw(13), rng.draw(13));
}

TEST(CounterRng, UnitAndBelowMapTheExtremesExactly) {
  EXPECT_EQ(CounterRng::unit(0), 0.0);
  EXPECT_EQ(CounterRng::unit(~0ULL), 1.0 - 0x1.0p-53);
  EXPECT_EQ(CounterRng::unit(1ULL << 63), 0.5);
  EXPECT_EQ(CounterRng::below(0, 10), 0u);
  EXPECT_EQ(CounterRng::below(~0ULL, 10), 9u);
  EXPECT_EQ(CounterRng::below(1ULL << 63, 10), 5u);
  EXPECT_EQ(CounterRng::below(~0ULL, 1), 0u);
}

TEST(CounterRngConcurrency, ConcurrentReservationsPartitionTheDraws) {
  constexpr int kThreads = 4, kReservations = 20000;
  CounterRng rng(1);
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> ranges(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kReservations; ++i) {
        const uint64_t count = 1 + (i * 7 + t) % 5;
        ranges[t].emplace_back(rng.reserve(count), count);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::vector<std::pair<uint64_t, uint64_t>> all;
  for (const auto& r : ranges) all.insert(all.end(), r.begin(), r.end());
  std::sort(all.begin(), all.end());
  uint64_t next = 0;
  for (const auto& [first, count] : all) {
    ASSERT_EQ(first, next) << "a gap or an overlap between reservations";
    next += count;
  }
  EXPECT_EQ(rng.draws(), next);
}

// The sampling kernels' draw counter is the host generator's uint64 in an int64: it passes 2^63
// (where int64 arithmetic overflows; UBSan, in the address kind, flags that) and wraps at 2^64
// exactly as CounterRng's does.
TEST(CounterRng, TheKernelsDrawCounterContinuesTheHostGeneratorsPastEveryBound) {
  constexpr uint64_t kSeed = std::numeric_limits<uint64_t>::max();
  for (const uint64_t position :
       {(uint64_t{1} << 63) - 2, std::numeric_limits<uint64_t>::max() - 1}) {
    int64_t transition_id[4] = {0, 1, 2, 3};
    // 4 stored; read at run time (as the kernels read device memory), so that the compiler
    // cannot fold the arithmetic away from UBSan's checks.
    volatile uint64_t at = position;
    int64_t counters[3] = {4, static_cast<int64_t>(at), static_cast<int64_t>(kSeed)};
    MirrorTables tables{};
    tables.transition_id = transition_id;
    tables.counters = counters;
    CounterRng host(kSeed);
    host.restore(kSeed, position);
    const uint64_t first = host.reserve(5);
    for (int64_t row = 0; row < 5; ++row) {
      EXPECT_EQ(tables.draw_slot(row),
                static_cast<int64_t>(CounterRng::below(host.draw(first + row), 4)));
    }
    EXPECT_EQ(static_cast<uint64_t>(MirrorTables::advanced_draws(counters[1], 5)), host.draws());
  }
}

}  // namespace
}  // namespace pydqn
