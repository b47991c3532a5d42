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
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bbopt import problems as problem_registry
from bbopt.evaluation import check_evaluation_options, check_in_process
from bbopt.optimizer import make_optimizer, optimizer_class, recommended_options, run_defaults
from bbopt.options import OptionError, check_options, integer, merge_recommended, number, one_of, positive
from bbopt.problem import FunctionProblem
from bbopt.seeding import as_seed_sequence, child_seed, int_seed
from bbopt.spaces import Box, Choice


class ConfigError(ValueError):
    """Bad input: ``field`` names the offending key (dotted), the message says what is valid."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


#: top-level keys -> their defaults (None: unset); validate() checks each through bbopt.options
RUN_KEYS: dict[str, Any] = {
    "problem": None, "optimizer": None, "budget": None, "seed": None,
    "target": None, "target_gap": None, "time_limit": None, "round_size": None,
    "n_jobs": 1, "eval_timeout": None, "on_error": "raise", "on_nan": "worst",
    "checkpoint_every": 5.0, "progress": "auto", "record_x": "auto", "out": None,
    "description": None, "grid": None, "runs": None,
}
SWEEP_KEYS = ("grid", "runs")
#: old run keys -> new names (docs/options.md): a config with an old key gets the new one
RENAMED_KEYS = {"batch_size": "round_size"}


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses duplicate keys (PyYAML silently keeps the last) and reads
    numbers as YAML 1.2 does: ``1e-5``, ``1E+3`` and ``2.0e5`` are floats (PyYAML follows YAML 1.1,
    whose floats need a dot and a signed exponent, and returns them as strings)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(str(key), f"appears twice in the same mapping (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


#: YAML 1.2 core-schema floats; tried after PyYAML's own int and float patterns, so "10" stays an int
_YAML12_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """YAML text as Python values, read like a config file (safe, strict, YAML 1.2 numbers)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


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
        data = parse_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError("", f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must contain a mapping of keys (problem, optimizer, budget, ...)")
    return data


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``--set key.sub=value`` overrides; values are parsed as in a file (numbers, lists, ...)."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected key=value, got {item!r}")
        try:
            value = parse_yaml(raw)
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
        if key in RENAMED_KEYS:
            raise ConfigError(str(key), f"is now called {RENAMED_KEYS[key]!r} (see docs/options.md)")
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
    out["budget"] = _checked(integer, config["budget"], "budget", minimum=1)
    seed = config.get("seed")
    out["seed"] = int_seed(as_seed_sequence(None)) if seed is None else _checked(integer, seed, "seed", minimum=0)
    for key in ("target", "target_gap"):
        if config.get(key) is not None:
            out[key] = _checked(number, config[key], key)
    if config.get("target") is not None and config.get("target_gap") is not None:
        raise ConfigError("target_gap", "give target or target_gap, not both")
    for key in ("time_limit", "checkpoint_every"):
        if config.get(key) is not None:
            out[key] = _checked(positive, config[key], key)
    if config.get("round_size") is not None:
        out["round_size"] = _checked(positive, config["round_size"], "round_size", integer=True)
    try:
        out["on_error"], out["on_nan"], out["n_jobs"], out["eval_timeout"] = check_evaluation_options(
            out["on_error"], out["on_nan"], out["n_jobs"], out.get("eval_timeout"))
    except OptionError as err:
        raise _config_error(err) from None
    _checked(one_of, out["progress"], "progress", allowed=(True, False, "auto"))
    _checked(one_of, out["record_x"], "record_x", allowed=(True, False, "auto"))
    if out.get("out") is not None and not isinstance(out["out"], str):
        raise ConfigError("out", f"must be a path string, got {type(out['out']).__name__}")
    if out.get("eval_timeout") is None:
        out.pop("eval_timeout", None)
    return out


def build(config: dict) -> tuple[Any, Any]:
    """The problem and the optimizer a validated config describes (errors name the field).

    ``config["optimizer"]`` is completed with what the problem recommends for the chosen
    strategy (the user's options win), so the resolved config says what actually ran."""
    problem = build_problem(config["problem"], seed=config["seed"])
    try:
        check_in_process(problem, config["n_jobs"], config.get("eval_timeout"))
    except OptionError as err:
        raise _config_error(err) from None
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


def _checked(check: Callable[..., Any], value: Any, field: str, **limits: Any) -> Any:
    """A run key through its check in :mod:`bbopt.options`, its error as a ConfigError."""
    try:
        return check(value, field, "", **limits)
    except OptionError as err:
        raise _config_error(err) from None


def _config_error(err: OptionError) -> ConfigError:
    """``field: must be …`` from an option check's ``field must be …``."""
    return ConfigError(err.option, str(err).removeprefix(f"{err.option} "))
