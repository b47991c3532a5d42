"""The BoTorch anchor of R1/R2/R4: BoTorch's default single-task GP with qLogEI (benchmark only).

What a user gets from BoTorch today (botorch ≥ 0.12, the `bench` extra): ``SingleTaskGP`` with
its defaults — RBF-ARD kernel with the dimension-scaled log-normal length-scale prior of
Hvarfner et al. (ICML 2024), log-normal noise prior, ``Standardize`` outcome transform — fitted
by ``fit_gpytorch_mll``, and ``qLogExpectedImprovement`` (Ament et al., NeurIPS 2023)
maximised by ``optimize_acqf`` with q = 1, 10 restarts from 512 raw samples (the settings of
BoTorch's closed-loop tutorial; ``optimize_acqf`` has no defaults for them). Inputs are the
problem's unit cube; BoTorch maximises, so it sees −loss. The initial design is ``n_init``
scrambled Sobol points (10, as RDUCB and GP-UCB). Double precision, one torch thread.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np


def botorch_minimize(problem, budget: int, seed: int, n_init: int = 10, num_restarts: int = 10,
                     raw_samples: int = 512, on_step: Callable[[np.ndarray], None] | None = None) -> dict:
    """Run the anchor on ``problem`` (a bbopt Box problem): the losses in evaluation order, the
    best point ``x`` and the wall / CPU seconds of every model-based iteration (fit +
    acquisition optimisation). ``on_step(losses)`` sees the losses after every iteration (a
    long run's progress survives an interruption)."""
    import torch
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from torch.quasirandom import SobolEngine

    torch.manual_seed(seed)
    dim = problem.space.dim
    unit = torch.stack([torch.zeros(dim), torch.ones(dim)]).double()

    def evaluate(u: torch.Tensor) -> torch.Tensor:
        x = problem.space.from_unit(u.detach().numpy())
        return torch.as_tensor(np.asarray(problem.evaluate(x), dtype=float)).double()

    X = SobolEngine(dim, scramble=True, seed=seed).draw(min(n_init, budget)).double()
    losses = evaluate(X)
    walls, cpus = [], []
    while len(losses) < budget:
        t0, c0 = time.perf_counter(), time.process_time()
        finite = torch.isfinite(losses)
        Y = -torch.where(finite, losses, losses[finite].max()).unsqueeze(-1)
        model = SingleTaskGP(X, Y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BoTorch's input-scaling and optimiser warnings
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acq = qLogExpectedImprovement(model, best_f=Y.max())
            candidate, _ = optimize_acqf(acq, bounds=unit, q=1, num_restarts=num_restarts, raw_samples=raw_samples)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        X = torch.cat([X, candidate.detach()])
        losses = torch.cat([losses, evaluate(candidate)])
        if on_step is not None:
            on_step(losses.numpy())
    best = int(torch.argmin(torch.where(torch.isfinite(losses), losses, torch.inf)))
    return {"losses": losses.numpy(), "x": problem.space.from_unit(X[best].numpy()), "iteration_wall": walls,
            "iteration_cpu": cpus}
