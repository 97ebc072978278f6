"""Datasets and mini-batch loading, shaped like torch.utils.data.

``DataLoader`` over a ``TensorDataset`` gathers each batch with one indexed copy per tensor
(no per-sample Python loop); over any other ``Dataset`` it fetches samples one by one and
stacks them field by field. Shuffling draws from fastnn's generator, so
``fastnn.manual_seed`` makes the order reproducible.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from ..tensor import Tensor, _aligned, _dtype_of, default_generator, tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "DataLoader", "random_split", "default_collate"]


class Dataset:
    """A map-style dataset: ``__getitem__(i)`` for i in ``range(len(ds))``."""

    def __getitem__(self, index):  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self):  # pragma: no cover - abstract
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are the i-th rows of each tensor: ``ds[i] == (t0[i], t1[i], ...)``."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("[TensorDataset] needs at least one tensor")
        ts = []
        for k, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                t = tensor(t)
            if t.ndim == 0:
                raise ValueError(f"[TensorDataset] tensors[{k}] is 0-d; every tensor needs a "
                                 f"first (sample) dimension")
            ts.append(t)
        n = ts[0].shape[0]
        for k, t in enumerate(ts):
            if t.shape[0] != n:
                raise ValueError(f"[TensorDataset] size mismatch between tensors: tensors[0] "
                                 f"has {n} samples, tensors[{k}] has {t.shape[0]}")
        self.tensors = tuple(ts)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, index):
        if isinstance(index, (list, tuple)):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def _rng(generator, op="DataLoader"):
    """The NumPy Generator behind `generator` (a fastnn generator, a NumPy Generator, an int
    seed, or None for fastnn's default generator)."""
    if generator is None:
        # Looked up at each use: manual_seed replaces the generator's rng.
        return default_generator.rng
    if isinstance(generator, np.random.Generator):
        return generator
    if hasattr(generator, "rng"):
        return generator.rng
    if isinstance(generator, numbers.Integral):
        return np.random.default_rng(int(generator))
    raise TypeError(f"[{op}] generator must be a fastnn generator, a numpy Generator or "
                    f"an int seed, got {type(generator).__name__}")


def _gather(t: Tensor, idx: np.ndarray) -> Tensor:
    """Rows `idx` of `t`, copied straight into fresh aligned memory (one C-level gather)."""
    a = t._data
    out = _aligned((len(idx),) + a.shape[1:], _dtype_of(a.dtype))
    np.take(a, idx, axis=0, out=out)
    return Tensor._make(out)


def default_collate(batch):
    """A list of samples -> a batch: tensors and numbers are stacked, tuples/lists and dicts
    are collated field by field (as torch's default_collate)."""
    from .. import stack

    first = batch[0]
    if isinstance(first, Tensor):
        return stack(batch, 0)
    if isinstance(first, np.ndarray):
        return stack([tensor(b) for b in batch], 0)
    if isinstance(first, (numbers.Number, np.bool_)):
        # Python ints become int64, other numbers float32 (fastnn's two dtypes).
        return tensor(list(batch))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, Sequence):
        n = len(first)
        if any(len(b) != n for b in batch):
            raise ValueError("[DataLoader] each sample in a batch must have the same number of "
                             "fields")
        fields = [default_collate([b[i] for b in batch]) for i in range(n)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(f"[DataLoader] default_collate can't batch samples of type "
                    f"{type(first).__name__}")


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size`` samples.

    shuffle: a new random order every epoch (every ``iter``), from ``generator`` or fastnn's
    default generator. drop_last: leave out the last, short batch. ``len(loader)`` is the
    number of batches, as in PyTorch.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None,
                 collate_fn=None):
        if batch_size is None or isinstance(batch_size, bool) or \
                not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"[DataLoader] batch_size should be a positive integer, got "
                             f"{batch_size!r}")
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"[DataLoader] dataset must support len() and indexing, got "
                            f"{type(dataset).__name__}")
        # Resolved once (and a bad generator rejected now): an int seed then gives a new order
        # every epoch, reproducibly, instead of the same order each time.
        self._shuffle_rng = _rng(generator) if generator is not None else None
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.collate_fn = collate_fn

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self):
        n = len(self.dataset)
        if self.shuffle:
            rng = self._shuffle_rng if self._shuffle_rng is not None else _rng(None)
            return rng.permutation(n).astype(np.int64)
        return np.arange(n, dtype=np.int64)

    def __iter__(self):
        order = self._order()
        n, bs = len(order), self.batch_size
        stop = n - n % bs if self.drop_last else n
        # Only an exact TensorDataset takes the indexing fast path: a subclass may override
        # __getitem__ (augmentation) or __len__, which must then be honoured.
        fast = type(self.dataset) is TensorDataset and self.collate_fn is None
        collate = self.collate_fn or default_collate
        for b in range(0, stop, bs):
            idx = order[b:b + bs]
            if fast:
                yield tuple(_gather(t, idx) for t in self.dataset.tensors)
            else:
                yield collate([self.dataset[int(i)] for i in idx])


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random ``Subset``s of the given lengths.

    lengths may be counts summing to len(dataset), or fractions summing to 1 (the remainder
    of the rounding down is dealt out one sample at a time, as PyTorch does).
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1) \
            and sum(lengths) <= 1 + 1e-9:
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"[random_split] fraction at index {i} is not between 0 and 1")
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(not isinstance(x, numbers.Integral) or x < 0 for x in lengths):
        raise ValueError(f"[random_split] lengths must be non-negative integers or fractions "
                         f"summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"[random_split] sum of input lengths ({sum(lengths)}) does not equal "
                         f"the length of the input dataset ({n})")
    perm = _rng(generator, "random_split").permutation(n)
    out, start = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[start:start + k].tolist()))
        start += k
    return out
