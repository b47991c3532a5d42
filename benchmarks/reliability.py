"""Reliability: faults injected per kind, runs killed and resumed, bad inputs, load and scale.

Runs the long part of the reliability suite (the fast part is ``tests/reliability``) and
appends a "Reliability" table to RESULTS.md:

- SIGKILL of ``bbopt solve`` at random points (default 20 times), then ``bbopt resume``:
  the history must equal an uninterrupted run's (no evaluation lost or duplicated);
- fault kinds injected into objectives (raise, NaN, inf, None, wrong shape, hang past the
  timeout, kill the worker) and a worker killed mid-sweep: each must be recorded once;
- the bad-config corpus (tests/data/bad_configs): each must exit 2 with its message;
- a sweep of 1,000 short runs on joblib/loky and on a dask LocalCluster (2 workers):
  every run recorded exactly once, identical results across backends;
- a 100,000-evaluation run: resident memory and loop time per 1,000 evaluations at
  20k/60k/100k evaluations (flat = history streamed, no per-ask scans).

    python benchmarks/reliability.py [--kills 20] [--sweep-runs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from _report import append, pin_threads, table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])

from bbopt import Box, minimize  # noqa: E402
from bbopt.parallel import sweep  # noqa: E402
from bbopt.results import read_history  # noqa: E402

import objectives  # noqa: E402


def _strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_and_resume(kills: int, tmp: Path) -> list:
    config = {"problem": {"name": "objectives:slow_sphere", "space": {"lower": -5, "upper": 5, "dim": 4}},
              "optimizer": "cma", "budget": 600, "seed": 5, "checkpoint_every": 0.05}
    cfg = tmp / "kill.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert _cli("solve", str(cfg), "--out", str(tmp / "reference")).wait() == 0
    expected = _strip(read_history(tmp / "reference" / "history.jsonl"))
    rng = random.Random(1)
    resumed = identical = lost = duplicated = 0
    for k in range(kills):
        out = tmp / f"killed{k}"
        proc = _cli("solve", str(cfg), "--out", str(out))
        while not (out / "history.jsonl").exists() and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if _cli("resume", str(out)).wait() == 0:
            resumed += 1
        got = _strip(read_history(out / "history.jsonl"))
        ids = [r["id"] for r in got]
        duplicated += len(ids) - len(set(ids))
        lost += len({r["id"] for r in expected} - set(ids))
        identical += got == expected
    return [["main process SIGKILL at a random point, then `bbopt resume`", kills, resumed,
             f"{identical}/{kills} histories identical to the uninterrupted run", lost, duplicated]]


FAULTS = {
    "raises": (objectives.flaky, {}, lambda r: r["error"].startswith("RuntimeError")),
    "returns NaN": (objectives.flaky, {}, lambda r: r["status"] == "nan"),
    "returns None / text / a list": (objectives.returns_garbage, {}, lambda r: r["error"].startswith("TypeError")),
    "returns inf": (objectives.returns_garbage, {}, lambda r: r["status"] == "nan"),
    "hangs past eval_timeout (1 s)": (objectives.hangs_on_negative, {"eval_timeout": 1.0, "n_jobs": 2},
                                      lambda r: r["error"].startswith("timed out")),
    "kills its worker process": (objectives.kills_worker_on_positive, {"n_jobs": 2},
                                 lambda r: r["error"].startswith("worker process died")),
}


def expected_faults(kind: str, x: np.ndarray) -> bool:
    if kind == "raises":
        return x[0] > 3.0
    if kind == "returns NaN":
        return x[0] < -3.0
    if kind == "returns None / text / a list":
        return int(abs(x[0]) * 10) % 5 in (0, 1, 2)
    if kind == "returns inf":
        return int(abs(x[0]) * 10) % 5 == 3
    if kind == "hangs past eval_timeout (1 s)":
        return x[0] < -4.0
    return x[0] > 4.0


def faults(evaluations: int) -> list:
    rows = []
    for kind, (f, extra, matches) in FAULTS.items():
        budget = evaluations if not extra else evaluations // 5
        result = minimize(f, "random", budget, space=Box(-5, 5, dim=2), seed=3, on_error="record", progress=False,
                          **extra)
        history = list(result.history)
        injected = sum(expected_faults(kind, np.array(r["x"])) for r in history)
        caught = sum(1 for r in history if r["status"] != "ok" and matches(r))
        rows.append([f"objective {kind}", injected, caught, f"run completed: {result.n_evals}/{budget} "
                     "evaluations recorded", injected - caught, 0])
    return rows


def sweep_worker_death(tmp: Path) -> list:
    os.environ["BBOPT_TEST_KILL_MARKER"] = str(tmp / "killed-once")
    config = {"problem": {"name": "objectives:kills_worker_once", "space": {"lower": -5, "upper": 5, "dim": 2}},
              "optimizer": "cma", "budget": 60, "grid": {"seed": list(range(8))}}
    rows = sweep(config, tmp / "sweep-death", n_jobs=2)
    del os.environ["BBOPT_TEST_KILL_MARKER"]
    clean = sweep(config, tmp / "sweep-clean", n_jobs=2)
    lines = (tmp / "sweep-death" / "summary.jsonl").read_text().splitlines()
    same = sum(a["fun"] == b["fun"] for a, b in zip(rows, clean))
    return [["a joblib worker killed mid-sweep (8 runs)", 1, int((tmp / "killed-once").exists()),
             f"{same}/8 runs equal to an undisturbed sweep", 8 - len({json.loads(x)['run'] for x in lines}),
             len(lines) - 8]]


def bad_inputs() -> tuple[list, list]:
    corpus = sorted((ROOT / "tests" / "data" / "bad_configs").glob("*.yaml"))
    answered = []
    for path in corpus:
        expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "solve", str(path), "--out",
                               str(Path(tempfile.mkdtemp()) / "run")], capture_output=True, text=True, cwd=ROOT)
        ok = proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr
        answered.append([path.stem, proc.returncode, proc.stderr.strip().removeprefix("bbopt: error: "),
                         "yes" if ok else "NO"])
    summary = [["bad-config corpus (tests/data/bad_configs)", len(corpus),
                sum(r[3] == "yes" for r in answered), "exit 2, one line naming the field, no run directory",
                0, 0]]
    return summary, answered


def big_sweeps(n_runs: int, tmp: Path) -> list:
    config = {"problem": {"name": "sphere", "dim": 2}, "optimizer": {"name": "random", "popsize": 5},
              "budget": 10, "checkpoint_every": 1000.0, "grid": {"seed": list(range(n_runs))}}
    out = []
    funs = {}
    for backend in ("loky", "dask"):
        t0 = time.perf_counter()
        rows = sweep(config, tmp / f"big-{backend}", n_jobs=2, backend=backend)
        elapsed = time.perf_counter() - t0
        lines = [json.loads(x) for x in (tmp / f"big-{backend}" / "summary.jsonl").read_text().splitlines()]
        names = [r["run"] for r in lines]
        funs[backend] = {r["run"]: r["fun"] for r in rows}
        out.append([f"sweep of {n_runs} runs on {backend} (2 workers, {elapsed:.0f} s)", n_runs,
                    sum(r["status"] == "ok" for r in rows), "every run recorded once",
                    n_runs - len(set(names)), len(names) - len(set(names))])
    out[-1][3] += "; results identical to loky" if funs["loky"] == funs["dask"] else "; RESULTS DIFFER"
    return out


def long_run(tmp: Path) -> list:
    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    rows = []
    for name, options in (("random", {"popsize": 10}), ("cma", {"restarts": 0})):
        marks: dict[int, tuple[float, float]] = {}

        def mark(info, marks=marks):
            k = info.n_evals // 1000
            if k in (20, 60, 100) and k not in marks:
                marks[k] = (rss_mb(), time.perf_counter())

        minimize(lambda X: np.einsum("ij,ij->i", X, X), name, 100_000, space=Box(-5, 5, dim=10), vectorized=True,
                 seed=0, options=options, run_dir=tmp / f"long-{name}", callbacks=[mark], progress=False)
        (m20, t20), (m60, t60), (m100, t100) = marks[20], marks[60], marks[100]
        rows.append([f"100,000-evaluation run ({name})", f"{m20:.1f} / {m60:.1f} / {m100:.1f}",
                     f"{(t60 - t20) / 40 * 1e3:.0f} / {(t100 - t60) / 40 * 1e3:.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fault-evaluations", type=int, default=500)
    parser.add_argument("--sweep-runs", type=int, default=1000)
    args = parser.parse_args()
    pin_threads(1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = kill_and_resume(args.kills, tmp) + faults(args.fault_evaluations) + sweep_worker_death(tmp)
        summary, corpus = bad_inputs()
        rows += summary + big_sweeps(args.sweep_runs, tmp)
        memory = long_run(tmp)
    body = table(["fault / input", "injected", "handled", "outcome", "evaluations lost", "duplicated"], rows)
    body += "\n\nBad-config corpus, one line per file (the CLI's answer):\n\n" + table(
        ["file", "exit", "message", "as expected"], corpus)
    body += "\n\nMemory and loop time over a long run (history streamed to disk):\n\n" + table(
        ["run", "RSS MB at 20k / 60k / 100k evaluations", "ms per 1,000 evaluations, 20k–60k / 60k–100k"], memory)
    append("Reliability", body,
           "Fast versions of each check run in CI (`tests/reliability`, `tests/test_cli.py`); "
           "the property-based bad-input tests (hypothesis) run 60 examples there and 1,000 with `-m slow`.")


if __name__ == "__main__":
    main()
