"""MeZO / ZO-SGD: two-point SPSA done in place (Malladi et al. 2023; ZO-Bench variants, Zhang et al. 2024).

One step draws q seeds; z_j is regenerated from seed_j whenever needed, never stored.
    two-sided:  g_j = (L(θ + εz_j) − L(θ − εz_j)) / 2ε        (2q FE)
    one-sided:  g_j = (L(θ + εz_j) − L(θ)) / ε                (q + 1 FE)
    update:     θ ← θ − lr·((1/q) Σ_j g_j z_j + wd·θ)         (or sign / window momentum / torch.optim)
``rule="cons"`` (ZO-SGD-Cons, q = 1, 5 FE): also evaluate θ ∓ lr·g·z and keep the best of
{θ, θ − lr·g·z, θ + lr·g·z}. ``sparsity`` perturbs and updates only part of θ: Sparse MeZO's
small-magnitude mask (``mask="magnitude"``) or ZO-Bench's random gradient mask
(``mask="random"``), recomputed every ``mask_every`` steps (the mask costs 1 byte per parameter).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.params import ModelParams
from bbopt.perturbations import NOISE_KINDS, Clean, Direction, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.base import ZOEstimator, _positive, check_int, log
from bbopt.strategies.zo.rules import SeedEstimate


class SeedEstimator(ZOEstimator):
    """Estimators whose estimate is (1/q) Σ_j g_j z(seed_j): the step logic MeZO and FG share."""

    noise: str  # the noise kind of z (set by each subclass's __init__)

    def _seed_update(self, seeds: list[int], g: np.ndarray) -> None:
        g, clipped = self.clip_g(g)
        coefs = (g / len(seeds)).tolist()
        self.apply(SeedEstimate(seeds, coefs, self.noise))
        self.trajectory.record(self.step, "clipped" if clipped else "ok", self.lr_at(self.step), seeds, coefs,
                               noise=self.noise)
        log.debug("%s step %d: seeds %s g %s lr %g", type(self).__name__, self.step, seeds, coefs, self.lr_at(self.step))


class MeZO(SeedEstimator):
    """MeZO / ZO-SGD: in-place two-point SPSA; q directions, one/two-sided, sgd/sign/momentum/cons/torch rules."""

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 1e-3, eps: float = 1e-3,
                 q: int = 1, noise: str = "gaussian", two_sided: bool = True, rule: str = "sgd",
                 momentum: float = 0.9, window: int = 10, torch_optimizer: str = "adam",
                 torch_options: dict | None = None, weight_decay: float = 0.0, clip: float | None = None,
                 schedule: str = "constant", budget: int | None = None, sparsity: float | None = None,
                 mask: str = "magnitude", mask_every: int = 1):
        self.cons = rule == "cons"
        if self.cons and (q != 1 or weight_decay):
            raise ValueError("rule='cons' (ZO-SGD-Cons) needs q=1 and weight_decay=0")
        self.eps = _positive(eps, "eps")
        self.q = check_int(q, "q")
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
        self.noise, self.two_sided = noise, bool(two_sided)
        self.fe_per_step = (5 if self.two_sided else 4) if self.cons else (2 * self.q if self.two_sided else self.q + 1)
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule,
                         budget=budget, rule="sgd" if self.cons else rule, momentum=momentum, window=window,
                         torch_optimizer=torch_optimizer, torch_options=torch_options)
        if sparsity is not None and not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1) or None, got {sparsity!r}")
        if mask not in ("magnitude", "random"):
            raise ValueError(f"mask must be 'magnitude' or 'random', got {mask!r}")
        self.sparsity, self.mask_kind, self.mask_every = sparsity, mask, check_int(mask_every, "mask_every")
        self._cons: tuple[int, float, float] | None = None  # (seed, g, L(θ)) between the two phases

    def _candidates(self) -> list[Spec]:
        t = self.step
        if self._cons is not None:
            seed, g, _ = self._cons
            return [Direction(t, seed, -self.lr_at(t) * g, self.noise), Direction(t, seed, self.lr_at(t) * g, self.noise)]
        if self.sparsity is not None and t % self.mask_every == 0:
            self._refresh_mask(self.sparsity)
        specs: list[Spec] = [] if self.two_sided and not self.cons else [Clean(t)]
        for _ in range(self.q):
            s = self.new_seed()
            specs.append(Direction(t, s, self.eps, self.noise))
            if self.two_sided:
                specs.append(Direction(t, s, -self.eps, self.noise))
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
            self.trajectory.record(self.step, "kept", lr, [seed], [0.0], noise=self.noise)
        else:
            coef = g if k == 1 else -g  # the SGD rule applies −lr·coef·z: exactly the evaluated candidate
            self.apply(SeedEstimate([seed], [coef], self.noise))
            self.trajectory.record(self.step, "ok", lr, [seed], [coef], noise=self.noise)
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
