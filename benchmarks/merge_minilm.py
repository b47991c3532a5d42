"""M2: merging MiniLM experts fine-tuned on two real text tasks (tweet sentiment, BBC topics).

One expert set (workload seed 0: the packaged all-MiniLM-L6-v2, frozen linear-probe heads,
one expert fine-tuned per task, cached). Every method selects on the fitness split (48
examples per task) and reports the test split (by default the largest the packaged data
allow beside the training and fitness splits: 485 BBC texts, 3,000 tweets); rows: base,
each expert, every baseline (grids included) at its evaluation count, and CMA-ES / random
search over the per layer × per expert genome at equal budgets (≥ 3 search seeds). The
bar is read from paired differences: per test example, CMA-ES's correctness (mean over the
seeds) minus the best baseline's, weighted so the mean is the mean over tasks; the 95 %
interval is the stratified normal one. The best CMA-ES merge is saved with
``MergeProblem.save`` and reloaded from safetensors to check it scores the same.

    python benchmarks/merge_minilm.py [--budget 150] [--search-seeds 3] [--n-test-tweets 3000] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import numpy as np

from bbopt.merge import baselines as B
from bbopt.problems import get
from bbopt.problems.merging import load_merged

from _report import append, pin_threads, table


def _fixed(p, name: str, state: dict) -> B.BaselineResult:
    fit = p.score_state(state, "fitness")
    return B.BaselineResult(name, 0, fit["ce"], None, fit, p.score_state(state, "test"))


def _row(name: str, results: list[B.BaselineResult], seconds: float) -> list:
    acc = lambda r, t: r.test["tasks"][t]["accuracy"] * 100  # noqa: E731
    mean = np.array([r.test["accuracy"] * 100 for r in results])
    spread = f" ± {mean.std(ddof=1):.1f}" if len(results) > 1 else ""
    return [name, results[0].n_evals, f"{np.mean([acc(r, 'tweets') for r in results]):.1f}",
            f"{np.mean([acc(r, 'bbc') for r in results]):.1f}", f"{mean.mean():.1f}{spread}",
            f"{np.mean([r.test['ce'] for r in results]):.3f}", f"{np.mean([r.fitness['ce'] for r in results]):.3f}",
            f"{seconds:.0f}"]


def correct(p, r: B.BaselineResult) -> list[np.ndarray]:
    """Per test task, each example's correctness (0/1) under result ``r``'s merge."""
    model = p.with_genome(r.genome).model_at(np.asarray(r.x))
    return [(t.logits(model).argmax(1) == t.labels).double().numpy() for t in p.test.tasks]


def paired(evolved: list[list[np.ndarray]], base: list[np.ndarray]) -> tuple[float, float]:
    """(Δ, half-width of the 95 % interval) in points of mean-over-tasks accuracy; ``evolved``:
    one correctness list per search seed (averaged per example)."""
    diffs = [np.mean([e[t] for e in evolved], axis=0) - base[t] for t in range(len(base))]
    delta = np.mean([d.mean() for d in diffs])
    se = np.sqrt(sum(d.var(ddof=1) / len(d) for d in diffs)) / len(diffs)
    return 100 * float(delta), 100 * 1.96 * float(se)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--search-seeds", type=int, default=3)
    ap.add_argument("--n-test-tweets", type=int, default=3000)
    ap.add_argument("--n-test-bbc", type=int, default=485)
    ap.add_argument("--out", default=None, help="where to save the best merge (default: a temporary folder)")
    args = ap.parse_args()
    pin_threads(1)
    t0 = time.time()
    p = get("merge-minilm", seed=0, n_test={"tweets": args.n_test_tweets, "bbc": args.n_test_bbc})
    rows, results = [], {}

    def run(name, fn):
        t = time.time()
        res = fn()
        res = res if isinstance(res, list) else [res]
        results[name] = res
        rows.append(_row(name, res, time.time() - t))
        print(rows[-1], flush=True)

    run("base (zero-shot heads)", lambda: _fixed(p, "base", p.source_state_dict()))
    for k, state in enumerate(B.expert_states(p)):
        run(f"expert {p.expert_names[k]}", lambda s=state, k=k: _fixed(p, p.expert_names[k], s))
    run("uniform soup", lambda: B.uniform_soup(p))
    run("task arithmetic λ=1", lambda: B.task_arithmetic(p, 1.0))
    run("task arithmetic, λ grid", lambda: B.task_arithmetic_grid(p))
    run("TIES default (d=0.2, λ=1)", lambda: B.ties(p))
    run("TIES grid", lambda: B.ties_grid(p))
    run("DARE default (d=0.1, λ=1)", lambda: B.dare(p))
    run("DARE grid", lambda: B.dare_grid(p))
    run("Fisher merging (64 examples per expert)", lambda: B.fisher(p, n_examples=64))
    seeds = range(args.search_seeds)
    label = f"per layer × per expert, {p.space.dim}-d"
    run(f"CMA-ES, {label}", lambda: [B.search(p, "cma", args.budget, seed=s, options={"x0": p.x0, "sigma0": 0.2})
                                     for s in seeds])
    run(f"random search, {label}", lambda: [B.search(p, "random", args.budget, seed=s) for s in seeds])
    best_cma = min(results[f"CMA-ES, {label}"], key=lambda r: r.loss)
    saved = p.save(np.array(best_cma.x), args.out or tempfile.mkdtemp(prefix="bbopt-m2-"))
    fresh = copy.deepcopy(p.merged.module)
    fresh.load_state_dict(load_merged(saved["model"]))
    reloaded = p.test.scores(fresh)
    body = table(["method", "fitness evals", "tweets test acc %", "BBC test acc %", "mean test acc %",
                  "test CE", "fitness CE", "seconds"], rows)
    best_base = max((k for k in results if not k.startswith(("CMA", "random", "expert", "base"))),
                    key=lambda k: np.mean([r.test["accuracy"] for r in results[k]]))
    cma_acc = np.mean([r.test["accuracy"] for r in results[f"CMA-ES, {label}"]]) * 100
    base_acc = np.mean([r.test["accuracy"] for r in results[best_base]]) * 100
    evolved = [correct(p, r) for r in results[f"CMA-ES, {label}"]]
    pairs = {k: paired(evolved, correct(p, v[0])) for k, v in results.items()
             if not k.startswith(("CMA", "random", "expert", "base")) and v[0].genome is not None}
    delta, half = pairs[best_base] if best_base in pairs else (float("nan"), float("nan"))
    met = delta >= 0 and delta - half >= -0.5
    sizes = lambda tasks: " / ".join(f"{t.name} {len(t)}" for t in tasks)  # noqa: E731
    notes = (f"One expert set (workload seed 0), {args.search_seeds} search seeds × {args.budget} evaluations for "
             f"each search; fitness = mean cross-entropy over both tasks' fitness splits ({sizes(p.fitness.tasks)} "
             f"examples); test: {sizes(p.test.tasks)} examples; torch threads 1; {time.time() - t0:.0f} s in all. "
             f"Bar (M2): evolved merge ≥ best baseline with the paired 95 % interval above −0.5 points: CMA-ES "
             f"{cma_acc:.1f}% vs best baseline ({best_base}) {base_acc:.1f}% mean test accuracy, paired Δ "
             f"{delta:+.2f} ± {half:.2f} points — {'met' if met else 'NOT met'}. Paired Δ vs every baseline: "
             f"{'; '.join(f'{k} {d:+.2f} ± {h:.2f}' for k, (d, h) in pairs.items())}. "
             f"Best CMA-ES merge saved to {saved['model']} and reloaded: test accuracy "
             f"{reloaded['accuracy'] * 100:.2f}% vs {best_cma.test['accuracy'] * 100:.2f}% before saving.")
    append(f"M2 — merging MiniLM experts (tweets sentiment + BBC topics), {args.budget} evaluations", body, notes)


if __name__ == "__main__":
    main()
