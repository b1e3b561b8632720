#pragma once

#include <c10/util/SmallVector.h>

#include <atomic>
#include <cstdint>

#include "replay/frame_store.h"
#include "replay/transition_ring.h"

namespace pydqn {

// Writer-side state of one env stream: where its episode stands and which frames form its current
// stack. Only the thread that holds `busy` reads or writes the other fields; taking and dropping
// `busy` (acquire / release) hands them from one adding thread to the next.
struct EnvStream {
  std::atomic<bool> busy{false};
  bool in_episode = false;    // the next obs must equal the frames in `stack`
  int64_t episode_step = 0;   // transitions added in the current episode
  int64_t transitions = 0;    // transitions added over the stream's lifetime
  int32_t stack[kMaxFrameStack];  // frame ids of the last next_obs, oldest first

  // Appends one frame slot to the chunk this stream is filling and returns its id.
  int32_t new_frame(FrameStore& store);
  // Holds a reference on exactly the chunks of the current stack and the chunk being filled, so
  // those frames outlive the transitions that reference them (a tiny ring may evict them all).
  void repin(FrameStore& store, int32_t frame_stack);

 private:
  int32_t fill_chunk_ = -1;
  int32_t fill_offset_ = 0;
  // At most the stack's chunks, the one being filled and the few new ones an add() took; inline,
  // so repin(), which runs after slots are claimed, never allocates and so never throws.
  c10::SmallVector<int32_t, kMaxFrameStack + 8> pins_;
};

}  // namespace pydqn
