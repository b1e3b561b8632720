#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/SmallVector.h>
#include <pybind11/pybind11.h>

#include "replay/host_array.h"

namespace pydqn {

// Initializes numpy's C API for this extension (once, from the module's init; throws the Python
// error if numpy cannot be imported).
void import_numpy();

// Views add()'s Python arguments as HostArrays. C-contiguous numpy arrays and CPU tensors are read
// in place (the caller's references keep them alive for the call); other numpy arrays, tensors on
// another device or with gaps, lists and scalars are converted first, and the results are kept
// here until the call ends (destroy with the GIL held).
class HostArgs {
 public:
  // `name`: the argument's name, for errors.
  HostArray view(pybind11::handle value, const char* name);

 private:
  HostArray from_tensor(at::Tensor tensor, const char* name);

  c10::SmallVector<at::Tensor, 2> tensors_;
  c10::SmallVector<pybind11::object, 2> keep_;
};

}  // namespace pydqn
