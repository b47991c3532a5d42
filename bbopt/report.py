"""Runs read back for people: the end-of-run summary, ``bbopt show`` and ``bbopt compare``.

Everything is read from the run directory's files (``config.yaml``/``run.json``,
``history.jsonl``, ``result.json`` and what the problem's ``finalize`` wrote), so an
unfinished, killed or old run is shown as well as one that just ended.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from bbopt.config import ConfigError
from bbopt.results import BEST, CHECKPOINT, HISTORY, RESULT, read_history
from bbopt.runner import CONFIG_FILE

#: files a problem's finalize writes, and where in them its scores are
SCORE_FILES: dict[str, Any] = {
    "scores.json": lambda d: d,                                             # TorchProblem: "test/accuracy"
    "prompt_report.json": lambda d: d.get("scores", {}),                    # prompt tuning: dev / test splits
    "recipe.yaml": lambda d: {k: d.get(k) for k in ("fitness", "test")},    # merging: the best recipe's scores
    "sor_summary.json": lambda d: d,                                        # SOR: mean iterations, baselines
}
#: outputs worth pointing at, in the order they are listed
OUTPUT_FILES = ("merged.safetensors", "model.safetensors", "recipe.yaml", "scores.json", "prompt_report.json",
                "systems.csv", "sor_summary.json", "metrics.jsonl", "training.png", "best.png")
MAIN_FILES = (CONFIG_FILE, HISTORY, RESULT, BEST, CHECKPOINT)
METRICS_FILE = "metrics.jsonl"
#: the training loss shown is the mean over this many last logged steps (one step's is noisy)
SMOOTH_STEPS = 50


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """What a run directory says about its run (raises ConfigError if it is not one)."""
    path = Path(run_dir)
    if not (path / HISTORY).exists() and not (path / CONFIG_FILE).exists():
        hint = f"; it is a sweep directory: bbopt compare {path}" if (path / "summary.jsonl").exists() else ""
        raise ConfigError("run_dir", f"{path} is not a bbopt run directory (no {CONFIG_FILE} or {HISTORY}){hint}")
    config = _load(path / CONFIG_FILE) or _load(path / "run.json") or {}
    result = _load(path / RESULT)
    records = read_history(path / HISTORY)
    ok = [r for r in records if r.get("status") == "ok" and r.get("loss") is not None]
    best = min(ok, key=lambda r: r["loss"]) if ok else None
    return {
        "run_dir": path,
        "config": config,
        "finished": result is not None,
        "stop_reason": (result or {}).get("stop_reason"),
        "n_evals": len(records),
        "n_failed": len(records) - len(ok),
        "budget": config.get("budget"),
        "elapsed": (result or {}).get("elapsed", records[-1]["time"] if records else 0.0),
        "best": None if best is None else best["loss"],
        "best_eval": None if best is None else best["eval"],
        "best_x": (result or {}).get("best_x", None if best is None else best.get("x")),
        "scores": scores_of(path),
        "metrics": latest_metrics(path),
        "outputs": [path / name for name in OUTPUT_FILES if (path / name).exists()],
    }


def scores_of(run_dir: Path) -> dict[str, float]:
    """Every number the problem's end-of-run files report, as flat ``a/b`` keys."""
    scores: dict[str, float] = {}
    for name, pick in SCORE_FILES.items():
        data = _load(run_dir / name)
        if isinstance(data, dict):
            scores.update(_flatten(pick(data)))
    return scores


def latest_metrics(run_dir: Path) -> dict[str, tuple[float, int]]:
    """From ``metrics.jsonl`` (training problems): each metric's latest value and the evaluation
    it was logged at; ``train_loss`` as the mean of the last ``SMOOTH_STEPS`` steps."""
    lines = read_history(run_dir / METRICS_FILE)
    latest: dict[str, tuple[float, int]] = {}
    for line in lines:
        latest.update({k: (v, line["eval"]) for k, v in line.items()
                       if k not in ("eval", "round", "time") and isinstance(v, (int, float))})
    losses = [line["train_loss"] for line in lines if isinstance(line.get("train_loss"), (int, float))]
    if losses:
        latest["train_loss"] = (sum(losses[-SMOOTH_STEPS:]) / len(losses[-SMOOTH_STEPS:]), latest["train_loss"][1])
    return latest


def summary_text(info: dict[str, Any], source: str | None = None) -> str:
    """The short human summary printed at the end of ``bbopt solve``/``resume``."""
    run_dir = info["run_dir"]
    state = f"stopped on {info['stop_reason']}" if info["finished"] else "not finished"
    lines = [f"{state} after {info['n_evals']} evaluations ({info['n_failed']} failed) in {_duration(info['elapsed'])}",
             f"{_best_label(info)} {_num(info['best'])}" + (f" at evaluation {info['best_eval']}"
                                                          if info["best_eval"] is not None
                                                          else " (no evaluation succeeded)")]
    lines += _score_lines(info)
    lines.append(f"run directory {run_dir}")
    files = [name for name in MAIN_FILES if (run_dir / name).exists()] + [p.name for p in info["outputs"]]
    lines.append("  " + "  ".join(files))
    lines.append(f"show:   bbopt show {run_dir}")
    lines.append(f"plot:   bbopt plot {run_dir}")
    lines.append(f"resume: bbopt resume {run_dir}" + ("   (add --set budget=N to go further)" if info["finished"] else ""))
    return "\n".join(lines)


def show_text(info: dict[str, Any]) -> str:
    """``bbopt show``: the resolved config, progress, best, scores and outputs of one run."""
    first = ("problem", "optimizer", "budget", "seed")
    config = {k: info["config"][k] for k in first if k in info["config"]}
    config.update({k: v for k, v in info["config"].items() if v is not None and k not in first})
    budget = info["budget"]
    progress = f"{info['n_evals']}" + (f" / {budget}" if budget else "") + " evaluations"
    lines = [f"run {info['run_dir']}", "config:"]
    lines += ["  " + line for line in yaml.safe_dump(config, sort_keys=False).strip().splitlines()]
    lines += [f"progress: {progress}, {info['n_failed']} failed, {_duration(info['elapsed'])}, "
              + (f"stopped on {info['stop_reason']}" if info["finished"] else "not finished (bbopt resume continues it)"),
              f"{_best_label(info)}: {_num(info['best'])}" + (f" at evaluation {info['best_eval']}"
                                                           if info["best_eval"] is not None else "")]
    if info["best_x"] is not None:
        lines.append(f"best x: {_short_x(info['best_x'])}")
    if info["scores"] or info["metrics"]:
        lines.append("scores:")
        lines += _score_lines(info)
    if info["outputs"]:
        lines.append("outputs:")
        lines += [f"  {p}" for p in info["outputs"]]
    return "\n".join(lines)


def compare_rows(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: what ``bbopt compare`` tabulates (and ``--json`` prints)."""
    rows = []
    for info in infos:
        problem = info["config"].get("problem")
        optimizer = info["config"].get("optimizer")
        rows.append({
            "run": info["run_dir"].name,
            "problem": problem.get("name") if isinstance(problem, dict) else problem,
            "optimizer": optimizer.get("name") if isinstance(optimizer, dict) else optimizer,
            "seed": info["config"].get("seed"),
            "evals": info["n_evals"], "failed": info["n_failed"],
            "best": info["best"], "best_eval": info["best_eval"],
            "stop": info["stop_reason"] or "unfinished", "seconds": round(float(info["elapsed"]), 1),
            **{k: v for k, (v, _) in info["metrics"].items()}, **info["scores"],
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned plain-text table (columns: the union of the rows' keys)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _best_label(info: dict[str, Any]) -> str:
    """A training run's losses are mini-batch losses of perturbed weights: its scores say more."""
    return "lowest mini-batch loss of a candidate" if "train_loss" in info["metrics"] else "best loss"


def _score_lines(info: dict[str, Any]) -> list[str]:
    """The problem's final scores, then the training metrics logged last (not already scored)."""
    lines = [f"  {key} = {_num(value)}" for key, value in info["scores"].items()]
    for key, (value, at) in info["metrics"].items():
        if key not in info["scores"]:
            smoothed = f", mean of the last {SMOOTH_STEPS} steps" if key == "train_loss" else ""
            lines.append(f"  {key} = {_num(value)}   (metrics.jsonl, evaluation {at}{smoothed})")
    return lines


def _load(path: Path) -> Any:
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def _flatten(value: Any, key: str = "") -> dict[str, float]:
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for sub_key, sub in value.items():
            out.update(_flatten(sub, f"{key}/{sub_key}" if key else str(sub_key)))
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {key: value}
    return {}


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def _cell(value: Any) -> str:
    return _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else \
        ("-" if value is None else str(value))


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _short_x(x: Any, limit: int = 8) -> str:
    if isinstance(x, list) and len(x) > limit:
        head = ", ".join(_cell(v) for v in x[:limit])
        return f"[{head}, … ({len(x)} values)]"
    if isinstance(x, list):
        return "[" + ", ".join(_cell(v) for v in x) + "]"
    return _cell(x) if isinstance(x, (int, float)) else json.dumps(x)[:200]
