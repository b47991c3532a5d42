"""In-place merges from cached task vectors agree with the pure operators."""

import numpy as np
import pytest
import torch

from bbopt.merge import operators as ops
from bbopt.merge.recipe import Recipe
from bbopt.merge.task_vectors import FlatModel, TaskVectors


def _models(k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    sd = {n: t.clone() for n, t in base.state_dict().items()}
    experts = [{n: t + 0.3 * torch.randn(t.shape, generator=gen) for n, t in sd.items()} for _ in range(k)]
    return base, sd, experts


def _close(flat, tv, expected):
    got = tv.unflatten(flat)
    for n in tv.names:
        assert torch.allclose(got[n], expected[n].float(), atol=1e-5), n


@pytest.mark.parametrize("trim", ["tensor", "global"])
def test_ties_matches_operator(trim):
    _, sd, experts = _models()
    tv = TaskVectors(sd, experts)
    r = Recipe.uniform("ties", len(tv.names), 3, weight=1.0, density=0.3, lam=1.2, trim=trim)
    _close(tv.merge(r), tv, ops.ties(sd, experts, density=0.3, lam=1.2, trim=trim))


def test_per_model_coefficients_match_operators():
    _, sd, experts = _models()
    tv = TaskVectors(sd, experts)
    n = len(tv.names)
    w = np.tile([0.2, 0.5, 0.9], (n, 1))
    _close(tv.merge(Recipe("task_arithmetic", w, lam=0.7)), tv, ops.task_arithmetic(sd, experts, 0.7, [0.2, 0.5, 0.9]))
    _close(tv.merge(Recipe("linear", w)), tv, ops.linear(experts, [0.2, 0.5, 0.9]))
    d = np.tile([0.3, 0.6, 0.9], (n, 1))
    _close(tv.merge(Recipe("ties", w, d)), tv, ops.ties(sd, experts, [0.3, 0.6, 0.9], weights=[0.2, 0.5, 0.9]))
    for method, combine in (("dare_linear", "linear"), ("dare_ties", "ties")):
        expected = ops.dare(sd, experts, [0.3, 0.6, 0.9], weights=[0.2, 0.5, 0.9], seed=0, combine=combine)
        _close(tv.merge(Recipe(method, w, d)), tv, expected)


def test_per_tensor_coefficients_apply_to_their_tensor_only():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts)
    w = np.zeros((len(tv.names), 2))
    w[0] = [1.0, 0.0]  # only the first tensor takes expert 0's task vector
    got = tv.unflatten(tv.merge(Recipe("task_arithmetic", w)))
    assert torch.allclose(got[tv.names[0]], experts[0][tv.names[0]])
    for n in tv.names[1:]:
        assert torch.allclose(got[n], sd[n])


def test_slerp_matches_operator():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts)
    r = Recipe.uniform("slerp", len(tv.names), 2, t=0.3)
    _close(tv.merge(r), tv, ops.slerp(experts[0], experts[1], 0.3))


def test_dare_keys_give_per_candidate_masks():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts, dare_seed=3)
    r = Recipe.uniform("dare_linear", len(tv.names), 2, density=0.5)
    a, b = tv.merge(r, key=b"cand-a"), tv.merge(r, key=b"cand-b")
    assert torch.equal(a, tv.merge(r, key=b"cand-a"))
    assert not torch.equal(a, b)
    assert torch.equal(tv.merge(r), tv.merge(r))


def test_flat_model_writes_in_place_and_exclude_keeps_base():
    module, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts, exclude=[r"^2\."])
    assert all(not n.startswith("2.") for n in tv.names)
    fm = FlatModel(module, tv)
    merged = fm.load(tv, Recipe.uniform("task_arithmetic", len(tv.names), 2, weight=0.5))
    expected = ops.task_arithmetic(sd, experts, 0.5)
    state = merged.state_dict()
    assert torch.allclose(state["0.weight"], expected["0.weight"], atol=1e-6)
    assert torch.equal(state["2.weight"], sd["2.weight"])  # excluded: base
    x = torch.randn(4, 5)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    ref.load_state_dict({**expected, "2.weight": sd["2.weight"], "2.bias": sd["2.bias"]})
    assert torch.allclose(merged(x), ref(x), atol=1e-5)


def test_recipe_shape_errors():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts)
    with pytest.raises(ValueError, match="weight shape"):
        tv.merge(Recipe("task_arithmetic", np.ones((1, 2))))
    with pytest.raises(ValueError, match="density"):
        Recipe("ties", np.ones((4, 2)))
    with pytest.raises(ValueError, match="method"):
        Recipe("mean", np.ones((4, 2)))
