#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace pydqn {

// Frames per stacked observation, at most.
constexpr int32_t kMaxFrameStack = 32;
// Env streams of one buffer, at most: each may hold up to four partly filled chunks (see
// FrameStore::max_chunks_for), which must stay a small part of the 2^31 frame ids.
constexpr int64_t kMaxNumEnvs = int64_t{1} << 16;
// Transitions one buffer stores, at most: frame ids are int32. A buffer of k-frame stacks is
// bounded further by the ids its frames need (about 2^31 / (k + 1) transitions; see
// FrameStore::max_chunks_for).
constexpr int64_t kMaxCapacity = (int64_t{1} << 31) - 1;

// A pool of fixed-size frames, allocated on demand in chunks of `chunk_frames` frames.
//
//   chunk table   [ c0 | c1 | c2 | ... ]   pointers, published once with release stores
//                   |    |
//                   v    v
//   chunk memory  [f f f f f f f f]        frame id = chunk * chunk_frames + offset
//
// Each env stream appends its frames sequentially into a chunk it took from the pool, so frames
// are written by a single thread without contention. A chunk carries a reference count: one for
// every live transition that references a frame in it, and one for every env stream that pins it
// (the chunk it is filling and the chunks holding its current frame stack). When the count drops
// to zero the chunk goes onto a lock-free free list (a Treiber stack whose head carries a tag
// against ABA) and is reused by the next stream that needs one. Chunks are never returned to the
// system while the store lives, so a frame id from a consistent metadata snapshot always points
// into valid memory; readers detect recycled contents through the transition ring's versions.
//
// Without `holds_bytes` the store is bookkeeping only: ids, chunks and references, while the frames
// themselves live elsewhere (a TransitionMirror's device memory, laid out by the same chunks), and
// frame() must not be called.
class FrameStore {
 public:
  FrameStore(int64_t frame_bytes, int32_t chunk_frames, int32_t max_chunks,
             bool holds_bytes = true);
  // The store of a buffer of `capacity` transitions of `frame_stack`-frame stacks from `num_envs`
  // streams, sized by chunk_frames_for and max_chunks_for (which check those arguments).
  static FrameStore for_buffer(int64_t frame_bytes, int64_t capacity, int64_t frame_stack,
                               int64_t num_envs, bool holds_bytes);
  // Frames per chunk: a power of two of at least frame_stack + 1, shrunk for small rings so that
  // the partly filled chunks at each stream's two ends stay under ~0.4% of the stored frames.
  static int32_t chunk_frames_for(int64_t capacity, int64_t frame_stack, int64_t num_envs);
  // Chunks such a buffer can reference at once; checks capacity and num_envs against the frame
  // ids (kMaxCapacity, kMaxNumEnvs).
  static int32_t max_chunks_for(int64_t capacity, int64_t frame_stack, int64_t num_envs);
  ~FrameStore();
  FrameStore(const FrameStore&) = delete;
  FrameStore& operator=(const FrameStore&) = delete;

  std::byte* frame(int32_t id) const {
    std::byte* chunk = chunks_[id >> chunk_shift_].load(std::memory_order_acquire);
    return chunk + static_cast<int64_t>(id & (chunk_frames_ - 1)) * frame_stride_;
  }
  int32_t chunk_of(int32_t frame_id) const { return frame_id >> chunk_shift_; }
  int32_t offset_in_chunk(int32_t frame_id) const { return frame_id & (chunk_frames_ - 1); }
  int32_t chunk_frames() const { return chunk_frames_; }
  int32_t chunk_shift() const { return chunk_shift_; }
  int32_t max_chunks() const { return max_chunks_; }

  // Takes a chunk off the free list, or allocates a new one; the caller holds its only reference.
  // A release fence follows, so frame bytes the caller then writes are ordered after every event
  // that led to the chunk's release (in particular a transition slot being marked as rewritten).
  int32_t acquire_chunk();
  void retain(int32_t chunk) { refcounts_[chunk].fetch_add(1, std::memory_order_relaxed); }
  void release(int32_t chunk);
  // Calls visit(chunk) once for each distinct chunk holding one of the `count` (at most
  // kMaxFrameStack + 1) frames `ids`: a transition holds one reference per chunk it uses, however
  // many of its frames lie there.
  template <typename Visit>
  void for_each_chunk(const int32_t* ids, int32_t count, Visit visit) const {
    int32_t seen[kMaxFrameStack + 1];
    int32_t distinct = 0;
    for (int32_t i = 0; i < count; ++i) {
      const int32_t chunk = chunk_of(ids[i]);
      bool repeat = false;
      for (int32_t j = 0; j < distinct && !repeat; ++j) repeat = seen[j] == chunk;
      if (!repeat) {
        seen[distinct++] = chunk;
        visit(chunk);
      }
    }
  }

  // Bytes held: chunk memory plus the per-chunk bookkeeping arrays.
  int64_t nbytes() const;

 private:
  const int64_t frame_stride_;  // 0 without bytes
  const int32_t chunk_frames_;
  const int32_t chunk_shift_;
  const int32_t max_chunks_;
  std::unique_ptr<std::atomic<std::byte*>[]> chunks_;
  std::unique_ptr<std::atomic<int32_t>[]> refcounts_;
  std::unique_ptr<std::atomic<int32_t>[]> next_free_;  // free-list links, chunk + 1 (0 = end)
  std::atomic<uint64_t> free_head_{0};                 // (tag << 32) | (chunk + 1)
  std::atomic<int32_t> allocated_{0};
};

}  // namespace pydqn
