"""Z1: peak memory of one training step ÷ one inference forward (same model, same batch).

Each method runs in a fresh process: build the model and batch, record RSS, run one warm-up
step, reset the peak (``/proc/self/clear_refs``), run one more step and read the peak
(``VmHWM``); glibc is told to return large freed blocks (``MALLOC_MMAP_THRESHOLD_=65536``) and
the weights are copied into private memory first (HF maps them from the file, so unread rows of an
embedding would otherwise not be resident). Memory of a step = P (all parameters) + (peak − RSS after setup); the ratio divides
by the same figure for one ``no_grad`` forward. Persistent state created by the warm-up (Adam's
moments, gradients) counts, because it is resident during the measured step. CPU RSS includes
allocator caching, so figures are upper bounds; the Python/torch baseline itself is excluded.

Methods: MeZO in place (exact undo with repair lists, and ``exact=False``), forward gradient
(jvp), likelihood ratio (16 copies), ZO with a torch Adam rule, backprop SGD and Adam.
Models: an 8×2048 ReLU MLP (the pilot's) and the packaged MiniLM on 16 real tweets.

    python benchmarks/zo_memory.py [--seeds 3] [--models mlp,minilm]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import append, pin_threads, table  # noqa: E402

METHODS = ("inference", "mezo", "mezo-arith", "forward-grad", "ulr-16", "zo-adam", "bp-sgd", "bp-adam")
SKIP = {("minilm", "ulr-16")}  # the anchor objective calls the model twice per forward (ULR needs one call)


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(model: str, batch: int, seed: int, exact: bool):
    import torch

    from bbopt.problems import TorchProblem

    if model == "mlp":
        gen = torch.Generator().manual_seed(seed)
        layers = []
        for _ in range(8):
            layers += [torch.nn.Linear(2048, 2048), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers, torch.nn.Linear(2048, 10))
        data = [(torch.randn(batch, 2048, generator=gen), torch.randint(0, 10, (batch,), generator=gen))]

        def loss(m, b):
            return torch.nn.functional.cross_entropy(m(b[0]), b[1], reduction="none")

        return TorchProblem(net, loss, data, mode="inplace", exact=exact, chunk_size=1 << 18)
    from bbopt.problems.text_data import minilm_tweets

    return minilm_tweets(seed=seed, shots=batch // 2, batch_size=batch, n_test=2, exact=exact)


def step_fn(method: str, problem):
    """A closure running one step of ``method`` on ``problem``."""
    import torch

    from bbopt import make_optimizer

    if method == "inference":
        return lambda: torch.no_grad()(problem.loss)(problem.model, problem.batch(0)).mean()
    if method.startswith("bp-"):
        params = [p for p in problem.model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1e-6) if method == "bp-sgd" else torch.optim.Adam(params, lr=1e-6)

        def bp():
            opt.zero_grad(set_to_none=True)
            problem.loss(problem.model, problem.batch(0)).mean().backward()
            opt.step()
        return bp
    name, options = {"mezo": ("mezo", {}), "mezo-arith": ("mezo", {}), "forward-grad": ("forward-gradient", {}),
                     "ulr-16": ("likelihood-ratio", {"copies": 16}),
                     "zo-adam": ("mezo", {"rule": "torch", "torch_optimizer": "adam"})}[method]
    zo = make_optimizer(name, problem.space, seed=0, lr=1e-6, **options)

    def zo_step():
        batch = zo.ask()
        zo.tell(batch, problem.evaluate(batch))
    return zo_step


def worker(method: str, model: str, batch: int, seed: int) -> dict:
    import torch

    pin_threads(1)
    problem = build(model, batch, seed, exact=method != "mezo-arith")
    with torch.no_grad():  # weights loaded by mmap are resident only where read: make all of P resident
        for p in problem.model.parameters():
            p.data = p.data.clone()
    step = step_fn(method, problem)
    gc.collect()
    base = rss_kb("VmRSS")
    step()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    step()
    peak = rss_kb("VmHWM")
    p_bytes = sum(p.numel() * p.element_size() for p in problem.model.parameters())
    return {"P_mb": p_bytes / 2**20, "step_mb": p_bytes / 2**20 + (peak - base) / 1024}


def run(method: str, model: str, batch: int, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, model, str(batch), str(seed)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}  # big blocks are returned to the OS when freed
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", default="mlp,minilm")
    ap.add_argument("--worker", nargs=4)
    args = ap.parse_args()
    pin_threads(1)  # the workers pin themselves too; this makes the report header say so
    if args.worker:
        method, model, batch, seed = args.worker
        print(json.dumps(worker(method, model, int(batch), int(seed))))
        return
    rows = []
    configs = [(m, b) for m in args.models.split(",") for b in ((64, 1024) if m == "mlp" else (16, 32))]
    for model, batch in configs:
        per = {meth: [run(meth, model, batch, s) for s in range(args.seeds)] for meth in METHODS
               if (model, meth) not in SKIP}
        inf = np.array([r["step_mb"] for r in per["inference"]])
        for meth, res in per.items():
            mb = np.array([r["step_mb"] for r in res])
            ratio = mb / inf
            rows.append([model, batch, meth, f"{res[0]['P_mb']:.0f}", f"{mb.mean():.0f} ± {mb.std():.0f}",
                         f"{ratio.mean():.2f} ± {ratio.std():.2f}"])
            print(rows[-1], flush=True)
    body = table(["model", "batch", "method", "P (MB)", "step memory (MB)", "÷ inference"], rows)
    notes = ("Memory of a step = P + (peak RSS during the second step − RSS after setup), mean ± std over "
             f"{args.seeds} fresh processes (seeds); CPU RSS with allocator caching (upper bounds). "
             "mezo: in place with exact undo (repair lists); mezo-arith: exact=False (MeZO's ±ε round trip). "
             "Bar: MeZO ≤ 1.10× inference.")
    append("Z1 — ZO memory: one step ÷ one inference forward", body, notes)


if __name__ == "__main__":
    main()
