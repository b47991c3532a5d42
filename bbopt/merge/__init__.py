"""Evolutionary model merging: merge operators, task-vector caches, genomes, workloads.

The search itself is any bbopt optimizer over :class:`bbopt.problems.MergeProblem` (or
:class:`bbopt.problems.DataFlowMergeProblem`) through :func:`bbopt.minimize`::

    from bbopt import minimize
    from bbopt.problems import get
    problem = get("merge-digits", seed=0, genome="per_layer")
    result = minimize(problem, "cma", 400, seed=0, options={"x0": problem.x0})
    problem.save(result, "out/")          # recipe.yaml + merged.safetensors

Modules: ``operators`` (pure merge functions), ``task_vectors`` (in-place merges from θ₀ and
θ_k in their own dtype), ``recipe``, ``genome`` (spec -> Box + decoder, presets),
``dataflow`` (layer-path genome), ``fitness`` (Tasks, callables, racing), ``perplexity``
(causal LMs), ``fitness_config`` (fitness from YAML), ``hf`` (Hugging Face folders in and
out, memory-mapped), ``mergekit`` (mergekit configs out and in), ``fisher``, ``baselines``,
``workloads`` (digits), ``minilm`` (text experts), ``gpt2`` (a causal LM and its experts).
"""

from bbopt.merge import operators
from bbopt.merge.dataflow import DataFlowGenome, PathModel
from bbopt.merge.fitness import Task
from bbopt.merge.genome import PRESETS, Gene, Genome, GenomeSpec, preset
from bbopt.merge.perplexity import Perplexity
from bbopt.merge.recipe import METHODS, Recipe
from bbopt.merge.task_vectors import MergedModel, TaskVectors

__all__ = ["METHODS", "PRESETS", "DataFlowGenome", "Gene", "Genome", "GenomeSpec", "MergedModel", "PathModel",
           "Perplexity", "Recipe", "Task", "TaskVectors", "operators", "preset"]
