"""Option grids over whole runs: e.g. the learning rate and ε of a ZO estimator, as a bbopt sweep.

A tool over runs (beside :mod:`bbopt.runner` and :mod:`bbopt.parallel`), not a strategy.

ZO runs live or die by lr (and ε): MeZO's authors tune both on a grid, and users who skip it
report "no convergence". :func:`search` runs every grid point (× seeds) for a short budget
through :func:`bbopt.parallel.sweep` (joblib locally, dask on a cluster; resumable), reads the
``scores.json`` a :class:`~bbopt.problems.TorchProblem` writes at the end of each run (e.g.
validation accuracy), and returns the grid point with the best mean score over seeds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np


def log_grid(low: float, high: float, n: int) -> list[float]:
    """``n`` log-spaced values from ``low`` to ``high`` (both included), rounded to 3 digits."""
    if not 0 < low < high or n < 2:
        raise ValueError(f"log_grid: need 0 < low < high and n >= 2, got {low}, {high}, {n}")
    return [float(f"{v:.3g}") for v in np.geomspace(low, high, n)]


def search(problem: dict, optimizer: dict, grid: dict[str, list], budget: int, out: str | Path, *,
           seeds: tuple[int, ...] = (0,), metric: str = "val/accuracy", maximize: bool = True, n_jobs: int = 1,
           backend: str = "loky") -> tuple[dict, list[dict]]:
    """Best optimizer options on ``grid`` (e.g. ``{"lr": log_grid(1e-4, 1e-1, 7)}``) and one row per point.

    ``problem`` / ``optimizer`` are config sections (``{"name": ..., **options}``); each row has the
    grid point, the mean and spread of ``metric`` over ``seeds``, and the per-seed values.
    """
    from bbopt.parallel import sweep

    if not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError("search: grid must map optimizer options to non-empty lists")
    config = {"problem": dict(problem), "optimizer": dict(optimizer), "budget": int(budget), "progress": False,
              "grid": {**{f"optimizer.{k}": list(v) for k, v in grid.items()}, "seed": list(seeds)}}
    summary = sweep(config, out, n_jobs=n_jobs, backend=backend)
    by_point: dict[str, list[float]] = defaultdict(list)
    for row in summary:
        point = {k.split(".", 1)[1]: v for k, v in row["overrides"].items() if k.startswith("optimizer.")}
        by_point[json.dumps(point, sort_keys=True)].append(_score(Path(out) / row["run"], metric, row))
    rows = []
    for key, values in by_point.items():
        finite = [v for v in values if math.isfinite(v)]
        rows.append({**json.loads(key), metric: float(np.mean(finite)) if finite else math.nan,
                     "std": float(np.std(finite)) if finite else math.nan, "values": values})
    ranked = sorted(rows, key=lambda r: (math.isnan(r[metric]), -r[metric] if maximize else r[metric]))
    best = {k: v for k, v in ranked[0].items() if k in grid}
    return best, ranked


def _score(run_dir: Path, metric: str, row: dict) -> float:
    """The run's ``metric`` from its ``scores.json`` (NaN for a failed or diverged run)."""
    path = run_dir / "scores.json"
    if row.get("status") != "ok" or not path.is_file():
        return math.nan
    scores = json.loads(path.read_text())
    if metric not in scores:
        raise ValueError(f"search: metric {metric!r} not in the run's scores {sorted(scores)}")
    value = scores[metric]
    return math.nan if value is None else float(value)
