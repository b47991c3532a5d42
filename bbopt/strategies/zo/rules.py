"""Update rules: how a gradient estimate moves θ (ZO-Bench's variants are rules over one estimate).

An estimate is either seed-based, ĝ = Σ_j c_j·z(seed_j) (MeZO, forward gradient: nothing stored,
z regenerated chunk by chunk), or dense, ĝ_i for some tensors (CGE, likelihood ratio). Each rule
is one algorithm for both kinds:

- ``sgd``: θ ← θ − lr·(ĝ + wd·θ)  (wd on tensors of ≥ 2 dims)  — memory: none.
- ``sign``: θ ← θ − lr·(sign(ĝ) + wd·θ), the sign of each coordinate of the estimate (ZO-signSGD,
  Liu et al. ICLR 2019; ZO-Bench's ZO-SGD-Sign as its paper states it). For a seed estimate
  sign(Σ_j c_j z_j) is formed chunk by chunk — memory: none. (ZO-Bench's code instead steps
  sign(c)·z, a normalised step along z; that variant is not offered.)
- ``momentum``: m_t = Σ_{i<W} β^i ĝ_{t−i}, rebuilt each step from the last W steps' (seed, c)
  pairs, never a buffer (seed-based only: ``momentum`` β, ``window`` W) — memory: none; time: W×
  the noise of one update.
- ``torch``: ĝ written into ``param.grad`` one tensor at a time and a ``torch.optim`` optimizer
  (``torch_optimizer``: ``adam`` by default, ``sgd``, ``adamw``, ``rmsprop``, ``adagrad``; its own
  options in ``torch_options``) steps that tensor — memory: its state (SGD momentum +P, Adam
  +2P) plus one tensor's gradient at a time.

Each rule's own options are refused with any other rule (:func:`rule_options`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, TypedDict

import torch

from bbopt.options import OptionError, integer, number_in, one_of, unused
from bbopt.params import ModelParams

RULES = ("sgd", "sign", "momentum", "torch")
TORCH_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
RENAMED_RULES = {"cons": "conservative"}


@dataclass
class SeedEstimate:
    """ĝ = Σ_j coef_j·z(seed_j, direction)."""

    seeds: list[int]
    coefs: list[float]
    direction: str

    def terms(self, factor: float = 1.0) -> list[tuple[int, float, str]]:
        return [(s, factor * c, self.direction) for s, c in zip(self.seeds, self.coefs)]


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
            self.space.add_sign_(estimate.terms(), lr, decay=lr * weight_decay)
        else:
            self.space.add_dense_({i: g.sign() for i, g in estimate.grads.items()}, -lr, decay=lr * weight_decay)


class WindowMomentum(Rule):
    """Heavy-ball momentum Σ_{i<W} β^i ĝ_{t−i} from the last ``window`` seed estimates."""

    def __init__(self, space: ModelParams, beta: float, window: int):
        super().__init__(space)
        self.beta, self.window = beta, window
        self.past: deque[SeedEstimate] = deque(maxlen=window)

    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        if not isinstance(estimate, SeedEstimate):
            raise TypeError("rule='momentum' rebuilds momentum from seeds; a dense estimate cannot use it")
        self.past.appendleft(estimate)
        terms = [t for i, est in enumerate(self.past) for t in est.terms(-lr * self.beta ** i)]
        self.space.add_(terms, decay=lr * weight_decay)

    def state_dict(self) -> dict:
        return {"seeds": [e.seeds for e in self.past], "coefs": [e.coefs for e in self.past],
                "direction": [e.direction for e in self.past]}

    def load_state_dict(self, state: dict) -> None:
        self.past = deque((SeedEstimate([int(s) for s in seeds], [float(c) for c in coefs], d)
                           for seeds, coefs, d in zip(state["seeds"], state["coefs"], state["direction"])),
                          maxlen=self.window)


class TorchOptim(Rule):
    """Any ``torch.optim`` optimizer stepping on ĝ written into ``param.grad`` tensor by tensor."""

    def __init__(self, space: ModelParams, name: str, options: dict, lr: float, weight_decay: float, owner: str):
        super().__init__(space)
        cls = getattr(torch.optim, TORCH_OPTIMIZERS[name])
        try:
            self.opt = cls(space.tensors, lr=lr, weight_decay=weight_decay, **options)
        except (TypeError, ValueError) as err:
            raise OptionError("torch_options", f"{owner}: torch_options for torch.optim.{cls.__name__}: {err}") from None

    def step(self, estimate: Estimate, lr: float, weight_decay: float) -> None:
        self.space.restore()  # a pending perturbation: p.grad is applied to θ itself
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
    """A rule's own options, defaults filled in; what an estimator keeps to rebuild its rule."""

    momentum: float
    window: int
    torch_optimizer: str
    torch_options: dict


def rule_options(owner: str, rule: str, allowed: tuple[str, ...], momentum: float | None, window: int | None,
                 torch_optimizer: str | None, torch_options: dict | None) -> RuleOptions:
    """Check ``rule`` and the options only one rule uses (an option another rule uses is an error).

    Defaults: ``momentum`` 0.9 and ``window`` 10 with ``rule="momentum"``; ``torch_optimizer``
    ``"adam"`` and ``torch_options`` ``{}`` with ``rule="torch"``.
    """
    if rule in RENAMED_RULES:
        raise OptionError("rule", f"{owner}: rule {rule!r} is now called {RENAMED_RULES[rule]!r}")
    if rule == "momentum" and rule not in allowed:
        raise OptionError("rule", f"{owner}: rule='momentum' rebuilds momentum from seeds and {owner}'s estimates "
                                  "are dense; use rule='torch', torch_optimizer='sgd', torch_options={'momentum': 0.9}")
    one_of(rule, "rule", owner, allowed)
    given: dict[str, Any] = {"momentum": momentum, "window": window, "torch_optimizer": torch_optimizer,
                             "torch_options": torch_options}
    users = {"momentum": "momentum", "window": "momentum", "torch_optimizer": "torch", "torch_options": "torch"}
    for name, value in given.items():
        if value is not None and users[name] != rule:
            raise unused(name, owner, f"with rule={rule!r} (only rule={users[name]!r} uses it)")
    out = RuleOptions(momentum=0.9, window=10, torch_optimizer="adam", torch_options={})
    if momentum is not None:
        out["momentum"] = number_in(momentum, "momentum", owner, 0.0, 1.0, high_open=True)
    if window is not None:
        out["window"] = integer(window, "window", owner, minimum=1)
    if torch_optimizer is not None:
        out["torch_optimizer"] = one_of(torch_optimizer, "torch_optimizer", owner, tuple(TORCH_OPTIMIZERS))
    if torch_options is not None:
        if not isinstance(torch_options, dict):
            raise OptionError("torch_options", f"{owner}: torch_options must be a mapping of torch.optim options, "
                                               f"got {torch_options!r}")
        out["torch_options"] = dict(torch_options)
    return out


def make_rule(name: str, space: ModelParams, options: RuleOptions, lr: float, weight_decay: float,
              owner: str) -> Rule:
    """The rule ``name`` (checked by :func:`rule_options`) over ``space``; ``conservative`` moves by
    the plain SGD step it evaluated."""
    if name == "sign":
        return Sign(space)
    if name == "momentum":
        return WindowMomentum(space, options["momentum"], options["window"])
    if name == "torch":
        return TorchOptim(space, options["torch_optimizer"], options["torch_options"], lr, weight_decay, owner)
    return SGD(space)
