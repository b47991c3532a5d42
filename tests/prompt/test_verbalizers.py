"""Verbalizers read the right rows and positions; losses match their definitions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bbopt.problems.prompt import PromptTuningProblem
from bbopt.problems.verbalizers import (
    CentroidVerbalizer,
    CosineVerbalizer,
    LMHeadVerbalizer,
    losses_from_logits,
)

from .tiny import VERBALIZERS, build


def test_losses_follow_bbt_definitions():
    logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 3.0, 0.5]], [[0.0, 1.0, 0.0], [1.0, 1.0, 4.0]]])
    labels = torch.tensor([0, 1])
    ce, acc = losses_from_logits(logits, labels, "ce")
    for c in range(2):
        assert ce[c] == pytest.approx(float(F.cross_entropy(logits[c], labels)))
    assert acc.tolist() == [1.0, 0.0]
    hinge, _ = losses_from_logits(logits, labels, "hinge", margin=2.0)
    # candidate 0: ex0 max(0,0-2+2)+max(0,1-2+2)=1; ex1 max(0,0-3+2)+max(0,.5-3+2)=0 -> 0.5
    # candidate 1: ex0 max(0,1-0+2)+max(0,0-0+2)=5; ex1 max(0,1-1+2)+max(0,4-1+2)=7 -> 6
    assert hinge.tolist() == pytest.approx([0.5, 6.0])
    perf, _ = losses_from_logits(logits, labels, "perf")
    assert perf.tolist() == [-1.0, -0.0]
    with pytest.raises(ValueError, match="loss must be one of"):
        losses_from_logits(logits, labels, "mse")


@pytest.mark.parametrize("kind", ["roberta-mlm", "bert-mlm", "gpt2"])
def test_lm_head_verbalizer_reads_the_label_logits_at_the_score_position(kind, tokenizer, tweets):
    model = build(kind)
    problem = PromptTuningProblem(model, tokenizer, tweets["train"], n_prompt=3, dim=8, verbalizer="lm",
                                  label_words=["bad", "great"])
    split = problem.splits["train"]
    ids = tokenizer.convert_tokens_to_ids(["bad", "great"])
    extra = {"use_cache": False} if kind == "gpt2" else {}
    with torch.no_grad():
        full = model(input_ids=split.input_ids, attention_mask=split.attention_mask, **extra).logits
    want = full[torch.arange(len(split)), split.score_pos][:, ids]
    loss, acc = problem.population_scores(np.zeros((1, problem.space.dim)), "train")
    want_loss, want_acc = losses_from_logits(want[None], split.labels, "ce")
    assert loss[0] == pytest.approx(float(want_loss[0]), rel=1e-5)
    assert acc[0] == pytest.approx(float(want_acc[0]))
    expect_pos = "last" if kind == "gpt2" else "mask"
    assert problem.verbalizer.score == expect_pos


def test_cosine_verbalizer_is_scaled_cosine_to_encoded_anchors(tokenizer, tweets):
    model = build("bert")
    anchors = ["bad terrible awful", "good great lovely"]
    problem = PromptTuningProblem(model, tokenizer, tweets["train"], n_prompt=3, dim=8, verbalizer="cosine",
                                  anchors=anchors, scale=7.0)
    enc = tokenizer(anchors, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    m = enc["attention_mask"][..., None].float()
    a = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    assert torch.allclose(problem.verbalizer.directions, a, atol=1e-6)
    split = problem.splits["train"]
    with torch.no_grad():
        hs = model(input_ids=split.input_ids, attention_mask=split.attention_mask).last_hidden_state
    ms = split.attention_mask[..., None].float()
    ms[:, 1:4] = 0  # the 3 prompt slots after [CLS] are not pooled: the prompt acts through attention
    pooled = F.normalize((hs * ms).sum(1) / ms.sum(1), dim=-1)
    want = 7.0 * pooled @ a.T
    with torch.no_grad():
        assert torch.allclose(problem.prompt_logits({0: torch.zeros(1, 3, 32)}, "train")[0], want, atol=1e-5)
        assert torch.allclose(problem.prompt_logits({}, "train")[0], want, atol=1e-5)
    loss, _ = problem.population_scores(np.zeros((1, problem.space.dim)), "train")
    assert loss[0] == pytest.approx(float(F.cross_entropy(want, split.labels)), rel=1e-5)


def test_centroid_verbalizer_fits_class_means_without_a_prompt(tokenizer, tweets):
    problem = PromptTuningProblem(build("bert"), tokenizer, tweets["train"], n_prompt=3, dim=8,
                                  verbalizer="centroid")
    emb = F.normalize(problem.embed_split("train"), dim=-1)
    labels = problem.splits["train"].labels
    for k in range(2):
        assert torch.allclose(problem.verbalizer.directions[k], F.normalize(emb[labels == k].mean(0), dim=0),
                              atol=1e-6)


def test_explicit_prompts_are_differentiable(tokenizer, tweets):
    problem = PromptTuningProblem(build("bert"), tokenizer, tweets["train"], n_prompt=3, dim=8,
                                  **VERBALIZERS["bert"])
    prompt = torch.zeros(1, 3, 32, requires_grad=True)
    logits = problem.prompt_logits({0: prompt}, "train")
    loss, _ = losses_from_logits(logits, problem.splits["train"].labels, "ce")
    loss.sum().backward()
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    zero_loss, _ = problem.population_scores(np.zeros((1, problem.space.dim)), "train")
    assert float(loss.detach()) == pytest.approx(zero_loss[0], rel=1e-5)


def test_verbalizer_inputs_are_checked(tokenizer, tweets):
    with pytest.raises(ValueError, match="distinct token ids"):
        LMHeadVerbalizer([5, 5])
    with pytest.raises(ValueError, match="anchors"):
        CosineVerbalizer(["only one"])
    with pytest.raises(ValueError, match="n_classes"):
        CentroidVerbalizer(1)
    with pytest.raises(ValueError, match="one token"):
        PromptTuningProblem(build("roberta-mlm"), tokenizer, tweets["train"], verbalizer="lm",
                            label_words=["bad", "supercalifragilistic"])
    with pytest.raises(ValueError, match="has no LM head"):
        PromptTuningProblem(build("bert"), tokenizer, tweets["train"], verbalizer="lm", label_words=["bad", "good"])
    with pytest.raises(ValueError, match="needs anchors"):
        PromptTuningProblem(build("bert"), tokenizer, tweets["train"], verbalizer="cosine")
