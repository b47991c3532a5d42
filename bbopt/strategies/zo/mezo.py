"""MeZO / ZO-SGD: two-point SPSA done in place (Malladi et al. 2023; ZO-Bench variants, Zhang et al. 2024).

One step draws q seeds; z_j is regenerated from seed_j whenever needed, never stored.
    two-sided:  g_j = (L(θ + εz_j) − L(θ − εz_j)) / 2ε        (2q FE)
    one-sided:  g_j = (L(θ + εz_j) − L(θ)) / ε                (q + 1 FE)
    update:     θ ← θ − lr·((1/q) Σ_j g_j z_j + wd·θ)         (or sign / window momentum / torch.optim)
In place on a ``TorchProblem`` a q = 1 step is three noise passes over θ: +εz, −2εz, and
+εz − lr·g·z (the restore folded into the update, :mod:`bbopt.inplace`); memory: inference plus
three noise chunks.
``rule="conservative"`` (ZO-SGD-Cons, q = 1, 5 FE): also evaluate θ ∓ lr·g·z and keep the best of
{θ, θ − lr·g·z, θ + lr·g·z}. ``sparsity`` perturbs and updates only part of θ: Sparse MeZO's
small-magnitude mask (``mask="magnitude"``) or ZO-Bench's random gradient mask
(``mask="random"``), recomputed every ``mask_every`` steps (the mask costs 1 byte per parameter).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.options import OptionError, integer, number_in, one_of, positive, unused
from bbopt.params import ModelParams
from bbopt.perturbations import Clean, Direction, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.base import ZOEstimator, check_direction, log
from bbopt.strategies.zo.rules import RULES, SeedEstimate


class SeedEstimator(ZOEstimator):
    """Estimators whose estimate is (1/q) Σ_j g_j z(seed_j): the step logic MeZO and FG share."""

    direction: str  # the distribution of z (set by each subclass's __init__)

    def _seed_update(self, seeds: list[int], g: np.ndarray) -> None:
        g, clipped = self.clip_g(g)
        coefs = (g / len(seeds)).tolist()
        self.apply(SeedEstimate(seeds, coefs, self.direction))
        self.trajectory.record(self.step, "clipped" if clipped else "ok", self.lr_at(self.step), seeds, coefs,
                               direction=self.direction)
        log.debug("%s step %d: seeds %s g %s lr %g", self.name, self.step, seeds, coefs, self.lr_at(self.step))


class MeZO(SeedEstimator):
    """MeZO / ZO-SGD: in-place two-point SPSA; q directions, one/two-sided, sgd/sign/momentum/conservative/torch."""

    name = "mezo"
    rules = (*RULES, "conservative")
    renamed_options = {"noise": "direction"}

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 1e-3, eps: float = 1e-3,
                 q: int = 1, direction: str = "gaussian", two_sided: bool = True, rule: str = "sgd",
                 momentum: float | None = None, window: int | None = None, torch_optimizer: str | None = None,
                 torch_options: dict | None = None, weight_decay: float = 0.0, clip: float | None = None,
                 schedule: str = "constant", budget: int | None = None, sparsity: float | None = None,
                 mask: str | None = None, mask_every: int | None = None):
        owner = self.name
        self.cons = rule == "conservative"
        self.eps = positive(eps, "eps", owner)
        self.q = integer(q, "q", owner, minimum=1)
        if self.cons and self.q != 1:
            raise OptionError("q", f"{owner}: rule='conservative' (ZO-SGD-Cons) takes one direction: q=1, got {q!r}")
        if self.cons and weight_decay:
            raise unused("weight_decay", owner, "with rule='conservative' (it keeps one of three evaluated points)")
        self.direction = check_direction(direction, owner)
        self.two_sided = one_of(two_sided, "two_sided", owner, (True, False))
        self.fe_per_step = (5 if self.two_sided else 4) if self.cons else (2 * self.q if self.two_sided else self.q + 1)
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule,
                         budget=budget, rule=rule, momentum=momentum, window=window,
                         torch_optimizer=torch_optimizer, torch_options=torch_options)
        if sparsity is None:
            for name, value in (("mask", mask), ("mask_every", mask_every)):
                if value is not None:
                    raise unused(name, owner, "without sparsity (set sparsity to perturb part of θ)")
        self.sparsity = None if sparsity is None else number_in(sparsity, "sparsity", owner, 0.0, 1.0, high_open=True)
        self.mask_kind = one_of("magnitude" if mask is None else mask, "mask", owner, ("magnitude", "random"))
        self.mask_every = 1 if mask_every is None else integer(mask_every, "mask_every", owner, minimum=1)
        self._cons: tuple[int, float, float] | None = None  # (seed, g, L(θ)) between the two phases

    def _candidates(self) -> list[Spec]:
        t = self.step
        if self._cons is not None:
            seed, g, _ = self._cons
            return [Direction(t, seed, -self.lr_at(t) * g, self.direction),
                    Direction(t, seed, self.lr_at(t) * g, self.direction)]
        if self.sparsity is not None and t % self.mask_every == 0:
            self._refresh_mask(self.sparsity)
        specs: list[Spec] = [] if self.two_sided and not self.cons else [Clean(t)]
        for _ in range(self.q):
            s = self.new_seed()
            specs.append(Direction(t, s, self.eps, self.direction))
            if self.two_sided:
                specs.append(Direction(t, s, -self.eps, self.direction))
        return specs

    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if not self.guard_finite(values):
            self._cons = None
            self.step += 1
            return
        if self._cons is not None:
            self._choose(self._cons, values)
            return
        plus = [v for s, v in zip(specs, values) if isinstance(s, Direction) and s.scale > 0]
        seeds = [s.seed for s in specs if isinstance(s, Direction) and s.scale > 0]
        if self.two_sided:
            minus = [v for s, v in zip(specs, values) if isinstance(s, Direction) and s.scale < 0]
            g = (np.array(plus) - np.array(minus)) / (2 * self.eps)
        else:  # one-sided: specs[0] is Clean(t), values[0] = L(θ)
            g = (np.array(plus) - values[0]) / self.eps
        if self.cons:  # specs[0] is Clean(t) here too
            g, _ = self.clip_g(g)
            self._cons = (seeds[0], float(g[0]), float(values[0]))
            return
        self._seed_update(seeds, g)
        self.step += 1

    def _choose(self, cons: tuple[int, float, float], values: np.ndarray) -> None:
        """ZO-SGD-Cons: move to the best of θ, θ − lr·g·z, θ + lr·g·z (already evaluated); ``cons``: (seed, g, L(θ))."""
        seed, g, base = cons
        self._cons = None
        k = int(np.argmin([base, values[0], values[1]]))
        lr = self.lr_at(self.step)
        if k == 0:
            self.trajectory.record(self.step, "kept", lr, [seed], [0.0], direction=self.direction)
        else:
            coef = g if k == 1 else -g  # the SGD rule applies −lr·coef·z: exactly the evaluated candidate
            self.apply(SeedEstimate([seed], [coef], self.direction))
            self.trajectory.record(self.step, "ok", lr, [seed], [coef], direction=self.direction)
        self.step += 1

    def _refresh_mask(self, sparsity: float) -> None:
        self.space.set_mask({n: None for n in self.space.names})
        if self.mask_kind == "magnitude":
            self.space.magnitude_mask(sparsity)
        else:
            self.space.random_mask(1.0 - sparsity, self.gen)

    def reconstruct(self, space: ModelParams) -> int:
        if self.sparsity is not None:
            raise ValueError("reconstruct: masks recomputed during the run are not in the log (sparsity is set)")
        return super().reconstruct(space)

    def _extra_state(self) -> dict:
        return {"cons": None if self._cons is None else list(self._cons)}

    def _load_extra_state(self, state: dict) -> None:
        c: Any = state["cons"]
        self._cons = None if c is None else (int(c[0]), float(c[1]), float(c[2]))
