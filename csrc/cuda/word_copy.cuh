#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace pydqn {

// The block's threads copy `bytes` (a multiple of sizeof(Word)) from `source` to `target`.
template <typename Word>
__device__ void copy_words(std::byte* target, const std::byte* source, int64_t bytes) {
  const int64_t words = bytes / static_cast<int64_t>(sizeof(Word));
  for (int64_t w = threadIdx.x; w < words; w += blockDim.x) {
    reinterpret_cast<Word*>(target)[w] = reinterpret_cast<const Word*>(source)[w];
  }
}

// Calls launch(Word{}) with the widest word (16, 4 or 1 bytes) that divides `frame_bytes` and
// every base address in `bases`: copies of whole frames between offsets that are multiples of
// frame_bytes from those bases then stay aligned.
template <typename Launch>
void with_widest_word(int64_t frame_bytes, std::initializer_list<const void*> bases,
                      Launch&& launch) {
  uint64_t bits = static_cast<uint64_t>(frame_bytes);
  for (const void* base : bases) bits |= reinterpret_cast<uintptr_t>(base);
  if (bits % 16 == 0) {
    launch(uint4{});
  } else if (bits % 4 == 0) {
    launch(uint32_t{});
  } else {
    launch(uint8_t{});
  }
}

}  // namespace pydqn
