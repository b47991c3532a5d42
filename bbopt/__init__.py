"""bbopt: a gradient-free / black-box optimisation engine with one ask/tell loop.

    from bbopt import Box, make_optimizer, minimize
    result = minimize(lambda x: (x ** 2).sum(), "cma", 500, space=Box(-5, 5, dim=10), seed=0)
"""

from bbopt.batch import Batch
from bbopt.loop import RoundInfo, minimize
from bbopt.optimizer import OPTIMIZERS, Optimizer, make_optimizer
from bbopt.problem import FunctionProblem, Problem
from bbopt.results import Result
from bbopt.spaces import Box, Choice, Space

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "Batch",
    "Box",
    "Choice",
    "FunctionProblem",
    "Optimizer",
    "Problem",
    "Result",
    "RoundInfo",
    "Space",
    "make_optimizer",
    "minimize",
]
