"""Run results: the evaluation history, the run directory and its checkpoint.

A run directory holds ``config.yaml`` (the resolved config, for CLI runs) or
``run.json`` (what ``minimize`` was called with), ``history.jsonl`` (append-only, one line
per evaluation), ``metrics.jsonl`` for problems that train (one line per round their
``round_metrics`` answers: training loss, periodic dev metrics), ``best.json``,
``checkpoint.safetensors`` (written atomically) and ``result.json`` at the end. A line torn
by a crash is detected and dropped on reading.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bbopt.serialize import load_tree, save_tree, write_json_atomic

HISTORY = "history.jsonl"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.safetensors"
BEST = "best.json"
RESULT = "result.json"


def read_history(path: str | os.PathLike) -> list[dict]:
    """All complete records of a history file; a torn last line is dropped."""
    records: list[dict] = []
    path = Path(path)
    if not path.exists():
        return records
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        is_last = all(not rest.strip() for rest in lines[k + 1:])
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if is_last:  # torn by a crash mid-write: never data
                break
            raise ValueError(f"{path}: line {k + 1} is corrupt (not the last line, so not a torn write)") from None
    return records


class History:
    """The evaluations of a run, one record (dict) each, in evaluation order.

    Backed by the run directory's ``history.jsonl`` when there is one (read on demand,
    so a long run holds nothing in memory), else by an in-memory list.
    """

    def __init__(self, records: list[dict] | None = None, path: Path | None = None):
        self._records = records
        self._path = path

    def records(self) -> list[dict]:
        return self._records if self._records is not None else read_history(self._path)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self.records())

    def __getitem__(self, i: int) -> dict:
        return self.records()[i]

    def losses(self) -> np.ndarray:
        """Loss per evaluation, NaN where the evaluation failed."""
        return np.array([np.nan if r["loss"] is None else r["loss"] for r in self.records()], dtype=float)

    def best_so_far(self) -> np.ndarray:
        return np.array([np.inf if r["best"] is None else r["best"] for r in self.records()], dtype=float)

    def to_pandas(self) -> Any:
        """One row per evaluation (``eval``, ``id``, ``round``, ``loss``, ``status``, ``best``, ``time``, ...)."""
        return _pandas().DataFrame.from_records(self.records())


@dataclass
class Result:
    """What a run found: ``x``, ``fun``, counts, why it stopped, and its history."""

    x: Any
    fun: float
    n_evals: int
    n_failed: int
    n_rounds: int
    stop_reason: str
    elapsed: float
    history: History
    run_dir: Path | None = None
    seed: Any = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "fun": self.fun if math.isfinite(self.fun) else None,
            "n_evals": self.n_evals,
            "n_failed": self.n_failed,
            "n_rounds": self.n_rounds,
            "stop_reason": self.stop_reason,
            "elapsed": round(self.elapsed, 3),
            **self.extra,
        }

    def to_pandas(self) -> Any:
        """The history as a DataFrame, with :meth:`summary` in its ``attrs``."""
        frame = self.history.to_pandas()
        frame.attrs["summary"] = self.summary()
        return frame


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install pandas") from None
    return pandas


class RunDir:
    """Writes one run's directory: history lines, best, checkpoint, result."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._history_fh: Any = None
        self._metrics_fh: Any = None

    def create(self, description: dict, *, resume: bool, exist_ok: bool = False) -> None:
        existing = [p.name for p in self.path.iterdir()] if self.path.exists() else []
        if set(existing) - {"config.yaml"} and not resume and not exist_ok:
            raise FileExistsError(
                f"run directory {self.path} is not empty; resume it (bbopt resume {self.path}) or choose another"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / "run.json").exists() or not resume:
            write_json_atomic(self.path / "run.json", description)

    @property
    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def load_checkpoint(self) -> dict:
        return load_tree(self.path / CHECKPOINT)

    def rewind_history(self, n_evals: int) -> list[dict]:
        """Keep the first ``n_evals`` records on disk; return the ones after (and drop torn lines).
        Metrics lines logged after evaluation ``n_evals`` go too: the rounds run again."""
        records = read_history(self.path / HISTORY)
        if len(records) < n_evals:
            raise ValueError(f"{self.path}: history has {len(records)} records but the checkpoint needs {n_evals}")
        _rewrite(self.path / HISTORY, records[:n_evals])
        if (self.path / METRICS).exists():
            _rewrite(self.path / METRICS, [m for m in read_history(self.path / METRICS) if m["eval"] <= n_evals])
        return records[n_evals:]

    def append(self, records: list[dict]) -> None:
        if self._history_fh is None:
            self._history_fh = open(self.path / HISTORY, "a")  # noqa: SIM115 (kept open for the run)
        self._history_fh.write("".join(json.dumps(r) + "\n" for r in records))
        self._history_fh.flush()

    def append_metrics(self, record: dict) -> None:
        """One line of ``metrics.jsonl`` (``eval``: evaluations so far, then the problem's values)."""
        if self._metrics_fh is None:
            self._metrics_fh = open(self.path / METRICS, "a")  # noqa: SIM115 (kept open for the run)
        self._metrics_fh.write(json.dumps(record) + "\n")
        self._metrics_fh.flush()

    def save_checkpoint(self, tree: dict, best: dict) -> None:
        """History is synced first, so a checkpoint never counts evaluations not on disk."""
        for fh in (self._history_fh, self._metrics_fh):
            if fh is not None:
                os.fsync(fh.fileno())
        save_tree(self.path / CHECKPOINT, tree)
        write_json_atomic(self.path / BEST, best)

    def finish(self, summary: dict) -> None:
        write_json_atomic(self.path / RESULT, summary)
        self.close()

    def close(self) -> None:
        for fh in (self._history_fh, self._metrics_fh):
            if fh is not None:
                fh.close()
        self._history_fh = self._metrics_fh = None

    def history(self) -> History:
        return History(path=self.path / HISTORY)


def _rewrite(path: Path, records: list[dict]) -> None:
    """Replace a JSON-lines file atomically (synced before the rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
