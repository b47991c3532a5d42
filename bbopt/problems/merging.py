"""Evolutionary model merging as a bbopt Problem (Sakana, arXiv 2403.13187; mergekit-evolve).

:class:`MergeProblem`: a base model, K experts fine-tuned from it and a genome (a
:class:`~bbopt.merge.genome.GenomeSpec` or a preset name). The space is the genome's Box;
``evaluate`` decodes each candidate into a recipe, merges it in place from cached task
vectors and scores the merged model on the fitness split (−log-likelihood by default, error
rate with ``metric="accuracy"``). :class:`DataFlowMergeProblem` searches layer paths
through two frozen models instead. Both keep the test split apart (a warning if it shares
examples with the fitness split), optionally race candidates on growing data subsets, and
write the best recipe (``recipe.yaml``) and merged model (``merged.safetensors``) with
``save`` / ``finalize``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bbopt.batch import candidates_of
from bbopt.merge.dataflow import DataFlowGenome, PathModel
from bbopt.merge.fitness import Task, as_tasks, check_racing, loss_on, overlap, race, score
from bbopt.merge.genome import GenomeSpec
from bbopt.merge.recipe import Recipe
from bbopt.merge.task_vectors import MergedModel, TaskVectors
from bbopt.options import OptionError, one_of
from bbopt.problem import Problem
from bbopt.seeding import as_seed_sequence, child_seed

RECIPE_FILE = "recipe.yaml"
MODEL_FILE = "merged.safetensors"
DARE_MASKS = ("common", "candidate")


class _MergeBase(Problem):
    """Fitness/test tasks, metric, racing, scoring and saving shared by both merge problems."""

    def _setup_scoring(self, fitness: Any, test: Any, metric: str, racing: Any) -> None:
        one_of(metric, "metric", type(self).__name__, ("ce", "accuracy"))
        self.fitness = as_tasks(fitness, "fitness")
        if not self.fitness:
            raise ValueError("fitness: needs at least one Task")
        self.test = as_tasks(test, "test")
        self.metric = metric
        self.racing = check_racing(racing)
        self.n_scored = 0  # examples forwarded by evaluate (the racing saving shows here)
        shared = overlap(self.fitness, self.test) if self.test else 0
        if shared:
            warnings.warn(f"{shared} fitness examples also appear in the test split: test scores will be "
                          "optimistic; keep the splits disjoint", UserWarning, stacklevel=3)

    def _module(self, x: np.ndarray) -> torch.nn.Module:
        raise NotImplementedError

    def evaluate(self, batch: Any) -> np.ndarray:
        """Losses ``(n,)`` of the candidates ``(n, d)``, merged and scored one at a time."""
        X = self.space.validate(candidates_of(batch))

        def one(i: int, fraction: float) -> float:
            tasks = self.fitness if fraction >= 1 else [t.head(max(1, math.ceil(fraction * len(t))))
                                                        for t in self.fitness]
            self.n_scored += sum(len(t) for t in tasks)
            return loss_on(self._module(X[i]), tasks, self.metric)

        return race(one, len(X), self.racing)

    def report(self, x: np.ndarray) -> dict:
        """Scores of candidate ``x`` on the fitness and test splits."""
        module = self._module(np.asarray(x, dtype=float))
        return {"fitness": score(module, self.fitness), "test": score(module, self.test) if self.test else None}

    def save(self, x_or_result: Any, out_dir: str | Path) -> dict[str, Path]:
        """Write ``recipe.yaml`` and ``merged.safetensors`` for a candidate or a Result's best."""
        x = getattr(x_or_result, "x", x_or_result)
        if x is None:
            raise ValueError("save: the result has no best candidate (did every evaluation fail?)")
        x = self.space.validate(x)[0]
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        recipe = {**self.describe_candidate(x), "metric": self.metric, **_plain(self.report(x))}
        from safetensors.torch import save_file

        state = {k: v.detach().clone().contiguous() for k, v in self.merged_state_dict(x).items()}
        tmp_model, tmp_recipe = out / f".{MODEL_FILE}.tmp", out / f".{RECIPE_FILE}.tmp"
        try:  # written aside, then renamed: never a half-written model next to a recipe
            save_file(state, tmp_model, metadata={"bbopt": "merged model", "recipe": json.dumps(recipe)})
            tmp_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False))
            os.replace(tmp_model, out / MODEL_FILE)
            os.replace(tmp_recipe, out / RECIPE_FILE)
        finally:
            tmp_model.unlink(missing_ok=True)
            tmp_recipe.unlink(missing_ok=True)
        return {"recipe": out / RECIPE_FILE, "model": out / MODEL_FILE}

    def finalize(self, result: Any, run_dir: str | Path) -> dict[str, Path]:
        """The CLI's end-of-run hook: save the best recipe and merged model into the run dir."""
        return self.save(result, run_dir)

    def describe_candidate(self, x: np.ndarray) -> dict:
        raise NotImplementedError

    def merged_state_dict(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class MergeProblem(_MergeBase):
    """Search merge recipes for ``experts`` fine-tuned from the base ``model``.

    - ``model``: the base as a module (its state dict is θ₀ unless ``base`` is given).
    - ``experts``: state dicts, modules or safetensors paths with the base's tensor names.
    - ``fitness`` / ``test``: :class:`~bbopt.merge.fitness.Task` lists (test: reporting only).
    - ``genome``: a preset name (``per_layer``, ``sakana``, …), a dict or a GenomeSpec.
    - ``metric``: ``"ce"`` (smooth, default) or ``"accuracy"`` (loss = error rate).
    - ``racing``: ``[[fraction, keep], ...]`` multi-step selection within each batch.
    - ``exclude``: regexes of tensors kept at the base values (never merged).
    - ``seed``: keys the DARE masks; ``dare_masks``: ``"common"`` (same uniforms for every
      candidate) or ``"candidate"`` (keyed by the candidate's genes too).
    - ``expert_data``: each expert's own training tasks (Fisher merging baselines).
    """

    def __init__(self, model: torch.nn.Module, experts: Sequence[Any], fitness: Task | Sequence[Task], *,
                 genome: Any = "per_layer", test: Task | Sequence[Task] | None = None, base: Any = None,
                 metric: str = "ce", racing: Any = None, exclude: Sequence[str] = (), seed: int = 0,
                 dare_masks: str = "common", expert_names: Sequence[str] | None = None,
                 expert_data: Sequence[Sequence[Task]] | None = None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (the base), got {type(model).__name__}")
        one_of(dare_masks, "dare_masks", "MergeProblem", DARE_MASKS)
        experts = [_state(e, f"experts[{k}]") for k, e in enumerate(experts)]
        if not experts:
            raise ValueError("experts: needs at least one expert")
        base_state = _state(base, "base") if base is not None else model.state_dict()
        self.expert_names = list(expert_names) if expert_names is not None else [f"expert{k}" for k in
                                                                                  range(len(experts))]
        if len(self.expert_names) != len(experts):
            raise ValueError(f"expert_names: {len(self.expert_names)} names for {len(experts)} experts")
        self.seed = int(seed)
        self.dare_masks = dare_masks
        self.expert_data = [as_tasks(d, f"expert_data[{k}]") for k, d in enumerate(expert_data or [])]
        self.tv = TaskVectors(base_state, experts, exclude, dare_seed=child_seed(as_seed_sequence(seed), 1),
                              expert_labels=[f"experts[{k}]" for k in range(len(experts))])
        module = copy.deepcopy(model)
        if base is not None:
            module.load_state_dict(base_state, strict=False)
        self.merged = MergedModel(module, self.tv, base_state)
        self._setup_scoring(fitness, test, metric, racing)
        self._bind(genome)

    def _bind(self, genome: Any) -> None:
        try:
            self.genome_spec = genome if isinstance(genome, GenomeSpec) else GenomeSpec.from_dict(genome)
            self.genome = self.genome_spec.bind(self.tv.names, self.tv.n_models)
        except OptionError as err:
            raise OptionError(f"genome.{err.option}", str(err)) from None
        except (TypeError, ValueError) as err:
            raise OptionError("genome", str(err)) from None
        self.space = self.genome.space

    def with_genome(self, genome: Any) -> MergeProblem:
        """The same models, caches and tasks searched through another genome (cheap)."""
        other = copy.copy(self)
        other._bind(genome)
        return other

    @property
    def x0(self) -> np.ndarray:
        """The genome's start point (the box centre unless genes set ``init``)."""
        return self.genome.x0

    def recipe(self, x: np.ndarray) -> Recipe:
        return self.genome.decode(self.space.validate(x)[0])

    def _module(self, x: np.ndarray) -> torch.nn.Module:
        key = np.asarray(x, dtype=np.float64).tobytes() if self.dare_masks == "candidate" else None
        return self.merged.load(self.tv, self.genome.decode(x), key=key)

    def model_at(self, x: np.ndarray) -> torch.nn.Module:
        """The merged module of candidate ``x`` (merged in place: valid until the next merge)."""
        return self._module(self.space.validate(x)[0])

    def score_state(self, state: Mapping[str, torch.Tensor], split: str = "test") -> dict:
        """Scores of a full state dict (e.g. a Fisher merge) on ``"fitness"`` or ``"test"``."""
        if split not in ("fitness", "test"):
            raise ValueError(f"split must be 'fitness' or 'test', got {split!r}")
        try:
            return score(self.merged.load_state_dict(state), self.fitness if split == "fitness" else self.test)
        finally:
            self.merged.reset()

    def merged_state_dict(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.model_at(x).state_dict().items()}

    def source_state_dict(self, k: int | None = None) -> dict[str, torch.Tensor]:
        """The base (``k=None``) or expert ``k``: its merged tensors, the base's elsewhere (copies)."""
        source = self.tv.base if k is None else self.tv.experts[k]
        merged = set(self.tv.names)

        def value(n: str, t: torch.Tensor) -> torch.Tensor:
            n = self.merged.aliases.get(n, n)
            return source[n] if n in merged else self.merged.base.get(n, t)

        return {n: value(n, t).detach().clone() for n, t in self.merged.module.state_dict().items()}

    def describe_candidate(self, x: np.ndarray) -> dict:
        return {"problem": "MergeProblem", "genome": self.genome.describe(x, self.expert_names)}

    def describe(self) -> dict:
        return {"problem": "MergeProblem", "space": self.space.describe(), "method": self.genome_spec.method,
                "experts": self.expert_names, "n_params": self.tv.n_params, "metric": self.metric,
                "racing": self.racing, "seed": self.seed}


class DataFlowMergeProblem(_MergeBase):
    """Search the layer path (and per-hop scales) through two frozen reroutable models A and B."""

    def __init__(self, model_a: torch.nn.Module, model_b: torch.nn.Module, fitness: Task | Sequence[Task], *,
                 test: Task | Sequence[Task] | None = None, repeats: int = 2, scale_bound: float = 0.5,
                 metric: str = "ce", racing: Any = None, names: tuple[str, str] = ("A", "B")):
        self.model = PathModel(copy.deepcopy(model_a).eval(), copy.deepcopy(model_b).eval())
        self.genome = DataFlowGenome(len(self.model.a.layers), len(self.model.b.layers), repeats, scale_bound)
        self.space = self.genome.space
        self.names = tuple(names)
        self._setup_scoring(fitness, test, metric, racing)

    @property
    def x0(self) -> np.ndarray:
        """Model A's own path (every scale 1)."""
        return self.genome.x0

    def _module(self, x: np.ndarray) -> torch.nn.Module:
        return self.model.set_path(*self.genome.decode(x))

    def merged_state_dict(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        self._module(x)
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def describe_candidate(self, x: np.ndarray) -> dict:
        return {"problem": "DataFlowMergeProblem", "genome": self.genome.describe(x, self.names)}

    def describe(self) -> dict:
        return {"problem": "DataFlowMergeProblem", "space": self.space.describe(), "repeats": self.genome.repeats,
                "metric": self.metric, "racing": self.racing}


def load_merged(path: str | Path) -> dict[str, torch.Tensor]:
    """A saved merged model's state dict (safetensors: no code runs on load)."""
    from safetensors.torch import load_file

    return load_file(str(path))


def load_recipe(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _state(obj: Any, what: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, (str, Path)):
        return load_merged(obj)
    if isinstance(obj, Mapping) and all(torch.is_tensor(v) for v in obj.values()):
        return dict(obj)
    raise TypeError(f"{what} must be a state dict, a torch module or a safetensors path, got {type(obj).__name__}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


# ----------------------------------------------------------------- registered workloads
def digits_merge(seed: int = 0, genome: Any = "per_layer", metric: str = "ce", racing: Any = None,
                 cache_dir: str | None = None, dare_masks: str = "common", hidden: int = 96,
                 depth: int = 2) -> MergeProblem:
    """``load_digits`` MLP: a weak base and 3 digit-group experts (built once, cached), merged."""
    from bbopt.merge.workloads import digits_workload

    w = digits_workload(seed, cache_dir=cache_dir, hidden=hidden, depth=depth)
    return MergeProblem(w.model, w.experts, w.fitness, genome=genome, test=w.test, metric=metric, racing=racing,
                        seed=seed, dare_masks=dare_masks, expert_names=w.expert_names, expert_data=w.expert_data)


def digits_dataflow(seed: int = 0, a_lambda: float = 0.5, b: str = "base", repeats: int = 2,
                    scale_bound: float = 0.5, metric: str = "ce", racing: Any = None,
                    cache_dir: str | None = None, hidden: int = 96, depth: int = 2) -> DataFlowMergeProblem:
    """Layer paths through A = the task-arithmetic merge (λ = ``a_lambda``) and B = ``b``
    (``"base"`` or ``"expert<k>"``) of the digits workload."""
    from bbopt.merge import operators as ops
    from bbopt.merge.workloads import DigitsMLP, digits_workload

    w = digits_workload(seed, cache_dir=cache_dir, hidden=hidden, depth=depth)
    base = w.model.state_dict()
    sources = {"base": base, **{f"expert{k}": e for k, e in enumerate(w.experts)}}
    if b not in sources:
        raise ValueError(f"b must be one of {sorted(sources)}, got {b!r}")
    model_a, model_b = DigitsMLP(hidden, depth), DigitsMLP(hidden, depth)
    model_a.load_state_dict(ops.task_arithmetic(base, w.experts, a_lambda))
    model_b.load_state_dict(sources[b])
    return DataFlowMergeProblem(model_a, model_b, w.fitness, test=w.test, repeats=repeats, scale_bound=scale_bound,
                                metric=metric, racing=racing, names=(f"task_arithmetic_{a_lambda:g}", b))


def minilm_merge(seed: int = 0, genome: Any = "per_layer", metric: str = "ce", racing: Any = None,
                 cache_dir: str | None = None, dare_masks: str = "common", n_train: int = 1200, n_fitness: int = 48,
                 n_test: int = 300, steps: int = 150, encoder_config: dict | None = None) -> MergeProblem:
    """The packaged MiniLM fine-tuned on tweet sentiment and on BBC topics (built once, cached),
    merged; fitness = mean cross-entropy over both tasks with their frozen heads."""
    from bbopt.merge.minilm import minilm_workload

    w = minilm_workload(seed, cache_dir=cache_dir, n_train=n_train, n_fitness=n_fitness, n_test=n_test, steps=steps,
                        encoder_config=encoder_config)
    return MergeProblem(w.model, w.experts, w.fitness, genome=genome, test=w.test, metric=metric, racing=racing,
                        exclude=w.exclude, seed=seed, dare_masks=dare_masks, expert_names=w.expert_names,
                        expert_data=w.expert_data)
