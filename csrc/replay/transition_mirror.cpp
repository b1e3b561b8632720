#include "replay/transition_mirror.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>

namespace pydqn {
namespace {

// Frame bytes per packed update at most (a load syncs the whole buffer, in pieces of this size).
constexpr int64_t kMaxUpdateBytes = int64_t{64} << 20;
// Device memory for frames is allocated in blocks of about this many bytes.
constexpr int64_t kBlockBytes = int64_t{64} << 20;

// Blocks of at most kBlockBytes, and at most 1/32 of the frames a full buffer references once each,
// so that a block not yet filled is a small part of the device memory.
int64_t chunks_per_block(int64_t capacity, int32_t chunk_frames, int64_t frame_bytes) {
  const int64_t by_bytes = kBlockBytes / (int64_t{chunk_frames} * frame_bytes);
  const int64_t by_capacity = capacity / (int64_t{chunk_frames} * 32);
  return std::max<int64_t>(1, std::min(by_bytes, by_capacity));
}

template <typename T>
T* at_offset(std::byte* base, int64_t offset) {
  return reinterpret_cast<T*>(base + offset);
}

}  // namespace

PackedLayout::PackedLayout(int64_t frames, int64_t frame_bytes, int64_t chunks, int64_t rows,
                           int64_t k) {
  frame_data = section(frames * frame_bytes);
  frame_address = section(frames * 8);
  chunk_index = section(chunks * 8);
  new_address = section(chunks * 8);
  slots = section(rows * 8);
  obs_ids = section(rows * k * 4);
  next_ids = section(rows * k * 4);
  action = section(rows * 4);
  reward = section(rows * 4);
  discount = section(rows * 4);
  transition_id = section(rows * 8);
  flags = section(rows);
}

int64_t PackedLayout::section(int64_t bytes) {
  const int64_t start = total;
  total += (bytes + 15) / 16 * 16;
  return start;
}

TransitionMirror::TransitionMirror(c10::Device device, int64_t capacity, int32_t frame_stack,
                                   int64_t frame_bytes, const FrameStore& layout, uint64_t seed)
    : device_(device),
      frame_stack_(frame_stack),
      frame_bytes_(frame_bytes),
      chunk_frames_(layout.chunk_frames()),
      chunk_shift_(layout.chunk_shift()),
      chunks_per_block_(chunks_per_block(capacity, layout.chunk_frames(), frame_bytes)),
      host_chunk_address_(layout.max_chunks(), 0),
      chunk_published_(layout.max_chunks(), false) {
  TORCH_CHECK_VALUE(device.is_cpu() || device.is_cuda(), "device: expected 'cpu' or 'cuda', got ",
                    device);
#ifndef PYDQN_WITH_CUDA
  TORCH_CHECK_VALUE(device.is_cpu(), "device: pydqn was built without CUDA kernels (a CPU torch, ",
                    "or no nvcc at build time), so a buffer cannot live on ", device,
                    "; rebuild it against a CUDA torch with nvcc present");
#endif
  const c10::DeviceGuard guard(device_);
  const auto on_device = at::TensorOptions().device(device_);
  chunk_address_ = at::zeros({layout.max_chunks()}, on_device.dtype(at::kLong));
  obs_ids_ = at::zeros({capacity, frame_stack}, on_device.dtype(at::kInt));
  next_ids_ = at::zeros({capacity, frame_stack}, on_device.dtype(at::kInt));
  action_ = at::zeros({capacity}, on_device.dtype(at::kInt));
  reward_ = at::zeros({capacity}, on_device.dtype(at::kFloat));
  discount_ = at::zeros({capacity}, on_device.dtype(at::kFloat));
  flags_ = at::zeros({capacity}, on_device.dtype(at::kByte));
  transition_id_ = at::full({capacity}, -1, on_device.dtype(at::kLong));
  counters_ = at::zeros({3}, on_device.dtype(at::kLong));
  for (const at::Tensor* t : {&chunk_address_, &obs_ids_, &next_ids_, &action_, &reward_,
                              &discount_, &flags_, &transition_id_, &counters_}) {
    nbytes_ += t->nbytes();
  }
  restore_rng(seed, 0);
}

TransitionMirror::~TransitionMirror() {
#ifdef PYDQN_WITH_CUDA
  if (device_.is_cuda()) destroy_cuda_stream_order(order_);
#endif
}

template <typename Work>
void TransitionMirror::ordered(const char* call, bool capturable, Work&& work) const {
  const c10::DeviceGuard guard(device_);
#ifdef PYDQN_WITH_CUDA
  if (device_.is_cuda()) {
    begin_cuda_call(order_, capturable, call);
    try {
      work();
    } catch (...) {
      end_cuda_call(order_);  // what the call queued before it failed is ordered too
      throw;
    }
    end_cuda_call(order_);
    return;
  }
#endif
  work();
}

MirrorTables TransitionMirror::tables() const {
  return {chunk_address_.const_data_ptr<int64_t>(),
          chunk_shift_,
          frame_bytes_,
          frame_stack_,
          obs_ids_.mutable_data_ptr<int32_t>(),
          next_ids_.mutable_data_ptr<int32_t>(),
          action_.mutable_data_ptr<int32_t>(),
          reward_.mutable_data_ptr<float>(),
          discount_.mutable_data_ptr<float>(),
          flags_.mutable_data_ptr<uint8_t>(),
          transition_id_.mutable_data_ptr<int64_t>(),
          counters_.mutable_data_ptr<int64_t>()};
}

int64_t TransitionMirror::chunk_address(int32_t chunk) {
  if (host_chunk_address_[chunk] != 0) return host_chunk_address_[chunk];
  const int64_t block = chunk / chunks_per_block_;
  if (static_cast<int64_t>(blocks_.size()) <= block) blocks_.resize(block + 1);
  if (!blocks_[block].defined()) {
    const int64_t chunk_bytes = int64_t{chunk_frames_} * frame_bytes_;
    blocks_[block] = at::empty({chunks_per_block_ * chunk_bytes},
                               at::TensorOptions().dtype(at::kByte).device(device_));
    nbytes_ += blocks_[block].nbytes();
  }
  const int64_t offset = (chunk % chunks_per_block_) * int64_t{chunk_frames_} * frame_bytes_;
  host_chunk_address_[chunk] = reinterpret_cast<int64_t>(
      static_cast<std::byte*>(blocks_[block].mutable_data_ptr()) + offset);
  return host_chunk_address_[chunk];
}

TransitionMirror::Staged TransitionMirror::stage(const FrameStore& store,
                                                 std::span<const FrameSource> frames,
                                                 int64_t max_rows) {
  const c10::DeviceGuard guard(device_);
  std::vector<int32_t> new_chunks;
  for (const FrameSource& frame : frames) {
    const int32_t chunk = store.chunk_of(frame.id);
    if (!chunk_published_[chunk] &&
        std::find(new_chunks.begin(), new_chunks.end(), chunk) == new_chunks.end()) {
      chunk_address(chunk);
      new_chunks.push_back(chunk);
    }
  }
  const int64_t count = static_cast<int64_t>(frames.size());
  const int64_t chunks = static_cast<int64_t>(new_chunks.size());
  Staged staged{PackedLayout(count, frame_bytes_, chunks, max_rows, frame_stack_),
                {},
                {},
                std::move(new_chunks),
                count,
                max_rows};
  const PackedLayout& layout = staged.layout;
  staged.host = at::empty({layout.total},
                          at::TensorOptions().dtype(at::kByte).pinned_memory(device_.is_cuda()));
  staged.device =
      device_.is_cuda()
          ? at::empty({layout.total}, at::TensorOptions().dtype(at::kByte).device(device_))
          : staged.host;
  auto* base = static_cast<std::byte*>(staged.host.mutable_data_ptr());
  for (int64_t i = 0; i < count; ++i) {
    const int32_t id = frames[i].id;
    std::memcpy(base + layout.frame_data + i * frame_bytes_, frames[i].bytes, frame_bytes_);
    at_offset<int64_t>(base, layout.frame_address)[i] =
        host_chunk_address_[store.chunk_of(id)] + store.offset_in_chunk(id) * frame_bytes_;
  }
  for (int64_t i = 0; i < chunks; ++i) {
    at_offset<int64_t>(base, layout.chunk_index)[i] = staged.new_chunks[i];
    at_offset<int64_t>(base, layout.new_address)[i] = host_chunk_address_[staged.new_chunks[i]];
  }
  return staged;
}

void TransitionMirror::submit(Staged& staged, const TransitionRing& ring,
                              std::span<const int64_t> seqs, float gamma, int64_t stored,
                              const char* call) {
  const PackedLayout& layout = staged.layout;
  const int64_t capacity = ring.capacity();
  const int64_t k = frame_stack_;
  std::vector<int64_t> slots(seqs.size());
  std::transform(seqs.begin(), seqs.end(), slots.begin(),
                 [&](int64_t seq) { return seq % capacity; });
  std::sort(slots.begin(), slots.end());
  slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  const int64_t rows = static_cast<int64_t>(slots.size());
  TORCH_INTERNAL_ASSERT(rows <= staged.max_rows, "mirror: ", rows, " slots staged for ",
                        staged.max_rows);
  auto* base = static_cast<std::byte*>(staged.host.mutable_data_ptr());
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t slot = slots[i];
    const int64_t version = ring.version(slot);
    TransitionRecord record;
    ring.load(slot, record);
    TransitionWindow window;
    const bool complete = TransitionRing::phase_of(version) == TransitionRing::kComplete;
    if (complete) {
      ring.load_window(slot, record, window, gamma);
    } else {  // its window is open: not sampleable, and get() refuses it on the host
      std::copy(record.frame_ids + 1, record.frame_ids + k + 1, window.next_ids);
      window.reward = record.reward;
      window.discount = gamma;
      window.flags = record.flags;
    }
    at_offset<int64_t>(base, layout.slots)[i] = slot;
    std::copy(record.frame_ids, record.frame_ids + k,
              at_offset<int32_t>(base, layout.obs_ids) + i * k);
    std::copy(window.next_ids, window.next_ids + k,
              at_offset<int32_t>(base, layout.next_ids) + i * k);
    at_offset<int32_t>(base, layout.action)[i] = record.action;
    at_offset<float>(base, layout.reward)[i] = window.reward;
    at_offset<float>(base, layout.discount)[i] = window.discount;
    at_offset<int64_t>(base, layout.transition_id)[i] =
        complete ? TransitionRing::seq_of(version) : -1;
    at_offset<uint8_t>(base, layout.flags)[i] = window.flags;
  }
  ordered(call, /*capturable=*/false, [&] {
    // The pinned buffer is recycled only after the copy ran (the caching host allocator records
    // the copy on the stream), and the device buffer only by work ordered after the kernel.
    if (device_.is_cuda()) staged.device.copy_(staged.host, /*non_blocking=*/true);
    const auto* data = static_cast<const std::byte*>(staged.device.const_data_ptr());
    MirrorUpdate update;
    update.frame_data = data + layout.frame_data;
    update.frame_address = reinterpret_cast<const int64_t*>(data + layout.frame_address);
    update.chunk_index = reinterpret_cast<const int64_t*>(data + layout.chunk_index);
    update.new_address = reinterpret_cast<const int64_t*>(data + layout.new_address);
    update.slots = reinterpret_cast<const int64_t*>(data + layout.slots);
    update.obs_ids = reinterpret_cast<const int32_t*>(data + layout.obs_ids);
    update.next_ids = reinterpret_cast<const int32_t*>(data + layout.next_ids);
    update.action = reinterpret_cast<const int32_t*>(data + layout.action);
    update.reward = reinterpret_cast<const float*>(data + layout.reward);
    update.discount = reinterpret_cast<const float*>(data + layout.discount);
    update.flags = reinterpret_cast<const uint8_t*>(data + layout.flags);
    update.transition_id = reinterpret_cast<const int64_t*>(data + layout.transition_id);
    update.frames = staged.frames;
    update.chunks = static_cast<int64_t>(staged.new_chunks.size());
    update.rows = rows;
    update.stored = stored;
    apply(update);
  });
  for (const int32_t chunk : staged.new_chunks) chunk_published_[chunk] = true;
}

void TransitionMirror::sync(const FrameStore& store, std::span<const FrameSource> frames,
                            const TransitionRing& ring, std::span<const int64_t> seqs, float gamma,
                            int64_t stored) {
  const size_t per_update = std::max<int64_t>(1, kMaxUpdateBytes / frame_bytes_);
  size_t next = 0;
  do {  // frames in pieces; the slots, which reference them, with the last piece
    const auto piece = frames.subspan(next, std::min(per_update, frames.size() - next));
    next += piece.size();
    const bool last = next == frames.size();
    Staged staged = stage(store, piece, last ? static_cast<int64_t>(seqs.size()) : 0);
    submit(staged, ring, last ? seqs : std::span<const int64_t>(), gamma, stored, "add()");
  } while (next < frames.size());
}

void TransitionMirror::apply(const MirrorUpdate& update) {
#ifdef PYDQN_WITH_CUDA
  if (device_.is_cuda()) return apply_mirror_update_cuda(tables(), update);
#endif
  apply_mirror_update_cpu(tables(), update);
}

void TransitionMirror::gather(const BatchTensors& out, const at::Tensor& slots,
                              const at::Tensor& weights) {
  const BatchPointers pointers(out);
  const int64_t rows = out.indices.numel();
  const int64_t* picked = slots.defined() ? slots.const_data_ptr<int64_t>() : nullptr;
  const float* weighted = weights.defined() ? weights.const_data_ptr<float>() : nullptr;
  if (rows == 0) return;
#ifdef PYDQN_WITH_CUDA
  if (device_.is_cuda()) return gather_transitions_cuda(tables(), pointers, rows, picked, weighted);
#endif
  gather_transitions_cpu(tables(), pointers, rows, picked, weighted);
}

void TransitionMirror::sample_into(const BatchTensors& out) {
  ordered("sample()", /*capturable=*/true, [&] { gather(out, at::Tensor(), at::Tensor()); });
}

void TransitionMirror::get_into(const BatchTensors& out, const at::Tensor& slots) {
  ordered("get()", /*capturable=*/false,
          [&] { gather(out, slots.to(device_, at::kLong).contiguous(), at::Tensor()); });
}

std::pair<at::Tensor, at::Tensor> TransitionMirror::staged_rows(int64_t rows) const {
  const auto host = at::TensorOptions().pinned_memory(device_.is_cuda());
  return {at::empty({rows}, host.dtype(at::kLong)), at::empty({rows}, host.dtype(at::kFloat))};
}

void TransitionMirror::gather_rows(const BatchTensors& out, const at::Tensor& slots,
                                   const at::Tensor& weights) {
  // Slots drawn on the host: a prioritized sample cannot be replayed by a CUDA graph.
  ordered("sample() of a prioritized buffer", /*capturable=*/false, [&] {
    gather(out, slots.to(device_, /*non_blocking=*/true),
           weights.to(device_, /*non_blocking=*/true));
  });
}

at::Tensor TransitionMirror::read_frames(std::span<const int32_t> ids) const {
  const int64_t count = static_cast<int64_t>(ids.size());
  at::Tensor frames;
  ordered("state_dict()", /*capturable=*/false, [&] {
    const at::Tensor on_device =
        at::from_blob(const_cast<int32_t*>(ids.data()), {count}, at::kInt).to(device_);
    frames = at::empty({count, frame_bytes_}, at::TensorOptions().dtype(at::kByte).device(device_));
    auto* out = static_cast<std::byte*>(frames.mutable_data_ptr());
    if (count == 0) return;
#ifdef PYDQN_WITH_CUDA
    if (device_.is_cuda())
      return copy_frames_cuda(tables(), on_device.const_data_ptr<int32_t>(), count, out);
#endif
    copy_frames_cpu(tables(), on_device.const_data_ptr<int32_t>(), count, out);
  });
  return frames.cpu();
}

uint64_t TransitionMirror::draws() const {
  int64_t draws = 0;
  ordered("state_dict()", /*capturable=*/false, [&] { draws = counters_[1].item<int64_t>(); });
  return static_cast<uint64_t>(draws);
}

void TransitionMirror::restore_rng(uint64_t seed, uint64_t draws) {
  const int64_t values[] = {static_cast<int64_t>(draws), static_cast<int64_t>(seed)};
  ordered("load_state_dict()", /*capturable=*/false, [&] {
    counters_.slice(0, 1, 3).copy_(at::from_blob(const_cast<int64_t*>(values), {2}, at::kLong));
  });
}

}  // namespace pydqn
