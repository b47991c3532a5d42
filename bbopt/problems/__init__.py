"""Built-in problems, found by name: ``bbopt.problems.get("sphere", dim=10)``.

Names resolve in this order: the built-in registry below, then ``"module:attr"`` (a
Problem class or factory in the user's own code — imported only because the config the
user runs names it), then the ``bbopt.problems`` entry-point group of installed packages.
Problem classes with heavy dependencies (torch, transformers) load on first access.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import typing
from importlib.metadata import entry_points
from typing import Any

from bbopt.lazy import lazy_attributes
from bbopt.options import check_options, unknown_name_message
from bbopt.problem import Problem

#: name -> ("module:attr", one-line description)
PROBLEMS: dict[str, tuple[str, str]] = {
    "sphere": ("bbopt.problems.synthetic:Sphere", "Σ x², optimum 0 (sanity check)"),
    "rosenbrock": ("bbopt.problems.synthetic:Rosenbrock", "curved valley, optimum 0 at (1, …, 1)"),
    "rastrigin": ("bbopt.problems.synthetic:Rastrigin", "multimodal, optimum 0"),
    "ackley": ("bbopt.problems.synthetic:Ackley", "multimodal with a flat outer region, optimum 0"),
    "styblinski-tang": ("bbopt.problems.synthetic:StyblinskiTang", "additive, optimum −39.166·d"),
    "hartmann6": ("bbopt.problems.synthetic:Hartmann6", "Hartmann-6 on [0, 1]^dim, dims beyond 6 inert, optimum −3.32237"),
    "lasso": ("bbopt.problems.lasso:WeightedLasso", "per-feature Lasso penalties, K-fold CV loss (dataset=, degree=, folds=)"),
    "bbob": ("bbopt.problems.synthetic:BBOB", "COCO BBOB f1–f24 (function=, dim=, instance=)"),
    "zo-digits-mlp": ("bbopt.problems.zo_workloads:digits_mlp", "train a load_digits MLP from scratch (hidden=, loss=)"),
    "zo-digits-cnn": ("bbopt.problems.zo_workloads:digits_cnn", "train a small load_digits CNN from scratch (channels=)"),
    "zo-minilm-tweets": ("bbopt.problems.text_data:minilm_tweets",
                         "fine-tune MiniLM on tweet sentiment, cosine-anchor prompt (shots=, subset=all|bias|top2)"),
    "zo-text-classification": ("bbopt.problems.text_data:text_classification",
                               "fine-tune a local HF encoder / masked / causal LM on a text task from files "
                               "(model=, task={train, text, label, ...}, verbalizer=cosine|lm)"),
    "sor-poisson": ("bbopt.problems.sor:poisson_problem", "pick SOR's ω per shifted Poisson system (m=, distribution=, solver=)"),
    "sor-diffusion": ("bbopt.problems.sor:diffusion_problem",
                      "pick red–black SOR's ω per variable-coefficient diffusion system (m=, contrast=)"),
    "pcg-preconditioner": ("bbopt.problems.preconditioners:implicit_diffusion_problem",
                           "pick CG's preconditioner per implicit diffusion step (m=, tau_range=, cost=work|iterations|time)"),
    "sor-heat": ("bbopt.problems.sor:heat_problem", "pick SSOR-PCG's ω per Crank–Nicolson heat step (nx=, steps=)"),
    "sor-sequence": ("bbopt.problems.sor:SORSequenceProblem", "pick ω over a user stream (stream='module:attr')"),
    "prompt-tuning": ("bbopt.problems.prompt:PromptTuningProblem.from_pretrained",
                      "BBT/BBTv2 prompt tuning of a frozen LM (model=, task=, deep=, n_prompt=, dim=)"),
    "merge-digits": ("bbopt.problems.merging:digits_merge", "merge 3 load_digits MLP experts (genome=, metric=)"),
    "merge-digits-dataflow": ("bbopt.problems.merging:digits_dataflow", "layer-path (DFS) merge of digits MLPs"),
    "merge-minilm": ("bbopt.problems.merging:minilm_merge", "merge MiniLM experts on tweets and BBC news"),
    "merge-gpt2": ("bbopt.problems.merging:gpt2_merge", "merge GPT-2-style LM experts on tweets and BBC news"),
    "merge-hf": ("bbopt.problems.merging:hf_merge", "merge local Hugging Face model folders (any fitness)"),
}

#: public classes importable as ``from bbopt.problems import X`` (loaded lazily)
_LAZY = {
    "Sphere": "bbopt.problems.synthetic",
    "Rosenbrock": "bbopt.problems.synthetic",
    "Rastrigin": "bbopt.problems.synthetic",
    "Ackley": "bbopt.problems.synthetic",
    "StyblinskiTang": "bbopt.problems.synthetic",
    "Hartmann6": "bbopt.problems.synthetic",
    "WeightedLasso": "bbopt.problems.lasso",
    "BBOB": "bbopt.problems.synthetic",
    "TorchProblem": "bbopt.problems.torch_train",
    "ModelParams": "bbopt.params",
    "SORSequenceProblem": "bbopt.problems.sor",
    "PromptTuningProblem": "bbopt.problems.prompt",
    "MergeProblem": "bbopt.problems.merging",
    "DataFlowMergeProblem": "bbopt.problems.merging",
}

ENTRY_POINT_GROUP = "bbopt.problems"


__all__ = ["ENTRY_POINT_GROUP", "PROBLEMS", "available", "describe", "get", "resolve", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Every problem name with its one-line description (built-in and entry points)."""
    names = {name: doc for name, (_, doc) in PROBLEMS.items()}
    for name, ep in _entry_points().items():
        names.setdefault(name, f"from {ep.value}")
    return names


def resolve(name: str) -> Any:
    """The class or factory behind ``name`` (not yet called)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"problem name must be a non-empty string, got {name!r}")
    if name in PROBLEMS:
        target = PROBLEMS[name][0]
    elif ":" in name:
        target = name
    else:
        eps = _entry_points()
        if name in eps:
            return eps[name].load()
        raise ValueError(unknown_name_message("problem", name, available()))
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"problem {name!r}: cannot import module {module_name!r} ({err})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"problem {name!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def describe(name: str) -> dict:
    """What ``bbopt list --problem NAME`` shows, without building the problem: its one-line
    description, its options with their defaults, the strategy options its class recommends
    (``Problem.recommended``) and whether it computes further ones from its arguments."""
    factory = resolve(name)
    cls = factory if isinstance(factory, type) else _return_class(factory)
    params = _parameters(factory)
    if any(p.kind is p.VAR_KEYWORD for p in params) and cls is not None:  # a factory passing **options on
        params += [p for p in _parameters(cls) if p.name not in {q.name for q in params} and p.default is not p.empty]
    options, required = {}, []
    for p in params:
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if p.default is p.empty:
                required.append(p.name)
            else:
                options[p.name] = p.default
    method = getattr(cls, "recommended_options", None)
    return {"name": name, "description": available().get(name, ""), "options": options, "required": required,
            "recommended": copy.deepcopy(getattr(cls, "recommended", {})),
            "recommended_from_arguments": method is not None and method is not Problem.recommended_options}


def _parameters(factory: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return []


def _return_class(factory: Any) -> type | None:
    """The class a factory function says it returns (its return annotation), if any."""
    try:
        hint = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: nothing to show
        return None
    return hint if isinstance(hint, type) else None


def get(name: str, **kwargs: Any) -> Any:
    """Build the problem registered as ``name`` with keyword options ``kwargs``."""
    factory = resolve(name)
    if not callable(factory):
        raise ValueError(f"problem {name!r} is not a class or factory")
    check_options(factory, kwargs, f"problem {name!r}", skip=("self",))
    problem = factory(**kwargs)
    if not (hasattr(problem, "evaluate") and hasattr(problem, "space")):
        raise TypeError(f"problem {name!r} did not build a Problem (needs .space and .evaluate)")
    return problem
