"""fastnn.save / fastnn.load: tensors and state_dicts in the safetensors format.

safetensors stores a flat, unordered name -> array table plus a str -> str metadata header.
fastnn writes its own small record into that header (under the "fastnn" key) so that load()
gives back what save() was given: a single Tensor, or a mapping with its original key order
and nesting. Files written elsewhere (no record) load as a flat dict of their arrays.
Nested mappings are flattened with "." between key parts, like a state_dict's names.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from .tensor import Tensor, _aligned_copy, _contig, _is_host, bool_, float32, int64

__all__ = ["save", "load"]

_TENSOR_KEY = "__fastnn_tensor__"  # where a lone Tensor is stored
_META_KEY = "fastnn"
_FORMAT_VERSION = 1
# dtypes safetensors can store and fastnn can load back (float -> float32, int -> int64).
_STORABLE = {np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16,
                                   np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                   np.uint64, np.bool_)}


def _safetensors(op):
    try:
        from safetensors import safe_open
        from safetensors.numpy import save_file
    except ImportError as e:
        raise ImportError(f"[{op}] fastnn.save and fastnn.load use the safetensors file "
                          f"format, which needs the 'safetensors' package: pip install "
                          f"safetensors (or pip install fastnn[io])") from e
    return safe_open, save_file


def _as_array(v, where):
    if isinstance(v, Tensor):
        a = v._data
        if not _is_host(a):  # saving from a CUDA tensor copies it to the host
            a = a.numpy()
    elif isinstance(v, np.ndarray):
        a = v
    else:
        raise TypeError(f"[save] {where} must be a Tensor, a NumPy array or a dict of them, got "
                        f"{type(v).__name__}")
    if a.dtype not in _STORABLE:
        raise TypeError(f"[save] {where} has dtype {a.dtype}, which safetensors can't store")
    return _contig(a)  # (np.ascontiguousarray would turn a 0-d array into 1-d)


def _flatten(obj, prefix, arrays, entries):
    """Fill arrays (flat key -> array) and entries ([path, flat key or None for an empty
    dict], in order) from a possibly nested mapping."""
    if not obj and prefix:
        entries.append([list(prefix), None])
    for k, v in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"[save] keys must be str, got {type(k).__name__} key {k!r}"
                            + (f" in {'.'.join(prefix)!r}" if prefix else ""))
        path = prefix + [k]
        if isinstance(v, Mapping):
            _flatten(v, path, arrays, entries)
            continue
        flat = ".".join(path)
        if flat in arrays:
            raise ValueError(f"[save] key {flat!r} appears twice once nested dicts are "
                             f"flattened with '.'")
        arrays[flat] = _as_array(v, f"value of {flat!r}")
        entries.append([path, flat])


def save(obj, path):
    """Save a Tensor, or a mapping of str -> Tensor / NumPy array / nested mapping, to
    `path` in the safetensors format."""
    safe_open, save_file = _safetensors("save")
    arrays, entries = {}, []
    if isinstance(obj, Tensor):
        kind = "tensor"
        arrays[_TENSOR_KEY] = _as_array(obj, "obj")
    elif isinstance(obj, Mapping):
        kind = "dict"
        _flatten(obj, [], arrays, entries)
    else:
        raise TypeError(f"[save] obj must be a Tensor or a dict of str -> Tensor / NumPy array "
                        f"(a state_dict), got {type(obj).__name__}")
    record = {"version": _FORMAT_VERSION, "kind": kind, "entries": entries}
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"[save] cannot write {path!r}: folder {folder!r} does not exist")
    try:
        save_file(arrays, path, metadata={_META_KEY: json.dumps(record)})
    except Exception as e:  # safetensors reports I/O failures with its own error type
        raise OSError(f"[save] could not write {path!r}: {e}") from e


def _to_tensor(a):
    """A loaded array as a fastnn tensor in fresh aligned memory with a fastnn dtype."""
    if a.dtype.kind == "f":
        return Tensor._make(_aligned_copy(a, float32))
    if a.dtype.kind in "iu":
        return Tensor._make(_aligned_copy(a, int64))
    if a.dtype.kind == "b":
        return Tensor._make(_aligned_copy(a, bool_))
    raise TypeError(f"[load] can't load an array of dtype {a.dtype}")


# safetensors dtypes with no NumPy equivalent.
_UNSUPPORTED = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3", "F8_E5M2": "float8_e5m2"}


def load(path):
    """Load what save() wrote: a Tensor, or a dict (nested as saved, keys in saved order)."""
    safe_open, _ = _safetensors("load")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"[load] no such file: {path!r}")
    try:
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            for k in f.keys():
                dt = f.get_slice(k).get_dtype()
                if dt in _UNSUPPORTED:
                    raise TypeError(f"[load] tensor {k!r} in {path!r} is {_UNSUPPORTED[dt]}, "
                                    f"which NumPy (and so fastnn) cannot hold; convert it to "
                                    f"float32 before saving (e.g. torch: t.float())")
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except TypeError:
        raise
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise ValueError(f"[load] {path!r} is not a readable safetensors file: {e}") from e
    record = json.loads(meta[_META_KEY]) if _META_KEY in meta else None
    if record is None:  # a file from another program: its arrays, flat
        return {k: _to_tensor(a) for k, a in arrays.items()}
    if record.get("kind") == "tensor":
        return _to_tensor(arrays[_TENSOR_KEY])
    out: dict = {}
    for path_parts, flat in record["entries"]:
        node = out
        for part in path_parts[:-1]:
            node = node.setdefault(part, {})
        last = path_parts[-1]
        node[last] = {} if flat is None else _to_tensor(arrays[flat])
    return out
