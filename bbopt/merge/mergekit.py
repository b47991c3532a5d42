"""mergekit configs out of and into bbopt recipes (arcee-ai/mergekit, YAML merge configs).

Out: :func:`to_mergekit` writes a recipe as a mergekit config for the methods both share
(``linear``, ``task_arithmetic``, ``ties``, ``dare_linear``, ``dare_ties``, ``slerp``). A
per-tensor coefficient becomes a mergekit *conditional parameter*: a list of
``{filter: <tensor name>, value: v}`` ending with an unfiltered default (the most common
value). mergekit takes the first entry whose filter is a substring of the tensor's name,
so filters are listed longest first: each tensor then matches its own name. Variants
mergekit cannot express (TIES's global trim, unweighted sign election, DARE's density
rescale, tensors excluded from a linear/SLERP merge) raise :class:`NotExpressible`.

In: :func:`recipe_of` reads a config (scalars, conditional lists, and mergekit's gradients:
lists of numbers interpolated over the layers) into a recipe on the problem's tensors;
:func:`genome_x0` projects it onto the problem's genome (the search's start, ``x0``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bbopt.merge.genome import layer_slots
from bbopt.merge.recipe import SPARSIFYING, TASK_VECTOR_METHODS, Recipe

RESCALE = {"l1": True, "none": False}


class NotExpressible(ValueError):
    """The recipe has no mergekit equivalent."""


def to_mergekit(recipe: Recipe, names: Sequence[str], base: str | Path, experts: Sequence[str | Path],
                excluded: Sequence[str] = ()) -> dict:
    """A mergekit config (a dict to dump as YAML) that merges ``experts`` onto ``base`` like ``recipe``.

    ``names``: the merged tensors (``recipe``'s rows); ``excluded``: tensors kept at the base."""
    m = recipe.method
    if recipe.trim not in (None, "tensor"):
        raise NotExpressible("mergekit's TIES trims each tensor on its own (trim='global' has no equivalent)")
    if recipe.sign not in (None, "weighted"):
        raise NotExpressible("mergekit elects signs by weighted mass only (sign='unweighted' has no equivalent)")
    if recipe.rescale is not None and recipe.rescale not in RESCALE:
        raise NotExpressible(f"mergekit's DARE rescales by L1 norm or not at all (rescale={recipe.rescale!r})")
    if excluded and m in ("linear", "slerp"):
        raise NotExpressible(f"mergekit's {m} cannot keep tensors at the base ({len(excluded)} excluded)")
    paths = [str(Path(p)) for p in experts]
    if m == "slerp":
        assert recipe.t is not None, "a slerp recipe has t"
        return {"merge_method": "slerp", "base_model": paths[0],
                "models": [{"model": paths[0]}, {"model": paths[1]}],
                "parameters": {"t": _conditional(names, recipe.t)}, "dtype": "float32"}
    models = []
    for k, path in enumerate(paths):
        weight = np.concatenate([recipe.weight[:, k], np.zeros(len(excluded))])
        params = {"weight": _conditional([*names, *excluded], weight)}
        if m in SPARSIFYING:
            assert recipe.density is not None, "a sparsifying recipe has densities"
            params["density"] = _conditional([*names, *excluded], np.concatenate([recipe.density[:, k],
                                                                                  np.ones(len(excluded))]))
        models.append({"model": path, "parameters": params})
    parameters: dict[str, Any] = {"normalize": recipe.normalized}
    if m in TASK_VECTOR_METHODS:
        parameters["lambda"] = float(recipe.lam)
    if m in ("dare_linear", "dare_ties"):
        parameters["rescale"] = RESCALE[recipe.rescale_rule]
    config: dict[str, Any] = {"merge_method": m}
    if m != "linear":
        config["base_model"] = str(Path(base))
    return {**config, "models": models, "parameters": parameters, "dtype": "float32"}


def _conditional(names: Sequence[str], values: np.ndarray) -> Any:
    """One value, or a conditional list: exceptions by tensor name (longest first), then the default."""
    plain = [float(v) for v in values]
    default = Counter(plain).most_common(1)[0][0]
    rows = sorted(((n, v) for n, v in zip(names, plain) if v != default), key=lambda r: -len(r[0]))
    if not rows:
        return default
    return [{"filter": n, "value": v} for n, v in rows] + [{"value": default}]


def load_config(config: str | Path | Mapping) -> dict:
    """A mergekit config from a YAML path or a dict."""
    if isinstance(config, Mapping):
        return dict(config)
    with open(config) as fh:
        loaded = yaml.safe_load(fh)
    if not isinstance(loaded, dict) or "merge_method" not in loaded:
        raise ValueError(f"{config}: not a mergekit config (no merge_method)")
    return loaded


def recipe_of(config: str | Path | Mapping, names: Sequence[str], experts: Sequence[str | Path] | None,
              n_models: int) -> Recipe:
    """The recipe of a mergekit config on tensors ``names`` for experts in the given order
    (matched by path when ``experts`` are paths, else in the config's order)."""
    cfg = load_config(config)
    method = cfg["merge_method"]
    entries = [m for m in cfg.get("models", []) if not (method != "slerp" and m.get("model") == cfg.get("base_model")
                                                         and "parameters" not in m)]
    if len(entries) != n_models:
        raise ValueError(f"the mergekit config has {len(entries)} models, the problem {n_models} experts")
    if experts is not None:
        where = {str(Path(p).resolve()): k for k, p in enumerate(experts)}
        order = [where.get(str(Path(m["model"]).resolve())) for m in entries]
        if None in order:
            raise ValueError(f"the mergekit config's model {entries[order.index(None)]['model']!r} is not one "
                             "of the problem's experts")
        entries = [entries[order.index(k)] for k in range(n_models)]
    top = cfg.get("parameters", {}) or {}
    layer = _layer_positions(names)

    def table(key: str, default: float) -> np.ndarray:
        cols = []
        for m in entries:
            spec = (m.get("parameters") or {}).get(key, top.get(key, default))
            cols.append([_evaluate(spec, n, layer[j]) for j, n in enumerate(names)])
        return np.asarray(cols, dtype=float).T

    kwargs: dict[str, Any] = {}
    if method in TASK_VECTOR_METHODS:
        kwargs["lam"] = float(top.get("lambda", 1.0))
    if "normalize" in top and method != "slerp":
        kwargs["normalize"] = bool(top["normalize"])
    if method in ("dare_linear", "dare_ties") and "rescale" in top:
        kwargs["rescale"] = "l1" if top["rescale"] else "none"
    if method == "slerp":
        t = np.asarray([_evaluate(top.get("t", 0.5), n, layer[j]) for j, n in enumerate(names)])
        return Recipe("slerp", np.ones((len(names), 2)), t=t)
    return Recipe(method, table("weight", 1.0), table("density", 1.0) if method in SPARSIFYING else None, **kwargs)


def genome_x0(problem: Any, config: str | Path | Mapping) -> np.ndarray:
    """A mergekit config as a start point of ``problem``'s genome (its nearest point)."""
    from bbopt.options import OptionError

    try:
        recipe = recipe_of(config, problem.tv.names, problem.expert_paths, problem.tv.n_models)
        return problem.genome.project(recipe)
    except (ValueError, KeyError, TypeError) as err:
        raise OptionError("x0", f"x0: {err}") from None


def _evaluate(spec: Any, name: str, position: float | None) -> float:
    """mergekit's value of a parameter for one tensor: scalar, conditional list or gradient."""
    if isinstance(spec, (int, float)):
        return float(spec)
    if isinstance(spec, list) and all(isinstance(v, (int, float)) for v in spec):
        if len(spec) == 1 or position is None:
            return float(spec[0])
        return float(np.interp(position * (len(spec) - 1), np.arange(len(spec)), spec))
    if isinstance(spec, list):
        for cond in spec:
            if cond.get("filter") is None or cond["filter"] in name:
                return _evaluate(cond["value"], name, position)
    raise ValueError(f"cannot read the mergekit parameter {spec!r} for tensor {name!r}")


def _layer_positions(names: Sequence[str]) -> list[float | None]:
    """Each tensor's layer as a fraction of the numbered layers (gradients), None if unnumbered."""
    slots, slot_of, numbered = layer_slots(names)
    order = [s for s in range(len(slots)) if numbered[s]]
    rank = {s: i / max(1, len(order) - 1) for i, s in enumerate(order)}
    return [rank.get(s) for s in slot_of]
