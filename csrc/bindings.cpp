// The only translation unit that sees pybind11 and torch's Python glue (the slow headers).
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include "replay/replay_buffer.h"

namespace py = pybind11;

namespace {

py::tuple to_tuple(const pydqn::BatchTensors& b) {
  return py::make_tuple(b.obs, b.action, b.reward, b.next_obs, b.terminated, b.truncated,
                        b.indices);
}

pydqn::BatchTensors from_sequence(const std::vector<at::Tensor>& fields) {
  TORCH_CHECK_VALUE(fields.size() == 7,
                    "out: expected a Batch of 7 tensors (obs, action, reward, next_obs, "
                    "terminated, truncated, indices), got ",
                    fields.size());
  return {fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]};
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pydqn's private C++ extension; use the typed wrappers in the pydqn package.";
  m.attr("TORCH_VERSION") = PYDQN_TORCH_VERSION;

  using pydqn::ReplayBuffer;
  // Tensor arguments are converted while the GIL is held; the copying runs without it.
  py::class_<ReplayBuffer>(m, "ReplayBuffer")
      .def(py::init<int64_t, std::vector<int64_t>, at::ScalarType, int64_t, int64_t,
                    std::optional<uint64_t>>(),
           py::arg("capacity"), py::arg("obs_shape"), py::arg("obs_dtype"), py::arg("frame_stack"),
           py::arg("num_envs"), py::arg("seed"))
      .def("add", &ReplayBuffer::add, py::call_guard<py::gil_scoped_release>())
      .def(
          "sample",
          [](ReplayBuffer& self, int64_t batch_size) {
            pydqn::BatchTensors batch;
            {
              py::gil_scoped_release nogil;
              batch = self.sample(batch_size);
            }
            return to_tuple(batch);
          },
          py::arg("batch_size"))
      .def(
          "sample_into",
          [](ReplayBuffer& self, const std::vector<at::Tensor>& out) {
            const pydqn::BatchTensors batch = from_sequence(out);
            py::gil_scoped_release nogil;
            self.sample_into(batch);
          },
          py::arg("out"))
      .def(
          "get",
          [](ReplayBuffer& self, const at::Tensor& indices) {
            pydqn::BatchTensors batch;
            {
              py::gil_scoped_release nogil;
              batch = self.get(indices);
            }
            return to_tuple(batch);
          },
          py::arg("indices"))
      .def("__len__", &ReplayBuffer::size)
      .def_property_readonly("capacity", &ReplayBuffer::capacity)
      .def_property_readonly("nbytes", &ReplayBuffer::nbytes)
      .def_property_readonly("frames_allocated", &ReplayBuffer::frames_allocated);
}
