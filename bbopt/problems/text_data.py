"""ZO fine-tuning of a local language model on a labelled text task (``zo-text-classification``).

Any local transformers folder (an encoder, a masked LM or a causal LM; ``"minilm"`` is the
packaged all-MiniLM-L6-v2) and any task of :mod:`bbopt.problems.text_tasks` (the user's
CSV / TSV / JSONL files or the packaged tweets) as a :class:`TorchProblem`, so every ZO
estimator (``mezo``, ``fzoo``, ...) trains it in place with the same machinery. Two objectives:

- ``verbalizer="cosine"`` (any model): the model as a sentence encoder — the mean-pooled,
  L2-normalised last hidden state — against its own encoding of one anchor sentence per
  class ("This tweet is negative."), re-encoded by the current weights in every forward.
  The logit of class c is cos(e(text), e(anchor_c)) / τ; at initialisation the argmax is
  the zero-shot classifier (~66% on tweets with MiniLM).
- ``verbalizer="lm"`` (a masked or causal LM): the LM head's logits of one label word per
  class ("bad" / "great") at the template's ``{mask}`` (masked LM) or at the last token
  (causal LM), as in MeZO's prompt-based fine-tuning.

The loss is per-example cross-entropy. ``zo-minilm-tweets`` (:func:`minilm_tweets`) is this
problem on MiniLM and the packaged tweets. Parameter subsets: ``all`` (every weight but an
unused pooler), ``bias`` (BitFit), ``top2`` (the last two transformer layers), or any
``select`` patterns. The likelihood-ratio estimator does not apply to ``cosine`` (the anchors
are a second model call per forward).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bbopt.options import OptionError, one_of, positive, unused
from bbopt.params import DEFAULT_CHUNK, Selector
from bbopt.problems.torch_data import ShuffledBatches
from bbopt.problems.torch_train import TorchProblem
from bbopt.problems.verbalizers import label_token_ids, lm_head

ANCHORS = ("This tweet is negative.", "This tweet is positive.")
SUBSETS = ("all", "bias", "top2")
#: templates of the label-word objective: masked LMs read {mask}, causal LMs the last token
TEMPLATES = {"mask": "{text} It was {mask} .", "last": "{text} It was"}


class MeanPooledEncoder(torch.nn.Module):
    """A BERT encoder → mean-pooled, L2-normalised sentence embeddings ``(B, H)``."""

    def __init__(self, bert: torch.nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)


class LabelWordModel(torch.nn.Module):
    """A masked or causal LM -> ``(B, K)`` logits of the label words at each row's ``score_pos``
    (only those rows go through the LM head; full-vocabulary logits everywhere would dominate)."""

    def __init__(self, lm: Any, label_ids: Sequence[int]):  # a transformers *ForMaskedLM / *ForCausalLM
        super().__init__()
        self.lm = lm
        lm_head(lm)  # refuse a model without an LM head now, not at the first forward
        self.register_buffer("label_ids", torch.as_tensor(list(label_ids), dtype=torch.long), persistent=False)
        base = lm.base_model
        self._call = {"use_cache": False} if "use_cache" in inspect.signature(base.forward).parameters else {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, score_pos: torch.Tensor) -> torch.Tensor:
        hidden = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask, **self._call).last_hidden_state
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), score_pos]
        return lm_head(self.lm)(rows[:, None, :])[:, 0, self.label_ids]


class AnchoredBatches(Sequence):
    """Training batches as dicts: the tensors of ``batches[t]`` — ``(ids, mask, labels)`` or
    ``(ids, mask, labels, score_pos)`` — plus fixed extras (the anchor tokens, if any)."""

    def __init__(self, batches: Sequence, anchors: dict[str, Any]):
        self.batches, self.anchors = batches, anchors

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, t: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return text_batch(*self.batches[t], self.anchors)


def text_batch(ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, *rest: Any) -> dict:
    """A batch dict with the padding beyond its longest text cut off (same outputs, less work);
    ``rest`` is ``(extras,)`` or ``(score_pos, extras)``."""
    width = int(mask.sum(1).max())
    extras = rest[-1]
    out = {"input_ids": ids[:, :width], "attention_mask": mask[:, :width], "labels": labels, **extras}
    if len(rest) == 2:
        out["score_pos"] = rest[0]
    return out


class LabelWordLoss:
    """Per-example cross-entropy of the label-word logits (a picklable callable)."""

    def __call__(self, model: Any, batch: dict) -> torch.Tensor:
        logits = model(batch["input_ids"], batch["attention_mask"], batch["score_pos"])
        return F.cross_entropy(logits, batch["labels"], reduction="none")


def label_word_accuracy(model: Any, batch: dict) -> torch.Tensor:
    """Per-example 1/0: is the label's word the most likely one?"""
    return (model(batch["input_ids"], batch["attention_mask"], batch["score_pos"]).argmax(-1)
            == batch["labels"]).float()


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


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids, attention_mask: (N, T)``, padded to the longest text (≤ ``max_length``)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def eval_batches(tensors: Sequence[torch.Tensor], extras: dict, size: int = 64) -> list[dict]:
    """Fixed evaluation batches of ``(ids, mask, labels[, score_pos])``, texts sorted by length so
    that each batch carries little padding."""
    order = torch.argsort(tensors[1].sum(1), stable=True)
    tensors = [t[order] for t in tensors]
    return [text_batch(*(t[i:i + size] for t in tensors), extras) for i in range(0, len(order), size)]


def minilm_tweets(seed: int = 0, shots: int = 32, batch_size: int = 16, n_test: int = 500, test_seed: int = 0,
                  subset: str = "all", select: Selector = None, anchors: Sequence[str] = ANCHORS,
                  temperature: float = 0.05, max_length: int = 64, device: str = "cpu", mode: str = "inplace",
                  exact: bool = False, chunk_size: int = DEFAULT_CHUNK) -> TorchProblem:
    """MiniLM few-shot tweet sentiment (negative vs positive) as a :class:`TorchProblem`."""
    if len(anchors) != 2:
        raise OptionError("anchors", f"anchors: one sentence per class (negative, positive), got {len(anchors)}")
    problem = text_classification("minilm", "tweets", seed=seed, shots=shots, batch_size=batch_size, n_test=n_test,
                                  test_seed=test_seed, subset=subset, select=select, anchors=anchors,
                                  temperature=temperature, max_length=max_length, device=device, mode=mode,
                                  exact=exact, chunk_size=chunk_size)
    problem.name = f"minilm-tweets-{subset}"
    return problem


def text_classification(model: str = "minilm", task: str | dict = "tweets", seed: int = 0, shots: int | None = 32,
                        n_test: int | None = None, test_seed: int = 0, batch_size: int = 16,
                        verbalizer: str = "cosine", anchors: Sequence[str] | None = None,
                        temperature: float | None = None, label_words: Sequence[str] | None = None,
                        template: str | None = None, subset: str = "all", select: Selector = None,
                        max_length: int = 64, device: str = "cpu", mode: str = "inplace", exact: bool = False,
                        chunk_size: int = DEFAULT_CHUNK, dev_every: int = 1000) -> TorchProblem:
    """A local model folder fine-tuned on a text task (``zo-text-classification``).

    ``task``: ``"tweets"`` or a ``task:`` mapping of files (:mod:`bbopt.problems.text_tasks`;
    ``shots`` per class for training and as many for dev unless a dev file is given).
    ``verbalizer="cosine"`` takes ``anchors`` (default: the task's) and ``temperature`` τ
    (default 0.05); ``"lm"`` takes ``label_words`` (default: the task's; one token each) and a
    ``template`` (default ``"{text} It was {mask} ."`` / ``"{text} It was"``). The dev and test
    splits are scored at the end of a CLI run (``scores.json``).
    """
    from bbopt.problems.fewshot import encode
    from bbopt.problems.prompt_tasks import is_causal, load_model
    from bbopt.problems.text_tasks import load_task

    owner = "zo-text-classification"
    one_of(verbalizer, "verbalizer", owner, ("cosine", "lm"))
    one_of(subset, "subset", owner, SUBSETS)
    positive(max_length, "max_length", owner, integer=True)
    for name, value, needs in (("anchors", anchors, "cosine"), ("temperature", temperature, "cosine"),
                               ("label_words", label_words, "lm"), ("template", template, "lm")):
        if value is not None and verbalizer != needs:
            raise unused(name, owner, f"by verbalizer {verbalizer!r} (only by {needs!r})")
    data = load_task(task, shots, seed, n_test, test_seed)  # before the model: a bad file fails at once
    lm, tokenizer = load_model(model, with_lm_head=verbalizer == "lm")
    if verbalizer == "cosine":
        texts_anchors = list(anchors) if anchors is not None else data.anchors
        if len(texts_anchors) != data.n_classes:
            raise OptionError("anchors", f"{owner}: {len(texts_anchors)} anchors for {data.n_classes} classes")
        a_ids, a_mask = tokenize(tokenizer, texts_anchors, max_length)
        extras: dict[str, Any] = {"anchor_ids": a_ids, "anchor_mask": a_mask, "n_classes": data.n_classes}
        net: torch.nn.Module = MeanPooledEncoder(lm)
        loss: Any = AnchorLoss(positive(0.05 if temperature is None else temperature, "temperature", owner))
        accuracy: Any = anchor_accuracy

        def part(name: str) -> list[torch.Tensor]:
            texts, y = data.splits[name]
            return [*tokenize(tokenizer, texts, max_length), torch.as_tensor(y)]
    else:
        score = "last" if is_causal(lm) else "mask"
        words = list(label_words) if label_words is not None else data.label_words
        net, loss, accuracy, extras = LabelWordModel(lm, label_token_ids(tokenizer, words)), LabelWordLoss(), \
            label_word_accuracy, {}

        def part(name: str) -> list[torch.Tensor]:
            texts, y = data.splits[name]
            enc = encode(tokenizer, texts, y, template=template or TEMPLATES[score], n_prompt=0,
                         max_text_tokens=max_length, score=score)
            return [enc.input_ids, enc.attention_mask, enc.labels, enc.score_pos]

    train = AnchoredBatches(ShuffledBatches(part("train"), batch_size, seed=seed), extras)
    selected = select if select is not None else _subset(net, subset)
    return TorchProblem(net, loss, train, select=selected, exclude=["*pooler*"], device=device, mode=mode,
                        exact=exact, chunk_size=chunk_size, dev_every=dev_every,
                        eval_sets={name: eval_batches(part(name), extras) for name in ("dev", "test")
                                   if name in data.splits},
                        metrics={"accuracy": accuracy, "loss": loss}, name=f"text-classification-{subset}")


def _subset(net: torch.nn.Module, subset: str) -> Selector:
    """Parameter patterns of a named subset: all (None), bias, or the last two transformer layers."""
    if subset == "all":
        return None
    if subset == "bias":
        return ["*.bias"]
    from bbopt.problems.prompt_hooks import find_layers

    layers = find_layers(next(m for m in net.children()))
    prefix = next(name for name, module in net.named_modules() if module is layers)
    return [f"{prefix}.{i}.*" for i in (len(layers) - 2, len(layers) - 1)]
