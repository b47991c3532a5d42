"""YAML run configs → validated objects, with one clear message per bad field.

A config names a problem, an optimizer and a budget::

    problem: {name: rosenbrock, dim: 10}      # or "module:attr" for the user's own code
    optimizer: {name: cma, sigma0: 0.3}
    budget: 4000
    seed: 0

Everything is checked — unknown keys (with the nearest valid name), types, names, the
options each problem and optimizer accepts — *before* a run directory exists, so bad
input leaves nothing behind. Files are read with PyYAML's safe loader only (duplicate keys refused). A
``module:attr`` problem is imported because the config being run names it; that is the
only code a config can bring in.
"""

from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from bbopt import problems as problem_registry
from bbopt.evaluation import ON_ERROR, ON_NAN
from bbopt.optimizer import make_optimizer, optimizer_class, recommended_options, run_defaults
from bbopt.options import OptionError, check_options, merge_recommended
from bbopt.problem import FunctionProblem
from bbopt.seeding import as_seed_sequence, child_seed, int_seed
from bbopt.spaces import Box, Choice


class ConfigError(ValueError):
    """Bad input: ``field`` names the offending key (dotted), the message says what is valid."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


#: top-level keys: name -> (check, default); a check returns the cleaned value or raises ConfigError
RUN_KEYS: dict[str, Any] = {
    "problem": None, "optimizer": None, "budget": None, "seed": None,
    "target": None, "target_gap": None, "time_limit": None, "batch_size": None,
    "n_jobs": 1, "eval_timeout": None, "on_error": "raise", "on_nan": "worst",
    "checkpoint_every": 5.0, "progress": "auto", "record_x": "auto", "out": None,
    "description": None, "grid": None, "runs": None,
}
SWEEP_KEYS = ("grid", "runs")
MAX_JOBS = 1024


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses duplicate keys (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(str(key), f"appears twice in the same mapping (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict:
    """Read a config file (safe loader only); the top level must be a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as err:
        raise ConfigError("", f"{path} cannot be read as UTF-8 text: {err}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError("", f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must contain a mapping of keys (problem, optimizer, budget, ...)")
    return data


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``--set key.sub=value`` overrides; values are parsed as YAML (numbers, lists, ...)."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(key, f"value {raw!r} is not valid YAML") from None
        set_dotted(config, key, value)
    return config


def set_dotted(config: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if isinstance(child, str) and part in ("problem", "optimizer"):
            child = {"name": child}
        elif child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ConfigError(".".join(parts[: depth + 1]), "is not a mapping, cannot set a sub-key")
        node[part] = child
        node = child
    node[parts[-1]] = value


def validate(config: dict) -> dict:
    """Check every top-level key; return the config with defaults filled in and a concrete seed."""
    if not isinstance(config, dict):
        raise ConfigError("", "a config must be a mapping")
    for key in config:
        if key not in RUN_KEYS:
            hint = difflib.get_close_matches(str(key), list(RUN_KEYS), n=1)
            extra = f"did you mean {hint[0]!r}?" if hint else f"valid keys: {', '.join(RUN_KEYS)}"
            raise ConfigError(str(key), f"unknown key; {extra}")
    out = {k: v for k, v in RUN_KEYS.items() if v is not None and k not in SWEEP_KEYS}
    out.update({k: v for k, v in config.items() if k not in SWEEP_KEYS and v is not None})  # null: default
    for key in ("problem", "optimizer", "budget"):
        if key not in config:
            raise ConfigError(key, "is required")
    out["problem"] = _named_section(config["problem"], "problem")
    out["optimizer"] = _named_section(config["optimizer"], "optimizer")
    out["budget"] = _int(config["budget"], "budget", minimum=1)
    seed = config.get("seed")
    out["seed"] = int_seed(as_seed_sequence(None)) if seed is None else _int(seed, "seed", minimum=0)
    for key in ("target", "target_gap"):
        if config.get(key) is not None:
            out[key] = _number(config[key], key)
    if config.get("target") is not None and config.get("target_gap") is not None:
        raise ConfigError("target_gap", "give target or target_gap, not both")
    for key in ("time_limit", "checkpoint_every", "eval_timeout"):
        if config.get(key) is not None:
            out[key] = _number(config[key], key, positive=True)
    if config.get("batch_size") is not None:
        out["batch_size"] = _int(config["batch_size"], "batch_size", minimum=1)
    n_jobs = _int(out["n_jobs"], "n_jobs", minimum=-1)
    if n_jobs == 0 or n_jobs > MAX_JOBS:
        raise ConfigError("n_jobs", f"must be an integer in [1, {MAX_JOBS}] or -1 (all cores), got {n_jobs}")
    out["n_jobs"] = n_jobs
    _one_of(out, "on_error", ON_ERROR)
    _one_of(out, "on_nan", ON_NAN)
    _one_of(out, "progress", (True, False, "auto"))
    _one_of(out, "record_x", (True, False, "auto"))
    if out.get("out") is not None and not isinstance(out["out"], str):
        raise ConfigError("out", f"must be a path string, got {type(out['out']).__name__}")
    return out


def build(config: dict) -> tuple[Any, Any]:
    """The problem and the optimizer a validated config describes (errors name the field).

    ``config["optimizer"]`` is completed with what the problem recommends for the chosen
    strategy (the user's options win), so the resolved config says what actually ran."""
    problem = build_problem(config["problem"], seed=config["seed"])
    spec = dict(config["optimizer"])
    name = spec.pop("name")
    try:
        cls = optimizer_class(name)
    except (TypeError, ValueError) as err:
        raise ConfigError("optimizer.name", str(err)) from None
    try:
        check_options(cls, spec, f"optimizer {name!r}")
        config["optimizer"] = {"name": name, **merge_recommended(recommended_options(problem, name), spec)}
        spec = run_defaults(name, spec, problem, config["budget"])
        seq = as_seed_sequence(config["seed"])
        optimizer = make_optimizer(name, problem.space, seed=child_seed(seq, 0), **spec)
    except OptionError as err:
        raise ConfigError(f"optimizer.{err.option}", str(err)) from None
    except (TypeError, ValueError, OverflowError, MemoryError) as err:
        raise ConfigError("optimizer", str(err)) from None
    return problem, optimizer


def build_problem(spec: dict, seed: int | None = None) -> Any:
    """A problem from its config section; ``space:`` turns ``module:attr`` into an objective f(x)."""
    spec = dict(spec)
    name = spec.pop("name")
    space_spec = spec.pop("space", None)
    vectorized = spec.pop("vectorized", False)
    try:
        factory = problem_registry.resolve(name)
    except ValueError as err:
        raise ConfigError("problem.name", str(err)) from None
    if space_spec is not None:
        if spec:
            raise ConfigError(f"problem.{sorted(spec)[0]}", "an objective function given with space: takes no options")
        return FunctionProblem(factory, build_space(space_spec), vectorized=bool(vectorized), name=name)
    if vectorized:
        raise ConfigError("problem.vectorized", "only applies to objective functions given with space:")
    import inspect

    try:
        params: Any = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "seed" in params and "seed" not in spec and seed is not None:
        spec["seed"] = int_seed(child_seed(as_seed_sequence(seed), 1))
    try:
        return problem_registry.get(name, **spec)
    except OptionError as err:
        raise ConfigError(f"problem.{err.option}", str(err)) from None
    except (TypeError, ValueError, ImportError, OverflowError, MemoryError) as err:
        raise ConfigError("problem", f"{err}" or type(err).__name__) from None


def build_space(spec: Any) -> Any:
    """``{lower, upper, dim}`` → Box; ``{choice: [...]}`` → Choice."""
    if not isinstance(spec, dict):
        raise ConfigError("problem.space", "must be a mapping: {lower, upper, dim} or {choice: [...]}")
    unknown = set(spec) - {"lower", "upper", "dim", "choice"}
    if unknown:
        raise ConfigError(f"problem.space.{sorted(unknown)[0]}", "unknown key; valid: lower, upper, dim, choice")
    try:
        if "choice" in spec:
            return Choice(spec["choice"])
        if "lower" not in spec or "upper" not in spec:
            raise ConfigError("problem.space", "needs lower and upper (and dim for scalar bounds)")
        return Box(spec["lower"], spec["upper"], dim=spec.get("dim"))
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError("problem.space", str(err)) from None


def _named_section(value: Any, field: str) -> dict:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ConfigError(field, f"must be a name or a mapping with 'name', got {type(value).__name__}")
    if not isinstance(value.get("name"), str) or not value["name"]:
        raise ConfigError(f"{field}.name", "is required (a registered name; see `bbopt list`)")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(field, f"option names must be strings, got {key!r}")
    return dict(value)


def _int(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(field, f"must be ≥ {minimum}, got {value}")
    return value


def _number(value: Any, field: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(field, f"must be a number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(field, f"must be positive, got {value}")
    return float(value)


def _one_of(config: dict, field: str, allowed: tuple) -> None:
    value = config[field]
    if not any(type(value) is type(a) and value == a for a in allowed):  # 0 is not False here
        raise ConfigError(field, f"must be one of {', '.join(map(str, allowed))}; got {config[field]!r}")
