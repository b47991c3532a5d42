"""Every registered Box optimizer of the engine core passes the conformance suite."""

from bbopt.testing import OptimizerConformance


class TestRandomSearch(OptimizerConformance):
    name = "random"
    converge_budget = 3000
    converge_target = 2.0  # random search in 4-D: only a coarse target is fair


class TestCMA(OptimizerConformance):
    name = "cma"
    converge_budget = 1500
    converge_target = 1e-8
    converge_seeds = (0, 1, 2)


class TestSepCMA(OptimizerConformance):
    name = "cma"
    options = {"diagonal": True, "popsize": 12}
    converge_budget = 3000
    converge_target = 1e-8


class TestNevergradCMA(OptimizerConformance):
    name = "nevergrad"
    options = {"optimizer": "CMA"}
    converge_budget = 1500
    converge_target = 1e-6


class TestNevergradDE(OptimizerConformance):
    name = "nevergrad"
    options = {"optimizer": "DE", "num_workers": 4}
    converge_budget = 3000
    converge_target = 1e-6
