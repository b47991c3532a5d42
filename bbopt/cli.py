"""The ``bbopt`` command: solve | resume | sweep | list | plot.

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

from bbopt.config import ConfigError, apply_overrides, load_yaml

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bbopt", description="Gradient-free / black-box optimisation engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="run a problem file")
    p.add_argument("file", help="problem YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", help="run directory (default: the file's out, else runs/<name>-<time>)")

    p = sub.add_parser("resume", help="continue a run from its checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change budget, time_limit, target(_gap), on_error, on_nan, progress, n_jobs, checkpoint_every")

    p = sub.add_parser("sweep", help="run a grid of runs in parallel")
    p.add_argument("file", help="sweep YAML file (a run config plus grid: and/or runs:)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="sweep directory (default: the file's out, else runs/<name>-<time>)")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel runs (default: the file's n_jobs or 1)")
    p.add_argument("--backend", choices=("loky", "dask"), default="loky")
    p.add_argument("--scheduler", help="dask scheduler address (tcp://host:port); default: a local cluster")

    p = sub.add_parser("list", help="optimizers and problems with one-line docs")
    p.add_argument("--problem", metavar="NAME",
                   help="one problem: its options and the strategy options it recommends (builds nothing)")

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

    config = apply_overrides(load_yaml(args.file), args.set)
    if "grid" in config or "runs" in config:
        raise ConfigError("grid", "this is a sweep file; run it with `bbopt sweep`")
    return _report(lambda: solve(config, out=args.out, stem=Path(args.file).stem))


def _resume(args: argparse.Namespace) -> int:
    from bbopt.runner import resume

    overrides = apply_overrides({}, args.set)
    return _report(lambda: resume(args.run_dir, overrides))


def _report(run) -> int:
    try:
        result = run()
    except ConfigError:
        raise
    except Exception as err:  # the run started: its directory keeps what was computed, resumable
        print(f"bbopt: run failed: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    summary = result.summary()
    print(json.dumps({"run_dir": str(result.run_dir), **summary}))
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    from bbopt.parallel import sweep
    from bbopt.runner import default_out, safe_relative

    config = apply_overrides(load_yaml(args.file), args.set)
    if args.out is None and config.get("out") is not None:
        safe_relative(str(config["out"]), "out")
    out = args.out or config.get("out") or default_out(Path(args.file).stem)
    n_jobs = args.n_jobs if args.n_jobs is not None else config.get("n_jobs", 1)
    config["n_jobs"] = 1  # parallelism is across runs; each run evaluates in its own process
    rows = sweep(config, out, n_jobs=n_jobs, backend=args.backend, scheduler=args.scheduler)
    failed = [r for r in rows if r["status"] != "ok"]
    print(json.dumps({"sweep_dir": str(out), "runs": len(rows), "failed": len(failed)}))
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


def _plot(args: argparse.Namespace) -> int:
    from bbopt.plotting import plot_runs

    out = plot_runs([Path(d) for d in args.run_dirs], args.output, logy=args.logy)
    print(json.dumps({"plot": str(out)}))
    return EXIT_OK


_COMMANDS = {"solve": _solve, "resume": _resume, "sweep": _sweep, "list": _list, "plot": _plot}


if __name__ == "__main__":
    sys.exit(main())
