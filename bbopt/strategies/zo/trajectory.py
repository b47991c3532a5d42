"""The per-step log of a ZO run: (step, status, lr, seeds, coefficients).

For seed-based estimators (MeZO, forward gradient) the log *is* the run: θ_T is θ_0 plus the
logged updates, each regenerated from its seeds (``mezo``'s ``reconstruct_updates`` idea), so a
run can be replayed from the initial weights, or shipped as a few numbers per step. The replay is
bit for bit when the run's perturbations left θ bit-identical (forward gradient; MeZO with
``exact=True``); with MeZO's default arithmetic ±ε round trip the trained weights also carry that
round trip's rounding, which the log does not hold: the replay agrees to a few ulps per step.
Dense estimators (CGE, likelihood ratio) log the estimate's norm instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bbopt.params import ModelParams
from bbopt.strategies.zo.rules import Rule, SeedEstimate

STATUS = ("ok", "clipped", "skipped-nonfinite", "kept")  # kept: ZO-SGD-Cons chose not to move


class Trajectory:
    """Append-only step log; ``records()`` gives one dict per step."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.status: list[int] = []
        self.lr: list[float] = []
        self.norm: list[float] = []
        self.seeds: list[list[int]] = []
        self.coefs: list[list[float]] = []
        self.direction = "gaussian"

    def __len__(self) -> int:
        return len(self.steps)

    def record(self, step: int, status: str, lr: float, seeds: Any = (), coefs: Any = (), norm: float = np.nan,
               direction: str | None = None) -> None:
        self.steps.append(int(step))
        self.status.append(STATUS.index(status))
        self.lr.append(float(lr))
        self.norm.append(float(norm))
        self.seeds.append([int(s) for s in seeds])
        self.coefs.append([float(c) for c in coefs])
        if direction is not None:
            self.direction = direction

    def records(self) -> list[dict]:
        return [{"step": s, "status": STATUS[k], "lr": lr, "seeds": sd, "g": c, "norm": n}
                for s, k, lr, sd, c, n in zip(self.steps, self.status, self.lr, self.seeds, self.coefs, self.norm)]

    def state_dict(self) -> dict:
        counts = np.array([len(s) for s in self.seeds], dtype=np.int64)
        return {"steps": np.array(self.steps, dtype=np.int64), "status": np.array(self.status, dtype=np.int8),
                "lr": np.array(self.lr, dtype=float), "norm": np.array(self.norm, dtype=float), "counts": counts,
                "seeds": np.array([s for ss in self.seeds for s in ss], dtype=np.int64),
                "coefs": np.array([c for cc in self.coefs for c in cc], dtype=float), "direction": self.direction}

    def load_state_dict(self, state: dict) -> None:
        self.steps = np.asarray(state["steps"]).tolist()
        self.status = np.asarray(state["status"]).tolist()
        self.lr = np.asarray(state["lr"]).tolist()
        self.norm = np.asarray(state["norm"]).tolist()
        ends = np.cumsum(np.asarray(state["counts"], dtype=np.int64))
        seeds, coefs = np.asarray(state["seeds"]).tolist(), np.asarray(state["coefs"]).tolist()
        starts = np.concatenate([[0], ends[:-1]]).astype(int)
        self.seeds = [seeds[a:b] for a, b in zip(starts, ends)]
        self.coefs = [coefs[a:b] for a, b in zip(starts, ends)]
        self.direction = state["direction"]


def replay(space: ModelParams, trajectory: Trajectory, rule: Rule, weight_decay: float) -> int:
    """Apply every logged update to ``space`` (at the run's initial θ) through ``rule``; returns steps applied."""
    applied = 0
    for k, status in enumerate(trajectory.status):
        if STATUS[status] not in ("ok", "clipped"):
            continue
        if not trajectory.seeds[k]:
            raise ValueError("replay: this trajectory has no seeds (a dense estimator); it cannot be replayed")
        rule.step(SeedEstimate(trajectory.seeds[k], trajectory.coefs[k], trajectory.direction), trajectory.lr[k],
                  weight_decay)
        applied += 1
    return applied
