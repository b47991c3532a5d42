"""The engine core's strategies pass the conformance suite, and every registered name declares it."""

from pathlib import Path

import pytest

from bbopt.optimizer import OPTIMIZERS
from bbopt.testing import OptimizerConformance, check_reference, find_declarations

ROOT = Path(__file__).resolve().parent.parent


class TestRandomSearch(OptimizerConformance):
    name = "random"
    converge_budget = 3000
    converge_target = 2.0  # random search in 4-D: only a coarse target is fair


class TestRandomSearchFromX0(OptimizerConformance):
    name = "random"
    options = {"popsize": 4, "x0": [0.5, -0.5, 0.25, 0.0]}


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
    options = {"optimizer": "DE", "popsize": 4, "x0": [1.0, 1.0, -1.0, 2.0]}
    converge_budget = 3000
    converge_target = 1e-6


DECLARED = find_declarations(ROOT / "tests")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_strategy_declares_its_conformance_settings(name):
    classes = DECLARED.get(name, [])
    assert classes, (f"registered optimizer {name!r} has no conformance declaration: add "
                     f"`class Test…(OptimizerConformance): name = {name!r}` beside its tests (see bbopt.testing)")
    claims = [c for c in classes if c.converge_budget is not None or c.converge_elsewhere]
    assert claims, (f"{name!r}: no declaration ({', '.join(c.__name__ for c in classes)}) sets converge_budget "
                    "or converge_elsewhere")
    for cls in classes:
        if cls.converge_elsewhere:
            assert check_reference(cls.converge_elsewhere, ROOT) is None, \
                f"{cls.__name__}.converge_elsewhere: {check_reference(cls.converge_elsewhere, ROOT)}"


def test_a_missing_declaration_or_a_dangling_reference_is_caught(tmp_path):
    (tmp_path / "test_conformance_scan_probe.py").write_text(
        "from bbopt.testing import OptimizerConformance\n\n"
        "class TestOnlyCMA(OptimizerConformance):\n    name = 'cma'\n\n"
        "class Helper(OptimizerConformance):\n    name = 'random'  # not collected by pytest: not a declaration\n")
    found = find_declarations(tmp_path)
    assert list(found) == ["cma"] and found["cma"][0].__name__ == "TestOnlyCMA"
    assert check_reference("tests/test_conformance.py::test_every_registered_strategy_declares_its_conformance_"
                           "settings — itself", ROOT) is None
    assert "has no test" in check_reference("tests/test_conformance.py::test_nothing — why", ROOT)
    assert "does not exist" in check_reference("tests/nowhere.py::test_x — why", ROOT)
    assert "is not" in check_reference("tests/test_conformance.py::test_every_registered", ROOT)
