#pragma once

#include <pybind11/pybind11.h>

#include "replay/replay_state.h"

namespace pydqn {

// A ReplayState as the dict that _C.ReplayBuffer.save_state() returns and load_state() takes:
// its tensors (None where the state has none, as the windows of a buffer with n_step = 1) and
// its numbers, under the keys of replay_state_keys().
pybind11::dict state_to_dict(const ReplayState& state);
// Throws if a key is missing; the buffer's load_state checks the values.
ReplayState state_from_dict(const pybind11::dict& saved);
// Every key of the dict, tensors first (_C.REPLAY_STATE_KEYS).
pybind11::tuple replay_state_keys();

}  // namespace pydqn
