"""CUDA backend status. This build runs on the CPU; the CUDA backend is a separate build
option (see the README), so here no GPU is ever reported."""
from . import _C


def is_available():
    return bool(_C.cuda_built()) and device_count() > 0


def device_count():
    return 0


def _unavailable_reason():
    if not _C.cuda_built():
        return "fastnn was built without the CUDA backend"
    return "no CUDA device is present"
