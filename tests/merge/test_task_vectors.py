"""In-place merges, chunk by chunk, agree with the pure operators."""

import numpy as np
import pytest
import torch

from bbopt.merge import operators as ops
from bbopt.merge.recipe import Recipe
from bbopt.merge.task_vectors import MergedModel, TaskVectors
from bbopt.options import OptionError

CHUNKS = [ops.DARE_BLOCK, 7]  # whole tensors, and chunks smaller than every tensor


def _models(k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    sd = {n: t.clone() for n, t in base.state_dict().items()}
    experts = [{n: t + 0.3 * torch.randn(t.shape, generator=gen) for n, t in sd.items()} for _ in range(k)]
    return base, sd, experts


def _close(got, tv, expected):
    for n in tv.names:
        assert torch.allclose(got[n], expected[n].float(), atol=1e-5), n


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("trim", ["tensor", "global"])
def test_ties_matches_operator(trim, chunk):
    _, sd, experts = _models()
    tv = TaskVectors(sd, experts, chunk=chunk)
    r = Recipe.uniform("ties", len(tv.names), 3, weight=1.0, density=0.3, lam=1.2, trim=trim)
    _close(tv.merge(r), tv, ops.ties(sd, experts, density=0.3, lam=1.2, trim=trim))


@pytest.mark.parametrize("chunk", CHUNKS)
def test_per_model_coefficients_match_operators(chunk):
    _, sd, experts = _models()
    tv = TaskVectors(sd, experts, chunk=chunk)
    n = len(tv.names)
    wk = [0.2, -0.5, 0.9]  # a negative weight: the weighted sign election matters
    w = np.tile(wk, (n, 1))
    _close(tv.merge(Recipe("task_arithmetic", w, lam=0.7)), tv, ops.task_arithmetic(sd, experts, 0.7, wk))
    _close(tv.merge(Recipe("linear", w)), tv, ops.linear(experts, wk))
    d = np.tile([0.3, 0.6, 0.9], (n, 1))
    for sign in ("weighted", "unweighted"):
        _close(tv.merge(Recipe("ties", w, d, sign=sign)), tv,
               ops.ties(sd, experts, [0.3, 0.6, 0.9], weights=wk, sign=sign))
    for rescale in ("l1", "density", "none"):
        for method, combine in (("dare_linear", "linear"), ("dare_ties", "ties")):
            expected = ops.dare(sd, experts, [0.3, 0.6, 0.9], weights=wk, seed=0, combine=combine, rescale=rescale)
            _close(tv.merge(Recipe(method, w, d, rescale=rescale)), tv, expected)


def test_per_tensor_coefficients_apply_to_their_tensor_only():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts)
    w = np.zeros((len(tv.names), 2))
    w[0] = [1.0, 0.0]  # only the first tensor takes expert 0's task vector
    got = tv.merge(Recipe("task_arithmetic", w))
    assert torch.allclose(got[tv.names[0]], experts[0][tv.names[0]])
    for n in tv.names[1:]:
        assert torch.allclose(got[n], sd[n])


@pytest.mark.parametrize("chunk", CHUNKS)
def test_slerp_matches_operator(chunk):
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts, chunk=chunk)
    r = Recipe.uniform("slerp", len(tv.names), 2, t=0.3)
    _close(tv.merge(r), tv, ops.slerp(experts[0], experts[1], 0.3))


def test_dare_keys_give_per_candidate_masks():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts, dare_seed=3)
    r = Recipe.uniform("dare_linear", len(tv.names), 2, density=0.5)
    a, b = tv.merge(r, key=b"cand-a"), tv.merge(r, key=b"cand-b")
    assert all(torch.equal(a[n], tv.merge(r, key=b"cand-a")[n]) for n in tv.names)
    assert not all(torch.equal(a[n], b[n]) for n in tv.names)
    assert all(torch.equal(tv.merge(r)[n], tv.merge(r)[n]) for n in tv.names)


def test_merged_model_writes_in_place_and_exclude_keeps_base():
    module, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts, exclude=[r"^2\."])
    assert all(not n.startswith("2.") for n in tv.names)
    mm = MergedModel(module, tv, sd)
    merged = mm.load(tv, Recipe.uniform("task_arithmetic", len(tv.names), 2, weight=0.5))
    assert merged is module  # the caller's own module, changed in place
    expected = ops.task_arithmetic(sd, experts, 0.5)
    state = merged.state_dict()
    assert torch.allclose(state["0.weight"], expected["0.weight"], atol=1e-6)
    assert torch.equal(state["2.weight"], sd["2.weight"])  # excluded: base
    x = torch.randn(4, 5)
    ref = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    ref.load_state_dict({**expected, "2.weight": sd["2.weight"], "2.bias": sd["2.bias"]})
    assert torch.allclose(merged(x), ref(x), atol=1e-5)


def test_sources_keep_their_dtype_and_are_not_copied():
    _, sd, experts = _models(k=2)
    half = [{n: t.to(torch.bfloat16) for n, t in e.items()} for e in experts]
    tv = TaskVectors(sd, half)
    assert tv.experts[0]["0.weight"] is half[0]["0.weight"]  # references, no float32 copy of τ
    got = tv.merge(Recipe.uniform("task_arithmetic", len(tv.names), 2, weight=0.5))
    expected = ops.task_arithmetic(sd, half, 0.5)
    _close(got, tv, expected)


def test_recipe_shape_errors_and_unused_variant_options():
    _, sd, experts = _models(k=2)
    tv = TaskVectors(sd, experts)
    with pytest.raises(ValueError, match="weight shape"):
        tv.merge(Recipe("task_arithmetic", np.ones((1, 2))))
    with pytest.raises(ValueError, match="density"):
        Recipe("ties", np.ones((4, 2)))
    with pytest.raises(ValueError, match="method"):
        Recipe("mean", np.ones((4, 2)))
    for kw, option in (({"rescale": "l1"}, "rescale"), ({"trim": "global"}, "trim"), ({"sign": "unweighted"}, "sign"),
                       ({"lam": 0.5}, "lambda")):
        with pytest.raises(OptionError, match=option) as err:
            Recipe("linear", np.ones((4, 2)), **kw)
        assert err.value.option == option
