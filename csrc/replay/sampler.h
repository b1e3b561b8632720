#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/FunctionRef.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "replay/batch.h"
#include "replay/counter_rng.h"
#include "replay/draw_strategy.h"
#include "replay/env_stream.h"
#include "replay/frame_store.h"
#include "replay/transition_ring.h"

namespace pydqn {

// The parts of a ReplayBuffer its sampler works with; the buffer owns them and outlives it.
struct BufferParts {
  const FrameStore& frames;
  const TransitionRing& ring;
  const CounterRng& rng;
  DrawStrategy& draw;
  int32_t frame_stack;
  int64_t frame_bytes;
  int32_t n_step;
  float gamma;
};

// Where a ReplayBuffer keeps its frames and how it gathers batches from them: from the host
// FrameStore's bytes (HostSampler), or on a device, from a TransitionMirror (MirrorSampler). The
// buffer does the rest (checks, env streams, n-step windows, the ring, the draw strategy) and
// tells the sampler about each frame it stores and each slot it changes.
//
//   add():   check_continuity ──stack_frame()──> put_frame() per new frame ──> stage()
//            ── claim ──> added() per transition, completed() per window ──> submit()
//   end_episodes(): stage() ──> completed() per window ──> submit()
//   sample_into() / get_into(): rows ──> BatchTensors on device()
class Sampler {
 public:
  virtual ~Sampler() = default;

  // Where batches are gathered.
  virtual c10::Device device() const = 0;
  // Host bytes the sampler allocated itself, and device bytes.
  virtual int64_t host_nbytes() const { return 0; }
  virtual int64_t device_nbytes() const { return 0; }

  // Every call on the buffer (add, sample, get, save, load) runs inside one SamplerCall.
  virtual void begin_call() {}
  virtual void end_call() {}
  // At the start of add(), sample() and get(): copies what a load's failed copy left out.
  virtual void refresh() {}

  // add(). Frame f of the current stack of env's stream, which the next obs must continue.
  virtual const std::byte* stack_frame(const EnvStream& stream, int64_t env, int32_t f) const = 0;
  // A new frame of the store: its bytes, which stay valid until the call ends. Before stage().
  virtual void put_frame(int32_t id, const std::byte* bytes) = 0;
  // Allocates everything the rest of the add needs, for up to `max_changed` changed slots; the
  // last step that may fail.
  virtual void stage(int64_t max_changed) {}
  // After the claim; none of these may fail. Transition `seq` was committed for env, whose
  // current stack is now `next_obs`; transition seq's window completed; the add is done (`call`
  // names it in errors: "add()", or "end_episodes()", which only completes windows).
  virtual void added(int64_t env, int64_t seq, const std::byte* next_obs) {}
  virtual void completed(int64_t seq) {}
  virtual void submit(const char* call) {}

  // Fills `out` (tensors on device()) with rows drawn by the buffer's DrawStrategy; `beta` checked.
  virtual void sample_into(const BatchTensors& out, std::optional<double> beta) = 0;
  // Fills `out` with the transitions in `slots` (int64, CPU, contiguous, in range);
  // check_complete(row) throws if row's slot holds a transition whose window is open.
  virtual void get_into(const BatchTensors& out, const at::Tensor& slots,
                        c10::function_ref<void(int64_t row)> check_complete) = 0;

  // save_state(): where the sampling generator stands, and the frames `ids` as a (count,
  // frame_bytes) uint8 CPU tensor.
  virtual uint64_t draws() const = 0;
  virtual at::Tensor read_frames(std::span<const int32_t> ids) const = 0;
  // load_state(): writes the frames put_frame() was given, before any transition is committed
  // (a failure leaves the buffer empty); then, once everything is committed, loaded().
  virtual void write_loaded_frames() {}
  virtual void loaded(uint64_t seed, uint64_t draws) {}
};

// One call on a buffer: begin_call() to end_call().
class SamplerCall {
 public:
  explicit SamplerCall(Sampler& sampler) : sampler_(sampler) { sampler_.begin_call(); }
  ~SamplerCall() { sampler_.end_call(); }
  SamplerCall(const SamplerCall&) = delete;
  SamplerCall& operator=(const SamplerCall&) = delete;

 private:
  Sampler& sampler_;
};

}  // namespace pydqn
