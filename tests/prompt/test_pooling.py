"""The prompt slots act on the output through attention only: a pooling verbalizer averages the
text tokens, never the slots' own outputs (issue 19's defect: the untuned prompt moved the
sentence embedding before any search).

Check: with attention to the slots masked out in every layer, no prompt can reach the text,
so the class logits of any z must equal the slot-free model's (text at the same positions)."""

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bbopt.problems import PromptTuningProblem
from bbopt.problems.prompt_hooks import find_layers

from .tiny import build, random_z

START, N = 1, 4  # the slots follow [CLS]


class SlotMask:
    """While active, forward pre-hooks on every BERT layer stop all queries attending to the slots."""

    def __init__(self, model):
        self.handles = [layer.register_forward_pre_hook(self.hook, with_kwargs=True) for layer in find_layers(model)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()

    @staticmethod
    def hook(module, args, kwargs):
        args = list(args)
        hidden = args[0]
        mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
        rows, width = hidden.shape[:2]
        if mask is None:
            mask = torch.zeros(rows, 1, width, width, dtype=hidden.dtype)
        mask = mask.clone()
        if mask.dtype == torch.bool:
            mask[..., START:START + N] = False
        else:
            mask[..., START:START + N] = torch.finfo(mask.dtype).min
        if len(args) > 1:
            args[1] = mask
        else:
            kwargs["attention_mask"] = mask
        return tuple(args), kwargs


def slot_free_hidden(model, split):
    """Last hidden states of the rows without their slots, each token at its slotted position."""
    keep = [c for c in range(split.input_ids.shape[1]) if not START <= c < START + N]
    ids, mask = split.input_ids[:, keep], split.attention_mask[:, keep]
    positions = torch.tensor(keep).expand(len(ids), -1)
    base = getattr(model, "base_model", model)
    with torch.no_grad():
        return base(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state, mask


def pooled(hidden, mask):
    m = mask[..., None].float()
    return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


@pytest.mark.parametrize("verbalizer", ["cosine", "centroid"])
def test_pooling_verbalizers_read_the_text_tokens_only(verbalizer, tokenizer, tweets):
    """BBTv2's z (every layer's prompt, the input layer's included) cannot move the logits."""
    model = build("bert")
    settings = {"anchors": ["bad terrible awful", "good great lovely"]} if verbalizer == "cosine" else {}
    # the anchors are encoded as plain texts; the centroids are fitted on the slotted rows (masked here too)
    with SlotMask(model) if verbalizer == "centroid" else nullcontext():
        problem = PromptTuningProblem(model, tokenizer, tweets["train"], n_prompt=N, dim=8, deep=True,
                                      verbalizer=verbalizer, scale=5.0, **settings)
    z = np.vstack([np.zeros(problem.space.dim), random_z(problem, 3, scale=5.0)])
    with SlotMask(model):
        logits = problem.population_logits(z, "train")
    split = problem.splits["train"]
    hidden, mask = slot_free_hidden(model, split)
    text = pooled(hidden, mask)
    if verbalizer == "cosine":
        enc = tokenizer(settings["anchors"], padding=True, return_tensors="pt")
        with torch.no_grad():
            directions = pooled(model(**enc).last_hidden_state, enc["attention_mask"])
    else:
        directions = F.normalize(torch.stack([text[split.labels == k].mean(0) for k in (0, 1)]), dim=-1)
    want = 5.0 * text @ directions.T
    assert (logits - want).abs().max() <= 1e-5
    unmasked = problem.population_logits(z, "train")
    assert (unmasked[1:] - unmasked[0]).abs().max() > 1e-3  # without the mask the prompts do act


def test_the_lm_head_reads_one_position_the_slots_act_through_attention(tokenizer, tweets):
    """The masked-LM verbalizer reads the [MASK] output only: with attention to the slots masked
    out, its logits are the slot-free model's; the slots move them only through attention."""
    model = build("bert-mlm")
    problem = PromptTuningProblem(model, tokenizer, tweets["train"], n_prompt=N, dim=8, verbalizer="lm",
                                  label_words=["bad", "great"])
    z = np.vstack([np.zeros(problem.space.dim), random_z(problem, 2, scale=5.0)])
    with SlotMask(model):
        logits = problem.population_logits(z, "train")
    split = problem.splits["train"]
    hidden, _ = slot_free_hidden(model, split)
    at_mask = hidden[torch.arange(len(hidden)), split.score_pos - N]  # the text moved left by N columns
    ids = tokenizer.convert_tokens_to_ids(["bad", "great"])
    with torch.no_grad():
        want = model.cls(at_mask[:, None])[:, 0, ids]
    assert (logits - want).abs().max() <= 1e-5
    unmasked = problem.population_logits(z, "train")
    assert (unmasked[1:] - unmasked[0]).abs().max() > 1e-3
