#include "bindings/state_conversion.h"

#include <torch/csrc/utils/pybind.h>

#include <utility>

namespace py = pybind11;

namespace pydqn {
namespace {

// The tensors of a ReplayState by their key; with its numbers (kStateNumbers) these are all the
// keys, which state_to_dict and state_from_dict both use.
constexpr std::pair<const char*, at::Tensor ReplayState::*> kStateTensors[] = {
    {"frames", &ReplayState::frames},
    {"frame_ids", &ReplayState::frame_ids},
    {"action", &ReplayState::action},
    {"reward", &ReplayState::reward},
    {"terminated", &ReplayState::terminated},
    {"truncated", &ReplayState::truncated},
    {"complete", &ReplayState::complete},
    {"window_ids", &ReplayState::window_ids},
    {"window_reward", &ReplayState::window_reward},
    {"window_discount", &ReplayState::window_discount},
    {"window_terminated", &ReplayState::window_terminated},
    {"window_truncated", &ReplayState::window_truncated},
    {"priorities", &ReplayState::priorities}};
constexpr const char* kStateNumbers[] = {"added", "max_priority", "rng_seed", "rng_draws"};

py::object or_none(const at::Tensor& t) { return t.defined() ? py::cast(t) : py::none(); }

}  // namespace

py::dict state_to_dict(const ReplayState& state) {
  py::dict dict;
  for (const auto& [key, member] : kStateTensors) dict[key] = or_none(state.*member);
  dict["added"] = state.added;
  dict["max_priority"] = state.max_priority;
  dict["rng_seed"] = state.rng_seed;
  dict["rng_draws"] = state.rng_draws;
  return dict;
}

ReplayState state_from_dict(const py::dict& saved) {
  auto tensor = [&](const char* key) {
    TORCH_CHECK_VALUE(saved.contains(key), "state: missing '", key, "'");
    const py::handle value = saved[key];
    return value.is_none() ? at::Tensor() : value.cast<at::Tensor>();
  };
  ReplayState state;
  for (const auto& [key, member] : kStateTensors) state.*member = tensor(key);
  state.added = saved["added"].cast<int64_t>();
  state.max_priority = saved["max_priority"].cast<double>();
  state.rng_seed = saved["rng_seed"].cast<uint64_t>();
  state.rng_draws = saved["rng_draws"].cast<uint64_t>();
  return state;
}

py::tuple replay_state_keys() {
  py::list keys;
  for (const auto& [key, member] : kStateTensors) keys.append(key);
  for (const char* key : kStateNumbers) keys.append(key);
  return py::tuple(keys);
}

}  // namespace pydqn
