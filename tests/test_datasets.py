"""fastnn.datasets: the shipped iris and digits data, and train_test_split."""
import numpy as np
import pytest

import fastnn
from fastnn.datasets import load_digits, load_iris, train_test_split
from harness import expect_error


def test_iris():
    d = load_iris()
    assert tuple(d.data.shape) == (150, 4) and d.data.dtype is fastnn.float32
    assert tuple(d.target.shape) == (150,) and d.target.dtype is fastnn.int64
    assert np.bincount(d.target.numpy()).tolist() == [50, 50, 50]
    assert d.target_names == ["setosa", "versicolor", "virginica"]
    assert len(d.feature_names) == 4 and "petal" in d.feature_names[2]
    assert "Fisher" in d.DESCR and "CC BY 4.0" in d.DESCR
    # The well-known first sample and per-feature ranges (cm).
    np.testing.assert_allclose(d.data.numpy()[0], [5.1, 3.5, 1.4, 0.2], rtol=1e-6)
    np.testing.assert_allclose(d.data.numpy().min(0), [4.3, 2.0, 1.0, 0.1], rtol=1e-6)
    np.testing.assert_allclose(d.data.numpy().max(0), [7.9, 4.4, 6.9, 2.5], rtol=1e-6)
    X, y = load_iris(return_X_y=True)
    np.testing.assert_array_equal(X.numpy(), d.data.numpy())
    np.testing.assert_array_equal(y.numpy(), d.target.numpy())


def test_digits():
    d = load_digits()
    X = d.data.numpy()
    assert X.shape == (1797, 64) and d.data.dtype is fastnn.float32
    assert d.target.dtype is fastnn.int64 and tuple(d.target.shape) == (1797,)
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))
    counts = np.bincount(d.target.numpy())
    assert len(counts) == 10 and counts.sum() == 1797 and counts.min() >= 170
    assert d.target_names == list(range(10)) and d.feature_names[9] == "pixel_1_1"
    assert tuple(d.images.shape) == (1797, 8, 8)
    np.testing.assert_array_equal(d.images.numpy().reshape(1797, 64), X)
    assert "Alpaydin" in d.DESCR
    Xr, yr = load_digits(return_X_y=True)
    assert tuple(Xr.shape) == (1797, 64)


def test_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.datasets")
    np.testing.assert_array_equal(load_iris().data.numpy(), sk.load_iris().data.astype(np.float32))
    np.testing.assert_array_equal(load_iris().target.numpy(), sk.load_iris().target)
    np.testing.assert_array_equal(load_digits().data.numpy(), sk.load_digits().data)
    np.testing.assert_array_equal(load_digits().target.numpy(), sk.load_digits().target)


def test_train_test_split():
    X, y = load_iris(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y)
    assert tuple(Xtr.shape) == (112, 4) and tuple(Xte.shape) == (38, 4)  # test side rounds up
    assert Xtr.dtype is fastnn.float32 and ytr.dtype is fastnn.int64
    # Disjoint, complete, rows kept together.
    both = np.concatenate([Xtr.numpy(), Xte.numpy()])
    assert sorted(map(tuple, both)) == sorted(map(tuple, X.numpy()))
    lookup = {tuple(r): t for r, t in zip(X.numpy(), y.numpy())}
    for a, b in ((Xtr, ytr), (Xte, yte)):
        for r, t in zip(a.numpy(), b.numpy()):
            assert lookup[tuple(r)] == t  # (iris has one duplicated row, in one class)
    again = train_test_split(X, y)
    np.testing.assert_array_equal(again[1].numpy(), Xte.numpy())
    other = train_test_split(X, y, seed=1)
    assert not np.array_equal(other[1].numpy(), Xte.numpy())


def test_stratified_split():
    X, y = load_digits(return_X_y=True)
    _, _, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y)
    assert len(yte) == 360 and len(ytr) == 1437
    full = np.bincount(y.numpy()) / 1797
    for part in (ytr, yte):
        frac = np.bincount(part.numpy(), minlength=10) / len(part)
        assert np.all(np.abs(frac - full) <= 1.0 / len(part) + 1e-12)
    _, _, _, yte = train_test_split(X, y, test_size=30, stratify=y.numpy())
    assert np.bincount(yte.numpy()).tolist() == [3] * 10


def test_numpy_inputs_and_errors():
    a = np.arange(20).reshape(10, 2)
    tr, te = train_test_split(a, test_size=3)
    assert isinstance(tr, np.ndarray) and tr.shape == (7, 2) and te.shape == (3, 2)
    expect_error(ValueError, "train_test_split", train_test_split, a, np.arange(9))
    expect_error(ValueError, "train_test_split", train_test_split, a, test_size=1.5)
    expect_error(ValueError, "train_test_split", train_test_split, a, test_size=10)
    expect_error(TypeError, "train_test_split", train_test_split, a, test_size="half")
    expect_error(ValueError, "train_test_split", train_test_split, a, stratify=np.arange(3))
    expect_error(ValueError, "train_test_split", train_test_split)
