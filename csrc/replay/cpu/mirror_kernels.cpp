#include <c10/util/Exception.h>

#include <cstring>

#include "replay/mirror_kernels.h"
#include "replay/transition_ring.h"

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
    out.action[row] = t.action[slot];
    out.reward[row] = t.reward[slot];
    out.terminated[row] = (t.flags[slot] & kTerminated) != 0;
    out.truncated[row] = (t.flags[slot] & kTruncated) != 0;
    out.discount[row] = t.discount[slot];
    out.indices[row] = slot;
    out.transition_ids[row] = t.transition_id[slot];
    out.weights[row] = weights != nullptr ? weights[row] : 1.0f;
  }
  if (slots == nullptr) t.counters[1] += rows;
}

}  // namespace pydqn
