"""Small helpers shared by the examples: progress bars and plotting when available."""
import time


def progress(iterable, desc, total=None, enabled=True):
    """tqdm's progress bar when tqdm is installed (the demo extra), else the plain iterable."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


class Timer:
    """Accumulates the wall time of training steps to report time per step."""

    def __init__(self):
        self.total = 0.0
        self.steps = 0

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.total += time.perf_counter() - self.t0
        self.steps += 1
        return False

    @property
    def per_step_us(self):
        return 1e6 * self.total / max(self.steps, 1)
