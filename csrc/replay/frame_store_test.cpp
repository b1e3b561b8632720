#include "replay/frame_store.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

namespace pydqn {
namespace {

TEST(FrameStore, FreshChunksAreNumberedInOrder) {
  FrameStore store(10, 4, 3);
  EXPECT_EQ(store.acquire_chunk(), 0);
  EXPECT_EQ(store.acquire_chunk(), 1);
  EXPECT_EQ(store.acquire_chunk(), 2);
}

TEST(FrameStore, FrameIdsSplitIntoChunkAndOffset) {
  FrameStore store(10, 8, 4);
  EXPECT_EQ(store.chunk_shift(), 3);
  EXPECT_EQ(store.chunk_of(8 * 3 + 5), 3);
  EXPECT_EQ(store.offset_in_chunk(8 * 3 + 5), 5);
  EXPECT_EQ(store.chunk_of(7), 0);
  EXPECT_EQ(store.offset_in_chunk(7), 7);
}

TEST(FrameStore, FramesOfAChunkLieAtEightByteAlignedStrides) {
  FrameStore store(13, 4, 2);  // 13 bytes pad to a 16-byte stride
  const int32_t c0 = store.acquire_chunk(), c1 = store.acquire_chunk();
  std::byte* base0 = store.frame(c0 * 4);
  for (int32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(store.frame(c0 * 4 + i) - base0, 16 * i);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(store.frame(c1 * 4 + i)) % 8, 0u);
  }
  // Every frame is writable over its full size without touching its neighbours.
  for (int32_t id = 0; id < 8; ++id) std::memset(store.frame(id), id + 1, 13);
  for (int32_t id = 0; id < 8; ++id) {
    EXPECT_EQ(static_cast<int>(store.frame(id)[0]), id + 1);
    EXPECT_EQ(static_cast<int>(store.frame(id)[12]), id + 1);
  }
}

TEST(FrameStore, AChunkIsRecycledOnlyWhenItsLastReferenceGoes) {
  FrameStore store(8, 2, 3);
  const int32_t a = store.acquire_chunk();
  std::byte* memory = store.frame(a * 2);
  store.retain(a);   // two references
  store.release(a);  // one left: still in use
  const int32_t b = store.acquire_chunk();
  EXPECT_NE(b, a);
  store.release(a);  // none left: back on the free list
  EXPECT_EQ(store.acquire_chunk(), a);
  EXPECT_EQ(store.frame(a * 2), memory) << "a recycled chunk moved";
}

TEST(FrameStore, TheFreeListHandsOutTheLastReleasedChunkFirst) {
  FrameStore store(8, 2, 4);
  for (int i = 0; i < 4; ++i) store.acquire_chunk();
  store.release(1);
  store.release(3);
  store.release(0);
  EXPECT_EQ(store.acquire_chunk(), 0);
  EXPECT_EQ(store.acquire_chunk(), 3);
  EXPECT_EQ(store.acquire_chunk(), 1);
  EXPECT_THROW(store.acquire_chunk(), c10::Error) << "all four chunks are in use";
}

TEST(FrameStore, ExceedingMaxChunksThrowsAndLeavesTheStoreUsable) {
  FrameStore store(8, 2, 2);
  store.acquire_chunk();
  store.acquire_chunk();
  EXPECT_THROW(store.acquire_chunk(), c10::Error);
  store.release(1);
  EXPECT_EQ(store.acquire_chunk(), 1);
}

TEST(FrameStoreDeathTest, ReleasingMoreThanRetainedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  FrameStore store(8, 2, 2);
  const int32_t chunk = store.acquire_chunk();
  store.release(chunk);
  EXPECT_DEATH(store.release(chunk), "released more often than retained");
}

TEST(FrameStore, ForEachChunkVisitsEachDistinctChunkOnceInOrderOfFirstUse) {
  FrameStore store(8, 4, 8);
  // Chunks 2, 2, 0, 2, 5, 0 (frame id / 4).
  const int32_t ids[] = {9, 10, 1, 11, 20, 3};
  std::vector<int32_t> visited;
  store.for_each_chunk(ids, 6, [&](int32_t chunk) { visited.push_back(chunk); });
  EXPECT_EQ(visited, (std::vector<int32_t>{2, 0, 5}));
  // A full stack of kMaxFrameStack + 1 frames, all distinct chunks.
  FrameStore wide(8, 1, kMaxFrameStack + 1);
  std::vector<int32_t> all(kMaxFrameStack + 1);
  for (int32_t i = 0; i <= kMaxFrameStack; ++i) all[i] = kMaxFrameStack - i;
  visited.clear();
  wide.for_each_chunk(all.data(), kMaxFrameStack + 1, [&](int32_t c) { visited.push_back(c); });
  EXPECT_EQ(visited, all);
}

TEST(FrameStore, NbytesCountsAllocatedChunksAndBookkeeping) {
  // Bookkeeping: per chunk one pointer and two int32 counters.
  const int64_t bookkeeping = 5 * (sizeof(void*) + 2 * sizeof(int32_t));
  FrameStore store(13, 4, 5);
  EXPECT_EQ(store.nbytes(), bookkeeping);
  store.acquire_chunk();
  store.acquire_chunk();
  EXPECT_EQ(store.nbytes(), 2 * 4 * 16 + bookkeeping);
  FrameStore ids_only(13, 4, 5, /*holds_bytes=*/false);
  EXPECT_EQ(ids_only.acquire_chunk(), 0);
  EXPECT_EQ(ids_only.acquire_chunk(), 1);
  EXPECT_EQ(ids_only.nbytes(), bookkeeping);
}

// GCC expands a memset of constant size inline, after its TSan pass: those stores are invisible to
// TSan. Called through a volatile pointer, memset is libc's, which TSan intercepts.
void* (*volatile visible_memset)(void*, int, size_t) = std::memset;

// Threads take chunks, fill them with their own stamp, check it after yielding, and give them
// back: a chunk handed to two threads at once (a free-list race, ABA) shows up as a foreign stamp
// or as two owners, and a chunk lost from the free list as an allocation beyond max_chunks
// (each thread holds at most two chunks, so 2 * kThreads chunks must always suffice).
TEST(FrameStoreConcurrency, ConcurrentAcquireAndReleaseNeverShareOrLoseAChunk) {
  constexpr int kThreads = 4, kChunkFrames = 4, kFrameBytes = 24, kMaxChunks = 2 * kThreads;
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kRounds = 5000;
#else
  constexpr int kRounds = 50000;
#endif
  FrameStore store(kFrameBytes, kChunkFrames, kMaxChunks);
  std::unique_ptr<std::atomic<int>[]> owner(new std::atomic<int>[kMaxChunks]);
  for (int c = 0; c < kMaxChunks; ++c) owner[c].store(-1);
  std::unique_ptr<std::atomic<int>[]> last_owner(new std::atomic<int>[kMaxChunks]);
  for (int c = 0; c < kMaxChunks; ++c) last_owner[c].store(-1);
  std::atomic<int64_t> shared{0}, foreign{0}, overflow{0}, handoffs{0};
  auto fill = [&](int32_t chunk, unsigned char stamp) {
    for (int f = 0; f < kChunkFrames; ++f) {
      visible_memset(store.frame(chunk * kChunkFrames + f), stamp, kFrameBytes);
    }
  };
  auto intact = [&](int32_t chunk, unsigned char stamp) {
    for (int f = 0; f < kChunkFrames; ++f) {
      const std::byte* frame = store.frame(chunk * kChunkFrames + f);
      for (int i = 0; i < kFrameBytes; ++i) {
        if (frame[i] != std::byte{stamp}) return false;
      }
    }
    return true;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        int32_t held[2];
        try {
          held[0] = store.acquire_chunk();
          held[1] = store.acquire_chunk();
        } catch (const c10::Error&) {
          overflow.fetch_add(1);
          return;
        }
        const auto stamp = static_cast<unsigned char>(t * 50 + round % 50);
        for (int32_t chunk : held) {
          int none = -1;
          // Relaxed: a read-modify-write still sees the latest owner, but orders nothing, so
          // TSan checks that the free list alone orders one owner's frame bytes before the next's.
          if (!owner[chunk].compare_exchange_strong(none, t, std::memory_order_relaxed)) {
            shared.fetch_add(1);
          }
          const int previous = last_owner[chunk].exchange(t, std::memory_order_relaxed);
          if (previous != -1 && previous != t) handoffs.fetch_add(1, std::memory_order_relaxed);
          fill(chunk, stamp);
          store.retain(chunk);  // a second reference, as a transition adds to a stream's pin
        }
        std::this_thread::yield();
        for (int32_t chunk : held) {
          if (!intact(chunk, stamp)) foreign.fetch_add(1);
          store.release(chunk);
          owner[chunk].store(-1, std::memory_order_relaxed);
          store.release(chunk);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::printf("  chunks passed between threads %lld times\n",
              static_cast<long long>(handoffs.load()));
  EXPECT_EQ(shared.load(), 0) << "a chunk was handed to two threads at once";
  EXPECT_EQ(foreign.load(), 0) << "a chunk's frames were overwritten while it was held";
  EXPECT_EQ(overflow.load(), 0) << "chunks were lost from the free list";
  // Quiescent: the free list holds every allocated chunk exactly once, so as many acquires as
  // chunks were allocated return each of them and allocate nothing (nbytes counts allocations).
  const int64_t bookkeeping = kMaxChunks * (sizeof(void*) + 2 * sizeof(int32_t));
  const int64_t chunk_bytes = kChunkFrames * kFrameBytes;  // 24 is 8-byte aligned already
  const int64_t allocated = (store.nbytes() - bookkeeping) / chunk_bytes;
  ASSERT_GE(allocated, 2);
  std::set<int32_t> chunks;
  for (int64_t c = 0; c < allocated; ++c) chunks.insert(store.acquire_chunk());
  EXPECT_EQ(static_cast<int64_t>(chunks.size()), allocated);
  EXPECT_EQ(*chunks.rbegin(), allocated - 1);
  EXPECT_EQ(store.nbytes(), bookkeeping + allocated * chunk_bytes);
}

}  // namespace
}  // namespace pydqn
