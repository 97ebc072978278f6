"""The CUDA backend's build: fastnn._C_cuda imports without a driver or GPU, mirrors the _C
op signatures, and refuses device work with a clear RuntimeError instead of crashing.

These tests need no GPU. Where the module was not built (no nvcc at build time) they skip
and say so; where a GPU is present the "no device" checks skip (the GPU suite covers that
machine). The kernels themselves are only exercised on a GPU.
"""
import re
import shutil
import subprocess

import numpy as np
import pytest

from fastnn import _C

if not _C.cuda_built():
    pytest.skip("fastnn._C_cuda was not built (no nvcc when fastnn was compiled; "
                "FASTNN_CUDA=AUTO)", allow_module_level=True)

import fastnn._C_cuda as G  # noqa: E402

# The CUDA_CONTRACT.md op list: same names and Python signatures as fastnn._C.
CONTRACT_OPS = (
    "linear_fwd linear_bwd gemm mm bmm activation_fwd activation_bwd unary unary_bwd binary "
    "binary_bwd binary_inplace expand sum extreme extreme_all_bwd extreme_dim_bwd argmax "
    "softmax_fwd softmax_bwd cross_entropy_fwd cross_entropy_bwd mse_fwd mse_bwd sgd_step "
    "adam_step").split()

HAS_DEVICE = G.device_count() > 0
no_device = pytest.mark.skipif(HAS_DEVICE, reason="a CUDA device is present; these check the "
                               "no-device behaviour")


def signature(fn):
    """pybind11's first docstring line without the return annotation: name(arg: type = default, ...)."""
    return re.sub(r" -> .*$", "", fn.__doc__.splitlines()[0])


def test_cuda_built_matches_module():
    assert _C.cuda_built() is True


@pytest.mark.parametrize("name", CONTRACT_OPS)
def test_op_signature_matches_cpu(name):
    assert hasattr(G, name), f"_C_cuda lacks {name}"
    assert signature(getattr(G, name)) == signature(getattr(_C, name))


def test_compiled_archs_include_hopper_and_ptx():
    archs = G.compiled_archs()
    assert isinstance(archs, list) and all(isinstance(a, str) for a in archs)
    assert "sm_90" in archs
    # PTX of some architecture, so newer GPUs can JIT-compile the kernels.
    assert any(a.startswith("compute_") for a in archs)


def test_matmul_precision_round_trip():
    before = G.get_matmul_precision()
    assert before in ("highest", "high", "medium")
    try:
        for name in ("high", "medium", "highest"):
            G.set_matmul_precision(name)
            assert G.get_matmul_precision() == name
        with pytest.raises(ValueError, match=r"^\[set_matmul_precision\] precision must be"):
            G.set_matmul_precision("tf32")
        assert G.get_matmul_precision() == "highest"
    finally:
        G.set_matmul_precision(before)


@no_device
def test_no_device_reports_zero_and_a_reason():
    assert G.device_count() == 0
    reason = G.unavailable_reason()
    assert isinstance(reason, str) and reason != ""
    assert G.memory_allocated() == 0
    assert G.memory_reserved() == 0
    G.empty_cache()  # nothing cached, nothing to do: must not raise


def _unavailable(op):
    return pytest.raises(RuntimeError, match=r"^\[" + re.escape(op) + r"\] CUDA unavailable: .+")


@no_device
@pytest.mark.parametrize("op, call", [
    ("synchronize", lambda: G.synchronize()),
    ("get_device_name", lambda: G.get_device_name(0)),
    ("get_device_capability", lambda: G.get_device_capability(0)),
    ("empty", lambda: G.CudaArray.empty((2, 3), "float32")),
    ("zeros", lambda: G.CudaArray.zeros((4,), "int64")),
    ("full", lambda: G.CudaArray.full((1, 1), 2.5, "bool")),
    ("from_numpy", lambda: G.CudaArray.from_numpy(np.ones((3, 2), np.float32))),
    ("from_dlpack", lambda: G.CudaArray.from_dlpack(np.ones(3, np.float32))),
])
def test_device_calls_raise_runtime_error(op, call):
    with _unavailable(op):
        call()


@no_device
@pytest.mark.parametrize("op, call", [
    ("linear", lambda x: G.linear_fwd(x, x, None)),
    ("matmul", lambda x: G.gemm(x, x)),
    ("matmul", lambda x: G.mm(x, x)),
    ("relu", lambda x: G.activation_fwd(x, 1)),
    ("add", lambda x: G.binary(x, x, "add")),
    ("exp", lambda x: G.unary(x, "exp")),
    ("sum", lambda x: G.sum(x)),
    ("max", lambda x: G.extreme(x)),
    ("argmax", lambda x: G.argmax(x)),
    ("softmax", lambda x: G.softmax_fwd(x, -1)),
    ("mse_loss", lambda x: G.mse_fwd(x, x)),
    ("sgd", lambda x: G.sgd_step([x], [x], None, 0.1)),
    ("adam", lambda x: G.adam_step([x], [x], [x], [x], [1], 0.1)),
])
def test_ops_without_device_raise_runtime_error(op, call):
    # An ndarray where a CudaArray is expected: with no device the unavailability is what
    # gets reported (a RuntimeError naming the op), never a crash.
    with _unavailable(op):
        call(np.ones((2, 2), np.float32))


def test_op_argument_checks_that_need_no_device():
    # Checks made before any array is looked at still give the CPU op's messages.
    with pytest.raises(ValueError, match=r"^\[linear\] unknown activation code 9"):
        G.linear_fwd(None, None, None, 9)
    with pytest.raises(ValueError, match=r"^\[binary\] unknown op 'xor'"):
        G.binary(None, None, "xor")
    with pytest.raises(ValueError, match=r"^\[cross_entropy\] reduction must be"):
        G.cross_entropy_fwd(None, None, "avg")


def test_cuda_array_class_api():
    names = ("shape dtype ndim size itemsize nbytes strides device_index data_ptr empty zeros "
             "full from_numpy from_dlpack numpy copy_ clone reshape astype fill_ item "
             "__len__ __dlpack__ __dlpack_device__").split()
    for n in names:
        assert hasattr(G.CudaArray, n), n


def _needed_libs(path):
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf not available to list the extension's shared-library needs")
    out = subprocess.run([readelf, "-d", path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_no_dynamic_cuda_runtime_dependency():
    # _C never links CUDA; _C_cuda links cudart statically, so neither needs libcudart.so
    # (nor libcuda.so: the driver is only looked up at run time).
    for mod in (_C, G):
        libs = _needed_libs(mod.__file__)
        assert not [lib for lib in libs if "cuda" in lib], (mod.__name__, libs)
