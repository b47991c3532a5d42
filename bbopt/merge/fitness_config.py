"""A merge fitness from YAML: Task data, perplexity on text files, or ``module:function``.

One mapping per fitness (or test) entry of a problem file:

- ``{perplexity: texts.txt}`` (or a list of files, one corpus each; one text per non-empty
  line), with optional ``average`` (``nll`` or ``perplexity``), ``batch_size`` and ``max_length``: :class:`~bbopt.merge.perplexity.
  Perplexity` with the base folder's tokenizer;
- ``{tasks: data.jsonl}`` (or a list; one task per file), each line ``{"text": ..., "label":
  int}`` (keys ``text`` / ``label`` renamable), with optional ``batch_size`` and
  ``max_length``: labelled Tasks for a sequence classifier (``model(**inputs).logits``),
  tokenised with the base's tokenizer; scored by the problem's ``metric``;
- ``{function: "package.module:name"}`` with optional ``maximize`` and ``kwargs`` (passed to
  the function on every call): a callable fitness (:class:`~bbopt.merge.fitness.CallableFitness`).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bbopt.merge.fitness import Task
from bbopt.merge.perplexity import Perplexity
from bbopt.options import OptionError

KINDS = ("perplexity", "tasks", "function")
#: texts are cut to this many tokens unless ``max_length`` says otherwise (or the model takes fewer)
DEFAULT_MAX_LENGTH = 128
EXTRAS = {"perplexity": {"batch_size", "max_length", "average"}, "tasks": {"batch_size", "max_length", "text", "label"},
          "function": {"maximize", "kwargs"}}


def fitness_from_config(spec: Any, base: str | Path, what: str = "fitness") -> tuple[Any, bool | None]:
    """(fitness object, maximize) of one YAML entry; ``base``: the folder with the tokenizer."""
    if not isinstance(spec, Mapping):
        raise OptionError(what, f"{what} must be a mapping with one of {KINDS}, got {spec!r}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise OptionError(what, f"{what} needs exactly one of {KINDS}, got keys {sorted(spec)}")
    kind = kinds[0]
    unknown = set(spec) - {kind} - EXTRAS[kind]
    if unknown:
        raise OptionError(f"{what}.{sorted(unknown)[0]}", f"{what}: {sorted(unknown)} not used by a {kind} "
                                                          f"fitness (valid: {sorted(EXTRAS[kind])})")
    if kind == "function":
        fn = load_function(spec["function"], f"{what}.function")
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise OptionError(f"{what}.kwargs", f"{what}.kwargs must be a mapping, got {kwargs!r}")
        return (functools.partial(fn, **kwargs) if kwargs else fn), bool(spec.get("maximize", False))
    files = spec[kind] if isinstance(spec[kind], list) else [spec[kind]]
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise OptionError(f"{what}.{kind}", f"{what}.{kind}: no such file {p}")
    tokenizer = _tokenizer(base)
    size = {"max_length": min(DEFAULT_MAX_LENGTH, _positions(base)), **{k: spec[k] for k in ("batch_size", "max_length")
                                                                        if k in spec}}
    if kind == "perplexity":
        corpora = {p.stem: [line for line in p.read_text().splitlines() if line.strip()] for p in paths}
        return Perplexity(corpora, tokenizer, **size, average=spec.get("average", "nll")), None
    return [_task(p, tokenizer, spec.get("text", "text"), spec.get("label", "label"), **size) for p in paths], None


def load_function(ref: Any, what: str) -> Any:
    """``"package.module:name"`` imported (the module must be importable: installed or on sys.path)."""
    if not isinstance(ref, str) or ":" not in ref:
        raise OptionError(what, f"{what} must be 'module:function', got {ref!r}")
    module, _, name = ref.partition(":")
    try:
        fn = functools.reduce(getattr, name.split("."), importlib.import_module(module))
    except (ImportError, AttributeError) as err:
        raise OptionError(what, f"{what}: cannot import {ref!r} ({err})") from None
    if not callable(fn):
        raise OptionError(what, f"{what}: {ref!r} is not callable")
    return fn


def _positions(base: str | Path) -> int:
    """The longest input the base model takes (its position embeddings)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(base))
    return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
               or DEFAULT_MAX_LENGTH)


def _tokenizer(base: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base))


def _task(path: Path, tokenizer: Any, text: str, label: str, batch_size: int = 64,
          max_length: int = DEFAULT_MAX_LENGTH) -> Task:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    missing = [i for i, r in enumerate(rows) if text not in r or label not in r]
    if missing:
        raise OptionError("tasks", f"{path}: line {missing[0] + 1} lacks {text!r} or {label!r}")
    enc = tokenizer([r[text] for r in rows], truncation=True, max_length=max_length, padding=True,
                    return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return Task(path.stem, inputs, torch.as_tensor([int(r[label]) for r in rows]), _classify, batch_size)


def _classify(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    return model(**inputs).logits
