#include "replay/block_pool.h"

#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <new>

namespace pydqn {

struct BlockPool::Block {
  int64_t bytes;
  void* data;
};

BlockPool::~BlockPool() {
  for (auto& slot : slots_) {
    if (Block* block = slot.load()) {
      std::free(block->data);
      delete block;
    }
  }
}

BlockPool::Block* BlockPool::take(int64_t bytes) {
  for (auto& slot : slots_) {
    // Own the block before reading it: another thread's give() may evict and free what a mere
    // load saw.
    Block* block = slot.exchange(nullptr, std::memory_order_acq_rel);
    if (block == nullptr) continue;
    if (block->bytes == bytes) {
      cached_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
      return block;
    }
    Block* empty = nullptr;
    if (!slot.compare_exchange_strong(empty, block, std::memory_order_acq_rel)) {
      cached_bytes_.fetch_sub(block->bytes, std::memory_order_relaxed);
      std::free(block->data);
      delete block;
    }
  }
  void* data = std::aligned_alloc(64, (static_cast<size_t>(bytes) + 63) / 64 * 64);
  if (data == nullptr) throw std::bad_alloc();
  return new Block{bytes, data};
}

void BlockPool::give(Block* block) {
  cached_bytes_.fetch_add(block->bytes, std::memory_order_relaxed);
  for (auto& slot : slots_) {
    Block* empty = nullptr;
    if (slot.compare_exchange_strong(empty, block, std::memory_order_acq_rel)) return;
  }
  // All slots hold blocks: keep the newest, which matches the batch size now in use.
  Block* evicted = slots_[next_victim_.fetch_add(1, std::memory_order_relaxed) % kSlots].exchange(
      block, std::memory_order_acq_rel);
  if (evicted != nullptr) {
    cached_bytes_.fetch_sub(evicted->bytes, std::memory_order_relaxed);
    std::free(evicted->data);
    delete evicted;
  }
}

std::pair<at::Tensor, at::Tensor> BlockPool::empty_pair(c10::IntArrayRef sizes,
                                                        at::ScalarType dtype) {
  int64_t half = static_cast<int64_t>(c10::elementSize(dtype));
  for (int64_t size : sizes) {
    TORCH_CHECK_VALUE(!__builtin_mul_overflow(half, size, &half) && half <= (INT64_MAX / 2),
                      "batch_size: a batch of ", sizes[0], " observations is too large");
  }
  // Held by both tensors' deleters; gives the block back when the second one goes.
  struct Lease {
    Lease(std::shared_ptr<BlockPool> pool, Block* block) : pool(std::move(pool)), block(block) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool->give(block); }
    std::shared_ptr<BlockPool> pool;
    Block* block;
  };
  auto lease = std::make_shared<Lease>(shared_from_this(), take(2 * half));
  auto* base = static_cast<std::byte*>(lease->block->data);
  const auto options = at::TensorOptions().dtype(dtype);
  return {at::from_blob(
              base, sizes, [lease](void*) {}, options),
          at::from_blob(base + half, sizes, [lease](void*) {}, options)};
}

}  // namespace pydqn
