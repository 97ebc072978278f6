"""Threads, kernel path (ISA) and a summary of the build."""
from . import _C


def set_num_threads(n):
    """Size fastnn's thread pool (default: the CPUs this process may use)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"[set_num_threads] n must be an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def get_num_threads():
    return _C.get_num_threads()


def get_isa():
    """The SIMD path the CPU kernels take: 'avx512', 'avx2' or 'generic'."""
    return _C.get_isa()


def set_isa(name):
    """Force a kernel path (as FASTNN_ISA does); ValueError if this CPU cannot run it."""
    _C.set_isa(name)


def supported_isas():
    return list(_C.supported_isas())


def config():
    from . import cuda
    return {
        "version": _C.__version__,
        "cpu": _C.cpu_name(),
        "cpu_features": _C.cpu_features(),
        "isa": _C.get_isa(),
        "supported_isas": supported_isas(),
        "threads": _C.get_num_threads(),
        "cpus_available": _C.available_cpus(),
        "cuda_built": _C.cuda_built(),
        "cuda_available": cuda.is_available(),
        "cuda_devices": cuda.device_count(),
    }


def show_config():
    """Print version, CPU features and the kernel path in use, threads, CUDA availability."""
    c = config()
    lines = [
        f"fastnn {c['version']}",
        f"cpu: {c['cpu']} ({c['cpus_available']} available)",
        f"cpu features: {c['cpu_features']}",
        f"kernel path (isa): {c['isa']} (supported: {', '.join(c['supported_isas'])})",
        f"threads: {c['threads']}",
        f"cuda: {'built' if c['cuda_built'] else 'not built'}, "
        f"{'available, ' + str(c['cuda_devices']) + ' device(s)' if c['cuda_available'] else 'not available'}",
    ]
    text = "\n".join(lines)
    print(text)
    return text
