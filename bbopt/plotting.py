"""Best-so-far curves of one or more runs, read from their ``history.jsonl``, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bbopt.config import ConfigError
from bbopt.results import HISTORY, History


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


def plot_runs(paths: list[Path], output: str | Path | None = None, logy: bool = False) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plot", "needs matplotlib: pip install 'bbopt[plots]'") from None
    dirs = run_dirs_of(paths)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run_dir in dirs:
        best = History(path=run_dir / HISTORY).best_so_far()
        if best.size == 0:
            continue
        ax.plot(np.arange(1, best.size + 1), best, label=run_dir.name, linewidth=1.4)
    if logy:
        ax.set_yscale("symlog" if any(_has_nonpositive(d) for d in dirs) else "log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best loss so far")
    ax.grid(alpha=0.3)
    if len(dirs) <= 12:
        ax.legend(fontsize=8)
    out = Path(output) if output else dirs[0] / "best.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _has_nonpositive(run_dir: Path) -> bool:
    best = History(path=run_dir / HISTORY).best_so_far()
    finite = best[np.isfinite(best)]
    return bool(finite.size and finite.min() <= 0)
