"""The dask path as a cluster user runs it: a `dask scheduler` and two `dask worker` processes on
loopback, `bbopt sweep --backend dask --scheduler tcp://...`, one worker killed mid-sweep."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "problems" / "sweep_example.yaml"
SMALL = ["--set", "budget=400"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str, log: Path) -> subprocess.Popen:
    """A `dask` CLI process in its own process group (killed with everything it forked)."""
    dask = Path(sys.executable).with_name("dask")
    command = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
    return subprocess.Popen(command + list(args), stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log.parent)


def rows_of(out: Path) -> list[dict]:
    path = out / "summary.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sweep_on_a_scheduler_and_two_worker_processes_survives_a_killed_worker(tmp_path):
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                   log=tmp_path / "scheduler.log")]
    try:
        for k in range(2):
            procs.append(start("worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                               "--name", f"w{k}", log=tmp_path / f"worker{k}.log"))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        out = tmp_path / "dask"
        sweep = subprocess.Popen([sys.executable, "-m", "bbopt.cli", "sweep", str(SWEEP), "--json", "--out", str(out),
                                  "--backend", "dask", "--scheduler", address, *SMALL],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        deadline = time.time() + 120
        while not rows_of(out) and time.time() < deadline and sweep.poll() is None:
            time.sleep(0.05)
        done_at_kill = len(rows_of(out))
        os.killpg(procs[1].pid, signal.SIGKILL)  # worker w0 and its nanny, as a lost machine
        stdout, stderr = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, stderr
        assert 1 <= done_at_kill < 9, f"the worker was killed after {done_at_kill} of 9 runs: not mid-sweep"
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    assert json.loads(stdout.strip().splitlines()[-1]) == {"sweep_dir": str(out), "runs": 9, "failed": 0}
    dask_rows = rows_of(out)
    assert sorted(r["run"] for r in dask_rows) == sorted({r["run"] for r in dask_rows}) and len(dask_rows) == 9
    loky = tmp_path / "loky"
    subprocess.run([sys.executable, "-m", "bbopt.cli", "sweep", str(SWEEP), "--out", str(loky), "--n-jobs", "2",
                    *SMALL], check=True, capture_output=True, cwd=ROOT)
    expected = {r["run"]: (r["fun"], r["n_evals"]) for r in rows_of(loky)}
    assert {r["run"]: (r["fun"], r["n_evals"]) for r in dask_rows} == expected
