"""fastnn.utils.data: TensorDataset, DataLoader (batching, shuffle, drop_last, len) and
random_split."""
import math

import numpy as np
import pytest

import fastnn
from fastnn.utils.data import DataLoader, Dataset, Subset, TensorDataset, random_split
from harness import expect_error


def make_ds(n, rng):
    X = fastnn.tensor(rng.standard_normal((n, 3)).astype(np.float32))
    y = fastnn.arange(n)
    return X, y, TensorDataset(X, y)


def test_tensor_dataset(rng):
    X, y, ds = make_ds(7, rng)
    assert len(ds) == 7
    x3, y3 = ds[3]
    np.testing.assert_array_equal(x3.numpy(), X.numpy()[3])
    assert int(y3) == 3
    expect_error(ValueError, "TensorDataset", TensorDataset, X, fastnn.arange(6),
                 match="tensors[0] has 7 samples, tensors[1] has 6")
    expect_error(ValueError, "TensorDataset", TensorDataset)
    expect_error(ValueError, "TensorDataset", TensorDataset, fastnn.tensor(1.0))


@pytest.mark.parametrize("n", [0, 1, 7, 16])
@pytest.mark.parametrize("bs", [1, 3, 16, 20])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_in_order(n, bs, drop_last, rng):
    X, y, ds = make_ds(n, rng)
    loader = DataLoader(ds, batch_size=bs, drop_last=drop_last)
    want_len = n // bs if drop_last else math.ceil(n / bs)
    assert len(loader) == want_len
    batches = list(loader)
    assert len(batches) == want_len
    for k, (xb, yb) in enumerate(batches):
        rows = np.arange(k * bs, min(n, (k + 1) * bs))
        assert xb.dtype is fastnn.float32 and yb.dtype is fastnn.int64
        assert tuple(xb.shape) == (len(rows), 3)
        np.testing.assert_array_equal(xb.numpy(), X.numpy()[rows])
        np.testing.assert_array_equal(yb.numpy(), rows)
        assert xb.is_contiguous() and xb.data_ptr() % 64 == 0  # the library's aligned memory
        if drop_last:
            assert len(rows) == bs


def test_shuffle_is_a_reproducible_permutation(rng):
    X, y, ds = make_ds(23, rng)
    loader = DataLoader(ds, batch_size=5, shuffle=True)
    fastnn.manual_seed(123)
    e1 = np.concatenate([yb.numpy() for _, yb in loader])
    e2 = np.concatenate([yb.numpy() for _, yb in loader])
    fastnn.manual_seed(123)
    e1_again = np.concatenate([yb.numpy() for _, yb in loader])
    assert sorted(e1) == list(range(23)) and sorted(e2) == list(range(23))
    assert not np.array_equal(e1, np.arange(23))
    assert not np.array_equal(e1, e2)  # a new order each epoch
    np.testing.assert_array_equal(e1, e1_again)
    # Features stay with their labels.
    for xb, yb in loader:
        np.testing.assert_array_equal(xb.numpy(), X.numpy()[yb.numpy()])


def test_generator_argument(rng):
    _, _, ds = make_ds(10, rng)
    def epoch(seed):
        loader = DataLoader(ds, 4, shuffle=True, generator=np.random.default_rng(seed))
        return [yb.tolist() for _, yb in loader]

    a, b = epoch(5), epoch(5)
    assert a == b
    expect_error(TypeError, "DataLoader", DataLoader, ds, 4, generator="seed")


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": fastnn.full((2,), float(i)), "id": i}, float(i) ** 2


def test_generic_dataset_is_stacked_per_field():
    batches = list(DataLoader(Squares(), batch_size=2))
    assert len(batches) == 3
    fields, sq = batches[1]
    np.testing.assert_array_equal(fields["x"].numpy(), [[2, 2], [3, 3]])
    assert fields["id"].dtype is fastnn.int64 and fields["id"].tolist() == [2, 3]
    assert sq.dtype is fastnn.float32 and sq.tolist() == [4.0, 9.0]
    assert tuple(batches[2][0]["x"].shape) == (1, 2)
    custom = list(DataLoader(Squares(), batch_size=5, collate_fn=lambda b: len(b)))
    assert custom == [5]


def test_bad_arguments(rng):
    _, _, ds = make_ds(4, rng)
    for bs in (0, -1, 1.5, None, True):
        expect_error(ValueError, "DataLoader", DataLoader, ds, batch_size=bs)
    expect_error(TypeError, "DataLoader", DataLoader, 5)


def test_random_split(rng):
    _, _, ds = make_ds(10, rng)
    fastnn.manual_seed(0)
    parts = random_split(ds, [3, 7])
    assert [len(p) for p in parts] == [3, 7] and all(isinstance(p, Subset) for p in parts)
    ids = sorted(int(p[i][1]) for p in parts for i in range(len(p)))
    assert ids == list(range(10))
    assert [len(p) for p in random_split(ds, [0.33, 0.33, 0.34])] == [4, 3, 3]
    a = random_split(ds, [5, 5], generator=np.random.default_rng(1))
    b = random_split(ds, [5, 5], generator=np.random.default_rng(1))
    assert a[0].indices == b[0].indices
    expect_error(ValueError, "random_split", random_split, ds, [3, 3], match="does not equal")
    expect_error(ValueError, "random_split", random_split, ds, [-1, 11])
    # A Subset of a TensorDataset goes through the generic (stacking) path.
    xb, yb = next(iter(DataLoader(parts[0], batch_size=3)))
    assert tuple(xb.shape) == (3, 3) and sorted(yb.tolist()) == sorted(parts[0].indices)


def test_tensor_dataset_subclass_is_honoured():
    class Scaled(TensorDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x * 100.0, y

        def __len__(self):
            return 2

    X = fastnn.arange(8).reshape(4, 2).float()
    Y = fastnn.arange(4)
    batches = list(DataLoader(Scaled(X, Y), batch_size=2))
    assert len(batches) == 1
    assert batches[0][0].tolist() == [[0.0, 100.0], [200.0, 300.0]]


def test_int_seed_shuffles_differently_each_epoch_but_reproducibly():
    ds = TensorDataset(fastnn.arange(50))
    a = DataLoader(ds, batch_size=50, shuffle=True, generator=7)
    e1, e2 = [next(iter(a))[0].tolist() for _ in range(2)]
    assert e1 != e2
    b = DataLoader(ds, batch_size=50, shuffle=True, generator=7)
    assert next(iter(b))[0].tolist() == e1
