// pydqn._C: the ReplayBuffer class, its size limits and state keys, and the segment trees. The
// ops (stack_gather, td_target, q_td_loss) register themselves with TORCH_LIBRARY in csrc/ops/.
// Only the translation units under csrc/bindings/ see pybind11 and torch's Python glue (the slow
// headers).
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <vector>

#include "bindings/arg_conversion.h"
#include "bindings/fast_add.h"
#include "bindings/state_conversion.h"
#include "replay/frame_store.h"
#include "replay/replay_buffer.h"
#include "replay/segment_tree.h"
#include "replay/transition_ring.h"

namespace py = pybind11;

namespace pydqn {
namespace {

py::tuple to_tuple(const BatchTensors& b) {
  return py::make_tuple(b.obs, b.action, b.reward, b.next_obs, b.terminated, b.truncated,
                        b.discount, b.indices, b.transition_ids, b.weights);
}

BatchTensors from_sequence(const std::vector<at::Tensor>& fields) {
  TORCH_CHECK_VALUE(fields.size() == 10,
                    "out: expected a Batch of 10 tensors (obs, action, reward, next_obs, "
                    "terminated, truncated, discount, indices, transition_ids, weights), got ",
                    fields.size());
  return {fields[0], fields[1], fields[2], fields[3], fields[4],
          fields[5], fields[6], fields[7], fields[8], fields[9]};
}

// The largest values the buffer's constructor (and a loaded state's count) accept, so the Python
// facade checks the same.
py::dict limits() {
  py::dict limits;
  limits["frame_stack"] = kMaxFrameStack;
  limits["num_envs"] = kMaxNumEnvs;
  limits["n_step"] = kMaxNStep;
  limits["capacity"] = kMaxCapacity;
  limits["added"] = kMaxTransitions;  // a loaded state's transitions ever added, at most
  return limits;
}

// Tensor arguments are converted while the GIL is held; the copying runs without it. add() is
// installed beside these methods by install_fast_add.
void bind_replay_buffer(py::module_& m) {
  py::class_<ReplayBuffer>(m, "ReplayBuffer")
      .def(py::init<int64_t, std::vector<int64_t>, at::ScalarType, int64_t, int64_t,
                    std::optional<uint64_t>, int64_t, double, bool, double,
                    std::optional<c10::Device>>(),
           py::arg("capacity"), py::arg("obs_shape"), py::arg("obs_dtype"), py::arg("frame_stack"),
           py::arg("num_envs"), py::arg("seed"), py::arg("n_step"), py::arg("gamma"),
           py::arg("prioritized"), py::arg("alpha"), py::arg("sample_device") = py::none())
      .def(
          "sample",
          [](ReplayBuffer& self, int64_t batch_size, std::optional<double> beta) {
            BatchTensors batch;
            {
              py::gil_scoped_release nogil;
              batch = self.sample(batch_size, beta);
            }
            return to_tuple(batch);
          },
          py::arg("batch_size"), py::arg("beta") = py::none())
      .def(
          "sample_into",
          [](ReplayBuffer& self, const std::vector<at::Tensor>& out, std::optional<double> beta) {
            const BatchTensors batch = from_sequence(out);
            py::gil_scoped_release nogil;
            self.sample_into(batch, beta);
          },
          py::arg("out"), py::arg("beta") = py::none())
      .def(
          "end_episodes",
          [](ReplayBuffer& self, py::handle env_ids) {
            HostArgs host;  // as add() reads its env_ids; destroyed with the GIL held
            std::optional<HostArray> ids;
            if (!env_ids.is_none()) ids = host.view(env_ids, "env_ids");
            py::gil_scoped_release nogil;
            return self.end_episodes(ids);
          },
          py::arg("env_ids") = py::none())
      .def(
          "continues",
          [](ReplayBuffer& self, py::handle obs, py::handle env_ids) {
            HostArgs host;  // as add() reads its obs and env_ids
            const HostArray rows = host.view(obs, "obs");
            std::optional<HostArray> ids;
            if (!env_ids.is_none()) ids = host.view(env_ids, "env_ids");
            at::Tensor result;
            {
              py::gil_scoped_release nogil;
              result = self.continues(rows, ids);
            }
            return result;
          },
          py::arg("obs"), py::arg("env_ids") = py::none())
      .def(
          "update_priorities",
          [](ReplayBuffer& self, const at::Tensor& transition_ids, const at::Tensor& priorities) {
            py::gil_scoped_release nogil;
            return self.update_priorities(transition_ids, priorities);
          },
          py::arg("transition_ids"), py::arg("priorities"))
      .def(
          "get",
          [](ReplayBuffer& self, const at::Tensor& indices) {
            BatchTensors batch;
            {
              py::gil_scoped_release nogil;
              batch = self.get(indices);
            }
            return to_tuple(batch);
          },
          py::arg("indices"))
      .def("save_state",
           [](const ReplayBuffer& self) {
             ReplayState state;
             {
               py::gil_scoped_release nogil;
               state = self.save_state();
             }
             return state_to_dict(state);
           })
      .def(
          "load_state",
          [](ReplayBuffer& self, const py::dict& saved) {
            const ReplayState state = state_from_dict(saved);
            py::gil_scoped_release nogil;
            self.load_state(state);
          },
          py::arg("state"))
      .def("__len__", &ReplayBuffer::size)
      .def_property_readonly("capacity", &ReplayBuffer::capacity)
      .def_property_readonly("nbytes", &ReplayBuffer::nbytes)
      .def_property_readonly("device_nbytes", &ReplayBuffer::device_nbytes);
  install_fast_add(m.attr("ReplayBuffer"));
}

// The segment trees of prioritized replay, bound on their own for the tests.
template <typename Tree>
void bind_tree(py::module_& m, const char* name) {
  py::class_<Tree>(m, name)
      .def(py::init<int64_t>(), py::arg("capacity"))
      .def("set",
           [](Tree& self, int64_t index, double value) {
             TORCH_CHECK_INDEX(index >= 0 && index < self.leaves(), "index: expected [0, ",
                               self.leaves(), "), got ", index);
             self.set(index, value);
           })
      .def("get", &Tree::get)
      .def("find_prefix", &Tree::find_prefix)
      .def_property_readonly("root", &Tree::root)
      .def_property_readonly("leaves", &Tree::leaves);
}

}  // namespace
}  // namespace pydqn

PYBIND11_MODULE(_C, m) {
  pydqn::import_numpy();
  m.doc() = "pydqn's private C++ extension; use the typed wrappers in the pydqn package.";
  m.attr("TORCH_VERSION") = PYDQN_TORCH_VERSION;
#ifdef PYDQN_WITH_CUDA
  m.attr("WITH_CUDA") = true;  // the ops' CUDA kernels are compiled in
#else
  m.attr("WITH_CUDA") = false;
#endif
  m.attr("LIMITS") = pydqn::limits();
  m.attr("REPLAY_STATE_KEYS") = pydqn::replay_state_keys();
  pydqn::bind_replay_buffer(m);
  pydqn::bind_tree<pydqn::SumTree>(m, "SumTree");
  pydqn::bind_tree<pydqn::MinTree>(m, "MinTree");
}
