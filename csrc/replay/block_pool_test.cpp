#include "replay/block_pool.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace pydqn {
namespace {

using Pair = std::pair<at::Tensor, at::Tensor>;

uintptr_t address(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); }

void drop(Pair& pair) {
  pair.first.reset();
  pair.second.reset();
}

TEST(BlockPool, APairIsTheTwoHalvesOfOneAlignedBlock) {
  auto pool = std::make_shared<BlockPool>();
  auto [obs, next_obs] = pool->empty_pair({3, 5}, at::kFloat);
  EXPECT_EQ(obs.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(next_obs.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(obs.scalar_type(), at::kFloat);
  EXPECT_EQ(next_obs.scalar_type(), at::kFloat);
  EXPECT_EQ(address(next_obs) - address(obs), 3u * 5u * sizeof(float));
  EXPECT_EQ(address(obs) % 64, 0u);
  // Both halves are usable memory, and writing one leaves the other alone.
  std::memset(obs.data_ptr(), 0x11, obs.nbytes());
  std::memset(next_obs.data_ptr(), 0x22, next_obs.nbytes());
  EXPECT_EQ(static_cast<const unsigned char*>(obs.data_ptr())[obs.nbytes() - 1], 0x11);
  EXPECT_EQ(static_cast<const unsigned char*>(next_obs.data_ptr())[0], 0x22);
}

TEST(BlockPool, TheBlockReturnsWhenBothTensorsAreDroppedAndIsReusedForTheSameSize) {
  auto pool = std::make_shared<BlockPool>();
  Pair pair = pool->empty_pair({4, 8}, at::kByte);
  const uintptr_t block = address(pair.first);
  pair.first.reset();
  EXPECT_EQ(pool->cached_bytes(), 0) << "returned while next_obs still uses it";
  pair.second.reset();
  EXPECT_EQ(pool->cached_bytes(), 64);
  auto again = pool->empty_pair({4, 8}, at::kByte);
  EXPECT_EQ(address(again.first), block);
  EXPECT_EQ(pool->cached_bytes(), 0);
}

TEST(BlockPool, ADifferentSizeGetsAFreshBlockAndLeavesTheCachedOne) {
  auto pool = std::make_shared<BlockPool>();
  uintptr_t big;
  {
    auto pair = pool->empty_pair({100}, at::kByte);
    big = address(pair.first);
  }
  ASSERT_EQ(pool->cached_bytes(), 200);
  {
    auto small = pool->empty_pair({8}, at::kByte);
    EXPECT_EQ(pool->cached_bytes(), 200) << "the mismatched block was dropped";
  }
  EXPECT_EQ(pool->cached_bytes(), 216);
  auto pair = pool->empty_pair({100}, at::kByte);
  EXPECT_EQ(address(pair.first), big);
  EXPECT_EQ(pool->cached_bytes(), 16);
}

TEST(BlockPool, AFullPoolEvictsAnOlderBlockToKeepTheNewest) {
  auto pool = std::make_shared<BlockPool>();
  Pair a = pool->empty_pair({10}, at::kByte);  // 20-byte block
  Pair b = pool->empty_pair({20}, at::kByte);  // 40
  Pair c = pool->empty_pair({40}, at::kByte);  // 80
  drop(a);
  drop(b);
  EXPECT_EQ(pool->cached_bytes(), 60);
  drop(c);  // two slots: one of a and b goes, c stays
  const int64_t cached = pool->cached_bytes();
  EXPECT_TRUE(cached == 80 + 20 || cached == 80 + 40) << cached;
  auto again = pool->empty_pair({40}, at::kByte);
  EXPECT_EQ(pool->cached_bytes(), cached - 80) << "the newest block was not kept";
}

TEST(BlockPool, LentTensorsOutliveThePool) {
  auto pool = std::make_shared<BlockPool>();
  auto [obs, next_obs] = pool->empty_pair({1024}, at::kInt);
  pool.reset();  // the buffer is gone; the batch's deleters hold the pool
  std::memset(obs.data_ptr(), 0, obs.nbytes());
  std::memset(next_obs.data_ptr(), 1, next_obs.nbytes());
  EXPECT_EQ(static_cast<const int8_t*>(next_obs.data_ptr())[4095], 1);
}

TEST(BlockPool, ABatchTooLargeToAddressIsAValueError) {
  auto pool = std::make_shared<BlockPool>();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_THROW(pool->empty_pair({kMax / 2 + 1}, at::kByte), c10::ValueError);  // 2 halves overflow
  EXPECT_THROW(pool->empty_pair({kMax / 4, 8}, at::kByte), c10::ValueError);   // sizes overflow
  EXPECT_THROW(pool->empty_pair({kMax / 8}, at::kDouble), c10::ValueError);    // bytes overflow
  // Representable but beyond memory: the allocation itself fails.
  EXPECT_THROW(pool->empty_pair({kMax / 4}, at::kByte), std::bad_alloc);
  EXPECT_EQ(pool->cached_bytes(), 0);
}

// Threads take pairs of two sizes, stamp them and hand them through a mailbox to whichever
// thread comes next, which checks the stamps and drops them: blocks return on other threads
// while new ones are taken. A block lent twice at once shows up as a foreign stamp.
TEST(BlockPoolConcurrency, BlocksReturnedOnOtherThreadsAreNeverLentTwice) {
  constexpr int kThreads = 4;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kRounds = 2000;
#else
  constexpr int kRounds = 20000;
#endif
  const int64_t sizes[] = {64, 4096};
  auto pool = std::make_shared<BlockPool>();
  struct Stamped {
    Pair pair;
    unsigned char stamp;
  };
  std::mutex mailbox_mutex;
  std::optional<Stamped> mailbox;
  std::atomic<int64_t> foreign{0};
  auto intact = [](const Stamped& s) {
    const auto* obs = static_cast<const unsigned char*>(s.pair.first.data_ptr());
    const auto* next = static_cast<const unsigned char*>(s.pair.second.data_ptr());
    const size_t n = s.pair.first.nbytes();
    for (size_t i = 0; i < n; ++i) {
      if (obs[i] != s.stamp || next[i] != static_cast<unsigned char>(s.stamp + 1)) return false;
    }
    return true;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        Stamped mine{pool->empty_pair({sizes[(t + round) % 2]}, at::kByte),
                     static_cast<unsigned char>(2 * (t * 31 + round))};
        std::memset(mine.pair.first.data_ptr(), mine.stamp, mine.pair.first.nbytes());
        std::memset(mine.pair.second.data_ptr(), mine.stamp + 1, mine.pair.second.nbytes());
        std::this_thread::yield();
        if (!intact(mine)) foreign.fetch_add(1);
        std::optional<Stamped> theirs;
        {
          std::lock_guard<std::mutex> lock(mailbox_mutex);
          theirs.swap(mailbox);
          mailbox.emplace(std::move(mine));
        }
        if (theirs && !intact(*theirs)) foreign.fetch_add(1);
      }  // theirs dropped here, on this thread
    });
  }
  for (auto& thread : threads) thread.join();
  mailbox.reset();
  EXPECT_EQ(foreign.load(), 0) << "a block was lent to two batches at once";
  // All returned: the pool keeps one or two blocks of the two sizes (128 or 8192 bytes each).
  const std::set<int64_t> possible = {128, 8192, 2 * 128, 2 * 8192, 128 + 8192};
  EXPECT_EQ(possible.count(pool->cached_bytes()), 1u) << pool->cached_bytes();
}

}  // namespace
}  // namespace pydqn
