"""Best-dev prompt selection for BBT / BBTv2 (the "true few-shot" model selection).

BBT checks the dev split every ``dev_every`` (100) calls and keeps the prompt with the best
dev accuracy (PR #9 of the reference code switched the criterion from dev loss to
accuracy). Here the candidate checked is the best-training one so far (not whichever
candidate happens to be evaluated at that call); ties in dev accuracy go to the lower dev
loss. All of it is plain arrays and numbers, so a checkpoint carries it and a resumed run
selects exactly what an uninterrupted run selects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


class PromptTracker:
    """Counts calls, tracks the best-training z and, every ``dev_every`` calls, the best-dev z."""

    def __init__(self, dev_every: int):
        self.dev_every = int(dev_every)  # 0: no dev checks
        self.n_calls = 0
        self.train_loss = math.inf
        self.train_z: np.ndarray | None = None
        self.dev_acc = -math.inf
        self.dev_loss = math.inf
        self.dev_z: np.ndarray | None = None
        self.log: list[tuple[int, float, float, float]] = []  # (calls, train loss, dev acc, dev loss)
        self._checked: tuple[np.ndarray, float, float] | None = None

    def record(self, z: np.ndarray, losses: np.ndarray, dev_score: Callable[[np.ndarray], tuple[float, float]]) -> None:
        """After a population ``z: (P, D)`` with training ``losses: (P,)``; ``dev_score(z) -> (acc, loss)``."""
        marks_before = self.n_calls // self.dev_every if self.dev_every else 0
        self.n_calls += len(z)
        finite = np.isfinite(losses)
        if finite.any():
            i = int(np.argmin(np.where(finite, losses, np.inf)))
            if losses[i] < self.train_loss:
                self.train_loss, self.train_z = float(losses[i]), np.array(z[i], dtype=float)
        if self.dev_every and self.n_calls // self.dev_every > marks_before and self.train_z is not None:
            self._check_dev(dev_score)

    def _check_dev(self, dev_score: Callable[[np.ndarray], tuple[float, float]]) -> None:
        z = self.train_z
        assert z is not None, "record() checks dev only once a finite training loss was seen"
        if self._checked is not None and np.array_equal(self._checked[0], z):
            acc, loss = self._checked[1], self._checked[2]
        else:
            acc, loss = dev_score(z)
            self._checked = (z, acc, loss)
        self.log.append((self.n_calls, self.train_loss, acc, loss))
        if acc > self.dev_acc or (acc == self.dev_acc and loss < self.dev_loss):
            self.dev_acc, self.dev_loss, self.dev_z = acc, loss, z.copy()

    def selected(self, fallback: Any = None) -> tuple[np.ndarray | None, str]:
        """The prompt to test: best-dev, else ``fallback`` (the run's best x), else best-training."""
        if self.dev_z is not None:
            return self.dev_z, f"best dev accuracy ({self.dev_acc:.4f}) of {len(self.log)} dev checks"
        if fallback is not None:
            return np.asarray(fallback, dtype=float), "the run's best training loss (no dev check yet)"
        if self.train_z is not None:
            return self.train_z, "best training loss (no dev check yet)"
        return None, "nothing evaluated"

    def history(self) -> list[dict]:
        return [{"calls": c, "train_loss": t, "dev_accuracy": a, "dev_loss": lo} for c, t, a, lo in self.log]

    def state_dict(self) -> dict:
        return {
            "n_calls": self.n_calls, "train_loss": self.train_loss, "train_z": self.train_z,
            "dev_acc": self.dev_acc, "dev_loss": self.dev_loss, "dev_z": self.dev_z,
            "log": np.asarray(self.log, dtype=float).reshape(-1, 4),
        }

    def load_state_dict(self, state: dict) -> None:
        self.n_calls = int(state["n_calls"])
        self.train_loss = float(state["train_loss"])
        self.train_z = None if state["train_z"] is None else np.asarray(state["train_z"], dtype=float)
        self.dev_acc, self.dev_loss = float(state["dev_acc"]), float(state["dev_loss"])
        self.dev_z = None if state["dev_z"] is None else np.asarray(state["dev_z"], dtype=float)
        self.log = [(int(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in np.asarray(state["log"])]
        self._checked = None
