#include "replay/replay_buffer.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>

#include "replay/host_sampler.h"
#include "replay/memory_error.h"
#include "replay/mirror_sampler.h"
#include "replay/priorities.h"
#include "replay/prioritized_draw.h"
#include "replay/uniform_draw.h"

namespace pydqn {
namespace {

std::string shape_text(c10::IntArrayRef shape) {
  std::ostringstream text;
  text << "(";
  for (size_t i = 0; i < shape.size(); ++i) text << (i ? ", " : "") << shape[i];
  text << (shape.size() == 1 ? ",)" : ")");
  return text.str();
}

// Python's spelling of a dtype, as users wrote it.
std::string dtype_text(at::ScalarType dtype) {
  switch (dtype) {
    case at::kByte:
      return "torch.uint8";
    case at::kChar:
      return "torch.int8";
    case at::kShort:
      return "torch.int16";
    case at::kInt:
      return "torch.int32";
    case at::kLong:
      return "torch.int64";
    case at::kUInt16:
      return "torch.uint16";
    case at::kUInt32:
      return "torch.uint32";
    case at::kUInt64:
      return "torch.uint64";
    case at::kHalf:
      return "torch.float16";
    case at::kBFloat16:
      return "torch.bfloat16";
    case at::kFloat:
      return "torch.float32";
    case at::kDouble:
      return "torch.float64";
    case at::kBool:
      return "torch.bool";
    default:
      return c10::toString(dtype);
  }
}

std::vector<int64_t> batched(int64_t rows, const std::vector<int64_t>& shape) {
  std::vector<int64_t> sizes{rows};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  return sizes;
}

int64_t frame_bytes_of(const std::vector<int64_t>& obs_shape, at::ScalarType dtype,
                       int64_t frame_stack) {
  TORCH_CHECK_TYPE(is_real(dtype) || dtype == at::kBool,
                   "obs_dtype: expected a standard integer, floating point or bool dtype, got ",
                   dtype_text(dtype));
  TORCH_CHECK_VALUE(frame_stack >= 1 && frame_stack <= kMaxFrameStack, "frame_stack: expected 1..",
                    kMaxFrameStack, ", got ", frame_stack);
  int64_t elements = 1;
  for (int64_t d : obs_shape) {
    TORCH_CHECK_VALUE(d >= 1, "obs_shape: expected positive sizes, got ", shape_text(obs_shape));
    TORCH_CHECK_VALUE(
        !__builtin_mul_overflow(elements, d, &elements) && elements <= (int64_t{1} << 40),
        "obs_shape: ", shape_text(obs_shape), " holds more than 2^40 elements");
  }
  if (frame_stack > 1) {
    TORCH_CHECK_VALUE(!obs_shape.empty() && obs_shape[0] == frame_stack,
                      "obs_shape: axis 0 holds the stacked frames, so it must equal frame_stack=",
                      frame_stack, ", got ", shape_text(obs_shape));
    elements /= frame_stack;
  }
  return elements * static_cast<int64_t>(c10::elementSize(dtype));
}

void check_vector(const HostArray& a, const char* name, int64_t rows) {
  TORCH_CHECK_VALUE(a.dim() == 1 && a.shape[0] == rows, name, ": expected shape (", rows,
                    ",), one value per env row, got ", shape_text(a.sizes()));
}

// A new CPU tensor straight from the CPU allocator. at::empty goes through the dispatcher, which
// measured ~2.5 us per call inside a Python process (0.3 us in a plain C++ one); a batch is seven.
// The sizes are the caller's checked ones, so the allocator's error can only be its failure to
// allocate, which becomes std::bad_alloc as BlockPool's does (the caller names the argument).
at::Tensor empty_cpu(c10::IntArrayRef sizes, at::ScalarType dtype) {
  try {
    return at::Tensor(at::detail::empty_cpu(sizes, dtype));
  } catch (const c10::Error&) {
    throw std::bad_alloc();
  }
}

}  // namespace

ReplayBuffer::ReplayBuffer(int64_t capacity, std::vector<int64_t> obs_shape,
                           at::ScalarType obs_dtype, int64_t frame_stack, int64_t num_envs,
                           std::optional<uint64_t> seed, int64_t n_step, double gamma,
                           bool prioritized, double alpha,
                           std::optional<c10::Device> sample_device) try
    : obs_shape_(std::move(obs_shape)),
      obs_dtype_(obs_dtype),
      frame_stack_(static_cast<int32_t>(frame_stack)),
      num_envs_(num_envs),
      frame_bytes_(frame_bytes_of(obs_shape_, obs_dtype, frame_stack)),
      n_step_(static_cast<int32_t>(n_step)),
      gamma_(static_cast<float>(gamma)),
      frames_(FrameStore::for_buffer(frame_bytes_, capacity, frame_stack, num_envs,
                                     /*holds_bytes=*/!sample_device.has_value())),
      ring_(capacity, frame_stack_, n_step > 1),
      streams_(new EnvStream[num_envs]),
      rng_(seed.has_value() ? *seed
                            : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()),
      obs_blocks_(std::make_shared<BlockPool>()) {
  TORCH_CHECK_VALUE(n_step >= 1 && n_step <= kMaxNStep, "n_step: expected 1..", kMaxNStep, ", got ",
                    n_step);
  TORCH_CHECK_VALUE(gamma >= 0.0 && gamma <= 1.0, "gamma: expected a value in [0, 1], got ", gamma);
  if (prioritized) {
    draw_ = std::make_unique<PrioritizedDraw>(capacity, alpha, rng_, ring_);
  } else {
    draw_ = std::make_unique<UniformDraw>(rng_, ring_);
  }
  for (int64_t env = 0; env < num_envs; ++env) streams_[env].open_windows.reserve(n_step);
  const BufferParts parts{frames_,      ring_,        rng_,    *draw_,
                          frame_stack_, frame_bytes_, n_step_, gamma_};
  if (sample_device.has_value()) {
    sampler_ =
        std::make_unique<MirrorSampler>(parts, *sample_device, capacity, num_envs, rng_.seed());
  } else {
    sampler_ = std::make_unique<HostSampler>(parts);
  }
} catch (const std::bad_alloc&) {
  // The ring, and a prioritized buffer's trees, are allocated here for every slot at once; frames
  // come later, chunk by chunk.
  const int64_t bytes =
      TransitionRing::nbytes_for(capacity, static_cast<int32_t>(frame_stack), n_step > 1) +
      (prioritized ? Priorities::nbytes_for(capacity) : 0);
  throw MemoryError("capacity: ", capacity, " transitions need ", bytes, " bytes of transition ",
                    prioritized ? "records and priority trees" : "records",
                    " up front, and allocating them failed");
}

int64_t ReplayBuffer::nbytes() const {
  return frames_.nbytes() + ring_.nbytes() + num_envs_ * static_cast<int64_t>(sizeof(EnvStream)) +
         obs_blocks_->cached_bytes() + draw_->nbytes() + sampler_->host_nbytes() + device_nbytes();
}

// ---- add ----------------------------------------------------------------------------------------

c10::SmallVector<int64_t, 16> ReplayBuffer::check_env_ids(const std::optional<HostArray>& env_ids,
                                                          const char* call) const {
  c10::SmallVector<int64_t, 16> envs;
  if (!env_ids.has_value()) {
    for (int64_t env = 0; env < num_envs_; ++env) envs.push_back(env);
    return envs;
  }
  const HostArray& ids = *env_ids;
  TORCH_CHECK_TYPE(is_integer(ids.dtype), "env_ids: expected integers, got ",
                   dtype_text(ids.dtype));
  TORCH_CHECK_VALUE(ids.dim() == 1 && ids.shape[0] >= 1,
                    "env_ids: expected a non-empty 1-D sequence of env indices, got shape ",
                    shape_text(ids.sizes()));
  for (int64_t r = 0; r < ids.shape[0]; ++r) {
    const int64_t env = ids.integer(r);
    TORCH_CHECK_VALUE(env >= 0 && env < num_envs_, "env_ids: expected values in [0, ", num_envs_,
                      "), got ", env, " at position ", r);
    envs.push_back(env);
  }
  c10::SmallVector<int64_t, 16> sorted(envs.begin(), envs.end());
  std::sort(sorted.begin(), sorted.end());
  const auto repeat = std::adjacent_find(sorted.begin(), sorted.end());
  TORCH_CHECK_VALUE(repeat == sorted.end(), "env_ids: each env may appear once per ", call,
                    ", got ", *repeat, " more than once");
  return envs;
}

void ReplayBuffer::check_obs(const HostArray& a, const char* name, int64_t rows) const {
  TORCH_CHECK_TYPE(a.dtype == obs_dtype_, name, ": expected dtype ", dtype_text(obs_dtype_),
                   " (the buffer's obs_dtype), got ", dtype_text(a.dtype));
  // Compared in place: the expected shape as a vector is a heap allocation, built on failure.
  const bool rows_of_obs = a.dim() == 1 + static_cast<int64_t>(obs_shape_.size()) &&
                           a.shape[0] == rows &&
                           std::equal(obs_shape_.begin(), obs_shape_.end(), a.shape.begin() + 1);
  TORCH_CHECK_VALUE(rows_of_obs, name, ": expected shape ", shape_text(batched(rows, obs_shape_)),
                    " (rows, *obs_shape), got ", shape_text(a.sizes()));
}

c10::SmallVector<int64_t, 16> ReplayBuffer::check_rows(const TransitionRows& in) const {
  c10::SmallVector<int64_t, 16> envs = check_env_ids(in.env_ids, "add");
  const int64_t rows = static_cast<int64_t>(envs.size());
  check_obs(in.obs, "obs", rows);
  check_obs(in.next_obs, "next_obs", rows);
  TORCH_CHECK_TYPE(is_integer(in.action.dtype), "action: expected an integer dtype, got ",
                   dtype_text(in.action.dtype));
  TORCH_CHECK_TYPE(is_real(in.reward.dtype), "reward: expected a real dtype, got ",
                   dtype_text(in.reward.dtype));
  TORCH_CHECK_TYPE(in.terminated.dtype == at::kBool, "terminated: expected torch.bool, got ",
                   dtype_text(in.terminated.dtype));
  TORCH_CHECK_TYPE(in.truncated.dtype == at::kBool, "truncated: expected torch.bool, got ",
                   dtype_text(in.truncated.dtype));
  check_vector(in.action, "action", rows);
  check_vector(in.reward, "reward", rows);
  check_vector(in.terminated, "terminated", rows);
  check_vector(in.truncated, "truncated", rows);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t action = in.action.integer(r);
    TORCH_CHECK_VALUE(action >= std::numeric_limits<int32_t>::min() &&
                          action <= std::numeric_limits<int32_t>::max(),
                      "action: expected values in the int32 range the buffer stores, got ", action,
                      " at row ", r);
    const float reward = static_cast<float>(in.reward.real(r));
    TORCH_CHECK_VALUE(std::isfinite(reward), "reward: expected finite float32 values, got ",
                      in.reward.real(r), " at row ", r,
                      std::isfinite(in.reward.real(r)) ? " (infinite as float32)" : "");
  }
  return envs;
}

bool ReplayBuffer::check_continuity(const std::byte* obs, const std::byte* next_obs,
                                    int64_t env) const {
  // Frame by frame, so that each frame of obs is read from memory once and compared with both of
  // its counterparts while in L1: these compares are most of an add()'s time.
  const EnvStream& stream = streams_[env];
  bool continues = true;
  for (int32_t f = 0; f < frame_stack_; ++f) {
    const std::byte* frame = obs + f * frame_bytes_;
    if (stream.in_episode) {
      continues &= std::memcmp(frame, sampler_->stack_frame(stream, env, f), frame_bytes_) == 0;
    }
    if (f > 0) {
      continues &= std::memcmp(next_obs + (f - 1) * frame_bytes_, frame, frame_bytes_) == 0;
    }
  }
  if (!continues) report_discontinuity(obs, next_obs, env);
  const int64_t newest = (frame_stack_ - 1) * frame_bytes_;
  return std::memcmp(next_obs + newest, obs + newest, frame_bytes_) == 0;
}

void ReplayBuffer::report_discontinuity(const std::byte* obs, const std::byte* next_obs,
                                        int64_t env) const {
  const EnvStream& stream = streams_[env];
  for (int32_t f = 0; f + 1 < frame_stack_; ++f) {
    TORCH_CHECK_VALUE(
        std::memcmp(next_obs + f * frame_bytes_, obs + (f + 1) * frame_bytes_, frame_bytes_) == 0,
        "env ", env, ", episode step ", stream.episode_step, ": next_obs frame ", f,
        " differs from obs frame ", f + 1, "; with frame_stack=", frame_stack_,
        " next_obs must be obs shifted by one frame (oldest first) plus the new frame");
  }
  for (int32_t f = 0; f < frame_stack_ && stream.in_episode; ++f) {
    TORCH_CHECK_VALUE(
        std::memcmp(obs + f * frame_bytes_, sampler_->stack_frame(stream, env, f), frame_bytes_) ==
            0,
        "env ", env, ", episode step ", stream.episode_step, ": obs differs from the next_obs of ",
        "this env's previous transition (frame ", f, " of ", frame_stack_,
        "); an episode continues from its last next_obs, so mark the previous transition "
        "terminated or truncated to start a new one");
  }
  TORCH_INTERNAL_ASSERT(false, "env ", env, ": check_continuity found a difference that is gone");
}

// Stores the frames of one row that the store does not hold yet. A frame equal to the frame just
// before it in the stream (padding at an episode start, a static screen) is referenced again
// instead of stored again, so a stream's distinct frames are consecutive allocations.
void ReplayBuffer::store_frames(const std::byte* obs, const std::byte* next_obs,
                                bool repeats_newest, EnvStream& stream, TransitionRecord& record) {
  int32_t* ids = record.frame_ids;
  auto keep = [&](const std::byte* frame, const std::byte* previous, int32_t previous_id) {
    if (previous != nullptr && std::memcmp(frame, previous, frame_bytes_) == 0) return previous_id;
    const int32_t id = stream.new_frame(frames_);
    sampler_->put_frame(id, frame);
    return id;
  };
  if (stream.in_episode) {
    std::copy(stream.stack, stream.stack + frame_stack_, ids);
  } else {
    for (int32_t f = 0; f < frame_stack_; ++f) {
      const std::byte* frame = obs + f * frame_bytes_;
      ids[f] = keep(frame, f > 0 ? frame - frame_bytes_ : nullptr, f > 0 ? ids[f - 1] : -1);
    }
  }
  const int64_t last = (frame_stack_ - 1) * frame_bytes_;
  ids[frame_stack_] = repeats_newest ? ids[frame_stack_ - 1] : keep(next_obs + last, nullptr, -1);
}

void ReplayBuffer::write_transition(int64_t seq, const TransitionRecord& record) {
  const int32_t ids = frame_stack_ + 1;
  frames_.for_each_chunk(record.frame_ids, ids, [&](int32_t c) { frames_.retain(c); });
  const TransitionRing::Occupant evicted = ring_.begin_write(seq);
  if (evicted != TransitionRing::Occupant::kNone) {
    // The slot is marked as rewritten before the evicted transition's chunks are released, so a
    // reader that sees a recycled frame also sees the new version (see FrameStore::acquire_chunk).
    const int64_t slot = seq % ring_.capacity();
    TransitionRecord old;
    ring_.load(slot, old);
    frames_.for_each_chunk(old.frame_ids, ids, [&](int32_t c) { frames_.release(c); });
    if (n_step_ > 1 && evicted == TransitionRing::Occupant::kComplete) {
      TransitionWindow window;
      ring_.load_window(slot, old, window, gamma_);
      frames_.for_each_chunk(window.next_ids, frame_stack_, [&](int32_t c) { frames_.release(c); });
    } else if (evicted == TransitionRing::Occupant::kIncomplete) {
      incomplete_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (n_step_ > 1) incomplete_.fetch_add(1, std::memory_order_relaxed);
  // This writer owns the slot until commit: a leaf changes with the transition it describes.
  draw_->written(seq % ring_.capacity(), /*complete=*/n_step_ == 1);
  ring_.commit(seq, record, /*complete=*/n_step_ == 1);
}

// The window's frames are the stream's current stack, held by the transition just added, which
// outlives every transition whose window ends there only in FIFO order of seq; evictions of
// different slots do not wait for each other, so the window holds its own chunk references.
bool ReplayBuffer::complete_window(int64_t seq, const TransitionWindow& window) {
  frames_.for_each_chunk(window.next_ids, frame_stack_, [&](int32_t c) { frames_.retain(c); });
  if (!ring_.begin_complete(seq)) {  // evicted meanwhile, by another stream's writer
    frames_.for_each_chunk(window.next_ids, frame_stack_, [&](int32_t c) { frames_.release(c); });
    return false;
  }
  draw_->completed(seq % ring_.capacity());
  ring_.end_complete(seq, window);
  incomplete_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void ReplayBuffer::advance_windows(EnvStream& stream, int64_t seq, const TransitionRecord& record) {
  auto& open = stream.open_windows;
  open.push_back({seq, record.reward});
  const bool episode_ended = record.flags != 0;
  // Windows that end here: the oldest when it now spans n transitions, all when the episode ended.
  const size_t closing =
      episode_ended ? open.size() : (open.size() == static_cast<size_t>(n_step_) ? 1 : 0);
  close_windows(stream, closing, record.flags);
}

// The open windows are the stream's last transitions, oldest first, the newest included (an add
// that closes the oldest leaves n - 1), so window w spans open[w..] and ends at the newest.
void ReplayBuffer::close_windows(EnvStream& stream, size_t closing, uint8_t flags) {
  auto& open = stream.open_windows;
  for (size_t w = 0; w < closing; ++w) {
    TransitionWindow window;
    std::copy(stream.stack, stream.stack + frame_stack_, window.next_ids);
    window.flags = flags;
    // sum_j gamma^j r_{t+j} by Horner's rule from the window's end, and gamma^m, in float32.
    float reward = open.back().reward, discount = gamma_;
    for (size_t j = open.size() - 1; j-- > w;) {
      reward = open[j].reward + gamma_ * reward;
      discount *= gamma_;
    }
    window.reward = reward;
    window.discount = discount;
    if (complete_window(open[w].seq, window)) sampler_->completed(open[w].seq);
  }
  open.erase(open.begin(), open.begin() + static_cast<std::ptrdiff_t>(closing));
}

void ReplayBuffer::add(const TransitionRows& in, std::span<int64_t> slots) {
  const c10::SmallVector<int64_t, 16> envs = check_rows(in);
  const int64_t rows = static_cast<int64_t>(envs.size());
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(slots.size()) == rows, "add(): ", slots.size(),
                        " slots for ", rows, " rows");
  const int64_t row_bytes = frame_stack_ * frame_bytes_;
  const std::byte* obs = in.obs.bytes();
  const std::byte* next_obs = in.next_obs.bytes();

  const SamplerCall call(*sampler_);
  sampler_->refresh();
  StreamLease lease(streams_.get(), envs.data(), rows);
  // Adds that passed this check hold their streams until they claim, so the transitions numbered
  // pass kMaxTransitions by at most num_envs.
  const int64_t numbered = ring_.claimed();
  TORCH_CHECK_VALUE(numbered <= kMaxTransitions - rows, "add: this buffer has numbered ", numbered,
                    " transitions, and ", rows, " more would pass the ", kMaxTransitions,
                    " (2^60) that a buffer numbers at most");
  // This thread may not be the one that took the streams' chunks from the free list; its own
  // release fence orders its frame writes after everything that led to their recycling (readers
  // pair it with the acquire fence in TransitionRing::read_valid).
  std::atomic_thread_fence(std::memory_order_release);
  // Every row is checked before any frame is written: a rejected add changes nothing.
  c10::SmallVector<bool, 16> repeats_newest(rows);
  for (int64_t r = 0; r < rows; ++r) {
    repeats_newest[r] = check_continuity(obs + r * row_bytes, next_obs + r * row_bytes, envs[r]);
  }
  // New frames go into slots of chunks the streams own and no transition references yet, so they
  // are invisible to readers until the transitions that reference them commit.
  c10::SmallVector<TransitionRecord, 8> records(rows);
  for (int64_t r = 0; r < rows; ++r) {
    store_frames(obs + r * row_bytes, next_obs + r * row_bytes, repeats_newest[r],
                 streams_[envs[r]], records[r]);
    records[r].action = static_cast<int32_t>(in.action.integer(r));
    records[r].reward = static_cast<float>(in.reward.real(r));
    records[r].flags = transition_flags(in.terminated.flag(r), in.truncated.flag(r));
  }
  // Everything the sampler needs is allocated now, before the claim: each row's slot and the
  // windows it closes change.
  sampler_->stage(rows * (n_step_ + 1));
  // Nothing below can fail: once claimed, every transition number is committed, because writers
  // of later numbers on the same slot wait for it.
  const int64_t first = ring_.claim(rows);
  for (int64_t r = 0; r < rows; ++r) {
    write_transition(first + r, records[r]);
    slots[r] = (first + r) % ring_.capacity();
    EnvStream& stream = streams_[envs[r]];
    std::copy(records[r].frame_ids + 1, records[r].frame_ids + frame_stack_ + 1, stream.stack);
    stream.in_episode = records[r].flags == 0;
    stream.episode_step = stream.in_episode ? stream.episode_step + 1 : 0;
    ++stream.transitions;
    sampler_->added(envs[r], first + r, next_obs + r * row_bytes);
    if (n_step_ > 1) advance_windows(stream, first + r, records[r]);
    stream.repin(frames_, frame_stack_);
  }
  sampler_->submit("add()");
}

int64_t ReplayBuffer::end_episodes(const std::optional<HostArray>& env_ids) {
  const c10::SmallVector<int64_t, 16> envs = check_env_ids(env_ids, "end_episodes");
  const int64_t rows = static_cast<int64_t>(envs.size());
  const SamplerCall call(*sampler_);
  sampler_->refresh();
  StreamLease lease(streams_.get(), envs.data(), rows);
  // Only the open windows' slots change: the sampler allocates for them before anything does.
  int64_t closing = 0;
  for (const int64_t env : envs) {
    const EnvStream& stream = streams_[env];
    if (stream.in_episode) closing += static_cast<int64_t>(stream.open_windows.size());
  }
  if (closing > 0) sampler_->stage(closing);
  // Nothing below can fail. The stream's stack stays pinned, as after a terminal add, until its
  // next add() starts the new episode and repins.
  int64_t ended = 0;
  for (const int64_t env : envs) {
    EnvStream& stream = streams_[env];
    if (!stream.in_episode) continue;
    // Every open window ends at the episode's last transition, whose next_obs is the stream's
    // stack. Its flags, none, are the windows' too: they bootstrap from that next_obs, as after a
    // truncation, and the transition's own record is left as it was added.
    close_windows(stream, stream.open_windows.size(), /*flags=*/0);
    stream.in_episode = false;
    stream.episode_step = 0;
    ++ended;
  }
  if (closing > 0) sampler_->submit("end_episodes()");
  return ended;
}

at::Tensor ReplayBuffer::continues(const HostArray& obs, const std::optional<HostArray>& env_ids) {
  const c10::SmallVector<int64_t, 16> envs = check_env_ids(env_ids, "continues");
  const int64_t rows = static_cast<int64_t>(envs.size());
  check_obs(obs, "obs", rows);
  at::Tensor result = empty_cpu({rows}, at::kBool);
  bool* out = result.mutable_data_ptr<bool>();
  const int64_t row_bytes = frame_stack_ * frame_bytes_;
  // The call and the lease keep writers off the streams' stacks (a device sampler's copy of them
  // included) while they are compared, as in add().
  const SamplerCall call(*sampler_);
  StreamLease lease(streams_.get(), envs.data(), rows);
  for (int64_t r = 0; r < rows; ++r) {
    const EnvStream& stream = streams_[envs[r]];
    bool same = stream.in_episode;
    for (int32_t f = 0; f < frame_stack_ && same; ++f) {
      same = std::memcmp(obs.bytes() + r * row_bytes + f * frame_bytes_,
                         sampler_->stack_frame(stream, envs[r], f), frame_bytes_) == 0;
    }
    out[r] = same;
  }
  return result;
}

// ---- read ---------------------------------------------------------------------------------------

BatchTensors ReplayBuffer::empty_batch(int64_t batch_size, bool pooled) const {
  const auto sizes = batched(batch_size, obs_shape_);
  const c10::Device device = sample_device();
  auto empty = [&](c10::IntArrayRef s, at::ScalarType dtype) {
    if (device.is_cpu()) return empty_cpu(s, dtype);
    try {
      return at::empty(s, at::TensorOptions().dtype(dtype).device(device));
    } catch (const c10::OutOfMemoryError&) {
      throw std::bad_alloc();  // as on the CPU: allocate_batch says for what
    }
  };
  // sample() on the CPU takes obs and next_obs from the pool (see BlockPool for why).
  auto [obs, next_obs] = pooled && device.is_cpu()
                             ? obs_blocks_->empty_pair(sizes, obs_dtype_)
                             : std::pair{empty(sizes, obs_dtype_), empty(sizes, obs_dtype_)};
  return {std::move(obs),
          empty({batch_size}, at::kLong),
          empty({batch_size}, at::kFloat),
          std::move(next_obs),
          empty({batch_size}, at::kBool),
          empty({batch_size}, at::kBool),
          empty({batch_size}, at::kFloat),
          empty({batch_size}, at::kLong),
          empty({batch_size}, at::kLong),
          empty({batch_size}, at::kFloat)};
}

void ReplayBuffer::check_batch(const BatchTensors& out, int64_t batch_size) const {
  const auto obs_sizes = batched(batch_size, obs_shape_);
  const std::pair<const at::Tensor*, const char*> fields[] = {
      {&out.obs, "obs"},
      {&out.action, "action"},
      {&out.reward, "reward"},
      {&out.next_obs, "next_obs"},
      {&out.terminated, "terminated"},
      {&out.truncated, "truncated"},
      {&out.discount, "discount"},
      {&out.indices, "indices"},
      {&out.transition_ids, "transition_ids"},
      {&out.weights, "weights"}};
  const at::ScalarType dtypes[] = {obs_dtype_, at::kLong,  at::kFloat, obs_dtype_, at::kBool,
                                   at::kBool,  at::kFloat, at::kLong,  at::kLong,  at::kFloat};
  for (size_t i = 0; i < std::size(fields); ++i) {
    const at::Tensor& t = *fields[i].first;
    const char* name = fields[i].second;
    TORCH_CHECK_VALUE(t.defined() && t.device() == sample_device() && t.is_contiguous(), "out.",
                      name, ": expected a contiguous tensor on ", sample_device(), " (where the ",
                      "buffer samples), got ", t.defined() ? t.device().str() : "None",
                      t.defined() && !t.is_contiguous() ? " (not contiguous)" : "");
    TORCH_CHECK_TYPE(t.scalar_type() == dtypes[i], "out.", name, ": expected dtype ",
                     dtype_text(dtypes[i]), ", got ", dtype_text(t.scalar_type()));
    const bool is_obs = i == 0 || i == 3;
    const std::vector<int64_t> want = is_obs ? obs_sizes : std::vector<int64_t>{batch_size};
    TORCH_CHECK_VALUE(t.sizes() == c10::IntArrayRef(want), "out.", name, ": expected shape ",
                      shape_text(want), ", got ", shape_text(t.sizes()));
  }
  // Every field is written row by row: two that share memory would each hold the other's rows.
  // Each field's span is read once (a pair check then costs two comparisons, ~30 ns in all).
  const std::byte* begin[std::size(fields)];
  const std::byte* end[std::size(fields)];
  for (size_t i = 0; i < std::size(fields); ++i) {
    const at::Tensor& t = *fields[i].first;
    begin[i] = static_cast<const std::byte*>(t.const_data_ptr());
    end[i] = begin[i] + t.numel() * static_cast<int64_t>(t.element_size());
  }
  for (size_t i = 0; i < std::size(fields); ++i) {
    for (size_t j = i + 1; j < std::size(fields); ++j) {
      TORCH_CHECK_VALUE(end[i] <= begin[j] || end[j] <= begin[i], "out: ", fields[i].second,
                        " and ", fields[j].second, " must not share memory");
    }
  }
}

BatchTensors ReplayBuffer::allocate_batch(const char* name, int64_t rows, bool pooled) const {
  constexpr int64_t kFieldBytes = 8 + 4 + 1 + 1 + 4 + 8 + 8 + 4;  // action ... weights, per row
  int64_t obs_bytes = 0, fields_bytes = 0, bytes = 0;
  const bool representable =
      !__builtin_mul_overflow(rows, frame_stack_ * frame_bytes_, &obs_bytes) &&
      !__builtin_mul_overflow(rows, kFieldBytes, &fields_bytes) &&
      !__builtin_mul_overflow(obs_bytes, 2, &bytes) &&
      !__builtin_add_overflow(bytes, fields_bytes, &bytes);
  TORCH_CHECK_VALUE(representable, name, ": a batch of ", rows,
                    " rows is too large: its tensors would hold more than 2^63 bytes");
  try {
    return empty_batch(rows, pooled);
  } catch (const std::bad_alloc&) {
    throw MemoryError(name, ": a batch of ", rows, " rows needs ", bytes, " bytes on ",
                      sample_device(), " (obs and next_obs ", obs_bytes,
                      " each), and allocating them failed");
  }
}

BatchTensors ReplayBuffer::sample(int64_t batch_size, std::optional<double> beta) {
  TORCH_CHECK_VALUE(batch_size >= 1, "batch_size: expected at least 1, got ", batch_size);
  BatchTensors out = allocate_batch("batch_size", batch_size, /*pooled=*/true);
  sample_into(out, beta);
  return out;
}

void ReplayBuffer::sample_into(const BatchTensors& out, std::optional<double> beta) {
  const int64_t batch_size = out.indices.defined() ? out.indices.numel() : 0;
  TORCH_CHECK_VALUE(batch_size >= 1, "batch_size: expected at least 1, got ", batch_size);
  draw_->check_beta(beta);
  const SamplerCall call(*sampler_);
  sampler_->refresh();
  check_batch(out, batch_size);
  TORCH_CHECK_VALUE(size() > 0, "cannot sample from an empty buffer: add transitions first");
  TORCH_CHECK_VALUE(
      size() > incomplete_.load(std::memory_order_relaxed),
      "cannot sample yet: no stored transition has a complete ", n_step_,
      "-step window (one completes n_step transitions later, or at its episode's end)");
  sampler_->sample_into(out, beta);
}

BatchTensors ReplayBuffer::get(const at::Tensor& indices_in) {
  TORCH_CHECK_TYPE(is_integer(indices_in.scalar_type()), "indices: expected integers, got ",
                   dtype_text(indices_in.scalar_type()));
  TORCH_CHECK_VALUE(indices_in.dim() == 1, "indices: expected a 1-D sequence, got shape ",
                    shape_text(indices_in.sizes()));
  const SamplerCall call(*sampler_);
  sampler_->refresh();
  const at::Tensor indices = indices_in.to(at::kCPU, at::kLong).contiguous();
  const int64_t* slots = indices.const_data_ptr<int64_t>();
  const int64_t count = indices.numel();
  const int64_t stored = size();
  for (int64_t i = 0; i < count; ++i) {
    TORCH_CHECK_INDEX(slots[i] >= 0 && slots[i] < stored, "indices: slot ", slots[i],
                      " at position ", i, " is out of range; the buffer holds ", stored,
                      " transitions in slots [0, ", stored, ")");
  }
  auto check_complete = [&](int64_t row) {
    TORCH_CHECK_VALUE(
        TransitionRing::phase_of(ring_.version(slots[row])) != TransitionRing::kCommitted,
        "indices: slot ", slots[row], " at position ", row, " holds a transition whose ", n_step_,
        "-step window is not complete yet");
  };
  BatchTensors out = allocate_batch("indices", count, /*pooled=*/false);
  sampler_->get_into(out, indices, check_complete);
  return out;
}

int64_t ReplayBuffer::update_priorities(const at::Tensor& transition_ids,
                                        const at::Tensor& priorities) {
  return draw_->update_priorities(ring_, transition_ids, priorities);
}

}  // namespace pydqn
