"""Evolutionary model merging: merge operators, task-vector caches, genomes, workloads.

The search itself is any bbopt optimizer over :class:`bbopt.problems.MergeProblem` (or
:class:`bbopt.problems.DataFlowMergeProblem`) through :func:`bbopt.minimize`::

    from bbopt import minimize
    from bbopt.problems import get
    problem = get("merge-digits", seed=0, genome="per_layer")
    result = minimize(problem, "cma", 400, seed=0, options={"x0": problem.x0})
    problem.save(result, "out/")          # recipe.yaml + merged.safetensors

Modules: ``operators`` (pure merge functions), ``task_vectors`` (cached τ, in-place merges),
``recipe``, ``genome`` (spec -> Box + decoder, presets), ``dataflow`` (layer-path genome),
``fitness`` (tasks, scores, racing), ``fisher``, ``baselines``, ``workloads`` (digits),
``minilm`` (text experts).
"""

from bbopt.merge import operators
from bbopt.merge.dataflow import DataFlowGenome, PathModel
from bbopt.merge.fitness import Task
from bbopt.merge.genome import PRESETS, Gene, Genome, GenomeSpec, preset
from bbopt.merge.recipe import METHODS, Recipe
from bbopt.merge.task_vectors import MergedModel, TaskVectors

__all__ = ["METHODS", "PRESETS", "DataFlowGenome", "Gene", "Genome", "GenomeSpec", "MergedModel", "PathModel",
           "Recipe", "Task", "TaskVectors", "operators", "preset"]
