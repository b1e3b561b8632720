#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

namespace pydqn {

// The tensors of a batch of transitions, in the order of pydqn.Batch.
struct BatchTensors {
  at::Tensor obs, action, reward, next_obs, terminated, truncated, discount, indices,
      transition_ids, weights;
};

// A batch's data pointers, which the samplers (host and kernel) write row by row.
struct BatchPointers {
  explicit BatchPointers(const BatchTensors& b)
      : obs(static_cast<std::byte*>(b.obs.mutable_data_ptr())),
        next_obs(static_cast<std::byte*>(b.next_obs.mutable_data_ptr())),
        action(b.action.mutable_data_ptr<int64_t>()),
        reward(b.reward.mutable_data_ptr<float>()),
        terminated(b.terminated.mutable_data_ptr<bool>()),
        truncated(b.truncated.mutable_data_ptr<bool>()),
        discount(b.discount.mutable_data_ptr<float>()),
        indices(b.indices.mutable_data_ptr<int64_t>()),
        transition_ids(b.transition_ids.mutable_data_ptr<int64_t>()),
        weights(b.weights.mutable_data_ptr<float>()) {}
  std::byte* obs;
  std::byte* next_obs;
  int64_t* action;
  float* reward;
  bool* terminated;
  bool* truncated;
  float* discount;
  int64_t* indices;
  int64_t* transition_ids;
  float* weights;
};

}  // namespace pydqn
