"""The few-shot protocol of BBT / BBTv2 and the encoding of its texts with prompt slots.

Protocol (Sun et al., ICML 2022, "true few-shot"): shuffle with the seed, take ``shots``
examples per class for training and the **next** ``shots`` per class as the dev set. Here
a class-balanced test set is drawn first, with its own seed, from the same pool and
removed from it, so every few-shot seed is scored on the same held-out texts.

Encoding: ``[CLS] P_1 … P_n <template with {text} (and {mask})> [SEP]``, where the n
placeholder tokens are the prompt slots the hooks add prompts to. ``score_pos`` is where
a verbalizer reads the model: the mask token (masked LM) or the last real token (causal
LM); rows are right-padded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np


def few_shot_split(labels: Any, shots: int, seed: int, n_test: int | None = 0, test_seed: int = 0, *,
                   dev: bool = True, rest_as_test: bool = False) -> dict[str, np.ndarray]:
    """Index arrays ``train`` and ``dev`` (``shots`` per class each; no dev when ``dev=False``)
    and ``test`` (``n_test``, class-balanced, drawn first; with ``rest_as_test`` every example
    left over instead).

    ``labels: (N,)`` integers ``0..K-1``. The test draw depends only on ``test_seed``.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError("few_shot_split: labels must be a 1-D integer array")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}")
    classes = np.unique(y)
    n_test = 0 if n_test is None else n_test
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) or n_test < 0 or n_test % len(classes):
        raise ValueError(f"n_test must be a non-negative multiple of the {len(classes)} classes, got {n_test!r}")
    if rest_as_test and n_test:
        raise ValueError("few_shot_split: give n_test or rest_as_test, not both")
    per_test = n_test // len(classes)
    per_fit = shots * (2 if dev else 1)
    test_rng = np.random.default_rng(np.random.SeedSequence(int(test_seed), spawn_key=(1,)))
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(2,)))
    out: dict[str, list] = {"train": [], "dev": [], "test": []}
    for c in classes:
        members = np.flatnonzero(y == c)
        need = per_test + per_fit
        if members.size < need:
            raise ValueError(f"class {int(c)} has {members.size} examples; {need} needed for shots and test")
        members = test_rng.permutation(members)
        out["test"].append(members[:per_test])
        pool = rng.permutation(members[per_test:])
        out["train"].append(pool[:shots])
        out["dev"].append(pool[shots:per_fit])
        if rest_as_test:
            out["test"].append(pool[per_fit:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in out.items()}


@dataclass
class EncodedSplit:
    """Token rows of one split. ``input_ids, attention_mask: (N, T)``, ``score_pos, labels: (N,)``."""

    input_ids: Any
    attention_mask: Any
    score_pos: Any
    labels: Any

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def rows(self, index: Any) -> tuple[Any, Any, Any]:
        """Rows ``index`` trimmed to their longest sequence: ids, mask ``(m, T')``, score positions ``(m,)``."""
        mask = self.attention_mask[index]
        width = int(mask.sum(dim=1).max())
        return self.input_ids[index, :width], mask[:, :width], self.score_pos[index]


_FIELD = re.compile(r"\{(text|mask)\}")


def parse_template(template: str, needs_mask: bool) -> list[str]:
    """``"{text} It was {mask} ."`` -> ``["{text}", " It was", "{mask}", " ."]`` (literal pieces kept)."""
    if not isinstance(template, str) or template.count("{text}") != 1:
        raise ValueError(f"template must contain '{{text}}' exactly once, got {template!r}")
    if needs_mask and template.count("{mask}") != 1:
        raise ValueError(f"a masked-LM verbalizer needs '{{mask}}' exactly once in the template, got {template!r}")
    if not needs_mask and "{mask}" in template:
        raise ValueError("'{mask}' in the template only makes sense with the masked-LM verbalizer")
    pieces = [p for p in _FIELD.split(template) if p]
    return [f"{{{p}}}" if p in ("text", "mask") else p for p in pieces]


def placeholder_ids(tokenizer: Any, n: int) -> list[int]:
    """Ids for n prompt slots: BERT's ``[unused1..n]`` when the vocabulary has them, else ids 1000.. (as BBT)."""
    unk = tokenizer.unk_token_id
    unused = tokenizer.convert_tokens_to_ids([f"[unused{i}]" for i in range(1, n + 1)])
    if all(i is not None and i != unk for i in unused):
        return list(unused)
    if len(tokenizer) < 1000 + n:
        raise ValueError(f"vocabulary of {len(tokenizer)} tokens has no room for {n} placeholder ids at 1000..")
    return list(range(1000, 1000 + n))


def start_ids(tokenizer: Any) -> list[int]:
    """The token before the prompt slots: [CLS] / <s> / BOS, or none; the slots start after it."""
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    return [] if first is None else [int(first)]


def encode(tokenizer: Any, texts: list[str], labels: Any, *, template: str, n_prompt: int, max_text_tokens: int,
           score: str) -> EncodedSplit:
    """Tokenise ``texts`` into prompt-slotted rows. ``score``: ``"mask"``, ``"last"`` or ``"none"``."""
    import torch

    pieces = parse_template(template, needs_mask=score == "mask")
    text_ids = tokenizer(list(texts), add_special_tokens=False, truncation=True,
                         max_length=max_text_tokens)["input_ids"]
    literal = {p: tokenizer(p, add_special_tokens=False)["input_ids"] for p in pieces if p not in ("{text}", "{mask}")}
    if score == "mask" and tokenizer.mask_token_id is None:
        raise ValueError("the tokenizer has no mask token, so a masked-LM verbalizer cannot be used")
    head = start_ids(tokenizer) + placeholder_ids(tokenizer, n_prompt)
    tail = [tokenizer.sep_token_id] if score != "last" and tokenizer.sep_token_id is not None else []
    rows, positions = [], []
    for ids in text_ids:
        row = list(head)
        for p in pieces:
            if p == "{mask}":
                positions.append(len(row))
                row.append(tokenizer.mask_token_id)
            else:
                row.extend(ids if p == "{text}" else literal[p])
        if score == "last":
            positions.append(len(row) - 1)
        elif score == "none":
            positions.append(0)
        rows.append(row + tail)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        input_ids[k, :len(r)] = torch.tensor(r)
        mask[k, :len(r)] = 1
    return EncodedSplit(input_ids, mask, torch.tensor(positions, dtype=torch.long),
                        torch.as_tensor(np.asarray(labels), dtype=torch.long))
