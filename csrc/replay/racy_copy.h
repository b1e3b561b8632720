#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SANITIZE_THREAD__)
#define PYDQN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PYDQN_TSAN 1
#endif
#endif

namespace pydqn {

// Copies to and from frame memory that another thread may be recycling at the same time.
//
// Readers of the replay buffer follow a seqlock protocol: they copy a transition's bytes and then
// re-check the slot's version; if a writer touched the slot (and so possibly the frames) meanwhile,
// the copy is discarded and redone. The bytes themselves are therefore allowed to race, and are
// copied with memcpy, which is what keeps sampling at memory bandwidth (relaxed atomic word copies
// measured at ~65% of memcpy on this project's 2-core CI machine).
//
// ThreadSanitizer cannot know that a racy copy is validated afterwards, so TSan builds copy with
// relaxed atomic words instead: the synchronization it checks (versions, fences, reference counts,
// the free list) is exactly the production protocol, and only the validated byte copy changes form.
// `shared` pointers are 8-byte aligned (frame strides are padded to 8 bytes).
inline void copy_from_shared(void* dst, const void* shared, size_t n) {
#ifdef PYDQN_TSAN
  auto* out = static_cast<unsigned char*>(dst);
  const auto* words = static_cast<const uint64_t*>(shared);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = __atomic_load_n(words + i / 8, __ATOMIC_RELAXED);
    std::memcpy(out + i, &w, 8);
  }
  for (; i < n; ++i) {
    out[i] = __atomic_load_n(static_cast<const unsigned char*>(shared) + i, __ATOMIC_RELAXED);
  }
#else
  std::memcpy(dst, shared, n);
#endif
}

inline void copy_to_shared(void* shared, const void* src, size_t n) {
#ifdef PYDQN_TSAN
  const auto* in = static_cast<const unsigned char*>(src);
  auto* words = static_cast<uint64_t*>(shared);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, in + i, 8);
    __atomic_store_n(words + i / 8, w, __ATOMIC_RELAXED);
  }
  for (; i < n; ++i) {
    __atomic_store_n(static_cast<unsigned char*>(shared) + i, in[i], __ATOMIC_RELAXED);
  }
#else
  std::memcpy(shared, src, n);
#endif
}

}  // namespace pydqn
