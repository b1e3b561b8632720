#include "replay/env_stream.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace pydqn {

int32_t EnvStream::new_frame(FrameStore& store) {
  if (fill_chunk_ < 0 || fill_offset_ == store.chunk_frames()) {
    fill_chunk_ = store.acquire_chunk();  // comes with the reference this stream holds
    fill_offset_ = 0;
    pins_.push_back(fill_chunk_);
  }
  return fill_chunk_ * store.chunk_frames() + fill_offset_++;
}

void EnvStream::repin(FrameStore& store, int32_t frame_stack) {
  c10::SmallVector<int32_t, kMaxFrameStack + 8> wanted;
  if (fill_chunk_ >= 0) wanted.push_back(fill_chunk_);
  for (int32_t i = 0; i < frame_stack; ++i) {
    const int32_t chunk = store.chunk_of(stack[i]);
    if (std::find(wanted.begin(), wanted.end(), chunk) == wanted.end()) wanted.push_back(chunk);
  }
  // Take the new references before dropping the old ones so no wanted chunk touches zero.
  for (int32_t chunk : wanted) {
    if (std::find(pins_.begin(), pins_.end(), chunk) == pins_.end()) store.retain(chunk);
  }
  for (int32_t chunk : pins_) {
    if (std::find(wanted.begin(), wanted.end(), chunk) == wanted.end()) store.release(chunk);
  }
  pins_.swap(wanted);
}

void EnvStream::unpin_all(FrameStore& store) {
  for (int32_t chunk : pins_) store.release(chunk);
  pins_.clear();
  fill_chunk_ = -1;
  fill_offset_ = 0;
}

StreamLease::StreamLease(EnvStream* streams, const int64_t* env_ids, int64_t count)
    : streams_(streams) {
  c10::SmallVector<int64_t, 16> ascending(env_ids, env_ids + count);
  std::sort(ascending.begin(), ascending.end());
  for (const int64_t env : ascending) {
    if (!streams[env].hold_for_add()) {
      release();
      TORCH_CHECK_VALUE(false, "env_ids: env ", env,
                        " is being added to by another thread; concurrent add() calls must "
                        "name disjoint env streams");
    }
    held_.push_back(env);
  }
}

void StreamLease::release() {
  for (int64_t env : held_) streams_[env].drop();
  held_.clear();
}

}  // namespace pydqn
