import os
import zlib
import sys

import numpy as np
import pytest

# In-tree development builds (tools/dev_build.sh) put _C in python/fastnn; an installed
# fastnn takes precedence otherwise.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _here)
try:
    import fastnn  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(_here, "..", "python"))
    import fastnn  # noqa: F401

from fastnn import _C  # noqa: E402


@pytest.fixture(params=_C.supported_isas())
def isa(request):
    """Run a test once on every kernel path this CPU supports (generic, avx2, avx512)."""
    prev = _C.get_isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(prev)


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from the test's id so failures reproduce (crc32,
    not hash(): Python randomises str hashes per process)."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(params=[1, 2])
def threads(request):
    """Run a test single-threaded and on the pool."""
    prev = _C.get_num_threads()
    _C.set_num_threads(request.param)
    yield request.param
    _C.set_num_threads(prev)


@pytest.fixture(params=["derived", "a_in_l2", "b_in_l2"])
def gemm_order(request):
    """Run a test with the machine's own cache blocks and loop order, and with small forced
    blocks in each of the driver's two loop orders (A block in L2; B block in L2), so both
    orders and many block edges run on any machine. (mc and nc are rounded down to the active
    kernel's tile: 40 -> 28 rows on AVX-512, 36 on AVX2.)"""
    if request.param != "derived":
        _C.set_gemm_blocks((40, 48, 96, request.param == "b_in_l2"))
    yield request.param
    _C.set_gemm_blocks(None)
