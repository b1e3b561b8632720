#include "bindings/fast_add.h"

#include <torch/csrc/Exceptions.h>

#include <algorithm>
#include <array>
#include <new>
#include <optional>
#include <string>

#include "bindings/arg_conversion.h"
#include "bindings/slots_tensor.h"
#include "replay/replay_buffer.h"

namespace py = pybind11;

namespace pydqn {
namespace {

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

PyObject* replay_add(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  try {
    const auto values = add_arguments(args, nargs, kwnames);
    auto& buffer = py::handle(self).cast<ReplayBuffer&>();
    HostArgs host;
    TransitionRows rows{host.view(values[0], "obs"),
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
  } catch (const std::bad_alloc& error) {
    // As pybind11 raises it for the other methods (torch's translation makes it a RuntimeError).
    PyErr_SetString(PyExc_MemoryError, error.what());
    return nullptr;
  } catch (...) {
    torch::translate_exception_to_python(std::current_exception());
    return nullptr;
  }
}

constexpr const char* kAddDoc =
    "add($self, obs, action, reward, next_obs, terminated, truncated, env_ids=None)\n--\n\n"
    "Store one transition per env row and return the int64 slots written; see "
    "pydqn.ReplayBuffer.add.";

}  // namespace

void install_fast_add(py::handle buffer_class) {
  // Beside pybind11's methods, as a plain CPython one; the definition must outlive the type.
  static PyMethodDef add_method = {
      "add", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(replay_add)),
      METH_FASTCALL | METH_KEYWORDS, kAddDoc};
  PyObject* add =
      PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(buffer_class.ptr()), &add_method);
  if (add == nullptr) throw py::error_already_set();
  buffer_class.attr("add") = py::reinterpret_steal<py::object>(add);
}

}  // namespace pydqn
