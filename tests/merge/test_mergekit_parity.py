"""bbopt's merge operators against mergekit itself (the reference users compare with).

mergekit's merge methods run on the same random tensors; DARE masks are forced equal by
replacing mergekit's Bernoulli draw with bbopt's mask for the same (model, tensor), so the
rest — its L1 rescale, sign election, normalisation, λ — is mergekit's own code. Every
output agrees to 1e-6.
"""

import numpy as np
import pytest
import torch

from bbopt.merge import operators as ops
from bbopt.merge.recipe import Recipe
from bbopt.merge.task_vectors import TaskVectors

mergekit_api = pytest.importorskip("mergekit.merge_methods.api")
sparsify = pytest.importorskip("mergekit.sparsify")

SHAPES = {"a.weight": (17, 9), "a.bias": (33,), "b.weight": (4, 5, 6), "c.scale": (3,)}
IDS = ["base", "e0", "e1", "e2"]
WEIGHTS = [0.7, -0.4, 1.3]  # a negative weight: the weighted sign election differs from sgn(τ)
DENSITIES = [0.3, 0.05, 0.7]  # 0.05 of 3 entries: int(0.15) = 0, mergekit keeps max(1, ·)
ATOL = 1e-6


def _models(seed=0, k=3):
    gen = torch.Generator().manual_seed(seed)
    base = {n: torch.randn(s, generator=gen) for n, s in SHAPES.items()}
    experts = [{n: t + 0.5 * torch.randn(t.shape, generator=gen) for n, t in base.items()} for _ in range(k)]
    return base, experts


def _mergekit(method, base, experts, name, **parameters):
    tensors = [base[name]] + [e[name] for e in experts]
    per_input = {}
    for key in ("weight", "density"):
        if key in parameters:
            per_input[key] = dict(zip(IDS[1:], parameters.pop(key)))
    return mergekit_api.merge_tensors(tensors, method, ids=IDS[:len(tensors)], base_index=0,
                                      parameters={**parameters, **per_input}, name=name)


def _close(ours, theirs, name):
    assert ours.shape == theirs.shape, name
    assert torch.allclose(ours.float(), theirs.float(), atol=ATOL, rtol=0), \
        f"{name}: max |diff| {float((ours.float() - theirs.float()).abs().max()):.3g}"


@pytest.mark.parametrize("normalize", [True, False])
def test_linear_and_task_arithmetic(normalize):
    base, experts = _models()
    ours = ops.linear(experts, WEIGHTS, normalize=normalize)
    ta = ops.task_arithmetic(base, experts, lam=1.3, weights=WEIGHTS, normalize=normalize)
    for n in SHAPES:
        theirs = mergekit_api.merge_tensors([e[n] for e in experts], "linear", ids=IDS[1:],
                                            parameters={"weight": dict(zip(IDS[1:], WEIGHTS)),
                                                        "normalize": normalize}, name=n)
        _close(ours[n], theirs, n)
        _close(ta[n], _mergekit("task_arithmetic", base, experts, n, weight=WEIGHTS, normalize=normalize,
                                **{"lambda": 1.3}), n)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("densities", [DENSITIES, [0.5, 1.0, 0.0]])
def test_ties(normalize, densities):
    base, experts = _models(1)
    ours = ops.ties(base, experts, densities, lam=0.8, weights=WEIGHTS, normalize=normalize)
    for n in SHAPES:
        _close(ours[n], _mergekit("ties", base, experts, n, weight=WEIGHTS, density=densities,
                                  normalize=normalize, **{"lambda": 0.8}), n)


@pytest.mark.parametrize("method", ["dare_ties", "dare_linear"])
@pytest.mark.parametrize("rescale", [True, False])
def test_dare_with_forced_equal_masks(forced_masks, method, rescale):
    base, experts = _models(2)
    forced_masks.update(base=base, experts=experts, seed=7)
    combine = "ties" if method == "dare_ties" else "linear"
    ours = ops.dare(base, experts, DENSITIES, lam=1.1, weights=WEIGHTS, seed=7, combine=combine,
                    rescale="l1" if rescale else "none")
    for n in SHAPES:
        _close(ours[n], _mergekit(method, base, experts, n, weight=WEIGHTS, density=DENSITIES, rescale=rescale,
                                  **{"lambda": 1.1}), n)


def test_the_in_place_engine_agrees_with_mergekit_in_small_chunks(forced_masks):
    base, experts = _models(3)
    forced_masks.update(base=base, experts=experts, seed=5)
    tv = TaskVectors(base, experts, dare_seed=5, chunk=8)
    names = tv.names
    w = np.tile(WEIGHTS, (len(names), 1))
    d = np.tile(DENSITIES, (len(names), 1))
    for method in ("ties", "dare_ties", "dare_linear", "task_arithmetic"):
        got = tv.merge(Recipe(method, w, d if method != "task_arithmetic" else None, lam=0.9))
        for n in names:
            kw = {"density": DENSITIES} if method != "task_arithmetic" else {}
            _close(got[n], _mergekit(method, base, experts, n, weight=WEIGHTS, **kw, **{"lambda": 0.9}), n)


def test_paper_variants_differ_from_mergekit_as_documented():
    base, experts = _models(4)
    n = "a.weight"
    paper = ops.ties(base, experts, DENSITIES, weights=WEIGHTS, sign="unweighted")[n]
    theirs = _mergekit("ties", base, experts, n, weight=WEIGHTS, density=DENSITIES)
    assert (paper - theirs).abs().max() > 1e-2
    same = ops.ties(base, experts, DENSITIES, sign="unweighted")[n]  # equal unit weights: no difference
    _close(same, _mergekit("ties", base, experts, n, weight=[1.0] * 3, density=DENSITIES), n)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.8])
def test_slerp_including_parallel_and_near_zero_tensors(t):
    gen = torch.Generator().manual_seed(5)
    a = {"w": torch.randn(40, generator=gen), "tiny": 1e-10 * torch.randn(6, generator=gen),
         "zero": torch.zeros(5), "par": torch.arange(1.0, 9.0)}
    b = {"w": torch.randn(40, generator=gen), "tiny": torch.randn(6, generator=gen),
         "zero": torch.randn(5, generator=gen), "par": 2 * torch.arange(1.0, 9.0) + 1e-4}
    ours = ops.slerp(a, b, t)
    tv = TaskVectors(a, [a, b], chunk=4)  # the engine slerps expert 0 -> expert 1
    engine = tv.merge(Recipe.uniform("slerp", len(tv.names), 2, t=t))
    for n in a:
        theirs = mergekit_api.merge_tensors([a[n], b[n]], "slerp", base_index=0, parameters={"t": t}, name=n)
        _close(ours[n], theirs, n)
        _close(engine[n], theirs, n)
