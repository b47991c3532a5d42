"""fitness= of any kind: callables (maximize, racing fraction, failures under on_error), perplexity."""

import math

import numpy as np
import pytest
import torch

from bbopt import minimize
from bbopt.evaluation import EvaluationError
from bbopt.merge.fitness import CallableFitness, as_fitness
from bbopt.merge.perplexity import Perplexity
from bbopt.options import OptionError
from bbopt.problems.merging import MergeProblem


def first_weight(model):
    return float(next(model.parameters()).sum())


def test_callable_fitness_is_minimised_or_maximised(digits):
    lo = MergeProblem(digits.model, digits.experts, first_weight, genome="per_model")
    hi = MergeProblem(digits.model, digits.experts, first_weight, genome="per_model", maximize=True)
    X = np.random.default_rng(0).uniform(0, 1.5, (5, 3))
    assert np.allclose(lo.evaluate(X), -hi.evaluate(X))
    assert not np.allclose(lo.evaluate(X), lo.evaluate(X)[0])  # the callable sees each merge
    assert lo.report(X[0])["fitness"] == {"value": pytest.approx(lo.evaluate(X[:1])[0]), "maximize": False}


def test_racing_passes_the_fraction_to_a_callable_that_takes_one(digits):
    seen = []

    def fit(model, fraction=1.0):
        seen.append(fraction)
        return first_weight(model) * fraction

    p = MergeProblem(digits.model, digits.experts, fit, genome="per_model", racing=[[0.25, 2]])
    p.evaluate(np.random.default_rng(1).uniform(0, 1.5, (6, 3)))
    assert seen.count(0.25) == 6 and seen.count(1.0) == 2
    with pytest.raises(OptionError, match="racing"):
        MergeProblem(digits.model, digits.experts, first_weight, racing=[[0.25, 2]])


def test_options_unused_by_the_fitness_kind_are_errors(digits):
    with pytest.raises(OptionError, match="metric"):
        MergeProblem(digits.model, digits.experts, first_weight, metric="accuracy")
    with pytest.raises(OptionError, match="maximize"):
        MergeProblem(digits.model, digits.experts, digits.fitness, maximize=True)
    with pytest.raises(TypeError, match="fitness must be"):
        as_fitness(42)


def test_failures_inside_a_user_fitness_follow_on_error(digits):
    calls = {"n": 0}

    def flaky(model):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("evaluation server down")
        return first_weight(model)

    p = MergeProblem(digits.model, digits.experts, flaky, genome="per_model")
    res = minimize(p, "random", 12, seed=0, options={"popsize": 4}, on_error="record")
    status = [r["status"] for r in res.history]
    assert "error" in status and "ok" in status and len(status) == 12
    assert any("evaluation server down" in (r.get("error") or "") for r in res.history)
    calls["n"] = 0
    with pytest.raises(EvaluationError, match="evaluation server down"):
        minimize(p, "random", 12, seed=0, options={"popsize": 4})


def test_callable_fitness_must_return_a_number(digits):
    f = CallableFitness(lambda m: "good")
    with pytest.raises(TypeError, match="must return a number"):
        f.loss(digits.model)


def test_perplexity_is_token_weighted_and_ignores_padding(gpt2_folders):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gpt2_folders.base)
    model = AutoModelForCausalLM.from_pretrained(gpt2_folders.base).eval()
    texts = ["a short one", "a much longer text about the economy and the markets today", "hello world"]
    one, three = Perplexity(texts, tok, batch_size=1), Perplexity(texts, tok, batch_size=3)
    assert one.loss(model) == pytest.approx(three.loss(model), rel=1e-5)
    total = count = 0.0
    with torch.no_grad():
        for t in texts:  # each text alone, no padding: HF's own mean NLL, weighted by tokens
            ids = tok(t, return_tensors="pt")["input_ids"]
            n = ids.shape[1] - 1
            total += float(model(input_ids=ids, labels=ids).loss) * n
            count += n
    assert one.loss(model) == pytest.approx(total / count, rel=1e-5)
    both = Perplexity({"a": texts[:1], "b": texts[1:]}, tok)
    s = both.scores(model)
    assert s["nll"] == pytest.approx((s["corpora"]["a"]["nll"] + s["corpora"]["b"]["nll"]) / 2)
    assert s["corpora"]["a"]["perplexity"] == pytest.approx(math.exp(s["corpora"]["a"]["nll"]))
    assert s["perplexity"] == pytest.approx(math.exp(s["nll"]))
    assert s["mean_perplexity"] == pytest.approx((s["corpora"]["a"]["perplexity"] + s["corpora"]["b"]["perplexity"]) / 2)
    assert Perplexity({"a": texts[:1], "b": texts[1:]}, tok, average="perplexity").loss(model) == \
        pytest.approx(s["mean_perplexity"], rel=1e-5)
    with pytest.raises(OptionError, match="average"):
        Perplexity(texts, tok, average="mean")
    assert both.loss(model, 0.5) == pytest.approx(
        (s["corpora"]["a"]["nll"] + Perplexity([texts[1]], tok).loss(model)) / 2, rel=1e-5)
