"""The MiniLM merge workload: real text data, a tiny config-built BERT (fast), the real one (slow)."""

import copy

import numpy as np
import pytest
import torch

from bbopt import minimize
from bbopt.merge.dataflow import PathModel
from bbopt.merge.fitness import score
from bbopt.merge.minilm import BBC_LABELS, TWEET_LABELS, load_bbc, load_tweets, minilm_workload
from bbopt.problems import MergeProblem, get
from bbopt.problems.merging import load_merged

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
SIZES = {"n_train": 96, "n_fitness": 15, "n_test": 30, "steps": 8}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("minilm-cache")
    return minilm_workload(0, cache_dir=cache, encoder_config=TINY, **SIZES), cache


def test_real_text_data_loads():
    texts, labels = load_tweets()
    assert len(texts) > 30_000 and set(labels.tolist()) == set(range(len(TWEET_LABELS)))
    texts, labels = load_bbc()
    assert len(texts) == 2125 and len(set(texts)) == 2125 and np.bincount(labels).min() > 300
    assert len(BBC_LABELS) == 5


def test_workload_splits_heads_and_cache(tiny):
    w, cache = tiny
    assert w.expert_names == ["tweets", "bbc"]
    for fit, test, (train,) in zip(w.fitness, w.test, w.expert_data):
        assert 12 <= len(fit) <= 15 and 25 <= len(test) <= 30  # minus texts that tokenize like another split's
        assert not (fit.fingerprints() & test.fingerprints())
        assert not (train.fingerprints() & (fit.fingerprints() | test.fingerprints()))
    base = w.model.state_dict()
    for e in w.experts:
        assert torch.equal(e["heads.tweets.weight"], base["heads.tweets.weight"])  # frozen probe heads
        assert torch.equal(e["embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])
        assert not torch.equal(e["encoder.layer.1.output.dense.weight"], base["encoder.layer.1.output.dense.weight"])
    again = minilm_workload(0, cache_dir=cache, encoder_config=TINY, **SIZES)
    assert all(torch.equal(again.experts[1][k], w.experts[1][k]) for k in w.experts[1])


def test_reroutable_path_equals_forward(tiny):
    w, _ = tiny
    path = PathModel(w.model, copy.deepcopy(w.model))
    t = w.fitness[0]
    assert torch.allclose(t.logits(path), t.logits(w.model), atol=1e-6)


def test_merge_problem_runs_and_saves(tiny, tmp_path):
    w, _ = tiny
    p = MergeProblem(w.model, w.experts, w.fitness, test=w.test, exclude=w.exclude, expert_names=w.expert_names,
                     genome="per_layer", racing=[[0.4, 2]])
    assert p.genome.slots == ["embeddings", "encoder.layer.0", "encoder.layer.1"] and p.space.dim == 6
    assert not any(n.startswith("heads.") or "word_embeddings" in n for n in p.tv.names)
    res = minimize(p, "cma", 12, seed=0, options={"x0": p.x0})
    saved = p.save(res, tmp_path)
    loaded = load_merged(saved["model"])
    expected = p.merged_state_dict(res.x)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    fresh = copy.deepcopy(w.model)
    fresh.load_state_dict(loaded)
    assert score(fresh, w.test)["ce"] == pytest.approx(p.report(res.x)["test"]["ce"], rel=1e-5)


@pytest.mark.slow
def test_packaged_minilm_experts_beat_the_base_on_their_own_task():
    """Builds (or loads from ~/.cache/bbopt) the real experts: minutes on a CPU the first time."""
    p = get("merge-minilm", seed=0)
    base = p.score_state(p.source_state_dict(), "test")
    for k, name in enumerate(["tweets", "bbc"]):
        x = np.zeros(p.space.dim)
        x.reshape(-1, 2)[:, k] = 1.0  # expert k alone
        own = p.report(x)["test"]["tasks"][name]["accuracy"]
        assert own > base["tasks"][name]["accuracy"]
