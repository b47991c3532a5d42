"""Update rules: how a gradient estimate moves θ (ZO-Bench's variants are rules over one estimate).

An estimate is either seed-based, ĝ = Σ_j c_j·z(seed_j) (MeZO, forward gradient: nothing stored,
z regenerated chunk by chunk), or dense, ĝ_i for some tensors (CGE, likelihood ratio).

- ``sgd``: θ ← θ − lr·(ĝ + wd·θ)  (wd on tensors of ≥ 2 dims)  — memory: none.
- ``sign``: θ ← θ − lr·(Σ_j sign(c_j) z_j) (seed-based) or lr·sign(ĝ) (dense) — memory: none.
- ``momentum``: m_t = Σ_{i<W} β^i ĝ_{t−i}, rebuilt each step from the last W steps' (seed, c)
  pairs, never a buffer (seed-based only) — memory: none; time: W× the noise of one update.
- ``torch``: ĝ written into ``param.grad`` one tensor at a time and a ``torch.optim`` optimizer
  (``adam``, ``sgd``, ``adamw``, ``rmsprop``, ``adagrad``) steps that tensor — memory: its state
  (SGD momentum +P, Adam +2P) plus one tensor's gradient at a time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypedDict

import torch

from bbopt.params import ModelParams

RULES = ("sgd", "sign", "momentum", "torch")
TORCH_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}


@dataclass
class SeedEstimate:
    """ĝ = Σ_j coef_j·z(seed_j, noise)."""

    seeds: list[int]
    coefs: list[float]
    noise: str

    def terms(self, factor: float = 1.0) -> list[tuple[int, float, str]]:
        return [(s, factor * c, self.noise) for s, c in zip(self.seeds, self.coefs)]


@dataclass
class DenseEstimate:
    """ĝ for some selected tensors: ``{tensor index: tensor shaped like it}``."""

    grads: dict[int, torch.Tensor]


Estimate = SeedEstimate | DenseEstimate


class Rule:
    def __init__(self, space: ModelParams):
        self.space = space

    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SGD(Rule):
    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        if isinstance(estimate, SeedEstimate):
            self.space.add_(estimate.terms(-lr), decay=lr * weight_decay)
        else:
            self.space.add_dense_(estimate.grads, -lr, decay=lr * weight_decay)


class Sign(Rule):
    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        if isinstance(estimate, SeedEstimate):
            signs = [((c > 0) - (c < 0)) / len(estimate.coefs) for c in estimate.coefs]
            self.space.add_([(s, -lr * c, estimate.noise) for s, c in zip(estimate.seeds, signs)],
                            decay=lr * weight_decay)
        else:
            self.space.add_dense_({i: g.sign() for i, g in estimate.grads.items()}, -lr, decay=lr * weight_decay)


class WindowMomentum(Rule):
    """Heavy-ball momentum Σ_{i<W} β^i ĝ_{t−i} from the last ``window`` seed estimates."""

    def __init__(self, space: ModelParams, beta: float, window: int):
        super().__init__(space)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {beta!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        self.beta, self.window = float(beta), window
        self.past: deque[SeedEstimate] = deque(maxlen=window)

    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        if not isinstance(estimate, SeedEstimate):
            raise TypeError("rule='momentum' rebuilds momentum from seeds; for dense estimates use "
                            "rule='torch', torch_optimizer='sgd', torch_options={'momentum': 0.9}")
        self.past.appendleft(estimate)
        terms = [t for i, est in enumerate(self.past) for t in est.terms(-lr * self.beta ** i)]
        self.space.add_(terms, decay=lr * weight_decay)

    def state_dict(self) -> dict:
        return {"seeds": [e.seeds for e in self.past], "coefs": [e.coefs for e in self.past],
                "noise": [e.noise for e in self.past]}

    def load_state_dict(self, state: dict) -> None:
        self.past = deque((SeedEstimate([int(s) for s in seeds], [float(c) for c in coefs], n)
                           for seeds, coefs, n in zip(state["seeds"], state["coefs"], state["noise"])),
                          maxlen=self.window)


class TorchOptim(Rule):
    """Any ``torch.optim`` optimizer stepping on ĝ written into ``param.grad`` tensor by tensor."""

    def __init__(self, space: ModelParams, name: str, options: dict | None, lr: float, weight_decay: float):
        super().__init__(space)
        if name not in TORCH_OPTIMIZERS:
            raise ValueError(f"torch_optimizer must be one of {sorted(TORCH_OPTIMIZERS)}, got {name!r}")
        cls = getattr(torch.optim, TORCH_OPTIMIZERS[name])
        try:
            self.opt = cls(space.tensors, lr=lr, weight_decay=weight_decay, **(options or {}))
        except TypeError as err:
            raise ValueError(f"torch_options for {name}: {err}") from None

    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr
        for ti, p in enumerate(self.space.tensors):
            g = self._grad(estimate, ti)
            if g is None:
                continue
            p.grad = g.to(p.dtype)
            self.opt.step()
            p.grad = None
        self.space.version += 1

    def _grad(self, estimate: Estimate, ti: int) -> torch.Tensor | None:
        if isinstance(estimate, DenseEstimate):
            return estimate.grads.get(ti)
        return seed_tensor(self.space, estimate, ti)

    def state_dict(self) -> dict:
        state = self.opt.state_dict()
        return {"state": {str(k): v for k, v in state["state"].items()},
                "param_groups": [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
                                 for g in state["param_groups"]]}

    def load_state_dict(self, state: dict) -> None:
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in state["param_groups"]]
        self.opt.load_state_dict({"state": {int(k): v for k, v in state["state"].items()}, "param_groups": groups})


def seed_tensor(space: ModelParams, estimate: SeedEstimate, ti: int) -> torch.Tensor:
    """Σ_j coef_j·z_j for tensor ``ti`` as a float32 tensor shaped like it (materialised: one tensor)."""
    return space.tensor_delta(estimate.terms(), ti)


class RuleOptions(TypedDict):
    """The keyword arguments of :func:`make_rule` an estimator keeps to rebuild its rule."""

    momentum: float
    window: int
    torch_optimizer: str
    torch_options: dict | None
    lr: float
    weight_decay: float


def make_rule(name: str, space: ModelParams, *, momentum: float, window: int, torch_optimizer: str,
              torch_options: dict | None, lr: float, weight_decay: float) -> Rule:
    if name == "sgd":
        return SGD(space)
    if name == "sign":
        return Sign(space)
    if name == "momentum":
        return WindowMomentum(space, momentum, window)
    if name == "torch":
        return TorchOptim(space, torch_optimizer, torch_options, lr, weight_decay)
    raise ValueError(f"rule must be one of {RULES}, got {name!r}")
