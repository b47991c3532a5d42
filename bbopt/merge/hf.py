"""Hugging Face model folders in and out of a merge, with weights memory-mapped.

In: :func:`folder_state` maps a folder's weights (``model.safetensors``, sharded
``model-0000k-of-0000n.safetensors`` with their index, or ``pytorch_model.bin``) as tensors
that are views of the files (:func:`open_safetensors`: the safetensors header is parsed here
and each tensor is a zero-copy view of a private, copy-on-write mapping), in their stored
dtype. Their pages are file pages, not anonymous memory: the kernel can evict and re-read
them, so K experts cost no RAM of their own. :func:`load_model` builds the module that is
merged into (the config's architecture, float32). Out: :func:`save_folder` writes what
``from_pretrained`` loads (``save_pretrained``: config + safetensors, sharded as transformers
shards them) and copies the base's tokenizer files.
"""

from __future__ import annotations

import json
import mmap
import shutil
import struct
from pathlib import Path
from typing import Any

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "vocab.txt", "tokenizer.model", "added_tokens.json", "spiece.model", "generation_config.json")


def open_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as views of a copy-on-write memory map (no copy)."""
    path = Path(path)
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    start = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, not supported")
        dtype = DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        count = (b - a) // dtype.itemsize
        t = torch.frombuffer(mm, dtype=dtype, count=count, offset=start + a) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def is_folder(path: Any) -> bool:
    """Whether ``path`` is a local Hugging Face model folder (has a ``config.json``)."""
    return isinstance(path, (str, Path)) and (Path(path) / "config.json").is_file()


def folder_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model folder, memory-mapped, in its stored dtype."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(open_safetensors(path / shard))
        return state
    if (path / "model.safetensors").is_file():
        return open_safetensors(path / "model.safetensors")
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", mmap=True, weights_only=True)
    raise FileNotFoundError(f"{path}: no model.safetensors, safetensors index or pytorch_model.bin")


def model_class(path: str | Path, architecture: str | None = None) -> Any:
    """The transformers class that loads the folder: ``architecture`` or the config's first one."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(path))
    name = architecture or (config.architectures or [None])[0]
    if name is None:
        return transformers.AutoModel
    cls = getattr(transformers, name, None)
    if cls is None:
        raise ValueError(f"{path}: architecture {name!r} is not a transformers class")
    return cls


def load_model(path: str | Path, architecture: str | None = None) -> torch.nn.Module:
    """The folder's model in float32, in eval mode (the module merges are written into)."""
    module = model_class(path, architecture).from_pretrained(str(path), dtype=torch.float32)
    return module.eval()


def save_folder(module: Any, out: str | Path, tokenizer_from: str | Path | None = None,
                max_shard_size: str | int = "50GB") -> Path:
    """``module.save_pretrained(out)`` (a transformers model: safetensors) plus the base folder's tokenizer files."""
    out = Path(out)
    module.save_pretrained(str(out), max_shard_size=max_shard_size)
    if tokenizer_from is not None:
        for name in TOKENIZER_FILES:
            src = Path(tokenizer_from) / name
            if src.is_file():
                shutil.copyfile(src, out / name)
    return out
