"""The ``bbopt`` command: solve | resume | sweep | list | examples | init | show | compare | plot.

Exit status: 0 on success, 2 on bad input (one line naming the field, no traceback, no
run directory left behind), 1 when a run fails (its directory keeps everything computed
so far, and ``bbopt resume`` continues it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bbopt.catalog import find as find_example
from bbopt.config import ConfigError, apply_overrides, load_yaml

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bbopt", description="Gradient-free / black-box optimisation engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="run a problem file (or a shipped example by name)")
    p.add_argument("file", help="problem YAML file, or the name of a shipped example (bbopt examples)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", help="run directory (default: the file's out, else runs/<name>-<time>)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")

    p = sub.add_parser("resume", help="continue a run from its checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change budget, time_limit, target(_gap), on_error, on_nan, progress, n_jobs, checkpoint_every")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")

    p = sub.add_parser("sweep", help="run a grid of runs in parallel")
    p.add_argument("file", help="sweep YAML file (a run config plus grid: and/or runs:), or a shipped example's name")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    p.add_argument("--out", help="sweep directory (default: the file's out, else runs/<name>-<time>)")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel runs (default: the file's n_jobs or 1)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky")
    p.add_argument("--scheduler", help="dask scheduler address (tcp://host:port); default: a local cluster")

    p = sub.add_parser("list", help="optimizers and problems with one-line docs")
    p.add_argument("--problem", metavar="NAME",
                   help="one problem: its options and the strategy options it recommends (builds nothing)")

    sub.add_parser("examples", help="the problem files shipped with bbopt, one line each")

    p = sub.add_parser("init", help="copy a shipped example to edit")
    p.add_argument("name", help="example name (bbopt examples)")
    p.add_argument("dest", nargs="?", help="file or folder to write (default: ./NAME.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = sub.add_parser("show", help="summarise a run directory: config, progress, best, scores, outputs")
    p.add_argument("run_dir")

    p = sub.add_parser("compare", help="tabulate runs (run or sweep directories)")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON line per run instead of the table")

    p = sub.add_parser("plot", help="curves of runs as a PNG: training loss and dev metrics for runs "
                                    "that train (metrics.jsonl), else best so far")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("-o", "--output", help="PNG path (default: training.png or best.png in the first run directory)")
    p.add_argument("--logy", action="store_true", help="log scale for the loss (gap to the optimum if known)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"bbopt: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("bbopt: interrupted; the run directory can be resumed", file=sys.stderr)
        return EXIT_FAILED


def _solve(args: argparse.Namespace) -> int:
    from bbopt.runner import solve

    path, stem = find_example(args.file)
    config = apply_overrides(load_yaml(path), args.set)
    if "grid" in config or "runs" in config:
        raise ConfigError("grid", "this is a sweep file; run it with `bbopt sweep`")
    return _report(lambda: solve(config, out=args.out, stem=stem), args.json)


def _resume(args: argparse.Namespace) -> int:
    from bbopt.runner import resume

    overrides = apply_overrides({}, args.set)
    return _report(lambda: resume(args.run_dir, overrides), args.json)


def _report(run, as_json: bool) -> int:
    from bbopt.report import read_run, summary_text

    try:
        result = run()
    except ConfigError:
        raise
    except Exception as err:  # the run started: its directory keeps what was computed, resumable
        print(f"bbopt: run failed: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(json.dumps({"run_dir": str(result.run_dir), **result.summary()}))
    else:
        print(summary_text(read_run(result.run_dir)))
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    from bbopt.parallel import sweep
    from bbopt.report import table
    from bbopt.runner import default_out, safe_relative

    path, stem = find_example(args.file)
    config = apply_overrides(load_yaml(path), args.set)
    if args.out is None and config.get("out") is not None:
        safe_relative(str(config["out"]), "out")
    out = args.out or config.get("out") or default_out(stem)
    n_jobs = args.n_jobs if args.n_jobs is not None else config.get("n_jobs", 1)
    config["n_jobs"] = 1  # parallelism is across runs; each run evaluates in its own process
    rows = sweep(config, out, n_jobs=n_jobs, backend=args.backend, scheduler=args.scheduler)
    failed = [r for r in rows if r["status"] != "ok"]
    if args.json:
        print(json.dumps({"sweep_dir": str(out), "runs": len(rows), "failed": len(failed)}))
    else:
        columns = ("run", "status", "fun", "n_evals", "n_failed", "stop_reason", "elapsed")
        print(table([{c: row.get(c) for c in columns} for row in rows]))
        print(f"{len(rows)} runs, {len(failed)} failed, in {out} (summary.csv, summary.jsonl, one directory per run)")
        finished = [row for row in rows if row.get("fun") is not None]
        if finished:
            best = min(finished, key=lambda row: row["fun"])
            print(f"best: run {best['run']}, loss {best['fun']:.6g}")
        print(f"compare: bbopt compare {out}\nplot:    bbopt plot {out}\n"
              f"rerun the same command to resume unfinished runs")
    for row in failed:
        print(f"bbopt: run {row['run']} {row['status']}: {row['error']}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from bbopt import problems
    from bbopt.optimizer import OPTIMIZERS, optimizer_class

    if args.problem is not None:
        return _list_problem(args.problem)

    print("optimizers:")
    for name in sorted(OPTIMIZERS):
        try:
            doc = (optimizer_class(name).__doc__ or "").strip().splitlines()[0].removesuffix(" Options:")
        except (ImportError, ValueError, TypeError) as err:
            doc = f"(unavailable: {err})"
        print(f"  {name:<20} {doc}")
    print("problems:")
    for name, doc in sorted(problems.available().items()):
        print(f"  {name:<20} {doc}")
    return EXIT_OK


def _list_problem(name: str) -> int:
    """``bbopt list --problem NAME``: what a problem file may set, and what the problem applies."""
    from bbopt import problems

    try:
        info = problems.describe(name)
    except ValueError as err:
        raise ConfigError("--problem", str(err)) from None
    print(f"problem {name}: {info['description']}")
    print("options: " + ", ".join([*info["required"], *(f"{k}={v!r}" for k, v in info["options"].items())]))
    recommended = info["recommended"]
    for optimizer, options in sorted(recommended.items()):
        print(f"recommended for optimizer {optimizer}: {json.dumps(options)}")
    if info["recommended_from_arguments"]:
        print("further recommended optimizer options follow from the problem's options; a run applies them "
              "under yours and writes them into its config.yaml")
    elif not recommended:
        print("recommended optimizer options: none")
    return EXIT_OK


def _examples(args: argparse.Namespace) -> int:
    from bbopt.catalog import describe, examples

    shipped = examples()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        print(f"{name:<{width}}  {describe(path)}")
    print("run one: bbopt solve NAME    copy one to edit: bbopt init NAME [DEST]")
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from bbopt.catalog import init

    target = init(args.name, args.dest, force=args.force)
    print(f"wrote {target}; run it with: bbopt solve {target}")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from bbopt.report import read_run, show_text

    print(show_text(read_run(args.run_dir)))
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from bbopt.plotting import run_dirs_of
    from bbopt.report import compare_rows, read_run, table

    rows = compare_rows([read_run(d) for d in run_dirs_of([Path(d) for d in args.run_dirs])])
    print("\n".join(json.dumps(row) for row in rows) if args.json else table(rows))
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    from bbopt.plotting import plot_runs

    out = plot_runs([Path(d) for d in args.run_dirs], args.output, logy=args.logy)
    print(json.dumps({"plot": str(out)}))
    return EXIT_OK


_COMMANDS = {"solve": _solve, "resume": _resume, "sweep": _sweep, "list": _list, "examples": _examples,
             "init": _init, "show": _show, "compare": _compare, "plot": _plot}


if __name__ == "__main__":
    sys.exit(main())
