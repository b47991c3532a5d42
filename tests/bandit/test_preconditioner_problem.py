"""pcg-preconditioner (S5): a second solver parameter — CG's preconditioner per system."""

import numpy as np
import pytest

from bbopt import minimize
from bbopt.batch import Batch
from bbopt.linsolve.precond import PRECONDITIONERS, preconditioned_cg, preconditioner
from bbopt.options import OptionError
from bbopt.problems import get
from bbopt.problems.linear_systems import ImplicitDiffusionStream


def test_every_preconditioner_solves_and_the_strong_ones_need_fewer_iterations():
    system = ImplicitDiffusionStream(m=12, seed=0, tau_range=(100.0, 100.5)).instance(0)
    its = {}
    for name in PRECONDITIONERS:
        res = preconditioned_cg(system.A, system.b, preconditioner(system.A, name))
        assert res.converged and np.linalg.norm(system.b - system.A @ res.x) < 1e-7 * np.linalg.norm(system.b)
        its[name] = res.iterations
    assert its["amg"] < its["ssor"] < its["none"] and its["jacobi"] < its["none"]


def test_costs_are_work_units_and_the_best_choice_depends_on_the_context():
    problem = get("pcg-preconditioner", m=12, seed=1)
    assert problem.space.values == ["none", "jacobi", "ssor"]
    contexts = np.array([problem.context(t) for t in range(30)])
    table = problem.cost_table(range(30))
    system = problem.stream.instance(0)
    M = preconditioner(system.A, "ssor", 1.5)
    assert table[0, 2] == preconditioned_cg(system.A, system.b, M).iterations * 3.0  # CG matvec + 2 sweeps
    best = np.asarray(problem.space.values)[table.argmin(axis=1)]
    assert set(best[contexts < -1.0]) <= {"none", "jacobi"} and set(best[contexts > 1.0]) == {"ssor"}
    batch = Batch(ids=np.arange(3), x=np.array([0, 1, 2]))
    batch.round = 0
    assert problem.evaluate(batch).tolist() == table[0].tolist()


def test_chebcb_learns_the_context_dependent_choice():
    problem = get("pcg-preconditioner", m=10, seed=2)
    res = minimize(problem, "chebcb", 150, seed=0, progress=False)
    arms = np.array([r["x"] for r in res.history])[-50:]
    contexts = np.array([problem.context(t) for t in range(100, 150)])
    assert (arms[contexts > 1.0] == 2).mean() > 0.8  # SSOR on the hard (large τ) systems


def test_bad_options_name_the_field():
    with pytest.raises(OptionError, match="preconditioners"):
        get("pcg-preconditioner", m=8, preconditioners=["jacobi", "ilu"])
    with pytest.raises(OptionError, match="cost"):
        get("pcg-preconditioner", m=8, cost="flops")
    with pytest.raises(ValueError, match="tau_range"):
        get("pcg-preconditioner", m=8, tau_range=(1.0, 0.5))
