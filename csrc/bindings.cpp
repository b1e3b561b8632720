// The only translation unit that sees pybind11 and torch's Python glue (the slow headers).
#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>

// numpy's C API reads an array's pointer, shape and dtype from its struct: ~50x cheaper than
// exporting it through the buffer protocol, which builds format and shape data on every call.
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include "replay/replay_buffer.h"
#include "replay/segment_tree.h"

namespace py = pybind11;

namespace {

// The torch dtype of a numpy array that add() can read in place (native byte order).
std::optional<at::ScalarType> dtype_of(PyArrayObject* array) {
  if (!PyArray_ISNOTSWAPPED(array)) return std::nullopt;
  std::optional<at::ScalarType> dtype;
  switch (PyArray_TYPE(array)) {
    case NPY_BOOL: dtype = at::kBool; break;
    case NPY_BYTE: dtype = at::kChar; break;
    case NPY_UBYTE: dtype = at::kByte; break;
    case NPY_SHORT: dtype = at::kShort; break;
    case NPY_INT: dtype = at::kInt; break;
    case NPY_LONG: case NPY_LONGLONG: dtype = at::kLong; break;
    case NPY_USHORT: dtype = at::kUInt16; break;
    case NPY_UINT: dtype = at::kUInt32; break;
    case NPY_ULONG: case NPY_ULONGLONG: dtype = at::kUInt64; break;  // rejected with its name
    case NPY_HALF: dtype = at::kHalf; break;
    case NPY_FLOAT: dtype = at::kFloat; break;
    case NPY_DOUBLE: dtype = at::kDouble; break;
    default: return std::nullopt;
  }
  if (static_cast<npy_intp>(c10::elementSize(*dtype)) != PyArray_ITEMSIZE(array)) return std::nullopt;
  return dtype;
}

// Views add()'s Python arguments as HostArrays. C-contiguous numpy arrays and CPU tensors are read
// in place (the caller's references keep them alive for the call); other numpy arrays, tensors on
// another device or with gaps, lists and scalars are converted first, and the results are kept
// here until the call ends (destroy with the GIL held).
class HostArgs {
 public:
  pydqn::HostArray view(py::handle value, const char* name) {
    // numpy first: THPVariable_Check on a non-tensor is an isinstance() through torch.Tensor's
    // metaclass, which measured ~1 us per argument.
    if (PyArray_Check(value.ptr())) {
      auto* array = reinterpret_cast<PyArrayObject*>(value.ptr());
      if (!PyArray_IS_C_CONTIGUOUS(array) || !PyArray_ISNOTSWAPPED(array)) {
        // Strided, reversed or byte-swapped: numpy makes a native C-contiguous copy.
        PyArray_Descr* native = PyArray_DescrNewByteorder(PyArray_DESCR(array), NPY_NATIVE);
        if (native == nullptr) throw py::error_already_set();
        PyObject* copy = PyArray_FromAny(value.ptr(), native, 0, 0, NPY_ARRAY_CARRAY_RO, nullptr);
        if (copy == nullptr) throw py::error_already_set();
        keep_.push_back(py::reinterpret_steal<py::object>(copy));
        array = reinterpret_cast<PyArrayObject*>(copy);
        value = copy;
      }
      if (const auto dtype = dtype_of(array)) {
        pydqn::HostArray view{PyArray_DATA(array), *dtype, {}};
        view.shape.assign(PyArray_DIMS(array), PyArray_DIMS(array) + PyArray_NDIM(array));
        return view;
      }
    } else if (THPVariable_Check(value.ptr())) {
      return from_tensor(THPVariable_Unpack(value.ptr()), name);
    }
    py::object tensor;  // lists, scalars, and numpy dtypes torch knows but add() does not read
    try {
      tensor = py::module_::import("torch").attr("as_tensor")(value);
    } catch (py::error_already_set& error) {
      TORCH_CHECK_TYPE(false, name, ": expected a numpy array or torch tensor of numbers, got ",
                       py::str(py::type::handle_of(value).attr("__name__")).cast<std::string>(),
                       " (", error.what(), ")");
    }
    return from_tensor(THPVariable_Unpack(tensor.ptr()), name);
  }

 private:
  pydqn::HostArray from_tensor(at::Tensor tensor, const char* name) {
    TORCH_CHECK_TYPE(tensor.layout() == at::kStrided, name, ": expected a dense tensor, got layout ",
                     tensor.layout());
    if (!tensor.device().is_cpu()) tensor = tensor.cpu();
    tensor = tensor.contiguous().resolve_conj().resolve_neg();
    tensors_.push_back(tensor);
    pydqn::HostArray array{tensor.const_data_ptr(), tensor.scalar_type(), {}};
    array.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
    return array;
  }

  c10::SmallVector<at::Tensor, 2> tensors_;
  c10::SmallVector<py::object, 2> keep_;
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

namespace {

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

PYBIND11_MODULE(_C, m) {
  if (_import_array() < 0) throw py::error_already_set();
  m.doc() = "pydqn's private C++ extension; use the typed wrappers in the pydqn package.";
  m.attr("TORCH_VERSION") = PYDQN_TORCH_VERSION;
#ifdef PYDQN_WITH_CUDA
  m.attr("WITH_CUDA") = true;  // the ops' CUDA kernels are compiled in
#else
  m.attr("WITH_CUDA") = false;
#endif

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
      .def(
          "save_state",
          [](const ReplayBuffer& self) {
            pydqn::ReplayState state;
            {
              py::gil_scoped_release nogil;
              state = self.save_state();
            }
            return py::dict(py::arg("frames") = state.frames, py::arg("frame_ids") = state.frame_ids,
                            py::arg("action") = state.action, py::arg("reward") = state.reward,
                            py::arg("terminated") = state.terminated,
                            py::arg("truncated") = state.truncated, py::arg("added") = state.added,
                            py::arg("rng_seed") = state.rng_seed,
                            py::arg("rng_draws") = state.rng_draws);
          })
      .def(
          "load_state",
          [](ReplayBuffer& self, const at::Tensor& frames, const at::Tensor& frame_ids,
             const at::Tensor& action, const at::Tensor& reward, const at::Tensor& terminated,
             const at::Tensor& truncated, int64_t added, uint64_t rng_seed, uint64_t rng_draws) {
            const pydqn::ReplayState state{frames,    frame_ids, action, reward,   terminated,
                                           truncated, added,     rng_seed, rng_draws};
            py::gil_scoped_release nogil;
            self.load_state(state);
          },
          py::arg("frames"), py::arg("frame_ids"), py::arg("action"), py::arg("reward"),
          py::arg("terminated"), py::arg("truncated"), py::arg("added"), py::arg("rng_seed"),
          py::arg("rng_draws"))
      .def("__len__", &ReplayBuffer::size)
      .def_property_readonly("capacity", &ReplayBuffer::capacity)
      .def_property_readonly("nbytes", &ReplayBuffer::nbytes);

  bind_tree<pydqn::SumTree>(m, "SumTree");
  bind_tree<pydqn::MinTree>(m, "MinTree");
}
