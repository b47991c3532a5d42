"""Verbalizers (model outputs -> class logits) and BBT's losses over them.

- :class:`LMHeadVerbalizer`: the LM head read at one position per row — the mask token of
  a masked LM (BBT's verbalizer, e.g. "bad"/"great") or the last real token of a causal LM
  — on those rows only and kept to the label words' logits (full-vocabulary logits at
  every position would dominate the cost).
- :class:`CosineVerbalizer`: scale × cosine between the mean-pooled output and encoded
  label sentences ("This is positive, good and great."); works on encoders with no LM
  head, such as the packaged MiniLM, where a tied-embedding head scores at chance.
- :class:`CentroidVerbalizer`: scale × cosine to class centroids of the k-shot training
  embeddings, fitted once with no prompt and then frozen.

Losses (BBT's ``calc_metric``): ``ce`` cross-entropy; ``hinge`` Σ_{j≠y} max(0, l_j − l_y +
margin) averaged over examples (margin 2); ``perf`` negative accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

LOSSES = ("ce", "hinge", "perf")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden: (R, T, H)``, ``mask: (R, T)`` -> mean over real tokens ``(R, H)``."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def lm_head(model: Any) -> torch.nn.Module:
    """The LM head module of a ``*ForMaskedLM`` / causal LM (``lm_head`` or BERT's ``cls``)."""
    for name in ("lm_head", "cls", "generator_lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    raise ValueError(f"{type(model).__name__} has no LM head (lm_head / cls); use the 'cosine' or "
                     "'centroid' verbalizer with an encoder-only model")


def label_token_ids(tokenizer: Any, words: Any) -> list[int]:
    """One vocabulary id per label word; a word the tokenizer splits is refused (an LM head
    scores one token). Words are tokenised as they follow a space where the tokenizer marks it."""
    ids = []
    for word in words:
        pieces = tokenizer(f" {word}" if _marks_spaces(tokenizer) else str(word), add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ValueError(f"label word {word!r} is {len(pieces)} tokens; each label word must be one token")
        ids.append(int(pieces[0]))
    return ids


def _marks_spaces(tokenizer: Any) -> bool:
    """Byte-level BPE (GPT-2, RoBERTa) encodes a leading space into the token ("Ġgreat")."""
    return len(tokenizer(" a", add_special_tokens=False)["input_ids"]) == 1 and \
        tokenizer(" a", add_special_tokens=False)["input_ids"] != tokenizer("a", add_special_tokens=False)["input_ids"]


class Verbalizer:
    """Maps the last hidden states to ``(R, K)`` class logits; ``prepare`` runs once per problem."""

    score = "none"  # where fewshot.encode puts score_pos: "mask", "last" or "none"
    n_classes = 0

    def prepare(self, problem: Any) -> None:
        """Fit whatever the verbalizer needs from the frozen model (no prompt)."""

    def logits(self, hidden: torch.Tensor, pool_mask: torch.Tensor, score_pos: torch.Tensor) -> torch.Tensor:
        """``hidden: (R, T, H)``; ``pool_mask: (R, T)`` the tokens a pooling verbalizer averages
        (real tokens but the prompt slots); ``score_pos: (R,)`` where a reading verbalizer looks."""
        raise NotImplementedError


class LMHeadVerbalizer(Verbalizer):
    """Logits of the label tokens ``(K,)`` at the mask (``causal=False``) or last token (``causal=True``)."""

    def __init__(self, label_token_ids: list[int], causal: bool = False):
        ids = [int(i) for i in label_token_ids]
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise ValueError(f"label_token_ids must be ≥ 2 distinct token ids, got {ids}")
        self.label_ids = torch.tensor(ids, dtype=torch.long)
        self.n_classes = len(ids)
        self.score = "last" if causal else "mask"
        self.head: torch.nn.Module | None = None

    def prepare(self, problem: Any) -> None:
        self.head = lm_head(problem.model)
        self.label_ids = self.label_ids.to(problem.device)

    def logits(self, hidden: torch.Tensor, pool_mask: torch.Tensor, score_pos: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("LMHeadVerbalizer.prepare was not called")
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), score_pos]
        return self.head(rows[:, None, :])[:, 0, self.label_ids]


class CosineVerbalizer(Verbalizer):
    """``scale · cos(mean_pool(h), anchor_k)`` with anchors encoded once by the frozen model."""

    def __init__(self, anchors: list[str], scale: float = 20.0):
        if len(anchors) < 2 or not all(isinstance(a, str) and a for a in anchors):
            raise ValueError(f"anchors must be ≥ 2 non-empty label sentences, got {anchors!r}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.anchors = list(anchors)
        self.scale = float(scale)
        self.n_classes = len(anchors)
        self.directions: torch.Tensor | None = None

    def prepare(self, problem: Any) -> None:
        self.directions = F.normalize(problem.embed_texts(self.anchors), dim=-1)

    def logits(self, hidden: torch.Tensor, pool_mask: torch.Tensor, score_pos: torch.Tensor) -> torch.Tensor:
        if self.directions is None:
            raise RuntimeError(f"{type(self).__name__}.prepare was not called")
        pooled = F.normalize(mean_pool(hidden, pool_mask), dim=-1)
        return self.scale * pooled @ self.directions.T.to(pooled.dtype)


class CentroidVerbalizer(CosineVerbalizer):
    """Cosine to the normalised class means of the training embeddings at z = 0 (a frozen head)."""

    def __init__(self, n_classes: int, scale: float = 20.0):
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer ≥ 2, got {n_classes!r}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.scale = float(scale)
        self.n_classes = n_classes
        self.directions = None

    def prepare(self, problem: Any) -> None:
        emb = F.normalize(problem.embed_split("train"), dim=-1)
        labels = problem.splits["train"].labels.to(emb.device)
        missing = [k for k in range(self.n_classes) if not bool((labels == k).any())]
        if missing:
            raise ValueError(f"centroid verbalizer: no training examples of classes {missing}")
        self.directions = F.normalize(torch.stack([emb[labels == k].mean(0) for k in range(self.n_classes)]), dim=-1)


def losses_from_logits(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce",
                       margin: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits: (C, E, K)``, ``labels: (E,)`` -> per-candidate ``(loss (C,), accuracy (C,))``."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    c, e, k = logits.shape
    target = labels.to(logits.device).expand(c, e)
    acc = (logits.argmax(-1) == target).to(logits.dtype).mean(-1)
    if kind == "ce":
        loss = F.cross_entropy(logits.reshape(c * e, k), target.reshape(-1), reduction="none").view(c, e).mean(-1)
    elif kind == "hinge":
        true = logits.gather(-1, target[..., None])
        gaps = (logits - true + margin).clamp_min(0.0).scatter(-1, target[..., None], 0.0)
        loss = gaps.sum(-1).mean(-1)
    else:
        loss = -acc
    return loss, acc
