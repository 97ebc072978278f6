#!/usr/bin/env python3
"""fastnn benchmark harness (protocol: docs design/benchmarks.md).

    python bench/run.py [--quick] [--cases NAME ...] [--json FILE] [--markdown] [--threads N]

Every case times fastnn and the importable peers (PyTorch CPU, NumPy) in this process,
interleaved sample by sample, on the same thread count. Also callable as ``main(argv)``.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent

if __package__:
    from .cases import CASES, UNAVAILABLE
else:  # run as a script: make `bench.cases` importable from the repository root
    sys.path.insert(0, str(_ROOT))
    from bench.cases import CASES, UNAVAILABLE

STAND_IN_MODULES = ("dense", "softmax", "loss", "elementwise", "reduce")


# ---------------------------------------------------------------- timing
def _sample(fn, n, context=None):
    """Seconds per call over n back-to-back calls. GC stays on: users pay for it too."""
    with (context() if context else contextlib.nullcontext()):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n


def _calibrate(fn, target_s, context=None):
    """Warm up, then find the call count n that makes one sample last >= target_s, so that
    timer resolution and loop overhead stay negligible even for microsecond ops."""
    # Warm-up: the first calls pay for lazy init, page faults, pool start-up and caches.
    t_end = time.perf_counter() + target_s
    for i in range(1000):
        _sample(fn, 1, context)
        if i >= 1 and time.perf_counter() >= t_end:
            break
    n = 1
    while True:
        t = _sample(fn, n, context) * n
        if t >= target_s:
            return n
        grow = math.ceil(n * 1.2 * target_s / max(t, 1e-7))
        n = min(100 * n, max(2 * n, grow))


def _stats(samples):
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "samples_s": samples}


def measure(fns, repeats, target_s, contexts=None, settle_s=0.0):
    """Time several callables interleaved: sample r of every callable is taken before sample
    r+1 of any, and the order rotates each round, so machine-load drift and position effects
    hit all implementations alike. Returns one stats dict per callable, or {"error": exc}
    for one that raised (the others go on).

    settle_s: before a sample that follows another callable's, run this one untimed for
    settle_s seconds. NOTE: thread pools spin after a call before they sleep (OpenBLAS's
    workers for ~2^28 cycles, ~70 ms here; libgomp's, which PyTorch uses, for less; fastnn's
    for ~0.2 ms). On a 2-core machine a peer's spinning worker takes one of the two cores
    from whichever library is sampled next: measured, fastnn's 2-thread 1024^3 GEMM ran at
    single-thread speed right after a NumPy call. Sleeping the spin out is no cure here: an
    idle vCPU of this VM comes back slow (the same GEMM ran 10-20% slower for several ms
    after a 0.1-0.3 s sleep, measured). Running the next library for settle_s instead lets
    the peer's workers time out while the cores stay busy, so each library is timed warm on
    the whole machine, as a user running only that library would see it."""
    k = len(fns)
    contexts = contexts or [None] * k
    inner, samples, errors = [0] * k, [[] for _ in fns], [None] * k
    for i in range(k):
        try:
            inner[i] = _calibrate(fns[i], target_s, contexts[i])
        except Exception as e:
            errors[i] = e
    last = None
    for r in range(repeats):
        for j in range(k):
            i = (j + r) % k
            if errors[i] is None:
                if settle_s > 0 and last is not None and last != i:
                    t_end = time.perf_counter() + settle_s
                    while time.perf_counter() < t_end:
                        _sample(fns[i], inner[i], contexts[i])
                last = i
                try:
                    samples[i].append(_sample(fns[i], inner[i], contexts[i]))
                except Exception as e:
                    errors[i] = e
    return [{"error": e} if e is not None else dict(_stats(s), inner=n)
            for s, n, e in zip(samples, inner, errors)]


# ------------------------------------------------- OpenBLAS SkylakeX subprocess
def _numpy_gemm_worker(spec, threads, repeats, target_s, seed):
    """Runs in a child with OPENBLAS_CORETYPE set: time np.matmul alone, print JSON."""
    import numpy as np
    m, n, k = (int(v) for v in spec.split(","))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    with _blas_threads(threads):
        res = measure([lambda: np.matmul(a, b)], repeats, target_s)[0]
    if "error" in res:
        raise res["error"]
    res["note"] = f"OpenBLAS {_openblas_arch() or '?'} (subprocess)"
    print(json.dumps(res))


def _skylakex_factory(ctx):
    def make(m, n, k):
        def run():
            if ctx.skylakex_unavailable:
                raise NotImplementedError(ctx.skylakex_unavailable)
            env = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX",
                       OPENBLAS_NUM_THREADS=str(ctx.threads))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--numpy-gemm-worker",
                   f"{m},{n},{k}", "--threads", str(ctx.threads), "--repeats",
                   str(ctx.repeats), "--target-ms", str(ctx.target_s * 1e3)]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"SkylakeX subprocess failed: {p.stderr.strip()[-300:]}")
            return json.loads(p.stdout.strip().splitlines()[-1])
        return run
    return make


# ---------------------------------------------------------------- environment
@contextlib.contextmanager
def _blas_threads(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield True


def _openblas_arch():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas":
            return lib.get("architecture")
    return None


def _git_commit():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_ROOT,
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=_ROOT, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _load():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _import_fastnn():
    try:
        import fastnn
    except ImportError:
        # A source checkout: the in-place build (tools/dev_build.sh) lives under python/.
        sys.path.insert(0, str(_ROOT / "python"))
        import fastnn
    return fastnn


class Ctx:
    """What cases need: shared RNG, mode, thread count, and the OpenBLAS subprocess hook."""

    def __init__(self, args, fastnn_cfg):
        import numpy as np
        self.rng = np.random.default_rng(args.seed)
        self.quick = args.quick
        self.threads = args.threads
        self.repeats = args.repeats
        self.target_s = args.target_ms / 1e3
        self.settle_s = args.settle_ms / 1e3
        arch = _openblas_arch()
        self.openblas_note = f"OpenBLAS {arch}" if arch else "BLAS: see numpy.show_config()"
        if os.environ.get("OPENBLAS_CORETYPE"):   # a forced kernel, not OpenBLAS's own pick
            self.openblas_note += f" (OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']})"
        self.skylakex_unavailable = None
        if "avx512f" not in fastnn_cfg.get("cpu_features", ""):
            self.skylakex_unavailable = "CPU lacks AVX-512"
        elif arch is None:
            self.skylakex_unavailable = "NumPy's BLAS is not OpenBLAS (or no threadpoolctl)"
        self.skylakex_gemm = _skylakex_factory(self)


def _setup(args):
    """Same thread count everywhere; collect the header facts."""
    fastnn = _import_fastnn()
    from fastnn import _config
    import numpy as np
    fastnn.set_num_threads(args.threads)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "commit": _git_commit(), "fastnn_path": str(Path(fastnn.__file__).parent),
            "fastnn": _config.config(), "python": platform.python_version(),
            "numpy": np.__version__, "openblas_arch": _openblas_arch(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "threads": args.threads, "quick": args.quick, "repeats": args.repeats,
            "target_ms": args.target_ms, "settle_ms": args.settle_ms, "load_start": _load()}
    meta["stand_ins"] = _stand_ins()
    try:
        import torch
        torch.set_num_threads(args.threads)
        meta["torch"] = torch.__version__
    except ImportError:
        meta["torch"] = None
    probe = getattr(fastnn._C, "peak_gflops", None)
    meta["peak_gflops"] = float(probe(args.threads)) if probe else None
    return meta


def _stand_ins():
    """Modules whose docstring still says TEMPORARY run NumPy stand-ins, not fastnn kernels."""
    import importlib
    found = []
    for m in STAND_IN_MODULES:
        try:
            doc = importlib.import_module(f"fastnn._functions.{m}").__doc__ or ""
        except ImportError:
            continue
        if "TEMPORARY" in doc:
            found.append(m)
    return found


# ---------------------------------------------------------------- running
def run_bench(bench, ctx):
    """Rows (dicts) for one Bench: time what is available, mark the rest."""
    rows, live = [], []
    for impl in bench.impls:
        row = {"case": bench.case, "label": bench.label, "impl": impl.name,
               "status": "ok", "note": impl.note, "unit": bench.unit}
        rows.append(row)
        try:
            if impl.external:
                res = impl.external()
                row.update(res)
                row["note"] = res.get("note", impl.note)
            else:
                live.append((row, impl.build(), impl.context))
        except UNAVAILABLE as e:
            row.update(status="unavailable", note=f"{type(e).__name__}: {e}")
        except Exception as e:   # report and go on; main() exits non-zero at the end
            row.update(status="error", note=f"{type(e).__name__}: {e}")
    if live:
        results = measure([f for _, f, _ in live], ctx.repeats, ctx.target_s,
                          [c for _, _, c in live], ctx.settle_s)
        for (row, _, _), res in zip(live, results):
            e = res.pop("error", None)
            row.update(res) if e is None else row.update(
                status="error", note=f"{type(e).__name__}: {e}")
    _derive(rows, bench, ctx.peak)
    return rows


def _derive(rows, bench, peak):
    ok = {r["impl"]: r for r in rows if r["status"] == "ok"}
    base = ok.get("fastnn")
    for r in ok.values():
        if base and r is not base:
            r["ratio"] = r["median_s"] / base["median_s"]
        if bench.flops:
            r["gflops"] = bench.flops / r["median_s"] / 1e9
            if peak and bench.device == "cpu":  # the probe measures the CPU's FMA peak
                r["peak_frac"] = r["gflops"] / peak
    cands = [ok[n] for n in bench.best_of if n in ok]
    if cands:
        best = min(cands, key=lambda r: r["median_s"])
        best["note"] = f"{bench.best_note}; {best['note']}".strip("; ")


# ---------------------------------------------------------------- output
def _fmt_time(s, unit=None):
    if s is None:
        return ""
    # A case's preferred unit keeps its rows comparable, unless it would print >= 1000.
    if unit is None or s * {"us": 1e6, "ms": 1e3, "s": 1}[unit] >= 1000:
        unit = "us" if s < 1e-3 else "ms" if s < 1 else "s"
    scale = {"us": 1e6, "ms": 1e3, "s": 1}[unit]
    return f"{s * scale:.3g} {unit.replace('us', 'µs')}"


def _cells(r):
    unit = r.get("unit")
    ok = r["status"] == "ok"
    return [r["case"], r["label"], r["impl"],
            _fmt_time(r.get("median_s"), unit) if ok else r["status"],
            (f"{_fmt_time(r['min_s'], unit)} – {_fmt_time(r['max_s'], unit)}" if ok else ""),
            f"{r['ratio']:.2f}" if "ratio" in r else "",
            f"{r['gflops']:.1f}" if "gflops" in r else "",
            f"{100 * r['peak_frac']:.0f}%" if "peak_frac" in r else "",
            r.get("note", "")]


HEADERS = ["case", "shape", "impl", "median", "min – max", "peer/fastnn", "GFLOP/s", "% peak",
           "note"]


def header_lines(meta):
    c = meta["fastnn"]
    peak = (f"{meta['peak_gflops']:.0f} GFLOP/s on {meta['threads']} threads (fastnn probe)"
            if meta["peak_gflops"] else "n/a (probe not in this build)")
    return [
        f"date: {meta['date']}",
        f"fastnn commit: {meta['commit']} ({meta['fastnn_path']})",
        f"fastnn {c['version']}: cpu {c['cpu']}, isa {c['isa']} "
        f"(supported: {', '.join(c['supported_isas'])}), threads {meta['threads']}",
        "NumPy stand-ins still in place (not fastnn kernels): "
        + (", ".join(meta["stand_ins"]) or "none"),
        f"python {meta['python']}, torch {meta['torch'] or 'not installed'}, "
        f"numpy {meta['numpy']} (OpenBLAS {meta['openblas_arch'] or '?'}"
        + (f", OPENBLAS_CORETYPE={meta['openblas_coretype']})" if meta["openblas_coretype"]
           else ")"),
        f"peak: {peak}",
        _load_line(meta),
        f"protocol: {'--quick, ' if meta['quick'] else ''}{meta['repeats']} interleaved "
        f"samples of >= {meta['target_ms']:g} ms each, {meta['settle_ms']:g} ms untimed run "
        "before a sample that follows another library's; ratio = peer median / fastnn median "
        "(>1: fastnn faster)",
    ]


def _load_line(meta):
    start, end = meta.get("load_start"), meta.get("load_end")
    if start is None:
        return "machine load: unknown"
    text = f"machine load (1-min average): {start:.2f} at start"
    text += f", {end:.2f} at end" if end is not None else ""
    # Busy cores deschedule our threads: thread-pool barriers then wait a whole scheduler
    # slice and multi-threaded timings (PyTorch's especially) blow up. Only the start value
    # judges the machine; the end value includes this run's own threads.
    if start > 0.5:
        text += (" -- machine was busy before the run: multi-threaded timings are unreliable"
                 " (--threads 1 stays meaningful)")
    return text


def text_table(table):
    widths = [max(len(str(x)) for x in col) for col in zip(HEADERS, *table)]
    line = lambda cells: "  ".join(str(x).ljust(w) for x, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(HEADERS), line(["-" * w for w in widths])] + [line(r) for r in table])


def markdown_table(table):
    esc = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    return "\n".join(out + ["| " + " | ".join(esc(x) for x in r) + " |" for r in table])


# ---------------------------------------------------------------- entry point
def parse_args(argv):
    p = argparse.ArgumentParser(description="fastnn vs PyTorch/NumPy benchmarks")
    p.add_argument("--quick", action="store_true", help="small shapes, few repeats (< 1 min)")
    p.add_argument("--cases", nargs="+", metavar="NAME", choices=list(CASES),
                   help=f"subset of: {' '.join(CASES)}")
    p.add_argument("--json", metavar="FILE", help="write every number (and samples) here")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--threads", type=int, default=None, help="threads for every library "
                   "(default: fastnn's default, the CPUs available)")
    p.add_argument("--repeats", type=int, default=None, help="samples per implementation")
    p.add_argument("--target-ms", type=float, default=20.0, help="minimum duration of a sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settle-ms", type=float, default=None,
                   help="untimed run of a library before a sample that follows another "
                   "library's, so the other's spinning pool threads time out (default: 100 "
                   "with more than one thread, else 0; 0 in --quick)")
    p.add_argument("--numpy-gemm-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 11
    if args.settle_ms is None:
        args.settle_ms = 0.0 if args.quick or args.threads == 1 else 100.0
    if args.repeats < 1 or args.target_ms <= 0 or (args.threads is not None and args.threads < 1):
        p.error("--repeats, --target-ms and --threads must be positive")
    if args.settle_ms < 0:
        p.error("--settle-ms must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.numpy_gemm_worker:
        _numpy_gemm_worker(args.numpy_gemm_worker, args.threads or 1, args.repeats,
                           args.target_ms / 1e3, args.seed)
        return 0
    if args.threads is None:
        args.threads = _import_fastnn().get_num_threads()
    meta = _setup(args)
    ctx = Ctx(args, meta["fastnn"])
    ctx.peak = meta["peak_gflops"]
    bullet = "- " if args.markdown else ""   # a Markdown list pastes cleanly into RESULTS.md
    print("\n".join(bullet + line for line in header_lines(meta)), flush=True)
    rows = []
    with _blas_threads(args.threads) as limited:
        if not limited:
            print("note: threadpoolctl missing; NumPy's BLAS uses its own thread count "
                  "(set OPENBLAS_NUM_THREADS to match)")
        for name in args.cases or CASES:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                benches = CASES[name](ctx)
            except Exception as e:
                rows.append({"case": name, "label": "", "impl": "", "status": "error",
                             "note": f"{type(e).__name__}: {e}"})
                continue
            for b in benches:
                rows.extend(run_bench(b, ctx))
    meta["load_end"] = _load()
    table = [_cells(r) for r in rows]
    print(bullet + _load_line(meta))
    print()
    print(markdown_table(table) if args.markdown else text_table(table))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    errors = [r for r in rows if r["status"] == "error"]
    for r in errors:
        print(f"ERROR in {r['case']} / {r['impl']}: {r['note']}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
