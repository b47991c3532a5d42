"""Sweeps: many runs (seeds × options × problems) in parallel through joblib.

A sweep file is a run config plus ``grid:`` (dotted keys → lists of values; the
Cartesian product) and/or ``runs:`` (a list of explicit overrides). Each run gets its own
run directory under the sweep's ``out`` and one row in ``summary.jsonl`` (appended as
runs finish) and ``summary.csv``. Backends: joblib's ``loky`` processes on one machine,
or ``dask`` on a ``dask.distributed`` cluster (``scheduler`` address; without one a
LocalCluster is started) — run directories must then be on a filesystem the workers
share. Re-running a sweep skips finished runs and resumes interrupted ones.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bbopt.config import ConfigError, apply_overrides, set_dotted, validate
from bbopt.results import CHECKPOINT, RESULT
from bbopt.runner import CONFIG_FILE, prepare, resume, solve

#: a sweep whose worker dies re-dispatches the unfinished runs (each resumes from its checkpoint)
WORKER_DEATH_RETRIES = 2
SUMMARY_FIELDS = ("run", "status", "fun", "n_evals", "n_failed", "stop_reason", "elapsed", "seed", "error",
                  "overrides")


def expand(config: dict) -> list[tuple[str, dict, dict]]:
    """``(run name, overrides, config)`` for every run of a sweep config; checked up front."""
    grid = config.get("grid") or {}
    runs = config.get("runs") or [{}]
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError("grid", "must map dotted keys to non-empty lists, e.g. {seed: [0, 1, 2]}")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError("runs", "must be a list of mappings of dotted keys to values")
    base = {k: v for k, v in config.items() if k not in ("grid", "runs", "out")}
    out: list[tuple[str, dict, dict]] = []
    for explicit in runs:
        for combo in itertools.product(*grid.values()):
            overrides = {**explicit, **dict(zip(grid, combo))}
            run_config = apply_overrides(base, [])
            for key, value in overrides.items():
                set_dotted(run_config, str(key), value)
            name = run_name(len(out), overrides)
            try:
                run_config["seed"] = validate(run_config)["seed"]  # fixed now: same on every backend
            except ConfigError as err:
                raise ConfigError(err.field, f"{err} (in sweep run {name})") from None
            out.append((name, overrides, run_config))
    return out


def run_name(index: int, overrides: dict) -> str:
    """A safe directory name: never a path, never '..', whatever the config's values."""
    label = ",".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in overrides.items())
    label = re.sub(r"[^A-Za-z0-9._=,+-]", "_", label)[:80].strip(".")
    return f"{index:04d}" + (f"-{label}" if label else "")


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def run_one(name: str, overrides: dict, config: dict, out: str) -> dict:
    """One sweep run in a worker; never raises: failures become a summary row."""
    run_dir = Path(out) / name
    row: dict[str, Any] = {"run": name, "overrides": overrides}
    try:
        if (run_dir / RESULT).exists():
            return {**row, **_row_from_dir(run_dir), "status": "ok"}
        config = {**config, "progress": False}
        result = resume(run_dir) if (run_dir / CHECKPOINT).exists() else solve(config, out=run_dir)
        return {**row, **result.summary(), "seed": _seed_of(run_dir), "status": "ok", "error": None}
    except ConfigError as err:
        return {**row, "status": "bad-config", "error": str(err)}
    except Exception as err:  # a failed run must not sink the sweep
        return {**row, "status": "failed", "error": f"{type(err).__name__}: {err}"}


def sweep(config: dict, out: str | Path, n_jobs: int = 1, backend: str = "loky",
          scheduler: str | None = None) -> list[dict]:
    """Run every run of ``config``; returns the summary rows sorted by run name."""
    runs = expand(config)
    prepare(runs[0][2])  # one build up front: a bad problem/optimizer fails before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from joblib import Parallel, delayed

    rows: dict[str, dict] = {}
    death = "no result came back"
    with _backend(backend, scheduler, n_jobs), open(out / "summary.jsonl", "a") as fh:
        jobs = n_jobs if backend != "dask" else -1
        for _attempt in range(1 + WORKER_DEATH_RETRIES):
            todo = [r for r in runs if r[0] not in rows]
            if not todo:
                break
            parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
            try:
                for row in parallel(delayed(run_one)(name, ov, cfg, str(out)) for name, ov, cfg in todo):
                    rows[row["run"]] = row
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
            except Exception as err:  # a worker died: its runs resume from their checkpoints
                death = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        for name, ov, _ in runs:
            if name not in rows:
                rows[name] = {"run": name, "overrides": ov, "status": "failed",
                              "error": f"worker died {1 + WORKER_DEATH_RETRIES} times ({death})"}
                fh.write(json.dumps(rows[name]) + "\n")
    ordered = sorted(rows.values(), key=lambda r: r["run"])
    _write_csv(out / "summary.csv", ordered)
    return ordered


@contextmanager
def _backend(backend: str, scheduler: str | None, n_jobs: int) -> Iterator[None]:
    from joblib import parallel_config

    if backend != "dask":
        if scheduler:
            raise ConfigError("scheduler", "only applies to the dask backend")
        with parallel_config(backend=backend):
            yield
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("backend", "dask needs the distributed extra: pip install 'bbopt[distributed]'") from None
    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        workers = n_jobs if n_jobs > 0 else None
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)
    try:
        with parallel_config(backend="dask"):
            yield
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _row_from_dir(run_dir: Path) -> dict:
    summary = json.loads((run_dir / RESULT).read_text())
    summary.pop("best_x", None)
    return {**summary, "seed": _seed_of(run_dir), "error": None}


def _seed_of(run_dir: Path) -> Any:
    import yaml

    path = run_dir / CONFIG_FILE
    return yaml.safe_load(path.read_text()).get("seed") if path.exists() else None


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "overrides": json.dumps(row.get("overrides", {}))})
