#include "replay/replay_buffer.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>

#include "replay/racy_copy.h"
#include "replay/spin_wait.h"

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
at::Tensor empty_cpu(c10::IntArrayRef sizes, at::ScalarType dtype) {
  return at::Tensor(at::detail::empty_cpu(sizes, dtype));
}

}  // namespace

ReplayBuffer::ReplayBuffer(int64_t capacity, std::vector<int64_t> obs_shape,
                           at::ScalarType obs_dtype, int64_t frame_stack, int64_t num_envs,
                           std::optional<uint64_t> seed, int64_t n_step, double gamma,
                           bool prioritized, double alpha, std::optional<c10::Device> sample_device)
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
    TORCH_CHECK_VALUE(alpha >= 0.0 && alpha <= 1.0, "alpha: expected a value in [0, 1], got ",
                      alpha);
    priorities_ = std::make_unique<Priorities>(capacity, alpha);
  }
  for (int64_t env = 0; env < num_envs; ++env) streams_[env].open_windows.reserve(n_step);
  if (sample_device.has_value()) {
    // Open n-step windows number at most num_envs * (n - 1), twice that just after a load (the
    // loaded ones stay open until evicted): with more slots than that, a full ring always holds
    // a sampleable transition, so a sampling kernel replayed in a CUDA graph always finds one.
    const int64_t open_windows = 2 * num_envs * (n_step - 1);
    TORCH_CHECK_VALUE(capacity > open_windows, "capacity: a buffer that samples on ",
                      *sample_device, " with num_envs=", num_envs, " and n_step=", n_step,
                      " needs more than ", open_windows,
                      " slots (2 * num_envs * (n_step - 1), the n-step windows that ",
                      "can be open at once), got ", capacity);
    stacks_.resize(num_envs * frame_stack_ * frame_bytes_);
    mirror_ = std::make_unique<TransitionMirror>(*sample_device, capacity, frame_stack_,
                                                 frame_bytes_, frames_, rng_.seed());
  }
}

int64_t ReplayBuffer::nbytes() const {
  return frames_.nbytes() + ring_.nbytes() + num_envs_ * static_cast<int64_t>(sizeof(EnvStream)) +
         obs_blocks_->cached_bytes() + (priorities_ ? priorities_->nbytes() : 0) +
         static_cast<int64_t>(stacks_.size()) + device_nbytes();
}

// ---- add
// -----------------------------------------------------------------------------------------

c10::SmallVector<int64_t, 16> ReplayBuffer::check_rows(const TransitionRows& in) const {
  c10::SmallVector<int64_t, 16> envs;
  if (in.env_ids.has_value()) {
    const HostArray& ids = *in.env_ids;
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
    TORCH_CHECK_VALUE(repeat == sorted.end(), "env_ids: each env may appear once per add, got ",
                      *repeat, " more than once");
  } else {
    for (int64_t env = 0; env < num_envs_; ++env) envs.push_back(env);
  }
  const int64_t rows = static_cast<int64_t>(envs.size());
  for (const auto& [a, name] : {std::pair{&in.obs, "obs"}, std::pair{&in.next_obs, "next_obs"}}) {
    TORCH_CHECK_TYPE(a->dtype == obs_dtype_, name, ": expected dtype ", dtype_text(obs_dtype_),
                     " (the buffer's obs_dtype), got ", dtype_text(a->dtype));
    // Compared in place: the expected shape as a vector is a heap allocation, built on failure.
    const bool rows_of_obs = a->dim() == 1 + static_cast<int64_t>(obs_shape_.size()) &&
                             a->shape[0] == rows &&
                             std::equal(obs_shape_.begin(), obs_shape_.end(), a->shape.begin() + 1);
    TORCH_CHECK_VALUE(rows_of_obs, name, ": expected shape ", shape_text(batched(rows, obs_shape_)),
                      " (rows, *obs_shape), got ", shape_text(a->sizes()));
  }
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
      continues &= std::memcmp(frame, stack_frame(env, f), frame_bytes_) == 0;
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
        std::memcmp(obs + f * frame_bytes_, stack_frame(env, f), frame_bytes_) == 0, "env ", env,
        ", episode step ", stream.episode_step, ": obs differs from the next_obs of ",
        "this env's previous transition (frame ", f, " of ", frame_stack_,
        "); an episode continues from its last next_obs, so mark the previous transition "
        "terminated or truncated to start a new one");
  }
  TORCH_INTERNAL_ASSERT(false, "env ", env, ": check_continuity found a difference that is gone");
}

// Writes the frames of one row that the store does not hold yet. A frame equal to the frame just
// before it in the stream (padding at an episode start, a static screen) is referenced again
// instead of stored again, so a stream's distinct frames are consecutive allocations.
void ReplayBuffer::store_frames(const std::byte* obs, const std::byte* next_obs,
                                bool repeats_newest, EnvStream& stream, TransitionRecord& record,
                                c10::SmallVector<FrameSource, 16>* fresh) {
  int32_t* ids = record.frame_ids;
  auto keep = [&](const std::byte* frame, const std::byte* previous, int32_t previous_id) {
    if (previous != nullptr && std::memcmp(frame, previous, frame_bytes_) == 0) return previous_id;
    const int32_t id = stream.new_frame(frames_);
    if (fresh != nullptr) {
      fresh->push_back({id, frame});
    } else {
      copy_to_shared(frames_.frame(id), frame, frame_bytes_);
    }
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
  if (priorities_) {
    // This writer owns the slot until commit: the leaf changes with the transition it describes.
    const int64_t slot = seq % ring_.capacity();
    n_step_ == 1 ? priorities_->set_max(slot) : priorities_->clear(slot);
  }
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
  if (priorities_) priorities_->set_max(seq % ring_.capacity());
  ring_.end_complete(seq, window);
  incomplete_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void ReplayBuffer::advance_windows(EnvStream& stream, int64_t seq, const TransitionRecord& record,
                                   c10::SmallVector<int64_t, 16>* completed) {
  auto& open = stream.open_windows;
  open.push_back({seq, record.reward});
  const bool episode_ended = record.flags != 0;
  // Windows that end here: the oldest when it now spans n transitions, all when the episode ended.
  const size_t closing =
      episode_ended ? open.size() : (open.size() == static_cast<size_t>(n_step_) ? 1 : 0);
  for (size_t w = 0; w < closing; ++w) {
    TransitionWindow window;
    std::copy(stream.stack, stream.stack + frame_stack_, window.next_ids);
    window.flags = record.flags;
    // sum_j gamma^j r_{t+j} by Horner's rule from the window's end, and gamma^m, in float32.
    float reward = open.back().reward, discount = gamma_;
    for (size_t j = open.size() - 1; j-- > w;) {
      reward = open[j].reward + gamma_ * reward;
      discount *= gamma_;
    }
    window.reward = reward;
    window.discount = discount;
    if (complete_window(open[w].seq, window) && completed != nullptr) {
      completed->push_back(open[w].seq);
    }
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

  const MirrorCall call(mirror_.get(), mirror_in_use_);
  refresh_mirror();
  StreamLease lease(streams_.get(), envs.data(), rows);
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
  c10::SmallVector<FrameSource, 16> new_frames;  // for the mirror
  // Transitions whose slots the mirror must copy: each row's, and the windows it closes.
  c10::SmallVector<int64_t, 16> changed;
  const int64_t max_changed = rows * (n_step_ + 1);
  if (mirror_) changed.reserve(max_changed);  // no allocation after the claim
  for (int64_t r = 0; r < rows; ++r) {
    store_frames(obs + r * row_bytes, next_obs + r * row_bytes, repeats_newest[r],
                 streams_[envs[r]], records[r], mirror_ ? &new_frames : nullptr);
    records[r].action = static_cast<int32_t>(in.action.integer(r));
    records[r].reward = static_cast<float>(in.reward.real(r));
    records[r].flags = transition_flags(in.terminated.flag(r), in.truncated.flag(r));
  }
  // Everything the mirror's copy needs is allocated now, before the claim.
  std::optional<TransitionMirror::Staged> staged;
  if (mirror_) staged = mirror_->stage(frames_, new_frames, max_changed);
  // Nothing below can fail (the mirror's submit() allocates nothing, and a device that fails a copy
  // or a kernel launch leaves the process's CUDA context unusable anyway): once claimed, every
  // transition number is committed, because writers of later numbers on the same slot wait for it.
  const int64_t first = ring_.claim(rows);
  for (int64_t r = 0; r < rows; ++r) {
    write_transition(first + r, records[r]);
    slots[r] = (first + r) % ring_.capacity();
    EnvStream& stream = streams_[envs[r]];
    std::copy(records[r].frame_ids + 1, records[r].frame_ids + frame_stack_ + 1, stream.stack);
    stream.in_episode = records[r].flags == 0;
    stream.episode_step = stream.in_episode ? stream.episode_step + 1 : 0;
    ++stream.transitions;
    if (mirror_) {
      changed.push_back(first + r);
      std::memcpy(stacks_.data() + envs[r] * row_bytes, next_obs + r * row_bytes, row_bytes);
    }
    if (n_step_ > 1) advance_windows(stream, first + r, records[r], mirror_ ? &changed : nullptr);
    stream.repin(frames_, frame_stack_);
  }
  if (mirror_) mirror_->submit(*staged, ring_, changed, gamma_, size());
}

void ReplayBuffer::refresh_mirror() {
  if (!mirror_stale_) return;
  const int64_t stored = size();
  std::vector<int64_t> seqs(stored);
  std::iota(seqs.begin(), seqs.end(), ring_.claimed() - stored);
  mirror_->sync(frames_, {}, ring_, seqs, gamma_, stored);
  mirror_stale_ = false;
}

// ---- read
// ----------------------------------------------------------------------------------------

bool ReplayBuffer::try_read(int64_t slot, const BatchPointers& out, int64_t row,
                            double* leaf) const {
  const int64_t version = ring_.read_begin(slot);
  if (version == 0) return false;
  TransitionRecord record;
  TransitionWindow window;
  ring_.load(slot, record);
  ring_.load_window(slot, record, window, gamma_);
  if (leaf != nullptr) *leaf = priorities_->leaf(slot);
  if (!ring_.read_valid(slot, version)) return false;  // the ids must be one record's
  const int64_t row_bytes = frame_stack_ * frame_bytes_;
  std::byte* obs = out.obs + row * row_bytes;
  std::byte* next = out.next_obs + row * row_bytes;
  for (int32_t f = 0; f < frame_stack_; ++f) {
    copy_from_shared(obs + f * frame_bytes_, frames_.frame(record.frame_ids[f]), frame_bytes_);
  }
  if (n_step_ == 1) {
    // next_obs shares all but its newest frame with obs: copy those from the row just written,
    // which is in cache, and read only one more frame from the store.
    std::memcpy(next, obs + frame_bytes_, row_bytes - frame_bytes_);
    copy_from_shared(next + row_bytes - frame_bytes_,
                     frames_.frame(window.next_ids[frame_stack_ - 1]), frame_bytes_);
  } else {
    for (int32_t f = 0; f < frame_stack_; ++f) {
      copy_from_shared(next + f * frame_bytes_, frames_.frame(window.next_ids[f]), frame_bytes_);
    }
  }
  if (!ring_.read_valid(slot, version)) return false;
  out.action[row] = record.action;
  out.reward[row] = window.reward;
  out.terminated[row] = (window.flags & kTerminated) != 0;
  out.truncated[row] = (window.flags & kTruncated) != 0;
  out.discount[row] = window.discount;
  out.indices[row] = slot;
  out.transition_ids[row] = TransitionRing::seq_of(version);
  out.weights[row] = 1.0f;
  return true;
}

BatchTensors ReplayBuffer::empty_batch(int64_t batch_size, bool pooled) const {
  const auto sizes = batched(batch_size, obs_shape_);
  const c10::Device device = sample_device();
  auto empty = [&](c10::IntArrayRef s, at::ScalarType dtype) {
    return device.is_cpu() ? empty_cpu(s, dtype)
                           : at::empty(s, at::TensorOptions().dtype(dtype).device(device));
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
  const auto* obs = static_cast<const std::byte*>(out.obs.const_data_ptr());
  const auto* next = static_cast<const std::byte*>(out.next_obs.const_data_ptr());
  const int64_t bytes = out.obs.nbytes();
  TORCH_CHECK_VALUE(obs + bytes <= next || next + bytes <= obs,
                    "out: obs and next_obs must not share memory");
}

BatchTensors ReplayBuffer::sample(int64_t batch_size, std::optional<double> beta) {
  TORCH_CHECK_VALUE(batch_size >= 1, "batch_size: expected at least 1, got ", batch_size);
  BatchTensors out = empty_batch(batch_size, /*pooled=*/true);
  sample_into(out, beta);
  return out;
}

void ReplayBuffer::sample_into(const BatchTensors& out, std::optional<double> beta) {
  const int64_t batch_size = out.indices.defined() ? out.indices.numel() : 0;
  TORCH_CHECK_VALUE(batch_size >= 1, "batch_size: expected at least 1, got ", batch_size);
  if (priorities_) {
    TORCH_CHECK_VALUE(beta.has_value() && *beta >= 0.0 && *beta <= 1.0,
                      "beta: a prioritized buffer expects a value in [0, 1], got ",
                      beta.has_value() ? std::to_string(*beta) : std::string("None"));
  } else {
    TORCH_CHECK_VALUE(!beta.has_value(), "beta: only a prioritized buffer takes beta (construct ",
                      "it with prioritized=True); uniform sampling has weights of 1");
  }
  const MirrorCall call(mirror_.get(), mirror_in_use_);
  refresh_mirror();
  check_batch(out, batch_size);
  TORCH_CHECK_VALUE(size() > 0, "cannot sample from an empty buffer: add transitions first");
  TORCH_CHECK_VALUE(
      size() > incomplete_.load(std::memory_order_relaxed),
      "cannot sample yet: no stored transition has a complete ", n_step_,
      "-step window (one completes n_step transitions later, or at its episode's end)");
  if (mirror_ && !priorities_) return mirror_->sample_into(out);
  const uint64_t first_draw = rng_.reserve(batch_size);
  if (!priorities_) {
    const BatchPointers pointers(out);
    for (int64_t row = 0; row < batch_size; ++row)
      sample_uniform_row(first_draw + row, pointers, row);
    return;
  }
  // Some stored transition is complete, so its leaf is positive; the trees may lag a concurrent
  // writer's leaf for a moment (update_priorities keeps the sum finite).
  double total = priorities_->total();
  double min_leaf = priorities_->min_leaf();
  for (SpinWait spin; !(total > 0.0 && min_leaf > 0.0 && std::isfinite(min_leaf)); spin.pause()) {
    total = priorities_->total();
    min_leaf = priorities_->min_leaf();
  }
  if (mirror_) {
    // Drawn on the host, from the trees, and gathered on the device. No add() runs meanwhile (the
    // mirror takes one call at a time), and a concurrent priority update holds its slot, which
    // read_begin() sees, so the row is drawn again as on the host sampler.
    const auto [slots, weights] = mirror_->staged_rows(batch_size);
    auto* slot = slots.mutable_data_ptr<int64_t>();
    auto* weight = weights.mutable_data_ptr<float>();
    for (int64_t row = 0; row < batch_size; ++row) {
      weight[row] = draw_prioritized(first_draw + row, batch_size, row, total, min_leaf, *beta,
                                     [&](int64_t s, double* leaf) {
                                       slot[row] = s;
                                       *leaf = priorities_->leaf(s);
                                       return ring_.read_begin(s) != 0;
                                     });
    }
    return mirror_->gather_rows(out, slots, weights);
  }
  const BatchPointers pointers(out);
  for (int64_t row = 0; row < batch_size; ++row) {
    pointers.weights[row] = draw_prioritized(
        first_draw + row, batch_size, row, total, min_leaf, *beta,
        [&](int64_t slot, double* leaf) { return try_read(slot, pointers, row, leaf); });
  }
}

void ReplayBuffer::sample_uniform_row(uint64_t draw, const BatchPointers& out, int64_t row) {
  SpinWait spin;
  // A slot whose window is open, or that is rewritten under the read, is redrawn, which keeps the
  // draw uniform over the transitions that are readable. The redraw derives from the row's own
  // draw, as the sampling kernels' does (TransitionMirror), so a seed gives the same batches on
  // every sampler.
  uint64_t random = rng_.draw(draw);
  while (!try_read(static_cast<int64_t>(CounterRng::below(random, size())), out, row)) {
    random = CounterRng::redraw(random);
    spin.pause();
  }
}

// Stratified: row r of B draws its mass uniformly from [r, r + 1) * total / B, so a batch covers
// the whole distribution (Schaul et al., appendix B.2.1). The weight is (N P(i))^-beta divided by
// the largest weight a stored transition has, which simplifies to (leaf_i / min leaf)^-beta.
template <typename Read>
float ReplayBuffer::draw_prioritized(uint64_t draw, int64_t rows, int64_t row, double total,
                                     double min_leaf, double beta, Read&& read) {
  double lower = total * static_cast<double>(row) / static_cast<double>(rows);
  double width = total / static_cast<double>(rows);
  SpinWait spin;
  for (;;) {
    const double mass =
        std::min(lower + width * CounterRng::unit(rng_.draw(draw)), std::nextafter(total, 0.0));
    const int64_t slot = priorities_->find(mass);
    double leaf = 0.0;  // read with the transition: a writer that takes the slot sets its own
    if (slot < size() && priorities_->leaf(slot) > 0.0 && read(slot, &leaf) && leaf > 0.0) {
      // Smallest normal float at the bottom: a weight is never 0 (a sample always counts).
      const double weight = std::min(1.0, std::pow(leaf / min_leaf, -beta));
      return std::max(static_cast<float>(weight), std::numeric_limits<float>::min());
    }
    // Only concurrent writes land here (a slot rewritten or cleared under the read): redraw from
    // the whole distribution, as a uniform buffer redraws from all slots.
    lower = 0.0;
    width = total;
    draw = rng_.reserve(1);
    spin.pause();
  }
}

BatchTensors ReplayBuffer::get(const at::Tensor& indices_in) {
  TORCH_CHECK_TYPE(is_integer(indices_in.scalar_type()), "indices: expected integers, got ",
                   dtype_text(indices_in.scalar_type()));
  TORCH_CHECK_VALUE(indices_in.dim() == 1, "indices: expected a 1-D sequence, got shape ",
                    shape_text(indices_in.sizes()));
  const MirrorCall call(mirror_.get(), mirror_in_use_);
  refresh_mirror();
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
  BatchTensors out = empty_batch(count, /*pooled=*/false);
  if (mirror_) {
    for (int64_t row = 0; row < count; ++row) check_complete(row);
    mirror_->get_into(out, indices);
    return out;
  }
  const BatchPointers pointers(out);
  for (int64_t row = 0; row < count; ++row) {
    SpinWait spin;
    while (!try_read(slots[row], pointers, row)) {
      check_complete(row);
      spin.pause();  // mid-write: wait for its commit
    }
  }
  return out;
}

}  // namespace pydqn
