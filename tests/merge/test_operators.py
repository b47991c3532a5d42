"""Merge operators against hand-computed small tensors."""

import math

import pytest
import torch

from bbopt.merge import operators as ops


def sd(**tensors):
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in tensors.items()}


BASE = sd(w=[1.0, 1.0, 1.0, 1.0])
# task vectors chosen without magnitude ties so top-2 of 4 is unambiguous
TAUS = ([1.0, -2.0, 0.5, 3.0], [-3.0, 1.0, 0.2, 0.9], [2.0, 1.5, -0.1, -0.5])
EXPERTS = [sd(w=[1.0 + v for v in t]) for t in TAUS]


def test_linear_weighted_average_and_unnormalized_sum():
    a, b = sd(w=[0.0, 0.0]), sd(w=[4.0, 8.0])
    assert torch.allclose(ops.linear([a, b], [1, 3])["w"], torch.tensor([3.0, 6.0]))
    assert torch.allclose(ops.linear([a, b], [1, 3], normalize=False)["w"], torch.tensor([12.0, 24.0]))
    assert torch.allclose(ops.linear([a, b])["w"], torch.tensor([2.0, 4.0]))


def test_task_arithmetic_by_hand():
    out = ops.task_arithmetic(BASE, EXPERTS, lam=0.5, weights=[1, 0, 2])
    expected = [1 + 0.5 * (t1 + 2 * t3) for t1, t3 in zip(TAUS[0], TAUS[2])]
    assert torch.allclose(out["w"], torch.tensor(expected))


def test_ties_trim_sign_election_and_disjoint_mean():
    # trimmed to top 2: [0,-2,0,3], [-3,1,0,0], [2,1.5,0,0]; mass [-1, .5, 0, 3] -> signs [-,+,+,+]
    out = ops.ties(BASE, EXPERTS, density=0.5, lam=1.0)
    assert torch.allclose(out["w"], torch.tensor([1 - 3.0, 1 + 1.25, 1 + 0.0, 1 + 3.0]))
    # disjoint sum instead of mean, scaled by lambda
    out = ops.ties(BASE, EXPERTS, density=0.5, lam=2.0, normalize=False)
    assert torch.allclose(out["w"], torch.tensor([1 - 6.0, 1 + 5.0, 1.0, 1 + 6.0]))


def test_ties_weighted_sign_election_flips_the_vote():
    # entry 0: trimmed values 0, -3, 2; weight 3 on model 3 makes the mass +3 -> keep only +2
    out = ops.ties(BASE, EXPERTS, density=0.5, weights=[1, 1, 3])
    assert math.isclose(float(out["w"][0]), 1 + 2.0, rel_tol=1e-6)


def test_ties_trim_per_tensor_vs_global_differ_as_computed():
    base = sd(a=[0.0, 0.0], b=[0.0, 0.0])
    expert = sd(a=[10.0, 9.0], b=[1.0, 2.0])
    per_tensor = ops.ties(base, [expert], density=0.5, trim="tensor")
    whole = ops.ties(base, [expert], density=0.5, trim="global")
    assert per_tensor["a"].tolist() == [10.0, 0.0] and per_tensor["b"].tolist() == [0.0, 2.0]
    assert whole["a"].tolist() == [10.0, 9.0] and whole["b"].tolist() == [0.0, 0.0]


def test_trim_density_edges():
    tau = torch.tensor([3.0, -1.0, 2.0])
    assert ops.trim_mask(tau, 0.0).sum() == 0
    assert ops.trim_mask(tau, 1.0).all()
    assert ops.trim_mask(tau, 1 / 3).tolist() == [True, False, False]


def test_dare_rescales_keep_density_and_match_l1_norm_or_expectation():
    base = {"w": torch.zeros(200_000)}
    expert = {"w": torch.full((200_000,), 0.7)}
    out = ops.dare(base, [expert], density=0.3, seed=5)["w"]  # mergekit's default: L1 norm matched
    kept = (out != 0).float().mean().item()
    assert abs(kept - 0.3) < 0.005
    assert out.abs().sum().item() == pytest.approx(0.7 * 200_000, rel=1e-5)
    assert torch.allclose(out[out != 0], torch.tensor(0.7 / kept), rtol=1e-5)
    paper = ops.dare(base, [expert], density=0.3, seed=5, rescale="density")["w"]  # Yu et al.: 1/d
    assert torch.equal(paper != 0, out != 0)
    assert torch.allclose(paper[paper != 0], torch.tensor(0.7 / 0.3))
    plain = ops.dare(base, [expert], density=0.3, seed=5, rescale="none")["w"]
    assert torch.allclose(plain[plain != 0], torch.tensor(0.7))


def test_keep_count_is_mergekits():
    assert [ops.keep_count(d, 10) for d in (0.0, 0.01, 0.15, 0.29, 0.5, 1.0, 1.2)] == [0, 1, 1, 2, 5, 10, 10]
    tau = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5, 0.6, -0.7, 0.8, 0.9, -1.0])
    assert int(ops.trim_mask(tau, 0.05).sum()) == 1  # a positive density keeps at least one entry
    assert int(ops.trim_mask(tau, 0.29).sum()) == 2  # int(2.9) = 2, not round(2.9) = 3


def test_dare_masks_deterministic_nested_and_seed_dependent():
    base = {"w": torch.zeros(1000)}
    expert = {"w": torch.ones(1000)}
    a = ops.dare(base, [expert], density=0.4, seed=1)["w"]
    assert torch.equal(a, ops.dare(base, [expert], density=0.4, seed=1)["w"])
    assert not torch.equal(a, ops.dare(base, [expert], density=0.4, seed=2)["w"])
    small = ops.dare(base, [expert], density=0.2, seed=1)["w"] != 0
    assert bool(((a != 0) | ~small).all())  # the d=0.2 mask is inside the d=0.4 mask


def test_dare_ties_sign_election_on_rescaled_vectors():
    base = {"w": torch.zeros(4)}
    experts = [{"w": torch.tensor([1.0, -1.0, 2.0, 0.5])}, {"w": torch.tensor([-2.0, 1.0, 1.0, 0.5])}]
    out = ops.dare_ties(base, experts, density=1.0)["w"]  # density 1: no drop, disjoint sum
    # entry 1: mass -1 + 1 = 0 elects +, so only the +1 survives
    assert torch.allclose(out, torch.tensor([-2.0, 1.0, 3.0, 1.0]))


def test_slerp_endpoints_midpoint_and_norm():
    a, b = sd(w=[1.0, 0.0]), sd(w=[0.0, 1.0])
    assert torch.allclose(ops.slerp(a, b, 0.0)["w"], a["w"])
    assert torch.allclose(ops.slerp(a, b, 1.0)["w"], b["w"])
    mid = ops.slerp(a, b, 0.5)["w"]
    assert torch.allclose(mid, torch.tensor([math.sqrt(0.5)] * 2))
    for t in (0.1, 0.3, 0.77):
        assert math.isclose(ops.slerp(a, b, t)["w"].norm().item(), 1.0, rel_tol=1e-6)
    # lerp where nearly parallel (|cos| > 0.9995)
    c, d = sd(w=[1.0, 0.0]), sd(w=[2.0, 0.001])
    assert torch.allclose(ops.slerp(c, d, 0.5)["w"], torch.tensor([1.5, 0.0005]))


def test_fisher_merge_weights_by_fisher():
    models = [sd(w=[0.0, 0.0]), sd(w=[2.0, 4.0])]
    fishers = [sd(w=[1.0, 0.0]), sd(w=[1.0, 1.0])]
    out = ops.fisher_merge(models, fishers)["w"]
    assert torch.allclose(out, torch.tensor([1.0, 4.0]), atol=1e-6)


def test_non_float_tensors_copied_from_base():
    base = {"w": torch.zeros(2), "ids": torch.tensor([0, 1])}
    expert = {"w": torch.ones(2), "ids": torch.tensor([5, 6])}
    out = ops.task_arithmetic(base, [expert])
    assert out["ids"].tolist() == [0, 1] and out["w"].tolist() == [1.0, 1.0]


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="density"):
        ops.ties(BASE, EXPERTS, density=1.5)
    with pytest.raises(ValueError, match="weights"):
        ops.task_arithmetic(BASE, EXPERTS, weights=[1, 2])
    with pytest.raises(ValueError, match="trim"):
        ops.ties(BASE, EXPERTS, trim="layer")
    with pytest.raises(ValueError, match="shape"):
        ops.task_arithmetic(BASE, [sd(w=[1.0, 2.0])])
    with pytest.raises(ValueError, match="combine"):
        ops.dare(BASE, EXPERTS, combine="mean")
    with pytest.raises(ValueError, match="rescale"):
        ops.dare(BASE, EXPERTS, rescale="l2")
    with pytest.raises(ValueError, match="sign"):
        ops.dare(BASE, EXPERTS, sign="unweighted")  # dare_linear elects no sign
