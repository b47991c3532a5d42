"""Small real torch problems for the ZO tests: a noiseless linear regression (optimum 0), a
quadratic with a known gradient, and a tiny MLP on a slice of sklearn's load_digits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bbopt.problems import TorchProblem
from bbopt.problems.torch_data import ShuffledBatches


def mse(model, batch):
    """Per-example squared error ``(B,)``."""
    return ((model(batch[0]) - batch[1]) ** 2).sum(1)


def cross_entropy(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")


def error_rate(model, batch):
    """Non-differentiable: 1 where the argmax is wrong."""
    return (model(batch[0]).argmax(1) != batch[1]).float()


def regression(seed: int = 0, d_in: int = 8, d_out: int = 2, n: int = 256, batch: int = 32, **kw) -> TorchProblem:
    """Linear model fitting a noiseless linear teacher: optimum 0."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d_in, generator=g)
    y = X @ torch.randn(d_in, d_out, generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(d_in, d_out))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return TorchProblem(model, mse, ShuffledBatches([X, y], batch, seed=seed), optimum=0.0, **kw)


class Quadratic(torch.nn.Module):
    """θ ∈ R^d; per-example loss ½ Σ_k a_k (θ_k − c_ik)² for targets c (B, d)."""

    def __init__(self, d: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.theta = torch.nn.Parameter(torch.randn(d, generator=g))
        self.register_buffer("a", 0.5 + torch.rand(d, generator=g))

    def forward(self, c):
        return 0.5 * (self.a * (self.theta - c) ** 2).sum(1)


def quadratic(d: int, seed: int = 0, **kw) -> TorchProblem:
    g = torch.Generator().manual_seed(seed + 1)
    targets = torch.randn(16, d, generator=g)
    return TorchProblem(Quadratic(d, seed), lambda m, b: m(b[0]), [(targets,)], **kw)


def digits(n: int = 600):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X[:n] / 16.0, dtype=torch.float32), torch.tensor(y[:n])


def tiny_mlp(seed: int = 0, hidden: int = 8, batch: int = 32, single_batch: bool = False, **kw) -> TorchProblem:
    """64-hidden-10 MLP on digits (d = 610 for hidden 8)."""
    X, y = digits()
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    data = [(X[:batch], y[:batch])] if single_batch else ShuffledBatches([X, y], batch, seed=seed)
    return TorchProblem(model, cross_entropy, data, **kw)


def autograd_grad(problem: TorchProblem, step: int = 0) -> torch.Tensor:
    """∇ of the mean loss of ``step``'s batch w.r.t. the selected tensors, flattened."""
    params = problem.space.tensors
    with torch.enable_grad():
        value = problem.loss(problem.model, problem.batch(step)).mean()
        grads = torch.autograd.grad(value, params)
    return torch.cat([g.reshape(-1) for g in grads])


def flat(space) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in space.tensors])


def loss_at(problem: TorchProblem, theta: torch.Tensor, step: int) -> float:
    """The mean loss of ``step``'s batch at the flat parameters ``theta`` (the module is not touched):
    what a reference transcription of a paper's update evaluates."""
    from bbopt.problems.torch_batched import FunctionalModel, reduce_loss

    offsets = problem.space.layout.offsets
    params = {n: theta[offsets[i]:offsets[i + 1]].view(p.shape)
              for i, (n, p) in enumerate(zip(problem.space.names, problem.space.tensors))}
    with torch.no_grad():
        return float(reduce_loss(problem.loss(FunctionalModel(problem.model, params), problem.batch(step))))


def random_search(problem: TorchProblem, budget: int, scale: float, seed: int = 0) -> None:
    """(1+1) random search in place: per step L(θ) and L(θ + scale·z) (2 FE), keep the better."""
    from bbopt.perturbations import Clean, Direction

    gen = torch.Generator().manual_seed(seed)
    for t in range(budget // 2):
        s = int(torch.randint(0, 1 << 62, (1,), generator=gen))
        base, moved = problem.evaluate([Clean(t), Direction(t, s, scale, "gaussian")])
        problem.space.restore()
        if moved < base:
            problem.space.add_([(s, scale, "gaussian")])
