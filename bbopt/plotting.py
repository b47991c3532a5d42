"""Curves of one or more runs as a PNG, several runs overlaid.

Runs of problems that train (their run directory holds ``metrics.jsonl``, see
:mod:`bbopt.results`) get what a trainer shows: the training loss per step, smoothed by a
debiased exponential moving average (TensorBoard's), against forward-equivalents, beside the
dev metrics logged along the way. Other runs get the best loss so far against evaluations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bbopt.config import ConfigError
from bbopt.results import HISTORY, METRICS, History, read_history

#: metrics.jsonl keys that are positions, not values
_POSITION = ("eval", "round", "time")


def run_dirs_of(paths: list[Path]) -> list[Path]:
    """Run directories named directly, or inside a sweep directory."""
    found: list[Path] = []
    for path in paths:
        if (path / HISTORY).exists():
            found.append(path)
        elif path.is_dir() and (subs := sorted(p.parent for p in path.glob(f"*/{HISTORY}"))):
            found.extend(subs)
        else:
            raise ConfigError("run_dirs", f"{path} holds no {HISTORY} (not a run or sweep directory)")
    return found


def plot_runs(paths: list[Path], output: str | Path | None = None, logy: bool = False,
              smoothing: float = 0.98) -> Path:
    """Write the PNG (default ``<first run>/best.png``, or ``training.png`` for training runs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plot", "needs matplotlib: pip install 'bbopt[plots]'") from None
    dirs = run_dirs_of(paths)
    training = all((d / METRICS).exists() for d in dirs)
    if training:
        fig = _training_figure(plt, dirs, logy, smoothing)
    else:
        fig = _best_figure(plt, dirs, logy)
    out = Path(output) if output else dirs[0] / ("training.png" if training else "best.png")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _best_figure(plt: Any, dirs: list[Path], logy: bool) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run_dir in dirs:
        best = History(path=run_dir / HISTORY).best_so_far()
        if best.size:
            ax.plot(np.arange(1, best.size + 1), best, label=run_dir.name, linewidth=1.4)
    if logy:
        ax.set_yscale("symlog" if any(_has_nonpositive(d) for d in dirs) else "log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best loss so far")
    _finish(ax, len(dirs))
    return fig


def _training_figure(plt: Any, dirs: list[Path], logy: bool, smoothing: float) -> Any:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k, run_dir in enumerate(dirs):
        color = f"C{k % 10}"
        lines = read_history(run_dir / METRICS)
        steps = [(m["eval"], m["train_loss"]) for m in lines if m.get("train_loss") is not None]
        if steps:
            fe, loss = np.array(steps, dtype=float).T
            left.plot(fe, loss, color=color, alpha=0.15, linewidth=0.6)
            left.plot(fe, ema(loss, smoothing), color=color, linewidth=1.6, label=run_dir.name)
        names = sorted({key for m in lines for key in m if key not in _POSITION and key != "train_loss"})
        for j, name in enumerate(names):
            points = [(m["eval"], m[name]) for m in lines if m.get(name) is not None]
            if points:
                x, y = np.array(points, dtype=float).T
                right.plot(x, y, color=color, marker="os^vD"[j % 5], markersize=3, linewidth=1.2,
                           linestyle=("-", "--", ":", "-.")[j % 4], label=f"{run_dir.name}: {name}")
    if logy:
        left.set_yscale("log")
    left.set_xlabel("forward-equivalents (evaluations)")
    left.set_ylabel(f"training loss (EMA {smoothing:g}; raw faint)")
    right.set_xlabel("forward-equivalents (evaluations)")
    right.set_ylabel("dev metrics")
    _finish(left, len(dirs))
    _finish(right, len(dirs))
    return fig


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing): no pull towards 0 at the start."""
    out = np.empty(len(values))
    acc = 0.0
    for i, v in enumerate(values):
        acc = smoothing * acc + (1 - smoothing) * v
        out[i] = acc / (1 - smoothing ** (i + 1))
    return out


def _finish(ax: Any, n_runs: int) -> None:
    ax.grid(alpha=0.3)
    if n_runs <= 12 and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _has_nonpositive(run_dir: Path) -> bool:
    best = History(path=run_dir / HISTORY).best_so_far()
    finite = best[np.isfinite(best)]
    return bool(finite.size and finite.min() <= 0)
