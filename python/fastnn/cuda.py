"""CUDA backend status. fastnn has no CUDA backend yet (it is planned as an optional part of
the build), so is_available() is False and every tensor lives on the CPU."""
from . import _C


def is_available():
    return bool(_C.cuda_built()) and device_count() > 0


def device_count():
    return 0


def _unavailable_reason():
    if not _C.cuda_built():
        return "fastnn was built without the CUDA backend"
    return "no CUDA device is present"
