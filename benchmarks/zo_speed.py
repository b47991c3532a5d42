"""Z2: one MeZO step ÷ one forward, and ÷ a plain MeZO loop;  Z3: K perturbations batched vs sequential.

Z2 — on the same model and batch, timed alternately in one loop (the machine is shared: the
alternation, in a rotating order, keeps all three under the same load): one ``no_grad`` forward,
one bbopt ``mezo`` step at its defaults (ask, two perturbed forwards in place, tell: three noise
passes over θ), and one step of the plain MeZO loop written outside bbopt
(:mod:`benchmarks._plain_mezo`: global RNG re-seeded per pass, z drawn per tensor, four passes).
Per seed the ratio of medians, then mean ± std over seeds; wall and CPU time (``process_time``).
Also the three noise passes alone (generation and shift, no forward) ÷ forward.
Models: MiniLM on real tweets (batch 16 is Z5's; all weights, and the bias subset) and the 8×2048
MLP (batch 64, 1024); ``direction`` gaussian (MeZO's default: 16 random bits per weight looked up
in a table of normal quantiles, :mod:`bbopt.noise`) and rademacher; "gaussian-randn" rows time the
generator used before (``torch.randn``) in the same run: the before/after comparison.

Z3 — K perturbations of the load_digits MLP 64-64-10 and CNN (batch 64) evaluated by one
``TorchProblem.evaluate`` call in place (K sequential forwards) vs batched: MeZO q = 16 and 32
(± pairs: K = 32, 64), FZOO-style one-sided probes (a clean point and 32 directions), and CGE
coordinates (+ the clean point). Batched = folded into one K·B-row forward (``nn.Sequential``),
or vmap (``--parts z3`` also times vmap for the directions, the fallback for other models).

``--parts chunks``: MeZO step ÷ forward for several ``chunk_size`` values and ``flatten`` (how the
defaults were chosen).

``--device cuda``: the same measurements on the GPU (each timed call ends with a synchronize).

    python benchmarks/zo_speed.py [--seeds 3] [--parts z2,z3,chunks] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bbopt import make_optimizer  # noqa: E402
from bbopt.params import ModelParams  # noqa: E402
from bbopt.perturbations import Clean, Coordinate, Direction  # noqa: E402
from bbopt.problems import get  # noqa: E402
from benchmarks._plain_mezo import plain_mezo_step  # noqa: E402
from benchmarks._report import append, pin_threads, table  # noqa: E402
from benchmarks.zo_memory import build  # noqa: E402

DEVICE = "cpu"


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call (the device's queue drained at both ends)."""
    if DEVICE != "cpu":
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    fn()
    if DEVICE != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - w, time.process_time() - c


def interleaved(fns: dict, reps: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) per function over ``reps`` rounds, the order rotated every round."""
    for fn in fns.values():
        fn()  # warm-up
    names = list(fns)
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(reps):
        for n in names[r % len(names):] + names[:r % len(names)]:
            times[n].append(timed(fns[n]))
    return {n: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for n, v in times.items()}


def mezo_fns(problem, seed: int, **options) -> dict:
    """forward / bbopt step / plain step / noise-only closures on ``problem``'s model and batch 0."""
    opt = make_optimizer("mezo", problem.space, seed=seed, lr=1e-7, **options)
    data = problem.batch(0)
    space = problem.space
    direction = options.get("direction", "gaussian")

    def forward():
        with torch.no_grad():
            problem.loss(problem.model, data).mean()

    def step():
        batch = opt.ask()
        opt.tell(batch, problem.evaluate(batch))

    def plain():
        plain_mezo_step(problem.model, space.tensors, problem.loss, data, 1e-7, 1e-3, seed)

    def noise():  # the three passes of a step without its forwards
        space.perturb(Direction(0, 7, 1e-3, direction))
        space.move_to(Direction(0, 7, -1e-3, direction))
        space.restore(defer=True)
        space.add_([(7, -1e-10, direction)])

    return {"forward": forward, "step": step, "plain": plain, "noise": noise}


Z2_ROWS = [("minilm", 16, "all", "gaussian"), ("minilm", 16, "all", "gaussian-randn"), ("minilm", 16, "all", "rademacher"),
           ("minilm", 32, "all", "gaussian"), ("minilm", 16, "bias", "gaussian"), ("mlp", 64, None, "gaussian"),
           ("mlp", 64, None, "gaussian-randn"), ("mlp", 64, None, "rademacher"), ("mlp", 1024, None, "gaussian"),
           ("mlp", 1024, None, "rademacher")]


def randn_noise(problem) -> None:
    """The Gaussian generator before the quantile table (``torch.randn``), for the before/after rows."""
    stream = problem.space._noise
    stream._gaussian_into = lambda z: torch.randn(z.numel(), generator=stream.gen, out=z)


def z2(seeds: int, reps: int, only: str | None = None) -> str:
    rows = []
    wanted = None if only is None else set(only.split(","))
    for model, batch, subset, direction in Z2_ROWS:
        if wanted is not None and f"{model}:{batch}:{subset or ''}:{direction}" not in wanted:
            continue
        ratio: dict[str, list[float]] = {k: [] for k in ("step/fwd", "step/plain", "noise/fwd", "cpu step/fwd",
                                                          "cpu step/plain")}
        for seed in range(seeds):
            options = {} if subset is None else {"subset": subset}
            problem = build(model, batch, seed, DEVICE, **options)
            if direction == "gaussian-randn":
                randn_noise(problem)
            med = interleaved(mezo_fns(problem, seed, direction=direction.removesuffix("-randn")), reps)
            ratio["step/fwd"].append(med["step"][0] / med["forward"][0])
            ratio["step/plain"].append(med["step"][0] / med["plain"][0])
            ratio["noise/fwd"].append(med["noise"][0] / med["forward"][0])
            ratio["cpu step/fwd"].append(med["step"][1] / med["forward"][1])
            ratio["cpu step/plain"].append(med["step"][1] / med["plain"][1])
        label = f"{model} ({subset})" if subset else model
        rows.append([label, batch, f"{problem.space.n_params / 1e6:.2f}M", direction,
                     *(f"{np.mean(v):.2f} ± {np.std(v):.2f}" for v in ratio.values())])
        print(rows[-1], flush=True)
    return table(["model", "batch", "perturbed params", "direction", "MeZO step ÷ forward (wall)",
                  "step ÷ plain MeZO (wall)", "3 noise passes ÷ forward", "step ÷ forward (CPU)",
                  "step ÷ plain (CPU)"], rows)


def chunks(seeds: int, reps: int) -> str:
    rows = []
    for model, batch in [("minilm", 16), ("mlp", 1024)]:
        for chunk, flatten in [(1 << 16, False), (1 << 18, False), (1 << 20, False), (1 << 18, True)]:
            values = []
            for seed in range(seeds):
                problem = build(model, batch, seed, DEVICE, chunk_size=chunk)
                if flatten:
                    problem.space = ModelParams(problem.model, problem.space.names, chunk_size=chunk, flatten=True)
                fns = mezo_fns(problem, seed)
                med = interleaved({"forward": fns["forward"], "step": fns["step"]}, reps)
                values.append(med["step"][0] / med["forward"][0])
            rows.append([model, batch, chunk, flatten, f"{np.mean(values):.2f} ± {np.std(values):.2f}"])
            print(rows[-1], flush=True)
    return table(["model", "batch", "chunk_size", "flatten", "MeZO step ÷ forward (wall)"], rows)


def z3_specs(problem, kind: str, seed: int) -> list:
    rng = np.random.default_rng(seed)
    if kind == "cge":
        sizes = [t.numel() for t in problem.space.tensors]
        picks = rng.choice(sum(sizes), 32, replace=False)
        offsets = np.cumsum([0] + sizes)
        coords = []
        for flat in picks:
            ti = int(np.searchsorted(offsets, flat, side="right") - 1)
            coords.append(Coordinate(0, ti, int(flat - offsets[ti]), 5e-3))
        return [Clean(0)] + coords
    if kind == "fzoo-32":  # a clean point and 32 one-sided probes
        return [Clean(0)] + [Direction(0, int(s), 1e-3, "rademacher") for s in rng.integers(0, 1 << 62, 32)]
    q = int(kind.split("q")[1])
    return [Direction(0, int(s), sign * 1e-3) for s in rng.integers(0, 1 << 62, q) for sign in (1, -1)]


def z3(seeds: int, reps: int) -> str:
    rows = []
    for name in ("zo-digits-mlp", "zo-digits-cnn"):
        for kind in ("mezo-q16", "mezo-q32", "fzoo-32", "cge"):
            times: dict[str, list[tuple[float, float]]] = {}
            for seed in range(seeds):
                specs = z3_specs(get(name, seed=seed), kind, seed)
                problems = {"in place": get(name, seed=seed, mode="inplace", device=DEVICE)}
                if kind == "cge":
                    problems["batched (vmap)"] = get(name, seed=seed, mode="batched", feature_reuse=False,
                                                     device=DEVICE)
                    problems["batched + feature reuse"] = get(name, seed=seed, mode="batched", device=DEVICE)
                else:
                    problems["batched (folded)"] = get(name, seed=seed, mode="batched", device=DEVICE)
                    problems["batched (vmap)"] = vmapped = get(name, seed=seed, mode="batched", device=DEVICE)
                    vmapped._folded = None  # the path a model other than an nn.Sequential takes
                fns = {label: (lambda p=p, s=specs: p.evaluate(s)) for label, p in problems.items()}
                for label, median in interleaved(fns, reps).items():
                    times.setdefault(label, []).append(median)
            seq = np.array(times["in place"])
            for label, values in times.items():
                v = np.array(values)
                wall, cpu = seq[:, 0] / v[:, 0], seq[:, 1] / v[:, 1]
                rows.append([name, kind, len(specs), label, f"{1e3 * v[:, 1].mean():.1f} ± {1e3 * v[:, 1].std():.1f}",
                             f"{cpu.mean():.2f} ± {cpu.std():.2f}", f"{wall.mean():.2f} ± {wall.std():.2f}"])
                print(rows[-1], flush=True)
    return table(["problem", "perturbations", "forwards", "evaluation", "CPU ms per step", "speed-up vs in place (CPU)",
                  "speed-up (wall)"], rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--parts", default="z2,z3")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", default=None, help="Z2 rows to run, e.g. 'minilm:16:all:gaussian,mlp:64::gaussian'")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    threads = pin_threads(1)
    parts = args.parts.split(",")
    where = "" if DEVICE == "cpu" else f" ({DEVICE})"
    if "z2" in parts:
        body = z2(args.seeds, args.reps, args.rows)
        append("Z2 — MeZO step time ÷ forward time, and ÷ a plain MeZO loop" + where, body,
               f"torch threads {threads}; forward, bbopt step and plain step timed alternately ({args.reps} rounds, "
               f"rotating order) per seed; ratio of medians, mean ± std over {args.seeds} seeds. bbopt mezo at its "
               "defaults (ε 1e-3, chunk 2¹⁸, the ±ε round trip in MeZO's arithmetic, the restore folded into the "
               "update: 3 noise passes); plain: benchmarks/_plain_mezo.py (4 passes, torch.manual_seed, z per "
               "tensor, torch.normal). gaussian: bbopt's table-lookup normal (16 random bits per weight); "
               "gaussian-randn: the same step with bbopt's previous generator (torch.randn), timed in the same run "
               "(before/after). Bars (MiniLM, batch 16, default gaussian): step ≤ 2.3× forward (limit 2.0), "
               "≤ 1.0× plain.")
    if "chunks" in parts:
        body = chunks(args.seeds, args.reps)
        append("Z2 — MeZO step ÷ forward by chunk_size and flatten" + where, body,
               f"torch threads {threads}; gaussian directions; interleaved as Z2, {args.reps} rounds, "
               f"{args.seeds} seeds. How the defaults (chunk_size, flatten) were chosen.")
    if "z3" in parts:
        body = z3(args.seeds, args.reps)
        append("Z3 — K perturbations: one batched evaluation vs K sequential forwards" + where, body,
               f"torch threads {threads}; load_digits batch 64; CPU- and wall-time medians of {args.reps} alternated calls "
               f"per seed, mean ± std over {args.seeds} seeds (seed = init + which directions / coordinates). "
               "Folded: the nn.Sequential runs the K copies as one forward of K·B rows (bbopt/problems/"
               "torch_folded.py); vmap: torch.func.vmap over functional_call (the path for other models). "
               "Bar: ≥ 3× at K = 32 for MeZO q > 1 and FZOO.")


if __name__ == "__main__":
    main()
