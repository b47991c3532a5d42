"""Run a validated config: build it, create its run directory, call ``minimize``.

Shared by ``bbopt solve``, ``bbopt resume`` and sweeps. The resolved config (defaults
filled in, a concrete seed) is written to ``config.yaml`` first, so every run directory
says exactly how to reproduce it and ``resume`` needs nothing else.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import yaml

from bbopt.config import ConfigError, build, validate
from bbopt.loop import minimize
from bbopt.results import Result

CONFIG_FILE = "config.yaml"
#: keys a resume may change (everything else must match the original run)
RESUMABLE_OVERRIDES = ("budget", "time_limit", "target", "target_gap", "progress", "n_jobs", "checkpoint_every",
                       "on_error", "on_nan", "eval_timeout")


def default_out(stem: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stem}-{stamp}"


def prepare(config: dict) -> tuple[dict, Any, Any]:
    """Validate and build everything before anything touches the disk."""
    resolved = validate(config)
    problem, optimizer = build(resolved)
    return resolved, problem, optimizer


def solve(config: dict, out: str | Path | None = None, stem: str = "run") -> Result:
    """Run ``config`` into ``out`` (or the config's ``out``, or ``runs/<stem>-<time>``)."""
    resolved, problem, optimizer = prepare(config)
    if out is None and resolved.get("out") is not None:
        safe_relative(resolved["out"], "out")
    run_dir = Path(out or resolved.get("out") or default_out(stem))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError("out", f"run directory {run_dir} is not empty; use `bbopt resume {run_dir}` or another out")
    resolved["out"] = str(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    return _minimize(resolved, problem, optimizer, run_dir, resume=False)


def safe_relative(path: str, field: str) -> Path:
    """A path named inside a config (which may come from someone else) stays below the
    working directory: no absolute paths, no '..'. Paths given on the command line are
    the user's own choice and are not restricted."""
    candidate = Path(path)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise ConfigError(field, f"a path in a config must be relative and without '..', got {path!r}; "
                                 "pass --out on the command line to write elsewhere")
    return candidate


def resume(run_dir: str | Path, overrides: dict | None = None) -> Result:
    """Continue the run in ``run_dir`` from its checkpoint (to the same result)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError("", f"{run_dir} is not a bbopt run directory (no {CONFIG_FILE})")
    config = yaml.safe_load(path.read_text())
    for key, value in (overrides or {}).items():
        if key not in RESUMABLE_OVERRIDES:
            raise ConfigError(key, f"cannot change on resume; changeable: {', '.join(RESUMABLE_OVERRIDES)}")
        config[key] = value
    resolved, problem, optimizer = prepare(config)
    if overrides:
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    return _minimize(resolved, problem, optimizer, run_dir, resume=True)


def _minimize(config: dict, problem: Any, optimizer: Any, run_dir: Path, resume: bool) -> Result:
    return minimize(
        problem, optimizer, config["budget"],
        target=config.get("target"), target_gap=config.get("target_gap"),
        time_limit=config.get("time_limit"), round_size=config.get("round_size"),
        n_jobs=config["n_jobs"], eval_timeout=config.get("eval_timeout"),
        on_error=config["on_error"], on_nan=config["on_nan"],
        run_dir=run_dir, resume=resume, checkpoint_every=config["checkpoint_every"],
        progress=config["progress"], record_x=config["record_x"],
        description={"problem": config["problem"], "optimizer": config["optimizer"]},
    )
