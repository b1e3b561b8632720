#include "replay/mirror_kernels.h"

#include <c10/util/Exception.h>

#include <cstring>

namespace pydqn {

void apply_mirror_update_cpu(const MirrorTables& t, const MirrorUpdate& u) {
  for (int64_t i = 0; i < u.frames; ++i) {
    std::memcpy(reinterpret_cast<std::byte*>(u.frame_address[i]), u.frame_data + i * t.frame_bytes,
                t.frame_bytes);
  }
  auto* chunk_address = const_cast<int64_t*>(t.chunk_address);
  for (int64_t i = 0; i < u.chunks; ++i) chunk_address[u.chunk_index[i]] = u.new_address[i];
  const int64_t k = t.frame_stack;
  for (int64_t i = 0; i < u.rows; ++i) {
    const int64_t slot = u.slots[i];
    std::memcpy(t.obs_ids + slot * k, u.obs_ids + i * k, k * sizeof(int32_t));
    std::memcpy(t.next_ids + slot * k, u.next_ids + i * k, k * sizeof(int32_t));
    t.action[slot] = u.action[i];
    t.reward[slot] = u.reward[i];
    t.discount[slot] = u.discount[i];
    t.flags[slot] = u.flags[i];
    t.transition_id[slot] = u.transition_id[i];
  }
  t.counters[0] = u.stored;
}

void copy_frames_cpu(const MirrorTables& t, const int32_t* ids, int64_t count, std::byte* out) {
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(out + i * t.frame_bytes, t.frame(ids[i]), t.frame_bytes);
}

void gather_transitions_cpu(const MirrorTables& t, const BatchPointers& out, int64_t rows,
                            const int64_t* slots, const float* weights) {
  const int64_t k = t.frame_stack;
  const int64_t row_bytes = k * t.frame_bytes;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t slot = slots != nullptr ? slots[row] : t.draw_slot(row);
    TORCH_CHECK(slot >= 0, "sample: no stored transition is sampleable (every n-step window open)");
    for (int64_t f = 0; f < k; ++f) {
      std::memcpy(out.obs + row * row_bytes + f * t.frame_bytes, t.frame(t.obs_ids[slot * k + f]),
                  t.frame_bytes);
      std::memcpy(out.next_obs + row * row_bytes + f * t.frame_bytes,
                  t.frame(t.next_ids[slot * k + f]), t.frame_bytes);
    }
    t.write_fields(out, row, slot, weights);
  }
  if (slots == nullptr) t.counters[1] = MirrorTables::advanced_draws(t.counters[1], rows);
}

}  // namespace pydqn
