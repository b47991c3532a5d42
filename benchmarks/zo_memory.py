"""Z1: whole-process peak memory of training steps ÷ that of inference (same model, same batch).

Each method runs in a fresh process with the user's environment (no allocator settings): import,
build the model, the batch and the method's state (setup included: ``ModelParams``, an optimizer,
``flatten=True``'s re-homing), run ``--steps`` steps (inference: forwards), then read the process's
peak resident set (``VmHWM``: everything, the Python/torch baseline included). The ratio divides
by the inference process's peak. A second column gives the same ratio above the baseline of the
process after its imports (``VmRSS`` before the model is built), which the import overhead does
not dilute. CPU RSS includes allocator caching, so figures are upper bounds.

Methods: ``mezo`` (bbopt's defaults), ``mezo-exact`` (``exact=True``: repair lists),
``mezo-flatten`` (``flatten=True``), ``mezo-plain`` (a plain MeZO loop written outside bbopt,
:mod:`benchmarks._plain_mezo`), forward gradient (jvp), likelihood ratio (q = 8 pairs), ZO with a
torch Adam rule, the newer estimators at their defaults (FZOO, HiZOO, LOZO, LOZO-M, SubZero),
backprop SGD and Adam. Models: an 8×2048 ReLU MLP (33.6M weights, the pilot's) and
the packaged MiniLM (22.6M) on real tweets.

``--device cuda``: the same processes on the GPU, where the figure is the process's
``torch.cuda.max_memory_allocated`` (weights, activations, noise chunks: what torch allocated on
the device) instead of RSS.

``--malloc-tuned`` reruns with ``MALLOC_MMAP_THRESHOLD_=65536`` (large freed blocks go back to the
OS at once): a figure a user does not get by default, reported in its own, labelled table.

    python benchmarks/zo_memory.py [--seeds 3] [--models mlp,minilm] [--methods ...] [--malloc-tuned]
                                   [--device cuda]
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

METHODS = ("inference", "mezo", "mezo-exact", "mezo-flatten", "mezo-plain", "forward-grad", "ulr", "zo-adam",
           "fzoo", "hizoo", "lozo", "lozo-m", "subzero", "bp-sgd", "bp-adam")
SKIP = {("minilm", "ulr")}  # the anchor objective calls the model twice per forward (ULR needs one call)
BATCHES = {"mlp": (64, 1024), "minilm": (16,)}


def rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(model: str, batch: int, seed: int, device: str = "cpu", **options):
    """The Z1/Z2 workloads as ``TorchProblem``s (in place): the MLP on random data, MiniLM on tweets."""
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

        return TorchProblem(net, loss, data, mode="inplace", device=device, **options)
    from bbopt.problems.text_data import minilm_tweets

    return minilm_tweets(seed=seed, shots=batch // 2, batch_size=batch, n_test=2, device=device, **options)


def step_fn(method: str, problem):
    """A closure running one step of ``method`` on ``problem`` (its state built here: setup)."""
    import torch

    from bbopt import make_optimizer
    from benchmarks._plain_mezo import plain_mezo_step

    data = problem.batch(0)
    if method == "inference":
        return lambda: torch.no_grad()(problem.loss)(problem.model, data).mean()
    if method == "mezo-plain":
        params = problem.space.tensors
        return lambda: plain_mezo_step(problem.model, params, problem.loss, data, 1e-7, 1e-3, 1234)
    if method.startswith("bp-"):
        params = problem.space.tensors
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.SGD(params, lr=1e-7) if method == "bp-sgd" else torch.optim.Adam(params, lr=1e-7)

        def bp():
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                problem.loss(problem.model, data).mean().backward()
            opt.step()
        return bp
    name, options = {"mezo": ("mezo", {}), "mezo-exact": ("mezo", {}), "mezo-flatten": ("mezo", {}),
                     "forward-grad": ("forward-gradient", {}), "ulr": ("likelihood-ratio", {"q": 8}),
                     "zo-adam": ("mezo", {"rule": "torch", "torch_optimizer": "adam"}),
                     "fzoo": ("fzoo", {}), "hizoo": ("hizoo", {}), "lozo": ("lozo", {}),
                     "lozo-m": ("lozo", {"rule": "momentum"}), "subzero": ("subzero", {})}[method]
    zo = make_optimizer(name, problem.space, seed=0, lr=1e-7, **options)

    def zo_step():
        batch = zo.ask()
        zo.tell(batch, problem.evaluate(batch))
    return zo_step


def worker(method: str, model: str, batch: int, seed: int, steps: int, device: str = "cpu") -> dict:
    import torch  # (the baseline: the imports a user's process has)

    pin_threads(1)
    if model == "minilm":
        import transformers  # noqa: F401
    gc.collect()
    base = rss_kb("VmRSS")
    options = {"exact": method == "mezo-exact"}
    problem = build(model, batch, seed, device, **options)
    if method == "mezo-flatten":
        from bbopt.params import ModelParams

        problem.space = ModelParams(problem.model, problem.space.names, flatten=True)
    step = step_fn(method, problem)
    for _ in range(steps):
        step()
    peak = rss_kb("VmHWM") if device == "cpu" else torch.cuda.max_memory_allocated() // 1024
    if device != "cpu":
        base = 0
    p_bytes = sum(p.numel() * p.element_size() for p in problem.model.parameters())
    return {"P_mb": p_bytes / 2**20, "peak_mb": peak / 1024, "base_mb": base / 1024}


def run(method: str, model: str, batch: int, seed: int, steps: int = 3, tuned: bool = False,
        device: str = "cpu") -> dict:
    """``method``'s whole-process figures from a fresh process (``tuned``: glibc returns big blocks)."""
    cmd = [sys.executable, __file__, "--worker", method, model, str(batch), str(seed), str(steps), device]
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if tuned:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(models: list[str], methods: list[str], seeds: int, steps: int, tuned: bool, device: str = "cpu") -> str:
    rows = []
    for model in models:
        for batch in BATCHES[model]:
            per = {m: [run(m, model, batch, s, steps, tuned, device) for s in range(seeds)]
                   for m in ("inference", *methods) if (model, m) not in SKIP}
            inf = np.array([r["peak_mb"] for r in per["inference"]])
            inf_above = inf - np.array([r["base_mb"] for r in per["inference"]])
            for meth in ("inference", *methods):
                if meth not in per:
                    continue
                res = per[meth]
                peak = np.array([r["peak_mb"] for r in res])
                above = peak - np.array([r["base_mb"] for r in res])
                rows.append([model, batch, meth, f"{res[0]['P_mb']:.0f}", f"{peak.mean():.0f} ± {peak.std():.0f}",
                             f"{(peak / inf).mean():.3f} ± {(peak / inf).std():.3f}",
                             f"{(above / inf_above).mean():.2f} ± {(above / inf_above).std():.2f}"])
                print(rows[-1], flush=True)
    return table(["model", "batch", "method", "P (MB)", "whole-process peak (MB)", "÷ inference",
                  "÷ inference above the import baseline"], rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", default="mlp,minilm")
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m != "inference"))
    ap.add_argument("--malloc-tuned", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", nargs=6)
    args = ap.parse_args()
    pin_threads(1)  # the workers pin themselves too; this makes the report header say so
    if args.worker:
        method, model, batch, seed, steps, device = args.worker
        print(json.dumps(worker(method, model, int(batch), int(seed), int(steps), device)))
        return
    methods = [m for m in args.methods.split(",") if m != "inference"]
    models = args.models.split(",")
    body = measure(models, methods, args.seeds, args.steps, tuned=False, device=args.device)
    if args.device != "cpu":
        append(f"Z1 ({args.device}) — ZO memory: peak torch.cuda.max_memory_allocated ÷ inference", body,
               f"Peak memory torch allocated on {args.device} in a fresh process per method (model, batch, method "
               f"state, {args.steps} steps); mean ± std over {args.seeds} seeds. Bar (GPU): MeZO ≤ 1.05× inference.")
        return
    notes = (f"Whole-process peak RSS (VmHWM) of a fresh process that imports, builds the model, batch and "
             f"method state, then runs {args.steps} steps (inference: forwards); mean ± std over {args.seeds} "
             "processes (seeds), the user's environment (no MALLOC_* settings). ÷ inference: the same figure of "
             "the inference process; above the import baseline: (peak − RSS after imports) ÷ the same for "
             "inference. mezo: bbopt's defaults (MeZO's arithmetic round trip, the restore folded into the "
             "update, 3 scratch chunks); mezo-exact: exact=True (repair lists); mezo-flatten: flatten=True; "
             "mezo-plain: the plain reference loop (benchmarks/_plain_mezo.py, z drawn per tensor). "
             "Bar: MeZO (default) ≤ 1.10× inference.")
    append("Z1 — ZO memory: whole-process peak ÷ inference", body, notes)
    if args.malloc_tuned:
        tuned = measure(models, methods, args.seeds, args.steps, tuned=True)
        append("Z1 (allocator-tuned, not a user's default) — whole-process peak ÷ inference with "
               "MALLOC_MMAP_THRESHOLD_=65536", tuned, "As the table above, every process (inference too) run with "
               "MALLOC_MMAP_THRESHOLD_=65536: glibc returns large freed blocks at once. Reported for comparison "
               "with earlier figures only; the bar is read on the table above.")


if __name__ == "__main__":
    main()
