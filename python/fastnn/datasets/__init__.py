"""Small real data sets shipped with fastnn (no download), and a train/test splitter.

``load_iris()`` and ``load_digits()`` return a ``Bunch`` (a dict with attribute access, as
scikit-learn's) with ``data`` (float32 tensor), ``target`` (int64 tensor), ``feature_names``,
``target_names`` and ``DESCR``; ``return_X_y=True`` returns ``(data, target)`` instead.
The files and their sources and licences are described in data/README.md.
"""
from __future__ import annotations

import math
import numbers
from importlib import resources

import numpy as np

from ..tensor import Tensor, float32, int64, _aligned_copy

__all__ = ["Bunch", "load_iris", "load_digits", "train_test_split"]


class Bunch(dict):
    """A dict whose keys are also attributes (``ds.data`` is ``ds["data"]``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __dir__(self):
        return list(self.keys())


def _open(name):
    # importlib.resources finds the files wherever the package is installed (even zipped).
    return resources.files(__name__).joinpath("data").joinpath(name).open("rb")


def _result(X, y, return_X_y, **meta):
    data = Tensor._make(_aligned_copy(X, float32))
    target = Tensor._make(_aligned_copy(y, int64))
    if return_X_y:
        return data, target
    return Bunch(data=data, target=target, **meta)


_IRIS_DESCR = (
    "Iris plants data set: 150 flowers, 50 of each of three species (setosa, versicolor, "
    "virginica), each described by 4 measurements in cm (sepal length, sepal width, petal "
    "length, petal width). Setosa is linearly separable from the other two; versicolor and "
    "virginica are not separable from each other. Source: R.A. Fisher (1936), \"The use of "
    "multiple measurements in taxonomic problems\", Annals of Eugenics 7(2):179-188; the UCI "
    "Machine Learning Repository's Iris data (doi:10.24432/C56C76, CC BY 4.0), corrected "
    "version as shipped by R and scikit-learn.")

_DIGITS_DESCR = (
    "Optical recognition of handwritten digits: 1797 images of the digits 0-9 (about 180 per "
    "class) written by 13 people. Each 32x32 bitmap was divided into 4x4 blocks and the on "
    "pixels counted, giving an 8x8 image of integers 0..16 (64 features, row-major). "
    "Source: E. Alpaydin and C. Kaynak (1998), Optical Recognition of Handwritten Digits, UCI "
    "Machine Learning Repository (doi:10.24432/C50P49, CC BY 4.0), the test set, as shipped "
    "by scikit-learn.")


def load_iris(return_X_y=False):
    """The iris data: data (150, 4) float32 in cm, target (150,) int64 in {0, 1, 2}."""
    with _open("iris.csv") as f:
        header = f.readline().decode().strip().split(",")
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    X, y = table[:, :4], table[:, 4].astype(np.int64)
    return _result(X, y, return_X_y, feature_names=header[:4],
                   target_names=["setosa", "versicolor", "virginica"], DESCR=_IRIS_DESCR)


def load_digits(return_X_y=False):
    """The 8x8 digits: data (1797, 64) float32 with values 0..16, target (1797,) int64 in
    0..9, and images (1797, 8, 8) float32 (the same pixels as data)."""
    with _open("digits.npz") as f:
        npz = np.load(f, allow_pickle=False)
        X, y = npz["data"], npz["target"]
    out = _result(X, y, return_X_y,
                  feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
                  target_names=list(range(10)), DESCR=_DIGITS_DESCR)
    if not return_X_y:
        out.images = out.data.reshape(-1, 8, 8)
    return out


def _n_test(test_size, n):
    if isinstance(test_size, bool):
        raise TypeError("[train_test_split] test_size must be a float in (0, 1) or an int")
    if isinstance(test_size, numbers.Integral):
        if not 0 < test_size < n:
            raise ValueError(f"[train_test_split] test_size={test_size} must leave at least one "
                             f"sample on each side of a split of {n} samples")
        return int(test_size)
    if isinstance(test_size, numbers.Real):
        if not 0 < test_size < 1:
            raise ValueError(f"[train_test_split] test_size as a fraction must be in (0, 1), "
                             f"got {test_size}")
        k = math.ceil(test_size * n)  # scikit-learn rounds the test side up
        if not 0 < k < n:
            raise ValueError(f"[train_test_split] test_size={test_size} of {n} samples leaves "
                             f"an empty split")
        return k
    raise TypeError(f"[train_test_split] test_size must be a float in (0, 1) or an int, got "
                    f"{type(test_size).__name__}")


def _stratified_test_rows(labels, n_test, rng):
    """Test rows holding each class in proportion to its size (largest remainders)."""
    classes, inv = np.unique(labels, return_inverse=True)
    counts = np.bincount(inv)
    exact = counts * (n_test / len(labels))
    take = np.floor(exact).astype(np.int64)
    # Hand the rows lost to rounding down to the classes that lost the most.
    for c in np.argsort(-(exact - take), kind="stable")[:n_test - int(take.sum())]:
        take[c] += 1
    rows = [rng.permutation(np.flatnonzero(inv == c))[:take[c]] for c in range(len(classes))]
    return np.concatenate(rows)


def train_test_split(*arrays, test_size=0.25, stratify=None, seed=0):
    """Random train/test split of tensors (or arrays) sharing their first dimension.

    Returns ``[a_train, a_test, b_train, b_test, ...]`` as scikit-learn's. ``stratify``
    (class labels, one per sample) keeps the class proportions in both parts. ``seed`` makes
    the split reproducible and independent of fastnn's global generator.
    """
    from ..utils.data import _gather

    if not arrays:
        raise ValueError("[train_test_split] at least one array is required")
    n = len(arrays[0])
    for k, a in enumerate(arrays):
        if len(a) != n:
            raise ValueError(f"[train_test_split] arrays[0] has {n} samples but arrays[{k}] "
                             f"has {len(a)}")
    n_test = _n_test(test_size, n)
    rng = np.random.default_rng(seed)
    if stratify is None:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:]
    else:
        labels = np.asarray(stratify._data if isinstance(stratify, Tensor) else stratify)
        if labels.shape[:1] != (n,):
            raise ValueError(f"[train_test_split] stratify must have one label per sample "
                             f"({n}), got shape {labels.shape}")
        test = rng.permutation(_stratified_test_rows(labels, n_test, rng))
        mask = np.ones(n, bool)
        mask[test] = False
        train = rng.permutation(np.flatnonzero(mask))
    out = []
    for a in arrays:
        for rows in (train, test):
            rows = rows.astype(np.int64)
            out.append(_gather(a, rows) if isinstance(a, Tensor) else np.asarray(a)[rows])
    return out


def make_files(folder):  # pragma: no cover - maintenance helper, needs scikit-learn
    """Re-export the shipped files from scikit-learn into `folder`."""
    import os

    from sklearn import datasets as sk

    iris = sk.load_iris()
    with open(os.path.join(folder, "iris.csv"), "w") as f:
        f.write(",".join(iris.feature_names + ["target"]) + "\n")
        for x, t in zip(iris.data, iris.target):
            f.write(",".join(f"{v:g}" for v in x) + f",{t}\n")
    digits = sk.load_digits()
    np.savez_compressed(os.path.join(folder, "digits.npz"), data=digits.data.astype(np.uint8),
                        target=digits.target.astype(np.uint8))
