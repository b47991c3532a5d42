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
