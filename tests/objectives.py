"""User-style objectives for the engine tests, loaded by ``module:attr`` from configs."""

import os
import time

import numpy as np

from bbopt import Box, Problem


def slow_sphere(x):
    """A 2 ms sphere: slow enough that a kill lands mid-run."""
    time.sleep(0.002)
    return float(np.sum(np.asarray(x) ** 2))


def sleepy_sphere(x):
    """A 0.2 s sphere, for parallel speed-up checks."""
    time.sleep(0.2)
    return float(np.sum(np.asarray(x) ** 2))


def flaky(x):
    """Raises on a deterministic subset of candidates and returns NaN on another."""
    x = np.asarray(x)
    if x[0] > 3.0:
        raise RuntimeError("simulator diverged")
    if x[0] < -3.0:
        return float("nan")
    return float(np.sum(x**2))


def pid_objective(x):
    """Returns the worker's process id as a side channel (the loss is still the sphere)."""
    return float(np.sum(np.asarray(x) ** 2)) + 0.0 * os.getpid()


class Quadratic(Problem):
    """A user Problem class with options, for ``module:attr`` loading."""

    def __init__(self, dim: int = 3, shift: float = 1.0):
        self.space = Box(-5, 5, dim=dim)
        self.shift = shift
        self.optimum = 0.0

    def evaluate(self, batch):
        x = np.asarray(batch)
        return np.sum((x - self.shift) ** 2, axis=1)


_CALLS = {"n": 0}


def fails_after_100(x):
    """A sphere that raises from its 101st call in this process (until told to recover)."""
    _CALLS["n"] += 1
    if _CALLS["n"] > 100 and not os.environ.get("BBOPT_TEST_RECOVERED"):
        raise RuntimeError("license server went away")
    return float(np.sum(np.asarray(x) ** 2))


def hangs_on_negative(x):
    """Hangs (sleeps for an hour) when x[0] < -4: the per-evaluation timeout must catch it."""
    if x[0] < -4.0:
        time.sleep(3600)
    return float(np.sum(np.asarray(x) ** 2))


def kills_worker_on_positive(x):
    """Kills its own process when x[0] > 4 (a segfaulting simulator, say)."""
    if x[0] > 4.0:
        os._exit(13)
    return float(np.sum(np.asarray(x) ** 2))


def kills_worker_once(x):
    """Kills its worker the first time it runs in a sweep whose marker file is missing."""
    marker = os.environ.get("BBOPT_TEST_KILL_MARKER")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(9)
    return float(np.sum(np.asarray(x) ** 2))


def returns_garbage(x):
    """Returns something that is not one number, by kind of candidate."""
    kind = int(abs(x[0]) * 10) % 5
    return [None, "1.0", [1.0, 2.0], float("inf"), float(np.sum(np.asarray(x) ** 2))][kind]


class Stream(Problem):
    """A sequential stream (like the heat equation's): round t must be evaluated at step t, and
    evaluating advances the step — state that only the main process's copy may change."""

    evaluate_has_side_effects = True

    def __init__(self, dim: int = 2):
        self.space = Box(-1.0, 1.0, dim=dim)
        self.step = 0

    def evaluate(self, batch):
        if batch.round != self.step:
            raise RuntimeError(f"the stream is sequential: asked for step {batch.round} at step {self.step}")
        self.step += 1
        return np.sum(np.asarray(batch.x) ** 2, axis=1) + self.step

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state.get("step", 0))


class Recommends(Quadratic):
    """A problem built for CMA-ES with σ₀ = 0.05 and λ = 6, and for block with small inner steps."""

    recommended = {"cma": {"sigma0": 0.05, "popsize": 6},
                   "block": {"n_blocks": 2, "inner_options": {"sigma0": 0.05, "popsize": 6}}}
