// The only translation unit that sees pybind11 and torch's Python glue (the slow headers).
#include <ATen/EmptyTensor.h>
#include <c10/core/InferenceMode.h>
#include <pybind11/stl.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <array>
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
    case NPY_BOOL:
      dtype = at::kBool;
      break;
    case NPY_BYTE:
      dtype = at::kChar;
      break;
    case NPY_UBYTE:
      dtype = at::kByte;
      break;
    case NPY_SHORT:
      dtype = at::kShort;
      break;
    case NPY_INT:
      dtype = at::kInt;
      break;
    case NPY_LONG:
    case NPY_LONGLONG:
      dtype = at::kLong;
      break;
    case NPY_USHORT:
      dtype = at::kUInt16;
      break;
    case NPY_UINT:
      dtype = at::kUInt32;
      break;
    case NPY_ULONG:
    case NPY_ULONGLONG:
      dtype = at::kUInt64;
      break;  // rejected with its name
    case NPY_HALF:
      dtype = at::kHalf;
      break;
    case NPY_FLOAT:
      dtype = at::kFloat;
      break;
    case NPY_DOUBLE:
      dtype = at::kDouble;
      break;
    default:
      return std::nullopt;
  }
  if (static_cast<npy_intp>(c10::elementSize(*dtype)) != PyArray_ITEMSIZE(array))
    return std::nullopt;
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
    TORCH_CHECK_TYPE(tensor.layout() == at::kStrided, name,
                     ": expected a dense tensor, got layout ", tensor.layout());
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

// The int64 tensor of slots add() returns. Making one (ATen's allocator, a TensorImpl, a
// StorageImpl, the Python wrapper) and freeing it when the caller drops it measured ~2.7 us per
// add() with caches as cold as they are between environment steps: a third of an add() of one row.
// So the tensor returned last is kept, and returned again once nothing but this cache references
// it and it still is what a new tensor would be; otherwise a new one replaces it. GIL held only.
class SlotsTensor {
 public:
  // A new reference to an int64 tensor of shape (rows,) that nothing else references; its data is
  // for the caller to fill.
  std::pair<py::object, int64_t*> take(int64_t rows) {
    if (!reusable(rows)) {
      at::Tensor fresh(at::detail::empty_cpu({rows}, at::kLong));
      data_ = fresh.mutable_data_ptr<int64_t>();
      key_set_ = fresh.key_set();
      inference_ = c10::InferenceMode::is_enabled();
      tensor_ = py::reinterpret_steal<py::object>(THPVariable_Wrap(std::move(fresh)));
      if (!tensor_) throw py::error_already_set();
    }
    return {tensor_, data_};
  }

 private:
  bool reusable(int64_t rows) const {
    PyObject* object = tensor_.ptr();
    // Only this cache holds the Python object, whose class, attributes, weak references and hooks
    // are a new tensor's.
    if (object == nullptr || Py_REFCNT(object) != 1 ||
        Py_TYPE(object) != reinterpret_cast<PyTypeObject*>(THPVariableClass)) {
      return false;
    }
    PyObject** dict = _PyObject_GetDictPtr(object);
    if (dict != nullptr && *dict != nullptr && PyDict_GET_SIZE(*dict) != 0) return false;
    if (PyType_SUPPORTS_WEAKREFS(Py_TYPE(object)) && *PyObject_GET_WEAKREFS_LISTPTR(object)) {
      return false;
    }
    const auto* variable = reinterpret_cast<const THPVariable*>(object);
    if (variable->backward_hooks != nullptr || variable->post_accumulate_grad_hooks != nullptr) {
      return false;
    }
    // Nothing in C++ holds the tensor or its memory either (views, DLPack exports, storages), and
    // its metadata, version and mode are a new tensor's.
    const at::Tensor& tensor = variable->cdata;
    c10::TensorImpl* impl = tensor.unsafeGetTensorImpl();
    const c10::Storage& storage = tensor.storage();
    return tensor.use_count() == 1 && tensor.weak_use_count() == 1 && storage.use_count() == 1 &&
           storage.getWeakStorageImpl().weak_use_count() == 2 &&  // the weak pointer just made
           storage.data() == data_ && storage.nbytes() == rows * sizeof(int64_t) &&
           tensor.sizes() == c10::IntArrayRef{rows} && tensor.strides() == c10::IntArrayRef{1} &&
           tensor.storage_offset() == 0 && tensor.scalar_type() == at::kLong &&
           impl->key_set() == key_set_ && inference_ == c10::InferenceMode::is_enabled() &&
           impl->autograd_meta() == nullptr &&
           (impl->is_inference() || impl->version_counter().current_version() == 0);
  }

  py::object tensor_;
  int64_t* data_ = nullptr;
  c10::DispatchKeySet key_set_;
  bool inference_ = false;
};

// add()'s parameters in order; all but the last are required.
constexpr std::array<const char*, 7> kAddParameters = {
    "obs", "action", "reward", "next_obs", "terminated", "truncated", "env_ids"};

// Matches a vectorcall's arguments to add()'s parameters as Python matches a def's, returning
// borrowed references (nullptr: not given).
std::array<PyObject*, kAddParameters.size()> add_arguments(PyObject* const* args, Py_ssize_t nargs,
                                                           PyObject* kwnames) {
  constexpr auto count = static_cast<Py_ssize_t>(kAddParameters.size());
  // Interned, like the keyword names Python compiles into call sites, so most match by identity.
  static const std::array<PyObject*, kAddParameters.size()> names = [] {
    std::array<PyObject*, kAddParameters.size()> interned{};
    for (size_t i = 0; i < interned.size(); ++i) {
      interned[i] = PyUnicode_InternFromString(kAddParameters[i]);
      if (interned[i] == nullptr) throw py::error_already_set();
    }
    return interned;
  }();
  TORCH_CHECK_TYPE(nargs <= count, "add() takes at most ", count, " arguments (", nargs, " given)");
  std::array<PyObject*, kAddParameters.size()> values{};
  std::copy(args, args + nargs, values.begin());
  const Py_ssize_t keywords = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < keywords; ++k) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, k);
    Py_ssize_t i = std::find(names.begin(), names.end(), name) - names.begin();
    for (Py_ssize_t j = 0; j < count && i == count; ++j) {
      if (PyUnicode_Compare(name, names[j]) == 0) i = j;
    }
    TORCH_CHECK_TYPE(i < count, "add() got an unexpected keyword argument '",
                     py::str(name).cast<std::string>(), "'");
    TORCH_CHECK_TYPE(values[i] == nullptr, "add() got multiple values for argument '",
                     kAddParameters[i], "'");
    values[i] = args[nargs + k];
  }
  for (Py_ssize_t i = 0; i + 1 < count; ++i) {
    TORCH_CHECK_TYPE(values[i] != nullptr, "add() missing required argument '", kAddParameters[i],
                     "' (pos ", i + 1, ")");
  }
  return values;
}

// ReplayBuffer.add(obs, action, reward, next_obs, terminated, truncated, env_ids=None), bound as a
// METH_FASTCALL method instead of through pybind11, whose dispatcher (argument loaders, overload
// and keyword matching) measured ~0.9 us per call, and ~1.6 us more with keywords: a third of an
// add() of one row between them.
PyObject* replay_add(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  try {
    const auto values = add_arguments(args, nargs, kwnames);
    auto& buffer = py::handle(self).cast<pydqn::ReplayBuffer&>();
    HostArgs host;
    pydqn::TransitionRows rows{host.view(values[0], "obs"),
                               host.view(values[1], "action"),
                               host.view(values[2], "reward"),
                               host.view(values[3], "next_obs"),
                               host.view(values[4], "terminated"),
                               host.view(values[5], "truncated"),
                               std::nullopt};
    if (values[6] != nullptr && values[6] != Py_None) {
      rows.env_ids = host.view(values[6], "env_ids");
    }
    // Taken before the add, so that nothing can fail once transitions are stored; sized by obs's
    // leading axis, which add() checks against the number of rows.
    static SlotsTensor* const slots_tensor = new SlotsTensor;  // kept for the process's lifetime
    const int64_t count = rows.obs.dim() >= 1 ? rows.obs.shape[0] : 0;
    auto [slots, data] = slots_tensor->take(count);
    {
      py::gil_scoped_release nogil;
      buffer.add(rows, {data, static_cast<size_t>(count)});
    }
    return slots.release().ptr();
  } catch (...) {
    torch::translate_exception_to_python(std::current_exception());
    return nullptr;
  }
}

constexpr const char* kAddDoc =
    "add($self, obs, action, reward, next_obs, terminated, truncated, env_ids=None)\n--\n\n"
    "Store one transition per env row and return the int64 slots written; see "
    "pydqn.ReplayBuffer.add.";

py::tuple to_tuple(const pydqn::BatchTensors& b) {
  return py::make_tuple(b.obs, b.action, b.reward, b.next_obs, b.terminated, b.truncated,
                        b.discount, b.indices, b.transition_ids, b.weights);
}

pydqn::BatchTensors from_sequence(const std::vector<at::Tensor>& fields) {
  TORCH_CHECK_VALUE(fields.size() == 10,
                    "out: expected a Batch of 10 tensors (obs, action, reward, next_obs, "
                    "terminated, truncated, discount, indices, transition_ids, weights), got ",
                    fields.size());
  return {fields[0], fields[1], fields[2], fields[3], fields[4],
          fields[5], fields[6], fields[7], fields[8], fields[9]};
}

// A tensor, or None where the state has none (the windows of a buffer with n_step = 1).
py::object or_none(const at::Tensor& t) { return t.defined() ? py::cast(t) : py::none(); }

// The tensors of a ReplayState by their key in state_dict(); with its numbers (kStateNumbers)
// these are all the keys, which save_state and load_state both use.
using pydqn::ReplayState;
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
                    std::optional<uint64_t>, int64_t, double, bool, double,
                    std::optional<c10::Device>>(),
           py::arg("capacity"), py::arg("obs_shape"), py::arg("obs_dtype"), py::arg("frame_stack"),
           py::arg("num_envs"), py::arg("seed"), py::arg("n_step"), py::arg("gamma"),
           py::arg("prioritized"), py::arg("alpha"), py::arg("sample_device") = py::none())
      .def(
          "sample",
          [](ReplayBuffer& self, int64_t batch_size, std::optional<double> beta) {
            pydqn::BatchTensors batch;
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
            const pydqn::BatchTensors batch = from_sequence(out);
            py::gil_scoped_release nogil;
            self.sample_into(batch, beta);
          },
          py::arg("out"), py::arg("beta") = py::none())
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
            pydqn::BatchTensors batch;
            {
              py::gil_scoped_release nogil;
              batch = self.get(indices);
            }
            return to_tuple(batch);
          },
          py::arg("indices"))
      .def("save_state",
           [](const ReplayBuffer& self) {
             pydqn::ReplayState state;
             {
               py::gil_scoped_release nogil;
               state = self.save_state();
             }
             py::dict dict;
             for (const auto& [key, member] : kStateTensors) dict[key] = or_none(state.*member);
             dict["added"] = state.added;
             dict["max_priority"] = state.max_priority;
             dict["rng_seed"] = state.rng_seed;
             dict["rng_draws"] = state.rng_draws;
             return dict;
           })
      .def(
          "load_state",
          [](ReplayBuffer& self, const py::dict& saved) {
            auto tensor = [&](const char* key) {
              TORCH_CHECK_VALUE(saved.contains(key), "state: missing '", key, "'");
              const py::handle value = saved[key];
              return value.is_none() ? at::Tensor() : value.cast<at::Tensor>();
            };
            pydqn::ReplayState state;
            for (const auto& [key, member] : kStateTensors) state.*member = tensor(key);
            state.added = saved["added"].cast<int64_t>();
            state.max_priority = saved["max_priority"].cast<double>();
            state.rng_seed = saved["rng_seed"].cast<uint64_t>();
            state.rng_draws = saved["rng_draws"].cast<uint64_t>();
            py::gil_scoped_release nogil;
            self.load_state(state);
          },
          py::arg("state"))
      .def("__len__", &ReplayBuffer::size)
      .def_property_readonly("capacity", &ReplayBuffer::capacity)
      .def_property_readonly("nbytes", &ReplayBuffer::nbytes)
      .def_property_readonly("device_nbytes", &ReplayBuffer::device_nbytes);
  // add() goes beside pybind11's methods as a plain CPython one (see replay_add).
  static PyMethodDef add_method = {
      "add", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(replay_add)),
      METH_FASTCALL | METH_KEYWORDS, kAddDoc};
  py::object buffer = m.attr("ReplayBuffer");
  PyObject* add = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(buffer.ptr()), &add_method);
  if (add == nullptr) throw py::error_already_set();
  buffer.attr("add") = py::reinterpret_steal<py::object>(add);

  py::list state_keys;
  for (const auto& [key, member] : kStateTensors) state_keys.append(key);
  for (const char* key : kStateNumbers) state_keys.append(key);
  m.attr("REPLAY_STATE_KEYS") = py::tuple(state_keys);

  bind_tree<pydqn::SumTree>(m, "SumTree");
  bind_tree<pydqn::MinTree>(m, "MinTree");
}
