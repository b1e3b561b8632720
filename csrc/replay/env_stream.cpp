#include "replay/env_stream.h"

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

}  // namespace pydqn
