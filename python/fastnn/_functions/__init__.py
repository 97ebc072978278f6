"""Differentiable operations, one module per op family (the same names as csrc/ops/ and
tests/test_<op>.py). Each module holds autograd Functions (forward and backward side by side,
calling the compiled kernels in fastnn._C) and the plain functions that apply them."""
