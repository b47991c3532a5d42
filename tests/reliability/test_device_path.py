"""The torch problems and estimators on the problem's device: everything stays there.

Each check runs on CPU here and on CUDA where a GPU is present (the CUDA cases are skipped
otherwise). On CUDA, a profiler count of host↔device copies per step must not grow with the
number of parameter tensors: the hot loop may move the mini-batch in and the losses out, never
the weights, the noise or per-tensor updates.
"""

import numpy as np
import pytest
import torch

from bbopt import make_optimizer, minimize
from bbopt.problems import get

needs_cuda = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")]
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
ESTIMATORS = {
    "mezo": {"lr": 1e-3, "q": 2},
    "cge": {"lr": 1.0, "density": 0.02},
    "forward-gradient": {"lr": 1e-3},
    "likelihood-ratio": {"lr": 0.1, "q": 2},
}


def _problem(device: str, depth: int = 1):
    return get("zo-digits-mlp", seed=0, hidden=16, depth=depth, batch_size=32, device=device, jvp="forward_ad")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ESTIMATORS)
def test_an_estimator_trains_on_the_problems_device(device, name):
    problem = _problem(device)
    before = [p.detach().clone() for p in problem.space.tensors]
    result = minimize(problem, name, 100, seed=0, options=ESTIMATORS[name], progress=False)
    assert np.isfinite(result.history.losses()).all()
    assert all(p.device.type == device for p in problem.space.tensors)
    assert any(not torch.equal(a, b) for a, b in zip(before, problem.space.tensors))


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_weights_on_the_device(device):
    runs = []
    for _ in range(2):
        problem = _problem(device)
        minimize(problem, "mezo", 20, seed=3, options=ESTIMATORS["mezo"], progress=False)
        runs.append([p.detach().cpu() for p in problem.space.tensors])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def _copies_per_step(name: str, depth: int, steps: int = 4) -> float:
    from torch.profiler import ProfilerActivity, profile

    problem = _problem("cuda", depth)
    opt = make_optimizer(name, problem.space, seed=0, **ESTIMATORS[name])

    def step():
        batch = opt.ask()
        opt.tell(batch, problem.evaluate(batch))

    for _ in range(3):  # warm-up: masks, caches, CUDA context
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    return sum("memcpy" in e.name.lower() for e in prof.events()) / steps


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("name", ESTIMATORS)
def test_host_device_copies_per_step_do_not_grow_with_the_model(name):
    shallow, deep = _copies_per_step(name, depth=1), _copies_per_step(name, depth=6)
    assert deep == shallow, f"{name}: {shallow} copies per step with 4 tensors, {deep} with 14"
    assert shallow <= 8
