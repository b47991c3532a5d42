"""Evolutionary model merging: merge operators, task-vector caches, genomes, workloads.

The search itself is any bbopt optimizer over :class:`bbopt.problems.MergeProblem`.
"""

from bbopt.merge import operators
from bbopt.merge.recipe import METHODS, Recipe
from bbopt.merge.task_vectors import FlatModel, TaskVectors

__all__ = ["METHODS", "FlatModel", "Recipe", "TaskVectors", "operators"]
