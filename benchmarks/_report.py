"""Shared by the benchmark scripts: pin threads, describe the machine, append to RESULTS.md.

Every table appended here carries the exact command, the date, the machine (cores,
torch threads, GPU or not) and the package versions, as BENCHMARKS.md asks.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import platform
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_PACKAGES = ("numpy", "scipy", "torch", "cma", "nevergrad", "optuna", "joblib", "transformers", "dask")


def pin_threads(n: int = 1) -> int:
    """Pin torch's (and BLAS's, via env for child processes) thread count; returns ``n``."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def machine() -> str:
    gpu = "no GPU"
    threads = "n/a"
    try:
        import torch

        threads = str(torch.get_num_threads())
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load = "n/a"
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch threads {threads}, {gpu}, "
            f"load avg {load}, Python {platform.python_version()}")


def versions() -> str:
    out = []
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out.append(f"{name} {version(name)}")
    return ", ".join(out)


def command() -> str:
    argv = [Path(sys.argv[0]).as_posix()] + sys.argv[1:]
    rel = [a.split("/benchmarks/", 1)[-1] if "/benchmarks/" in a else a for a in argv]
    rel[0] = "benchmarks/" + Path(argv[0]).name
    return "python " + " ".join(shlex.quote(a) for a in rel)


def append(title: str, body: str, notes: str = "") -> None:
    """Append one section to RESULTS.md (file-locked: several scripts may run at once)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"\n## {title}\n\n`{command()}` — {stamp}\n\n"
               f"Machine: {machine()}. Versions: {versions()}.\n\n{body.rstrip()}\n")
    if notes:
        section += f"\n{notes.rstrip()}\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if fh.tell() == 0:
            fh.write("# Benchmark results\n\nAppended by the scripts in `benchmarks/`; each section "
                     "names the command that produced it. Ratios are measured side by side in one run.\n")
        fh.write(section)
        fcntl.flock(fh, fcntl.LOCK_UN)
    print(section)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
