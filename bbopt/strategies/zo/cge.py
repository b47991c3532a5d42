"""Coordinate-wise gradient estimation, CGE (DeepZero: Chen et al., ICLR 2024, OPTML-Group/DeepZero).

One step evaluates the clean point and one forward difference per coordinate of a sparse set S:
    g_i = (L(θ + ε e_i) − L(θ)) / ε  for i ∈ S,  g_i = 0 elsewhere     (|S| + 1 FE, deterministic)
    θ ← θ − lr·(g + wd·θ)   (rule ``sgd``; ``torch`` with torch_optimizer='sgd' and momentum is DeepZero's)
S is a random mask inside each tensor at its density, redrawn every ``mask_every`` steps; the
densities are uniform (``layer_density="uniform"``) or from ZO-GraSP (``"grasp"``: two extra
rounds of ``grasp_q`` + 1 FE first, :mod:`.grasp`). ``density=1`` is dense CGE. The problem
evaluates the coordinates in batched forwards, restarting at the owning layer (feature reuse)
when the model is an ``nn.Sequential``.
"""

from __future__ import annotations

import numpy as np
import torch

from bbopt.options import integer, number_in, one_of, positive, unused
from bbopt.params import ModelParams
from bbopt.perturbations import Clean, Coordinate, Direction, Spec
from bbopt.seeding import SeedLike
from bbopt.strategies.zo.base import ZOEstimator
from bbopt.strategies.zo.grasp import layer_ratios, rge
from bbopt.strategies.zo.rules import DenseEstimate


class CGE(ZOEstimator):
    """DeepZero CGE: forward differences on a sparse coordinate set (ZO-GraSP densities, feature reuse)."""

    name = "cge"
    rules = ("sgd", "sign", "torch")
    renamed_options = {"mu": "eps"}

    def __init__(self, space: ModelParams, seed: SeedLike = None, *, lr: float = 0.1, eps: float = 5e-3,
                 density: float = 1.0, layer_density: str | None = None, mask_every: int | None = None,
                 grasp_q: int | None = None, rule: str = "sgd", torch_optimizer: str | None = None,
                 torch_options: dict | None = None, weight_decay: float = 0.0, clip: float | None = None,
                 schedule: str = "constant", budget: int | None = None):
        owner = self.name
        self.eps = positive(eps, "eps", owner)
        self.density = number_in(density, "density", owner, 0.0, 1.0, low_open=True)
        if self.density == 1.0:
            for name, value in (("layer_density", layer_density), ("mask_every", mask_every), ("grasp_q", grasp_q)):
                if value is not None:
                    raise unused(name, owner, "with density=1 (dense CGE estimates every coordinate)")
        layer_density = one_of("uniform" if layer_density is None else layer_density, "layer_density", owner,
                               ("uniform", "grasp"))
        if layer_density == "uniform" and grasp_q is not None:
            raise unused("grasp_q", owner, "with layer_density='uniform' (only 'grasp' scores the layers)")
        self.mask_every = 10 if mask_every is None else integer(mask_every, "mask_every", owner, minimum=1)
        self.grasp_q = 32 if grasp_q is None else integer(grasp_q, "grasp_q", owner, minimum=1)
        self.phase = "grasp0" if layer_density == "grasp" else "cge"
        self.ratios = [self.density] * len(space.tensors)
        self.fe_per_step = 1 + sum(max(1, round(r * p.numel())) for r, p in zip(self.ratios, space.tensors))
        super().__init__(space, seed, lr=lr, weight_decay=weight_decay, clip=clip, schedule=schedule, budget=budget,
                         rule=rule, torch_optimizer=torch_optimizer, torch_options=torch_options)
        self.coords: list[torch.Tensor] | None = None
        self._drawn_at = 0
        self._grasp: dict = {}

    # ------------------------------------------------------------ candidates
    def _candidates(self) -> list[Spec]:
        t = self.step
        if self.phase != "cge":
            if self.phase == "grasp0":
                self._grasp["seeds"] = [self.new_seed() for _ in range(self.grasp_q)]
            return [Clean(t), *(Direction(t, s, self.eps, "gaussian") for s in self._grasp["seeds"])]
        if self.coords is None or t - self._drawn_at >= self.mask_every:
            self.coords = self._draw(t)
        return [Clean(t), *(Coordinate(t, ti, i, self.eps) for ti, idx in enumerate(self.coords)
                            for i in idx.tolist())]

    def _draw(self, t: int) -> list[torch.Tensor]:
        """A random coordinate set inside each tensor at its density (within the space's mask)."""
        coords = []
        for ti, (p, r) in enumerate(zip(self.space.tensors, self.ratios)):
            mask = self.space.masks[ti]
            allowed = torch.arange(p.numel()) if mask is None else mask.view(-1).cpu().nonzero().view(-1)
            k = max(1, round(r * allowed.numel()))
            pick = torch.randperm(allowed.numel(), generator=self.gen)[:k]
            coords.append(allowed[pick].sort().values)
        self._drawn_at = t
        self.fe_per_step = 1 + sum(c.numel() for c in coords)
        return coords

    # --------------------------------------------------------------- tell
    def _complete(self, specs: list[Spec], values: np.ndarray) -> None:
        if self.phase != "cge":
            self._grasp_round(values)
            return
        if self.guard_finite(values):
            grads = {ti: torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                     for ti, p in enumerate(self.space.tensors)}
            g = (values[1:] - values[0]) / self.eps
            for spec, gi in zip(specs[1:], g.tolist()):
                assert isinstance(spec, Coordinate), "a CGE step is Clean then coordinates"
                grads[spec.tensor].view(-1)[spec.index] = gi
            norm = float(np.sqrt((g ** 2).sum()))
            grads, clipped = self.clip_dense(grads, norm)
            self.apply(DenseEstimate(grads))
            self.trajectory.record(self.step, "clipped" if clipped else "ok", self.lr_at(self.step), norm=norm)
        self.step += 1

    def _grasp_round(self, values: np.ndarray) -> None:
        """ZO-GraSP: g₀ at θ, then g₁ at θ + ε·g₀ (same seeds, same batch); then layer ratios."""
        if not np.isfinite(values).all():  # no score: fall back to uniform densities
            self._end_grasp()
            return
        est = rge(self.space, self._grasp["seeds"], float(values[0]), values[1:].tolist(), self.eps)
        if self.phase == "grasp0":
            self._grasp.update(g0=est, theta=[p.detach().clone() for p in self.space.tensors])
            self.space.add_dense_(est, self.eps)
            self.phase = "grasp1"
            return
        hg = {ti: (est[ti] - self._grasp["g0"][ti]) / self.eps for ti in est}
        self.ratios = layer_ratios(self._grasp["theta"], hg, self.density)
        self._end_grasp()

    def _end_grasp(self) -> None:
        if "theta" in self._grasp:
            with torch.no_grad():
                for p, saved in zip(self.space.tensors, self._grasp["theta"]):
                    p.copy_(saved)
            self.space.version += 1
        self._grasp, self.phase = {}, "cge"
        self.step += 1

    # --------------------------------------------------------------- state
    def _extra_state(self) -> dict:
        grasp = {k: (list(v.values()) if k == "g0" else v) for k, v in self._grasp.items()}
        return {"phase": self.phase, "ratios": list(self.ratios), "drawn_at": self._drawn_at, "grasp": grasp,
                "coords": None if self.coords is None else list(self.coords)}

    def _load_extra_state(self, state: dict) -> None:
        self.phase, self.ratios, self._drawn_at = state["phase"], list(state["ratios"]), int(state["drawn_at"])
        grasp = dict(state["grasp"])
        if "g0" in grasp:
            grasp["g0"] = dict(enumerate(grasp["g0"]))
        if "seeds" in grasp:
            grasp["seeds"] = [int(s) for s in grasp["seeds"]]
        self._grasp = grasp
        self.coords = None if state["coords"] is None else [torch.as_tensor(c) for c in state["coords"]]
        if self.coords is not None:
            self.fe_per_step = 1 + sum(c.numel() for c in self.coords)
