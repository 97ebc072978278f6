"""Smoke test of the benchmark harness. Checks that it runs and that its bookkeeping is right;
never checks a timing (machines are shared and noisy)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from bench.cases import Bench, Impl  # noqa: E402

import fastnn  # noqa: E402


class _Ctx:
    repeats, target_s, peak, settle_s = 2, 1e-4, 100.0, 0.0


def _fake_row(rows, impl):
    return next(r for r in rows if r["impl"] == impl)


def test_ratio_best_and_unavailable():
    def missing():
        raise ImportError("No module named 'fastnn.optim'")

    def broken():
        raise ValueError("bad shape")

    bench = Bench("fake", "x", [Impl("fastnn", lambda: (lambda: None)),
                                Impl("peer", lambda: (lambda: sum(range(2000)))),
                                Impl("ext", external=lambda: {"median_s": 1.0, "min_s": 1.0,
                                                              "max_s": 1.0, "samples_s": [1.0]}),
                                Impl("missing", missing), Impl("broken", broken),
                                Impl("raises", lambda: (lambda: 1 / 0))],
                  flops=1e9, best_of=("peer", "ext"), best_note="best OpenBLAS")
    rows = run.run_bench(bench, _Ctx())
    fast, peer, ext = (_fake_row(rows, n) for n in ("fastnn", "peer", "ext"))
    assert fast["status"] == peer["status"] == ext["status"] == "ok"
    assert fast["median_s"] > 0 and "ratio" not in fast
    assert peer["ratio"] == peer["median_s"] / fast["median_s"]
    assert ext["ratio"] == 1.0 / fast["median_s"]
    assert abs(ext["gflops"] - 1.0) < 1e-12 and abs(ext["peak_frac"] - 0.01) < 1e-12
    # The in-process peer (microseconds) beats the 1 s external one.
    assert peer["note"].startswith("best OpenBLAS") and "best" not in ext["note"]
    assert _fake_row(rows, "missing")["status"] == "unavailable"
    assert "fastnn.optim" in _fake_row(rows, "missing")["note"]
    assert _fake_row(rows, "broken")["status"] == "error"
    # A callable that fails while timed is an error of its own row only.
    assert _fake_row(rows, "raises")["status"] == "error"
    assert "ZeroDivisionError" in _fake_row(rows, "raises")["note"]


def test_quick_op_overhead_runs(tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--cases",
                        "op_overhead", "--repeats", "2", "--target-ms", "5", "--json", str(out)],
                       capture_output=True, text=True, timeout=60,
                       # the fastnn this test imported (installed, or the in-place build)
                       env={**os.environ, "PYTHONPATH": os.path.dirname(
                           os.path.dirname(fastnn.__file__))})
    assert p.returncode == 0, p.stderr
    assert "op_overhead" in p.stdout and "fastnn commit" in p.stdout
    data = json.loads(out.read_text())
    fast = [r for r in data["rows"] if r["impl"] == "fastnn"]
    assert len(fast) == 1 and fast[0]["status"] == "ok" and fast[0]["median_s"] > 0
    assert data["meta"]["threads"] >= 1


def test_gpu_cases_say_why_they_cannot_run(tmp_path):
    """The GPU cases time fastnn's CUDA backend beside PyTorch CUDA; on a machine without a
    CUDA device they must come back as 'unavailable' rows naming the reason (not errors),
    and with one, as timed rows."""
    out = tmp_path / "g.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--cases",
                        "gpu_gemm", "gpu_softmax_ce", "gpu_mlp_step", "--repeats", "2",
                        "--target-ms", "5", "--json", str(out)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(
                           os.path.dirname(fastnn.__file__))})
    assert p.returncode == 0, p.stderr
    rows = [r for r in json.loads(out.read_text())["rows"] if r["impl"] == "fastnn"]
    assert {r["case"] for r in rows} == {"gpu_gemm", "gpu_softmax_ce", "gpu_mlp_step"}
    assert len(rows) == 5  # three precisions of the GEMM
    for r in rows:
        if fastnn.cuda.is_available():
            assert r["status"] == "ok" and "peak_frac" not in r
        else:
            assert r["status"] == "unavailable" and "CUDA" in r["note"]


def test_quick_elementwise_cases_run(tmp_path):
    # activations, op_small, op_tensor and softmax_dim: every row times (no "error" or
    # "unavailable" row), and NumPy's gelu row is left out (NumPy has no erf).
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--cases",
                        "activations", "op_small", "op_tensor", "softmax_dim", "--repeats", "2",
                        "--target-ms", "2",
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(
                           os.path.dirname(fastnn.__file__))})
    assert p.returncode == 0, p.stderr
    rows = json.loads(out.read_text())["rows"]
    have_torch = any(r["impl"] == "torch" and r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["status"] == "ok" or (r["impl"] == "torch" and not have_torch), r
    acts = {r["label"].split(",")[0] for r in rows if r["case"] == "activations"}
    assert acts == {"sigmoid", "tanh", "gelu", "softplus", "exp"}
    assert not any(r["impl"] == "numpy" and r["label"].startswith("gelu") for r in rows)
    assert len([r for r in rows if r["case"] == "op_small" and r["impl"] == "fastnn"]) == 4
    assert len([r for r in rows if r["case"] == "op_tensor" and r["impl"] == "fastnn"]) == 11
    assert len([r for r in rows if r["case"] == "softmax_dim" and r["impl"] == "fastnn"]) == 2
