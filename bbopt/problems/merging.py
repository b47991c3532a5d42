"""Evolutionary model merging as a bbopt Problem (Sakana, arXiv 2403.13187; mergekit-evolve).

:class:`MergeProblem`: a base model (a module or a Hugging Face folder), K experts
fine-tuned from it (folders and files memory-mapped) and a genome (a
:class:`~bbopt.merge.genome.GenomeSpec` or a preset name). The space is the genome's Box;
``evaluate`` decodes each candidate into a recipe, merges it in place, tensor by tensor,
and scores the merged model with the fitness — Tasks (−log-likelihood by default, error
rate with ``metric="accuracy"``), a callable, or perplexity (:mod:`bbopt.merge.fitness`).
:class:`DataFlowMergeProblem` searches layer paths through two frozen models instead. Both
keep the test split apart (a warning if it shares examples with the fitness split),
optionally race candidates on growing data subsets, and write the best recipe
(``recipe.yaml``) and merged model (``merged.safetensors``, or a folder ``from_pretrained``
loads plus ``mergekit.yaml``) with ``save`` / ``finalize``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bbopt.batch import candidates_of
from bbopt.merge.dataflow import DataFlowGenome, PathModel
from bbopt.merge.fitness import (
    CallableFitness,
    Task,
    TaskFitness,
    as_fitness,
    as_tasks,
    check_racing,
    is_tasks,
    overlap,
    race,
)
from bbopt.merge.genome import GenomeSpec
from bbopt.merge.hf import folder_state, is_folder, load_model, open_safetensors, save_folder
from bbopt.merge.recipe import Recipe
from bbopt.merge.task_vectors import MergedModel, TaskVectors
from bbopt.options import OptionError, one_of
from bbopt.problem import Problem
from bbopt.seeding import as_seed_sequence, child_seed

RECIPE_FILE = "recipe.yaml"
MODEL_FILE = "merged.safetensors"
MERGEKIT_FILE = "mergekit.yaml"
DARE_MASKS = ("common", "candidate")


class _MergeBase(Problem):
    """Fitness/test tasks, metric, racing, scoring and saving shared by both merge problems."""

    def _setup_scoring(self, fitness: Any, test: Any, metric: str | None, racing: Any,
                       maximize: bool | None = None) -> None:
        self.fitness = as_fitness(fitness, "fitness", metric, maximize)
        self.metric = getattr(self.fitness, "metric", None)
        self.test = None if test is None else as_fitness(
            test, "test", (metric or "ce") if is_tasks(test) else None,
            maximize if isinstance(self.fitness, CallableFitness) and not is_tasks(test) and callable(test) else None)
        self.racing = check_racing(racing)
        if self.racing and not self.fitness.racing:
            raise OptionError("racing", f"racing needs a fitness that scores part of its data: "
                                        f"{self.fitness.name} takes no fraction argument (see CallableFitness)")
        self.n_scored = 0  # examples forwarded by evaluate (the racing saving shows here)
        shared = overlap(self.fitness.tasks, self.test.tasks) if isinstance(self.fitness, TaskFitness) and \
            isinstance(self.test, TaskFitness) else 0
        if shared:
            warnings.warn(f"{shared} fitness examples also appear in the test split: test scores will be "
                          "optimistic; keep the splits disjoint", UserWarning, stacklevel=3)

    def _module(self, x: np.ndarray) -> torch.nn.Module:
        raise NotImplementedError

    def evaluate(self, batch: Any) -> np.ndarray:
        """Losses ``(n,)`` of the candidates ``(n, d)``, merged and scored one at a time.

        An exception in the fitness fails the batch; the run's ``on_error`` policy decides
        (``"record"`` retries the candidates one by one and records the failing ones)."""
        X = self.space.validate(candidates_of(batch))

        def one(i: int, fraction: float) -> float:
            self.n_scored += self.fitness.size(fraction)
            return self.fitness.loss(self._module(X[i]), fraction)

        return race(one, len(X), self.racing)

    def report(self, x: np.ndarray) -> dict:
        """Scores of candidate ``x`` on the fitness and test splits."""
        module = self._module(np.asarray(x, dtype=float))
        return {"fitness": self.fitness.scores(module), "test": self.test.scores(module) if self.test else None}

    def save(self, x_or_result: Any, out_dir: str | Path) -> dict[str, Path]:
        """Write ``recipe.yaml`` and the merged model for a candidate or a Result's best.

        The model is a Hugging Face folder (``config.json``, safetensors, the base's tokenizer
        files; ``from_pretrained`` loads it) when the base was a folder, else
        ``merged.safetensors``; a mergekit config (``mergekit.yaml``) is added when the
        genome's recipe has a mergekit equivalent. Files are written aside and renamed."""
        x = getattr(x_or_result, "x", x_or_result)
        if x is None:
            raise ValueError("save: the result has no best candidate (did every evaluation fail?)")
        x = self.space.validate(x)[0]
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        recipe = {**self.describe_candidate(x), "metric": self.metric, **_plain(self.report(x))}
        tmp = Path(tempfile.mkdtemp(prefix=".bbopt-save-", dir=out))
        try:  # written aside, then renamed: never a half-written model next to a recipe
            files = self._write_model(x, tmp, recipe)
            (tmp / RECIPE_FILE).write_text(yaml.safe_dump(recipe, sort_keys=False))
            config = self.mergekit_config(x)
            if config is not None:
                (tmp / MERGEKIT_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
                files.append(MERGEKIT_FILE)
            for name in [*files, RECIPE_FILE]:
                os.replace(tmp / name, out / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        saved = {"recipe": out / RECIPE_FILE, "model": out if getattr(self, "folder", None) else out / MODEL_FILE}
        if config is not None:
            saved["mergekit"] = out / MERGEKIT_FILE
        return saved

    def _write_model(self, x: np.ndarray, tmp: Path, recipe: dict) -> list[str]:
        """Write the merged model of ``x`` into ``tmp``; the names of the files written."""
        from safetensors.torch import save_file

        state = {k: v.detach().clone().contiguous() for k, v in self.merged_state_dict(x).items()}
        save_file(state, tmp / MODEL_FILE, metadata={"bbopt": "merged model", "recipe": json.dumps(recipe)})
        return [MODEL_FILE]

    def mergekit_config(self, x: np.ndarray) -> dict | None:
        """The mergekit config of candidate ``x`` (None: not expressible in mergekit)."""
        return None

    def finalize(self, result: Any, run_dir: str | Path) -> dict[str, Path]:
        """The CLI's end-of-run hook: save the best recipe and merged model into the run dir."""
        return self.save(result, run_dir)

    def describe_candidate(self, x: np.ndarray) -> dict:
        raise NotImplementedError

    def merged_state_dict(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class MergeProblem(_MergeBase):
    """Search merge recipes for ``experts`` fine-tuned from the base ``model``.

    - ``model``: the base as a module (its state dict is θ₀ unless ``base`` is given), or a
      local Hugging Face model folder (any architecture transformers loads; the merged model
      is then saved as such a folder, with the base's tokenizer files).
    - ``experts``: model folders, state dicts, modules or safetensors paths with the base's
      tensor names and shapes (the error names the first tensor that differs). Folders and
      files are memory-mapped and merged in their own dtype (:mod:`bbopt.merge.hf`).
    - ``fitness`` / ``test``: Tasks, a callable ``fitness(model) -> float`` (lower is better,
      unless ``maximize``; ``fitness(model, fraction)`` can be raced), or a
      :class:`~bbopt.merge.perplexity.Perplexity` (test: reporting only).
    - ``genome``: a preset name (``per_layer``, ``sakana``, …), a dict or a GenomeSpec.
    - ``metric`` (Tasks only): ``"ce"`` (smooth, default) or ``"accuracy"`` (loss = error rate).
    - ``racing``: ``[[fraction, keep], ...]`` multi-step selection within each batch.
    - ``exclude``: regexes of tensors kept at the base values (never merged).
    - ``seed``: keys the DARE masks; ``dare_masks``: ``"common"`` (same uniforms for every
      candidate) or ``"candidate"`` (keyed by the candidate's genes too).
    - ``expert_data``: each expert's own training tasks (Fisher merging baselines).
    - ``x0``: the search's start: a genome vector, or a mergekit YAML config (path or dict)
      whose recipe is projected onto the genome (:mod:`bbopt.merge.mergekit`).
    """

    def __init__(self, model: torch.nn.Module | str | Path, experts: Sequence[Any], fitness: Any, *,
                 genome: Any = "per_layer", test: Any = None, base: Any = None,
                 metric: str | None = None, maximize: bool | None = None, racing: Any = None,
                 exclude: Sequence[str] = (), seed: int = 0, dare_masks: str = "common",
                 expert_names: Sequence[str] | None = None, expert_data: Sequence[Sequence[Task]] | None = None,
                 x0: Any = None, architecture: str | None = None):
        one_of(dare_masks, "dare_masks", "MergeProblem", DARE_MASKS)
        self.folder = Path(model).resolve() if isinstance(model, (str, Path)) and is_folder(model) else None
        if self.folder is not None:
            module = load_model(self.folder, architecture)
            base_state = _state(base, "base") if base is not None else folder_state(self.folder)
        elif isinstance(model, torch.nn.Module):
            if architecture is not None:
                raise OptionError("architecture", "architecture is for a base given as a model folder; remove it")
            module = copy.deepcopy(model)
            base_state = _state(base, "base") if base is not None else model.state_dict()
        else:
            raise TypeError(f"model must be a torch.nn.Module or a Hugging Face model folder (with config.json), "
                            f"got {model!r}")
        names = [Path(e).name if isinstance(e, (str, Path)) else None for e in experts]
        #: the experts' folders when all are folders (a mergekit config names them)
        self.expert_paths = [Path(e).resolve() for e in experts] if all(is_folder(e) for e in experts) else None
        experts = [_state(e, f"experts[{k}]") for k, e in enumerate(experts)]
        if not experts:
            raise ValueError("experts: needs at least one expert")
        self.expert_names = list(expert_names) if expert_names is not None else [
            n if n is not None and names.count(n) == 1 else f"expert{k}" for k, n in enumerate(names)]
        if len(self.expert_names) != len(experts):
            raise ValueError(f"expert_names: {len(self.expert_names)} names for {len(experts)} experts")
        self.seed = int(seed)
        self.dare_masks = dare_masks
        self.expert_data = [as_tasks(d, f"expert_data[{k}]") for k, d in enumerate(expert_data or [])]
        self.tv = TaskVectors(base_state, experts, exclude, dare_seed=child_seed(as_seed_sequence(seed), 1),
                              expert_labels=[f"experts[{k}]" for k in range(len(experts))])
        if base is not None:
            module.load_state_dict(base_state, strict=False)
        self.merged = MergedModel(module, self.tv, base_state)
        self._setup_scoring(fitness, test, metric, racing, maximize)
        self._x0 = x0
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
        """The start point: ``x0`` as given (a mergekit config projected onto the genome), else
        the genome's own (the box centre unless genes set ``init``)."""
        if self._x0 is None:
            return self.genome.x0
        if isinstance(self._x0, (str, Path, Mapping)):
            from bbopt.merge.mergekit import genome_x0

            return genome_x0(self, self._x0)
        return self.space.validate(self._x0)[0]

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
            fitness = self.fitness if split == "fitness" else self.test
            return fitness.scores(self.merged.load_state_dict(state)) if fitness is not None else {}
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

    def finalize(self, result: Any, run_dir: str | Path) -> dict[str, Path]:
        """Save the best merge into the run dir (a base given as a folder: into ``merged/``,
        a Hugging Face folder with ``recipe.yaml`` and ``mergekit.yaml``)."""
        return self.save(result, Path(run_dir) / "merged" if self.folder is not None else run_dir)

    def _write_model(self, x: np.ndarray, tmp: Path, recipe: dict) -> list[str]:
        if self.folder is None:
            return super()._write_model(x, tmp, recipe)
        save_folder(self.model_at(x), tmp, tokenizer_from=self.folder)
        return sorted(p.name for p in tmp.iterdir())

    def mergekit_config(self, x: np.ndarray) -> dict | None:
        """mergekit's YAML config of candidate ``x``, for a base and experts given as folders
        (None otherwise, or when the recipe has no mergekit equivalent)."""
        from bbopt.merge.mergekit import NotExpressible, to_mergekit

        if self.folder is None or self.expert_paths is None:
            return None
        try:
            return to_mergekit(self.recipe(x), self.tv.names, self.folder, self.expert_paths, self.tv.excluded)
        except NotExpressible as err:
            warnings.warn(f"no mergekit config written: {err}", UserWarning, stacklevel=3)
            return None

    def describe_candidate(self, x: np.ndarray) -> dict:
        return {"problem": "MergeProblem", "genome": self.genome.describe(x, self.expert_names)}

    def describe(self) -> dict:
        return {"problem": "MergeProblem", "space": self.space.describe(), "method": self.genome_spec.method,
                "experts": self.expert_names, "n_params": self.tv.n_params, "metric": self.metric,
                "racing": self.racing, "seed": self.seed}


class DataFlowMergeProblem(_MergeBase):
    """Search the layer path (and per-hop scales) through two frozen reroutable models A and B
    (fitness, test, metric, maximize, racing: as for :class:`MergeProblem`)."""

    def __init__(self, model_a: torch.nn.Module, model_b: torch.nn.Module, fitness: Any, *,
                 test: Any = None, repeats: int = 2, scale_bound: float = 0.5, metric: str | None = None,
                 maximize: bool | None = None, racing: Any = None, names: tuple[str, str] = ("A", "B")):
        self.model = PathModel(copy.deepcopy(model_a).eval(), copy.deepcopy(model_b).eval())
        self.genome = DataFlowGenome(len(self.model.a.layers), len(self.model.b.layers), repeats, scale_bound)
        self.space = self.genome.space
        self.names = tuple(names)
        self._setup_scoring(fitness, test, metric, racing, maximize)

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
        if Path(obj).is_dir():
            return folder_state(obj)
        if not Path(obj).is_file():
            raise FileNotFoundError(f"{what}: {obj} is neither a model folder nor a safetensors file")
        return open_safetensors(obj)
    if isinstance(obj, Mapping) and all(torch.is_tensor(v) for v in obj.values()):
        return dict(obj)
    raise TypeError(f"{what} must be a model folder, a state dict, a torch module or a safetensors path, got {type(obj).__name__}")


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
                 n_test: int | dict[str, int] = 300, steps: int = 150, encoder_config: dict | None = None) -> MergeProblem:
    """The packaged MiniLM fine-tuned on tweet sentiment and on BBC topics (built once, cached),
    merged; fitness = mean cross-entropy over both tasks with their frozen heads."""
    from bbopt.merge.minilm import minilm_workload

    w = minilm_workload(seed, cache_dir=cache_dir, n_train=n_train, n_fitness=n_fitness, n_test=n_test, steps=steps,
                        encoder_config=encoder_config)
    return MergeProblem(w.model, w.experts, w.fitness, genome=genome, test=w.test, metric=metric, racing=racing,
                        exclude=w.exclude, seed=seed, dare_masks=dare_masks, expert_names=w.expert_names,
                        expert_data=w.expert_data)


def hf_merge(base: str, experts: Sequence[str], fitness: Any, test: Any = None, genome: Any = "per_layer",
             metric: str | None = None, racing: Any = None, seed: int = 0, dare_masks: str = "common",
             exclude: Sequence[str] = (), x0: Any = None, architecture: str | None = None) -> MergeProblem:
    """Local Hugging Face folders merged from a problem file: ``base``, ``experts`` (folders),
    ``fitness`` / ``test`` as in :mod:`bbopt.merge.fitness_config` (perplexity on text
    files, Task data, ``module:function``); ``x0``: a genome vector or a mergekit config."""
    from bbopt.merge.fitness_config import fitness_from_config

    if not is_folder(base):
        raise OptionError("base", f"base: {base} is not a model folder (no config.json)")
    for k, e in enumerate(experts):
        if not is_folder(e):
            raise OptionError(f"experts[{k}]", f"experts[{k}]: {e} is not a model folder (no config.json)")
    fit, maximize = fitness_from_config(fitness, base, "fitness")
    held_out = fitness_from_config(test, base, "test")[0] if test is not None else None
    return MergeProblem(base, list(experts), fit, genome=genome, test=held_out, metric=metric, maximize=maximize,
                        racing=racing, exclude=exclude, seed=seed, dare_masks=dare_masks, x0=x0,
                        architecture=architecture)


def gpt2_merge(seed: int = 0, genome: Any = "per_layer", racing: Any = None, cache_dir: str | None = None,
               dare_masks: str = "common", n_train: int = 1500, n_fitness: int = 32, n_test: int = 200,
               base_steps: int = 200, expert_steps: int = 100, model_config: dict | None = None,
               average: str = "nll") -> MergeProblem:
    """A small GPT-2-style LM and its experts on tweets and on BBC News (built once as model
    folders, cached), merged; fitness = mean over both corpora of the held-out token NLL
    (``average="perplexity"``: of their perplexities)."""
    from bbopt.merge.gpt2 import gpt2_workload, perplexity_fitness

    w = gpt2_workload(seed, cache_dir=cache_dir, n_train=n_train, n_fitness=n_fitness, n_test=n_test,
                      base_steps=base_steps, expert_steps=expert_steps, model_config=model_config)
    return MergeProblem(w.base, w.experts, perplexity_fitness(w, "fitness", average=average), genome=genome,
                        test=perplexity_fitness(w, "test", average=average), racing=racing, seed=seed, dare_masks=dare_masks,
                        expert_names=w.expert_names)
