"""fastnn.save / fastnn.load (safetensors): round trips, key order, nesting, dtypes, errors."""
import sys

import numpy as np
import pytest

import fastnn
from fastnn import serialization
from harness import expect_error

pytest.importorskip("safetensors")


def same(a, b):
    assert isinstance(b, fastnn.Tensor)
    assert a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)
    np.testing.assert_array_equal(a.detach().numpy(), b.numpy())


@pytest.mark.parametrize("t", [
    fastnn.tensor([[1.5, -2.0, 3.25]]),
    fastnn.arange(7),
    fastnn.tensor(np.array([2 ** 62, -5], np.int64)),  # int64 beyond float precision
    fastnn.zeros(0, 4),
    fastnn.tensor(3.5),
    fastnn.tensor([True, False]),
], ids=["f32", "i64", "i64big", "empty", "scalar", "bool"])
def test_tensor_round_trip(t, tmp_path):
    path = tmp_path / "t.safetensors"
    fastnn.save(t, path)
    out = fastnn.load(path)
    same(t, out)
    assert out.numpy().flags.c_contiguous and not np.shares_memory(out.numpy(), t.numpy())


def test_requires_grad_and_views(tmp_path):
    w = fastnn.randn(3, 4, requires_grad=True)
    fastnn.save(w, tmp_path / "w.st")
    out = fastnn.load(tmp_path / "w.st")
    np.testing.assert_array_equal(out.numpy(), w.detach().numpy())
    assert not out.requires_grad
    v = w.detach().T  # a strided view is saved as its values
    fastnn.save({"v": v}, str(tmp_path / "v.st"))
    np.testing.assert_array_equal(fastnn.load(str(tmp_path / "v.st"))["v"].numpy(),
                                  w.detach().numpy().T)


def test_state_dict_order_nesting_and_numpy(tmp_path):
    sd = {
        "layer2.weight": fastnn.randn(2, 3),
        "layer1.weight": fastnn.randn(3, 3),
        "steps": fastnn.tensor([4, 5]),
        "block": {"z": fastnn.ones(1), "a": {"deep": fastnn.zeros(2)}, "empty": {}},
        "np64": np.linspace(0, 1, 5),           # float64 NumPy -> float32 tensor
        "np32i": np.arange(3, dtype=np.int32),  # int32 NumPy -> int64 tensor
    }
    fastnn.save(sd, tmp_path / "sd.st")
    out = fastnn.load(tmp_path / "sd.st")
    assert list(out) == list(sd)  # the saved order, not safetensors' sorted order
    assert list(out["block"]) == ["z", "a", "empty"] and out["block"]["empty"] == {}
    same(sd["layer2.weight"], out["layer2.weight"])
    same(sd["block"]["a"]["deep"], out["block"]["a"]["deep"])
    same(sd["steps"], out["steps"])
    assert out["np64"].dtype is fastnn.float32
    np.testing.assert_allclose(out["np64"].numpy(), sd["np64"], rtol=1e-7)
    assert out["np32i"].dtype is fastnn.int64 and out["np32i"].tolist() == [0, 1, 2]
    fastnn.save({}, tmp_path / "e.st")
    assert fastnn.load(tmp_path / "e.st") == {}


def test_file_from_another_program(tmp_path):
    from safetensors.numpy import save_file

    save_file({"b.x": np.ones((2, 2), np.float64), "a": np.arange(3, dtype=np.uint8)},
              str(tmp_path / "other.st"))
    out = fastnn.load(tmp_path / "other.st")
    assert set(out) == {"a", "b.x"}  # flat: no fastnn record to restore nesting from
    assert out["b.x"].dtype is fastnn.float32 and out["a"].dtype is fastnn.int64


def test_errors(tmp_path):
    p = tmp_path / "x.st"
    expect_error(TypeError, "save", fastnn.save, [fastnn.ones(2)], p, match="got list")
    expect_error(TypeError, "save", fastnn.save, np.ones(2), p, match="got ndarray")
    expect_error(TypeError, "save", fastnn.save, {"a": 1.0}, p, match="value of 'a'")
    expect_error(TypeError, "save", fastnn.save, {"a": {"b": "text"}}, p, match="'a.b'")
    expect_error(TypeError, "save", fastnn.save, {1: fastnn.ones(1)}, p, match="keys must be str")
    expect_error(TypeError, "save", fastnn.save, {"c": np.ones(2, np.complex64)}, p,
                 match="complex64")
    clash = {"a.b": fastnn.ones(1), "a": {"b": fastnn.ones(1)}}
    expect_error(ValueError, "save", fastnn.save, clash, p, match="appears twice")
    assert not p.exists()
    expect_error(FileNotFoundError, "load", fastnn.load, tmp_path / "missing.st")
    (tmp_path / "junk.st").write_bytes(b"not a safetensors file at all")
    expect_error(ValueError, "load", fastnn.load, tmp_path / "junk.st", match="safetensors")


def test_missing_safetensors_message(monkeypatch, tmp_path):
    # A None entry in sys.modules makes `import safetensors` raise ImportError.
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        serialization.save(fastnn.ones(1), tmp_path / "x.st")
    with pytest.raises(ImportError, match=r"^\[load\]"):
        serialization.load(tmp_path / "x.st")


def test_save_into_missing_folder_names_the_op(tmp_path):
    expect_error(FileNotFoundError, "save", fastnn.save, fastnn.ones(1),
                 str(tmp_path / "missing" / "x.safetensors"))


def test_bfloat16_file_gets_a_clear_error(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    path = str(tmp_path / "bf16.safetensors")
    st.save_file({"w": torch.ones(2, dtype=torch.bfloat16)}, path)
    expect_error(TypeError, "load", fastnn.load, path, match="bfloat16")
