"""State trees to files and back without pickle: JSON for structure, safetensors for arrays.

A tree is nested dicts/lists of None, bools, numbers (NaN and inf included), strings,
numpy arrays and torch tensors. One ``.safetensors`` file holds the arrays and, in its
header metadata, the JSON of the tree with each array replaced by a reference — so a
checkpoint is one file, replaced atomically, and loading it never executes code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_TREE_KEY = "bbopt_tree"


def _is_tensor(value: Any) -> bool:
    return type(value).__module__ == "torch" and type(value).__name__ in ("Tensor", "Parameter")


def _encode(value: Any, arrays: dict[str, Any], path: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"state keys must be strings, got {k!r} at {path or 'root'}")
            out[k] = _encode(v, arrays, f"{path}/{k}")
        return {"__dict__": out} if "__array__" in out or "__dict__" in out else out
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray) or _is_tensor(value):
        if isinstance(value, np.ndarray) and value.dtype == object:
            raise TypeError(f"object arrays cannot be saved without pickle (at {path})")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key, "kind": "numpy" if isinstance(value, np.ndarray) else "torch"}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save {type(value).__name__} at {path or 'root'} without pickle")


def _decode(value: Any, arrays: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        return {k: _decode(v, arrays) for k, v in _user_dict(value).items()}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def _user_dict(value: dict) -> dict:
    """A dict the user wrote; one whose keys look like markers was escaped as {"__dict__": ...}."""
    return value["__dict__"] if "__dict__" in value and len(value) == 1 else value


def save_tree(path: str | os.PathLike, tree: Any) -> None:
    """Write ``tree`` to ``path`` atomically (temp file in the same folder, then rename)."""
    arrays: dict[str, Any] = {}
    encoded = _encode(tree, arrays, "")
    kinds = {"torch" if _is_tensor(a) else "numpy" for a in arrays.values()}
    metadata = {_TREE_KEY: json.dumps(encoded), "kinds": ",".join(sorted(kinds))}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if "torch" in kinds:
            import torch
            from safetensors.torch import save_file

            tensors = {
                k: (a.detach().cpu() if _is_tensor(a) else torch.from_numpy(np.ascontiguousarray(a))).contiguous()
                for k, a in arrays.items()
            }
            save_file(tensors, tmp, metadata=metadata)
        else:
            from safetensors.numpy import save_file as save_numpy

            save_numpy({k: np.ascontiguousarray(a) for k, a in arrays.items()}, tmp, metadata=metadata)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tree(path: str | os.PathLike) -> Any:
    """Read a tree written by :func:`save_tree` (numpy arrays back as numpy)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy" if _numpy_only(path) else "pt") as fh:
        metadata = fh.metadata() or {}
        if _TREE_KEY not in metadata:
            raise ValueError(f"{path} is not a bbopt state file")
        arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no iterator)
    encoded = json.loads(metadata[_TREE_KEY])
    kinds = _array_kinds(encoded)
    for key, kind in kinds.items():
        if kind == "numpy" and _is_tensor(arrays[key]):
            arrays[key] = arrays[key].numpy()
    return _decode(encoded, arrays)


def _numpy_only(path: str | os.PathLike) -> bool:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        kinds = (fh.metadata() or {}).get("kinds", "")
    return "torch" not in kinds.split(",")


def _array_kinds(encoded: Any, out: dict[str, str] | None = None) -> dict[str, str]:
    out = {} if out is None else out
    if isinstance(encoded, dict):
        if "__array__" in encoded:
            out[encoded["__array__"]] = encoded["kind"]
        else:
            for v in _user_dict(encoded).values():
                _array_kinds(v, out)
    elif isinstance(encoded, list):
        for v in encoded:
            _array_kinds(v, out)
    return out


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """JSON written to a temp file and renamed into place: never a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=_json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
