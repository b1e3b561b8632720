#pragma once

#include <atomic>
#include <cstdint>

#ifdef __CUDACC__
#define PYDQN_HOST_DEVICE __host__ __device__
#else
#define PYDQN_HOST_DEVICE
#endif

namespace pydqn {

// A counter-based generator: draw i is splitmix64(seed, i). Concurrent samplers each reserve a
// block of draws with one fetch_add, so no lock guards the state, and a single-threaded sequence of
// calls is reproducible from the seed alone.
class CounterRng {
 public:
  explicit CounterRng(uint64_t seed) : seed_(seed) {}

  // Reserves `count` consecutive draws and returns the index of the first.
  uint64_t reserve(uint64_t count) { return counter_.fetch_add(count, std::memory_order_relaxed); }

  uint64_t draw(uint64_t index) const { return draw(seed_, index); }
  // The same draw, for the sampling kernels, which read seed and counter from tensors.
  PYDQN_HOST_DEVICE static uint64_t draw(uint64_t seed, uint64_t index) {
    return mix(seed + (index + 1) * 0x9E3779B97F4A7C15ULL);
  }
  // A fresh value derived from a draw, for redrawing a row deterministically (a row whose slot
  // holds no sampleable transition retries with redraw(random), on every device alike).
  PYDQN_HOST_DEVICE static uint64_t redraw(uint64_t random) {
    return mix(random + 0x9E3779B97F4A7C15ULL);
  }

  uint64_t seed() const { return seed_; }
  uint64_t draws() const { return counter_.load(std::memory_order_relaxed); }
  // Continues a saved generator: the next draw is draw `draws` of `seed`.
  void restore(uint64_t seed, uint64_t draws) {
    seed_ = seed;
    counter_.store(draws, std::memory_order_relaxed);
  }

  // Uniform double in [0, 1), from the top 53 bits.
  PYDQN_HOST_DEVICE static double unit(uint64_t random) {
    return static_cast<double>(random >> 11) * 0x1.0p-53;
  }

  // Uniform integer in [0, bound) by Lemire's multiply-shift; the bias is below bound / 2^64.
  PYDQN_HOST_DEVICE static uint64_t below(uint64_t random, uint64_t bound) {
#ifdef __CUDA_ARCH__
    return __umul64hi(random, bound);
#else
    return static_cast<uint64_t>((static_cast<unsigned __int128>(random) * bound) >> 64);
#endif
  }

 private:
  PYDQN_HOST_DEVICE static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  uint64_t seed_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace pydqn
