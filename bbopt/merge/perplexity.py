"""Perplexity fitness for causal language models: token-weighted mean negative log-likelihood.

For each corpus (a list of texts), every text is tokenised once (truncated to
``max_length`` tokens) and scored by next-token prediction: the NLL of token t+1 given
tokens ≤ t, summed over all predicted tokens of the corpus and divided by their count
(so a long text weighs more than a short one, as in the usual corpus perplexity).
Batches are right-padded; padding is masked out of the attention and of the loss, so a
text's score does not depend on its batch. The loss is the mean over corpora of their
mean NLL; ``scores`` reports it, its exponential (``perplexity``: the geometric mean of the
corpora's perplexities) and the arithmetic mean of the corpora's perplexities
(``mean_perplexity``). Racing scores the leading ``fraction`` of each corpus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bbopt.options import integer, one_of

#: what the loss averages over the corpora: their mean NLLs, or their perplexities
AVERAGES = ("nll", "perplexity")


class Perplexity:
    """``corpora``: texts, or ``{name: texts}``; ``tokenizer``: a Hugging Face tokenizer (or
    any callable returning ``{"input_ids": [[...], ...]}``). ``batch_size`` texts per forward.
    ``average``: the loss is the mean over corpora of their NLLs (``"nll"``, nats: every corpus's
    relative improvement counts alike) or of their perplexities (``"perplexity"``: the corpus with
    the highest perplexity dominates)."""

    racing = True

    def __init__(self, corpora: Sequence[str] | Mapping[str, Sequence[str]], tokenizer: Any, batch_size: int = 8,
                 max_length: int = 128, average: str = "nll"):
        self.average = one_of(average, "average", "Perplexity", AVERAGES)
        self.batch_size = integer(batch_size, "batch_size", "Perplexity", minimum=1)
        self.max_length = integer(max_length, "max_length", "Perplexity", minimum=2)
        if not isinstance(corpora, Mapping):
            corpora = {"texts": corpora}
        self.ids: dict[str, list[list[int]]] = {}
        for name, texts in corpora.items():
            if isinstance(texts, str) or not len(texts):
                raise ValueError(f"Perplexity: corpus {name!r} must be a non-empty list of texts")
            enc = tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
            self.ids[name] = [list(t) for t in enc if len(t) >= 2]  # a 1-token text predicts nothing
            if not self.ids[name]:
                raise ValueError(f"Perplexity: corpus {name!r} has no text of 2 tokens or more")
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad = int(pad) if pad is not None else int(getattr(tokenizer, "eos_token_id", None) or 0)

    def part(self, name: str, fraction: float) -> list[list[int]]:
        texts = self.ids[name]
        return texts if fraction >= 1 else texts[: max(1, math.ceil(fraction * len(texts)))]

    def size(self, fraction: float = 1.0) -> int:
        """Texts scored at ``fraction``."""
        return sum(len(self.part(n, fraction)) for n in self.ids)

    def nll(self, model: torch.nn.Module, texts: list[list[int]]) -> tuple[float, int]:
        """(summed NLL, predicted tokens) of ``texts``."""
        total, count = 0.0, 0
        with torch.inference_mode():
            for a in range(0, len(texts), self.batch_size):
                chunk = texts[a:a + self.batch_size]
                width = max(len(t) for t in chunk)
                ids = torch.full((len(chunk), width), self.pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for i, t in enumerate(chunk):
                    ids[i, :len(t)] = torch.as_tensor(t)
                    mask[i, :len(t)] = 1
                logits = _logits(model(input_ids=ids, attention_mask=mask))[:, :-1].float()
                target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                               ignore_index=-100, reduction="sum"))
                count += int(mask[:, 1:].sum())
        return total, count

    def loss(self, model: torch.nn.Module, fraction: float = 1.0) -> float:
        """Mean over corpora of the token-weighted mean NLL (or of its exponential)."""
        means = []
        for name in self.ids:
            total, count = self.nll(model, self.part(name, fraction))
            means.append(total / count if self.average == "nll" else math.exp(total / count))
        return float(sum(means) / len(means))

    def scores(self, model: torch.nn.Module) -> dict:
        per = {}
        for name in self.ids:
            total, count = self.nll(model, self.ids[name])
            per[name] = {"nll": total / count, "perplexity": math.exp(total / count), "tokens": count}
        nll = sum(v["nll"] for v in per.values()) / len(per)
        return {"nll": nll, "perplexity": math.exp(nll),
                "mean_perplexity": sum(v["perplexity"] for v in per.values()) / len(per), "corpora": per}


def _logits(out: Any) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out[0] if isinstance(out, tuple) else out
