"""M5: merging two experts of a small GPT-2-style LM (tweets, BBC News) by perplexity.

The ``merge-gpt2`` workload (seed 0: built locally, cached under ~/.cache/bbopt): every
method selects on the fitness texts (mean over both corpora of the token-weighted NLL) and
reports the held-out test texts. Rows: base, each expert, uniform soup, the task-arithmetic
λ grid, the TIES grid and the DARE grid (their evaluation counts), then CMA-ES over the per
layer × per expert genome for each search seed. The best CMA-ES merge is saved as a Hugging
Face folder and reloaded with ``from_pretrained`` to check it scores the same.

    python benchmarks/merge_gpt2.py [--budget 150] [--search-seeds 3] [--average nll|perplexity]

Bar (M5): for every search seed, the evolved recipe's mean test perplexity over both corpora
≤ the best baseline's (read both as the arithmetic mean of the two perplexities and as
exp of the mean NLL, the quantity the fitness minimises).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from bbopt.merge import baselines as B
from bbopt.problems import get

from _report import append, pin_threads, table


def _fixed(p, name: str, state: dict) -> B.BaselineResult:
    fit = p.score_state(state, "fitness")
    return B.BaselineResult(name, 0, fit["nll"], None, fit, p.score_state(state, "test"))


def _row(name: str, r: B.BaselineResult, seconds: float) -> list:
    t = r.test or {}
    c = t["corpora"]
    return [name, r.n_evals, f"{c['tweets']['perplexity']:.2f}", f"{c['bbc']['perplexity']:.2f}",
            f"{t['mean_perplexity']:.2f}", f"{t['perplexity']:.2f}", f"{r.fitness['perplexity']:.2f}", f"{seconds:.0f}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--search-seeds", type=int, default=3)
    ap.add_argument("--average", choices=["nll", "perplexity"], default="nll",
                    help="the fitness averages the corpora's NLLs or their perplexities")
    args = ap.parse_args()
    pin_threads(1)
    t0 = time.time()
    p = get("merge-gpt2", seed=0, average=args.average)
    built = time.time() - t0
    rows, results = [], {}

    def run(name, fn):
        t = time.time()
        results[name] = fn()
        rows.append(_row(name, results[name], time.time() - t))
        print(rows[-1], flush=True)

    run("base", lambda: _fixed(p, "base", p.source_state_dict()))
    for k, state in enumerate(B.expert_states(p)):
        run(f"expert {p.expert_names[k]}", lambda s=state, k=k: _fixed(p, p.expert_names[k], s))
    baselines = {"uniform soup": lambda: B.uniform_soup(p), "task arithmetic, λ grid": lambda: B.task_arithmetic_grid(p),
                 "TIES grid": lambda: B.ties_grid(p), "DARE grid": lambda: B.dare_grid(p)}
    for name, fn in baselines.items():
        run(name, fn)
    label = f"per layer × per expert, {p.space.dim}-d"
    for s in range(args.search_seeds):
        run(f"CMA-ES, {label}, seed {s}", lambda s=s: B.search(p, "cma", args.budget, seed=s,
                                                               options={"x0": p.x0, "sigma0": 0.2}))
    cma = [results[f"CMA-ES, {label}, seed {s}"] for s in range(args.search_seeds)]
    verdicts = []
    for key, what in (("mean_perplexity", "arithmetic mean of the two corpora's perplexities (what --average "
                                           "perplexity minimises)"),
                      ("perplexity", "exp(mean NLL) (what --average nll minimises)")):
        best_base = min(baselines, key=lambda k: results[k].test[key])
        ref = results[best_base].test[key]
        diffs = np.array([r.test[key] - ref for r in cma])
        verdicts.append(f"{what}: best baseline {best_base} {ref:.2f}, evolved − baseline per seed "
                        f"{', '.join(f'{d:+.2f}' for d in diffs)} — {'met' if (diffs <= 0).all() else 'NOT met'}")
    best = min(cma, key=lambda r: r.loss)
    saved = p.save(np.array(best.x), tempfile.mkdtemp(prefix="bbopt-m5-"))
    from transformers import AutoModelForCausalLM

    reloaded = p.test.scores(AutoModelForCausalLM.from_pretrained(saved["model"]).eval())
    sizes = " / ".join(f"{n} {len(v)}" for n, v in p.fitness.ids.items())
    tests = " / ".join(f"{n} {len(v)}" for n, v in p.test.ids.items())
    notes = (f"Fitness averages the corpora's {'NLLs' if args.average == 'nll' else 'perplexities'} "
             f"(--average {args.average}). Workload seed 0 (built or read from the cache in {built:.0f} s), "
             f"{args.search_seeds} CMA-ES seeds × "
             f"{args.budget} evaluations (σ₀ 0.2 from every weight 0.5); baselines select on the fitness texts "
             f"({sizes} texts, ≤ 64 tokens each) and report the test texts ({tests}); perplexity = exp(token-"
             f"weighted mean NLL) per corpus; torch threads 1; {time.time() - t0:.0f} "
             f"s in all. Bar (M5), evolved ≤ best baseline for every seed, on the test texts: {'; '.join(verdicts)}. "
             f"Best CMA-ES merge saved as "
             f"a Hugging Face folder and reloaded with from_pretrained: mean test perplexity "
             f"{reloaded['mean_perplexity']:.4f} vs {best.test['mean_perplexity']:.4f} before saving.")
    append(f"M5 — causal-LM merge (GPT-2-style, tweets + BBC News), {args.budget} evaluations, fitness averages "
           f"{'NLLs' if args.average == 'nll' else 'perplexities'}",
           table(["method", "fitness evals", "tweets test ppl", "BBC test ppl", "mean test ppl",
                  "exp(mean test NLL)", "exp(mean fitness NLL)", "seconds"], rows), notes)


if __name__ == "__main__":
    main()
