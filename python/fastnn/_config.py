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
        "gemm_kernel": _C.gemm_kernel_name(),
        "cache_sizes": _C.cache_sizes(),
        "gemm_blocks": _C.gemm_blocks(),
        "gemm_b_in_l2": _C.gemm_b_in_l2(),
        "cuda_built": cuda.is_built(),
        "cuda_available": cuda.is_available(),
        "cuda_devices": cuda.device_count(),
        "cuda_unavailable_reason": cuda._unavailable_reason(),
        "cuda_device_names": [cuda.get_device_name(i) for i in range(cuda.device_count())]
        if cuda.is_available() else [],
    }


def show_config(peak=False):
    """Print version, CPU features and the kernel path in use, threads, CUDA availability;
    with peak=True also measure the FMA peak of this path on the current threads (~0.2 s)."""
    c = config()
    cs = c["cache_sizes"]
    lines = [
        f"fastnn {c['version']}",
        f"cpu: {c['cpu']} ({c['cpus_available']} available)",
        f"cpu features: {c['cpu_features']}",
        f"kernel path (isa): {c['isa']} (supported: {', '.join(c['supported_isas'])})",
        f"gemm kernel: {c['gemm_kernel']}, blocks (mc, kc, nc) = {tuple(c['gemm_blocks'])}"
        + (", B block in L2" if c["gemm_b_in_l2"] else ", A block in L2"),
        f"caches: L1d {cs['l1d'] // 1024} KiB, L2 {cs['l2'] // 1024} KiB, L3 {cs['l3'] // 1024} KiB"
        + ("" if cs.get("detected", True) else " (defaults: cpuid gave none)"),
        f"threads: {c['threads']}",
        f"cuda: {'built' if c['cuda_built'] else 'not built'}, "
        f"{'available, ' + str(c['cuda_devices']) + ' device(s): ' + ', '.join(c['cuda_device_names']) if c['cuda_available'] else 'not available: ' + c['cuda_unavailable_reason']}",
    ]
    if peak:
        lines.append(f"fma peak ({c['isa']}, {c['threads']} threads): "
                     f"{_C.peak_gflops(c['threads']):.0f} GFLOP/s")
    text = "\n".join(lines)
    print(text)
    return text
