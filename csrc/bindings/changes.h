// In-place changes of arrays, for autograd's check that a value a recorded op saved for its
// backward was not modified after it was saved (bind_autograd.cpp keeps the record).
#pragma once
#include <Python.h>

#include <cstdint>

namespace fastnn {

// Records that the memory of `array` (an ndarray: that of the array owning its buffer, so
// every view of it; any other object: that object) is about to be, or was, changed in place.
// Never fails; needs the GIL.
void note_inplace_change(PyObject* array);

}  // namespace fastnn
