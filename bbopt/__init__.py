"""bbopt: a gradient-free / black-box optimisation engine with one ask/tell loop.

    from bbopt import Box, make_optimizer, minimize
    result = minimize(lambda x: (x ** 2).sum(), "cma", 500, space=Box(-5, 5, dim=10), seed=0)

``import bbopt`` stays light (no torch): ``ModelParams`` loads torch on first access.
"""

from bbopt.batch import Batch
from bbopt.config import ConfigError
from bbopt.evaluation import EvaluationError
from bbopt.lazy import lazy_attributes
from bbopt.loop import RoundInfo, minimize
from bbopt.optimizer import OPTIMIZERS, Optimizer, make_optimizer
from bbopt.options import OptionError
from bbopt.problem import FunctionProblem, Problem
from bbopt.results import Result
from bbopt.spaces import Box, Choice, Space

__version__ = "0.1.0"

#: public names whose modules import torch: loaded on first access
_LAZY = {"ModelParams": "bbopt.params"}

__all__ = [
    "OPTIMIZERS",
    "Batch",
    "Box",
    "Choice",
    "ConfigError",
    "EvaluationError",
    "FunctionProblem",
    "ModelParams",
    "OptionError",
    "Optimizer",
    "Problem",
    "Result",
    "RoundInfo",
    "Space",
    "make_optimizer",
    "minimize",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
