#include "bindings/arg_conversion.h"

#include <torch/csrc/autograd/python_variable.h>

#include <optional>
#include <string>

// numpy's C API reads an array's pointer, shape and dtype from its struct: ~50x cheaper than
// exporting it through the buffer protocol, which builds format and shape data on every call.
// Only this translation unit uses it (its API table is static here; import_numpy() fills it).
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

namespace py = pybind11;

namespace pydqn {
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
  if (static_cast<npy_intp>(c10::elementSize(*dtype)) != PyArray_ITEMSIZE(array)) {
    return std::nullopt;
  }
  return dtype;
}

}  // namespace

void import_numpy() {
  if (_import_array() < 0) throw py::error_already_set();
}

HostArray HostArgs::view(py::handle value, const char* name) {
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
      HostArray view{PyArray_DATA(array), *dtype, {}};
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
                     py::str(py::type::handle_of(value).attr("__name__")).cast<std::string>(), " (",
                     error.what(), ")");
  }
  return from_tensor(THPVariable_Unpack(tensor.ptr()), name);
}

HostArray HostArgs::from_tensor(at::Tensor tensor, const char* name) {
  TORCH_CHECK_TYPE(tensor.layout() == at::kStrided, name, ": expected a dense tensor, got layout ",
                   tensor.layout());
  TORCH_CHECK_VALUE(!tensor.is_meta(), name, ": expected a tensor with values, got a meta tensor ",
                    "(it has a shape and dtype but no data)");
  if (!tensor.device().is_cpu()) tensor = tensor.cpu();
  tensor = tensor.contiguous().resolve_conj().resolve_neg();
  tensors_.push_back(tensor);
  HostArray array{tensor.const_data_ptr(), tensor.scalar_type(), {}};
  array.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
  return array;
}

}  // namespace pydqn
