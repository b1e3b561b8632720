#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "replay/replay_state.h"

namespace pydqn {

// The settings of the buffer a state is loaded into, which decide the shapes and values its
// fields may have.
struct StateLayout {
  int64_t capacity;
  int32_t frame_stack;
  int64_t frame_bytes;
  int32_t n_step;
  float gamma;  // as the buffer computes with it
};

// The state with every tensor contiguous and its negation bit resolved, so that the values checked
// are the values loaded (undefined tensors stay undefined); copies only what needs it.
ReplayState dense_state(const ReplayState& state);

// Checks every field of a dense_state() except the draw strategy's (DrawStrategy::check_saved):
// types, shapes, counters within their bounds, values that a buffer can have produced. Throws a
// c10::Error naming the field on the first violation.
void check_state(const ReplayState& state, const StateLayout& layout);

// Checks that state[name] is a dense CPU tensor of `dtype` and shape `sizes` (the error names the
// key and says what came).
void check_state_field(const at::Tensor& t, const char* name, at::ScalarType dtype,
                       c10::IntArrayRef sizes);
// Checks that a field the buffer does not keep (`why`) is None.
void check_state_absent(const at::Tensor& t, const char* name, const char* why);
// Checks that the first `rows` values of bool field state[name] are stored as 0 or 1 (a bool
// tensor viewed from other bytes can hold anything, and reading such a byte as bool is undefined).
void check_state_bools(const at::Tensor& t, const char* name, int64_t rows);

}  // namespace pydqn
