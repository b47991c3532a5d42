"""MergeProblem / DataFlowMergeProblem on the digits workload, through bbopt's minimize."""

import numpy as np
import pytest
import torch

from bbopt import minimize
from bbopt.merge import operators as ops
from bbopt.merge.fitness import Task, score
from bbopt.merge.workloads import DigitsMLP, digits_workload
from bbopt.problems import DataFlowMergeProblem, MergeProblem
from bbopt.problems.merging import load_merged, load_recipe


def make(digits, **kw):
    return MergeProblem(digits.model, digits.experts, digits.fitness, test=digits.test,
                        expert_names=digits.expert_names, **kw)


def test_workload_is_cached_seeded_and_experts_are_specialists(digits, digits_cache, small):
    again = digits_workload(0, cache_dir=digits_cache, **small)
    for a, b in zip(digits.experts, again.experts):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other = digits_workload(1, cache_dir=digits_cache, **small)
    assert not torch.equal(other.experts[0]["inp.weight"], digits.experts[0]["inp.weight"])
    assert len(list((digits_cache / "merge").iterdir())) == 2
    # each expert is good on its own digits and poor on the rest
    for expert, own in zip(digits.experts, digits.expert_data):
        m = DigitsMLP(small["hidden"], small["depth"])
        m.load_state_dict(expert)
        assert score(m, own)["accuracy"] > score(m, digits.test)["accuracy"] + 0.2


def test_uniform_genome_equals_task_arithmetic(digits, small):
    p = make(digits, genome="per_layer")
    x = np.full(p.space.dim, 0.4)
    merged = DigitsMLP(small["hidden"], small["depth"])
    merged.load_state_dict(ops.task_arithmetic(digits.model.state_dict(), digits.experts, 0.4))
    expected = score(merged, digits.fitness)["ce"]
    assert p.evaluate(x[None])[0] == pytest.approx(expected, rel=1e-5)


def test_minimize_cma_improves_on_start_and_saves_a_reloadable_model(digits, tmp_path, small):
    p = make(digits)
    start = p.evaluate(p.x0[None])[0]
    res = minimize(p, "cma", 60, seed=3, run_dir=tmp_path / "run")
    assert res.n_evals == 60 and res.fun < start
    paths = p.finalize(res, res.run_dir)
    loaded = load_merged(paths["model"])
    expected = p.merged_state_dict(res.x)
    assert set(loaded) == set(expected) and all(torch.equal(loaded[k], expected[k]) for k in expected)
    recipe = load_recipe(paths["recipe"])
    assert np.allclose(recipe["genome"]["x"], res.x)
    assert recipe["fitness"]["ce"] == pytest.approx(res.fun, rel=1e-5)
    assert recipe["genome"]["models"] == digits.expert_names and recipe["test"]["accuracy"] > 0.3
    fresh = DigitsMLP(small["hidden"], small["depth"])
    fresh.load_state_dict(loaded)
    assert score(fresh, digits.fitness)["ce"] == pytest.approx(res.fun, rel=1e-5)


@pytest.mark.parametrize("genome,optimizer", [("sakana", "cma"), ("per_model", "random"),
                                              ("per_layer", "nevergrad")])
def test_same_seed_same_history(digits, genome, optimizer):
    p = make(digits, genome=genome)
    runs = [minimize(p, optimizer, 24, seed=11) for _ in range(2)]
    assert np.array_equal(runs[0].history.losses(), runs[1].history.losses())
    assert np.isfinite(runs[0].fun)


def test_dare_masks_deterministic_per_candidate_and_seed(digits):
    rng = np.random.default_rng(0)
    p = make(digits, genome="sakana", dare_masks="candidate", seed=4)
    x = p.space.sample(rng, 3)
    a = p.evaluate(x)
    assert np.array_equal(a, p.evaluate(x[::-1])[::-1])  # order-free: keyed by the genes
    q = make(digits, genome="sakana", dare_masks="candidate", seed=5)
    assert not np.array_equal(a, q.evaluate(x))


def test_racing_scores_dropouts_on_the_subset_and_survivors_on_all(digits):
    rng = np.random.default_rng(1)
    plain, raced = make(digits), make(digits, racing=[[0.25, 2]])
    n = len(digits.fitness[0])
    k = int(np.ceil(0.25 * n))
    subset = MergeProblem(digits.model, digits.experts, [digits.fitness[0].head(k)])
    x = plain.space.sample(rng, 6)
    full, first, fast = plain.evaluate(x), subset.evaluate(x), raced.evaluate(x)
    assert raced.n_scored == 6 * k + 2 * n
    survivors = np.argsort(first)[:2]
    dropped = np.setdiff1d(np.arange(6), survivors)
    assert np.allclose(fast[survivors], full[survivors], rtol=1e-6)
    # dropouts keep their subset ranking, shifted to rank behind both survivors
    shift = max(0.0, full[survivors].max() - first[dropped].min())
    assert np.allclose(fast[dropped], first[dropped] + shift, rtol=1e-6)
    assert fast[dropped].min() >= fast[survivors].max()


def test_accuracy_metric_and_overlap_warning(digits):
    p = make(digits, metric="accuracy")
    x = p.x0
    assert p.evaluate(x[None])[0] == pytest.approx(1 - p.report(x)["fitness"]["accuracy"])
    with pytest.warns(UserWarning, match="test split"):
        MergeProblem(digits.model, digits.experts, digits.fitness, test=digits.fitness)


def test_bad_inputs(digits):
    with pytest.raises(ValueError, match="metric"):
        make(digits, metric="f1")
    with pytest.raises(ValueError, match="dare_masks"):
        make(digits, dare_masks="fresh")
    with pytest.raises(ValueError, match="racing"):
        make(digits, racing=[[0.5, 2], [0.25, 1]])
    with pytest.raises(TypeError, match="fitness"):
        MergeProblem(digits.model, digits.experts, [(1, 2)])
    with pytest.raises(ValueError, match="rows"):
        Task("t", torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(TypeError, match="experts"):
        MergeProblem(digits.model, [42], digits.fitness)


def test_dataflow_start_is_model_a_and_search_runs(digits, tmp_path, small):
    a, b = DigitsMLP(small["hidden"], small["depth"]), DigitsMLP(small["hidden"], small["depth"])
    a.load_state_dict(ops.task_arithmetic(digits.model.state_dict(), digits.experts, 0.5))
    b.load_state_dict(digits.experts[0])
    p = DataFlowMergeProblem(a, b, digits.fitness, test=digits.test, repeats=2)
    assert p.space.dim == 2 * 4 + 4 * 4
    path, scales = p.genome.decode(p.x0)
    assert path == [(0, 0), (0, 1)] and scales == [1.0, 1.0]
    x_in = digits.fitness[0].inputs
    assert torch.allclose(p._module(p.x0)(x_in), a(x_in))
    x = p.x0.copy()
    x[3] = 0.9  # slot 3 = global layer 3 = B's layer 1, between A's first and last layers
    x[p.genome.t + 0 * 4 + 3] = -0.2  # the hop A0 -> B1 scales by 0.8
    path, scales = p.genome.decode(x)
    assert path == [(0, 0), (1, 1), (0, 1)] and np.allclose(scales, [1, 0.8, 1])
    res = minimize(p, "cma", 30, seed=0, options={"x0": p.x0, "sigma0": 0.1})
    assert res.fun <= p.evaluate(p.x0[None])[0]
    saved = p.save(res, tmp_path)
    assert load_recipe(saved["recipe"])["genome"]["method"] == "dataflow"
    state = load_merged(saved["model"])
    assert set(state) == {f"a.{k}" for k in a.state_dict()} | {f"b.{k}" for k in b.state_dict()}


def test_overlap_check_sees_through_padding():
    from bbopt.merge.fitness import overlap

    ids = torch.tensor([[101, 7, 8, 102, 0, 0], [101, 9, 102, 0, 0, 0]])
    a = Task("t", {"input_ids": ids, "attention_mask": (ids > 0).long()}, torch.tensor([0, 1]))
    short = ids[:1, :4]  # the same first text, padded to a different length
    b = Task("t", {"input_ids": short, "attention_mask": (short > 0).long()}, torch.tensor([0]))
    assert overlap([a], [b]) == 1 and overlap([b], [a]) == 1
    c = Task("t", {"input_ids": ids[1:, :4], "attention_mask": (ids[1:, :4] > 0).long()}, torch.tensor([1]))
    assert overlap([b], [c]) == 0


def test_source_state_dicts_rebuild_base_and_experts(digits):
    p = make(digits)
    base = digits.model.state_dict()
    assert all(torch.equal(p.source_state_dict()[k], base[k]) for k in base)
    for k, expert in enumerate(digits.experts):
        got = p.source_state_dict(k)
        assert all(torch.allclose(got[n], expert[n], atol=1e-6) for n in expert)
