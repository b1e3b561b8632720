#pragma once

#include <c10/util/Exception.h>
#include <c10/util/SmallVector.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "replay/frame_store.h"
#include "replay/spin_wait.h"
#include "replay/transition_ring.h"

namespace pydqn {

// Writer-side state of one env stream: where its episode stands and which frames form its current
// stack. Only the thread that holds the stream reads or writes the other fields; taking the hold
// (acquire) and dropping it (release) hands them from one thread to the next.
struct EnvStream {
  // Takes the stream for an add(), waiting while a save or load holds it. False if another add()
  // holds it: two threads adding to one stream is a caller's error, not something to wait out.
  bool hold_for_add() {
    SpinWait spin;
    for (;;) {
      uint8_t holder = kFree;
      if (holder_.compare_exchange_weak(holder, kAdder, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
        return true;
      }
      if (holder == kAdder) return false;
      spin.pause();
    }
  }
  // Takes the stream for saving or loading the buffer, waiting for a running add() to finish.
  void hold_for_snapshot() {
    SpinWait spin;
    uint8_t holder = kFree;
    while (!holder_.compare_exchange_weak(holder, kSnapshot, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
      holder = kFree;
      spin.pause();
    }
  }
  void drop() { holder_.store(kFree, std::memory_order_release); }

  bool in_episode = false;        // the next obs must equal the frames in `stack`
  int64_t episode_step = 0;       // transitions added in the current episode
  int64_t transitions = 0;        // transitions added over the stream's lifetime
  int32_t stack[kMaxFrameStack];  // frame ids of the last next_obs, oldest first
  // n > 1: the episode's transitions whose n-step windows are still open, oldest first (at most
  // n - 1 between adds; reserved at construction so that adding never allocates after a claim).
  struct OpenWindow {
    int64_t seq;
    float reward;
  };
  c10::SmallVector<OpenWindow, 8> open_windows;

  // Appends one frame slot to the chunk this stream is filling and returns its id.
  int32_t new_frame(FrameStore& store);
  // Holds a reference on exactly the chunks of the current stack and the chunk being filled, so
  // those frames outlive the transitions that reference them (a tiny ring may evict them all).
  void repin(FrameStore& store, int32_t frame_stack);
  // Drops every reference the stream holds and forgets its fill position.
  void unpin_all(FrameStore& store);

 private:
  static constexpr uint8_t kFree = 0, kAdder = 1, kSnapshot = 2;
  std::atomic<uint8_t> holder_{kFree};
  int32_t fill_chunk_ = -1;
  int32_t fill_offset_ = 0;
  // At most the stack's chunks, the one being filled and the few new ones an add() took; inline,
  // so repin(), which runs after slots are claimed, never allocates and so never throws.
  c10::SmallVector<int32_t, kMaxFrameStack + 8> pins_;
};

// Holds the env streams an add() writes (or end_episodes() ends, or continues() reads), so two
// threads never write one stream. Streams are taken in ascending order, as a save or load takes
// all of them, so waiting on one never closes a cycle. Throws (holding nothing) if another such
// call holds one of them.
class StreamLease {
 public:
  StreamLease(EnvStream* streams, const int64_t* env_ids, int64_t count)
      : streams_(streams), envs_(env_ids, env_ids + count) {
    std::sort(envs_.begin(), envs_.end());
    for (; held_ < count; ++held_) {
      if (!streams[envs_[held_]].hold_for_add()) {
        const int64_t env = envs_[held_];
        release();
        TORCH_CHECK_VALUE(false, "env_ids: env ", env,
                          " is being added to by another thread; concurrent add(), "
                          "end_episodes() and continues() calls must name disjoint env streams");
      }
    }
  }
  ~StreamLease() { release(); }
  StreamLease(const StreamLease&) = delete;
  StreamLease& operator=(const StreamLease&) = delete;

 private:
  void release() {
    for (int64_t i = 0; i < held_; ++i) streams_[envs_[i]].drop();
    held_ = 0;
  }

  EnvStream* streams_;
  c10::SmallVector<int64_t, 16> envs_;  // ascending
  int64_t held_ = 0;                    // the first held_ of envs_
};

// Holds every env stream, waiting for running add() calls to finish and holding off new ones, so
// the ring and the frames stay still while the buffer is saved or loaded.
class AllStreamsLease {
 public:
  AllStreamsLease(EnvStream* streams, int64_t count) : streams_(streams), count_(count) {
    for (int64_t env = 0; env < count; ++env) streams[env].hold_for_snapshot();
  }
  ~AllStreamsLease() {
    for (int64_t env = 0; env < count_; ++env) streams_[env].drop();
  }
  AllStreamsLease(const AllStreamsLease&) = delete;
  AllStreamsLease& operator=(const AllStreamsLease&) = delete;

 private:
  EnvStream* streams_;
  int64_t count_;
};

}  // namespace pydqn
