#include "replay/frame_store.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>

namespace pydqn {
namespace {

constexpr uint64_t kIndexMask = 0xFFFFFFFFULL;

int32_t log2_exact(int32_t power_of_two) {
  int32_t shift = 0;
  while ((1 << shift) < power_of_two) ++shift;
  TORCH_INTERNAL_ASSERT((1 << shift) == power_of_two, "chunk_frames must be a power of two");
  return shift;
}

}  // namespace

FrameStore::FrameStore(int64_t frame_bytes, int32_t chunk_frames, int32_t max_chunks,
                       bool holds_bytes)
    : frame_stride_(holds_bytes ? (frame_bytes + 7) / 8 * 8 : 0),  // 8-byte aligned (racy_copy.h)
      chunk_frames_(chunk_frames),
      chunk_shift_(log2_exact(chunk_frames)),
      max_chunks_(max_chunks),
      chunks_(new std::atomic<std::byte*>[max_chunks]),
      refcounts_(new std::atomic<int32_t>[max_chunks]),
      next_free_(new std::atomic<int32_t>[max_chunks]) {
  for (int32_t c = 0; c < max_chunks; ++c) {
    chunks_[c].store(nullptr, std::memory_order_relaxed);
    refcounts_[c].store(0, std::memory_order_relaxed);
    next_free_[c].store(0, std::memory_order_relaxed);
  }
}

FrameStore FrameStore::for_buffer(int64_t frame_bytes, int64_t capacity, int64_t frame_stack,
                                  int64_t num_envs, bool holds_bytes) {
  const int32_t max_chunks = max_chunks_for(capacity, frame_stack, num_envs);
  return FrameStore(frame_bytes, chunk_frames_for(capacity, frame_stack, num_envs), max_chunks,
                    holds_bytes);
}

int32_t FrameStore::chunk_frames_for(int64_t capacity, int64_t frame_stack, int64_t num_envs) {
  int32_t smallest = 1;
  while (smallest < frame_stack + 1) smallest *= 2;
  int32_t chunk = 64;
  while (chunk > smallest && static_cast<int64_t>(chunk) * 512 * num_envs > capacity) chunk /= 2;
  return std::max(chunk, smallest);
}

// Live frames are at most (k + 1) per live transition plus (k + 1) per stream that dead
// transitions introduced and live ones still reference; each stream's live frames are one run of
// its allocation order, covering at most two partial chunks, plus the chunk it is filling.
int32_t FrameStore::max_chunks_for(int64_t capacity, int64_t frame_stack, int64_t num_envs) {
  TORCH_CHECK_VALUE(capacity >= 1, "capacity: expected at least 1, got ", capacity);
  TORCH_CHECK_VALUE(num_envs >= 1 && num_envs <= kMaxNumEnvs, "num_envs: expected 1..", kMaxNumEnvs,
                    ", got ", num_envs);
  TORCH_CHECK_VALUE(capacity <= kMaxCapacity, "capacity: ", capacity, " transitions of ",
                    frame_stack + 1, " frames exceed the 2^31 frame ids");
  const int64_t chunk = chunk_frames_for(capacity, frame_stack, num_envs);
  const int64_t max_frames = (capacity + num_envs) * (frame_stack + 1);
  const int64_t chunks = (max_frames + chunk - 1) / chunk + 4 * num_envs + 4;
  TORCH_CHECK_VALUE(chunks * chunk < std::numeric_limits<int32_t>::max(), "capacity: ", capacity,
                    " transitions of ", frame_stack + 1, " frames exceed the 2^31 frame ids");
  return static_cast<int32_t>(chunks);
}

FrameStore::~FrameStore() {
  const int32_t n = allocated_.load();
  for (int32_t c = 0; c < n; ++c) std::free(chunks_[c].load());
}

int32_t FrameStore::acquire_chunk() {
  uint64_t head = free_head_.load(std::memory_order_acquire);
  while ((head & kIndexMask) != 0) {
    const int32_t chunk = static_cast<int32_t>(head & kIndexMask) - 1;
    // A stale link read here is harmless: the tag makes the CAS fail if the head moved.
    const uint64_t next = static_cast<uint32_t>(next_free_[chunk].load(std::memory_order_relaxed));
    const uint64_t popped = (((head >> 32) + 1) << 32) | next;
    if (free_head_.compare_exchange_weak(head, popped, std::memory_order_acquire,
                                         std::memory_order_acquire)) {
      refcounts_[chunk].store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      return chunk;
    }
  }
  // Memory first, then an id: a failure leaves allocated_ untouched, and ids are never handed back
  // (a concurrent allocation may already have taken the next one).
  void* memory = nullptr;
  if (frame_stride_ > 0) {
    memory = std::malloc(static_cast<size_t>(frame_stride_) * chunk_frames_);
    if (memory == nullptr) throw std::bad_alloc();
  }
  int32_t chunk = allocated_.load(std::memory_order_relaxed);
  do {
    if (chunk >= max_chunks_) {
      std::free(memory);
      TORCH_INTERNAL_ASSERT(false, "frame store exceeded its bound of ", max_chunks_,
                            " chunks; this is a bug in pydqn's replay buffer");
    }
  } while (!allocated_.compare_exchange_weak(chunk, chunk + 1, std::memory_order_relaxed));
  refcounts_[chunk].store(1, std::memory_order_relaxed);
  chunks_[chunk].store(static_cast<std::byte*>(memory), std::memory_order_release);
  return chunk;
}

void FrameStore::release(int32_t chunk) {
  const int32_t before = refcounts_[chunk].fetch_sub(1, std::memory_order_acq_rel);
  if (before < 1) {
    // Runs after slots are claimed, where an exception would leave writers waiting forever.
    std::fprintf(stderr, "pydqn: frame chunk %d released more often than retained (a bug)\n",
                 chunk);
    std::abort();
  }
  if (before != 1) return;
  uint64_t head = free_head_.load(std::memory_order_relaxed);
  uint64_t pushed;
  do {
    next_free_[chunk].store(static_cast<int32_t>(head & kIndexMask), std::memory_order_relaxed);
    pushed = (((head >> 32) + 1) << 32) | static_cast<uint64_t>(chunk + 1);
  } while (!free_head_.compare_exchange_weak(head, pushed, std::memory_order_release,
                                             std::memory_order_relaxed));
}

int64_t FrameStore::nbytes() const {
  const int64_t bookkeeping = static_cast<int64_t>(max_chunks_) *
                              (sizeof(std::atomic<std::byte*>) + 2 * sizeof(std::atomic<int32_t>));
  return static_cast<int64_t>(allocated_.load(std::memory_order_relaxed)) * frame_stride_ *
             chunk_frames_ +
         bookkeeping;
}

}  // namespace pydqn
