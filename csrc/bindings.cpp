// The only translation unit that sees pybind11 and torch's Python glue (the slow headers).
#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <deque>
#include <optional>

#include "replay/replay_buffer.h"

namespace py = pybind11;

namespace {

// The dtype of a buffer-protocol format string, for the formats numpy uses on this platform.
std::optional<at::ScalarType> dtype_of_format(const char* format, Py_ssize_t itemsize) {
  if (format == nullptr) return at::kByte;
  if (*format == '@' || *format == '=' || *format == '<') ++format;
  if (format[0] == '\0' || format[1] != '\0') return std::nullopt;
  std::optional<at::ScalarType> dtype;
  switch (format[0]) {
    case '?': dtype = at::kBool; break;
    case 'b': dtype = at::kChar; break;
    case 'B': dtype = at::kByte; break;
    case 'h': dtype = at::kShort; break;
    case 'i': dtype = at::kInt; break;
    case 'l': case 'q': dtype = at::kLong; break;
    case 'e': dtype = at::kHalf; break;
    case 'f': dtype = at::kFloat; break;
    case 'd': dtype = at::kDouble; break;
    default: return std::nullopt;
  }
  if (static_cast<Py_ssize_t>(c10::elementSize(*dtype)) != itemsize) return std::nullopt;
  return dtype;
}

// Views add()'s Python arguments as HostArrays and keeps what backs them alive for the call: numpy
// arrays are read in place through the buffer protocol; tensors on another device or with gaps,
// and lists or scalars, become CPU tensors first. Destroy with the GIL held.
class HostArgs {
 public:
  HostArgs() = default;
  HostArgs(const HostArgs&) = delete;
  HostArgs& operator=(const HostArgs&) = delete;
  ~HostArgs() {
    for (Py_buffer& buffer : buffers_) PyBuffer_Release(&buffer);
  }

  pydqn::HostArray view(py::handle value, const char* name) {
    if (THPVariable_Check(value.ptr())) return from_tensor(THPVariable_Unpack(value.ptr()));
    if (PyObject_CheckBuffer(value.ptr())) {
      Py_buffer buffer;
      if (PyObject_GetBuffer(value.ptr(), &buffer, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
        if (auto dtype = dtype_of_format(buffer.format, buffer.itemsize)) {
          buffers_.push_back(buffer);
          pydqn::HostArray array{buffer.buf, *dtype, {}};
          array.shape.assign(buffer.shape, buffer.shape + buffer.ndim);
          return array;
        }
        PyBuffer_Release(&buffer);
      } else {
        PyErr_Clear();  // not C-contiguous: torch copies it below
      }
    }
    py::object tensor;
    try {
      tensor = py::module_::import("torch").attr("as_tensor")(value);
    } catch (py::error_already_set& error) {
      TORCH_CHECK_TYPE(false, name, ": expected a numpy array or torch tensor, got ",
                       py::str(py::type::handle_of(value).attr("__name__")).cast<std::string>(),
                       " (", error.what(), ")");
    }
    return from_tensor(THPVariable_Unpack(tensor.ptr()));
  }

 private:
  pydqn::HostArray from_tensor(at::Tensor tensor) {
    if (!tensor.device().is_cpu()) tensor = tensor.cpu();
    tensor = tensor.contiguous().resolve_conj().resolve_neg();
    tensors_.push_back(tensor);
    pydqn::HostArray array{tensor.const_data_ptr(), tensor.scalar_type(), {}};
    array.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
    return array;
  }

  std::deque<Py_buffer> buffers_;
  std::vector<at::Tensor> tensors_;
};

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
      .def(
          "add",
          [](ReplayBuffer& self, py::handle obs, py::handle action, py::handle reward,
             py::handle next_obs, py::handle terminated, py::handle truncated,
             py::handle env_ids) {
            HostArgs args;
            pydqn::TransitionRows rows{args.view(obs, "obs"),
                                       args.view(action, "action"),
                                       args.view(reward, "reward"),
                                       args.view(next_obs, "next_obs"),
                                       args.view(terminated, "terminated"),
                                       args.view(truncated, "truncated"),
                                       std::nullopt};
            if (!env_ids.is_none()) rows.env_ids = args.view(env_ids, "env_ids");
            at::Tensor slots;
            {
              py::gil_scoped_release nogil;
              slots = self.add(rows);
            }
            return slots;
          },
          py::arg("obs"), py::arg("action"), py::arg("reward"), py::arg("next_obs"),
          py::arg("terminated"), py::arg("truncated"), py::arg("env_ids"))
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
